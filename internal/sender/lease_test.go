package sender

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// A lease that expired without anyone else taking the batch is claimed again
// (a slow process must not drop a batch nobody else completes); a lease
// another sender holds now is lost.
func TestLeaseRegain(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Sender.ClaimLease = time.Second
	g := guard.New(testenv.Redis(t, cfg), cfg.Redis.Prefix, nil)
	m, err := newStageMetrics(prometheus.NewRegistry(), "ios")
	if err != nil {
		t.Fatal(err)
	}
	s := &Stage{cfg: cfg, guard: g, log: slog.New(slog.DiscardHandler), m: m}
	ctx := context.Background()
	fire := wire.Fire{ID: "f1"}
	ack := func(run *batchRun) func() error {
		return func() error { return g.Ack(ctx, run.key, fire.ID, run.owner, []byte{1}) }
	}

	tests := []struct {
		name     string
		other    string // another owner claiming after our lease expired ("" = nobody)
		wantLost bool
	}{
		{"expired, nobody else", "", false},
		{"expired, taken over", "other-sender", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "c/ios/00000" + string(rune('0'+i))
			run := &batchRun{s: s, fire: fire, key: key, owner: "me"}
			if st, err := g.Claim(ctx, key, fire.ID, "me", 200*time.Millisecond); err != nil || st != guard.ClaimOK {
				t.Fatalf("claim: %v %v", st, err)
			}
			time.Sleep(300 * time.Millisecond) // the lease expires unrenewed
			if tt.other != "" {
				if st, err := g.Claim(ctx, key, fire.ID, tt.other, time.Minute); err != nil || st != guard.ClaimTakeover {
					t.Fatalf("other claim: %v %v", st, err)
				}
			}
			err := run.guarded(ctx, "ack", ack(run))
			if lost := errors.Is(err, guard.ErrLeaseLost); lost != tt.wantLost || (!lost && err != nil) {
				t.Fatalf("guarded = %v, want lost=%v", err, tt.wantLost)
			}
			if run.lost != tt.wantLost {
				t.Fatalf("run.lost = %v", run.lost)
			}
			if !tt.wantLost {
				if err := run.done(ctx); err != nil {
					t.Fatalf("done after regaining: %v", err)
				}
				if st, _ := g.Claim(ctx, key, fire.ID, "someone", time.Second); st != guard.ClaimDone {
					t.Fatalf("after done, claim = %v", st)
				}
			}
		})
	}
}
