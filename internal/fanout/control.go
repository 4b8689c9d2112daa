package fanout

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

// readControl reads every partition of the control topic from its start,
// without a group, and applies each record. Records up to the end offsets
// taken at start are a replay: they only rebuild state; work is scheduled
// once the replay is complete (goLive), so a restart does not load every
// campaign ever prepared on the way.
func (s *Stage) readControl(ctx context.Context) error {
	topic := s.cfg.Topics.Control
	var ends kafka.SnapshotEnd
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		var err error
		ends, err = kafka.SnapshotEnds(ctx, s.adm, topic, nil)
		if err == nil {
			break
		}
		s.log.Warn("fanout: control topic end offsets, retrying", "err", err)
		if !retry.Sleep(ctx, backoff) {
			return ctx.Err()
		}
	}
	cl, err := kafka.NewClient(s.cfg,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // so a partition ending in a commit marker still reaches its end
		kgo.FetchMaxWait(controlWait),
		hooks(s.reg, "fanout-control"),
	)
	if err != nil {
		return fmt.Errorf("fanout: control reader: %w", err)
	}
	defer cl.Close()

	pending := map[int32]int64{}
	for p, end := range ends {
		if end > 0 {
			pending[p] = end
		}
	}
	if len(pending) == 0 {
		s.goLive()
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("fanout: control fetch", "partition", p, "err", err)
		})
		wasPending := len(pending) > 0
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				s.handleControl(ctx, r, len(pending) == 0)
			}
			if end, ok := pending[r.Partition]; ok && r.Offset >= end-1 {
				delete(pending, r.Partition)
			}
		})
		if wasPending && len(pending) == 0 {
			s.goLive()
		}
	}
}

