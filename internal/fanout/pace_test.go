package fanout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestReleasePace: with fanout.release_pace every release transaction holds
// one batch: each partition's markers count up one by one (without it the
// chunks double: 1, 3, 7, ...), and every batch is still released once.
func TestReleasePace(t *testing.T) {
	e := newEnv(t)
	e.cfg.Fanout.ReleasePace = 20 * time.Millisecond
	tp := makePlan("paced", 1, e.cfg.Topics.BatchesPartitions, 16, 8, 3)
	e.writePlan(t, tp)
	e.startStage(t, "fanout-a")
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "paced"})
	e.waitStatus(t, time.Minute, "paced", "fanout-a", ready(24))
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, won, err := e.guard.Fire(context.Background(), "paced", guard.FireRecord{FireID: "F1", By: "alice", At: now, Deadline: now.Add(time.Hour)}); err != nil || !won {
		t.Fatal(won, err)
	}
	fire := e.control(t, wire.Control{Type: wire.ControlFire, Campaign: "paced", FireID: "F1", By: "alice", At: now, Deadline: now.Add(time.Hour)})
	e.waitStatus(t, time.Minute, "paced", "fanout-a", func(s wire.Status) error {
		if s.State != wire.StateReleased || s.Released != 24 {
			return errors.New("want released 24")
		}
		return nil
	})
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), fire)
	last := map[int32]uint32{}
	for _, r := range e.statusLog(t) {
		c, f, p, ok := ParseMarkerKey(string(r.Key))
		if !ok || c != "paced" || f != "F1" {
			continue
		}
		m, err := parseMarker(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if m.released != last[p]+1 {
			t.Errorf("partition %d: marker went from %d to %d released: a transaction of more than one batch", p, last[p], m.released)
		}
		last[p] = m.released
	}
	for p := range e.cfg.Topics.BatchesPartitions {
		if last[p] != tp.m.PerPartition[p].Batches {
			t.Errorf("partition %d: last marker %d, %d batches", p, last[p], tp.m.PerPartition[p].Batches)
		}
	}
}
