package sender

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

// DefaultGroup is the consumer group prefix when sender.group is empty
// (config.SenderConfig.GroupOf names the groups).
const DefaultGroup = config.DefaultSenderGroup

// Timings that are not worth a config key.
const (
	heartbeatEvery  = 5 * time.Second
	abortCacheTTL   = 250 * time.Millisecond
	ackEvery        = 100 * time.Millisecond
	drainGrace      = 10 * time.Second // in-flight batches may finish after ctx is cancelled
	handBackWait    = 2 * time.Second  // an interrupted batch's last ack and claim release
	commitTimeout   = 10 * time.Second
	flushTimeout    = 5 * time.Second
	revokeWait      = 20 * time.Second // longest a rebalance waits for revoked partitions' batches
	redisBackoff    = 50 * time.Millisecond
	redisBackoffCap = 2 * time.Second
)

// ShutdownTimeout bounds how long a sender takes to exit once its context is
// cancelled (SIGTERM): in-flight batches finish (drainGrace) or are handed
// back (their ack stored and claim released), the finished offsets are
// committed, Close flushes the produced records and leaves the group, which
// commits once more in the revoke. A pod's terminationGracePeriodSeconds
// must be longer (deploy/k8s; internal/deploytest checks it).
const ShutdownTimeout = drainGrace + handBackWait + commitTimeout + flushTimeout + commitTimeout

// Guard is what the sender needs of the Redis guard (guard.Guard). Every
// call fails with guard.ErrUnavailable while Redis does not answer; the
// lease-checked ones (Renew, Ack, Done, Release) with guard.ErrLeaseLost
// once owner no longer holds the batch's claim.
type Guard interface {
	// Claim takes the batch (batchKey, fireID) for owner with a lease.
	Claim(ctx context.Context, batchKey, fireID, owner string, lease time.Duration) (guard.ClaimState, error)
	// Renew extends owner's lease.
	Renew(ctx context.Context, batchKey, fireID, owner string, lease time.Duration) error
	// Ack stores the batch's answered tokens (guard.Answers.Encode).
	Ack(ctx context.Context, batchKey, fireID, owner string, bitmap []byte) error
	// Acked returns the stored answers (nil if none), for a takeover.
	Acked(ctx context.Context, batchKey, fireID string) ([]byte, error)
	// Done marks the batch finished; later deliveries are skipped.
	Done(ctx context.Context, batchKey, fireID, owner string) error
	// Release hands back owner's claim before its lease ends (Ack first).
	Release(ctx context.Context, batchKey, fireID, owner string) error
	// Take asks the campaign's token bucket for n sends; it returns how many
	// were granted and, if fewer, how long until the rest could be.
	Take(ctx context.Context, campaign, platform string, rate, burst, n int) (int, time.Duration, error)
	// FireOf returns the campaign's fire record, if it fired (Restored when
	// control rewrote a lost one).
	FireOf(ctx context.Context, campaign string) (guard.FireRecord, bool, error)
	// Aborted returns the campaign's abort record, if it was aborted.
	Aborted(ctx context.Context, campaign string) (guard.AbortRecord, bool, error)
	// Warm loads the scripts and opens up to conns connections.
	Warm(ctx context.Context, conns int) error
}

// Deps are the clients a Stage uses; the caller owns them and closes them
// after Close.
type Deps struct {
	Registry *prometheus.Registry
	Log      *slog.Logger
	Guard    Guard
	// Push is the adapter of cfg.Sender.Platform.
	Push push.Sender
}

// Stage is one sender instance: a member of its platform's consumer group
// on the platform's send topic.
type Stage struct {
	cfg      *config.Config
	log      *slog.Logger
	guard    Guard
	push     push.Sender
	platform push.Platform
	role     string
	topic    string
	group    string
	owner    string // instance id + a random nonce; a counter is appended per claim
	claims   atomic.Uint64

	cl    *kgo.Client
	cat   *catalog.Catalog
	camps *campaigns // the campaigns topic tailed and rendered; cat is the fallback
	m     *stageMetrics

	offs       *offsets
	commitMu   sync.Mutex // serialises commits with revocations
	commitWake chan struct{}
	slots      chan struct{}

	rmu     sync.Mutex
	renders map[string]*renderEntry

	amu    sync.Mutex
	aborts map[string]abortEntry

	checks fireChecks // each campaign's verified fire (verify.go)

	fmu   sync.Mutex
	fires map[string]struct{} // fire ids whose first accepted send was observed

	prepared  atomic.Bool
	joined    atomic.Bool
	prepErr   atomic.Pointer[string]
	fatalMu   sync.Mutex
	fatalErr  error
	runCancel context.CancelCauseFunc
	workers   sync.WaitGroup
}

