package sender_test

import (
	"context"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/sender"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

const (
	iosBatches, iosSize         = 20, 50
	androidBatches, androidSize = 20, 25
)

// patterns puts simulator patterns into a few batches: two retryable kinds
// and one invalid kind per platform, at fixed places.
func patterns(p push.Platform) func(seq uint32, i int) string {
	retry1, retry2, invalid := "dead0429", "dead0503", "dead0410"
	if p == push.Android {
		retry1, retry2, invalid = "QUOTA429", "UNAVAIL503", "UNREGISTERED"
	}
	return func(seq uint32, i int) string {
		switch {
		case seq%5 == 0 && i == 3:
			return retry1
		case seq%5 == 1 && i == 4:
			return retry2
		case seq%4 == 2 && i == 5:
			return invalid
		}
		return ""
	}
}

// countTokens counts the tokens carrying a simulator pattern: an APNs
// prefix or an FCM marker anywhere in the token.
func countTokens(bs []*wire.Batch, marker string) (n int, tokens map[string]bool) {
	tokens = map[string]bool{}
	for _, b := range bs {
		for _, tk := range b.Tokens {
			hit := strings.HasPrefix(tk.Token, marker)
			if b.Platform == push.Android {
				hit = strings.Contains(tk.Token, marker)
			}
			if hit {
				n++
				tokens[tk.Token] = true
			}
		}
	}
	return n, tokens
}

// TestSendExactlyOnce is the main scenario on one pair of stages (iOS and
// Android): a full send with retries and invalid tokens, the same batches
// again (skipped by the guard), an expired deadline, an abort and a takeover,
// each with its own campaign so the simulator counts them apart.
func TestSendExactlyOnce(t *testing.T) {
	e := newEnv(t, nil)
	results := e.reader(t, e.cfg.Topics.Results)
	feedback := e.reader(t, e.cfg.Topics.Feedback)
	ios := e.startStage(t, push.IOS, nil)
	android := e.startStage(t, push.Android, nil)

	main := "superbowl-" + testenv.ID()
	e.putCampaign(t, main)
	fire := newFire(5 * time.Minute)
	iosB := makeBatches(main, push.IOS, iosBatches, iosSize, patterns(push.IOS))
	andB := makeBatches(main, push.Android, androidBatches, androidSize, patterns(push.Android))
	all := append(append([]*wire.Batch(nil), iosB...), andB...)
	e.produceBatches(t, fire, all)

	total := iosBatches*iosSize + androidBatches*androidSize
	nInvalidIOS, invIOS := countTokens(iosB, "dead0410")
	nInvalidAnd, invAnd := countTokens(andB, "UNREGISTERED")
	nInvalid := nInvalidIOS + nInvalidAnd
	if nInvalidIOS == 0 || nInvalidAnd == 0 {
		t.Fatal("test setup: no invalid tokens")
	}

	t.Run("every token once", func(t *testing.T) {
		rs := e.results(t, results, main, len(all))
		s := sum(rs)
		if s.Tokens != total || s.Accepted != total-nInvalid || s.Invalid != nInvalid ||
			s.Failed+s.Expired+s.Aborted != 0 {
			t.Errorf("results sum: tokens=%d accepted=%d invalid=%d failed=%d expired=%d aborted=%d; want %d tokens, %d accepted, %d invalid",
				s.Tokens, s.Accepted, s.Invalid, s.Failed, s.Expired, s.Aborted, total, total-nInvalid, nInvalid)
		}
		if s.Retries == 0 {
			t.Error("Retries = 0, want > 0 (429/503 tokens were injected)")
		}
		if len(s.AcceptedMS) != s.Accepted {
			t.Errorf("%d AcceptedMS entries for %d accepted", len(s.AcceptedMS), s.Accepted)
		}
		for _, r := range rs {
			if r.FireID != fire.ID || r.Kind != wire.KindFire || r.Sender == "" || r.FinishedAt.Before(r.StartedAt) {
				t.Errorf("result %s/%d: fire %q kind %q sender %q started %v finished %v", r.Platform, r.Seq,
					r.FireID, r.Kind, r.Sender, r.StartedAt, r.FinishedAt)
			}
		}
		st := e.sim.Stats(main)
		if st.Accepted != int64(total-nInvalid) || st.DuplicateDeliveries != 0 || st.DistinctTokens != int64(total-nInvalid) {
			t.Errorf("simulator: %s; want %d accepted, no duplicates", describe(st), total-nInvalid)
		}
		// Invalid tokens reached the provider exactly once: never retried.
		if got := st.RejectedByReason["Unregistered"]; got != int64(nInvalidIOS) {
			t.Errorf("simulator saw Unregistered %d times, want %d", got, nInvalidIOS)
		}
		if got := st.RejectedByReason["UNREGISTERED"]; got != int64(nInvalidAnd) {
			t.Errorf("simulator saw UNREGISTERED %d times, want %d", got, nInvalidAnd)
		}
		// The retryable patterns were answered with errors first.
		for _, r := range []string{"TooManyRequests", "ServiceUnavailable", "QUOTA_EXCEEDED", "UNAVAILABLE"} {
			if st.RejectedByReason[r] == 0 {
				t.Errorf("simulator never answered %s; the retry path was not exercised", r)
			}
		}
	})

	t.Run("invalid tokens on the feedback topic once", func(t *testing.T) {
		recs := feedback.next(t, nInvalid+1, 5*time.Second, nil) // one more than expected: catches duplicates
		seen := map[string]int{}
		for _, rec := range recs {
			var fb wire.Feedback
			if err := wire.Decode(rec.Value, &fb); err != nil {
				t.Fatal(err)
			}
			if string(rec.Key) != fb.Token || fb.Campaign != main || fb.Reason == "" {
				t.Errorf("feedback %+v under key %s", fb, rec.Key)
			}
			seen[fb.Token]++
		}
		if len(recs) != nInvalid {
			t.Errorf("%d feedback records, want %d", len(recs), nInvalid)
		}
		for tok := range invIOS {
			if seen[tok] != 1 {
				t.Errorf("iOS token %s… on feedback %d times", tok[:12], seen[tok])
			}
		}
		for tok := range invAnd {
			if seen[tok] != 1 {
				t.Errorf("Android token %s… on feedback %d times", tok[:12], seen[tok])
			}
		}
	})

	t.Run("same batches again are skipped", func(t *testing.T) {
		before := e.sim.Stats(main)
		e.produceBatches(t, fire, all)
		waitFor(t, 60*time.Second, "skipped batches", func() bool {
			return counter(t, ios.reg, "owlpost_sender_batches_total", map[string]string{"result": "skipped_done"}) == iosBatches &&
				counter(t, android.reg, "owlpost_sender_batches_total", map[string]string{"result": "skipped_done"}) == androidBatches
		})
		after := e.sim.Stats(main)
		if after.Accepted != before.Accepted || after.DuplicateDeliveries != 0 {
			t.Errorf("simulator after redelivery: %s; before: %s", describe(after), describe(before))
		}
		if extra := results.next(t, 1, time.Second, nil); len(extra) != 0 {
			t.Errorf("a skipped batch wrote a result: %s", extra[0].Key)
		}
	})

	t.Run("expired deadline sends nothing", func(t *testing.T) {
		id := "expired-" + testenv.ID()
		e.putCampaign(t, id)
		past := wire.Fire{ID: "fire-" + testenv.ID(), Kind: wire.KindFire, FiredAt: time.Now().Add(-time.Hour), Deadline: time.Now().Add(-time.Minute)}
		bs := append(makeBatches(id, push.IOS, 2, 10, nil), makeBatches(id, push.Android, 2, 10, nil)...)
		e.produceBatches(t, past, bs)
		s := sum(e.results(t, results, id, len(bs)))
		if s.Expired != 40 || s.Accepted+s.Invalid+s.Failed+s.Aborted != 0 {
			t.Errorf("expired campaign results: %+v", s)
		}
		if st := e.sim.Stats(id); st.Accepted != 0 || len(st.RejectedByReason) != 0 {
			t.Errorf("simulator saw the expired campaign: %s", describe(st))
		}
	})

	t.Run("abort before the batch", func(t *testing.T) {
		id := "aborted-" + testenv.ID()
		e.putCampaign(t, id)
		f := newFire(time.Minute)
		if _, _, err := e.g.Fire(context.Background(), id, guard.FireRecord{FireID: f.ID, By: "test", At: f.FiredAt, Deadline: f.Deadline}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.g.Abort(context.Background(), id, guard.AbortRecord{By: "test", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		bs := append(makeBatches(id, push.IOS, 2, 10, nil), makeBatches(id, push.Android, 2, 10, nil)...)
		e.produceBatches(t, f, bs)
		s := sum(e.results(t, results, id, len(bs)))
		if s.Aborted != 40 || s.Accepted+s.Invalid+s.Failed+s.Expired != 0 {
			t.Errorf("aborted campaign results: %+v", s)
		}
		if st := e.sim.Stats(id); st.Accepted != 0 || len(st.RejectedByReason) != 0 {
			t.Errorf("simulator saw the aborted campaign: %s", describe(st))
		}
	})

	t.Run("takeover sends only un-acked tokens", func(t *testing.T) {
		id := "takeover-" + testenv.ID()
		e.putCampaign(t, id)
		f := newFire(5 * time.Minute)
		b := makeBatches(id, push.IOS, 1, 40, nil)[0]
		// A dead holder claimed the batch, answered tokens 0..24, and died;
		// it stored a bare bitmap, as senders did before guard.Answers.
		var bitmap []byte
		for i := range 25 {
			bitmap = guard.SetBit(bitmap, i)
		}
		e.deadHolder(t, b, f, bitmap)
		e.produceBatches(t, f, []*wire.Batch{b})
		rs := e.results(t, results, id, 1)
		if rs[0].Resent != 15 || rs[0].Accepted != 40 || rs[0].Reasons["answered_before_takeover"] != 25 {
			t.Errorf("takeover result: resent=%d accepted=%d reasons=%v", rs[0].Resent, rs[0].Accepted, rs[0].Reasons)
		}
		st := e.sim.Stats(id)
		if st.Accepted != 15 || st.DuplicateDeliveries != 0 {
			t.Errorf("simulator after takeover: %s; want the 15 un-acked tokens", describe(st))
		}
		// The counter moves after the batch completes (result, then Done),
		// which can be just after the result record is visible: poll.
		var got float64
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if got = counter(t, ios.reg, "owlpost_sender_batches_total", map[string]string{"result": "takeover"}); got == 1 {
				break
			}
		}
		if got != 1 {
			t.Errorf("batches_total{result=takeover} = %v", got)
		}
	})

	t.Run("takeover counts the previous holder's answers as they were", func(t *testing.T) {
		id := "takeover-outcomes-" + testenv.ID()
		e.putCampaign(t, id)
		f := newFire(5 * time.Minute)
		b := makeBatches(id, push.IOS, 1, 40, nil)[0]
		// A dead holder answered tokens 0..24: 0..2 invalid, 3..4 rejected,
		// the rest accepted; then it died.
		var a guard.Answers
		for i := range 25 {
			a.Answered = guard.SetBit(a.Answered, i)
		}
		for i := range 3 {
			a.Invalid = guard.SetBit(a.Invalid, i)
		}
		a.Failed = guard.SetBit(guard.SetBit(a.Failed, 3), 4)
		e.deadHolder(t, b, f, a.Encode(len(b.Tokens)))
		e.produceBatches(t, f, []*wire.Batch{b})
		r := e.results(t, results, id, 1)[0]
		if r.Resent != 15 || r.Accepted != 35 || r.Invalid != 3 || r.Failed != 2 ||
			r.Reasons["answered_before_takeover"] != 20 || r.Reasons["invalid_before_takeover"] != 3 ||
			r.Reasons["failed_before_takeover"] != 2 {
			t.Errorf("takeover result: resent=%d accepted=%d invalid=%d failed=%d reasons=%v",
				r.Resent, r.Accepted, r.Invalid, r.Failed, r.Reasons)
		}
		if st := e.sim.Stats(id); st.Accepted != 15 || st.DuplicateDeliveries != 0 {
			t.Errorf("simulator after takeover: %s; want the 15 un-acked tokens", describe(st))
		}
		// The previous holder's invalid tokens are reported again.
		recs := feedback.next(t, 4, 5*time.Second, func(rec *kgo.Record) bool {
			var fb wire.Feedback
			return wire.Decode(rec.Value, &fb) == nil && fb.Campaign == id
		})
		got := map[string]string{}
		for _, rec := range recs {
			var fb wire.Feedback
			_ = wire.Decode(rec.Value, &fb)
			got[fb.Token] = fb.Reason
		}
		if len(recs) != 3 {
			t.Errorf("%d feedback records for the taken-over batch, want 3", len(recs))
		}
		for i := range 3 {
			if tok := b.Tokens[i].Token; got[tok] != "invalid_before_takeover" {
				t.Errorf("token %d: feedback reason %q, want invalid_before_takeover", i, got[tok])
			}
		}
	})

	t.Run("ready heartbeat on the status topic", func(t *testing.T) {
		status := e.reader(t, e.cfg.Topics.Status)
		want := map[string]bool{
			wire.StatusKey("", wire.RoleSenderIOS, e.cfg.InstanceID):     false,
			wire.StatusKey("", wire.RoleSenderAndroid, e.cfg.InstanceID): false,
		}
		status.next(t, 1, 10*time.Second, func(r *kgo.Record) bool {
			var st wire.Status
			if _, ok := want[string(r.Key)]; ok && wire.Decode(r.Value, &st) == nil && st.State == wire.StateReady && st.Connected {
				want[string(r.Key)] = true
			}
			return want[wire.StatusKey("", wire.RoleSenderIOS, e.cfg.InstanceID)] &&
				want[wire.StatusKey("", wire.RoleSenderAndroid, e.cfg.InstanceID)]
		})
		for k, ok := range want {
			if !ok {
				t.Errorf("no ready status under %s", k)
			}
		}
	})

	t.Run("bad records go to rejects", func(t *testing.T) {
		rejects := e.reader(t, e.cfg.Topics.Rejects)
		good, _ := wire.EncodeBatch(nil, makeBatches("x", push.IOS, 1, 1, nil)[0])
		recs := []*kgo.Record{
			{Topic: e.cfg.Topics.SendIOS, Key: []byte("k1"), Value: good}, // no fire headers
			{Topic: e.cfg.Topics.SendIOS, Key: []byte("k2"), Value: []byte("garbage"),
				Headers: kafkaHeaders(newFire(time.Minute))},
		}
		if err := e.prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		got := rejects.next(t, 2, 30*time.Second, nil)
		reasons := map[string]bool{}
		for _, r := range got {
			for _, h := range r.Headers {
				if h.Key == wire.HeaderReason {
					reasons[string(h.Value)] = true
				}
			}
		}
		if !reasons[sender.RejectFireHeaders] || !reasons[sender.RejectBatch] {
			t.Errorf("reject reasons %v, want %s and %s", reasons, sender.RejectFireHeaders, sender.RejectBatch)
		}
	})
}

func kafkaHeaders(f wire.Fire) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for _, h := range wire.FireHeaders(f) {
		hs = append(hs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return hs
}

// redisServer runs a private redis-server on port (started and stopped by
// the test) so Redis can be down and come back.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server (Debian package redis-server): %v", err)
	}
	waitFor(r.t, 10*time.Second, "redis-server up", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(r.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// TestRedisOutage: with the guard's Redis down nothing is sent (no batch
// without its claim); once Redis is back every batch completes.
// TestAbortedTransactionCopySentOnce: the senders read uncommitted, so they
// also get the send tasks of a fanout transaction that aborted, which the
// partition's owner then releases again in a committed one. The batch guard
// must make that one send per token, and the second copy of each batch must
// be skipped as done (which also shows the aborted copy was read: a
// read_committed sender would never count it).
func TestAbortedTransactionCopySentOnce(t *testing.T) {
	e := newEnv(t, nil)
	ios := e.startStage(t, push.IOS, nil)
	android := e.startStage(t, push.Android, nil)
	id := "txn-" + testenv.ID()
	e.putCampaign(t, id)
	fire := newFire(5 * time.Minute)
	const nIOS, nAndroid = 6, 6
	batches := append(makeBatches(id, push.IOS, nIOS, iosSize, nil), makeBatches(id, push.Android, nAndroid, androidSize, nil)...)
	tokens := nIOS*iosSize + nAndroid*androidSize

	txn := testenv.Client(t, e.cfg, kgo.TransactionalID("sender-test-"+testenv.ID()))
	ctx := testenv.Context(t, time.Minute)
	for _, commit := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, e.sendRecords(t, fire, batches)...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "both copies of every batch handled", func() bool {
		sent := func(s *stage, n int) bool {
			return counter(t, s.reg, "owlpost_sender_batches_total", map[string]string{"result": "sent"}) == float64(n) &&
				counter(t, s.reg, "owlpost_sender_batches_total", map[string]string{"result": "skipped_done"}) == float64(n)
		}
		return sent(ios, nIOS) && sent(android, nAndroid)
	})
	if st := e.sim.Stats(id); st.Accepted != int64(tokens) || st.DistinctTokens != int64(tokens) || st.DuplicateDeliveries != 0 {
		t.Errorf("simulator: %s; want %d accepted once each", describe(st), tokens)
	}
}

// TestGuardWarmedWhileIdle: a ready sender with nothing to send warms the
// guard again on its heartbeats (after a Redis restart its scripts are gone
// and its connections broken; GO should not pay for either).
func TestGuardWarmedWhileIdle(t *testing.T) {
	e := newEnv(t, nil)
	reg := prometheus.NewRegistry()
	g := guard.New(e.rdb, e.cfg.Redis.Prefix, reg)
	e.startStage(t, push.IOS, g)
	warms := func() float64 {
		return counter(t, reg, "owlpost_guard_redis_seconds", map[string]string{"op": "warm"})
	}
	if warms() < 1 {
		t.Fatal("the guard was not warmed when the stage became ready")
	}
	n := warms()
	waitFor(t, 20*time.Second, "a warm-up on an idle heartbeat", func() bool { return warms() > n })
	if got := counter(t, reg, "owlpost_guard_redis_errors_total", map[string]string{"op": "warm"}); got != 0 {
		t.Errorf("%v failed warm-ups", got)
	}
}

// TestProofNotTimedFromFire: proof sends are counted as notifications and
// timed under kind "proof", out of the fire's time-from-fire series (which
// the launch dashboard and the p95 alert read as "since GO") and of the
// trigger-to-first-send histogram.
func TestProofNotTimedFromFire(t *testing.T) {
	e := newEnv(t, nil)
	st := e.startStage(t, push.IOS, nil)
	id := "proof-" + testenv.ID()
	e.putCampaign(t, id)
	timed := func() (float64, float64) {
		return counter(t, st.reg, "owlpost_sender_time_from_fire_seconds", map[string]string{"kind": wire.KindFire}),
			counter(t, st.reg, "owlpost_sender_trigger_to_first_send_seconds", nil)
	}
	proofTimed := func() float64 {
		return counter(t, st.reg, "owlpost_sender_time_from_fire_seconds", map[string]string{"kind": wire.KindProof})
	}
	accepted := func() float64 {
		return counter(t, st.reg, "owlpost_sender_notifications_total", map[string]string{"outcome": "accepted"})
	}
	proof := newFire(5 * time.Minute)
	proof.Kind = wire.KindProof
	e.produceBatches(t, proof, makeBatches(id, push.IOS, 2, 3, nil))
	waitFor(t, 30*time.Second, "proof tokens accepted", func() bool { return accepted() == 6 })
	if tokens, firsts := timed(); tokens != 0 || firsts != 0 {
		t.Errorf("after a proof: time_from_fire{kind=fire} count %v, trigger_to_first_send count %v; want 0 and 0", tokens, firsts)
	}
	if n := proofTimed(); n != 6 {
		t.Errorf("after a proof of 6 tokens: time_from_fire{kind=proof} count %v, want 6", n)
	}
	fire := newFire(5 * time.Minute)
	e.produceBatches(t, fire, makeBatches(id, push.IOS, 2, 3, nil))
	waitFor(t, 30*time.Second, "fire tokens accepted", func() bool { return accepted() == 12 })
	if tokens, firsts := timed(); tokens != 6 || firsts != 1 {
		t.Errorf("after a fire of 6 tokens: time_from_fire count %v, trigger_to_first_send count %v; want 6 and 1", tokens, firsts)
	}
}

func TestRedisOutage(t *testing.T) {
	e := newEnv(t, nil)
	rs := &redisServer{t: t, port: freePort(t)}
	t.Cleanup(rs.stop)

	c := *e.cfg
	c.Redis.Addr = "127.0.0.1:" + strconv.Itoa(rs.port)
	c.Redis.Timeout = 500 * time.Millisecond
	rdb, err := guard.NewClient(&c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	g := guard.New(rdb, c.Redis.Prefix, nil)

	results := e.reader(t, e.cfg.Topics.Results)
	e.startStage(t, push.IOS, g)
	e.startStage(t, push.Android, g)

	id := "outage-" + testenv.ID()
	e.putCampaign(t, id)
	bs := append(makeBatches(id, push.IOS, 4, 20, nil), makeBatches(id, push.Android, 4, 10, nil)...)
	// The fire was recorded in a Redis that came back empty: the senders
	// find it as the control log's first verified fire.
	f := newFire(5 * time.Minute)
	e.verifiedFire(t, id, f)
	e.produceBatches(t, f, bs)

	time.Sleep(3 * time.Second) // the stages have the records and keep asking Redis
	if st := e.sim.Stats(id); st.Accepted != 0 {
		t.Fatalf("sent while Redis was down: %s", describe(st))
	}
	rs.start()
	s := sum(e.results(t, results, id, len(bs)))
	if s.Accepted != 120 {
		t.Errorf("after Redis returned: accepted %d of 120 (%+v)", s.Accepted, s)
	}
	if st := e.sim.Stats(id); st.Accepted != 120 || st.DuplicateDeliveries != 0 {
		t.Errorf("simulator: %s", describe(st))
	}
}

// TestRateCap: with a global rate cap every token still goes out once,
// through the Redis token bucket.
func TestRateCap(t *testing.T) {
	e := newEnv(t, nil)
	e.cfg.Sender.RateLimit = 400
	results := e.reader(t, e.cfg.Topics.Results)
	e.startStage(t, push.IOS, nil)
	id := "capped-" + testenv.ID()
	e.putCampaign(t, id)
	bs := makeBatches(id, push.IOS, 4, 150, nil)
	e.produceBatches(t, newFire(5*time.Minute), bs)
	if s := sum(e.results(t, results, id, len(bs))); s.Accepted != 600 {
		t.Errorf("accepted %d of 600", s.Accepted)
	}
	if st := e.sim.Stats(id); st.Accepted != 600 || st.DuplicateDeliveries != 0 {
		t.Errorf("simulator: %s", describe(st))
	}
}

// TestCampaignRateCap: a campaign's own rate_limit (a capped rehearsal)
// caps it with no sender.rate_limit set: the simulator never sees more than
// the bucket allows in any second (its burst plus one second of refill).
func TestCampaignRateCap(t *testing.T) {
	e := newEnv(t, nil)
	results := e.reader(t, e.cfg.Topics.Results)
	e.startStage(t, push.IOS, nil)
	id := "capped-campaign-" + testenv.ID()
	const rate = 100
	e.putCampaignWith(t, id, func(c *campaign.Campaign) { c.RateLimit = rate })
	bs := makeBatches(id, push.IOS, 4, 100, nil)
	e.produceBatches(t, newFire(5*time.Minute), bs)
	if s := sum(e.results(t, results, id, len(bs))); s.Accepted != 400 {
		t.Errorf("accepted %d of 400", s.Accepted)
	}
	arr := e.sim.Arrivals(id)
	if len(arr) != 400 {
		t.Fatalf("simulator: %d arrivals, want 400", len(arr))
	}
	for i, j := 0, 0; j < len(arr); j++ {
		for arr[j].Sub(arr[i]) >= time.Second {
			i++
		}
		if n := j - i + 1; n > 2*rate {
			t.Fatalf("%d notifications within one second at %s: the campaign's cap of %d/s was not applied", n, arr[j].Format(time.RFC3339Nano), rate)
		}
	}
}

// TestFatalStopsStage: a provider refusing the credential mid-flight is not
// retried token by token; the stage stops with an error and the alert gauge.
func TestFatalStopsStage(t *testing.T) {
	e := newEnv(t, nil)
	c := *e.cfg
	c.Sender.Platform = string(push.IOS)
	adapter, err := sender.NewPush(&c)
	if err != nil {
		t.Fatal(err)
	}
	defer adapter.Close()
	reg := metrics.NewRegistry()
	st, err := sender.New(&c, sender.Deps{Registry: reg, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Guard: e.g, Push: adapter})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- st.Run(ctx) }()
	waitFor(t, 60*time.Second, "stage ready", func() bool { return st.Ready() == nil })

	// The simulator now answers 403 InvalidProviderToken to everything.
	e.sim.SetFaults(faultsAll("InvalidProviderToken"))
	id := "fatal-" + testenv.ID()
	e.putCampaign(t, id)
	e.produceBatches(t, newFire(time.Minute), makeBatches(id, push.IOS, 3, 20, nil))
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "fatal") {
			t.Fatalf("Run returned %v, want a fatal provider error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("stage did not stop on a fatal provider answer")
	}
	if got := counter(t, reg, "owlpost_sender_fatal", nil); got != 1 {
		t.Errorf("owlpost_sender_fatal = %v, want 1", got)
	}
	if st.Ready() == nil {
		t.Error("Ready() nil after a fatal error")
	}
	if got := e.sim.Stats(id).Accepted; got != 0 {
		t.Errorf("simulator accepted %d notifications of a refused credential", got)
	}
}

func faultsAll(apnsReason string) pushsim.Faults {
	return pushsim.Faults{APNsRates: map[string]float64{apnsReason: 1}}
}

// TestReplayAfterRedisLossSendsNothingAgain: a campaign completes, another
// is half done, then Redis loses every key (a failover to an empty replica,
// a flush) and the sender group starts over from the earliest offset (a
// renamed group, expired offsets) while the tasks are inside their
// deadline. Nothing finished is sent again (the guard lost its done marks;
// the results topic still has them), the half-done campaign completes, and
// a task of a fire that is not the campaign's verified fire is dropped.
func TestReplayAfterRedisLossSendsNothingAgain(t *testing.T) {
	e := newEnv(t, nil)
	results := e.reader(t, e.cfg.Topics.Results)
	first := e.startStage(t, push.IOS, nil)

	done, flying := "done-"+testenv.ID(), "flying-"+testenv.ID()
	fd, ff := newFire(5*time.Minute), newFire(5*time.Minute)
	e.putCampaign(t, done)
	e.putCampaign(t, flying)
	e.verifiedFire(t, done, fd)
	e.verifiedFire(t, flying, ff)
	bd := makeBatches(done, push.IOS, 4, 20, nil)
	bf := makeBatches(flying, push.IOS, 6, 20, nil)
	e.produceBatches(t, fd, bd)
	e.results(t, results, done, len(bd))
	e.produceBatches(t, ff, bf[:3])
	e.results(t, results, flying, 3)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	testenv.FlushRedis(t, e.cfg)
	e.cfg.Sender.Group += "-reset" // a new group: reads the send topic from its start
	replay := e.startStage(t, push.IOS, nil)
	// The rest of the flying campaign, and a task of a fire that is not
	// the campaign's (Redis has no fire record now: only the control log
	// says which fire is verified).
	rest := append(e.taskRecords(t, ff, bf[3:]), e.taskRecords(t, newFire(5*time.Minute), makeBatches(done, push.IOS, 1, 20, nil))...)
	if err := e.prod.ProduceSync(context.Background(), rest...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.results(t, results, flying, 3)
	waitFor(t, 60*time.Second, "replayed batches skipped", func() bool {
		return counter(t, replay.reg, "owlpost_sender_batches_total", map[string]string{"result": "skipped_done"}) == float64(len(bd)+3) &&
			counter(t, replay.reg, "owlpost_sender_batches_total", map[string]string{"result": "skipped_unverified"}) == 1
	})
	for id, n := range map[string]int64{done: 80, flying: 120} {
		if st := e.sim.Stats(id); st.Accepted != n || st.DuplicateDeliveries != 0 {
			t.Errorf("%s after the replay: %s; want %d accepted once each", id, describe(st), n)
		}
	}
	if extra := results.next(t, 1, time.Second, nil); len(extra) != 0 {
		t.Errorf("a replayed batch wrote a result: %s", extra[0].Key)
	}
}
