//go:build fault

package fault_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/wire"
)

// Audience sizes: modest, so the suite fits in minutes on 2 cores, with
// small batches (50 iOS / 25 Android) so there are hundreds of batches.
const (
	nIOS     = 12000
	nAndroid = 8000
)

var locales = []string{"en-US", "es-US", "de-DE", "de-AT", "pt-BR", "fr-FR"}

func spec(seed int64) audience.Spec {
	return audience.Spec{IOS: nIOS, Android: nAndroid, Locales: locales, InvalidFraction: 0.002, Seed: seed}
}

// TestSenderKilled: kill -9 the iOS sender while it is sending (the provider
// answers in 20 ms, so requests are in flight), restart it. Every valid token
// is accepted; duplicates can only come from the tokens the killed sender
// had in flight: they are re-sent by the taker-over (Result.Resent), so they
// are bounded by the re-sent tokens and by the in-flight capacity.
func TestSenderKilled(t *testing.T) {
	row := newRow(t, "kill -9 the iOS sender at ~30% accepted, restart it")
	s := newStack(t, opts{latency: 20 * time.Millisecond, inFlight: 4})
	s.row = row
	sp := spec(1)
	// No provider-refused tokens here: a taken-over batch counts the tokens
	// its dead holder had answered as accepted (their answers died with it),
	// which would blur the exact invalid count this case does not test.
	sp.InvalidFraction = 0
	s.define(sp, campaignSpec{})
	s.prepare()
	s.press()

	total := int64(s.manifest.Tokens())
	at := s.waitSim(time.Minute, "30% accepted with iOS still sending", func(st pushsim.Stats) bool {
		return st.Accepted >= total*3/10 && st.ByPlatform["ios"] < int64(s.manifest.IOSTokens)/2
	})
	s.procs["sender-ios"].Kill()
	atKill := s.mustSimStats(s.collapse)
	s.procs["sender-ios"].Restart()
	t.Logf("killed the iOS sender at %d accepted (%d iOS) of %d; %d when it was dead", at.Accepted,
		at.ByPlatform["ios"], total, atKill.Accepted)

	s.waitAllBatches()
	for _, l := range strings.Split(s.procs["sender-ios"].Output(), "\n") {
		if strings.Contains(l, "e2e: start") || strings.Contains(l, "partitions assigned") {
			t.Logf("sender-ios: %s", l)
		}
	}
	capacity := int64(s.o.inFlight * s.o.iosBatch)
	rep := s.result(row, outcome{maxDuplicates: capacity})

	var resent, takenOver, answeredBefore int
	for _, r := range s.fireResults() {
		before := r.Reasons["answered_before_takeover"] + r.Reasons["invalid_before_takeover"] +
			r.Reasons["failed_before_takeover"]
		if r.Resent > 0 || before > 0 {
			takenOver++
			resent += r.Resent
			answeredBefore += before
		}
	}
	row.Note = fmt.Sprintf("killed at %d/%d accepted; %d batches taken over after the claim lease, %d tokens re-sent (%d answered before the kill); duplicates <= re-sent and <= in-flight capacity %d (%d batches x %d); all under the collapse id",
		atKill.Accepted, total, takenOver, resent, answeredBefore, capacity, s.o.inFlight, s.o.iosBatch)
	t.Log(row.Note)
	if row.Duplicates > int64(resent) {
		t.Errorf("%d duplicate deliveries but only %d tokens were re-sent by a taker-over: a duplicate came from elsewhere", row.Duplicates, resent)
	}
	if atKill.Accepted >= total {
		t.Errorf("the kill landed after the campaign (%d accepted of %d)", atKill.Accepted, total)
	}
	_ = rep
}

// TestFanoutKilled: kill -9 one of the two fanout instances as soon as the
// first send task of the fire is visible. The survivor takes over its
// partitions (10 s session timeout), and continues from the progress markers:
// every batch is on the send topics exactly once and every token accepted
// once.
func TestFanoutKilled(t *testing.T) {
	row := newRow(t, "kill -9 a fanout instance mid-release")
	s := newStack(t, opts{})
	s.row = row
	s.define(spec(2), campaignSpec{})
	s.prepare()

	wait, seen := s.pressWhenReleasing()
	s.procs["fanout-1"].Kill()
	wait()
	atKill := len(s.sendTopicCounts())
	t.Logf("killed fanout-1 after the first %d send tasks; %d of %d batches released by then", seen, atKill, s.manifest.Batches())

	s.waitAllBatches()
	released := s.onceOnSendTopics()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("killed after %d of %d batches were released; every batch on the send topics exactly once (%d)", atKill, s.manifest.Batches(), released)
	if atKill >= int(s.manifest.Batches()) {
		row.Note += "; the release had already finished on both instances when the kill landed"
	}
}

