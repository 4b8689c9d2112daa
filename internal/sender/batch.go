package sender

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

// Reject reasons of send-topic records (the owlpost-reject-reason header).
const (
	RejectFireHeaders   = "bad_fire_headers"
	RejectBatch         = "bad_batch"
	RejectWrongPlatform = "wrong_platform"
	RejectCampaign      = "unsendable_campaign"
)

// errFatal marks a provider answer that stops the stage (auth/config).
var errFatal = errors.New("sender: fatal provider error")

// handle processes one send-topic record. nil means the record is finished
// and may be committed; an error wrapping errFatal stops the stage; any other
// error (ctx cancelled) leaves the record uncommitted.
func (s *Stage) handle(ctx context.Context, r *kgo.Record) error {
	started := time.Now()
	fire, err := wire.ParseFireHeaders(kafka.WireHeaders(r))
	if err != nil {
		return s.reject(ctx, r, RejectFireHeaders, err, "")
	}
	b, err := wire.DecodeBatch(r.Value)
	if err != nil {
		return s.reject(ctx, r, RejectBatch, err, "")
	}
	if b.Platform != s.platform {
		return s.reject(ctx, r, RejectWrongPlatform, fmt.Errorf("%s batch on the %s send topic", b.Platform, s.platform), b.Campaign)
	}

	// Only the campaign's winning fire is sent (a proof is not a fire).
	// Today's guard normally answers from the cache; a guard that lost
	// the record also lost the done marks, so the results topic says
	// which batches were finished (a flushed Redis plus a group reset to
	// the earliest offset replays completed campaigns).
	if fire.Kind == wire.KindFire {
		ok, finished, err := s.verifyFire(ctx, b.Campaign, fire.ID, b.Key())
		switch {
		case err != nil:
			return err
		case !ok:
			s.m.batches.WithLabelValues(batchSkippedUnverified).Inc()
			s.log.Warn("send task of a fire that is not the campaign's verified fire; dropped", "batch", b.Key(), "fire", fire.ID)
			return nil
		case finished:
			s.m.batches.WithLabelValues(batchSkippedDone).Inc()
			return nil
		}
	}

	// The campaign rendered for this fire. Only needed when we may still
	// send: a Kafka hiccup is retried until the deadline; after it the batch
	// is counted expired without the campaign.
	var rend *campaign.Rendered
	for attempt := 0; time.Now().Before(fire.Deadline); attempt++ {
		rend, err = s.rendered(ctx, b.Campaign, fire)
		if err == nil {
			break
		}
		if errors.Is(err, errPermanent) {
			return s.reject(ctx, r, RejectCampaign, err, b.Campaign)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("campaign not loaded; retrying", "campaign", b.Campaign, "err", err)
		if !retry.Sleep(ctx, jitter(backoff(s.cfg.Sender.RetryBase, s.cfg.Sender.RetryMax, attempt))) {
			return ctx.Err()
		}
	}

	key := b.Key()
	owner := s.owner + "-" + strconv.FormatUint(s.claims.Add(1), 10)
	st, err := s.claim(ctx, key, fire.ID, owner)
	if err != nil {
		return err
	}
	switch st {
	case guard.ClaimDone:
		s.m.batches.WithLabelValues(batchSkippedDone).Inc()
		return nil
	case guard.ClaimHeld:
		s.m.batches.WithLabelValues(batchSkippedHeld).Inc()
		s.log.Info("batch held by a live sender; leaving it", "batch", key, "fire", fire.ID)
		return nil
	}

	run := &batchRun{
		s: s, b: b, fire: fire, key: key, owner: owner, rend: rend,
		res: wire.Result{
			Campaign: b.Campaign, Platform: b.Platform, Seq: b.Seq, Generation: b.Generation,
			FireID: fire.ID, Kind: fire.Kind, Sender: s.cfg.InstanceID, Tokens: len(b.Tokens),
			FiredAt: fire.FiredAt, ReleasedAt: r.Timestamp, StartedAt: started,
		},
	}
	if st == guard.ClaimTakeover {
		run.takeover = true
		if err := s.retryRedis(ctx, "acked", func() error {
			v, err := s.guard.Acked(ctx, key, fire.ID)
			run.ans = guard.DecodeAnswers(v, len(b.Tokens))
			return err
		}); err != nil {
			return err
		}
	}
	err = run.run(ctx)
	switch {
	case errors.Is(err, guard.ErrLeaseLost):
		s.m.batches.WithLabelValues(batchLeaseLost).Inc()
		s.log.Warn("batch lease lost; another sender owns it now", "batch", key, "fire", fire.ID)
		return nil
	case err != nil:
		return err
	}
	result := batchSent
	if st == guard.ClaimTakeover {
		result = batchTakeover
	}
	s.m.batches.WithLabelValues(result).Inc()
	return nil
}

// claim takes the batch. While another sender holds it, it retries until
// that sender's lease could have expired: a dead holder's batch is then taken
// over. ClaimHeld from it means the holder kept renewing for longer than a
// whole lease: it is alive and sending the batch, leave it.
func (s *Stage) claim(ctx context.Context, key, fireID, owner string) (guard.ClaimState, error) {
	lease := s.cfg.Sender.ClaimLease
	var heldSince time.Time
	for {
		var st guard.ClaimState
		err := s.retryRedis(ctx, "claim", func() error {
			var err error
			st, err = s.guard.Claim(ctx, key, fireID, owner, lease)
			return err
		})
		if err != nil {
			return 0, err
		}
		if st != guard.ClaimHeld {
			return st, nil
		}
		if heldSince.IsZero() {
			heldSince = time.Now()
		}
		if time.Since(heldSince) > lease+lease/10 {
			return guard.ClaimHeld, nil
		}
		if !retry.Sleep(ctx, min(lease/10, 500*time.Millisecond)) {
			return 0, ctx.Err()
		}
	}
}

// reject routes a record that cannot be processed to the rejects topic with
// the reason, counts it, and finishes it (nil) once the reject is stored.
func (s *Stage) reject(ctx context.Context, r *kgo.Record, reason string, cause error, campaignID string) error {
	s.m.batches.WithLabelValues(batchRejected).Inc()
	s.log.Warn("send record rejected", "reason", reason, "partition", r.Partition, "offset", r.Offset, "err", cause)
	rec := &kgo.Record{
		Topic: s.cfg.Topics.Rejects, Key: r.Key, Value: r.Value,
		Headers: kafka.Headers(wire.RejectHeaders(reason, cause.Error(), campaignID, r.Topic, r.Partition, r.Offset)),
	}
	var p produced
	s.produce(&p, rec)
	return p.wait(ctx)
}

// produced waits for the records of one batch (feedback, result, reject).
type produced struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (s *Stage) produce(p *produced, rec *kgo.Record) {
	p.wg.Add(1)
	// Not the batch's context: a record once handed over is delivered even
	// if the batch is interrupted afterwards.
	s.cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
		if err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = fmt.Errorf("sender: produce to %s: %w", r.Topic, err)
			}
			p.mu.Unlock()
		}
		p.wg.Done()
	})
}

