package report

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/wire"
)

// Verdict judges a fire against the campaign's goal (campaign.Goal): for a
// rehearsal, whether the launch it rehearses is on track.
type Verdict struct {
	// State is "on track", "not on track" or "not judged" (Why says why).
	State string `json:"state"`
	Why   string `json:"why"`
	// Goal holds the targets, e.g. {"p95": "4s", "p99": "6s"}.
	Goal map[string]string `json:"goal"`
	// Rehearsal is set when the campaign is a dress rehearsal.
	Rehearsal *RehearsalInfo `json:"rehearsal,omitempty"`
	// Checks compare each platform's figure with each target.
	Checks []Check `json:"checks"`
	// Stages are the per-batch durations of the path, p95 over batches.
	Stages Stages `json:"stages"`
	// Lag is the send topics' consumer lag over the send, from the batches'
	// release and start times.
	Lag Lag `json:"consumer_lag"`
	// Throttled counts provider answers that were rate limits (APNs 429
	// TooManyRequests, FCM 429 QUOTA_EXCEEDED), retried by the senders.
	Throttled      int     `json:"throttled"`
	ThrottledShare float64 `json:"throttled_share"`
	// Slowest names the stage that took longest (p95 per batch).
	Slowest string `json:"slowest_stage"`
	// Advice says what to change, each line with the figure behind it.
	Advice []string `json:"advice"`
	// Notes say plainly what the figures are (sample, cap, extrapolation).
	Notes []string `json:"notes,omitempty"`
}

// RehearsalInfo describes a rehearsal's size against its launch.
type RehearsalInfo struct {
	Of           string  `json:"of"`
	Sample       float64 `json:"sample"`
	LaunchTokens uint64  `json:"launch_tokens"`
	RateLimit    int     `json:"rate_limit,omitempty"`
}

// Check is one platform against one target.
type Check struct {
	Platform string `json:"platform"`
	Target   string `json:"target"` // "p95"
	WithinMS uint32 `json:"within_ms"`
	// MeasuredMS is the rehearsal's own figure; ProjectedMS the full-size
	// estimate (equal to MeasuredMS when the whole audience was sent).
	MeasuredMS  uint32 `json:"measured_ms"`
	ProjectedMS uint32 `json:"projected_ms"`
	OK          bool   `json:"ok"`
}

// Stages are p95 over batches, in milliseconds: from fire to the batch's
// release by the fanout, waiting in the send topic (release to the sender
// starting it), and sending (start to finish, provider time and retries).
type Stages struct {
	ReleaseMS       uint32 `json:"release_p95_ms"`
	LastReleaseMS   uint32 `json:"last_release_ms"`
	WaitMS          uint32 `json:"wait_in_send_topic_p95_ms"`
	SendMS          uint32 `json:"send_p95_ms"`
	BatchesMeasured int    `json:"batches_measured"`
}

// Lag is the number of released batches (and their tokens) not yet started
// by a sender: its peak, and whether it was still growing when the last
// batch was released (the senders fell behind the release).
type Lag struct {
	PeakBatches int    `json:"peak_batches"`
	PeakTokens  int    `json:"peak_tokens"`
	AtMidBatch  int    `json:"at_mid_release_batches"`
	AtEndBatch  int    `json:"at_end_of_release_batches"`
	Growing     bool   `json:"growing"`
	PeakAtMS    uint32 `json:"peak_at_ms"`
}

// Verdict states.
const (
	OnTrack    = "on track"
	NotOnTrack = "not on track"
	NotJudged  = "not judged"
)

// throttleReasons are the providers' rate-limit answers as the push
// adapters report them (APNs reason, FCM errorCode).
var throttleReasons = []string{"TooManyRequests", "QUOTA_EXCEEDED"}

