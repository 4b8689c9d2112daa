package report_test

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

func TestPercentileNearestRank(t *testing.T) {
	s := []uint32{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for _, tc := range []struct {
		q    float64
		want uint32
	}{{0.5, 50}, {0.9, 90}, {0.95, 100}, {0.99, 100}, {0.1, 10}, {0, 10}, {1, 100}} {
		if got := report.Percentile(s, tc.q); got != tc.want {
			t.Errorf("q=%v: got %d want %d", tc.q, got, tc.want)
		}
	}
	if report.Percentile(nil, .5) != 0 {
		t.Error("empty")
	}
}

// TestBuildFromTopics writes a manifest, fire records and results (including
// a duplicate result for one batch and a proof result) and checks the counts.
func TestBuildFromTopics(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, time.Minute)
	cl := testenv.Client(t, cfg)
	cat, _ := catalog.New(cfg, cl)
	m := &wire.Manifest{Campaign: "c", Generation: 1, IOSBatches: 2, AndroidBatches: 1, IOSTokens: 6, AndroidTokens: 2,
		Rejected: map[string]int64{wire.RejectBadJSON: 3}}
	if err := cat.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := 0; i < 3; i++ { // three presses published the same winner
		b, _ := wire.Encode(&wire.Control{Type: wire.ControlFire, Campaign: "c", FireID: "F", By: "alice", At: at})
		recs = append(recs, &kgo.Record{Topic: cfg.Topics.Control, Key: []byte("c"), Value: b})
	}
	res := []*wire.Result{
		{Campaign: "c", Platform: push.IOS, Seq: 0, FireID: "F", Kind: wire.KindFire, Tokens: 3, Accepted: 2, Invalid: 1, AcceptedMS: []uint32{100, 300}},
		{Campaign: "c", Platform: push.IOS, Seq: 1, FireID: "F", Kind: wire.KindFire, Tokens: 3, Accepted: 1, AcceptedMS: []uint32{200}},
		// The same batch again after a takeover, accounting for all of it.
		{Campaign: "c", Platform: push.IOS, Seq: 1, FireID: "F", Kind: wire.KindFire, Tokens: 3, Accepted: 3, Resent: 2, AcceptedMS: []uint32{200, 400, 500}},
		{Campaign: "c", Platform: push.Android, Seq: 0, FireID: "F", Kind: wire.KindFire, Tokens: 2, Accepted: 1, Expired: 1, AcceptedMS: []uint32{600}},
		{Campaign: "c", Platform: push.Android, Seq: 0, FireID: "proof-1", Kind: wire.KindProof, Tokens: 1, Accepted: 1, AcceptedMS: []uint32{5}},
	}
	for _, r := range res {
		b, _ := wire.Encode(r)
		recs = append(recs, &kgo.Record{Topic: cfg.Topics.Results, Key: []byte(wire.BatchKey(r.Campaign, r.Platform, r.Seq)), Value: b})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r, err := report.Build(ctx, cfg, cl, "c", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.FireID != "F" || r.DuplicatePresses != 2 {
		t.Errorf("fire %q presses %d", r.FireID, r.DuplicatePresses)
	}
	if r.Total.Planned != 8 || r.Total.Accepted != 6 || r.Total.Invalid != 1 || r.Total.Expired != 1 || !r.Complete {
		t.Errorf("totals %+v complete=%v", r.Total, r.Complete)
	}
	if got := r.AcceptedMS(); len(got) != 6 || r.Latency.MaxMS != 600 || r.Latency.P50 != 300 {
		t.Errorf("latency %v %+v", got, r.Latency)
	}
	var text, svg bytes.Buffer
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "COMPLETE") {
		t.Errorf("text: %v\n%s", err, text.String())
	}
	if err := r.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil {
		t.Errorf("svg is not well-formed XML: %v", err)
	}
}