func (p *produced) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// batchRun is one claimed batch being sent.
type batchRun struct {
	s     *Stage
	b     *wire.Batch
	fire  wire.Fire
	key   string
	owner string
	rend  *campaign.Rendered // nil when the deadline passed before it loaded

	// takeover: an earlier holder's claim expired; what it did not ack
	// (everything, if it died before its first ack) is sent again.
	takeover bool

	mu      sync.Mutex // guards res, ans, next, fatal while groups of a round finish
	res     wire.Result
	ans     guard.Answers // bit i of Answered: token i answered; of Invalid / Failed: and how
	ackedAt time.Time
	next    []int // token indices to retry
	retryAt time.Duration
	fatal   error
	out     produced

	leaseMu sync.Mutex
	renewed time.Time // last successful claim/renew
	lost    bool
}

// run sends the batch in rounds, then marks it done and writes its result.
// It returns guard.ErrLeaseLost when another sender took the batch over, an
// error wrapping errFatal on a fatal provider answer, or ctx.Err().
func (run *batchRun) run(ctx context.Context) error {
	s := run.s
	lease := s.cfg.Sender.ClaimLease
	run.renewed = time.Now()

	// pending: the tokens still to send (on a takeover, those the previous
	// holder's bitmap does not list as answered).
	pending := make([]int, 0, len(run.b.Tokens))
	for i := range run.b.Tokens {
		if !guard.BitSet(run.ans.Answered, i) {
			pending = append(pending, i)
		}
	}
	if run.takeover {
		run.res.Resent = len(pending)
		run.countPrevious()
	}

	sendCtx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()
	renewDone := make(chan struct{})
	stopRenew := make(chan struct{})
	go func() { defer close(renewDone); run.renewLoop(sendCtx, cancelSend, stopRenew, lease) }()
	err := run.rounds(sendCtx, pending)
	close(stopRenew)
	<-renewDone

	run.leaseMu.Lock()
	lost := run.lost
	run.leaseMu.Unlock()
	switch {
	case lost:
		return guard.ErrLeaseLost
	case err != nil:
		// Fatal or interrupted: store what was answered, then hand the
		// batch back (release the claim) so that a peer takes it over at
		// once and sends only the rest, instead of after the lease. Best
		// effort, not under the dead ctx; without a stored ack the claim
		// is kept and expires with its lease.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handBackWait)
		if run.storeAck(actx) == nil && s.guard.Release(actx, run.key, run.fire.ID, run.owner) == nil {
			s.log.Info("batch handed back: claim released", "batch", run.key, "fire", run.fire.ID)
		}
		cancel()
		return err
	}

	// The result goes out (acknowledged by Kafka) BEFORE the batch is marked
	// done. A crash between the two leaves a batch whose ack bitmap covers
	// every answered token: the taker-over re-sends nothing and writes the
	// result again (the report keeps one per batch). The other order could
	// lose a batch's result for good: the redelivery would see "done" and
	// skip it, leaving the campaign short of its count.
	if err := run.storeAck(ctx); err != nil {
		return err
	}
	run.res.FinishedAt = time.Now()
	b, err := wire.Encode(&run.res)
	if err != nil {
		return err
	}
	s.produce(&run.out, &kgo.Record{Topic: s.cfg.Topics.Results, Key: []byte(run.key), Value: b})
	if err := run.out.wait(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: %w", errFatal, err)
	}
	return run.done(ctx)
}

