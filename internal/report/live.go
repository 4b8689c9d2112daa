package report

import (
	"sort"
	"time"

	"github.com/owlpost/owlpost/internal/wire"
)

// liveBucketMS is the resolution of the live time-from-fire histogram.
const liveBucketMS = 10

// Live aggregates result records as they arrive, for the live status view:
// the counts of Build's Fold, with percentiles read from a 10 ms histogram
// instead of sorting every value each refresh.
type Live struct {
	fold *Fold
	hist []uint64 // counts per 10 ms since fire
}

// NewLive returns an empty aggregator for one fire of a campaign.
func NewLive(campaign, fireID string) *Live {
	return &Live{fold: NewFold(campaign, fireID)}
}

// Add takes one result record (others campaigns' and proofs are ignored).
func (l *Live) Add(key string, r *wire.Result) {
	old, ok := l.fold.Add(key, r)
	if !ok {
		return
	}
	if old != nil {
		l.count(old.AcceptedMS, -1)
	}
	l.count(r.AcceptedMS, +1)
}

func (l *Live) count(ms []uint32, sign int64) {
	for _, v := range ms {
		b := int(v / liveBucketMS)
		for len(l.hist) <= b {
			l.hist = append(l.hist, 0)
		}
		l.hist[b] = uint64(int64(l.hist[b]) + sign)
	}
}

// LiveSnapshot is what the live view shows.
type LiveSnapshot struct {
	Total Counts
	// ByPlatform are the counts per platform (Planned is not set).
	ByPlatform map[string]Counts
	// Tokens is the number of tokens of the counted batches; Skipped the
	// skipped results seen (Fold's).
	Tokens  uint64
	Skipped int
	// Percentiles of time from fire, in ms, at 10 ms resolution (upper bound
	// of the bucket).
	P50, P95, P99, MaxMS uint32
	Reasons              []ReasonCount
	// Curve is accepted notifications over time since fire (cumulative), at
	// most maxCurvePoints points.
	Curve []Point
}

// Point is one point of a curve of accepted notifications since fire.
type Point struct {
	MS       uint32 `json:"ms"`
	Accepted uint64 `json:"accepted"`
}

// maxCurvePoints bounds the live curve (it travels in every status).
const maxCurvePoints = 200

// ReasonCount is one provider reason and its count.
type ReasonCount struct {
	Reason string
	N      int
}

// Snapshot returns the current aggregate.
func (l *Live) Snapshot() LiveSnapshot {
	s := LiveSnapshot{Total: l.fold.Total(), ByPlatform: map[string]Counts{}, Tokens: l.fold.Tokens(), Skipped: l.fold.Skipped()}
	for p, c := range l.fold.ByPlatform() {
		s.ByPlatform[string(p)] = c
	}
	n := s.Total.Accepted
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
	for k, v := range l.fold.reasons {
		if v > 0 {
			s.Reasons = append(s.Reasons, ReasonCount{k, v})
		}
	}
	sort.Slice(s.Reasons, func(i, j int) bool { return s.Reasons[i].N > s.Reasons[j].N })
	step := max(1, (len(l.hist)+maxCurvePoints-1)/maxCurvePoints)
	var seen uint64
	for i, c := range l.hist {
		seen += c
		if (i+1)%step == 0 || i == len(l.hist)-1 {
			s.Curve = append(s.Curve, Point{MS: uint32((i + 1) * liveBucketMS), Accepted: seen})
		}
	}
	return s
}

// PerSecond is the number of notifications accepted in the second before
// at (time since fire): the rate of the send at that moment.
func (l *Live) PerSecond(at time.Duration) uint64 {
	end := int(at.Milliseconds() / liveBucketMS)
	var n uint64
	for i := max(0, end-1000/liveBucketMS); i < min(end, len(l.hist)); i++ {
		n += l.hist[i]
	}
	return n
}
