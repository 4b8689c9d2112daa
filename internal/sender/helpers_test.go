package sender_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/sender"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

const (
	simKeyID   = testenv.SimKeyID
	simTeamID  = testenv.SimTeamID
	simProject = testenv.SimProject
	simTopic   = testenv.SimTopic
)

// env is one test's Kafka topics, Redis prefix and push simulator, with the
// config pointing the real adapters at the simulator through files (as an
// operator would), so the config mapping is exercised too.
type env struct {
	cfg  *config.Config
	sim  *pushsim.Server
	prod *kgo.Client
	cat  *catalog.Catalog
	rdb  *redis.Client
	g    *guard.Guard
}

func newEnv(t testing.TB, simCfg func(*pushsim.Config)) *env {
	t.Helper()
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	cfg.Sender.ClaimLease = 2 * time.Second
	cfg.Sender.RetryBase = 20 * time.Millisecond
	cfg.Sender.RetryMax = 200 * time.Millisecond

	sim := testenv.PushSim(t, cfg, simCfg)

	e := &env{cfg: cfg, sim: sim, prod: testenv.Client(t, cfg), rdb: testenv.Redis(t, cfg)}
	var err error
	if e.cat, err = catalog.New(cfg, e.prod); err != nil {
		t.Fatal(err)
	}
	e.g = guard.New(e.rdb, cfg.Redis.Prefix, nil)
	return e
}

// stage is a running sender stage.
type stage struct {
	*sender.Stage
	reg  *prometheus.Registry
	errc chan error
	stop func() error // cancels Run (SIGTERM) and returns its error; once
}

// startStage runs a stage for platform with guard g (the env's when nil) and
// waits until it is ready.
func (e *env) startStage(t testing.TB, platform push.Platform, g *guard.Guard) *stage {
	t.Helper()
	c := *e.cfg
	c.Sender.Platform = string(platform)
	if g == nil {
		g = e.g
	}
	adapter, err := sender.NewPush(&c)
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := sender.New(&c, sender.Deps{Registry: reg, Log: log, Guard: g, Push: adapter})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stage{Stage: st, reg: reg, errc: make(chan error, 1)}
	go func() { s.errc <- st.Run(ctx) }()
	s.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-s.errc:
			return err
		case <-time.After(sender.ShutdownTimeout):
			return fmt.Errorf("%s stage did not stop within %s", platform, sender.ShutdownTimeout)
		}
	})
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("%s stage: Run: %v", platform, err)
		}
		_ = st.Close()
		_ = adapter.Close()
	})
	waitFor(t, 60*time.Second, platform+" stage ready", func() bool { return st.Ready() == nil })
	return s
}

// testWriter sends log lines to t.Log (visible with -v or on failure).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitFor[S ~string](t testing.TB, d time.Duration, what S, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// putCampaign stores a minimal valid two-locale campaign.
func (e *env) putCampaign(t testing.TB, id string) { t.Helper(); e.putCampaignWith(t, id, nil) }