// done marks the batch finished in the guard, waiting out Redis outages.
func (run *batchRun) done(ctx context.Context) error {
	s := run.s
	retried := false
	for range 2 {
		err := s.retryRedis(ctx, "done", func() error {
			err := s.guard.Done(ctx, run.key, run.fire.ID, run.owner)
			if errors.Is(err, guard.ErrUnavailable) {
				retried = true
			}
			return err
		})
		if !errors.Is(err, guard.ErrLeaseLost) {
			return err
		}
		st, err := run.claimAgain(ctx)
		switch {
		case err != nil:
			return err
		case st == guard.ClaimDone && retried:
			// An earlier attempt succeeded and its reply was lost.
			return nil
		case st != guard.ClaimOK && st != guard.ClaimTakeover:
			run.markLost()
			return guard.ErrLeaseLost
		}
		// Our lease had merely expired and nobody took the batch: ours
		// again, mark it done again.
	}
	run.markLost()
	return guard.ErrLeaseLost
}

// claimAgain re-claims the batch after a guard call said the lease was lost.
// The claim key is gone in two cases: another sender took the batch over
// (then Claim answers held or done), or our own lease expired unrenewed
// (a slow or paused process) and nobody took it, and then it is ours again
// (ClaimOK or ClaimTakeover), rather than a batch nobody completes.
func (run *batchRun) claimAgain(ctx context.Context) (guard.ClaimState, error) {
	s := run.s
	var st guard.ClaimState
	err := s.retryRedis(ctx, "claim", func() error {
		var err error
		st, err = s.guard.Claim(ctx, run.key, run.fire.ID, run.owner, s.cfg.Sender.ClaimLease)
		return err
	})
	if err == nil && (st == guard.ClaimOK || st == guard.ClaimTakeover) {
		run.leaseMu.Lock()
		run.renewed = time.Now()
		run.leaseMu.Unlock()
	}
	return st, err
}

// guarded runs a lease-checked guard call (Renew, Ack), waiting out Redis
// outages; on ErrLeaseLost it tries to claim the batch again and repeats the
// call once. ErrLeaseLost from it means another sender owns the batch.
func (run *batchRun) guarded(ctx context.Context, op string, f func() error) error {
	s := run.s
	err := s.retryRedis(ctx, op, f)
	if !errors.Is(err, guard.ErrLeaseLost) {
		return err
	}
	st, cerr := run.claimAgain(ctx)
	if cerr != nil {
		return cerr
	}
	if st == guard.ClaimOK || st == guard.ClaimTakeover {
		s.log.Warn("batch lease had expired unrenewed; claimed it again", "batch", run.key, "op", op)
		if err = s.retryRedis(ctx, op, f); !errors.Is(err, guard.ErrLeaseLost) {
			return err
		}
	}
	run.markLost()
	return guard.ErrLeaseLost
}

