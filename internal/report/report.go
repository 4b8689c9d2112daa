package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// Counts are tokens by outcome.
type Counts struct {
	Planned  uint64 `json:"planned"`
	Accepted uint64 `json:"accepted"`
	Invalid  uint64 `json:"invalid"`
	Failed   uint64 `json:"failed"`
	Expired  uint64 `json:"expired"`
	Aborted  uint64 `json:"aborted"`
	Retries  uint64 `json:"retries"`
	Resent   uint64 `json:"resent"`
	Batches  uint32 `json:"batches_reported"`
}

// Sent is every token a provider answered (accepted, invalid or failed).
func (c Counts) Sent() uint64 { return c.Accepted + c.Invalid + c.Failed }

// Done is every token with a final outcome.
func (c Counts) Done() uint64 { return c.Sent() + c.Expired + c.Aborted }

func (c Counts) plus(o Counts) Counts {
	return Counts{Planned: c.Planned + o.Planned, Accepted: c.Accepted + o.Accepted, Invalid: c.Invalid + o.Invalid,
		Failed: c.Failed + o.Failed, Expired: c.Expired + o.Expired, Aborted: c.Aborted + o.Aborted,
		Retries: c.Retries + o.Retries, Resent: c.Resent + o.Resent, Batches: c.Batches + o.Batches}
}

// Latency is the time-from-fire distribution of accepted notifications.
type Latency struct {
	N                         int               `json:"n"`
	FirstMS                   uint32            `json:"first_ms"`
	P50, P90, P95, P99, MaxMS uint32            `json:"-"`
	ThroughputPerSec          float64           `json:"throughput_per_sec"`
	Percentiles               map[string]uint32 `json:"percentiles_ms"`
}

// Report is a campaign's final account.
type Report struct {
	Campaign         string             `json:"campaign"`
	FireID           string             `json:"fire_id"`
	FiredAt          time.Time          `json:"fired_at"`
	FiredBy          string             `json:"fired_by"`
	Generation       uint64             `json:"generation"`
	Total            Counts             `json:"total"`
	ByPlatform       map[string]Counts  `json:"by_platform"`
	Latency          Latency            `json:"latency"`
	LatencyPlatform  map[string]Latency `json:"latency_by_platform"`
	RejectedPlan     map[string]int64   `json:"rejected_at_planning"`
	DuplicateTokens  uint64             `json:"duplicate_tokens_at_planning"`
	Presses          int                `json:"fire_presses_published"`
	DuplicatePresses int                `json:"duplicate_presses_ignored"`
	Reasons          map[string]int     `json:"reasons"`
	Complete         bool               `json:"complete"`
	// ProofAccepted counts proof notifications accepted (any proof run).
	ProofAccepted uint64 `json:"proof_accepted"`
	// Verdict judges the fire against the campaign's goal (campaigns with a
	// goal, and rehearsals).
	Verdict    *Verdict `json:"verdict,omitempty"`
	acceptedMS []uint32
}

// AcceptedMS returns the sorted time-from-fire of every accepted notification.
func (r *Report) AcceptedMS() []uint32 { return r.acceptedMS }

// Build reads the manifest, the control log and the results topic and
// computes the report of the campaign's fire (fireID "" = the latest fire).
func Build(ctx context.Context, cfg *config.Config, cl *kgo.Client, campaignID, fireID string) (*Report, error) {
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		return nil, err
	}
	m, err := cat.Manifest(ctx, campaignID)
	if err != nil {
		return nil, err
	}
	opts, err := kafka.Opts(cfg)
	if err != nil {
		return nil, err
	}
	rd := reader{adm: kadm.NewClient(cl), opts: opts}
	r := &Report{Campaign: campaignID, Generation: m.Generation, ByPlatform: map[string]Counts{},
		LatencyPlatform: map[string]Latency{}, RejectedPlan: m.Rejected, DuplicateTokens: m.DuplicateTokens}
	if err := r.readFire(ctx, rd, cfg.Topics.Control, fireID); err != nil {
		return nil, err
	}
	fold, ms, err := r.readResults(ctx, rd, cfg.Topics.Results)
	if err != nil {
		return nil, err
	}
	r.account(m, fold, ms)
	if err := r.judge(ctx, cat, fold.last, ms); err != nil {
		return nil, err
	}
	return r, nil
}

// reader reads topic snapshots for Build.
type reader struct {
	adm  *kadm.Client
	opts []kgo.Opt
}

// each calls fn for every record of topic's snapshot, one call at a time, in
// offset order per partition.
func (rd reader) each(ctx context.Context, topic string, fn func(*kgo.Record)) error {
	return kafka.Read(ctx, rd.adm, rd.opts, topic, nil, fn)
}

// readFire finds the fire in the control log (fireID "" = the latest) and
// counts the presses published for it.
func (r *Report) readFire(ctx context.Context, rd reader, topic, fireID string) error {
	err := rd.each(ctx, topic, func(rec *kgo.Record) {
		var c wire.Control
		if string(rec.Key) != r.Campaign || wire.Decode(rec.Value, &c) != nil || c.Type != wire.ControlFire {
			return
		}
		if fireID == "" || fireID == c.FireID {
			if r.FireID != c.FireID {
				r.Presses = 0
			}
			r.FireID, r.FiredAt, r.FiredBy = c.FireID, c.At, c.By
			r.Presses++
		}
	})
	if err != nil {
		return err
	}
	if r.FireID == "" {
		return fmt.Errorf("report: campaign %s has not fired", r.Campaign)
	}
	r.DuplicatePresses = max(0, r.Presses-1)
	return nil
}