// judge sets r.Verdict when the campaign has a goal or is a rehearsal.
func (r *Report) judge(ctx context.Context, cat *catalog.Catalog, best map[string]*wire.Result, perPlatformMS map[string][]uint32) error {
	def, err := cat.Campaign(ctx, r.Campaign)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if def.Goal == nil && def.Rehearsal == nil {
		return nil
	}
	var launchTokens uint64
	if def.Rehearsal != nil {
		if lm, err := cat.Manifest(ctx, def.Rehearsal.Of); err == nil {
			launchTokens = lm.Tokens()
		}
	}
	r.Verdict = r.verdict(def, launchTokens, best, perPlatformMS)
	return nil
}

// verdict judges the report against def's goal. launchTokens is the
// rehearsed launch's planned tokens (0 = unknown: the rehearsal's divided
// by its sample); perPlatformMS are the sorted accepted times per platform.
func (r *Report) verdict(def *campaign.Campaign, launchTokens uint64, best map[string]*wire.Result, perPlatformMS map[string][]uint32) *Verdict {
	v := &Verdict{Goal: map[string]string{}}
	sample := 1.0
	if rh := def.Rehearsal; rh != nil {
		sample = rh.Sample
		if launchTokens == 0 {
			launchTokens = uint64(math.Round(float64(r.Total.Planned) / sample))
		}
		v.Rehearsal = &RehearsalInfo{Of: rh.Of, Sample: rh.Sample, RateLimit: def.RateLimit, LaunchTokens: launchTokens}
		v.Notes = append(v.Notes, fmt.Sprintf("dress rehearsal of %s: a background push nobody sees (APNs content-available, priority 5; FCM data-only, normal priority), sent to the launch's audience snapshot", rh.Of))
		if sample < 1 {
			v.Notes = append(v.Notes, fmt.Sprintf("sent to a sample of %.4g%% (%d of %d tokens): the projected figures assume the measured rate holds at full size (time beyond the first acceptance scaled by 1/%.4g); an estimate, not a measurement",
				sample*100, r.Total.Planned, launchTokens, sample))
		}
	}
	v.stages(best)
	for _, reason := range throttleReasons {
		v.Throttled += r.Reasons[reason]
	}
	if attempts := int(r.Total.Sent()) + int(r.Total.Retries); attempts > 0 {
		v.ThrottledShare = float64(v.Throttled) / float64(attempts)
	}
	if def.Goal == nil {
		v.State, v.Why = NotJudged, "the campaign has no goal (add goal: {p95: 4s, p99: 6s} to the launch's definition, then rehearse again)"
		v.advise(def)
		return v
	}
	targets := def.Goal.Targets()
	for _, t := range targets {
		v.Goal[t.Name] = t.Within.String()
	}
	var failed []string
	bindingCap := false
	for _, p := range slices.Sorted(maps.Keys(perPlatformMS)) {
		ms := perPlatformMS[p]
		if len(ms) == 0 {
			continue
		}
		l := r.LatencyPlatform[p]
		if def.RateLimit > 0 && l.ThroughputPerSec >= 0.9*float64(def.RateLimit) {
			bindingCap = true
			v.Notes = append(v.Notes, fmt.Sprintf("%s was capped at %d/s (rate_limit) and reached %.0f/s: its times measure the cap, not the path", p, def.RateLimit, l.ThroughputPerSec))
		}
		for _, t := range targets {
			c := Check{Platform: p, Target: t.Name, WithinMS: uint32(t.Within.Std() / time.Millisecond)}
			c.MeasuredMS = Percentile(ms, t.Quantile)
			c.ProjectedMS = project(c.MeasuredMS, l.FirstMS, sample)
			c.OK = c.ProjectedMS <= c.WithinMS
			if !c.OK {
				failed = append(failed, fmt.Sprintf("%s %s %s > %s", p, t.Name, msText(c.ProjectedMS), t.Within))
			}
			v.Checks = append(v.Checks, c)
		}
	}
	switch {
	case len(v.Checks) == 0:
		v.State, v.Why = NotJudged, "no notification was accepted"
	case !r.Complete:
		v.State, v.Why = NotJudged, "the send is not complete yet"
	case bindingCap:
		v.State, v.Why = NotJudged, "the rate cap decided the times; rehearse without --rate (or with a sample) to judge the speed"
	case len(failed) > 0:
		v.State, v.Why = NotOnTrack, strings.Join(failed, "; ")
	default:
		v.State, v.Why = OnTrack, "every platform within every target"
	}
	v.advise(def)
	return v
}

