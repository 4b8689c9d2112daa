package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/singleflight"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/wire"
)

// Errors of the operations. Each refusal wraps exactly one of them, so both
// front ends map it to an exit code or HTTP status with errors.Is.
var (
	// ErrUnknownCampaign: no definition with that id in the catalog.
	ErrUnknownCampaign = errors.New("unknown campaign")
	// ErrUnknownProof: no proof request with that id for the campaign.
	ErrUnknownProof = errors.New("unknown proof")
	// ErrNotPlanned: the campaign has no plan manifest yet.
	ErrNotPlanned = errors.New("campaign not planned")
	// ErrNotReady: fanout or senders are not fully prepared (see NotReadyError).
	ErrNotReady = errors.New("not ready to fire")
	// ErrAborted: the campaign was aborted; it can never fire.
	ErrAborted = errors.New("campaign aborted")
	// ErrGuardUnavailable: Redis did not answer, so nothing was fired.
	ErrGuardUnavailable = errors.New("fail closed: no fire: guard (redis) unavailable")
	// ErrAlreadyFired is returned by the API client for a lost press (the
	// Service returns a FireOutcome with Won false instead).
	ErrAlreadyFired = errors.New("already fired")
	// ErrBadRequest: a caller mistake such as a missing "by".
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized is returned by the API client on a 401.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the identity's role does not allow the action (the API
	// client returns it on a 403 forbidden).
	ErrForbidden = identity.ErrForbidden
	// ErrNotLauncher: the campaign names its launchers and the presser is not
	// one of them.
	ErrNotLauncher = errors.New("not a launcher of this campaign")
)

// Actions and the role each needs; owlctl, the API and the console check
// the caller's identity against this one table.
const (
	ActionRead    = "read"
	ActionDefine  = "define"
	ActionPlan    = "plan"
	ActionPrepare = "prepare"
	ActionProof   = "proof"
	ActionAbort   = "abort"
	ActionFire    = "fire"
)

// Needs maps each action to the least role allowed to do it.
var Needs = map[string]identity.Role{
	ActionRead: identity.Viewer, ActionDefine: identity.Operator, ActionPlan: identity.Operator,
	ActionPrepare: identity.Operator, ActionProof: identity.Operator, ActionAbort: identity.Operator,
	ActionFire: identity.Launcher,
}

// Allow returns nil if who may do action, else an error wrapping ErrForbidden.
func Allow(who identity.Identity, action string) error {
	need, ok := Needs[action]
	if !ok {
		return fmt.Errorf("%w: unknown action %q", ErrForbidden, action)
	}
	return who.Require(need, action)
}

// NotReadyError lists why a campaign is not ready to fire.
type NotReadyError struct{ Reasons []string }

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("%v: %s (an explicit --force overrides, and is recorded)", ErrNotReady, strings.Join(e.Reasons, "; "))
}

// Unwrap makes errors.Is(err, ErrNotReady) true.
func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// FreshFor is how recent a readiness report must be to count.
const FreshFor = 15 * time.Second

// Guard is what control needs of the Redis guard (guard.Guard). Every call
// fails with guard.ErrUnavailable while Redis does not answer: the caller
// fails closed.
type Guard interface {
	// Fire records rec as the campaign's fire if none happened yet and
	// returns the winning record and whether rec won; guard.ErrAborted for an
	// aborted campaign, guard.ErrNotConfirmed when the winner is not
	// confirmed on the replicas asked for.
	Fire(ctx context.Context, campaign string, rec guard.FireRecord) (guard.FireRecord, bool, error)
	// FireOf returns the campaign's fire record, if it fired.
	FireOf(ctx context.Context, campaign string) (guard.FireRecord, bool, error)
	// Restore writes rec, the first fire in the control log, as the
	// campaign's fire record, replacing what the guard holds.
	Restore(ctx context.Context, campaign string, rec guard.FireRecord) error
	// Abort records the campaign's abort (the first one is kept) and
	// returns it.
	Abort(ctx context.Context, campaign string, rec guard.AbortRecord) (guard.AbortRecord, error)
	// Aborted returns the campaign's abort record, if it was aborted.
	Aborted(ctx context.Context, campaign string) (guard.AbortRecord, bool, error)
}

