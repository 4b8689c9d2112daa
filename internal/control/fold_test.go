package control_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestTakeoverCountsAgree: after a takeover one batch has two results (its
// first sender wrote one and died before marking the batch done; the
// taker-over wrote another, counting the answers the first one stored). The
// status, the live view and the report count the batch once, the same way.
func TestTakeoverCountsAgree(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	if err := f.svc.Prepare(f.ctx, f.def.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	out, err := f.svc.Fire(f.ctx, f.def.ID, "alice", false)
	if err != nil || !out.Won {
		t.Fatalf("fire: %+v %v", out, err)
	}
	fireID := out.Fire.FireID
	rs := f.fireResults(fireID)
	first := rs[1] // iOS batch 1, 500 tokens
	first.Sender, first.Accepted, first.Invalid, first.Retries = "sender-ios-1", 495, 5, 3
	first.Reasons = map[string]int{"BadDeviceToken": 5}
	first.AcceptedMS = make([]uint32, 495)
	taker := first
	taker.Sender, taker.Retries, taker.AcceptedMS = "sender-ios-2", 0, nil
	taker.Reasons = map[string]int{"answered_before_takeover": 495, "invalid_before_takeover": 5}
	f.results(t, rs[0], first, rs[2], rs[3], rs[4], taker)

	st, err := f.svc.Status(f.ctx, f.def.ID)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := report.Build(f.ctx, f.cfg, f.cl, f.def.ID, fireID)
	if err != nil {
		t.Fatal(err)
	}
	live := report.NewLive(f.def.ID, fireID)
	opts, err := kafka.Opts(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = kafka.Read(f.ctx, kadm.NewClient(f.cl), opts, f.cfg.Topics.Results, nil, func(r *kgo.Record) {
		var res wire.Result
		if wire.Decode(r.Value, &res) == nil {
			live.Add(string(r.Key), &res)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	type counts struct{ batches, accepted, invalid, failed, expired, aborted, retries uint64 }
	want := counts{batches: 5, accepted: 500 + 495 + 200 + 248 + 148, invalid: 5 + 2 + 2}
	p := st.Progress
	if p == nil {
		t.Fatalf("status has no progress: %+v", st)
	}
	fromStatus := counts{uint64(p.BatchesDone), uint64(p.Accepted), uint64(p.Invalid), uint64(p.Failed),
		uint64(p.Expired), uint64(p.Aborted), uint64(p.Retries)}
	of := func(c report.Counts) counts {
		return counts{uint64(c.Batches), c.Accepted, c.Invalid, c.Failed, c.Expired, c.Aborted, c.Retries}
	}
	for name, got := range map[string]counts{"status": fromStatus, "report": of(rep.Total), "live": of(live.Snapshot().Total)} {
		if got != want {
			t.Errorf("%s counts %+v, want %+v", name, got, want)
		}
	}
	if p.TokensDone != 1600 || rep.Total.Done() != 1600 || !rep.Complete {
		t.Errorf("tokens: status %d, report %d (complete %v), want 1600", p.TokensDone, rep.Total.Done(), rep.Complete)
	}
}
