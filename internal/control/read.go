package control

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/wire"
)

// readRange reads topic from the given start offsets (per partition; nil =
// every partition from its log start) up to the read_committed end offsets
// listed now, and calls fn for every data record, one at a time, in offset
// order per partition.
func (s *Service) readRange(ctx context.Context, topic string, starts map[int32]int64, fn func(*kgo.Record)) error {
	if err := kafka.Read(ctx, s.adm, s.opts, topic, starts, fn); err != nil {
		return fmt.Errorf("control: read %s: %w", topic, err)
	}
	return nil
}

// statuses returns the latest Status per key of the status topic. Concurrent
// callers share one read.
func (s *Service) statuses(ctx context.Context) (map[string]wire.Status, error) {
	v, err, _ := s.sf.Do("statuses", func() (any, error) {
		out := map[string]wire.Status{}
		err := s.readRange(ctx, s.cfg.Topics.Status, nil, func(r *kgo.Record) {
			if r.Value == nil {
				delete(out, string(r.Key))
				return
			}
			var st wire.Status
			if wire.Decode(r.Value, &st) != nil {
				return // a bad report is not readiness; skip it
			}
			out[string(r.Key)] = st
		})
		return out, err
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]wire.Status), nil
}

// audit returns the control records of campaign id, oldest first.
func (s *Service) audit(ctx context.Context, id string) ([]wire.Control, error) {
	var out []wire.Control
	err := s.readRange(ctx, s.cfg.Topics.Control, nil, func(r *kgo.Record) {
		if string(r.Key) != id {
			return
		}
		var c wire.Control
		if wire.Decode(r.Value, &c) != nil || c.Campaign != id {
			return
		}
		out = append(out, c)
	})
	return out, err
}

// resultsSince returns the Result records of campaign id with the given
// fire id, produced from since on (with a minute of slack for clock skew).
func (s *Service) resultsSince(ctx context.Context, id, fireID string, since time.Time) ([]wire.Result, error) {
	starts, err := s.startsAfter(ctx, s.cfg.Topics.Results, since)
	if err != nil {
		return nil, err
	}
	var out []wire.Result
	err = s.readRange(ctx, s.cfg.Topics.Results, starts, func(r *kgo.Record) {
		var res wire.Result
		if wire.Decode(r.Value, &res) != nil || res.Campaign != id || res.FireID != fireID {
			return
		}
		out = append(out, res)
	})
	return out, err
}

// startsAfter lists, per partition of topic, where to read from to see every
// record produced from since on (with a minute of slack for clock skew
// between hosts and the broker).
func (s *Service) startsAfter(ctx context.Context, topic string, since time.Time) (map[int32]int64, error) {
	starts, err := kafka.OffsetsSince(ctx, s.adm, topic, since.Add(-time.Minute))
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return starts, nil
}
