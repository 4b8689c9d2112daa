package control_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// fixture is one test's own topics, Redis prefix, a defined and planned
// campaign (the example campaign) and a Service.
type fixture struct {
	cfg *config.Config
	cl  *kgo.Client
	g   *guard.Guard
	reg *prometheus.Registry
	svc *control.Service
	cat *catalog.Catalog
	def *campaign.Campaign
	m   *wire.Manifest
	ctx context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	f := &fixture{cfg: cfg, cl: testenv.Client(t, cfg), reg: prometheus.NewRegistry(), ctx: testenv.Context(t, 3*time.Minute)}
	f.g = guard.New(testenv.Redis(t, cfg), cfg.Redis.Prefix, nil)
	var err error
	if f.cat, err = catalog.New(cfg, f.cl); err != nil {
		t.Fatal(err)
	}
	f.def = testenv.ExampleCampaign(t)
	if err := f.cat.PutCampaign(f.ctx, f.def); err != nil {
		t.Fatal(err)
	}
	f.m = manifest(f.def.ID, cfg.Topics.BatchesPartitions)
	if err := f.cat.PutManifest(f.ctx, f.m); err != nil {
		t.Fatal(err)
	}
	f.svc = f.service(t, f.g, nil)
	return f
}

func (f *fixture) service(t *testing.T, g *guard.Guard, now func() time.Time) *control.Service {
	t.Helper()
	svc, err := control.New(f.cfg, control.Deps{Kafka: f.cl, Guard: g, Registry: f.reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// manifest is a plan of 3 iOS batches (1,200 tokens) and 2 Android batches
// (400 tokens), one batch per partition round-robin.
func manifest(id string, parts int32) *wire.Manifest {
	m := &wire.Manifest{Campaign: id, Generation: 7, PlannedAt: time.Now().Add(-time.Hour).UTC(), PlannedBy: "planner-test",
		Partitions: parts, IOSBatches: 3, AndroidBatches: 2, IOSTokens: 1200, AndroidTokens: 400,
		PerPartition: make([]wire.PartitionCount, parts)}
	sizes := []uint64{500, 500, 200, 250, 150}
	for i, n := range sizes {
		pc := &m.PerPartition[i%int(parts)]
		pc.Batches++
		pc.Tokens += n
	}
	return m
}

// report publishes status records.
func (f *fixture) report(t *testing.T, sts ...wire.Status) {
	t.Helper()
	for i := range sts {
		s := &sts[i]
		if s.At.IsZero() {
			s.At = time.Now()
		}
		b, err := wire.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: f.cfg.Topics.Status, Key: []byte(wire.StatusKey(s.Campaign, s.Role, s.Instance)), Value: b}
		if err := f.cl.ProduceSync(f.ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// fanoutReady returns reports of two fanout instances holding the whole
// plan, as the fanout does after prepare.
func (f *fixture) fanoutReady() []wire.Status {
	var a, b wire.Status
	for _, s := range []*wire.Status{&a, &b} {
		*s = wire.Status{Campaign: f.def.ID, Role: wire.RoleFanout, State: wire.StateReady, Generation: f.m.Generation, ManifestMatch: true}
	}
	a.Instance, b.Instance = "fanout-a", "fanout-b"
	for p := int32(0); p < f.m.Partitions; p++ {
		s := &a
		if p%2 == 1 {
			s = &b
		}
		s.Partitions = append(s.Partitions, p)
		s.Batches += f.m.PerPartition[p].Batches
		s.Tokens += f.m.PerPartition[p].Tokens
	}
	return []wire.Status{a, b}
}

func senders() []wire.Status {
	return []wire.Status{
		{Role: wire.RoleSenderIOS, Instance: "sender-ios-1", State: wire.StateIdle, Connected: true},
		{Role: wire.RoleSenderAndroid, Instance: "sender-android-1", State: wire.StateIdle, Connected: true},
	}
}

func (f *fixture) ready(t *testing.T) {
	t.Helper()
	f.report(t, append(f.fanoutReady(), senders()...)...)
}

// controls returns every record of the control topic of type typ.
func (f *fixture) controls(t *testing.T, typ string) []wire.Control {
	t.Helper()
	ends, err := kafka.SnapshotEnds(f.ctx, kadm.NewClient(f.cl), f.cfg.Topics.Control, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := kafka.Opts(f.cfg)
	var mu sync.Mutex
	var out []wire.Control
	err = kafka.ReadSnapshot(f.ctx, opts, f.cfg.Topics.Control, ends, func(r *kgo.Record) error {
		var c wire.Control
		if err := wire.Decode(r.Value, &c); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if c.Type == typ {
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// results publishes Result records.
func (f *fixture) results(t *testing.T, rs ...wire.Result) {
	t.Helper()
	for i := range rs {
		r := &rs[i]
		r.Campaign = f.def.ID
		if r.FinishedAt.IsZero() {
			r.FinishedAt = time.Now()
		}
		b, err := wire.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: f.cfg.Topics.Results, Key: []byte(wire.BatchKey(r.Campaign, r.Platform, r.Seq)), Value: b}
		if err := f.cl.ProduceSync(f.ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// fireResults are results of kind fire for every planned batch.
func (f *fixture) fireResults(fireID string) []wire.Result {
	var rs []wire.Result
	sizes := []int{500, 500, 200}
	for i, n := range sizes {
		rs = append(rs, wire.Result{Platform: push.IOS, Seq: uint32(i), Generation: f.m.Generation, FireID: fireID,
			Kind: wire.KindFire, Tokens: n, Accepted: n})
	}
	for i, n := range []int{250, 150} {
		rs = append(rs, wire.Result{Platform: push.Android, Seq: uint32(i), Generation: f.m.Generation, FireID: fireID,
			Kind: wire.KindFire, Tokens: n, Accepted: n - 2, Invalid: 2, Reasons: map[string]int{"UNREGISTERED": 2}})
	}
	return rs
}

// counter reads a counter of the fixture's registry (-1 when absent).
func (f *fixture) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	if v, ok := testenv.Metric(t, f.reg, name, labels); ok {
		return v
	}
	return -1
}

// deadGuard is a guard on an address where no Redis listens.
func deadGuard(t *testing.T) *guard.Guard {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 300 * time.Millisecond, MaxRetries: 0})
	t.Cleanup(func() { _ = rdb.Close() })
	return guard.New(rdb, "dead", nil)
}