// New builds the stage: validates the platform, creates the Kafka client
// (consumer group member and producer) and registers the metrics. It does not
// connect; Run does.
func New(cfg *config.Config, deps Deps) (*Stage, error) {
	p := push.Platform(cfg.Sender.Platform)
	if !p.Valid() {
		return nil, fmt.Errorf("sender: sender.platform must be ios or android, got %q", cfg.Sender.Platform)
	}
	if deps.Guard == nil || deps.Push == nil || deps.Registry == nil {
		return nil, errors.New("sender: Deps.Guard, Deps.Push and Deps.Registry are required")
	}
	if deps.Push.Platform() != p {
		return nil, fmt.Errorf("sender: adapter serves %s, sender.platform is %s", deps.Push.Platform(), p)
	}
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Stage{
		cfg: cfg, guard: deps.Guard, push: deps.Push, platform: p,
		role: wire.RoleSenderIOS, topic: cfg.Topics.SendIOS,
		offs: newOffsets(), commitWake: make(chan struct{}, 1),
		slots:   make(chan struct{}, cfg.Sender.BatchesInFlight),
		renders: map[string]*renderEntry{}, aborts: map[string]abortEntry{}, fires: map[string]struct{}{},
		checks: fireChecks{m: map[string]*fireCheck{}},
	}
	if p == push.Android {
		s.role, s.topic = wire.RoleSenderAndroid, cfg.Topics.SendAndroid
	}
	s.group = cfg.Sender.GroupOf(string(p))
	var nonce [4]byte
	_, _ = crand.Read(nonce[:])
	s.owner = cfg.InstanceID + "/" + hex.EncodeToString(nonce[:])
	s.log = log.With("stage", "sender", "platform", string(p), "group", s.group)

	var err error
	if s.m, err = newStageMetrics(deps.Registry, string(p)); err != nil {
		return nil, err
	}
	s.cl, err = kafka.NewClient(cfg, append(groupOpts(cfg),
		kgo.ConsumerGroup(s.group),
		// A killed sender's partitions move after 10 s, not the default 45 s.
		kgo.SessionTimeout(10*time.Second),
		kgo.ConsumeTopics(s.topic),
		// Not read_committed: the batch guard, not the isolation level,
		// makes sends once; see "Why read_uncommitted" in doc.go.
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		metrics.KafkaHooks(deps.Registry, "sender-"+string(p)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if s.cat, err = catalog.New(cfg, s.cl); err != nil {
		s.cl.Close()
		return nil, fmt.Errorf("sender: %w", err)
	}
	if s.camps, err = newCampaigns(cfg, kadm.NewClient(s.cl), s.log); err != nil {
		s.cl.Close()
		return nil, err
	}
	lag := metrics.NewLagCollector(kadm.NewClient(s.cl), s.group)
	if err := metrics.Register(deps.Registry, &lag); err != nil {
		s.cl.Close()
		return nil, fmt.Errorf("sender: %w", err)
	}
	return s, nil
}

// groupOpts are the group protocol options of sender.group_protocol and
// sender.static_membership (see "Consumer group" in doc.go).
func groupOpts(cfg *config.Config) []kgo.Opt {
	var opts []kgo.Opt
	switch cfg.Sender.GroupProtocol {
	case config.GroupEager:
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()))
	case config.GroupConsumer:
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer())
	default:
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	if cfg.Sender.StaticMembership {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	return opts
}

// Group is the consumer group this stage joins.
func (s *Stage) Group() string { return s.group }

// Ready reports whether the stage can send at GO: provider connections
// prepared and the consumer group joined, no fatal error. For /readyz.
func (s *Stage) Ready() error {
	if err := s.fatal(); err != nil {
		return fmt.Errorf("sender: stopped: %w", err)
	}
	if !s.prepared.Load() {
		if p := s.prepErr.Load(); p != nil {
			return fmt.Errorf("sender: provider not prepared: %s", *p)
		}
		return errors.New("sender: provider not prepared yet")
	}
	if !s.joined.Load() {
		return errors.New("sender: consumer group not joined yet")
	}
	return nil
}

func (s *Stage) fatal() error {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	return s.fatalErr
}

// fail records a fatal error (the first one wins) and stops the poll loop.
func (s *Stage) fail(err error) {
	s.fatalMu.Lock()
	if s.fatalErr == nil {
		s.fatalErr = err
	}
	s.fatalMu.Unlock()
	s.m.fatal.Set(1)
	if s.runCancel != nil {
		s.runCancel(err)
	}
}

// Run prepares the provider, joins the group and sends until ctx is done or a
// fatal provider error occurs (returned). On ctx cancellation it stops
// polling, lets in-flight batches finish for a grace period, commits what is
// finished and returns nil.
func (s *Stage) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.runCancel = cancel
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	hbDone := make(chan struct{})
	go func() { defer close(hbDone); s.heartbeat(runCtx) }()
	// The campaigns are tailed from now on (while the provider is being
	// prepared), so a fire's first batch finds its campaign rendered.
	tailCtx, stopTail := context.WithCancel(context.WithoutCancel(ctx))
	tailDone := make(chan struct{})
	go func() { defer close(tailDone); s.camps.run(tailCtx) }()
	defer func() { stopTail(); <-tailDone }()

	if err := s.prepare(runCtx); err != nil {
		cancel(nil)
		<-hbDone
		if ctx.Err() != nil && s.fatal() == nil {
			return nil
		}
		return err
	}

	commitDone := make(chan struct{})
	commitCtx, stopCommit := context.WithCancel(context.WithoutCancel(ctx))
	go func() { defer close(commitDone); s.commitLoop(commitCtx) }()

	s.poll(runCtx, workCtx)

	// Drain: in-flight batches finish (or are cut off after the grace, or at
	// once after a fatal error), then the finished offsets are committed.
	if s.fatal() != nil {
		cancelWork()
	}
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainGrace):
		s.log.Warn("in-flight batches did not finish in time; interrupting them", "grace", drainGrace)
		cancelWork()
		<-done
	}
	stopCommit()
	<-commitDone
	s.commitNow(context.Background(), nil)
	cancel(nil)
	<-hbDone
	s.publishStatus(wire.StateStopped)
	if err := s.fatal(); err != nil {
		return err
	}
	return nil
}

