package planner_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/planner"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// env is one test's topics, catalog and planner.
type env struct {
	t   *testing.T
	cfg *config.Config
	cat *catalog.Catalog
	reg *prometheus.Registry
	st  *planner.Stage
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	cl := testenv.Client(t, cfg)
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	st, err := planner.New(cfg, planner.Deps{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &env{t: t, cfg: cfg, cat: cat, reg: reg, st: st, ctx: testenv.Context(t, 5*time.Minute)}
}

// audienceTopic creates a fresh audience topic and fills it from spec.
func (e *env) audienceTopic(name string, partitions int32, spec audience.Spec) (string, audience.Counts) {
	t := e.t
	topic := strings.TrimSuffix(e.cfg.Topics.Campaigns, "campaigns") + name
	_, err := kafka.EnsureTopics(e.ctx, testenv.Admin(t, e.cfg), 1, []kafka.TopicSpec{{Name: topic, Partitions: partitions}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.DeleteTopics(t, e.cfg, topic) })
	cl := testenv.Client(t, e.cfg, audience.ProducerOpts()...)
	counts, err := audience.Generate(e.ctx, cl, topic, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return topic, counts
}

func (e *env) putCampaign(id, topic string) {
	def := testenv.ExampleCampaign(e.t)
	def.ID, def.AudienceTopic = id, topic
	def.APNs.CollapseID, def.FCM.CollapseKey = id, id
	if err := e.cat.PutCampaign(e.ctx, def); err != nil {
		e.t.Fatal(err)
	}
}

// readAll reads a topic read_committed and returns its records by partition
// in offset order.
func (e *env) readAll(topic string) map[int32][]*kgo.Record {
	ends, err := kafka.SnapshotEnds(e.ctx, testenv.Admin(e.t, e.cfg), topic, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	opts, _ := kafka.Opts(e.cfg)
	var mu sync.Mutex
	out := map[int32][]*kgo.Record{}
	err = kafka.ReadSnapshot(e.ctx, opts, topic, ends, func(r *kgo.Record) error {
		mu.Lock()
		out[r.Partition] = append(out[r.Partition], r)
		mu.Unlock()
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// liveBatches applies compaction semantics per partition (the latest record
// of a key wins, a tombstone deletes) and returns the surviving batch
// records, failing if a key survives in two partitions.
func (e *env) liveBatches() (live map[string]*kgo.Record, tombstoned map[string]bool) {
	live, tombstoned = map[string]*kgo.Record{}, map[string]bool{}
	for _, recs := range e.readAll(e.cfg.Topics.Batches) {
		perPart := map[string]*kgo.Record{}
		for _, r := range recs {
			if r.Value == nil {
				delete(perPart, string(r.Key))
				tombstoned[string(r.Key)] = true
				continue
			}
			perPart[string(r.Key)] = r
		}
		for k, r := range perPart {
			if other, dup := live[k]; dup {
				e.t.Fatalf("batch %s live in partitions %d and %d", k, other.Partition, r.Partition)
			}
			live[k] = r
		}
	}
	return live, tombstoned
}

// expected decodes the generated audience with the wire decoder: the valid,
// de-duplicated token set per platform and the malformed records.
func expected(t *testing.T, spec audience.Spec) (tokens map[push.Platform]map[string]bool, bad map[string]string) {
	tokens = map[push.Platform]map[string]bool{push.IOS: {}, push.Android: {}}
	bad = map[string]string{}
	if _, err := audience.Records(spec, func(_, v []byte) error {
		r, err := wire.DecodeAudience(v)
		var ae *wire.AudienceError
		if errors.As(err, &ae) {
			bad[string(v)] = ae.Reason
			return nil
		}
		tokens[r.Platform][r.Token] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return tokens, bad
}

// checkPlan verifies the live batches against the manifest and the token sets.
func (e *env) checkPlan(m *wire.Manifest, want map[push.Platform]map[string]bool) map[string]*wire.Batch {
	t := e.t
	live, _ := e.liveBatches()
	cfg := e.cfg.Planner
	wantIOS := int(math.Ceil(float64(len(want[push.IOS])) / float64(cfg.IOSBatchSize)))
	wantAnd := int(math.Ceil(float64(len(want[push.Android])) / float64(cfg.AndroidBatchSize)))
	if int(m.IOSBatches) != wantIOS || int(m.AndroidBatches) != wantAnd || len(live) != wantIOS+wantAnd {
		t.Fatalf("batches: manifest %d ios + %d android, live %d; want %d + %d", m.IOSBatches, m.AndroidBatches,
			len(live), wantIOS, wantAnd)
	}
	got := map[push.Platform]map[string]bool{push.IOS: {}, push.Android: {}}
	perPart := make([]wire.PartitionCount, m.Partitions)
	hash := wire.NewPlanHash(m.IOSBatches, m.AndroidBatches)
	batches := map[string]*wire.Batch{}
	for k, r := range live {
		b, err := wire.DecodeBatch(r.Value)
		if err != nil {
			t.Fatalf("batch %s: %v", k, err)
		}
		batches[k] = b
		if b.Key() != k || b.Campaign != m.Campaign || b.Generation != m.Generation {
			t.Fatalf("batch %s: key %s campaign %s generation %d, manifest generation %d", k, b.Key(), b.Campaign,
				b.Generation, m.Generation)
		}
		if want := wire.Assign(b.Platform, b.Seq, m.IOSBatches, m.Partitions); r.Partition != want {
			t.Fatalf("batch %s in partition %d, Assign says %d", k, r.Partition, want)
		}
		size := cfg.IOSBatchSize
		if b.Platform == push.Android {
			size = cfg.AndroidBatchSize
		}
		if len(b.Tokens) == 0 || len(b.Tokens) > size {
			t.Fatalf("batch %s has %d tokens", k, len(b.Tokens))
		}
		for _, tok := range b.Tokens {
			if got[b.Platform][tok.Token] {
				t.Fatalf("token %s planned twice", tok.Token)
			}
			got[b.Platform][tok.Token] = true
			if tok.Locale >= uint16(len(b.Locales)) {
				t.Fatalf("batch %s: bad locale index", k)
			}
		}
		perPart[r.Partition].Batches++
		perPart[r.Partition].Tokens += uint64(len(b.Tokens))
		if !hash.Add(b.Platform == push.IOS, b.Seq, r.Value) {
			t.Fatalf("batch %s: seq out of the manifest's range", k)
		}
	}
	for _, p := range []push.Platform{push.IOS, push.Android} {
		if !maps.Equal(got[p], want[p]) {
			t.Fatalf("%s: planned %d tokens, want the %d valid distinct input tokens (sets differ)", p, len(got[p]), len(want[p]))
		}
	}
	if !slices.Equal(perPart, m.PerPartition) {
		t.Fatalf("per partition: read %v, manifest %v", perPart, m.PerPartition)
	}
	lo, hi := perPart[0].Tokens, perPart[0].Tokens
	for _, pc := range perPart {
		lo, hi = min(lo, pc.Tokens), max(hi, pc.Tokens)
	}
	if hi-lo > uint64(max(cfg.IOSBatchSize, cfg.AndroidBatchSize)) {
		t.Fatalf("partition token counts %v differ by %d, more than one batch", perPart, hi-lo)
	}
	if sum := hash.Sum(); sum != m.Checksum {
		t.Fatalf("checksum recomputed from the topic %s, manifest %s", sum, m.Checksum)
	}
	stored, err := e.cat.Manifest(e.ctx, m.Campaign)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Generation != m.Generation || stored.Checksum != m.Checksum {
		t.Fatalf("stored manifest gen %d %s, returned gen %d %s", stored.Generation, stored.Checksum, m.Generation, m.Checksum)
	}
	return batches
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := testenv.Metric(t, reg, name, labels)
	if !ok {
		t.Fatalf("metric %s%v not found", name, labels)
	}
	return v
}

func TestPlanAndReplan(t *testing.T) {
	e := newEnv(t)
	// 10,000 records: 9,000 valid distinct tokens, 450 duplicates, 550 malformed.
	spec1 := audience.Spec{IOS: 5100, Android: 3900, Locales: []string{"en-US", "es-US", "de-DE", "pt-BR"},
		BadFraction: 0.0611, InvalidFraction: 0.01, DuplicateFraction: 0.05, Seed: 1}
	topic1, counts1 := e.audienceTopic("audience1", 6, spec1)
	if counts1.Records != 10000 {
		t.Fatalf("generated %d records, want 10000", counts1.Records)
	}
	const id = "superbowl-test"
	e.putCampaign(id, topic1)

	var progressCalls int
	m1, err := e.st.Plan(e.ctx, id, "tester", func(p planner.Progress) { progressCalls++ })
	if err != nil {
		t.Fatal(err)
	}
	if progressCalls == 0 {
		t.Error("progress never called")
	}
	if m1.Generation != 1 || m1.IOSTokens != uint64(counts1.IOS) || m1.AndroidTokens != uint64(counts1.Android) ||
		m1.DuplicateTokens != uint64(counts1.Duplicates) || m1.AudienceRecords != uint64(counts1.Records) ||
		!maps.Equal(m1.Rejected, counts1.Bad) || m1.PlannedBy != "tester" || m1.AudienceTopic != topic1 {
		t.Fatalf("manifest %+v\ndoes not match the generator's counts %+v", m1, counts1)
	}
	want1, bad1 := expected(t, spec1)
	if len(want1[push.IOS]) != 5100 || len(want1[push.Android]) != 3900 {
		t.Fatalf("expected sets %d/%d", len(want1[push.IOS]), len(want1[push.Android]))
	}
	e.checkPlan(m1, want1)

	// Every malformed record is in the rejects topic exactly once, with its
	// reason, its original key and bytes, and where it came from.
	src := e.readAll(topic1)
	seen := map[string]int{}
	for _, recs := range e.readAll(e.cfg.Topics.Rejects) {
		for _, r := range recs {
			reason := string(kafka.Header(r, wire.HeaderReason))
			if reason == "" || len(kafka.Header(r, wire.HeaderDetail)) == 0 {
				t.Fatalf("reject without reason/detail: %q", r.Value)
			}
			if bad1[string(r.Value)] != reason {
				t.Fatalf("reject reason %q, want %q for %.80q", reason, bad1[string(r.Value)], r.Value)
			}
			if string(kafka.Header(r, wire.HeaderCampaign)) != id || string(kafka.Header(r, wire.HeaderSrcTopic)) != topic1 {
				t.Fatalf("reject source headers: %v", r.Headers)
			}
			p, _ := strconv.Atoi(string(kafka.Header(r, wire.HeaderSrcPart)))
			off, _ := strconv.ParseInt(string(kafka.Header(r, wire.HeaderSrcOffset)), 10, 64)
			var orig *kgo.Record
			for _, o := range src[int32(p)] {
				if o.Offset == off {
					orig = o
				}
			}
			if orig == nil || !bytes.Equal(orig.Value, r.Value) || !bytes.Equal(orig.Key, r.Key) {
				t.Fatalf("reject does not carry the original record of %d/%d", p, off)
			}
			seen[string(r.Value)]++
		}
	}
	if len(seen) != len(bad1) {
		t.Fatalf("rejects topic holds %d distinct records, want %d", len(seen), len(bad1))
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("reject present %d times: %.80q", n, v)
		}
	}
	if got := metricValue(t, e.reg, "owlpost_planner_rejects_total", map[string]string{"reason": wire.RejectTooLarge}); got != float64(counts1.Bad[wire.RejectTooLarge]) {
		t.Fatalf("rejects_total{too_large} = %v, want %d", got, counts1.Bad[wire.RejectTooLarge])
	}

	// Re-plan from a smaller audience: only the new plan stays readable.
	spec2 := audience.Spec{IOS: 1234, Android: 567, Locales: []string{"en-US", "fr-FR"}, BadFraction: 0.01,
		DuplicateFraction: 0.02, Seed: 2}
	topic2, counts2 := e.audienceTopic("audience2", 3, spec2)
	e.putCampaign(id, topic2)
	m2, err := e.st.Plan(e.ctx, id, "tester", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Generation != 2 || m2.IOSTokens != uint64(counts2.IOS) || m2.AndroidTokens != uint64(counts2.Android) {
		t.Fatalf("re-plan manifest %+v, counts %+v", m2, counts2)
	}
	want2, _ := expected(t, spec2)
	batches2 := e.checkPlan(m2, want2)
	_, tombstoned := e.liveBatches()
	for seq := uint32(m2.IOSBatches); seq < m1.IOSBatches; seq++ {
		if k := wire.BatchKey(id, push.IOS, seq); !tombstoned[k] {
			t.Fatalf("no tombstone for removed batch %s", k)
		}
	}
	for seq := uint32(m2.AndroidBatches); seq < m1.AndroidBatches; seq++ {
		if k := wire.BatchKey(id, push.Android, seq); !tombstoned[k] {
			t.Fatalf("no tombstone for removed batch %s", k)
		}
	}
	if got := metricValue(t, e.reg, "owlpost_planner_tombstones_total", nil); got < float64(m1.Batches()-m2.Batches()) {
		t.Fatalf("tombstones_total = %v, want at least %d", got, m1.Batches()-m2.Batches())
	}

	// Planning the same input again gives the same batches (new generation).
	m3, err := e.st.Plan(e.ctx, id, "tester", nil)
	if err != nil {
		t.Fatal(err)
	}
	batches3 := e.checkPlan(m3, want2)
	if m3.Generation != 3 || len(batches3) != len(batches2) {
		t.Fatalf("third plan: generation %d, %d batches", m3.Generation, len(batches3))
	}
	for k, b := range batches2 {
		b3 := batches3[k]
		if b3 == nil || !slices.Equal(b.Tokens, b3.Tokens) || !slices.Equal(b.Locales, b3.Locales) {
			t.Fatalf("batch %s differs between two plans of the same audience", k)
		}
	}
	if got := metricValue(t, e.reg, "owlpost_planner_plans_total", map[string]string{"result": "ok"}); got != 3 {
		t.Fatalf("plans_total{ok} = %v", got)
	}
}

// TestPlanNormalises: a record without a locale is planned with the
// campaign's default locale, a token with surrounding whitespace is planned
// trimmed, both are counted in the manifest as normalised, and a record
// that is still malformed is rejected.
func TestPlanNormalises(t *testing.T) {
	e := newEnv(t)
	topic := strings.TrimSuffix(e.cfg.Topics.Campaigns, "campaigns") + "normalise"
	if _, err := kafka.EnsureTopics(e.ctx, testenv.Admin(t, e.cfg), 1, []kafka.TopicSpec{{Name: topic, Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.DeleteTopics(t, e.cfg, topic) })
	ios := strings.Repeat("ab", 32)
	fcm := "fcm:" + strings.Repeat("x", 140)
	var recs []*kgo.Record
	for _, v := range []string{
		`{"user_id":"u1","platform":"ios","token":"` + ios + `"}`,                          // no locale
		`{"user_id":"u2","platform":"android","token":"  ` + fcm + `\n","locale":"de-DE"}`, // padded token
		`{"user_id":"u3","platform":"ios","token":"` + strings.Repeat("cd", 32) + `","locale":"es-MX"}`,
		`{"user_id":"u4","platform":"ios","token":"   ","locale":"es-MX"}`, // nothing left
	} {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(v)})
	}
	if err := testenv.Client(t, e.cfg).ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.putCampaign("norm-1", topic)
	m, err := e.st.Plan(e.ctx, "norm-1", "tester", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.IOSTokens != 2 || m.AndroidTokens != 1 || m.Rejected[wire.RejectMissingField] != 1 ||
		m.Normalised[wire.NormalisedLocale] != 1 || m.Normalised[wire.NormalisedToken] != 1 {
		t.Fatalf("manifest: ios %d android %d rejected %v normalised %v", m.IOSTokens, m.AndroidTokens, m.Rejected, m.Normalised)
	}
	live, _ := e.liveBatches()
	got := map[string]string{} // token -> locale
	for _, rec := range live {
		b, err := wire.DecodeBatch(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range b.Tokens {
			got[tk.Token] = b.Locales[tk.Locale]
		}
	}
	want := map[string]string{ios: "en-US", fcm: "de-DE", strings.Repeat("cd", 32): "es-MX"}
	if !maps.Equal(got, want) {
		t.Fatalf("planned tokens and locales %v, want %v", got, want)
	}
}

func TestPlanUnknownCampaign(t *testing.T) {
	e := newEnv(t)
	_, err := e.st.Plan(e.ctx, "nope", "tester", nil)
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	if got := metricValue(t, e.reg, "owlpost_planner_plans_total", map[string]string{"result": "error"}); got != 1 {
		t.Fatalf("plans_total{error} = %v", got)
	}
}

// TestServiceMode: a plan request on the control topic leads to a manifest
// and a planned status.
func TestServiceMode(t *testing.T) {
	e := newEnv(t)
	spec := audience.Spec{IOS: 700, Android: 300, BadFraction: 0.01, DuplicateFraction: 0.01, Seed: 3}
	topic, counts := e.audienceTopic("audience", 2, spec)
	const id = "service-test"
	e.putCampaign(id, topic)

	ctx, cancel := context.WithCancel(e.ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- e.st.Run(ctx) }()

	val, err := wire.Encode(&wire.Control{Type: wire.ControlPlan, Campaign: id, By: "tester", At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	cl := testenv.Client(t, e.cfg)
	if err := cl.ProduceSync(e.ctx, &kgo.Record{Topic: e.cfg.Topics.Control, Key: []byte(id), Value: val}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var m *wire.Manifest
	deadline := time.Now().Add(2 * time.Minute)
	for m == nil {
		if time.Now().After(deadline) {
			t.Fatal("no manifest 2 minutes after the plan request")
		}
		time.Sleep(500 * time.Millisecond)
		m, err = e.cat.Manifest(e.ctx, id)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if m.IOSTokens != uint64(counts.IOS) || m.AndroidTokens != uint64(counts.Android) || m.PlannedBy != "tester" {
		t.Fatalf("manifest %+v, counts %+v", m, counts)
	}
	want, _ := expected(t, spec)
	e.checkPlan(m, want)

	// The planned status follows the commit; give it a moment.
	var st wire.Status
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatalf("no planned status; last %+v", st)
		}
		for _, recs := range e.readAll(e.cfg.Topics.Status) {
			for _, r := range recs {
				if string(r.Key) == wire.StatusKey(id, wire.RolePlanner, e.cfg.InstanceID) {
					if err := wire.Decode(r.Value, &st); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		found = st.State == wire.StatePlanned && st.Generation == m.Generation && st.Tokens == m.Tokens()
		if !found {
			time.Sleep(200 * time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
