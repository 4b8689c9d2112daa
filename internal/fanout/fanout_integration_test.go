package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
	"github.com/twmb/franz-go/pkg/kadm"
)

func ready(want uint32) func(wire.Status) error {
	return func(st wire.Status) error {
		if st.State != wire.StateReady || !st.ManifestMatch || st.Batches != want {
			return fmt.Errorf("want ready with %d batches and manifest match", want)
		}
		return nil
	}
}

func inState(state wire.State) func(wire.Status) error {
	return func(st wire.Status) error {
		if st.State != state {
			return fmt.Errorf("want state %s", state)
		}
		return nil
	}
}

// TestPrepareAndFire: prepare reports ready with the manifest matched
// (counts and, as one instance holds every partition, the checksum); a
// trigger with a non-winning fire id is ignored; the winner's trigger,
// published twice, releases every batch exactly once with the fire headers.
func TestPrepareAndFire(t *testing.T) {
	e := newEnv(t)
	tp := makePlan("camp", 1, e.cfg.Topics.BatchesPartitions, 10, 6, 5)
	e.writePlan(t, tp)
	st := e.startStage(t, "fanout-a")
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "camp"})
	s := e.waitStatus(t, time.Minute, "camp", "fanout-a", ready(16))
	if s.Tokens != 80 || len(s.Partitions) != int(e.cfg.Topics.BatchesPartitions) || s.Generation != 1 {
		t.Fatalf("ready status %+v", s)
	}
	st.mu.Lock()
	sum := st.camps["camp"].sumState
	st.mu.Unlock()
	if sum != sumOK {
		t.Fatalf("checksum state %d, want verified", sum)
	}
	if err := st.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := value(st.m.tokensHeld.WithLabelValues("camp")); got != 80 {
		t.Fatalf("tokens_held %v", got)
	}
	// Before GO every partition producer knows the topics a release writes
	// to (primeProducer), and priming wrote nothing, not even an aborted
	// transaction's marker, to the send topics.
	st.mu.Lock()
	for id, p := range st.parts {
		for _, topic := range []string{e.cfg.Topics.SendIOS, e.cfg.Topics.SendAndroid, e.cfg.Topics.Status} {
			if leader, _, err := p.prod.PartitionLeader(topic, 0); leader < 0 {
				t.Errorf("partition %d: producer has no metadata of %s before GO (%v)", id, topic, err)
			}
		}
	}
	st.mu.Unlock()
	adm := testenv.Admin(t, e.cfg)
	for _, topic := range []string{e.cfg.Topics.SendIOS, e.cfg.Topics.SendAndroid} {
		ends, err := adm.ListEndOffsets(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil || o.Offset != 0 {
				t.Errorf("%s/%d before GO: end offset %d (%v), want 0", topic, o.Partition, o.Offset, o.Err)
			}
		})
	}

	// Redis says F1 won; a trigger naming another fire id must be ignored.
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, won, err := e.guard.Fire(context.Background(), "camp", guard.FireRecord{FireID: "F1", By: "alice", At: now, Deadline: now.Add(time.Hour)}); err != nil || !won {
		t.Fatal(won, err)
	}
	e.control(t, wire.Control{Type: wire.ControlFire, Campaign: "camp", FireID: "F-forged", At: now})
	ctlFire := wire.Control{Type: wire.ControlFire, Campaign: "camp", FireID: "F1", By: "alice", At: now, Deadline: now.Add(time.Hour)}
	e.control(t, ctlFire)
	e.control(t, ctlFire) // a later press re-publishes the winner

	e.waitStatus(t, time.Minute, "camp", "fanout-a", func(s wire.Status) error {
		if s.State != wire.StateReleased || s.Released != 16 {
			return errors.New("want released 16")
		}
		return nil
	})
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), ctlFire)
	if n := value(st.m.ignored.WithLabelValues(IgnoredNotWinner)); n != 1 {
		t.Errorf("not_winner ignored %v, want 1", n)
	}
	if n := value(st.m.ignored.WithLabelValues(IgnoredDuplicate)); n != 1 {
		t.Errorf("duplicate ignored %v, want 1", n)
	}
	if n := value(st.m.batchesRel.WithLabelValues("ios", wire.KindFire)); n != 10 {
		t.Errorf("ios batches released %v", n)
	}
	if n := value(st.m.tokensRel.WithLabelValues("android", wire.KindFire)); n != 30 {
		t.Errorf("android tokens released %v", n)
	}
	if got := value(st.m.heldBytes); got != 0 {
		t.Errorf("held_bytes after release %v, want 0 (batches dropped)", got)
	}
	// The progress markers are committed and say released.
	sts := e.statuses(t)
	for p := range e.cfg.Topics.BatchesPartitions {
		m, ok := sts[MarkerKey("camp", "F1", p)]
		if !ok || m.State != wire.StateReleased || m.Released != tp.m.PerPartition[p].Batches {
			t.Errorf("marker of partition %d: %+v %v", p, m, ok)
		}
	}

	// A restarted instance replays the control topic and releases nothing again.
	st2 := e.startStage(t, "fanout-b")
	e.waitStatus(t, time.Minute, "camp", "fanout-b", inState(wire.StateReleased))
	_ = st2
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), ctlFire)
}