// TestKafkaRestart: stop the Kafka broker mid-campaign (clean stop of the
// only broker: no topic is reachable), start it again. The stages reconnect
// and the campaign completes; the batch guard keeps re-deliveries from being
// sent twice.
func TestKafkaRestart(t *testing.T) {
	row := newRow(t, "stop and restart the Kafka broker mid-campaign")
	s := newStack(t, opts{latency: 20 * time.Millisecond, inFlight: 2})
	s.row = row
	s.define(spec(3), campaignSpec{})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	s.waitSim(time.Minute, "30% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total*3/10 })
	restoreOnCleanup(t, "kafka")
	down := time.Now()
	if err := devstack("stop", "kafka"); err != nil {
		t.Fatal(err)
	}
	atStop := s.mustSimStats(s.collapse).Accepted
	time.Sleep(2 * time.Second)
	if err := devstack("start", "kafka"); err != nil {
		t.Fatal(err)
	}
	outage := time.Since(down)
	atStart := s.mustSimStats(s.collapse).Accepted
	t.Logf("broker down for %s: %d accepted when stopped, %d when back, of %d", outage.Round(100*time.Millisecond), atStop, atStart, total)
	s.waitAllBatches()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("broker stopped at %d/%d accepted, back after %.0f s (%d accepted then); senders finished what they held, then resumed",
		atStop, total, outage.Seconds(), atStart)
}

// TestRedisDown: with Redis stopped before GO, a press is refused with a
// clear error and nothing is sent; with Redis stopped mid-send, the senders
// claim no new batch (at most the batches already claimed finish their
// rounds) and the campaign completes once Redis is back.
func TestRedisDown(t *testing.T) {
	s := newStack(t, opts{latency: 20 * time.Millisecond, inFlight: 2})
	s.define(spec(4), campaignSpec{})
	s.prepare()
	total := int64(s.manifest.Tokens())

	parent := t
	t.Run("before GO", func(t *testing.T) {
		s.t = t
		defer func() { s.t = parent }()
		row := newRow(t, "Redis stopped before GO: press refused")
		row.Tokens = s.manifest.Tokens()
		restoreOnCleanup(t, "redis")
		if err := devstack("stop", "redis"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		code, out := s.owlctl(ctx, "fire", s.id, "--yes", "--by", "fault-suite")
		cancel()
		t.Logf("owlctl fire with Redis down: exit %d: %s", code, strings.TrimSpace(out))
		if code != 1 || !strings.Contains(out, "not fired") || !strings.Contains(out, "redis") {
			t.Errorf("want exit 1 with a clear 'not fired ... redis' error, got exit %d: %s", code, out)
		}
		time.Sleep(2 * time.Second) // a wrongly released fire would show by now (not a timing assertion)
		all := s.mustSimStats("")
		row.Accepted, row.Distinct = all.Accepted, all.DistinctTokens
		if all.Accepted != 0 {
			t.Errorf("the simulator accepted %d notifications although the fire was refused", all.Accepted)
		}
		if err := devstack("start", "redis"); err != nil {
			t.Fatal(err)
		}
		if st := s.waitStatus(time.Minute, "guard readable again", func(st *control.CampaignStatus) bool {
			return len(st.Errors) == 0
		}); st.Fire != nil {
			t.Errorf("a fire was recorded while Redis was down: %+v", st.Fire)
		}
		row.Note = "owlctl fire exit 1: \"" + lineWith(out, "not fired") + "\"; 0 sent"
	})
	if t.Failed() {
		return
	}

	t.Run("mid-send", func(t *testing.T) {
		row := newRow(t, "Redis stopped mid-send for 3 s, restarted")
		s.row = row
		s.t = t
		defer func() { s.t = parent }()
		s.press()
		s.waitSim(time.Minute, "30% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total*3/10 })
		restoreOnCleanup(t, "redis")
		if err := devstack("stop", "redis"); err != nil {
			t.Fatal(err)
		}
		atStop := s.mustSimStats(s.collapse).Accepted
		time.Sleep(3 * time.Second)
		atEnd := s.mustSimStats(s.collapse).Accepted
		if err := devstack("start", "redis"); err != nil {
			t.Fatal(err)
		}
		// Only batches claimed before the stop may still send: at most the
		// in-flight batches of both senders.
		bound := int64(s.o.inFlight * (s.o.iosBatch + s.o.androidBatch))
		t.Logf("Redis down 3 s: %d accepted when stopped, %d at the end of the outage (bound %d), of %d", atStop, atEnd, bound, total)
		if atEnd-atStop > bound {
			t.Errorf("%d notifications accepted while Redis was down, more than the %d of batches already claimed", atEnd-atStop, bound)
		}
		s.waitAllBatches()
		s.result(row, outcome{})
		row.Note = fmt.Sprintf("stopped at %d/%d accepted; %d more during the outage (claimed batches only, bound %d); completed after restart",
			atStop, total, atEnd-atStop, bound)
	})
}

// TestProviderStorm: 20% 503 and 10% 429 with Retry-After 1 s on both
// providers for the first 5 s after GO: everything is accepted before the
// deadline, with retries counted.
func TestProviderStorm(t *testing.T) {
	row := newRow(t, "provider storm: 20% 503 + 10% 429 (Retry-After 1 s) for 5 s")
	s := newStack(t, opts{latency: 5 * time.Millisecond})
	s.row = row
	s.define(spec(5), campaignSpec{})
	s.prepare()
	s.faults(map[string]any{
		"apns_rates":          map[string]float64{"ServiceUnavailable": 0.2, "TooManyRequests": 0.1},
		"fcm_rates":           map[string]float64{"UNAVAILABLE": 0.2, "QUOTA_EXCEEDED": 0.1},
		"retry_after_seconds": 1, "until_seconds": 5,
	})
	s.press()
	s.waitAllBatches()
	rep := s.result(row, outcome{})
	sim := s.mustSimStats(s.collapse)
	if rep.Total.Retries == 0 {
		t.Errorf("no retries counted during a storm; simulator rejections %v", sim.RejectedByReason)
	}
	if last := s.arrivals(); len(last) > 0 && time.Unix(0, last[len(last)-1]).After(s.fire.Deadline) {
		t.Errorf("accepted after the deadline %s", s.fire.Deadline)
	}
	row.Note = fmt.Sprintf("simulator rejected %s; all accepted before the deadline", reasons(sim.RejectedByReason))
}

// TestDeadlineShorterThanStorm: a 3 s deadline and, once a tenth of the
// audience is accepted, a 100% 503 storm lasting 20 s: the rest is counted
// expired (a retry whose wait would end past the deadline is not made), and
// nothing is accepted after the deadline.
func TestDeadlineShorterThanStorm(t *testing.T) {
	row := newRow(t, "deadline 3 s, 100% 503 storm for 20 s from ~10% accepted")
	s := newStack(t, opts{latency: 20 * time.Millisecond, inFlight: 2})
	s.row = row
	s.define(spec(6), campaignSpec{deadline: 3 * time.Second})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	s.waitSim(time.Minute, "10% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total/10 })
	s.faults(map[string]any{
		"apns_rates":          map[string]float64{"ServiceUnavailable": 1},
		"fcm_rates":           map[string]float64{"UNAVAILABLE": 1},
		"retry_after_seconds": 1, "until_seconds": 20,
	})
	atStorm := s.mustSimStats(s.collapse).Accepted
	s.waitAllBatches()
	rep := s.result(row, outcome{allowExpired: true})
	sim := s.mustSimStats(s.collapse)
	if rep.Total.Expired == 0 {
		t.Errorf("nothing expired although the storm outlasted the deadline")
	}
	if uint64(sim.Accepted) != rep.Total.Accepted {
		t.Errorf("simulator accepted %d, report %d", sim.Accepted, rep.Total.Accepted)
	}
	arr := s.arrivals()
	var late int
	for _, ns := range arr {
		if time.Unix(0, ns).After(s.fire.Deadline) {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d notifications accepted after the deadline %s", late, s.fire.Deadline.Format(time.RFC3339Nano))
	}
	lastAt := "none"
	if len(arr) > 0 {
		lastAt = fmt.Sprintf("%.2f s", time.Unix(0, arr[len(arr)-1]).Sub(s.fire.At).Seconds())
	}
	row.Note = fmt.Sprintf("storm from %d accepted; last acceptance at %s after GO (deadline %s), 0 after it; simulator accepted = report accepted",
		atStorm, lastAt, s.fire.Deadline.Sub(s.fire.At))
}

// TestBadInput: 5% of the audience records are garbage of every kind the
// planner rejects. The plan holds exactly the valid distinct tokens, and the
// rejects topic holds every bad record with its reason.
func TestBadInput(t *testing.T) {
	row := newRow(t, "bad input: 5% garbage audience records")
	s := newStack(t, opts{})
	s.row = row
	sp := spec(7)
	sp.BadFraction = 0.05
	sp.DuplicateFraction = 0.01
	s.define(sp, campaignSpec{}) // checks planned tokens == audience counts exactly
	bad := s.counts.Bad
	if m := s.manifest; fmt.Sprint(m.Rejected) != fmt.Sprint(bad) || int64(m.DuplicateTokens) != s.counts.Duplicates {
		t.Errorf("manifest rejects %v, duplicates %d; audience bad %v, duplicates %d", m.Rejected, m.DuplicateTokens, bad, s.counts.Duplicates)
	}
	var got map[string]int64
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if got = s.rejects(); fmt.Sprint(got) == fmt.Sprint(bad) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(bad) {
		t.Errorf("rejects topic by reason %v, the audience has bad records %v", got, bad)
	}
	s.prepare()
	s.press()
	s.waitAllBatches()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("%d bad records (%s) all on the rejects topic with their reason; %d duplicate records dropped; planned tokens = audience's exactly",
		s.counts.BadTotal(), reasons(bad), s.counts.Duplicates)
}

// TestFiftyPresses: 50 bin/owlctl processes press GO at once: exactly one
// fires, the 49 others exit 3 naming the same fire id, and every token is
// sent once.
func TestFiftyPresses(t *testing.T) {
	row := newRow(t, "50 concurrent GO presses from 50 owlctl processes")
	s := newStack(t, opts{})
	s.row = row
	s.define(spec(8), campaignSpec{})
	s.prepare()

	const presses = 50
	won, lost := 0, 0
	ids := map[string]int{}
	for i, p := range s.pressAtOnce(presses, nil, nil, nil) {
		if p.fireID != "" {
			ids[p.fireID]++
		}
		switch {
		case p.code == 0 && strings.Contains(p.out, "fired: fire id"):
			won++
		case p.code == 3 && strings.Contains(p.out, "already fired"):
			lost++
		default:
			t.Errorf("press %d: exit %d: %s", i, p.code, p.out)
		}
	}
	if won != 1 || lost != presses-1 || len(ids) != 1 {
		t.Fatalf("want 1 win and %d 'already fired' naming one fire id; got %d wins, %d already fired, fire ids %v", presses-1, won, lost, ids)
	}
	s.loadFire()
	if ids[s.fire.FireID] != presses {
		t.Errorf("presses name fire ids %v, the guard's winner is %s", ids, s.fire.FireID)
	}
	s.waitAllBatches()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("1 process exited 0 (fired), %d exited 3 (already fired), all naming fire id %s", lost, s.fire.FireID)
}

// waitSim polls the simulator's record of the campaign until ok accepts it.
func (s *stack) waitSim(timeout time.Duration, what string, ok func(pushsim.Stats) bool) pushsim.Stats {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last pushsim.Stats
	for time.Now().Before(deadline) {
		st, err := s.simStats(s.collapse)
		if err == nil {
			if ok(st) {
				return st
			}
			last = st
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; simulator: %+v", timeout, what, last)
	return last
}

// rejects counts the rejects topic's records by reason header.
func (s *stack) rejects() map[string]int64 {
	s.t.Helper()
	var mu sync.Mutex
	out := map[string]int64{}
	s.readTopic(s.cfg.Topics.Rejects, func(r *kgo.Record) error {
		reason := ""
		for _, h := range r.Headers {
			if h.Key == wire.HeaderReason {
				reason = string(h.Value)
			}
		}
		mu.Lock()
		out[reason]++
		mu.Unlock()
		return nil
	})
	return out
}

func reasons(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// lineWith returns the first line of s containing sub (trimmed), or "".
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
