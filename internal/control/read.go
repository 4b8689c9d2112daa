package control

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/report"
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

// progress folds the results of one fire (report.Live, over report.Fold)
// read from the results topic since the fire, and adds the stages' consumer
// lag.
func (s *Service) progress(ctx context.Context, m *wire.Manifest, id, fireID string, since time.Time) (*Progress, error) {
	pr := &Progress{}
	if m != nil {
		pr.BatchesPlanned, pr.TokensPlanned = m.Batches(), m.Tokens()
	}
	pr.Lag, pr.LagError = s.lag(ctx)
	starts, err := s.startsAfter(ctx, s.cfg.Topics.Results, since)
	if err != nil {
		return pr, err
	}
	live := report.NewLive(id, fireID)
	err = s.readRange(ctx, s.cfg.Topics.Results, starts, func(r *kgo.Record) {
		var res wire.Result
		if wire.Decode(r.Value, &res) != nil || res.Campaign != id || res.FireID != fireID || res.Kind != wire.KindFire {
			return
		}
		if res.FinishedAt.After(pr.LastResultAt) {
			pr.LastResultAt = res.FinishedAt
		}
		if !res.Skipped && m != nil && res.Generation != m.Generation && res.Generation != 0 {
			return
		}
		live.Add(string(r.Key), &res)
	})
	sn := live.Snapshot()
	t := sn.Total
	pr.BatchesDone, pr.TokensDone, pr.Skipped = int(t.Batches), int(sn.Tokens), sn.Skipped
	pr.Accepted, pr.Invalid, pr.Failed = int(t.Accepted), int(t.Invalid), int(t.Failed)
	pr.Expired, pr.Aborted, pr.Retries = int(t.Expired), int(t.Aborted), int(t.Retries)
	pr.ByPlatform = map[string]PlatformProgress{}
	for p, c := range sn.ByPlatform {
		pr.ByPlatform[p] = PlatformProgress{Accepted: int(c.Accepted), Invalid: int(c.Invalid), Failed: int(c.Failed),
			Expired: int(c.Expired), Aborted: int(c.Aborted)}
	}
	pr.P50MS, pr.P95MS, pr.P99MS, pr.MaxMS, pr.Curve = sn.P50, sn.P95, sn.P99, sn.MaxMS, sn.Curve
	pr.AcceptedPerSecond = live.PerSecond(s.now().Sub(since))
	return pr, err
}

// lag is the consumer lag of the stages a fire goes through: the fanout
// (triggers) and the senders per platform.
func (s *Service) lag(ctx context.Context) ([]StageLag, string) {
	stages := []StageLag{{Stage: "fanout", Group: s.cfg.Fanout.Group},
		{Stage: "sender ios", Group: s.cfg.Sender.GroupOf(string(push.IOS))},
		{Stage: "sender android", Group: s.cfg.Sender.GroupOf(string(push.Android))}}
	groups := make([]string, len(stages))
	for i, st := range stages {
		groups[i] = st.Group
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := kafka.Lag(lctx, s.adm, groups...)
	if err != nil {
		return nil, err.Error()
	}
	for _, r := range rows {
		for i := range stages {
			if stages[i].Group == r.Group {
				stages[i].Lag += r.Lag
			}
		}
	}
	return stages, ""
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

// Report builds the final report of the campaign's fire (report.Build, what
// `owlctl report` prints); an error for a campaign that never fired.
func (s *Service) Report(ctx context.Context, id string) (*report.Report, error) {
	if _, _, err := s.lookup(ctx, id); err != nil {
		return nil, fmt.Errorf("control: report: %w", err)
	}
	r, err := report.Build(ctx, s.cfg, s.cl, id, "")
	if err != nil {
		return nil, fmt.Errorf("control: report of %s: %w", id, err)
	}
	return r, nil
}