// Deps are the clients the Service uses.
type Deps struct {
	// Kafka produces control records and answers admin requests.
	Kafka *kgo.Client
	Guard Guard
	Log   *slog.Logger
	// Registry receives the control metrics (nil: not registered).
	Registry prometheus.Registerer
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
}

// Service runs the campaign operations. It is safe for concurrent use and
// keeps no campaign state of its own.
type Service struct {
	cfg     *config.Config
	cl      *kgo.Client
	adm     *kadm.Client
	opts    []kgo.Opt
	cat     *catalog.Catalog
	guard   Guard
	log     *slog.Logger
	now     func() time.Time
	presses *prometheus.CounterVec
	// sf shares catalog and status reads between concurrent presses: 50
	// people pressing GO at once cause one read, not fifty.
	sf singleflight.Group
}

// New returns a Service. Deps.Kafka and Deps.Guard are required.
func New(cfg *config.Config, d Deps) (*Service, error) {
	if d.Kafka == nil || d.Guard == nil {
		return nil, errors.New("control: Deps.Kafka and Deps.Guard are required")
	}
	opts, err := kafka.Opts(cfg)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	cat, err := catalog.New(cfg, d.Kafka)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Service{
		cfg: cfg, cl: d.Kafka, adm: kadm.NewClient(d.Kafka), opts: opts, cat: cat, guard: d.Guard,
		log: d.Log, now: d.Now,
		presses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "owlpost", Subsystem: "control", Name: "fire_presses_total",
			Help: "Presses of GO by outcome: won (the one fire), lost (already fired, answered with the winner), refused.",
		}, []string{"result"}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, r := range []string{"won", "lost", "refused"} {
		s.presses.WithLabelValues(r)
	}
	if err := metrics.Register(d.Registry, &s.presses); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return s, nil
}

// newID returns a unique, sortable id such as "fire-20260208T231502Z-3f9a0c1d2b4e".
func newID(kind string, at time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + at.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// lookup returns the definition and, if planned, the manifest of id
// (manifest nil when not planned). Concurrent lookups of one id share a read.
func (s *Service) lookup(ctx context.Context, id string) (*campaign.Campaign, *wire.Manifest, error) {
	type res struct {
		def *campaign.Campaign
		m   *wire.Manifest
	}
	v, err, _ := s.sf.Do("lookup/"+id, func() (any, error) {
		def, err := s.cat.Campaign(ctx, id)
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrUnknownCampaign, id)
		}
		if err != nil {
			return nil, err
		}
		m, err := s.cat.Manifest(ctx, id)
		if errors.Is(err, catalog.ErrNotFound) {
			return res{def: def}, nil
		}
		if err != nil {
			return nil, err
		}
		return res{def, m}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	r := v.(res)
	return r.def, r.m, nil
}

// Definition returns campaign id's definition (ErrUnknownCampaign if none).
func (s *Service) Definition(ctx context.Context, id string) (*campaign.Campaign, error) {
	def, _, err := s.lookup(ctx, id)
	return def, err
}

func (s *Service) publish(ctx context.Context, c *wire.Control) error {
	b, err := wire.Encode(c)
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: s.cfg.Topics.Control, Key: []byte(c.Campaign), Value: b}
	if err := s.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("control: publish %s of %s: %w", c.Type, c.Campaign, err)
	}
	return nil
}

func checkBy(by string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: who is acting (by) is required for the audit log", ErrBadRequest)
	}
	return nil
}

// Prepare asks the fanout instances and senders to get ready for id. It
// returns once the request is published; readiness shows in Status. Unknown
// and unplanned campaigns are refused.
func (s *Service) Prepare(ctx context.Context, id, by string) error {
	if err := checkBy(by); err != nil {
		return err
	}
	_, m, err := s.lookup(ctx, id)
	if err != nil {
		return fmt.Errorf("control: prepare: %w", err)
	}
	if m == nil {
		return fmt.Errorf("control: prepare: %w: %s (run owlctl plan first)", ErrNotPlanned, id)
	}
	c := &wire.Control{Type: wire.ControlPrepare, Campaign: id, By: by, At: s.now().UTC(),
		Note: fmt.Sprintf("generation %d", m.Generation)}
	if err := s.publish(ctx, c); err != nil {
		return err
	}
	s.log.Info("prepare requested", "campaign", id, "by", by, "generation", m.Generation)
	return nil
}

