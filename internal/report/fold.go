package report

import (
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// Fold is the one account of a fire's results, shared by the report, the
// live view and the control status. The rule for which result counts:
//
//   - Only results of the fold's campaign and fire id, of kind fire, count;
//     a skipped result (the guard said the batch was done) never does.
//   - A batch's counts are those of its last result. Every result of a
//     batch is written under the batch key (wire.BatchKey), so one
//     partition orders them,
//     and a later result is written by a sender that took the batch over
//     from the writer of the earlier one: it counts the answers the earlier
//     holders stored (accepted, invalid, failed before takeover) together
//     with its own. The last result is the whole batch; adding the earlier
//     ones would count those tokens twice.
//   - A batch's times from fire (AcceptedMS) are its last result's too. A
//     taker-over lists only the tokens it sent itself: tokens answered
//     before a takeover are counted but not timed.
//
// Add results in offset order per partition (a snapshot read or a consumer
// does).
type Fold struct {
	campaign, fireID string
	last             map[string]*wire.Result // by batch key
	counts           map[push.Platform]Counts
	tokens           uint64
	reasons          map[string]int
	skipped          int
}

// NewFold returns an empty fold of one fire of a campaign.
func NewFold(campaign, fireID string) *Fold {
	return &Fold{campaign: campaign, fireID: fireID, last: map[string]*wire.Result{},
		counts: map[push.Platform]Counts{}, reasons: map[string]int{}}
}

// Add folds in r, read under key (the batch key). It returns whether r counts and, if so, the batch's
// previous counting result that r replaces (nil if r is the batch's first).
func (f *Fold) Add(key string, r *wire.Result) (replaced *wire.Result, counts bool) {
	if r.Campaign != f.campaign || r.FireID != f.fireID || r.Kind != wire.KindFire {
		return nil, false
	}
	if r.Skipped {
		f.skipped++
		return nil, false
	}
	if old, ok := f.last[key]; ok {
		f.apply(old, -1)
		replaced = old
	}
	f.last[key] = r
	f.apply(r, +1)
	return replaced, true
}

func (f *Fold) apply(r *wire.Result, sign int64) {
	add := func(dst *uint64, n int) { *dst = uint64(int64(*dst) + sign*int64(n)) }
	c := f.counts[r.Platform]
	add(&c.Accepted, r.Accepted)
	add(&c.Invalid, r.Invalid)
	add(&c.Failed, r.Failed)
	add(&c.Expired, r.Expired)
	add(&c.Aborted, r.Aborted)
	add(&c.Retries, r.Retries)
	add(&c.Resent, r.Resent)
	c.Batches = uint32(int64(c.Batches) + sign)
	f.counts[r.Platform] = c
	add(&f.tokens, r.Tokens)
	for k, v := range r.Reasons {
		f.reasons[k] += int(sign) * v
		if f.reasons[k] == 0 {
			delete(f.reasons, k)
		}
	}
}

// ByPlatform returns the counts per platform (Planned is not set).
func (f *Fold) ByPlatform() map[push.Platform]Counts {
	out := make(map[push.Platform]Counts, len(f.counts))
	for p, c := range f.counts {
		out[p] = c
	}
	return out
}

// Total returns the counts over every platform (Planned is not set).
func (f *Fold) Total() Counts {
	var t Counts
	for _, c := range f.counts {
		t = t.plus(c)
	}
	return t
}

// Each calls fn with the counting result of every batch.
func (f *Fold) Each(fn func(*wire.Result)) {
	for _, r := range f.last {
		fn(r)
	}
}

// Tokens is the number of tokens of the counted batches.
func (f *Fold) Tokens() uint64 { return f.tokens }

// Reasons returns the provider reasons of the counted results.
func (f *Fold) Reasons() map[string]int {
	out := make(map[string]int, len(f.reasons))
	for k, v := range f.reasons {
		out[k] = v
	}
	return out
}

// Skipped is the number of skipped results seen.
func (f *Fold) Skipped() int { return f.skipped }