// readResults folds the fire's results (Fold) and collects the counted
// times from fire per platform; it counts the proofs' accepted
// notifications on the way.
func (r *Report) readResults(ctx context.Context, rd reader, topic string) (*Fold, map[string][]uint32, error) {
	fold := NewFold(r.Campaign, r.FireID)
	ms := map[string][]uint32{}
	proofs := map[string]int{}
	err := rd.each(ctx, topic, func(rec *kgo.Record) {
		var res wire.Result
		if wire.Decode(rec.Value, &res) != nil || res.Campaign != r.Campaign {
			return
		}
		if res.Kind == wire.KindProof {
			proofs[string(rec.Key)+"/"+res.FireID] = res.Accepted
			return
		}
		fold.Add(string(rec.Key), &res)
	})
	fold.Each(func(res *wire.Result) {
		ms[string(res.Platform)] = append(ms[string(res.Platform)], res.AcceptedMS...)
	})
	for _, n := range proofs {
		r.ProofAccepted += uint64(n)
	}
	return fold, ms, err
}

// account fills the counts per platform and in total, the planned tokens,
// the reasons, the latencies and whether every planned token is accounted.
func (r *Report) account(m *wire.Manifest, fold *Fold, ms map[string][]uint32) {
	for p, c := range fold.ByPlatform() {
		r.ByPlatform[string(p)] = c
	}
	r.Reasons = fold.Reasons()
	for p, n := range map[push.Platform]uint64{push.IOS: m.IOSTokens, push.Android: m.AndroidTokens} {
		c := r.ByPlatform[string(p)]
		c.Planned = n
		r.ByPlatform[string(p)] = c
	}
	for p, c := range r.ByPlatform {
		r.Total = r.Total.plus(c)
		slices.Sort(ms[p])
		r.LatencyPlatform[p] = latency(ms[p])
		r.acceptedMS = append(r.acceptedMS, ms[p]...)
	}
	slices.Sort(r.acceptedMS)
	r.Latency = latency(r.acceptedMS)
	r.Complete = r.Total.Done() >= r.Total.Planned && r.Total.Batches >= m.Batches()
}

// Percentile returns the q-quantile (0..1) of sorted by the nearest-rank
// method: the smallest value with at least q of the values at or below it.
func Percentile(sorted []uint32, q float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func latency(sorted []uint32) Latency {
	l := Latency{N: len(sorted)}
	if len(sorted) == 0 {
		return l
	}
	l.FirstMS = sorted[0]
	l.P50, l.P90, l.P95, l.P99 = Percentile(sorted, .5), Percentile(sorted, .9), Percentile(sorted, .95), Percentile(sorted, .99)
	l.MaxMS = sorted[len(sorted)-1]
	l.Percentiles = map[string]uint32{"p50": l.P50, "p90": l.P90, "p95": l.P95, "p99": l.P99, "max": l.MaxMS, "first": l.FirstMS}
	if span := float64(l.MaxMS) / 1000; span > 0 {
		l.ThroughputPerSec = float64(len(sorted)) / span
	}
	return l
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func ms(v uint32) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f s", float64(v)/1000)
	}
	return fmt.Sprintf("%d ms", v)
}

// WriteText writes the report for a human, readable at a glance.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	state := "COMPLETE"
	if !r.Complete {
		state = "IN PROGRESS (not every planned token has a final outcome yet)"
	}
	fmt.Fprintf(&b, "campaign %s  fire %s  fired %s by %s  (plan generation %d)\n", r.Campaign, r.FireID,
		r.FiredAt.UTC().Format(time.RFC3339), r.FiredBy, r.Generation)
	fmt.Fprintf(&b, "status   %s\n\n", state)
	fmt.Fprintf(&b, "%-10s %12s %12s %12s %10s %10s %10s %10s %10s\n", "platform", "planned", "sent", "accepted", "invalid", "failed", "expired", "aborted", "retries")
	row := func(name string, c Counts) {
		fmt.Fprintf(&b, "%-10s %12d %12d %12d %10d %10d %10d %10d %10d\n", name, c.Planned, c.Sent(), c.Accepted, c.Invalid, c.Failed, c.Expired, c.Aborted, c.Retries)
	}
	plats := make([]string, 0, len(r.ByPlatform))
	for p := range r.ByPlatform {
		plats = append(plats, p)
	}
	sort.Strings(plats)
	for _, p := range plats {
		row(p, r.ByPlatform[p])
	}
	row("total", r.Total)
	var rej int64
	for _, n := range r.RejectedPlan {
		rej += n
	}
	fmt.Fprintf(&b, "\nrejected at planning %d %v, duplicate tokens dropped %d, duplicate GO presses ignored %d",
		rej, r.RejectedPlan, r.DuplicateTokens, r.DuplicatePresses)
	if r.Total.Resent > 0 {
		fmt.Fprintf(&b, ", tokens re-sent after a takeover %d", r.Total.Resent)
	}
	fmt.Fprintf(&b, "\n\ntime from fire to accepted   %8s %8s %8s %8s %8s %8s %12s\n", "first", "p50", "p90", "p95", "p99", "max", "throughput")
	lrow := func(name string, l Latency) {
		fmt.Fprintf(&b, "  %-27s %8s %8s %8s %8s %8s %8s %10.0f/s\n", name, ms(l.FirstMS), ms(l.P50), ms(l.P90), ms(l.P95), ms(l.P99), ms(l.MaxMS), l.ThroughputPerSec)
	}
	for _, p := range plats {
		lrow(p, r.LatencyPlatform[p])
	}
	lrow("all", r.Latency)
	if len(r.Reasons) > 0 {
		keys := make([]string, 0, len(r.Reasons))
		for k := range r.Reasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "\nprovider reasons:")
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, r.Reasons[k])
		}
		fmt.Fprintln(&b)
	}
	if r.Verdict != nil {
		r.Verdict.writeText(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
