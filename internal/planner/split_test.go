package planner

import (
	"fmt"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct{ n, size, count int }{{0, 500, 0}, {1, 500, 1}, {500, 500, 1}, {501, 500, 2}, {1234, 500, 3}, {2_400_000, 500, 4800}} {
		s := newSplit(tc.n, tc.size)
		if s.count != tc.count {
			t.Fatalf("%d/%d: %d batches, want %d", tc.n, tc.size, s.count, tc.count)
		}
		next := 0
		for j := 0; j < s.count; j++ {
			if s.start(j) != next || s.size(j) < 1 || s.size(j) > tc.size || s.size(0)-s.size(j) > 1 {
				t.Fatalf("%d/%d: batch %d start %d size %d", tc.n, tc.size, j, s.start(j), s.size(j))
			}
			next += s.size(j)
		}
		if next != tc.n {
			t.Fatalf("%d/%d: batches hold %d tokens", tc.n, tc.size, next)
		}
	}
}

// TestPartitionBalance: for any audience, partition token counts differ by at
// most one batch (the largest of the plan).
func TestPartitionBalance(t *testing.T) {
	worst := 0
	for _, parts := range []int32{1, 2, 3, 4, 7, 12} {
		for nIOS := 0; nIOS <= 4000; nIOS += 37 {
			for nAnd := 0; nAnd <= 2500; nAnd += 29 {
				ios, and := newSplit(nIOS, 500), newSplit(nAnd, 250)
				pp := perPartition(ios, and, parts)
				lo, hi := pp[0].Tokens, pp[0].Tokens
				for _, pc := range pp {
					lo, hi = min(lo, pc.Tokens), max(hi, pc.Tokens)
				}
				largest := max(ios.size(0), and.size(0))
				if int(hi-lo) > largest {
					t.Fatal(fmt.Sprintf("ios %d android %d over %d partitions: %v differ by %d > %d", nIOS, nAnd, parts, pp, hi-lo, largest))
				}
				worst = max(worst, int(hi-lo))
			}
		}
	}
	t.Logf("worst spread %d tokens", worst)
}