// TestAbortBeforeFire: an aborted campaign is never released, whether the
// abort arrives as a control record or is only in the guard.
func TestAbortBeforeFire(t *testing.T) {
	e := newEnv(t)
	a := makePlan("ca", 1, e.cfg.Topics.BatchesPartitions, 4, 4, 2)
	b := makePlan("cb", 1, e.cfg.Topics.BatchesPartitions, 4, 4, 2)
	e.writePlan(t, a)
	e.writePlan(t, b)
	st := e.startStage(t, "fanout-a")
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "ca"})
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "cb"})
	e.waitStatus(t, time.Minute, "ca", "fanout-a", ready(8))
	e.waitStatus(t, time.Minute, "cb", "fanout-a", ready(8))

	// ca: the abort control record comes first, then a (winning) trigger.
	now := time.Now().UTC()
	if _, won, err := e.guard.Fire(context.Background(), "ca", guard.FireRecord{FireID: "Fa", At: now}); err != nil || !won {
		t.Fatal(won, err)
	}
	e.control(t, wire.Control{Type: wire.ControlAbort, Campaign: "ca"})
	e.waitStatus(t, time.Minute, "ca", "fanout-a", inState(wire.StateAborted))
	e.control(t, wire.Control{Type: wire.ControlFire, Campaign: "ca", FireID: "Fa", At: now})

	// cb: fired, then aborted in the guard only; the fanout checks it.
	if _, won, err := e.guard.Fire(context.Background(), "cb", guard.FireRecord{FireID: "Fb", At: now}); err != nil || !won {
		t.Fatal(won, err)
	}
	if _, err := e.guard.Abort(context.Background(), "cb", guard.AbortRecord{By: "bob", At: now}); err != nil {
		t.Fatal(err)
	}
	e.control(t, wire.Control{Type: wire.ControlFire, Campaign: "cb", FireID: "Fb", At: now})
	e.waitStatus(t, time.Minute, "cb", "fanout-a", inState(wire.StateAborted))

	waitMetric(t, func() float64 { return value(st.m.ignored.WithLabelValues(IgnoredAborted)) }, 2)
	if recs := e.sends(t); len(recs) != 0 {
		t.Fatalf("%d send tasks released for aborted campaigns", len(recs))
	}
	if got := value(st.m.heldBytes); got != 0 {
		t.Errorf("held_bytes after abort %v, want 0", got)
	}
}

