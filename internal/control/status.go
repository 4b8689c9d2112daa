package control

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/wire"
)

// Campaign states, in order.
const (
	StateDefined  = "defined"
	StatePlanned  = "planned"
	StatePrepared = "prepared"
	StateFiring   = "firing"
	StateDone     = "done"
	StateAborted  = "aborted"
)

// CampaignStatus is one screen about a campaign: what was defined and
// planned, who prepared, fired or aborted it and when, whether it is ready to
// fire and why not, and the progress of the fire.
type CampaignStatus struct {
	Campaign   string     `json:"campaign"`
	At         time.Time  `json:"at"`
	State      string     `json:"state"`
	History    []Step     `json:"history"`
	Definition Definition `json:"definition"`
	Plan       *PlanInfo  `json:"plan,omitempty"`
	Readiness  Readiness  `json:"readiness"`
	Fire       *FireInfo  `json:"fire,omitempty"`
	Abort      *AbortInfo `json:"abort,omitempty"`
	Progress   *Progress  `json:"progress,omitempty"`
	LastProof  *ProofInfo `json:"last_proof,omitempty"`
	// Planning is the planner service's latest word on the campaign's plan
	// request (nil when nothing was requested of it).
	Planning *Planning   `json:"planning,omitempty"`
	Audit    []AuditLine `json:"audit,omitempty"`
	// ReadyToFire is true when a press of GO would fire without --force.
	ReadyToFire bool     `json:"ready_to_fire"`
	Reasons     []string `json:"reasons,omitempty"`
	// Errors lists parts that could not be read (e.g. Redis down): the
	// screen is partial, never silently wrong.
	Errors []string `json:"errors,omitempty"`
}

// Step is one reached state with when and who.
type Step struct {
	State string    `json:"state"`
	At    time.Time `json:"at,omitzero"`
	By    string    `json:"by,omitempty"`
	Note  string    `json:"note,omitempty"`
}

// Definition summarises the campaign definition.
type Definition struct {
	Locales       []string `json:"locales"`
	DefaultLocale string   `json:"default_locale"`
	Deadline      string   `json:"deadline"`
	PushType      string   `json:"push_type"`
	ProofDevices  int      `json:"proof_devices"`
	AudienceTopic string   `json:"audience_topic"`
	// Rehearsal is set for a dress rehearsal: the launch it rehearses.
	Rehearsal *RehearsalOf `json:"rehearsal,omitempty"`
}

// RehearsalOf is what a rehearsal rehearses and at what size.
type RehearsalOf struct {
	Of     string  `json:"of"`
	Sample float64 `json:"sample"`
	Rate   int     `json:"rate,omitempty"`
}

