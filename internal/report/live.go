package report

import (
	"sort"

	"github.com/owlpost/owlpost/internal/wire"
)

// liveBucketMS is the resolution of the live time-from-fire histogram.
const liveBucketMS = 10

// Live aggregates result records as they arrive, for the live status view:
// the same per-batch de-duplication as Build, with percentiles read from a
// 10 ms histogram instead of sorting every value each refresh.
type Live struct {
	campaign, fireID string
	best             map[string]*wire.Result
	hist             []uint64 // counts per 10 ms since fire
	total            Counts
	reasons          map[string]int
}

// NewLive returns an empty aggregator for one fire of a campaign.
func NewLive(campaign, fireID string) *Live {
	return &Live{campaign: campaign, fireID: fireID, best: map[string]*wire.Result{}, reasons: map[string]int{}}
}

// Add takes one result record (others campaigns' and proofs are ignored).
func (l *Live) Add(key string, r *wire.Result) {
	if r.Campaign != l.campaign || r.FireID != l.fireID || r.Kind != wire.KindFire {
		return
	}
	if old, ok := l.best[key]; ok {
		if accounted(r) < accounted(old) {
			return
		}
		l.apply(old, -1)
	}
	l.best[key] = r
	l.apply(r, +1)
}

func (l *Live) apply(r *wire.Result, sign int) {
	add := func(dst *uint64, n int) { *dst = uint64(int64(*dst) + int64(sign*n)) }
	add(&l.total.Accepted, r.Accepted)
	add(&l.total.Invalid, r.Invalid)
	add(&l.total.Failed, r.Failed)
	add(&l.total.Expired, r.Expired)
	add(&l.total.Aborted, r.Aborted)
	add(&l.total.Retries, r.Retries)
	add(&l.total.Resent, r.Resent)
	l.total.Batches = uint32(int64(l.total.Batches) + int64(sign))
	for k, v := range r.Reasons {
		l.reasons[k] += sign * v
	}
	for _, ms := range r.AcceptedMS {
		b := int(ms / liveBucketMS)
		for len(l.hist) <= b {
			l.hist = append(l.hist, 0)
		}
		l.hist[b] = uint64(int64(l.hist[b]) + int64(sign))
	}
}

// LiveSnapshot is what the live view shows.
type LiveSnapshot struct {
	Total Counts
	// Percentiles of time from fire, in ms, at 10 ms resolution (upper bound
	// of the bucket).
	P50, P95, P99, MaxMS uint32
	Reasons              []ReasonCount
}

// ReasonCount is one provider reason and its count.
type ReasonCount struct {
	Reason string
	N      int
}

// Snapshot returns the current aggregate.
func (l *Live) Snapshot() LiveSnapshot {
	s := LiveSnapshot{Total: l.total}
	n := l.total.Accepted
	if n > 0 {
		q := func(f float64) uint32 {
			need := uint64(f*float64(n) + 0.999999)
			var seen uint64
			for i, c := range l.hist {
				seen += c
				if seen >= need {
					return uint32((i + 1) * liveBucketMS)
				}
			}
			return uint32(len(l.hist) * liveBucketMS)
		}
		s.P50, s.P95, s.P99, s.MaxMS = q(.5), q(.95), q(.99), q(1)
	}
	for k, v := range l.reasons {
		if v > 0 {
			s.Reasons = append(s.Reasons, ReasonCount{k, v})
		}
	}
	sort.Slice(s.Reasons, func(i, j int) bool { return s.Reasons[i].N > s.Reasons[j].N })
	return s
}