// project scales the time beyond the first acceptance by 1/sample: with the
// rate measured, a sample's k-th notification is at first + k/rate, the full
// audience's at first + k/(sample*rate).
func project(measured, first uint32, sample float64) uint32 {
	if sample >= 1 || measured <= first {
		return measured
	}
	return first + uint32(math.Round(float64(measured-first)/sample))
}

// stages computes the per-batch stage durations and the consumer lag.
func (v *Verdict) stages(best map[string]*wire.Result) {
	var rel, wait, send []uint32
	type ev struct {
		at     time.Time
		d      int // +1 released, -1 started
		tokens int
	}
	var evs []ev
	var fired, lastRel time.Time
	for _, res := range best {
		if res.ReleasedAt.IsZero() || res.StartedAt.IsZero() || res.Skipped {
			continue
		}
		fired = res.FiredAt
		rel = append(rel, msSince(res.FiredAt, res.ReleasedAt))
		wait = append(wait, msSince(res.ReleasedAt, res.StartedAt))
		send = append(send, msSince(res.StartedAt, res.FinishedAt))
		if res.ReleasedAt.After(lastRel) {
			lastRel = res.ReleasedAt
		}
		evs = append(evs, ev{res.ReleasedAt, 1, res.Tokens}, ev{res.StartedAt, -1, res.Tokens})
	}
	v.Stages.BatchesMeasured = len(rel)
	if len(rel) == 0 {
		return
	}
	for _, s := range [][]uint32{rel, wait, send} {
		slices.Sort(s)
	}
	v.Stages.ReleaseMS, v.Stages.WaitMS, v.Stages.SendMS = Percentile(rel, .95), Percentile(wait, .95), Percentile(send, .95)
	v.Stages.LastReleaseMS = rel[len(rel)-1]
	switch max(v.Stages.ReleaseMS, v.Stages.WaitMS, v.Stages.SendMS) {
	case v.Stages.WaitMS:
		v.Slowest = "waiting in the send topics (senders)"
	case v.Stages.ReleaseMS:
		v.Slowest = "release (fanout)"
	default:
		v.Slowest = "sending (provider calls and retries)"
	}
	// Sweep: a start at the same instant as a release counts after it.
	sort.Slice(evs, func(i, j int) bool {
		if !evs[i].at.Equal(evs[j].at) {
			return evs[i].at.Before(evs[j].at)
		}
		return evs[i].d > evs[j].d
	})
	mid := fired.Add(lastRel.Sub(fired) / 2)
	n, tok := 0, 0
	for _, e := range evs {
		n += e.d
		tok += e.d * e.tokens
		if n > v.Lag.PeakBatches {
			v.Lag.PeakBatches, v.Lag.PeakTokens, v.Lag.PeakAtMS = n, tok, msSince(fired, e.at)
		}
		if !e.at.After(mid) {
			v.Lag.AtMidBatch = n
		}
		if !e.at.After(lastRel) {
			v.Lag.AtEndBatch = n
		}
	}
	v.Lag.Growing = v.Lag.AtEndBatch > v.Lag.AtMidBatch && v.Lag.AtEndBatch > 1
}

func msSince(from, to time.Time) uint32 {
	d := to.Sub(from)
	if d < 0 {
		return 0
	}
	return uint32(min(d.Milliseconds(), math.MaxUint32))
}