// Close leaves the group and closes the Kafka client (after Run returned).
// The injected guard and adapter are the caller's to close.
func (s *Stage) Close() error {
	flushCtx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	_ = s.cl.Flush(flushCtx)
	s.cl.CloseAllowingRebalance()
	return nil
}

// prepare warms the adapter, retrying retryable failures until ctx is done.
func (s *Stage) prepare(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := s.push.Prepare(ctx)
		if err == nil {
			s.warmGuard(ctx)
			s.prepErr.Store(nil)
			s.prepared.Store(true)
			s.log.Info("provider prepared")
			s.publishStatus("")
			return nil
		}
		msg := err.Error()
		s.prepErr.Store(&msg)
		if push.Classify(err) == push.ClassFatal {
			err = fmt.Errorf("sender: prepare %s: %w", s.platform, err)
			s.log.Error("provider refused credentials or configuration; not sending", "err", err)
			s.fail(err)
			s.publishStatus("")
			return err
		}
		s.log.Warn("prepare failed; retrying", "err", err, "attempt", attempt+1)
		s.publishStatus("")
		if !retry.Sleep(ctx, jitter(backoff(s.cfg.Sender.RetryBase, s.cfg.Sender.RetryMax, attempt))) {
			return ctx.Err()
		}
	}
}

// poll is the consume loop: it polls only as many records as there are free
// batch slots, hands each to a worker goroutine and allows rebalances again.
func (s *Stage) poll(ctx, workCtx context.Context) {
	for {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
	more:
		for free < cap(s.slots) {
			select {
			case s.slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		fetches := s.cl.PollRecords(ctx, free)
		fetches.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil && !errors.Is(err, kgo.ErrClientClosed) && !errors.Is(err, context.Canceled) {
				s.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		recs := fetches.Records()
		for _, r := range recs {
			e := s.offs.add(r.Partition, r.Offset, r.LeaderEpoch)
			s.workers.Add(1)
			go s.work(workCtx, r, e)
		}
		for range free - len(recs) {
			<-s.slots
		}
		s.cl.AllowRebalance()
		if ctx.Err() != nil {
			return
		}
	}
}

// work processes one record in its slot.
func (s *Stage) work(ctx context.Context, r *kgo.Record, e *entry) {
	defer s.workers.Done()
	defer func() { <-s.slots }()
	err := s.handle(ctx, r)
	switch {
	case err == nil:
		s.offs.finish(e)
		select {
		case s.commitWake <- struct{}{}:
		default:
		}
	case errors.Is(err, errFatal):
		s.offs.abandon(e)
		s.log.Error("fatal provider answer; stopping the stage", "partition", r.Partition, "offset", r.Offset, "err", err)
		s.fail(err)
	default:
		s.offs.abandon(e)
		// Interrupted by shutdown: not finished, not committed; the next
		// owner of the partition gets it again (and the guard decides).
		s.m.batches.WithLabelValues(batchInterrupted).Inc()
		s.log.Info("batch interrupted", "partition", r.Partition, "offset", r.Offset, "err", err)
	}
}

// commitLoop commits finished offsets soon after batches finish, coalescing.
func (s *Stage) commitLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.commitWake:
			s.commitNow(ctx, nil)
		}
	}
}