// putCampaignWith stores the test campaign after mutate (if not nil) has
// changed it.
func (e *env) putCampaignWith(t testing.TB, id string, mutate func(*campaign.Campaign)) {
	t.Helper()
	c := &campaign.Campaign{
		ID: id, AudienceTopic: "audience.test", DefaultLocale: "en",
		Messages: map[string]campaign.Message{
			"en": {Title: "Game on", Body: "The ad is on now"},
			"de": {Title: "Los geht's", Body: "Die Werbung läuft"},
		},
		Deadline: campaign.Duration(10 * time.Minute),
	}
	c.ApplyDefaults()
	if mutate != nil {
		mutate(c)
	}
	if err := e.cat.PutCampaign(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func randHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// iosToken is a random APNs token, optionally starting with a simulator
// pattern such as "dead0410".
func iosToken(prefix string) string { return prefix + randHex(64-len(prefix)) }

// androidToken is a random FCM-shaped token, optionally containing a
// simulator pattern such as "UNREGISTERED".
func androidToken(marker string) string {
	s := "f" + randHex(20) + marker + ":APA91b" + randHex(140)
	return s[:152]
}

// makeBatches builds n batches of size tokens of platform; special(seq, i)
// may return a pattern for a token ("" for a plain one).
func makeBatches(campaignID string, p push.Platform, n, size int, special func(seq uint32, i int) string) []*wire.Batch {
	out := make([]*wire.Batch, n)
	for seq := range uint32(n) {
		b := &wire.Batch{Campaign: campaignID, Platform: p, Generation: 1, Seq: seq, Locales: []string{"en-US", "de-DE"}}
		for i := range size {
			var mark string
			if special != nil {
				mark = special(seq, i)
			}
			tok := iosToken(mark)
			if p == push.Android {
				tok = androidToken(mark)
			}
			b.Tokens = append(b.Tokens, wire.Token{Token: tok, Locale: uint16(i % 2)})
		}
		out[seq] = b
	}
	return out
}

// produceBatches writes batches to their send topic with fire headers, as
// the fanout does.
// deadHolder claims b for fire as a holder that stores answers (the value
// of guard.Ack) and dies: its one-second lease lets a sender take over.
func (e *env) deadHolder(t testing.TB, b *wire.Batch, fire wire.Fire, answers []byte) {
	t.Helper()
	ctx := context.Background()
	if st, err := e.g.Claim(ctx, b.Key(), fire.ID, "dead-holder", time.Second); err != nil || st != guard.ClaimOK {
		t.Fatalf("fake holder claim: %v %v", st, err)
	}
	if err := e.g.Ack(ctx, b.Key(), fire.ID, "dead-holder", answers); err != nil {
		t.Fatal(err)
	}
}

func (e *env) produceBatches(t testing.TB, fire wire.Fire, batches []*wire.Batch) {
	t.Helper()
	if err := e.prod.ProduceSync(context.Background(), e.sendRecords(t, fire, batches)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// sendRecords are the send-topic records of batches, as the fanout writes
// them. A fire is recorded as its campaigns' winner in the guard first, as
// the control service does before any send task exists (the first fire of
// a campaign wins; a later one is not verified and its tasks are dropped).
func (e *env) sendRecords(t testing.TB, fire wire.Fire, batches []*wire.Batch) []*kgo.Record {
	t.Helper()
	for _, b := range batches {
		if fire.Kind == wire.KindFire {
			rec := guard.FireRecord{FireID: fire.ID, By: "test", At: fire.FiredAt, Deadline: fire.Deadline}
			if _, _, err := e.g.Fire(context.Background(), b.Campaign, rec); err != nil && !errors.Is(err, guard.ErrAborted) {
				t.Fatal(err)
			}
		}
	}
	return e.taskRecords(t, fire, batches)
}

// taskRecords are the send-topic records of batches, without the guard.
func (e *env) taskRecords(t testing.TB, fire wire.Fire, batches []*wire.Batch) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for _, b := range batches {
		v, err := wire.EncodeBatch(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		topic := e.cfg.Topics.SendIOS
		if b.Platform == push.Android {
			topic = e.cfg.Topics.SendAndroid
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(b.Key()), Value: v, Headers: kafka.Headers(wire.FireHeaders(fire))})
	}
	return recs
}

// verifiedFire publishes fire's verified trigger record for campaign to the
// control log, as the control service does after the guard confirmed it.
func (e *env) verifiedFire(t testing.TB, campaign string, fire wire.Fire) {
	t.Helper()
	c := &wire.Control{Type: wire.ControlFire, Campaign: campaign, By: "test", At: fire.FiredAt, FireID: fire.ID,
		Deadline: fire.Deadline, Verified: true}
	b, err := wire.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.prod.ProduceSync(context.Background(), &kgo.Record{Topic: e.cfg.Topics.Control, Key: []byte(campaign), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func newFire(deadline time.Duration) wire.Fire {
	now := time.Now()
	return wire.Fire{ID: "fire-" + testenv.ID(), Kind: wire.KindFire, FiredAt: now, Deadline: now.Add(deadline)}
}

// reader consumes a topic from the start, for assertions.
type reader struct {
	cl *kgo.Client
}

func (e *env) reader(t testing.TB, topic string) *reader {
	return &reader{cl: testenv.Client(t, e.cfg, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))}
}

// next returns records until n matched keep or d passed.
func (r *reader) next(t testing.TB, n int, d time.Duration, keep func(*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("consume %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(rec *kgo.Record) {
			if keep == nil || keep(rec) {
				out = append(out, rec)
			}
		})
	}
	return out
}

// results reads n result records of campaignID (fails the test on timeout).
func (e *env) results(t testing.TB, r *reader, campaignID string, n int) []wire.Result {
	t.Helper()
	var out []wire.Result
	for _, rec := range r.next(t, n, 60*time.Second, nil) {
		var res wire.Result
		if err := wire.Decode(rec.Value, &res); err != nil {
			t.Fatalf("result %s: %v", rec.Key, err)
		}
		if res.Campaign != campaignID {
			t.Fatalf("result of campaign %s while waiting for %s", res.Campaign, campaignID)
		}
		if string(rec.Key) != wire.BatchKey(res.Campaign, res.Platform, res.Seq) {
			t.Errorf("result key %s does not match its batch", rec.Key)
		}
		out = append(out, res)
	}
	if len(out) != n {
		t.Fatalf("got %d results of %s, want %d", len(out), campaignID, n)
	}
	return out
}

// sum adds up results.
func sum(rs []wire.Result) (total wire.Result) {
	total.Reasons = map[string]int{}
	for _, r := range rs {
		total.Tokens += r.Tokens
		total.Accepted += r.Accepted
		total.Invalid += r.Invalid
		total.Failed += r.Failed
		total.Expired += r.Expired
		total.Aborted += r.Aborted
		total.Retries += r.Retries
		total.Resent += r.Resent
		total.AcceptedMS = append(total.AcceptedMS, r.AcceptedMS...)
		for k, v := range r.Reasons {
			total.Reasons[k] += v
		}
	}
	return total
}

// counter reads a counter of reg by name and label values.
// counter returns a counter's or gauge's value, or a histogram's count (0
// when absent).
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := testenv.Metric(t, reg, name, labels)
	return v
}

func describe(s pushsim.Stats) string {
	return fmt.Sprintf("accepted=%d distinct=%d dup=%d rejected=%v", s.Accepted, s.DistinctTokens, s.DuplicateDeliveries, s.RejectedByReason)
}