// renewLoop extends the lease every lease/3 until stop. When another sender
// owns the batch it cancels the send; while Redis is unreachable it keeps
// trying, faster.
func (run *batchRun) renewLoop(ctx context.Context, cancel context.CancelFunc, stop <-chan struct{}, lease time.Duration) {
	s := run.s
	every := lease / 3
	t := time.NewTimer(every)
	defer t.Stop()
	renew := func() error { return s.guard.Renew(ctx, run.key, run.fire.ID, run.owner, lease) }
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := renew()
		if errors.Is(err, guard.ErrLeaseLost) {
			err = run.guarded(ctx, "renew", renew)
		}
		switch {
		case err == nil:
			run.leaseMu.Lock()
			run.renewed = time.Now()
			run.leaseMu.Unlock()
			t.Reset(every)
		case errors.Is(err, guard.ErrLeaseLost):
			cancel()
			return
		default:
			t.Reset(min(every, 250*time.Millisecond))
		}
	}
}

func (run *batchRun) markLost() {
	run.leaseMu.Lock()
	run.lost = true
	run.leaseMu.Unlock()
}

// ensureLease makes sure the claim is still ours before a round starts when
// the background renewal has not succeeded for half a lease (Redis trouble):
// nothing is sent on a claim that may have expired.
func (run *batchRun) ensureLease(ctx context.Context) error {
	s := run.s
	lease := s.cfg.Sender.ClaimLease
	run.leaseMu.Lock()
	stale := time.Since(run.renewed) > lease/2
	lost := run.lost
	run.leaseMu.Unlock()
	if lost {
		return guard.ErrLeaseLost
	}
	if !stale {
		return nil
	}
	err := run.guarded(ctx, "renew", func() error {
		return s.guard.Renew(ctx, run.key, run.fire.ID, run.owner, lease)
	})
	if err == nil {
		run.leaseMu.Lock()
		run.renewed = time.Now()
		run.leaseMu.Unlock()
	}
	return err
}