// Planning is the latest plan request of a campaign and what the planner
// service said about it since.
type Planning struct {
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
	// State is "requested" (no planner answered yet), or the planner's
	// "planning", "planned" or "error".
	State    string    `json:"state"`
	Instance string    `json:"instance,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// Text says it in one line.
func (p *Planning) Text() string {
	switch p.State {
	case "requested":
		return fmt.Sprintf("plan requested by %s at %s; waiting for the planner service", p.RequestedBy, p.RequestedAt.UTC().Format(time.RFC3339))
	case string(wire.StateError):
		return fmt.Sprintf("planner %s failed: %s", p.Instance, p.Error)
	}
	return fmt.Sprintf("planner %s: %s (since %s)", p.Instance, p.State, p.At.UTC().Format(time.RFC3339))
}

// planning returns the latest plan request in audit and the newest planner
// report on id not older than it (or the plan m, when it answered the
// request without a report), or nil without a request.
func planning(audit []wire.Control, st map[string]wire.Status, m *wire.Manifest, id string) *Planning {
	var p *Planning
	for _, c := range audit {
		if c.Type == wire.ControlPlan {
			p = &Planning{RequestedBy: c.By, RequestedAt: c.At, State: "requested"}
		}
	}
	if p == nil {
		return nil
	}
	for _, s := range st {
		if s.Role == wire.RolePlanner && s.Campaign == id && !s.At.Before(p.RequestedAt) && s.At.After(p.At) {
			p.State, p.Instance, p.At, p.Error = string(s.State), s.Instance, s.At, s.Error
		}
	}
	if p.State == "requested" && m != nil && !m.PlannedAt.Before(p.RequestedAt) {
		p.State, p.Instance, p.At = string(wire.StatePlanned), m.PlannedBy, m.PlannedAt
	}
	return p
}

// PlanInfo summarises the plan manifest.
type PlanInfo struct {
	Generation     uint64    `json:"generation"`
	PlannedAt      time.Time `json:"planned_at"`
	PlannedBy      string    `json:"planned_by,omitempty"`
	Partitions     int32     `json:"partitions"`
	IOSBatches     uint32    `json:"ios_batches"`
	AndroidBatches uint32    `json:"android_batches"`
	IOSTokens      uint64    `json:"ios_tokens"`
	AndroidTokens  uint64    `json:"android_tokens"`
	Batches        uint32    `json:"batches"`
	Tokens         uint64    `json:"tokens"`
}

// Readiness is what the fresh reports of fanout instances and senders say.
type Readiness struct {
	Fanout            []FanoutReport `json:"fanout"`
	PartitionsPlanned int32          `json:"partitions_planned"`
	PartitionsHeld    int            `json:"partitions_held"`
	MissingPartitions []int32        `json:"missing_partitions,omitempty"`
	BatchesHeld       uint32         `json:"batches_held"`
	TokensHeld        uint64         `json:"tokens_held"`
	ManifestMatch     bool           `json:"manifest_match"`
	Senders           []SenderReport `json:"senders"`
	// SendersReady counts fresh, connected senders per platform.
	SendersReady map[push.Platform]int `json:"senders_ready"`
}

// FanoutReport is one fanout instance's fresh report for the campaign.
type FanoutReport struct {
	Instance      string     `json:"instance"`
	State         wire.State `json:"state"`
	At            time.Time  `json:"at"`
	Partitions    []int32    `json:"partitions"`
	Batches       uint32     `json:"batches"`
	Tokens        uint64     `json:"tokens"`
	Generation    uint64     `json:"generation"`
	ManifestMatch bool       `json:"manifest_match"`
	Released      uint32     `json:"released,omitempty"`
	Error         string     `json:"error,omitempty"`
}

// SenderReport is one sender's fresh heartbeat.
type SenderReport struct {
	Instance  string        `json:"instance"`
	Platform  push.Platform `json:"platform"`
	State     wire.State    `json:"state,omitempty"`
	Connected bool          `json:"connected"`
	At        time.Time     `json:"at"`
	Error     string        `json:"error,omitempty"`
}

// AbortInfo is the campaign's first abort.
type AbortInfo struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// Progress counts the results of the winning fire.
type Progress struct {
	BatchesDone    int       `json:"batches_done"`
	BatchesPlanned uint32    `json:"batches_planned"`
	TokensDone     int       `json:"tokens_done"`
	TokensPlanned  uint64    `json:"tokens_planned"`
	Accepted       int       `json:"accepted"`
	Invalid        int       `json:"invalid"`
	Failed         int       `json:"failed"`
	Expired        int       `json:"expired"`
	Aborted        int       `json:"aborted"`
	Retries        int       `json:"retries"`
	Skipped        int       `json:"skipped_duplicates"`
	LastResultAt   time.Time `json:"last_result_at,omitzero"`
	// ByPlatform are the same counts per platform (ios, android).
	ByPlatform map[string]PlatformProgress `json:"by_platform,omitempty"`
	// Time from fire to acceptance so far, in ms at 10 ms resolution
	// (report.Live), and the notifications accepted in the second before
	// the status was taken.
	P50MS             uint32 `json:"p50_ms"`
	P95MS             uint32 `json:"p95_ms"`
	P99MS             uint32 `json:"p99_ms"`
	MaxMS             uint32 `json:"max_ms"`
	AcceptedPerSecond uint64 `json:"accepted_per_second"`
	// Curve is accepted notifications over time since fire (cumulative, at
	// most 200 points), as report.LiveSnapshot draws it.
	Curve []report.Point `json:"curve,omitempty"`
	// Lag is each stage's consumer lag (summed over its partitions); empty
	// with LagError set when the broker did not answer.
	Lag      []StageLag `json:"lag,omitempty"`
	LagError string     `json:"lag_error,omitempty"`
}

// PlatformProgress counts one platform's results of the fire.
type PlatformProgress struct {
	Accepted int `json:"accepted"`
	Invalid  int `json:"invalid"`
	Failed   int `json:"failed"`
	Expired  int `json:"expired"`
	Aborted  int `json:"aborted"`
}

// StageLag is one stage's consumer group and its lag.
type StageLag struct {
	Stage string `json:"stage"`
	Group string `json:"group"`
	Lag   int64  `json:"lag"`
}

// ProofInfo is the latest proof request.
type ProofInfo struct {
	ProofID string    `json:"proof_id"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}

