package planner

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/wire"
)

// Group is the planner's consumer group on the control topic: derived from
// the topic name, so deployments (and tests) with their own topics get their
// own group.
func (s *Stage) Group() string { return s.cfg.Topics.Control + ".planner" }

// Run is service mode: it consumes the control topic in the planner's group
// and plans the campaign of every wire.Control{Type: plan} record, reporting
// wire.Status records (role planner; state planning, then planned or error)
// on the status topic. A request that an existing manifest already answers
// (planned after the request was made) is skipped, so a restarted or new
// group replaying the control topic does not re-plan everything. Offsets are
// committed after each request is handled. When ctx is cancelled (SIGTERM)
// no new request is taken and the plan in progress gets PlanDrain to finish
// and be committed; one still running then is aborted, and its request is
// handled again by the next instance. Run returns nil on cancellation and an
// error only when it cannot consume at all.
func (s *Stage) Run(ctx context.Context) error {
	cl, err := kafka.NewClient(s.cfg,
		kgo.ConsumeTopics(s.cfg.Topics.Control),
		kgo.ConsumerGroup(s.Group()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		metrics.KafkaHooks(s.reg, "planner-control"),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	// A poll interrupted by cancellation still holds the rebalance block,
	// and Close must leave the group: release it first (defers run LIFO).
	defer cl.AllowRebalance()
	work, stopWork := drainContext(ctx, PlanDrain)
	defer stopWork()
	s.status(ctx, wire.Status{State: wire.StateReady})
	s.log.Info("planner consuming plan requests", "topic", s.cfg.Topics.Control, "group", s.Group())
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fetchErr error
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				fetchErr = err
				s.log.Warn("fetch control topic", "topic", topic, "partition", p, "err", err)
			}
		})
		var done []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if ctx.Err() != nil {
				return
			}
			if s.handle(work, r) {
				done = append(done, r)
			}
		})
		if len(done) > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := cl.CommitRecords(cctx, done...); err != nil {
				s.log.Warn("commit control offsets", "err", err)
			}
			cancel()
		}
		cl.AllowRebalance()
		if fetchErr != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// handle processes one control record; it returns false when the record
// must be handled again (ctx cancelled mid-plan).
func (s *Stage) handle(ctx context.Context, r *kgo.Record) bool {
	var c wire.Control
	if err := wire.Decode(r.Value, &c); err != nil {
		s.log.Warn("skipping undecodable control record", "partition", r.Partition, "offset", r.Offset, "err", err)
		return true
	}
	if c.Type != wire.ControlPlan || c.Campaign == "" {
		return true
	}
	if m, err := s.cat.Manifest(ctx, c.Campaign); err == nil && !m.PlannedAt.Before(c.At) {
		s.log.Info("plan request already answered", "campaign", c.Campaign, "requested", c.At,
			"generation", m.Generation, "planned_at", m.PlannedAt)
		return true
	} else if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		if ctx.Err() != nil {
			return false
		}
		s.log.Warn("read manifest before planning", "campaign", c.Campaign, "err", err)
	}
	s.log.Info("plan requested", "campaign", c.Campaign, "by", c.By)
	s.status(ctx, wire.Status{Campaign: c.Campaign, State: wire.StatePlanning})
	by := c.By
	if by == "" {
		by = "control"
	}
	m, err := s.Plan(ctx, c.Campaign, by, nil)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		s.status(ctx, wire.Status{Campaign: c.Campaign, State: wire.StateError, Error: err.Error()})
		return true
	}
	s.status(ctx, wire.Status{Campaign: c.Campaign, State: wire.StatePlanned, Generation: m.Generation,
		Batches: m.Batches(), Tokens: m.Tokens()})
	return true
}

// status writes a planner status record (best effort: it is a report).
func (s *Stage) status(ctx context.Context, st wire.Status) {
	st.Role, st.Instance, st.At = wire.RolePlanner, s.cfg.InstanceID, time.Now().UTC()
	val, err := wire.Encode(&st)
	if err != nil {
		s.log.Warn("encode status", "err", err)
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: s.cfg.Topics.Status, Key: []byte(wire.StatusKey(st.Campaign, st.Role, st.Instance)), Value: val}
	if err := s.cl.ProduceSync(sctx, rec).FirstErr(); err != nil {
		s.log.Warn("write status", "campaign", st.Campaign, "state", st.State, "err", err)
	}
}

// PlanDrain is how long a plan in progress at shutdown may go on, and
// ShutdownTimeout bounds the whole exit (the drain, then the commit of the
// request's offset); the pod's terminationGracePeriodSeconds is longer
// (internal/deploytest checks it).
const (
	PlanDrain       = 20 * time.Second
	ShutdownTimeout = PlanDrain + 10*time.Second
)

// drainContext returns a context that ends d after ctx does (or when the
// returned cancel is called): work already started finishes, bounded.
func drainContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-work.Done():
		}
	})
	return work, func() { stop(); cancel() }
}