// advise says what to change, from the measured figures.
func (v *Verdict) advise(def *campaign.Campaign) {
	if v.Throttled > 0 && v.ThrottledShare >= 0.01 {
		line := fmt.Sprintf("quota: the providers throttled %.1f%% of the requests (%d rate-limit answers, retried): ask for a quota increase (FCM: the project's messages quota, which the launch shares with the rehearsal) or spread the send", v.ThrottledShare*100, v.Throttled)
		if def.Rehearsal != nil {
			line += "; APNs throttles background pushes much more than alerts, so an APNs TooManyRequests in a rehearsal is Apple's silent-push budget, not necessarily the launch's limit"
		}
		v.Advice = append(v.Advice, line)
	}
	if v.Stages.BatchesMeasured > 0 {
		st := v.Stages
		if v.Lag.Growing || (st.WaitMS > st.SendMS && st.WaitMS > st.ReleaseMS) {
			v.Advice = append(v.Advice, fmt.Sprintf("more senders: batches waited up to %s (p95) in the send topics; the lag peaked at %d batches (%d tokens)%s: add sender instances (the send topics need at least as many partitions) or raise sender.batches_in_flight",
				msText(st.WaitMS), v.Lag.PeakBatches, v.Lag.PeakTokens, map[bool]string{true: " and was still growing when the release ended", false: ""}[v.Lag.Growing]))
		}
		if st.ReleaseMS > st.WaitMS && st.ReleaseMS >= st.SendMS && st.LastReleaseMS > 0 {
			v.Advice = append(v.Advice, fmt.Sprintf("more partitions: the fanout released the last batch %s after fire (p95 %s): add fanout instances and partitions of the batches topic (topics.batches_partitions), then re-plan",
				msText(st.LastReleaseMS), msText(st.ReleaseMS)))
		}
		if st.SendMS > st.WaitMS && st.SendMS > st.ReleaseMS && v.Throttled == 0 {
			v.Advice = append(v.Advice, fmt.Sprintf("sending is the slowest stage (p95 %s per batch) without throttling: more senders (more concurrent provider requests), or smaller batches", msText(st.SendMS)))
		}
	}
	if v.State == OnTrack {
		v.Advice = append([]string{"no change needed to meet the goal; the lines below, if any, are where the margin is thinnest"}, v.Advice...)
	}
}

func msText(v uint32) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", float64(v)/1000)
	}
	return fmt.Sprintf("%d ms", v)
}

// writeText renders v for WriteText.
func (v *Verdict) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "\ngoal")
	for _, k := range []string{"p50", "p95", "p99"} {
		if g, ok := v.Goal[k]; ok {
			fmt.Fprintf(b, "  %s %s", k, g)
		}
	}
	fmt.Fprintln(b)
	for _, n := range v.Notes {
		fmt.Fprintf(b, "  note: %s\n", n)
	}
	if len(v.Checks) > 0 {
		fmt.Fprintf(b, "  %-10s %-6s %10s %10s %10s  %s\n", "platform", "target", "within", "measured", "projected", "")
		for _, c := range v.Checks {
			ok := "ok"
			if !c.OK {
				ok = "MISSED"
			}
			fmt.Fprintf(b, "  %-10s %-6s %10s %10s %10s  %s\n", c.Platform, c.Target, msText(c.WithinMS), msText(c.MeasuredMS), msText(c.ProjectedMS), ok)
		}
	}
	if st := v.Stages; st.BatchesMeasured > 0 {
		fmt.Fprintf(b, "  stages (p95 over %d batches): release %s (last batch %s after fire), wait in send topic %s, send %s; slowest: %s\n",
			st.BatchesMeasured, msText(st.ReleaseMS), msText(st.LastReleaseMS), msText(st.WaitMS), msText(st.SendMS), v.Slowest)
		grow := "not growing at the end of the release"
		if v.Lag.Growing {
			grow = "still growing when the release ended"
		}
		fmt.Fprintf(b, "  consumer lag of the send topics: peak %d batches (%d tokens) %s after fire, %s\n",
			v.Lag.PeakBatches, v.Lag.PeakTokens, msText(v.Lag.PeakAtMS), grow)
	}
	fmt.Fprintf(b, "  provider throttling: %d rate-limit answers (%.1f%% of requests)\n", v.Throttled, v.ThrottledShare*100)
	fmt.Fprintf(b, "VERDICT: %s: %s\n", strings.ToUpper(v.State), v.Why)
	for _, a := range v.Advice {
		fmt.Fprintf(b, "  - %s\n", a)
	}
}