// rounds sends pending tokens, retrying retryable answers with backoff until
// the deadline or an abort.
func (run *batchRun) rounds(ctx context.Context, pending []int) error {
	s := run.s
	cfg := s.cfg.Sender
	for round := 0; len(pending) > 0; round++ {
		ab, err := s.aborted(ctx, run.b.Campaign)
		if err != nil {
			return err
		}
		if ab {
			run.count(outcomeAborted, len(pending))
			return nil
		}
		if run.rend == nil || !time.Now().Before(run.fire.Deadline) {
			run.count(outcomeExpired, len(pending))
			return nil
		}
		if err := run.ensureLease(ctx); err != nil {
			return err
		}
		if rate := run.rate(); rate > 0 {
			if err := run.takeRate(ctx, rate, len(pending)); err != nil {
				return err
			}
			if !time.Now().Before(run.fire.Deadline) {
				run.count(outcomeExpired, len(pending))
				return nil
			}
		}
		if round > 0 {
			run.res.Retries += len(pending)
			s.m.retries.Add(float64(len(pending)))
		}
		run.next = run.next[:0]
		run.retryAt = 0
		run.sendRound(ctx, pending)
		if run.fatal != nil {
			return fmt.Errorf("%w: batch %s: %w", errFatal, run.key, run.fatal)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := run.storeAck(ctx); err != nil {
			return err
		}
		pending = append(pending[:0], run.next...)
		if len(pending) == 0 {
			break
		}
		wait := max(jitter(backoff(cfg.RetryBase, cfg.RetryMax, round)), run.retryAt)
		if time.Now().Add(wait).After(run.fire.Deadline) {
			run.count(outcomeExpired, len(pending))
			return nil
		}
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	return nil
}

// rate is the cap in notifications/s of this batch's campaign and platform:
// the lower of sender.rate_limit and the campaign's own rate_limit (a capped
// rehearsal), 0 when neither is set.
func (run *batchRun) rate() int {
	rate := run.s.cfg.Sender.RateLimit
	if c := run.rend.RateLimit(); c > 0 && (rate == 0 || c < rate) {
		rate = c
	}
	return rate
}

// takeRate takes n notifications from the global per campaign+platform
// bucket of the given rate, waiting for what is not granted yet.
func (run *batchRun) takeRate(ctx context.Context, rate, n int) error {
	s := run.s
	for n > 0 {
		var got int
		var wait time.Duration
		if err := s.retryRedis(ctx, "rate", func() error {
			var err error
			got, wait, err = s.guard.Take(ctx, run.b.Campaign, string(run.b.Platform), rate, rate, n)
			return err
		}); err != nil {
			return err
		}
		n -= got
		if n > 0 && !retry.Sleep(ctx, max(wait, time.Millisecond)) {
			return ctx.Err()
		}
	}
	return nil
}

// sendRound sends the pending tokens, one SendBatch per message (locales
// resolving to the same message share a call), all calls concurrently.
func (run *batchRun) sendRound(ctx context.Context, pending []int) {
	b := run.b
	// Group by message; most batches have one or a few locales.
	type group struct {
		msg    *push.Message
		idx    []int
		tokens []string
	}
	byLocale := make([]int, len(b.Locales)) // locale index -> group+1
	var groups []*group
	for _, i := range pending {
		li := b.Tokens[i].Locale
		gi := byLocale[li] - 1
		if gi < 0 {
			msg := run.rend.For(b.Platform, b.Locales[li])
			gi = -1
			for j, g := range groups {
				if g.msg == msg {
					gi = j
					break
				}
			}
			if gi < 0 {
				groups = append(groups, &group{msg: msg})
				gi = len(groups) - 1
			}
			byLocale[li] = gi + 1
		}
		g := groups[gi]
		g.idx = append(g.idx, i)
		g.tokens = append(g.tokens, b.Tokens[i].Token)
	}
	if len(groups) == 1 {
		run.sendGroup(ctx, groups[0].msg, groups[0].idx, groups[0].tokens, false)
		return
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run.sendGroup(ctx, g.msg, g.idx, g.tokens, true)
		}()
	}
	wg.Wait()
}

// sendGroup sends one message to tokens (batch indices idx) and applies the
// answers. With several groups in a round it also stores the answered
// bitmap at most every ackEvery.
func (run *batchRun) sendGroup(ctx context.Context, msg *push.Message, idx []int, tokens []string, midAck bool) {
	s := run.s
	s.m.inflight.Add(float64(len(tokens)))
	start := time.Now()
	results := s.push.SendBatch(ctx, msg, tokens)
	now := time.Now()
	s.m.inflight.Sub(float64(len(tokens)))
	s.m.batchDur.Observe(now.Sub(start).Seconds())
	// After a lease loss or shutdown (ctx done) the answers that did arrive
	// still count for the ack bitmap; the cut-off tokens are not retried.
	cut := ctx.Err() != nil
	sinceFire := now.Sub(run.fire.FiredAt)
	ms := uint32(max(0, sinceFire.Milliseconds()))
	secs := sinceFire.Seconds()
	var ok int
	var reasons map[string]int

	run.mu.Lock()
	for j, r := range results {
		i := idx[j]
		switch push.Classify(r.Err) {
		case push.ClassOK:
			ok++
			tms, tsecs := ms, secs
			if !r.At.IsZero() { // the token's own answer time, not the batch's
				d := r.At.Sub(run.fire.FiredAt)
				tms, tsecs = uint32(max(0, d.Milliseconds())), d.Seconds()
			}
			run.res.AcceptedMS = append(run.res.AcceptedMS, tms)
			run.ans.Answered = guard.SetBit(run.ans.Answered, i)
			if run.fire.Kind == wire.KindFire {
				s.m.fromFire.Observe(tsecs)
			} else {
				s.m.fromProof.Observe(tsecs)
			}
		case push.ClassInvalidToken:
			reason := push.Reason(r.Err)
			reasons = inc(reasons, reason)
			run.res.Invalid++
			s.m.invalid.Inc()
			run.ans.Answered = guard.SetBit(run.ans.Answered, i)
			run.ans.Invalid = guard.SetBit(run.ans.Invalid, i)
			run.feedback(tokens[j], reason, now)
		case push.ClassRejected:
			reasons = inc(reasons, push.Reason(r.Err))
			run.res.Failed++
			s.m.failed.Inc()
			run.ans.Answered = guard.SetBit(run.ans.Answered, i)
			run.ans.Failed = guard.SetBit(run.ans.Failed, i)
		case push.ClassFatal:
			reasons = inc(reasons, push.Reason(r.Err))
			if run.fatal == nil {
				run.fatal = r.Err
			}
		default: // retryable
			if cut {
				continue // cut off by us, not by the provider
			}
			reasons = inc(reasons, push.Reason(r.Err))
			run.next = append(run.next, i)
			run.retryAt = max(run.retryAt, push.RetryWait(r.Err))
		}
	}
	run.res.Accepted += ok
	for reason, n := range reasons {
		if run.res.Reasons == nil {
			run.res.Reasons = map[string]int{}
		}
		run.res.Reasons[reason] += n
	}
	var snapshot []byte
	if midAck && now.Sub(run.ackedAt) >= ackEvery {
		snapshot = run.ans.Encode(len(run.b.Tokens))
		run.ackedAt = now
	}
	run.mu.Unlock()

	if ok > 0 {
		s.m.accepted.Add(float64(ok))
		s.m.respOK.Add(float64(ok))
		s.firstAccepted(run.fire, now)
	}
	for reason, n := range reasons {
		s.m.responses.WithLabelValues(reason).Add(float64(n))
	}
	if snapshot != nil && ctx.Err() == nil {
		// Best effort between the groups of a round; the end of the round
		// stores the bitmap for sure, and settles a lost lease.
		_ = s.guard.Ack(ctx, run.key, run.fire.ID, run.owner, snapshot)
	}
}

func inc(m map[string]int, k string) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[k]++
	return m
}

