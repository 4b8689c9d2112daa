package control_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/testenv/stages"
	"github.com/owlpost/owlpost/internal/wire"
)

// pipeline is the whole stack in-process: planner, one fanout instance, an
// iOS and an Android sender, the push simulator, and the control Service.
type pipeline struct {
	*fixture
	sim *pushsim.Server
}

func newPipeline(t *testing.T, latency time.Duration, tune func(*config.Config)) *pipeline {
	t.Helper()
	f := newFixture(t)
	cfg := f.cfg
	sim := testenv.PushSim(t, cfg, func(c *pushsim.Config) { c.Latency = latency })
	cfg.APNs.Connections, cfg.FCM.Clients = 1, 1
	cfg.Sender.ClaimLease = 5 * time.Second
	if tune != nil {
		tune(cfg)
	}
	return &pipeline{fixture: f, sim: sim}
}

// plan defines the campaign on a fresh audience topic of nIOS + nAndroid
// devices and plans it with the real planner.
func (p *pipeline) plan(t *testing.T, nIOS, nAndroid int) *wire.Manifest {
	t.Helper()
	def := *p.def
	def.AudienceTopic = p.cfg.Topics.Campaigns + ".audience"
	p.def = &def
	if err := p.cat.PutCampaign(p.ctx, p.def); err != nil {
		t.Fatal(err)
	}
	stages.Audience(t, p.ctx, p.cfg, p.cl, def.AudienceTopic, nIOS, nAndroid)
	p.m = stages.Plan(t, p.ctx, p.cfg, def.ID, "e2e")
	return p.m
}

// start runs a fanout instance and both senders until the test ends.
func (p *pipeline) start(t *testing.T) { stages.Start(t, p.cfg, p.g) }

// waitStatus polls Status until ok accepts it.
func (p *pipeline) waitStatus(t *testing.T, d time.Duration, what string, ok func(*control.CampaignStatus) bool) *control.CampaignStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	var last *control.CampaignStatus
	for time.Now().Before(deadline) {
		st, err := p.svc.Status(p.ctx, p.def.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		last = st
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last status: state %s reasons %v progress %+v errors %v",
		d, what, last.State, last.Reasons, last.Progress, last.Errors)
	return nil
}

func TestEndToEndFiftyPressesEachTokenOnce(t *testing.T) {
	p := newPipeline(t, 0, nil)
	m := p.plan(t, 1200, 600)
	p.start(t)
	if err := p.svc.Prepare(p.ctx, p.def.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, 2*time.Minute, "ready to fire", func(st *control.CampaignStatus) bool { return st.ReadyToFire })

	// Proof first: only the proof devices, never the fire.
	pid, err := p.svc.Proof(p.ctx, p.def.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	rep, err := p.svc.WaitProof(pctx, p.def.ID, pid)
	cancel()
	if err != nil {
		t.Fatalf("proof: %v (report %+v)", err, rep)
	}
	for _, d := range rep.Devices {
		if d.Outcome != control.ProofAccepted || d.Title == "" {
			t.Errorf("proof device %s: %+v", d.Name, d)
		}
	}
	if got := p.sim.Stats(p.def.ID).Accepted; got != int64(len(p.def.ProofAudience)) {
		t.Fatalf("the proof sent %d notifications, want %d", got, len(p.def.ProofAudience))
	}
	p.sim.Reset()

	const presses = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, ids := 0, map[string]bool{}
	for i := range presses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := p.svc.Fire(p.ctx, p.def.ID, fmt.Sprintf("marketer-%d", i), false)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("press %d: %v", i, err)
				return
			}
			if out.Won {
				won++
			}
			ids[out.Fire.FireID] = true
		}()
	}
	wg.Wait()
	if won != 1 || len(ids) != 1 {
		t.Fatalf("want one fire, got won=%d ids=%v", won, ids)
	}
	st := p.waitStatus(t, 3*time.Minute, "done", func(st *control.CampaignStatus) bool { return st.State == control.StateDone })
	stats := p.sim.Stats(p.def.ID)
	total := int64(m.Tokens())
	if stats.Accepted != total || stats.DistinctTokens != total || stats.DuplicateDeliveries != 0 {
		t.Fatalf("simulator: accepted %d distinct %d duplicates %d, want each of %d tokens exactly once",
			stats.Accepted, stats.DistinctTokens, stats.DuplicateDeliveries, total)
	}
	if st.Progress.Accepted != int(total) || st.Progress.TokensDone != int(total) {
		t.Fatalf("progress %+v, want %d accepted", st.Progress, total)
	}
	// A press after completion is refused with the winner and sends nothing.
	out, err := p.svc.Fire(p.ctx, p.def.ID, "late", true)
	if err != nil || out.Won {
		t.Fatalf("late press: %+v %v", out, err)
	}
	time.Sleep(time.Second) // give a wrongly released second fire a chance to show (not a timing assertion)
	if again := p.sim.Stats(p.def.ID); again.Accepted != total {
		t.Fatalf("a late press sent again: %d accepted", again.Accepted)
	}
}

func TestEndToEndAbortMidSend(t *testing.T) {
	// Slow provider, small batches, one batch at a time: the send takes
	// many round trips, so the abort lands in the middle.
	p := newPipeline(t, 300*time.Millisecond, func(c *config.Config) {
		c.Planner.IOSBatchSize, c.Planner.AndroidBatchSize = 20, 20
		c.Sender.BatchesInFlight = 1
	})
	m := p.plan(t, 400, 400)
	p.start(t)
	if err := p.svc.Prepare(p.ctx, p.def.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, 2*time.Minute, "ready to fire", func(st *control.CampaignStatus) bool { return st.ReadyToFire })
	if out, err := p.svc.Fire(p.ctx, p.def.ID, "alice", false); err != nil || !out.Won {
		t.Fatal(out, err)
	}
	p.waitStatus(t, time.Minute, "first results", func(st *control.CampaignStatus) bool {
		return st.Progress != nil && st.Progress.Accepted > 0
	})
	if _, err := p.svc.Abort(p.ctx, p.def.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	atAbort := p.sim.Stats(p.def.ID).Accepted
	st := p.waitStatus(t, 3*time.Minute, "every batch accounted for", func(st *control.CampaignStatus) bool {
		return st.Progress != nil && st.Progress.BatchesDone == int(m.Batches())
	})
	pr := st.Progress
	stats := p.sim.Stats(p.def.ID)
	t.Logf("at abort the simulator had %d; finally %d accepted, progress %+v", atAbort, stats.Accepted, pr)
	if st.State != control.StateAborted || pr.Aborted == 0 || pr.Accepted+pr.Aborted+pr.Expired+pr.Failed+pr.Invalid != int(m.Tokens()) {
		t.Fatalf("want aborted with the unsent tokens counted as aborted, got state %s progress %+v", st.State, pr)
	}
	if stats.Accepted != int64(pr.Accepted) || stats.DuplicateDeliveries != 0 {
		t.Fatalf("simulator accepted %d (dups %d), results say %d", stats.Accepted, stats.DuplicateDeliveries, pr.Accepted)
	}
	if out, err := p.svc.Fire(p.ctx, p.def.ID, "carol", true); err == nil || out.Won {
		t.Fatalf("fire after abort: %+v %v", out, err)
	}
}
