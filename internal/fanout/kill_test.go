package fanout

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestKillMidRelease runs two fanout PROCESSES, fires, SIGKILLs one as soon
// as the first send tasks are committed, and checks that the survivor takes
// over the victim's partitions and that every batch is on the send topics
// exactly once. It also checks, from the progress-marker history, that the
// kill did land mid-release: some partition has a partial marker written by
// the victim and its final marker written by the survivor.
func TestKillMidRelease(t *testing.T) {
	e := newEnv(t)
	const campaign = "big"
	// Many small batches: the release takes long enough to be interrupted.
	tp := makePlan(campaign, 1, e.cfg.Topics.BatchesPartitions, 12000, 6000, 2)
	e.writePlan(t, tp)
	total := uint32(len(tp.records))

	bin := filepath.Join(e2e.Build(t, "./cmd/fanout"), "fanout")
	cfgFile := e2e.ConfigFile(t, e.cfg)
	start := func(name string) *e2e.Proc {
		return e2e.Start(t, e2e.Spec{Name: name, Binary: bin, Config: cfgFile,
			Env: []string{e2e.Env("instance_id", name), e2e.Env("metrics.addr", e2e.FreeAddr(t))}})
	}
	procs := map[string]*e2e.Proc{"fanout-1": start("fanout-1"), "fanout-2": start("fanout-2")}

	// Both members hold two partitions each before the prepare.
	owned := map[string][]int32{}
	e2e.WaitFor(t, 2*time.Minute, func() error {
		sts := e.statuses(t)
		var all []int32
		for name := range procs {
			st, ok := sts[wire.StatusKey("", wire.RoleFanout, name)]
			if !ok || st.State != wire.StateReady || len(st.Partitions) == 0 {
				return fmt.Errorf("%s: %+v", name, st)
			}
			owned[name] = st.Partitions
			all = append(all, st.Partitions...)
		}
		slices.Sort(all)
		if len(all) != int(e.cfg.Topics.BatchesPartitions) || len(slices.Compact(all)) != len(all) {
			return fmt.Errorf("partitions not split yet: %v", owned)
		}
		return nil
	})
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: campaign})
	var held uint32
	for name := range procs {
		st := e.waitStatus(t, 2*time.Minute, campaign, name, func(s wire.Status) error {
			if s.State != wire.StateReady || !s.ManifestMatch || len(s.Partitions) != len(owned[name]) {
				return errors.New("not ready")
			}
			return nil
		})
		held += st.Batches
	}
	if held != total {
		t.Fatalf("instances hold %d batches, plan has %d", held, total)
	}

	victim, survivor := "fanout-1", "fanout-2"
	watch := testenv.Client(t, e.cfg, kgo.ConsumeTopics(e.cfg.Topics.SendIOS, e.cfg.Topics.SendAndroid),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(50*time.Millisecond))
	fire := e.fire(t, campaign, "F-kill")
	ctx := testenv.Context(t, time.Minute)
	// Kill once a few chunks are committed: the victim is then typically
	// inside a transaction on each of its partitions.
	for seen := 0; seen < 100; {
		fs := watch.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("only %d send tasks committed within a minute of the fire", seen)
		}
		seen += fs.NumRecords()
	}
	procs[victim].Kill()
	t.Logf("killed %s (partitions %v) once the first send tasks were visible", victim, owned[victim])
	killedAt := time.Now()

	e.waitStatus(t, 2*time.Minute, campaign, survivor, func(s wire.Status) error {
		if s.State != wire.StateReleased || len(s.Partitions) != int(e.cfg.Topics.BatchesPartitions) || s.Released != total {
			return errors.New("survivor has not released every partition yet")
		}
		return nil
	})
	t.Logf("survivor finished %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), fire)

	// Marker history: find a victim partition that the victim left partial
	// and the survivor finished.
	type hist struct {
		victimMax uint32
		final     marker
	}
	h := map[int32]*hist{}
	for _, r := range e.statusLog(t) {
		c, f, p, ok := ParseMarkerKey(string(r.Key))
		if !ok || c != campaign || f != fire.FireID {
			continue
		}
		m, err := parseMarker(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if h[p] == nil {
			h[p] = &hist{}
		}
		if m.instance == victim {
			h[p].victimMax = max(h[p].victimMax, m.released)
		}
		h[p].final = m
	}
	takeovers := 0
	for _, p := range owned[victim] {
		x := h[p]
		if x == nil {
			continue
		}
		t.Logf("partition %d: victim committed %d of %d batches, final marker by %s (%d)", p, x.victimMax, x.final.batches, x.final.instance, x.final.released)
		if x.victimMax < x.final.batches && x.final.instance == survivor && x.final.done() {
			takeovers++
		}
	}
	if takeovers == 0 {
		t.Fatalf("the kill did not land mid-release (marker history %v): make the plan bigger", h)
	}
}
