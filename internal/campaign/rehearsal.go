package campaign

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Goal is a launch's target: the time from fire by which 50%, 95% and 99%
// of the accepted notifications must have been accepted. Zero fields are not
// targets; at least one must be set.
type Goal struct {
	P50 Duration `json:"p50,omitempty" yaml:"p50,omitempty"`
	P95 Duration `json:"p95,omitempty" yaml:"p95,omitempty"`
	P99 Duration `json:"p99,omitempty" yaml:"p99,omitempty"`
}

// Targets lists the set targets, p50 first.
func (g *Goal) Targets() []Target {
	var out []Target
	for _, t := range g.all() {
		if t.Within > 0 {
			out = append(out, t)
		}
	}
	return out
}

func (g *Goal) all() []Target {
	return []Target{{"p50", .50, g.P50}, {"p95", .95, g.P95}, {"p99", .99, g.P99}}
}

// Target is one percentile of a Goal.
type Target struct {
	Name     string   // "p95"
	Quantile float64  // 0.95
	Within   Duration // 4s
}

// Rehearsal says which launch a dress-rehearsal campaign rehearses.
type Rehearsal struct {
	// Of is the launch campaign's id.
	Of string `json:"of" yaml:"of"`
	// Sample is the fraction of the audience sent to, chosen by token
	// (deterministic: the same tokens every time); 1 = everyone.
	Sample float64 `json:"sample" yaml:"sample"`
	// AudienceEnds are the audience topic's end offsets per partition that
	// the launch's plan read (its manifest's audience_ends): the planner
	// reads exactly up to them, so the rehearsal plans the launch's
	// snapshot, not whatever the data team produced since.
	AudienceEnds map[int32]int64 `json:"audience_ends" yaml:"audience_ends"`
}

// RehearsalSuffix separates a launch id from its rehearsal number.
const RehearsalSuffix = ".rehearsal-"

// RehearsalID is the id of the launch's n-th rehearsal ("launch.rehearsal-2").
func RehearsalID(launch string, n int) string { return launch + RehearsalSuffix + strconv.Itoa(n) }

// RehearsalNumber returns n when id is RehearsalID(launch, n), else 0.
func RehearsalNumber(launch, id string) int {
	rest, ok := strings.CutPrefix(id, launch+RehearsalSuffix)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || strconv.Itoa(n) != rest {
		return 0
	}
	return n
}

// Rehearse derives the dress rehearsal id of launch c: the same audience
// snapshot (ends, from the launch's manifest), messages, proof audience,
// deadline and goal, but a background push that the user does not see: APNs
// content-available with priority 5 and apns-push-type background, FCM
// data-only at normal priority. Its collapse id and key are its own id, so
// nothing of it can collapse into the launch's notification. sample is the
// fraction of the audience (0 < sample <= 1); rateLimit caps it (0 = no cap
// of its own). The result is validated.
func (c *Campaign) Rehearse(id string, sample float64, rateLimit int, ends map[int32]int64) (*Campaign, error) {
	if c.Rehearsal != nil {
		return nil, fmt.Errorf("campaign %s is itself a rehearsal (of %s)", c.ID, c.Rehearsal.Of)
	}
	r := *c
	r.ID = id
	r.Messages = maps.Clone(c.Messages)
	r.Fallbacks = maps.Clone(c.Fallbacks)
	r.ProofAudience = slices.Clone(c.ProofAudience)
	r.Labels = maps.Clone(c.Labels)
	r.Launch.Launchers = slices.Clone(c.Launch.Launchers)
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	r.Labels["rehearsal_of"] = c.ID
	if c.Goal != nil {
		g := *c.Goal
		r.Goal = &g
	}
	r.APNs.PushType, r.APNs.Priority, r.APNs.CollapseID = PushTypeBackground, APNsPriorityPower, id
	r.APNs.ThreadID = ""
	r.FCM.Silent, r.FCM.Priority, r.FCM.CollapseKey = true, FCMPriorityNormal, id
	r.RateLimit = rateLimit
	r.Rehearsal = &Rehearsal{Of: c.ID, Sample: sample, AudienceEnds: maps.Clone(ends)}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// validateTargets checks goal, rate_limit and rehearsal.
func (c *Campaign) validateTargets(ps *problems) {
	if g := c.Goal; g != nil {
		for _, t := range g.all() {
			if t.Within < 0 {
				ps.add("goal."+t.Name, "must be positive, got %s", t.Within)
			}
		}
		ts := g.Targets()
		if len(ts) == 0 {
			ps.add("goal", "set at least one of p50, p95, p99 (for example {p95: 4s, p99: 6s})")
		}
		for i := 1; i < len(ts); i++ {
			if ts[i].Within < ts[i-1].Within {
				ps.add("goal."+ts[i].Name, "%s is less than %s %s", ts[i].Within, ts[i-1].Name, ts[i-1].Within)
			}
		}
	}
	if c.RateLimit < 0 {
		ps.add("rate_limit", "must not be negative, got %d", c.RateLimit)
	}
	r := c.Rehearsal
	if r == nil {
		return
	}
	switch {
	case r.Of == "":
		ps.add("rehearsal.of", "required (the launch campaign's id)")
	case !idRE.MatchString(r.Of) || len(r.Of) > MaxIDLen:
		ps.add("rehearsal.of", "not a campaign id")
	case r.Of == c.ID:
		ps.add("rehearsal.of", "a campaign cannot rehearse itself")
	}
	if !(r.Sample > 0 && r.Sample <= 1) { // also refuses NaN
		ps.add("rehearsal.sample", "must be in (0, 1], got %v", r.Sample)
	}
	if len(r.AudienceEnds) == 0 {
		ps.add("rehearsal.audience_ends", "required (the launch plan's audience end offsets)")
	}
	for _, p := range slices.Sorted(maps.Keys(r.AudienceEnds)) {
		if p < 0 || r.AudienceEnds[p] < 0 {
			ps.add(fmt.Sprintf("rehearsal.audience_ends.%d", p), "partition and offset must not be negative")
		}
	}
	if !c.Background() {
		ps.add("apns.push_type", "a rehearsal must be background (silent), got %q", c.APNs.PushType)
	}
}
