package sender

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

// fireCheckTTL is how long a campaign's fire, as the guard holds it intact,
// is trusted before it is asked again: a Redis that loses the record (a
// failover, a flush) is noticed within it.
const fireCheckTTL = 2 * time.Second

// fireCheck is what a sender knows of a campaign's fire.
type fireCheck struct {
	winner string // the campaign's fire id; "" = no verified fire anywhere
	// lost: the guard lost the record (missing, or Restored from the control
	// log), so its batch marks may be lost too: finished holds the batches
	// with a result for winner in the results topic, read once.
	lost     bool
	finished map[string]bool
	at       time.Time
}

// fireChecks caches fireCheck per campaign.
type fireChecks struct {
	mu sync.Mutex
	m  map[string]*fireCheck
}

// verifyFire answers whether a send task of (campaign, fireID) may be sent:
// its fire id must be the campaign's winning fire, as the guard holds it or,
// if the guard lost it, as the control log's first verified fire is
// (catalog.FirstFire). For a campaign whose guard record was lost it also
// says whether the batch was finished already by the results topic, since
// the guard's done marks went with the record. It waits while Redis or
// Kafka do not answer (nothing is sent unverified) and returns only ctx's
// error.
func (s *Stage) verifyFire(ctx context.Context, campaign, fireID, batchKey string) (ok, finished bool, err error) {
	s.checks.mu.Lock()
	c := s.checks.m[campaign]
	s.checks.mu.Unlock()
	if c == nil || (!c.lost && time.Since(c.at) > fireCheckTTL) {
		if c, err = s.checkFire(ctx, campaign); err != nil {
			return false, false, err
		}
		s.checks.mu.Lock()
		if len(s.checks.m) > 1024 {
			clear(s.checks.m)
		}
		s.checks.m[campaign] = c
		s.checks.mu.Unlock()
	}
	if fireID != c.winner {
		return false, false, nil
	}
	return true, c.lost && c.finished[batchKey], nil
}

// checkFire asks the guard, and the control log and results topic when the
// guard lost the record; it retries until they answer or ctx is done.
func (s *Stage) checkFire(ctx context.Context, campaign string) (*fireCheck, error) {
	c := &fireCheck{}
	err := s.retryRedis(ctx, "fire_get", func() error {
		rec, fired, err := s.guard.FireOf(ctx, campaign)
		if fired && !rec.Restored {
			c.winner = rec.FireID
		}
		c.lost = err == nil && (!fired || rec.Restored)
		return err
	})
	if err != nil || !c.lost {
		c.at = time.Now()
		return c, err
	}
	for attempt := 0; ; attempt++ {
		if err = s.readLostFire(ctx, campaign, c); err == nil {
			break
		}
		s.log.Warn("fire check: cannot read the control log or the results topic; waiting (nothing of the campaign is sent meanwhile)",
			"campaign", campaign, "err", err)
		if !retry.Sleep(ctx, jitter(backoff(s.cfg.Sender.RetryBase, s.cfg.Sender.RetryMax, attempt))) {
			return nil, ctx.Err()
		}
	}
	c.at = time.Now()
	return c, nil
}

// readLostFire fills c for a campaign whose guard record is missing or
// restored: the winner from the control log, the finished batches of that
// fire from the results topic.
func (s *Stage) readLostFire(ctx context.Context, campaign string, c *fireCheck) error {
	first, err := s.cat.FirstFire(ctx, campaign)
	if err != nil {
		return err
	}
	c.winner, c.finished = "", map[string]bool{}
	if first == nil {
		// Not fired, or fired by an owlpost that did not mark its records
		// verified: nothing is verified, nothing is sent.
		s.log.Warn("fire check: the guard has no fire record and the control log no verified fire; send tasks of the campaign are dropped",
			"campaign", campaign)
		return nil
	}
	c.winner = first.FireID
	topic := s.cfg.Topics.Results
	ends, err := kafka.SnapshotEnds(ctx, kadm.NewClient(s.cl), topic, nil)
	if err != nil {
		return err
	}
	base, err := kafka.Opts(s.cfg)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	err = kafka.ReadSnapshot(ctx, base, topic, ends, func(r *kgo.Record) error {
		var res wire.Result
		if wire.Decode(r.Value, &res) != nil || res.Campaign != campaign || res.FireID != first.FireID || res.Kind != wire.KindFire {
			return nil
		}
		mu.Lock()
		c.finished[string(r.Key)] = true
		mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("results of %s: %w", campaign, err)
	}
	s.log.Warn("fire check: the guard lost the campaign's fire record; following the control log's first verified fire and the results topic",
		"campaign", campaign, "fire_id", first.FireID, "finished_batches", len(c.finished))
	return nil
}
