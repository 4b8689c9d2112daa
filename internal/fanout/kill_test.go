package fanout

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/kafka"
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
	interruptMidRelease(t, "F-kill", (*e2e.Proc).Kill)
}

// TestStopMidRelease is TestKillMidRelease with SIGTERM: the victim finishes
// the release transaction in flight on each of its partitions, leaves the
// group at once (no session timeout) and exits 0; the survivor goes on from
// the progress markers. Nothing was abandoned: the send topics read
// read_uncommitted hold exactly the committed send tasks, so no transaction
// of the victim was aborted (a kill leaves its open transactions to be
// aborted by the survivor's fencing).
func TestStopMidRelease(t *testing.T) {
	e, victim := interruptMidRelease(t, "F-stop", (*e2e.Proc).Stop)
	if err := victim.Err(); err != nil {
		t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", victim.Name, err, victim.Tail(20))
	}
	if out := victim.Output(); !strings.Contains(out, "fanout: partitions revoked") {
		t.Errorf("%s never handed its partitions back:\n%s", victim.Name, victim.Tail(20))
	}
	committed := len(e.sends(t))
	all := 0
	for _, topic := range []string{e.cfg.Topics.SendIOS, e.cfg.Topics.SendAndroid} {
		all += countUncommitted(t, e, topic)
	}
	if all != committed {
		t.Errorf("the send topics hold %d send tasks read_uncommitted, %d committed: a transaction was aborted, not finished", all, committed)
	}
}

// interruptMidRelease runs two fanout processes holding two partitions
// each, fires, and as soon as the first send tasks are committed stops
// fanout-1 with stop. It checks every batch is released exactly once and
// that the interruption landed mid-release (a partition the victim left
// partial and the survivor finished), and returns the env and the victim.
func interruptMidRelease(t *testing.T, fireID string, stop func(*e2e.Proc)) (*env, *e2e.Proc) {
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
	fire := e.fire(t, campaign, fireID)
	ctx := testenv.Context(t, time.Minute)
	// Stop once a few chunks are committed: the victim is then typically
	// inside a transaction on each of its partitions.
	for seen := 0; seen < 100; {
		fs := watch.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("only %d send tasks committed within a minute of the fire", seen)
		}
		seen += fs.NumRecords()
	}
	stoppedAt := time.Now()
	stop(procs[victim])
	t.Logf("stopped %s (partitions %v) once the first send tasks were visible; it exited after %s",
		victim, owned[victim], time.Since(stoppedAt).Round(time.Millisecond))

	e.waitStatus(t, 2*time.Minute, campaign, survivor, func(s wire.Status) error {
		if s.State != wire.StateReleased || len(s.Partitions) != int(e.cfg.Topics.BatchesPartitions) || s.Released != total {
			return errors.New("survivor has not released every partition yet")
		}
		return nil
	})
	t.Logf("survivor finished %s after the stop signal", time.Since(stoppedAt).Round(time.Millisecond))
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
		t.Fatalf("the stop did not land mid-release (marker history %v): make the plan bigger", h)
	}
	return e, procs[victim]
}

// countUncommitted counts the data records of a topic read read_uncommitted
// (aborted transactions' records included) up to its end now.
func countUncommitted(t *testing.T, e *env, topic string) int {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	ends, err := kafka.SnapshotEnds(ctx, testenv.Admin(t, e.cfg), topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			offsets[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(offsets) == 0 {
		return 0
	}
	cl := testenv.Client(t, e.cfg, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())
	n := 0
	for len(offsets) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read_uncommitted did not reach the end offsets %v within a minute", topic, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				n++
			}
			if r.Offset >= ends[r.Partition]-1 {
				delete(offsets, r.Partition)
			}
		})
	}
	return n
}
