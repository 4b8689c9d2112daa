package sender_test

import (
	"context"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestShutdownHandsBack: a sender stopped (SIGTERM) while a batch cannot
// finish (the provider answers 503 to everything) gives it up after its
// drain grace and releases the claim: a peer takes it over at once, long
// before the one-minute lease would have let it.
func TestShutdownHandsBack(t *testing.T) {
	e := newEnv(t, nil)
	e.cfg.Sender.ClaimLease = time.Minute
	st := e.startStage(t, push.IOS, nil)
	e.sim.SetFaults(pushsim.Faults{APNsRates: map[string]float64{"ServiceUnavailable": 1}})

	id := "handback-" + testenv.ID()
	e.putCampaign(t, id)
	b := makeBatches(id, push.IOS, 1, 5, nil)[0]
	fire := newFire(10 * time.Minute)
	e.produceBatches(t, fire, []*wire.Batch{b})
	waitFor(t, time.Minute, "the batch retried", func() bool {
		return counter(t, st.reg, "owlpost_sender_retries_total", nil) > 0
	})

	stopped := time.Now()
	if err := st.stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stage stopped %s after the cancel", time.Since(stopped).Round(time.Millisecond))
	if n := counter(t, st.reg, "owlpost_sender_batches_total", map[string]string{"result": "interrupted"}); n != 1 {
		t.Errorf("interrupted batches: %v, want 1", n)
	}
	ctx := context.Background()
	got, err := e.g.Claim(ctx, b.Key(), fire.ID, "peer", time.Minute)
	if err != nil || got != guard.ClaimTakeover {
		t.Fatalf("a peer's claim right after the shutdown: %v %v, want takeover (the claim handed back)", got, err)
	}
	if st := e.sim.Stats(id); st.Accepted != 0 {
		t.Errorf("the provider accepted although it refused everything: %s", describe(st))
	}
}
