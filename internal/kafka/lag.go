package kafka

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kadm"
)

// LagRow is one group's lag on one partition: End minus the committed
// offset (End when nothing is committed yet). On topics written with
// transactions a fully consumed partition may show a small residual lag:
// commit markers occupy offsets and are never delivered, so the group's
// commit stops before the trailing ones (one per transactional producer that
// wrote last; the fanout has one producer per batches-topic partition, 2 per
// partition were observed). Dashboards and alerts look at lag growth, not at
// zero.
type LagRow struct {
	Group     string
	Topic     string
	Partition int32
	Committed int64 // -1 when nothing is committed
	End       int64
	Lag       int64
	Member    string // client id of the owner, "" when the group is empty
}

// Lag returns per-partition lag of the given groups, sorted.
func Lag(ctx context.Context, adm *kadm.Client, groups ...string) ([]LagRow, error) {
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag %v: %w", groups, err)
	}
	var rows []LagRow
	for _, g := range lags.Sorted() {
		if g.Error() != nil {
			return nil, fmt.Errorf("kafka: lag of group %s: %w", g.Group, g.Error())
		}
		for _, l := range g.Lag.Sorted() {
			if l.Err != nil {
				continue // a partition without end offsets yet; the next scrape will have it
			}
			r := LagRow{Group: g.Group, Topic: l.Topic, Partition: l.Partition, Committed: l.Commit.At, End: l.End.Offset, Lag: l.Lag}
			if l.Member != nil {
				r.Member = l.Member.ClientID
			}
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return rows, nil
}
