package report

import (
	"testing"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

func TestLiveDedupesAndPercentiles(t *testing.T) {
	l := NewLive("c", "F")
	ms := make([]uint32, 100)
	for i := range ms {
		ms[i] = uint32(i * 10) // 0..990 ms
	}
	l.Add("c/ios/000000", &wire.Result{Campaign: "c", FireID: "F", Kind: wire.KindFire, Platform: push.IOS, Accepted: 50, AcceptedMS: ms[:50], Reasons: map[string]int{"x": 1}})
	l.Add("c/ios/000001", &wire.Result{Campaign: "c", FireID: "F", Kind: wire.KindFire, Platform: push.IOS, Accepted: 10, AcceptedMS: ms[50:60]})
	// A fuller record of batch 1 replaces the first one.
	l.Add("c/ios/000001", &wire.Result{Campaign: "c", FireID: "F", Kind: wire.KindFire, Platform: push.IOS, Accepted: 50, AcceptedMS: ms[50:]})
	l.Add("c/ios/000002", &wire.Result{Campaign: "c", FireID: "proof", Kind: wire.KindProof, Accepted: 5})
	s := l.Snapshot()
	if s.Total.Accepted != 100 || s.Total.Batches != 2 {
		t.Fatalf("totals %+v", s.Total)
	}
	if s.P50 != 500 || s.P95 != 950 || s.MaxMS != 1000 {
		t.Fatalf("percentiles p50=%d p95=%d max=%d", s.P50, s.P95, s.MaxMS)
	}
	if len(s.Reasons) != 1 || s.Reasons[0].N != 1 {
		t.Fatalf("reasons %+v", s.Reasons)
	}
}