// AuditLine is one control record of the campaign.
type AuditLine struct {
	Type   string    `json:"type"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	FireID string    `json:"fire_id,omitempty"`
	Force  bool      `json:"force,omitempty"`
	Note   string    `json:"note,omitempty"`
}

const maxAudit = 50

func planInfo(m *wire.Manifest) *PlanInfo {
	return &PlanInfo{Generation: m.Generation, PlannedAt: m.PlannedAt, PlannedBy: m.PlannedBy, Partitions: m.Partitions,
		IOSBatches: m.IOSBatches, AndroidBatches: m.AndroidBatches, IOSTokens: m.IOSTokens, AndroidTokens: m.AndroidTokens,
		Batches: m.Batches(), Tokens: m.Tokens()}
}

func definition(def *campaign.Campaign) Definition {
	d := Definition{DefaultLocale: def.DefaultLocale, Deadline: def.Deadline.String(), PushType: def.APNs.PushType,
		ProofDevices: len(def.ProofAudience), AudienceTopic: def.AudienceTopic}
	for l := range def.Messages {
		d.Locales = append(d.Locales, l)
	}
	sort.Strings(d.Locales)
	if r := def.Rehearsal; r != nil {
		d.Rehearsal = &RehearsalOf{Of: r.Of, Sample: r.Sample, Rate: def.RateLimit}
	}
	return d
}

// readiness evaluates the fresh reports in st against manifest m and returns
// the readiness and the reasons it is not ready to fire (none = ready).
func readiness(m *wire.Manifest, st map[string]wire.Status, id string, now time.Time) (Readiness, []string) {
	rd := Readiness{PartitionsPlanned: m.Partitions, SendersReady: map[push.Platform]int{}}
	var reasons []string
	stale := 0
	var lastStale time.Time
	keys := make([]string, 0, len(st))
	for k := range st {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := st[k]
		fresh := now.Sub(s.At) <= FreshFor && s.At.Sub(now) <= FreshFor
		switch {
		case s.Role == wire.RoleFanout && s.Campaign == id:
			if !fresh {
				stale++
				if s.At.After(lastStale) {
					lastStale = s.At
				}
				continue
			}
			rd.Fanout = append(rd.Fanout, FanoutReport{Instance: s.Instance, State: s.State, At: s.At,
				Partitions: s.Partitions, Batches: s.Batches, Tokens: s.Tokens, Generation: s.Generation,
				ManifestMatch: s.ManifestMatch, Released: s.Released, Error: s.Error})
		case (s.Role == wire.RoleSenderIOS || s.Role == wire.RoleSenderAndroid) && s.Campaign == "" && fresh:
			p := push.IOS
			if s.Role == wire.RoleSenderAndroid {
				p = push.Android
			}
			rd.Senders = append(rd.Senders, SenderReport{Instance: s.Instance, Platform: p, State: s.State,
				Connected: s.Connected, At: s.At, Error: s.Error})
			if s.Connected && s.Error == "" {
				rd.SendersReady[p]++
			}
		}
	}

	if len(rd.Fanout) == 0 {
		if stale > 0 {
			reasons = append(reasons, fmt.Sprintf("fanout reports are stale (last at %s; instances down?)", lastStale.UTC().Format(time.RFC3339)))
		} else {
			reasons = append(reasons, "no fanout instance reports for this campaign (run owlctl prepare)")
		}
	}
	holders := map[int32]int{}
	rd.ManifestMatch = len(rd.Fanout) > 0
	for _, f := range rd.Fanout {
		for _, p := range f.Partitions {
			holders[p]++
		}
		rd.BatchesHeld += f.Batches
		rd.TokensHeld += f.Tokens
		if f.State != wire.StateReady {
			msg := fmt.Sprintf("fanout %s is %s", f.Instance, f.State)
			if f.Error != "" {
				msg += ": " + f.Error
			}
			reasons = append(reasons, msg)
		}
		if f.Generation != m.Generation {
			rd.ManifestMatch = false
			reasons = append(reasons, fmt.Sprintf("fanout %s holds plan generation %d, the plan is generation %d", f.Instance, f.Generation, m.Generation))
		} else if !f.ManifestMatch {
			rd.ManifestMatch = false
			if f.State == wire.StateReady {
				reasons = append(reasons, fmt.Sprintf("fanout %s does not match the manifest", f.Instance))
			}
		}
	}
	var doubled []string
	for p := int32(0); p < m.Partitions; p++ {
		switch n := holders[p]; {
		case n == 0:
			rd.MissingPartitions = append(rd.MissingPartitions, p)
		case n > 1:
			doubled = append(doubled, fmt.Sprint(p))
		}
	}
	rd.PartitionsHeld = int(m.Partitions) - len(rd.MissingPartitions)
	if len(rd.MissingPartitions) > 0 && len(rd.Fanout) > 0 {
		reasons = append(reasons, fmt.Sprintf("fanout holds %d/%d partitions (missing %s)", rd.PartitionsHeld, m.Partitions, joinInts(rd.MissingPartitions)))
	}
	if len(doubled) > 0 {
		reasons = append(reasons, fmt.Sprintf("partitions %s reported by several fanout instances (rebalance in progress?)", strings.Join(doubled, ", ")))
	}
	if len(rd.Fanout) > 0 && (rd.BatchesHeld != m.Batches() || rd.TokensHeld != m.Tokens()) {
		reasons = append(reasons, fmt.Sprintf("fanout holds %d/%d batches, %d/%d tokens", rd.BatchesHeld, m.Batches(), rd.TokensHeld, m.Tokens()))
	}
	for _, p := range []push.Platform{push.IOS, push.Android} {
		planned := m.IOSBatches
		if p == push.Android {
			planned = m.AndroidBatches
		}
		if planned > 0 && rd.SendersReady[p] == 0 {
			reasons = append(reasons, fmt.Sprintf("no %s sender ready", p))
		}
	}
	return rd, reasons
}

func joinInts(ps []int32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	if len(s) > 8 {
		return strings.Join(s[:8], ", ") + fmt.Sprintf(" and %d more", len(s)-8)
	}
	return strings.Join(s, ", ")
}

// Status returns the campaign's screen. Only an unknown campaign (or a broken
// catalog) is an error; parts that cannot be read (Redis down, a topic
// unreachable) are listed in Errors and make ReadyToFire false.
func (s *Service) Status(ctx context.Context, id string) (*CampaignStatus, error) {
	def, m, err := s.lookup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("control: status: %w", err)
	}
	now := s.now()
	cs := &CampaignStatus{Campaign: id, At: now.UTC(), Definition: definition(def), State: StateDefined,
		Readiness: Readiness{SendersReady: map[push.Platform]int{}}}
	cs.History = append(cs.History, Step{State: StateDefined})
	var reasons []string
	fail := func(what string, err error) {
		cs.Errors = append(cs.Errors, fmt.Sprintf("%s: %v", what, err))
	}

	audit, err := s.audit(ctx, id)
	if err != nil {
		fail("audit log", err)
	}
	for _, c := range audit {
		cs.Audit = append(cs.Audit, AuditLine{Type: c.Type, By: c.By, At: c.At, FireID: c.FireID, Force: c.Force, Note: c.Note})
		if c.Type == wire.ControlProof {
			cs.LastProof = &ProofInfo{ProofID: c.FireID, By: c.By, At: c.At}
		}
	}
	if len(cs.Audit) > maxAudit {
		cs.Audit = cs.Audit[len(cs.Audit)-maxAudit:]
	}

	st, stErr := s.statuses(ctx)
	if stErr != nil {
		fail("readiness reports", stErr)
	}
	cs.Planning = planning(audit, st, m, id)
	if m == nil {
		why := "not planned (run owlctl plan)"
		if p := cs.Planning; p != nil {
			why = "not planned: " + p.Text()
		}
		reasons = append(reasons, why)
	} else {
		cs.Plan = planInfo(m)
		cs.State = StatePlanned
		cs.History = append(cs.History, Step{State: StatePlanned, At: m.PlannedAt, By: m.PlannedBy,
			Note: fmt.Sprintf("generation %d: %d tokens in %d batches", m.Generation, m.Tokens(), m.Batches())})
		// Prepared: the latest prepare request after this plan.
		for i := len(audit) - 1; i >= 0; i-- {
			c := audit[i]
			if c.Type == wire.ControlPrepare && !c.At.Before(m.PlannedAt) {
				cs.State = StatePrepared
				cs.History = append(cs.History, Step{State: StatePrepared, At: c.At, By: c.By, Note: "prepare requested"})
				break
			}
		}
		if stErr != nil {
			reasons = append(reasons, "readiness unknown (status topic unreadable)")
		} else {
			var rs []string
			cs.Readiness, rs = readiness(m, st, id, now)
			reasons = append(reasons, rs...)
		}
	}

	fire, fired, err := s.guard.FireOf(ctx, id)
	if err != nil {
		fail("guard", guardErr(err))
		reasons = append(reasons, "guard (redis) unavailable: fire would fail closed")
	}
	ab, aborted, abErr := s.guard.Aborted(ctx, id)
	if abErr != nil && err == nil {
		fail("guard", guardErr(abErr))
		reasons = append(reasons, "guard (redis) unavailable: fire would fail closed")
	}
	if fired {
		// Released: the readiness gates no longer apply (the fanout reports
		// go stale once its batches are out); only the fire is the reason.
		reasons = reasons[:0]
		fi := fireInfo(fire)
		cs.Fire = &fi
		cs.State = StateFiring
		note := "fire id " + fire.FireID
		if fire.Force {
			note += " (forced)"
		}
		cs.History = append(cs.History, Step{State: StateFiring, At: fire.At, By: fire.By, Note: note})
		reasons = append(reasons, outcome(id, fire, false).Message)
		cs.Progress, err = s.progress(ctx, m, id, fire.FireID, fire.At)
		if err != nil {
			fail("results", err)
		}
		if m != nil && cs.Progress.BatchesDone >= int(m.Batches()) {
			cs.State = StateDone
			cs.History = append(cs.History, Step{State: StateDone, At: cs.Progress.LastResultAt,
				Note: fmt.Sprintf("%d accepted, %d invalid, %d failed, %d expired, %d aborted",
					cs.Progress.Accepted, cs.Progress.Invalid, cs.Progress.Failed, cs.Progress.Expired, cs.Progress.Aborted)})
		}
	}
	if aborted {
		cs.Abort = &AbortInfo{By: ab.By, At: ab.At}
		cs.State = StateAborted
		cs.History = append(cs.History, Step{State: StateAborted, At: ab.At, By: ab.By})
		reasons = append(reasons, fmt.Sprintf("aborted by %s at %s", ab.By, ab.At.UTC().Format(time.RFC3339)))
	}
	cs.Reasons = slices.Compact(reasons)
	cs.ReadyToFire = len(cs.Reasons) == 0 && len(cs.Errors) == 0
	return cs, nil
}

// CampaignSummary is one line of the campaign list.
type CampaignSummary struct {
	ID       string     `json:"id"`
	Locales  []string   `json:"locales"`
	Deadline string     `json:"deadline"`
	Fired    *FireInfo  `json:"fire,omitempty"`
	Aborted  *AbortInfo `json:"abort,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// Campaigns lists the defined campaigns with their fire and abort records.
func (s *Service) Campaigns(ctx context.Context) ([]CampaignSummary, error) {
	defs, err := s.cat.Campaigns(ctx)
	if err != nil && len(defs) == 0 {
		return nil, fmt.Errorf("control: list campaigns: %w", err)
	}
	out := make([]CampaignSummary, 0, len(defs))
	for _, d := range defs {
		def := definition(d)
		cs := CampaignSummary{ID: d.ID, Locales: def.Locales, Deadline: def.Deadline}
		if fr, ok, err := s.guard.FireOf(ctx, d.ID); err != nil {
			cs.Error = guardErr(err).Error()
		} else if ok {
			fi := fireInfo(fr)
			cs.Fired = &fi
		}
		if ab, ok, err := s.guard.Aborted(ctx, d.ID); err == nil && ok {
			cs.Aborted = &AbortInfo{By: ab.By, At: ab.At}
		}
		out = append(out, cs)
	}
	return out, nil
}
