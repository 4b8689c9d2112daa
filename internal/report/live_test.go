package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

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

// TestLiveCurveRateAndPlatforms: the curve is cumulative and ends at the
// total, the rate counts the second before the moment asked, the platforms
// are apart, and the live SVG is well-formed.
func TestLiveCurveRateAndPlatforms(t *testing.T) {
	l := NewLive("c", "F")
	var ios, android []uint32
	for i := range 3000 {
		ios = append(ios, uint32(i)) // 0..2999 ms: 1000 per second
	}
	for i := range 500 {
		android = append(android, uint32(2000+i)) // in the third second
	}
	l.Add("c/ios/0", &wire.Result{Campaign: "c", FireID: "F", Kind: wire.KindFire, Platform: push.IOS, Accepted: 3000, Tokens: 3000, AcceptedMS: ios})
	l.Add("c/android/0", &wire.Result{Campaign: "c", FireID: "F", Kind: wire.KindFire, Platform: push.Android, Accepted: 500, Invalid: 2, Tokens: 502, AcceptedMS: android})
	s := l.Snapshot()
	if s.ByPlatform["ios"].Accepted != 3000 || s.ByPlatform["android"].Accepted != 500 || s.ByPlatform["android"].Invalid != 2 || s.Tokens != 3502 {
		t.Fatalf("by platform %+v tokens %d", s.ByPlatform, s.Tokens)
	}
	if len(s.Curve) == 0 || len(s.Curve) > maxCurvePoints {
		t.Fatalf("curve of %d points", len(s.Curve))
	}
	for i := 1; i < len(s.Curve); i++ {
		if s.Curve[i].Accepted < s.Curve[i-1].Accepted || s.Curve[i].MS <= s.Curve[i-1].MS {
			t.Fatalf("curve not cumulative at %d: %+v %+v", i, s.Curve[i-1], s.Curve[i])
		}
	}
	if last := s.Curve[len(s.Curve)-1]; last.Accepted != 3500 || last.MS != 3000 {
		t.Fatalf("curve ends at %+v, want 3500 at 3000 ms", last)
	}
	for _, c := range []struct {
		at   time.Duration
		want uint64
	}{{time.Second, 1000}, {3 * time.Second, 1500}, {500 * time.Millisecond, 500}, {10 * time.Second, 0}} {
		if got := l.PerSecond(c.at); got != c.want {
			t.Errorf("PerSecond(%s) = %d, want %d", c.at, got, c.want)
		}
	}
	var svg bytes.Buffer
	if err := s.WriteSVG(&svg, "c<x>"); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil || !strings.Contains(svg.String(), "(3500)") {
		t.Fatalf("live svg: %v\n%s", err, svg.String())
	}
}
