package sender

import (
	"testing"
	"time"
)

func TestOffsetsCommitOnlyFinishedPrefix(t *testing.T) {
	tests := []struct {
		name   string
		add    []int64 // offsets dispatched on partition 0, in order
		finish []int64 // offsets finished, in this order
		want   int64   // committable offset, -1 for none
	}{
		{"nothing finished", []int64{10, 11, 12}, nil, -1},
		{"first finished", []int64{10, 11, 12}, []int64{10}, 11},
		{"later finished first", []int64{10, 11, 12}, []int64{12, 11}, -1},
		{"gap closed", []int64{10, 11, 12}, []int64{12, 11, 10}, 13},
		{"middle gap", []int64{10, 11, 12, 13}, []int64{10, 12, 13}, 11},
		{"sparse offsets", []int64{5, 9, 20}, []int64{5, 9}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOffsets()
			es := map[int64]*entry{}
			for _, off := range tt.add {
				es[off] = o.add(0, off, 3)
			}
			for _, off := range tt.finish {
				o.finish(es[off])
			}
			got := o.uncommitted()
			if tt.want < 0 {
				if len(got) != 0 {
					t.Fatalf("uncommitted = %v, want none", got)
				}
				return
			}
			if eo, ok := got[0]; !ok || eo.Offset != tt.want || eo.Epoch != 3 {
				t.Fatalf("uncommitted = %v, want partition 0 at %d epoch 3", got, tt.want)
			}
			o.markCommitted(got)
			if again := o.uncommitted(); len(again) != 0 {
				t.Fatalf("after markCommitted, uncommitted = %v", again)
			}
		})
	}
}

func TestOffsetsDropIgnoresStaleEntries(t *testing.T) {
	o := newOffsets()
	old := o.add(1, 7, 0)
	o.drop([]int32{1})
	// The partition comes back (same offset redelivered); the old entry
	// finishing must not mark the new one finished.
	fresh := o.add(1, 7, 0)
	o.finish(old)
	if got := o.uncommitted(); len(got) != 0 {
		t.Fatalf("stale finish made %v committable", got)
	}
	if n := o.inFlight([]int32{1}); n != 1 {
		t.Fatalf("inFlight = %d, want 1", n)
	}
	o.finish(fresh)
	if got := o.uncommitted(); got[1].Offset != 8 {
		t.Fatalf("uncommitted = %v, want partition 1 at 8", got)
	}
}

func TestOffsetsWaitIdle(t *testing.T) {
	o := newOffsets()
	a := o.add(0, 1, 0)
	b := o.add(2, 1, 0)
	if o.waitIdle([]int32{0}, 10*time.Millisecond) {
		t.Fatal("waitIdle true with a record in flight")
	}
	go o.finish(a)
	if !o.waitIdle([]int32{0}, 5*time.Second) {
		t.Fatal("partition 0 did not become idle")
	}
	if o.inFlight(nil) != 1 {
		t.Fatal("partition 2 should still be in flight")
	}
	o.finish(b)
	if !o.waitIdle(nil, time.Second) {
		t.Fatal("not idle after finishing everything")
	}
}

func TestBackoff(t *testing.T) {
	base, maxWait := 100*time.Millisecond, 2*time.Second
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{4, 1600 * time.Millisecond},
		{5, 2 * time.Second},
		{40, 2 * time.Second},
		{63, 2 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(base, maxWait, tt.attempt); got != tt.want {
			t.Errorf("backoff(attempt %d) = %v, want %v", tt.attempt, got, tt.want)
		}
		for range 100 {
			if j := jitter(tt.want); j < 0 || j >= tt.want {
				t.Fatalf("jitter(%v) = %v, outside [0, %v)", tt.want, j, tt.want)
			}
		}
	}
}

func TestOffsetsAbandonedNotWaitedFor(t *testing.T) {
	o := newOffsets()
	a := o.add(0, 1, 0)
	b := o.add(0, 2, 0)
	o.abandon(a)
	o.finish(b)
	if !o.waitIdle(nil, time.Second) {
		t.Fatal("waitIdle waits for an abandoned record")
	}
	if got := o.uncommitted(); len(got) != 0 {
		t.Fatalf("an abandoned record let %v be committed", got)
	}
}
