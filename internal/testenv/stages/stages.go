// Package stages runs owlpost's real stages in-process for integration
// tests: an audience on its own topic planned by the real planner, and the
// planner service, a fanout instance with an iOS and an Android sender until
// the test ends. The
// push simulator (testenv.PushSim) is the only stand-in behind them. It is
// imported by tests only (the control API's and the console's).
package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/fanout"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/planner"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/sender"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// Audience creates topic (two partitions, removed at cleanup) and fills it
// with nIOS iOS and nAndroid Android devices in five locales.
func Audience(t testing.TB, ctx context.Context, cfg *config.Config, cl *kgo.Client, topic string, nIOS, nAndroid int) {
	t.Helper()
	adm := testenv.Admin(t, cfg)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.DeleteTopics(t, cfg, topic) })
	locales := []string{"en-US", "de-DE", "es-MX", "pt-BR", "fr-FR"}
	var recs []*kgo.Record
	for i := range nIOS + nAndroid {
		r := wire.AudienceRecord{UserID: fmt.Sprintf("u%d", i), Platform: push.IOS, Locale: locales[i%len(locales)]}
		if i < nIOS {
			r.Token = fmt.Sprintf("%064x", i+1)
		} else {
			r.Platform = push.Android
			r.Token = fmt.Sprintf("fcm%06d:APA91b%s", i, strings.Repeat("x", 140))
		}
		b, _ := json.Marshal(r)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(r.UserID), Value: b})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// Plan plans the defined campaign id with the real planner.
func Plan(t testing.TB, ctx context.Context, cfg *config.Config, id, by string) *wire.Manifest {
	t.Helper()
	pl, err := planner.New(cfg, planner.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	m, err := pl.Plan(ctx, id, by, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// Start runs the planner service, a fanout instance and both senders (cfg's
// APNs and FCM settings, usually testenv.PushSim's) until the test ends;
// warnings go to the test log, and a stage whose Run fails fails the test.
func Start(t testing.TB, cfg *config.Config, g *guard.Guard) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	run := func(name string, r func(context.Context) error, closeFn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s: Run: %v", name, err)
			}
			_ = closeFn()
		}()
	}
	pcfg := *cfg
	pcfg.InstanceID = "planner-e2e"
	pl, err := planner.New(&pcfg, planner.Deps{Log: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	run("planner", pl.Run, pl.Close)
	fcfg := *cfg
	fcfg.InstanceID = "fanout-e2e"
	fo, err := fanout.New(&fcfg, fanout.Deps{Log: log, Registry: prometheus.NewRegistry(), Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	run("fanout", fo.Run, fo.Close)
	for _, plat := range []push.Platform{push.IOS, push.Android} {
		c := *cfg
		c.Sender.Platform = string(plat)
		c.InstanceID = "sender-" + string(plat)
		adapter, err := sender.NewPush(&c)
		if err != nil {
			t.Fatal(err)
		}
		st, err := sender.New(&c, sender.Deps{Registry: prometheus.NewRegistry(), Log: log, Guard: g, Push: adapter})
		if err != nil {
			t.Fatal(err)
		}
		run("sender "+string(plat), st.Run, func() error { _ = st.Close(); return adapter.Close() })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}
