package control

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/wire"
)

// ErrIsRehearsal: the campaign asked to be rehearsed is itself a rehearsal.
var ErrIsRehearsal = errors.New("a rehearsal cannot be rehearsed")

// MaxRehearsalRate bounds a rehearsal's rate cap (notifications/s per
// platform): far above any fleet, it only keeps nonsense out.
const MaxRehearsalRate = 1_000_000_000

// DefineRehearsal creates the next free launch.rehearsal-N (campaign.Rehearse)
// from the planned launch, with the audience snapshot its plan read, and
// records the define in the audit log as by. sample is the fraction of the
// audience (0 < sample <= 1), rate the rehearsal's own cap in notifications
// per second per platform (0 = none). It returns the rehearsal and the
// launch's manifest. Refusals wrap ErrBadRequest (sample, rate, or an id
// over the limit, the field named), ErrUnknownCampaign, ErrNotPlanned or
// ErrIsRehearsal. The rehearsal is not planned: see RequestPlan.
func (s *Service) DefineRehearsal(ctx context.Context, launch string, sample float64, rate int, by string) (*campaign.Campaign, *wire.Manifest, error) {
	if err := checkBy(by); err != nil {
		return nil, nil, fmt.Errorf("control: rehearse: %w", err)
	}
	switch {
	case !(sample > 0 && sample <= 1): // also refuses NaN
		return nil, nil, fmt.Errorf("control: rehearse: %w: sample must be in (0, 1], got %v", ErrBadRequest, sample)
	case rate < 0 || rate > MaxRehearsalRate:
		return nil, nil, fmt.Errorf("control: rehearse: %w: rate must be in [0, %d] (0 = no cap of its own), got %d", ErrBadRequest, MaxRehearsalRate, rate)
	}
	ldef, lm, err := s.lookup(ctx, launch)
	if err != nil {
		return nil, nil, fmt.Errorf("control: rehearse: %w", err)
	}
	if ldef.Rehearsal != nil {
		return nil, nil, fmt.Errorf("control: rehearse: %w: %s is a rehearsal of %s; rehearse the launch", ErrIsRehearsal, launch, ldef.Rehearsal.Of)
	}
	if lm == nil {
		return nil, nil, fmt.Errorf("control: rehearse: %w: %s: plan the launch first (owlctl plan %s); a rehearsal sends to the launch's planned audience snapshot",
			ErrNotPlanned, launch, launch)
	}
	if len(lm.AudienceEnds) == 0 {
		return nil, nil, fmt.Errorf("control: rehearse: %w: the plan of %s does not record its audience snapshot (planned by an older planner): re-plan it, then rehearse",
			ErrNotPlanned, launch)
	}
	defs, err := s.cat.Campaigns(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("control: rehearse %s: %w", launch, err)
	}
	n := 1
	for _, d := range defs {
		n = max(n, campaign.RehearsalNumber(launch, d.ID)+1)
	}
	for ; ; n++ {
		def, err := ldef.Rehearse(campaign.RehearsalID(launch, n), sample, rate, lm.AudienceEnds)
		if err != nil {
			return nil, nil, fmt.Errorf("control: rehearse: %w: derive the rehearsal of %s: %v", ErrBadRequest, launch, err)
		}
		err = s.cat.CreateCampaign(ctx, def)
		if errors.Is(err, catalog.ErrExists) || errors.Is(err, catalog.ErrConflict) {
			continue // another operator took this number meanwhile
		}
		if err != nil {
			return nil, nil, fmt.Errorf("control: rehearse %s: %w", launch, err)
		}
		note := fmt.Sprintf("created: rehearsal of %s, sample %.4g, rate cap %s", launch, sample, RateText(rate))
		if err := s.publish(ctx, &wire.Control{Type: wire.ControlDefine, Campaign: def.ID, By: by, At: s.now().UTC(), Note: note}); err != nil {
			return nil, nil, fmt.Errorf("control: campaign %s created, but not recorded in the audit log: %w", def.ID, err)
		}
		s.log.Info("rehearsal defined", "campaign", def.ID, "of", launch, "by", by, "sample", sample, "rate", rate)
		return def, lm, nil
	}
}