// handleControl applies one control record. live is false during the
// start-up replay.
func (s *Stage) handleControl(ctx context.Context, r *kgo.Record, live bool) {
	var c wire.Control
	if err := wire.Decode(r.Value, &c); err != nil || c.Campaign == "" {
		s.m.ignored.WithLabelValues(IgnoredBadRecord).Inc()
		s.log.Warn("fanout: undecodable control record", "offset", r.Offset, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.campaignLocked(c.Campaign)
	switch c.Type {
	case wire.ControlPrepare, wire.ControlPlan:
		// A plan record re-loads a prepared campaign (a re-plan replaced
		// its batches); it prepares nothing by itself.
		if c.Type == wire.ControlPlan && !cs.prepared {
			return
		}
		cs.prepared = true
		if cs.fire != nil || cs.aborted {
			return
		}
		cs.sumState = sumUnknown
		if s.live {
			s.log.Info("fanout: prepare", "campaign", c.Campaign, "by", c.By)
			for _, p := range s.readyPartsLocked() {
				cs.loading[p.id] = true
				p.enqueue(job{kind: jobLoad, campaign: cs.id})
			}
			s.publishLocked(cs, true)
		}
	case wire.ControlFire:
		s.onFireLocked(ctx, cs, c, r.Timestamp, live)
	case wire.ControlProof:
		if cs.aborted {
			s.m.ignored.WithLabelValues(IgnoredAborted).Inc()
			return
		}
		cs.proofs = append(cs.proofs, c)
		if p := s.parts[0]; s.live && p != nil && p.ready {
			p.enqueue(job{kind: jobProof, campaign: cs.id, proof: c})
		}
	case wire.ControlAbort:
		s.abortLocked(cs, c.By)
	default:
		s.log.Debug("fanout: control record ignored", "type", c.Type, "campaign", c.Campaign)
	}
}

// onFireLocked starts verifying a trigger against the Redis guard. Once the
// control log holds a verified fire record of the campaign, no other fire id
// is considered: the log, unlike Redis, cannot lose it. The verification runs outside the lock
// (it may retry for as long as Redis is unreachable); only a verified winner
// is released.
func (s *Stage) onFireLocked(ctx context.Context, cs *campState, c wire.Control, ts time.Time, live bool) {
	if cs.firstFire == "" && c.Verified {
		cs.firstFire = c.FireID
	}
	switch {
	case cs.aborted:
		s.m.ignored.WithLabelValues(IgnoredAborted).Inc()
		return
	case cs.firstFire != "" && c.FireID != cs.firstFire:
		// The control log is the durable tie-breaker: a later fire id
		// (a press that won a guard which had lost the first fire) is
		// never released, whatever the guard says.
		s.m.ignored.WithLabelValues(IgnoredNotWinner).Inc()
		s.log.Warn("fanout: trigger that is not the campaign's first fire in the control log ignored", "campaign", c.Campaign,
			"fire_id", c.FireID, "first", cs.firstFire)
		return
	case cs.fire != nil && cs.fire.id == c.FireID, cs.verifying[c.FireID]:
		s.m.ignored.WithLabelValues(IgnoredDuplicate).Inc()
		return
	case cs.fire != nil:
		s.m.ignored.WithLabelValues(IgnoredNotWinner).Inc()
		s.log.Warn("fanout: trigger with a non-winning fire id ignored", "campaign", c.Campaign, "fire_id", c.FireID, "winner", cs.fire.id)
		return
	}
	cs.verifying[c.FireID] = true
	if !live {
		ts = time.Time{}
	}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		s.verifyFire(ctx, cs, c, ts)
	}()
}

// verifyFire checks the trigger's fire id against the winner recorded in
// Redis and the campaign's abort record, retrying with backoff while Redis
// is unreachable, then releases.
func (s *Stage) verifyFire(ctx context.Context, cs *campState, c wire.Control, ts time.Time) {
	finish := func(reason string) {
		s.mu.Lock()
		delete(cs.verifying, c.FireID)
		s.mu.Unlock()
		if reason != "" {
			s.m.ignored.WithLabelValues(reason).Inc()
			s.log.Warn("fanout: trigger ignored", "campaign", c.Campaign, "fire_id", c.FireID, "reason", reason)
		}
	}
	var win time.Time
	var deadline time.Time
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		g := s.checkGuard(ctx, c.Campaign)
		rec, err := g.rec, g.fireErr
		if err == nil {
			if !g.fired {
				finish(IgnoredNoFire)
				return
			}
			if rec.FireID != c.FireID {
				finish(IgnoredNotWinner)
				return
			}
			win, deadline = rec.At, rec.Deadline
			if err = g.abortErr; err == nil {
				if g.aborted {
					s.mu.Lock()
					s.abortLocked(cs, "guard")
					s.mu.Unlock()
					finish(IgnoredAborted)
					return
				}
				break
			}
		}
		s.log.Warn("fanout: cannot verify trigger against the guard, retrying (nothing is released until it is verified)",
			"campaign", c.Campaign, "fire_id", c.FireID, "err", err, "retry_in", backoff)
		if !retry.Sleep(ctx, backoff) {
			finish("")
			return
		}
		if s.campaignAborted(c.Campaign) {
			finish(IgnoredAborted)
			return
		}
	}
	f := &fireState{id: c.FireID, firedAt: c.At, deadline: c.Deadline, triggerTS: ts}
	if f.firedAt.IsZero() {
		f.firedAt = win
	}
	if f.deadline.IsZero() {
		f.deadline = deadline
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(cs.verifying, c.FireID)
	switch {
	case cs.aborted:
		s.m.ignored.WithLabelValues(IgnoredAborted).Inc()
		return
	case cs.fire != nil:
		s.m.ignored.WithLabelValues(IgnoredDuplicate).Inc()
		return
	}
	cs.fire = f
	s.log.Info("fanout: fire verified", "campaign", c.Campaign, "fire_id", c.FireID, "by", c.By, "live", !ts.IsZero())
	if s.live {
		for _, p := range s.readyPartsLocked() {
			p.enqueue(job{kind: jobRelease, campaign: cs.id})
		}
		s.publishLocked(cs, true)
	}
}

// guardAnswer is what checkGuard learnt, each answer with its own error.
type guardAnswer struct {
	rec      guard.FireRecord
	fired    bool
	fireErr  error
	aborted  bool
	abortErr error
}

// checkGuard asks the guard for the campaign's winning fire and for its
// abort record at the same time: two Redis round trips in parallel instead
// of one after the other, both being on the trigger's critical path.
func (s *Stage) checkGuard(ctx context.Context, campaign string) guardAnswer {
	var g guardAnswer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, g.aborted, g.abortErr = s.guard.Aborted(ctx, campaign)
	}()
	g.rec, g.fired, g.fireErr = s.guard.FireOf(ctx, campaign)
	<-done
	return g
}