// feedback reports an invalid token to the feedback topic (keyed by token).
// Called with run.mu held.
func (run *batchRun) feedback(token, reason string, at time.Time) {
	fb := wire.Feedback{Token: token, Platform: run.b.Platform, Reason: reason, Campaign: run.b.Campaign, At: at.UTC()}
	v, err := wire.Encode(&fb)
	if err != nil {
		return
	}
	run.s.produce(&run.out, &kgo.Record{Topic: run.s.cfg.Topics.Feedback, Key: []byte(token), Value: v})
}

// countPrevious counts, on a takeover, the tokens the previous holder
// answered (and acked) as they were answered: accepted, invalid or rejected.
// The provider's reasons and answer times died with that holder, so they are
// listed as Reasons answered_before_takeover, invalid_before_takeover and
// failed_before_takeover. Invalid tokens are reported to the feedback topic
// again: the previous holder may have died before its feedback record was
// delivered, and a second feedback record for a token is harmless.
func (run *batchRun) countPrevious() {
	run.mu.Lock()
	defer run.mu.Unlock()
	now := time.Now()
	var accepted, invalid, failed int
	for i, tok := range run.b.Tokens {
		switch {
		case !guard.BitSet(run.ans.Answered, i):
		case guard.BitSet(run.ans.Invalid, i):
			invalid++
			run.feedback(tok.Token, "invalid_before_takeover", now)
		case guard.BitSet(run.ans.Failed, i):
			failed++
		default:
			accepted++
		}
	}
	run.res.Accepted += accepted
	run.res.Invalid += invalid
	run.res.Failed += failed
	for reason, n := range map[string]int{"answered_before_takeover": accepted,
		"invalid_before_takeover": invalid, "failed_before_takeover": failed} {
		if n > 0 {
			run.addReason(reason, n)
		}
	}
}

// storeAck writes the batch's answers (end of a round), waiting out
// Redis outages; ErrLeaseLost means another sender owns the batch.
func (run *batchRun) storeAck(ctx context.Context) error {
	run.mu.Lock()
	if len(run.ans.Answered) == 0 {
		run.mu.Unlock()
		return nil
	}
	snapshot := run.ans.Encode(len(run.b.Tokens))
	run.ackedAt = time.Now()
	run.mu.Unlock()
	return run.guarded(ctx, "ack", func() error {
		return run.s.guard.Ack(ctx, run.key, run.fire.ID, run.owner, snapshot)
	})
}

// count adds n tokens with a final outcome that needs no provider answer.
func (run *batchRun) count(outcome string, n int) {
	run.mu.Lock()
	defer run.mu.Unlock()
	switch outcome {
	case outcomeExpired:
		run.res.Expired += n
		run.s.m.expired.Add(float64(n))
	case outcomeAborted:
		run.res.Aborted += n
		run.s.m.aborted.Add(float64(n))
	}
}

func (run *batchRun) addReason(reason string, n int) {
	if run.res.Reasons == nil {
		run.res.Reasons = map[string]int{}
	}
	run.res.Reasons[reason] += n
}
