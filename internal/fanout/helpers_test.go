package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// env is one test's real Kafka topics and Redis prefix.
type env struct {
	cfg   *config.Config
	cl    *kgo.Client // producer with a manual partitioner
	guard *guard.Guard
	cat   *catalog.Catalog
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	cl := testenv.Client(t, cfg, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	return &env{cfg: cfg, cl: cl, guard: guard.New(testenv.Redis(t, cfg), cfg.Redis.Prefix, nil), cat: cat}
}

// writePlan produces a plan's batches and manifest as the planner would.
func (e *env) writePlan(t *testing.T, tp *testPlan) {
	t.Helper()
	ctx := testenv.Context(t, 2*time.Minute)
	for _, r := range tp.records {
		r.Topic = e.cfg.Topics.Batches
	}
	if err := e.cl.ProduceSync(ctx, tp.records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tp.m.PlannedAt = time.Now().UTC()
	if err := e.cat.PutManifest(ctx, tp.m); err != nil {
		t.Fatal(err)
	}
}

// control publishes a control record and returns it as sent.
func (e *env) control(t *testing.T, c wire.Control) wire.Control {
	t.Helper()
	if c.At.IsZero() {
		c.At = time.Now().UTC()
	}
	if c.By == "" {
		c.By = "test"
	}
	b, err := wire.Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 30*time.Second)
	if err := e.cl.ProduceSync(ctx, &kgo.Record{Topic: e.cfg.Topics.Control, Key: []byte(c.Campaign), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return c
}

// fire wins the guard for id and publishes the trigger record.
func (e *env) fire(t *testing.T, campaign, id string) wire.Control {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := guard.FireRecord{FireID: id, By: "test", At: now, Deadline: now.Add(10 * time.Minute)}
	win, won, err := e.guard.Fire(context.Background(), campaign, rec)
	if err != nil || !won {
		t.Fatalf("guard fire: won=%v winner=%+v err=%v", won, win, err)
	}
	return e.control(t, wire.Control{Type: wire.ControlFire, Campaign: campaign, FireID: id, At: now, Deadline: rec.Deadline})
}

// startStage runs an in-process fanout instance until the test ends.
func (e *env) startStage(t *testing.T, instance string) *Stage {
	t.Helper()
	return e.startStageWith(t, instance, e.guard)
}

// startStageWith is startStage with another Guard; setup runs before Run.
func (e *env) startStageWith(t *testing.T, instance string, g Guard, setup ...func(*Stage)) *Stage {
	t.Helper()
	cfg := *e.cfg
	cfg.InstanceID = instance
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := New(&cfg, Deps{Log: log, Registry: prometheus.NewRegistry(), Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = st.Close()
	})
	return st
}

// statusLog reads the whole status topic (read_committed), oldest first.
func (e *env) statusLog(t *testing.T) []*kgo.Record {
	t.Helper()
	return e.snapshot(t, e.cfg.Topics.Status)
}

// statuses returns the latest status per key.
func (e *env) statuses(t *testing.T) map[string]wire.Status {
	t.Helper()
	out := map[string]wire.Status{}
	for _, r := range e.statusLog(t) {
		var st wire.Status
		if err := wire.Decode(r.Value, &st); err == nil {
			out[string(r.Key)] = st
		}
	}
	return out
}

// waitStatus waits until the status of (campaign, fanout, instance) satisfies ok.
func (e *env) waitStatus(t *testing.T, timeout time.Duration, campaign, instance string, ok func(wire.Status) error) wire.Status {
	t.Helper()
	var last wire.Status
	key := wire.StatusKey(campaign, wire.RoleFanout, instance)
	e2e.WaitFor(t, timeout, func() error {
		st, found := e.statuses(t)[key]
		if !found {
			return fmt.Errorf("no status %s yet", key)
		}
		last = st
		if err := ok(st); err != nil {
			return fmt.Errorf("status %s: %w (%+v)", key, err, st)
		}
		return nil
	})
	return last
}

// snapshot reads every record of a topic now (read_committed), ordered by
// partition then offset.
func (e *env) snapshot(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	ends, err := kafka.SnapshotEnds(ctx, testenv.Admin(t, e.cfg), topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := kafka.Opts(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out []*kgo.Record
	if err := kafka.ReadSnapshot(ctx, opts, topic, ends, func(r *kgo.Record) error {
		mu.Lock()
		out = append(out, r)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

// sends returns every committed send task of both send topics.
func (e *env) sends(t *testing.T) []*kgo.Record {
	t.Helper()
	return append(e.snapshot(t, e.cfg.Topics.SendIOS), e.snapshot(t, e.cfg.Topics.SendAndroid)...)
}

// checkExactlyOnce verifies every planned batch is on the send topics
// exactly once, unchanged, with the fire's headers, and nothing else is.
func checkExactlyOnce(t *testing.T, cfg *config.Config, tp *testPlan, recs []*kgo.Record, fire wire.Control) {
	t.Helper()
	want := map[string][]byte{}
	for _, r := range tp.records {
		want[string(r.Key)] = r.Value
	}
	seen := map[string]int{}
	var errs []error
	for _, r := range recs {
		k := string(r.Key)
		seen[k]++
		v, ok := want[k]
		if !ok {
			errs = append(errs, fmt.Errorf("unexpected send task %s", k))
			continue
		}
		if string(v) != string(r.Value) {
			errs = append(errs, fmt.Errorf("%s: value differs from the batches topic", k))
		}
		_, plat, _, _ := wire.ParseBatchKey(k)
		wantTopic := cfg.Topics.SendAndroid
		if plat == "ios" {
			wantTopic = cfg.Topics.SendIOS
		}
		if r.Topic != wantTopic {
			errs = append(errs, fmt.Errorf("%s on topic %s", k, r.Topic))
		}
		f, err := wire.ParseFireHeaders(kafka.WireHeaders(r))
		if err != nil || f.ID != fire.FireID || f.Kind != wire.KindFire ||
			f.FiredAt.UnixMilli() != fire.At.UnixMilli() || f.Deadline.UnixMilli() != fire.Deadline.UnixMilli() {
			errs = append(errs, fmt.Errorf("%s: headers %+v %v, want fire %s at %s", k, f, err, fire.FireID, fire.At))
		}
	}
	for k := range want {
		switch n := seen[k]; {
		case n == 0:
			errs = append(errs, fmt.Errorf("batch %s never released", k))
		case n > 1:
			errs = append(errs, fmt.Errorf("batch %s released %d times", k, n))
		}
	}
	if len(errs) > 0 {
		if len(errs) > 20 {
			errs = append(errs[:20], fmt.Errorf("... %d more", len(errs)-20))
		}
		t.Fatalf("%d send tasks for %d planned batches:\n%v", len(recs), len(want), errors.Join(errs...))
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// dtoHist reads the trigger_seconds histogram of a stage.
type dtoHist struct {
	count uint64
	sum   float64
}

func (h *dtoHist) read(st *Stage) {
	var d dto.Metric
	if err := st.m.triggerSeconds.Write(&d); err == nil && d.Histogram != nil {
		h.count, h.sum = d.Histogram.GetSampleCount(), d.Histogram.GetSampleSum()
	}
}

func (h *dtoHist) mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.count) * float64(time.Second))
}