// RateText says what a rehearsal's rate cap is.
func RateText(rate int) string {
	if rate == 0 {
		return "none of its own"
	}
	return fmt.Sprintf("%d/s per platform", rate)
}

// RequestPlan asks the planner service to plan campaign id (a plan record
// on the control topic, consumed by the planner's group); it returns once
// the request is published. The planner's progress shows in Status
// (Planning), the plan in Status.Plan.
func (s *Service) RequestPlan(ctx context.Context, id, by string) error {
	if err := checkBy(by); err != nil {
		return fmt.Errorf("control: plan: %w", err)
	}
	if _, _, err := s.lookup(ctx, id); err != nil {
		return fmt.Errorf("control: plan: %w", err)
	}
	if err := s.publish(ctx, &wire.Control{Type: wire.ControlPlan, Campaign: id, By: by, At: s.now().UTC()}); err != nil {
		return err
	}
	s.log.Info("plan requested", "campaign", id, "by", by)
	return nil
}

// Rehearse defines the launch's next rehearsal (DefineRehearsal) and asks
// the planner service to plan it (RequestPlan): what the API and the
// console do. The rehearsal is then prepared, proofed and fired like any
// campaign. An error after the define names the rehearsal, which exists.
func (s *Service) Rehearse(ctx context.Context, launch string, sample float64, rate int, by string) (*campaign.Campaign, error) {
	def, _, err := s.DefineRehearsal(ctx, launch, sample, rate, by)
	if err != nil {
		return nil, err
	}
	if err := s.RequestPlan(ctx, def.ID, by); err != nil {
		return def, fmt.Errorf("control: rehearsal %s defined, but its plan was not requested (request it again: owlctl plan %s --via-service): %w", def.ID, def.ID, err)
	}
	return def, nil
}

// RehearsalSummary is one rehearsal of a launch.
type RehearsalSummary struct {
	ID     string  `json:"id"`
	Sample float64 `json:"sample"`
	Rate   int     `json:"rate,omitempty"`
	// Fired is the rehearsal's fire, if it fired.
	Fired *FireInfo `json:"fire,omitempty"`
	// Verdict is the report's verdict ("on track", ...) once the fire's
	// report is complete; Why says why.
	Verdict string `json:"verdict,omitempty"`
	Why     string `json:"why,omitempty"`
}

// Rehearsals lists the last max rehearsals of launch, newest first, with
// the verdict of each complete one. A report that cannot be built leaves
// its verdict empty.
func (s *Service) Rehearsals(ctx context.Context, launch string, maxN int) ([]RehearsalSummary, error) {
	defs, err := s.cat.Campaigns(ctx)
	if err != nil && len(defs) == 0 {
		return nil, fmt.Errorf("control: rehearsals of %s: %w", launch, err)
	}
	var out []RehearsalSummary
	for _, d := range defs {
		if d.Rehearsal != nil && d.Rehearsal.Of == launch && campaign.RehearsalNumber(launch, d.ID) > 0 {
			out = append(out, RehearsalSummary{ID: d.ID, Sample: d.Rehearsal.Sample, Rate: d.RateLimit})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return campaign.RehearsalNumber(launch, out[i].ID) > campaign.RehearsalNumber(launch, out[j].ID)
	})
	out = out[:min(len(out), maxN)]
	for i := range out {
		r := &out[i]
		fr, fired, err := s.guard.FireOf(ctx, r.ID)
		if err != nil || !fired {
			continue
		}
		fi := fireInfo(fr)
		r.Fired = &fi
		if rep, err := s.Report(ctx, r.ID); err == nil && rep.Complete && rep.Verdict != nil {
			r.Verdict, r.Why = rep.Verdict.State, rep.Verdict.Why
		}
	}
	return out, nil
}