// FireInfo is the campaign's winning fire.
type FireInfo struct {
	FireID   string    `json:"fire_id"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Deadline time.Time `json:"deadline"`
	Force    bool      `json:"force,omitempty"`
}

func fireInfo(r guard.FireRecord) FireInfo {
	return FireInfo{FireID: r.FireID, By: r.By, At: r.At, Deadline: r.Deadline, Force: r.Force}
}

// FireOutcome is the answer to one press of GO.
type FireOutcome struct {
	Campaign string `json:"campaign"`
	// Won is true for the one press that fired the campaign.
	Won bool `json:"won"`
	// Fire is the winner (this press if Won).
	Fire FireInfo `json:"fire"`
	// Message is the human answer: "fired: ..." or "already fired at ...".
	Message string `json:"message"`
}

func outcome(id string, win guard.FireRecord, won bool) FireOutcome {
	o := FireOutcome{Campaign: id, Won: won, Fire: fireInfo(win)}
	force := ""
	if win.Force {
		force = " (forced)"
	}
	if won {
		o.Message = fmt.Sprintf("fired: fire id %s at %s by %s%s", win.FireID, win.At.UTC().Format(time.RFC3339Nano), win.By, force)
	} else {
		o.Message = fmt.Sprintf("already fired at %s by %s, fire id %s%s", win.At.UTC().Format(time.RFC3339Nano), win.By, win.FireID, force)
	}
	return o
}

func guardErr(err error) error {
	if errors.Is(err, guard.ErrUnavailable) {
		return fmt.Errorf("%w: %v", ErrGuardUnavailable, err)
	}
	return err
}

// Fire presses GO for campaign id on behalf of by. The campaign fires at most
// once, whoever presses and however often: the press that wins the guard
// returns Won; every other press returns the winner with Won false. Either
// way the winner's trigger record is (re-)published. Refusals wrap
// ErrUnknownCampaign, ErrNotPlanned, ErrNotReady (*NotReadyError; force
// bypasses it and is recorded), ErrAborted or ErrGuardUnavailable, and
// nothing is published for them. An error together with Won true means the
// fire is recorded but its trigger could not be published: press again to
// re-publish it.
func (s *Service) Fire(ctx context.Context, id, by string, force bool) (FireOutcome, error) {
	out, err := s.fire(ctx, id, by, force)
	switch {
	case err != nil && !out.Won && out.Fire.FireID == "":
		s.presses.WithLabelValues("refused").Inc()
		s.log.Warn("fire refused", "campaign", id, "by", by, "force", force, "err", err)
		s.auditRefusal(ctx, id, by, force, err)
	case out.Won:
		s.presses.WithLabelValues("won").Inc()
		s.log.Info("FIRED", "campaign", id, "by", by, "fire_id", out.Fire.FireID, "force", force)
	default:
		s.presses.WithLabelValues("lost").Inc()
		s.log.Info("fire press ignored: already fired", "campaign", id, "by", by, "winner", out.Fire.FireID)
	}
	return out, err
}

func (s *Service) fire(ctx context.Context, id, by string, force bool) (FireOutcome, error) {
	if err := checkBy(by); err != nil {
		return FireOutcome{}, fmt.Errorf("control: fire: %w", err)
	}
	def, m, err := s.lookup(ctx, id)
	if err != nil {
		return FireOutcome{}, fmt.Errorf("control: fire: %w", err)
	}
	if !def.MayFire(by) {
		return FireOutcome{}, fmt.Errorf("control: fire %s: %w: %s may not press GO (launchers: %s)", id, ErrNotLauncher, by, strings.Join(def.Launch.Launchers, ", "))
	}
	if m == nil {
		return FireOutcome{}, fmt.Errorf("control: fire: %w: %s (run owlctl plan, then prepare)", ErrNotPlanned, id)
	}
	ab, aborted, err := s.guard.Aborted(ctx, id)
	if err != nil {
		return FireOutcome{}, fmt.Errorf("control: fire %s: %w", id, guardErr(err))
	}
	if aborted {
		return FireOutcome{}, fmt.Errorf("control: fire %s: %w by %s at %s", id, ErrAborted, ab.By, ab.At.UTC().Format(time.RFC3339))
	}
	_, fired, err := s.guard.FireOf(ctx, id)
	if err != nil {
		return FireOutcome{}, fmt.Errorf("control: fire %s: %w", id, guardErr(err))
	}
	if !fired && !force {
		st, err := s.statuses(ctx)
		if err != nil {
			return FireOutcome{}, fmt.Errorf("control: fire %s: readiness: %w", id, err)
		}
		if _, reasons := readiness(m, st, id, s.now()); len(reasons) > 0 {
			// A campaign that fired before the guard lost its record is
			// not "not ready": say the truth (and restore the record).
			if first, err := s.firstFire(ctx, id); err == nil && first != nil {
				return s.settle(ctx, id, guard.FireRecord{}, FireOutcome{}, by)
			}
			return FireOutcome{}, fmt.Errorf("control: fire %s: %w", id, &NotReadyError{Reasons: reasons})
		}
	}
	// The fire's time is taken once the press is found ready, right before
	// the guard records it: the campaign fires then, and every "time from
	// fire" (the trigger latency, the report's latencies) starts there, not
	// at the readiness read before it.
	now := s.now().UTC()
	rec := guard.FireRecord{FireID: newID("fire", now), By: by, At: now, Force: force, Deadline: now.Add(def.Deadline.Std())}
	// Every press goes through the guard, which confirms the winner on the
	// replicas (redis.fire_replicas) before it is announced.
	win, won, err := s.guard.Fire(ctx, id, rec)
	if errors.Is(err, guard.ErrAborted) {
		return FireOutcome{}, fmt.Errorf("control: fire %s: %w (%v)", id, ErrAborted, err)
	}
	if err != nil {
		return FireOutcome{}, fmt.Errorf("control: fire %s: %w", id, guardErr(err))
	}
	out, err := s.announce(ctx, id, win, won, by)
	if err != nil {
		return out, err
	}
	return s.settle(ctx, id, win, out, by)
}

// settle makes the answer to a press the truth of the control log, the
// durable tie-breaker: the campaign's fire is its first fire record there,
// and the stages release nothing else. Normally that is the guard's winner
// just announced. If it is not, the guard had lost the first fire (a
// failover to a replica without it, a flush) and this press's winner came
// after it: the first fire is written back to the guard, published again
// (a fanout restarted meanwhile ignored it while the guard lacked it), and
// the press is answered "already fired" with it, however it was forced.
func (s *Service) settle(ctx context.Context, id string, win guard.FireRecord, out FireOutcome, by string) (FireOutcome, error) {
	first, err := s.firstFire(ctx, id)
	if err != nil {
		return out, fmt.Errorf("control: fire %s: the trigger (fire id %s) is published but the control log could not be read back to confirm it is the campaign's first fire; "+
			"press again to know (nothing but the first fire in the log is released): %w", id, win.FireID, err)
	}
	if first == nil || first.FireID == win.FireID {
		// nil: the log lags our acknowledged record (it cannot be empty);
		// our record is the only fire.
		return out, nil
	}
	orig := guard.FireRecord{FireID: first.FireID, By: first.By, At: first.At, Force: first.Force, Deadline: first.Deadline}
	s.log.Warn("the guard had lost the campaign's first fire; restored from the control log", "campaign", id,
		"first_fire", first.FireID, "guard_winner", win.FireID)
	if err := s.guard.Restore(ctx, id, orig); err != nil {
		return FireOutcome{}, fmt.Errorf("control: fire %s: already fired (fire id %s, first in the control log); this press (%s) is not released; restoring the guard failed: %w",
			id, first.FireID, win.FireID, guardErr(err))
	}
	orig.Restored = true
	out, err = s.announce(ctx, id, orig, false, by)
	out.Message += " (the guard had lost this fire; restored from the control log; this press released nothing)"
	return out, err
}

// firstFire reads the campaign's first fire record in the control log;
// concurrent presses share a read, and a read that found none is repeated
// unshared (it may have started before this press's record was written).
func (s *Service) firstFire(ctx context.Context, id string) (*wire.Control, error) {
	v, err, _ := s.sf.Do("firstfire/"+id, func() (any, error) { return s.cat.FirstFire(ctx, id) })
	if err != nil {
		return nil, err
	}
	if first := v.(*wire.Control); first != nil {
		return first, nil
	}
	return s.cat.FirstFire(ctx, id)
}

// announce publishes the winner's trigger record. It is published by every
// press (not only the winner's) so a crash after the guard win cannot lose
// it; the fanout releases once per fire id. by is this press's identity,
// named in the note of a re-published record.
func (s *Service) announce(ctx context.Context, id string, win guard.FireRecord, won bool, by string) (FireOutcome, error) {
	out := outcome(id, win, won)
	c := &wire.Control{Type: wire.ControlFire, Campaign: id, By: win.By, At: win.At, FireID: win.FireID,
		Force: win.Force, Deadline: win.Deadline, Verified: true}
	if !won {
		c.Note = "re-published by a later press of " + by
	}
	if err := s.publish(ctx, c); err != nil {
		return out, fmt.Errorf("control: fire %s recorded (fire id %s) but the trigger was not published, press again to re-publish it: %w", id, win.FireID, err)
	}
	return out, nil
}

// auditRefusal records a refused press of a known campaign in the audit log
// (Control{Type: refused}); the stages ignore it. Best effort: the press was
// refused either way.
func (s *Service) auditRefusal(ctx context.Context, id, by string, force bool, why error) {
	if errors.Is(why, ErrUnknownCampaign) || errors.Is(why, ErrBadRequest) || ctx.Err() != nil {
		return
	}
	c := &wire.Control{Type: wire.ControlRefused, Campaign: id, By: by, At: s.now().UTC(), Force: force, Note: why.Error()}
	if err := s.publish(ctx, c); err != nil {
		s.log.Warn("refused press not recorded in the audit log", "campaign", id, "by", by, "err", err)
	}
}

// Abort stops campaign id: the guard records the abort first (so a later
// fire is refused atomically), then the abort request is published for the
// fanout and senders. It returns the first abort's record (an earlier abort
// is kept). An unknown campaign is refused; Redis trouble is an error and
// nothing is published (the caller should retry).
func (s *Service) Abort(ctx context.Context, id, by string) (guard.AbortRecord, error) {
	if err := checkBy(by); err != nil {
		return guard.AbortRecord{}, fmt.Errorf("control: abort: %w", err)
	}
	if _, _, err := s.lookup(ctx, id); err != nil {
		return guard.AbortRecord{}, fmt.Errorf("control: abort: %w", err)
	}
	now := s.now().UTC()
	rec, err := s.guard.Abort(ctx, id, guard.AbortRecord{By: by, At: now})
	if err != nil {
		return guard.AbortRecord{}, fmt.Errorf("control: abort %s: %w", id, guardErr(err))
	}
	c := &wire.Control{Type: wire.ControlAbort, Campaign: id, By: by, At: now}
	if rec.By != by || !rec.At.Equal(now) {
		c.Note = fmt.Sprintf("already aborted by %s at %s", rec.By, rec.At.UTC().Format(time.RFC3339))
	}
	if fr, fired, err := s.guard.FireOf(ctx, id); err == nil && fired {
		c.FireID = fr.FireID
	}
	if err := s.publish(ctx, c); err != nil {
		return rec, fmt.Errorf("control: abort %s recorded in the guard (later fires are refused) but not published, run abort again to stop sending: %w", id, err)
	}
	s.log.Warn("ABORT", "campaign", id, "by", by)
	return rec, nil
}

// Proof asks the stages to send campaign id to its proof audience only and
// returns the proof id to pass to WaitProof. A proof never counts as the fire.
func (s *Service) Proof(ctx context.Context, id, by string) (string, error) {
	if err := checkBy(by); err != nil {
		return "", fmt.Errorf("control: proof: %w", err)
	}
	def, _, err := s.lookup(ctx, id)
	if err != nil {
		return "", fmt.Errorf("control: proof: %w", err)
	}
	if len(def.ProofAudience) == 0 {
		return "", fmt.Errorf("control: proof: %w: campaign %s has no proof_audience", ErrBadRequest, id)
	}
	now := s.now().UTC()
	pid := newID("proof", now)
	c := &wire.Control{Type: wire.ControlProof, Campaign: id, By: by, At: now, FireID: pid,
		Deadline: now.Add(def.Deadline.Std())}
	if err := s.publish(ctx, c); err != nil {
		return "", err
	}
	s.log.Info("proof requested", "campaign", id, "by", by, "proof_id", pid)
	return pid, nil
}
