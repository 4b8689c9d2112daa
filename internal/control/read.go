package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/wire"
)

// readRange reads topic from the given start offsets (per partition) up to
// the read_committed end offsets listed now, and calls fn for every data
// record, in offset order per partition. A nil starts map means every
// partition from its log start.
func (s *Service) readRange(ctx context.Context, topic string, starts map[int32]int64, fn func(*kgo.Record)) error {
	ends, err := s.adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("control: end offsets of %s: %w", topic, err)
	}
	firsts, err := s.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = firsts.Error()
	}
	if err != nil {
		return fmt.Errorf("control: start offsets of %s: %w", topic, err)
	}
	offsets := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	for p, e := range ends[topic] {
		from := firsts[topic][p].Offset
		if starts != nil {
			st, ok := starts[p]
			if !ok {
				continue
			}
			from = max(from, st)
		}
		if from >= e.Offset {
			continue
		}
		offsets[p] = kgo.NewOffset().At(from)
		remaining[p] = e.Offset
	}
	if len(offsets) == 0 {
		return nil
	}
	opts := append(append([]kgo.Opt{}, s.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers are kept so a partition ending in a commit marker still
		// reaches its end offset.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("control: read %s: %w", topic, err)
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("control: read %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("partition %d: %w", p, err))
		})
		if ferr != nil {
			return fmt.Errorf("control: read %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if r.Offset >= end-1 {
				delete(remaining, r.Partition)
			}
		})
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

// startsAfter lists, per partition of topic, the first offset at or after
// since minus a minute.
func (s *Service) startsAfter(ctx context.Context, topic string, since time.Time) (map[int32]int64, error) {
	lo, err := s.adm.ListOffsetsAfterMilli(ctx, since.Add(-time.Minute).UnixMilli(), topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("control: offsets of %s after %s: %w", topic, since.Format(time.RFC3339), err)
	}
	starts := map[int32]int64{}
	for p, o := range lo[topic] {
		if o.Offset >= 0 {
			starts[p] = o.Offset
		}
	}
	return starts, nil
}