func waitMetric(t *testing.T, get func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for get() < want {
		if time.Now().After(deadline) {
			t.Fatalf("metric %v, want %v", get(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProof: a proof sends only to the proof audience, with kind proof and
// the proof id, exactly once even if the request is seen twice.
func TestProof(t *testing.T) {
	e := newEnv(t)
	def := testenv.ExampleCampaign(t)
	def.ID = "proofcamp"
	if err := e.cat.PutCampaign(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	tp := makePlan("proofcamp", 1, e.cfg.Topics.BatchesPartitions, 3, 3, 2)
	e.writePlan(t, tp)
	e.startStage(t, "fanout-a")
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "proofcamp"})
	e.waitStatus(t, time.Minute, "proofcamp", "fanout-a", ready(6))

	p1 := e.control(t, wire.Control{Type: wire.ControlProof, Campaign: "proofcamp", FireID: "proof-1"})
	e.control(t, p1) // the same request twice
	e.control(t, wire.Control{Type: wire.ControlProof, Campaign: "proofcamp", FireID: "proof-2"})

	var recs []string
	wantTokens := map[string]string{}
	for _, d := range def.ProofAudience {
		tok := d.Token
		if d.Platform == "ios" {
			tok = strings.ToLower(tok)
		}
		wantTokens[tok] = d.Locale
	}
	const perProof = 2 // one iOS and one Android batch
	var got []string
	waitFor := func() error {
		all := e.sends(t)
		if len(all) < 2*perProof {
			return fmt.Errorf("%d send tasks", len(all))
		}
		recs, got = nil, nil
		for _, r := range all {
			f, err := wire.ParseFireHeaders(kafka.WireHeaders(r))
			if err != nil || f.Kind != wire.KindProof {
				t.Fatalf("send task %s: %+v %v (only proofs expected)", r.Key, f, err)
			}
			recs = append(recs, f.ID+" "+string(r.Key))
			b, err := wire.DecodeBatch(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, tk := range b.Tokens {
				if wantTokens[tk.Token] != b.Locales[tk.Locale] {
					t.Fatalf("token %s locale %s is not a proof device", tk.Token, b.Locales[tk.Locale])
				}
				got = append(got, tk.Token)
			}
		}
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for err := waitFor(); err != nil; err = waitFor() {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(recs) != 2*perProof || len(got) != 2*len(def.ProofAudience) {
		t.Fatalf("send tasks %v (tokens %d), want each proof once with %d devices", recs, len(got), len(def.ProofAudience))
	}
	for _, id := range []string{"proof-1", "proof-2"} {
		n := 0
		for _, r := range recs {
			if strings.HasPrefix(r, id+" ") {
				n++
			}
		}
		if n != perProof {
			t.Fatalf("%s released %d batches, want %d: %v", id, n, perProof, recs)
		}
	}
	// The fire was not affected: the campaign is still just prepared.
	e.waitStatus(t, time.Minute, "proofcamp", "fanout-a", ready(6))
}

// flakyGuard fails the first fails FireOf calls as an unreachable Redis would.
type flakyGuard struct {
	Guard
	mu    sync.Mutex
	fails int
	calls int
}

func (g *flakyGuard) FireOf(ctx context.Context, c string) (guard.FireRecord, bool, error) {
	g.mu.Lock()
	g.calls++
	fail := g.calls <= g.fails
	g.mu.Unlock()
	if fail {
		return guard.FireRecord{}, false, fmt.Errorf("%w: fire_get: connection refused", guard.ErrUnavailable)
	}
	return g.Guard.FireOf(ctx, c)
}

// TestFireWaitsForGuard: while Redis does not answer, the trigger is not
// acted on; once it answers, the fire is verified and released once.
func TestFireWaitsForGuard(t *testing.T) {
	e := newEnv(t)
	tp := makePlan("flaky", 1, e.cfg.Topics.BatchesPartitions, 4, 4, 3)
	e.writePlan(t, tp)
	g := &flakyGuard{Guard: e.guard, fails: 4}
	e.startStageWith(t, "fanout-a", g)
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "flaky"})
	e.waitStatus(t, time.Minute, "flaky", "fanout-a", ready(8))
	fire := e.fire(t, "flaky", "F-flaky")
	e.waitStatus(t, time.Minute, "flaky", "fanout-a", inState(wire.StateReleased))
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), fire)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls <= g.fails {
		t.Fatalf("released after %d guard calls, %d of which failed", g.calls, g.fails)
	}
}

// TestLaterFireAfterGuardLossNeverReleased: the campaign fired (F1, a
// verified record in the control log), then Redis lost the fire record and
// a later press won the emptied guard (W, published verified too). Neither
// the running instance nor one started afterwards (replaying the log)
// releases W: the first verified fire in the control log is the tie-breaker.
func TestLaterFireAfterGuardLossNeverReleased(t *testing.T) {
	e := newEnv(t)
	tp := makePlan("camp", 1, e.cfg.Topics.BatchesPartitions, 6, 4, 5)
	e.writePlan(t, tp)
	st := e.startStage(t, "fanout-a")
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "camp"})
	e.waitStatus(t, time.Minute, "camp", "fanout-a", ready(10))
	ctx := testenv.Context(t, 2*time.Minute)
	press := func(id string) wire.Control {
		now := time.Now().UTC().Truncate(time.Millisecond)
		rec := guard.FireRecord{FireID: id, By: "test", At: now, Deadline: now.Add(10 * time.Minute)}
		if _, won, err := e.guard.Fire(ctx, "camp", rec); err != nil || !won {
			t.Fatalf("guard fire %s: won=%v %v", id, won, err)
		}
		return e.control(t, wire.Control{Type: wire.ControlFire, Campaign: "camp", FireID: id, At: now, Deadline: rec.Deadline, Verified: true})
	}
	f1 := press("F1")
	e.waitStatus(t, time.Minute, "camp", "fanout-a", inState(wire.StateReleased))
	testenv.FlushRedis(t, e.cfg)
	press("W")
	st2 := e.startStage(t, "fanout-b")
	deadline := time.Now().Add(time.Minute)
	for value(st2.m.ignored.WithLabelValues(IgnoredNotWinner)) < 2 || value(st.m.ignored.WithLabelValues(IgnoredNotWinner)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not_winner: restarted instance %v (want 2: F1 refuted by the guard's W, W not the first verified fire), running instance %v (want 1)",
				value(st2.m.ignored.WithLabelValues(IgnoredNotWinner)), value(st.m.ignored.WithLabelValues(IgnoredNotWinner)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), f1)
}