// commitNow commits the finished offsets of partitions (nil: all tracked).
func (s *Stage) commitNow(ctx context.Context, partitions []int32) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.commitLocked(ctx, partitions)
}

func (s *Stage) commitLocked(ctx context.Context, partitions []int32) {
	offs := s.offs.uncommitted()
	if partitions != nil {
		offs = only(offs, partitions)
	}
	if len(offs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	var ok bool
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("commit failed", "err", err)
				}
				return
			}
			ok = true
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 {
						ok = false
						s.log.Warn("commit refused", "partition", p.Partition, "code", p.ErrorCode)
					}
				}
			}
		})
	if ok {
		s.offs.markCommitted(offs)
	}
}

func (s *Stage) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.joined.Store(true)
	if len(assigned[s.topic]) > 0 {
		s.log.Info("partitions assigned", "partitions", assigned[s.topic])
	}
	s.publishStatus("")
}

// onRevoked lets the revoked partitions' in-flight batches finish (bounded),
// commits them and forgets them, so a commit never lands on a partition
// another member owns.
func (s *Stage) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	parts := revoked[s.topic]
	if len(parts) == 0 {
		return
	}
	if !s.offs.waitIdle(parts, revokeWait) {
		s.log.Warn("revoked partitions still have batches in flight; not committing them (the guard skips them on redelivery)",
			"partitions", parts)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.commitLocked(ctx, parts)
	s.offs.drop(parts)
	s.log.Info("partitions revoked", "partitions", parts)
}

func (s *Stage) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.joined.Store(false)
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.offs.drop(lost[s.topic])
	s.log.Warn("partitions lost", "partitions", lost[s.topic])
}

// heartbeat publishes the instance status at start and every 5 s.
func (s *Stage) heartbeat(ctx context.Context) {
	s.publishStatus("")
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.publishStatus("")
			if s.offs.inFlight(nil) == 0 && s.prepared.Load() {
				s.warmGuard(ctx)
			}
		}
	}
}

// warmGuard loads the guard's scripts and opens one Redis connection per
// batch slot, so the first claims at GO do not dial. Repeated while idle:
// it re-loads the scripts after a Redis restart and replaces connections
// closed since. A failure only costs latency later; the claims report
// Redis trouble themselves.
func (s *Stage) warmGuard(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, heartbeatEvery)
	defer cancel()
	if err := s.guard.Warm(wctx, cap(s.slots)); err != nil && ctx.Err() == nil {
		s.log.Debug("redis warm-up failed", "err", err)
	}
}

// publishStatus produces the instance's status record; state "" derives it:
// loading before the first Prepare answer, ready, or error.
func (s *Stage) publishStatus(state wire.State) {
	st := wire.Status{Role: s.role, Instance: s.cfg.InstanceID, At: time.Now().UTC(), Connected: s.prepared.Load()}
	if state == "" {
		err := s.Ready()
		switch {
		case err == nil:
			state = wire.StateReady
		case !s.prepared.Load() && s.prepErr.Load() == nil && s.fatal() == nil:
			state = wire.StateLoading
		default:
			state = wire.StateError
			st.Error = err.Error()
		}
	}
	st.State = state
	b, err := wire.Encode(&st)
	if err != nil {
		return
	}
	rec := &kgo.Record{Topic: s.cfg.Topics.Status, Key: []byte(wire.StatusKey("", s.role, s.cfg.InstanceID)), Value: b}
	s.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			s.log.Debug("status not published", "err", err)
		}
	})
}

// renderEntry is a campaign rendered once per fire; concurrent batches of the
// same fire wait for one load.
type renderEntry struct {
	ready chan struct{}
	r     *campaign.Rendered
	err   error
}

// errPermanent marks a campaign that cannot be sent (unknown or invalid).
var errPermanent = errors.New("sender: campaign cannot be sent")

// rendered returns the campaign rendered for the fire (cached per campaign
// and fire id). Errors wrapping errPermanent will not go away by retrying.
func (s *Stage) rendered(ctx context.Context, id string, fire wire.Fire) (*campaign.Rendered, error) {
	k := id + "\x00" + fire.ID
	s.rmu.Lock()
	e, ok := s.renders[k]
	if !ok {
		if len(s.renders) > 256 {
			clear(s.renders)
		}
		e = &renderEntry{ready: make(chan struct{})}
		s.renders[k] = e
	}
	s.rmu.Unlock()
	if !ok {
		e.r, e.err = s.load(ctx, id, fire)
		if e.err != nil {
			s.rmu.Lock()
			delete(s.renders, k)
			s.rmu.Unlock()
		}
		close(e.ready)
	}
	select {
	case <-e.ready:
		return e.r, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Stage) load(ctx context.Context, id string, fire wire.Fire) (*campaign.Rendered, error) {
	r, err := s.camps.lookup(ctx, id)
	switch {
	case errors.Is(err, errBehind):
		s.log.Warn("campaigns tail behind the topic; reading the campaign from the catalog", "campaign", id)
		return s.loadCatalog(ctx, id, fire)
	case errors.Is(err, catalog.ErrNotFound):
		return nil, fmt.Errorf("%w: %w", errPermanent, err)
	case err != nil:
		return nil, err
	}
	return r.WithFireTime(fire.FiredAt), nil
}

// loadCatalog reads the campaign with a snapshot of the campaigns topic (a
// new Kafka client per call): the fallback when the tail is not available.
func (s *Stage) loadCatalog(ctx context.Context, id string, fire wire.Fire) (*campaign.Rendered, error) {
	def, err := s.cat.Campaign(ctx, id)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", errPermanent, err)
		}
		return nil, err
	}
	r, err := def.Render()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPermanent, err)
	}
	return r.WithFireTime(fire.FiredAt), nil
}

type abortEntry struct {
	aborted bool
	at      time.Time
}

// aborted reports whether the campaign was aborted, asking Redis at most
// every 250 ms per campaign; while Redis is unreachable it waits (fail
// closed: nothing is sent without knowing).
func (s *Stage) aborted(ctx context.Context, id string) (bool, error) {
	s.amu.Lock()
	e, ok := s.aborts[id]
	s.amu.Unlock()
	if ok && time.Since(e.at) < abortCacheTTL {
		return e.aborted, nil
	}
	var ab bool
	err := s.retryRedis(ctx, "aborted", func() error {
		var err error
		_, ab, err = s.guard.Aborted(ctx, id)
		return err
	})
	if err != nil {
		return false, err
	}
	s.amu.Lock()
	if len(s.aborts) > 1024 {
		clear(s.aborts)
	}
	s.aborts[id] = abortEntry{aborted: ab, at: time.Now()}
	s.amu.Unlock()
	return ab, nil
}

// firstAccepted observes trigger_to_first_send once per fire and instance
// (not for proofs: a proof is not GO).
func (s *Stage) firstAccepted(fire wire.Fire, now time.Time) {
	if fire.Kind != wire.KindFire {
		return
	}
	s.fmu.Lock()
	_, seen := s.fires[fire.ID]
	if !seen {
		if len(s.fires) > 1024 {
			clear(s.fires)
		}
		s.fires[fire.ID] = struct{}{}
	}
	s.fmu.Unlock()
	if !seen {
		s.m.firstSend.Observe(now.Sub(fire.FiredAt).Seconds())
	}
}

// retryRedis runs f until it succeeds or fails with something other than
// guard.ErrUnavailable, backing off while Redis is unreachable: no batch is
// sent without its claim, and a batch completes when Redis returns.
func (s *Stage) retryRedis(ctx context.Context, op string, f func() error) error {
	wait := redisBackoff
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || !errors.Is(err, guard.ErrUnavailable) {
			return err
		}
		if attempt == 0 || attempt%20 == 0 {
			s.log.Warn("redis unavailable; waiting", "op", op, "err", err, "attempt", attempt+1)
		}
		if !retry.Sleep(ctx, jitter(wait)) {
			return ctx.Err()
		}
		wait = min(2*wait, redisBackoffCap)
	}
}

// backoff is the exponential ceiling for attempt (0-based): base·2^attempt,
// at most max.
func backoff(base, max time.Duration, attempt int) time.Duration {
	if attempt > 30 {
		return max
	}
	d := base << attempt
	if d <= 0 || d > max {
		return max
	}
	return d
}

// jitter is "full jitter": uniform in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}
