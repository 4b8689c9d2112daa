package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/report"
)

//go:embed assets templates
var files embed.FS

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

const cookieName = "owlpost_session"

const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Console serves the pages. Mount it with Register.
type Console struct {
	svc   *control.Service
	api   *control.Server
	log   *slog.Logger
	pages *template.Template
	// Every is how often the event stream sends the status.
	every time.Duration

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	who     identity.Identity
	csrf    string
	expires time.Time
}

// New returns the console over svc, logging in through api's identities.
func New(svc *control.Service, api *control.Server, log *slog.Logger) (*Console, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := template.New("").Funcs(template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("15:04:05.000 UTC")
		},
		"json": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
	}).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	return &Console{svc: svc, api: api, log: log, pages: t, every: time.Second, sessions: map[string]*session{}}, nil
}

// Register mounts the console's routes on the API server.
func (c *Console) Register(api *control.Server) {
	assets, _ := fs.Sub(files, "assets")
	api.Handle("GET /console/assets/", c.secure(http.StripPrefix("/console/assets/", http.FileServerFS(assets))))
	api.Handle("GET /console/login", c.secure(http.HandlerFunc(c.loginPage)))
	api.Handle("POST /console/login", c.secure(http.HandlerFunc(c.login)))
	api.Handle("POST /console/logout", c.secure(c.authed(c.logout)))
	api.Handle("GET /console/{$}", c.secure(c.authed(c.list)))
	api.Handle("GET /console/c/{id}", c.secure(c.authed(c.campaign)))
	api.Handle("GET /console/c/{id}/events", c.secure(c.authed(c.events)))
	api.Handle("GET /console/c/{id}/chart.svg", c.secure(c.authed(c.chart)))
	api.Handle("GET /console/c/{id}/report", c.secure(c.authed(c.report("report.html"))))
	api.Handle("GET /console/c/{id}/report.svg", c.secure(c.authed(c.report("svg"))))
	api.Handle("GET /console/c/{id}/report.json", c.secure(c.authed(c.report("json"))))
	for _, a := range []string{control.ActionPrepare, control.ActionProof, control.ActionFire, control.ActionAbort} {
		api.Handle("POST /console/c/{id}/"+a, c.secure(c.authed(c.act(a))))
	}
	api.Handle("POST /console/c/{id}/rehearse", c.secure(c.authed(c.rehearse)))
}

// secure sets the headers every console answer carries.
func (c *Console) secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authed resolves the session; without one, GETs go to the login page and
// everything else is 401.
func (c *Console) authed(h func(w http.ResponseWriter, r *http.Request, s *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			if r.Method == http.MethodGet && r.URL.Path != "" && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				c.log.Warn("console: bad CSRF token", "who", s.who.Name, "path", r.URL.Path)
				http.Error(w, "bad or missing CSRF token", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	})
}

func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[ck.Value]
	if !ok || time.Now().After(s.expires) {
		delete(c.sessions, ck.Value)
		return nil
	}
	return s
}

func (c *Console) render(w http.ResponseWriter, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := c.pages.ExecuteTemplate(w, name, data); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
	}
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "login.html", map[string]any{})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	who, err := c.api.Login(r, r.PostForm.Get("token"))
	if err != nil {
		code := http.StatusUnauthorized
		if errors.Is(err, control.ErrRateLimited) {
			code = http.StatusTooManyRequests
		}
		c.render(w, code, "login.html", map[string]any{"Error": err.Error()})
		return
	}
	id := randomID()
	c.mu.Lock()
	now := time.Now()
	for k, s := range c.sessions {
		if now.After(s.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[id] = &session{who: who, csrf: randomID(), expires: now.Add(sessionTTL)}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/console/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	c.log.Info("console: login", "who", who.Name, "role", who.Role.String())
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.mu.Lock()
		delete(c.sessions, ck.Value)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// row is one line of the campaign list.
type row struct {
	control.CampaignSummary
	State string
}

func (c *Console) list(w http.ResponseWriter, r *http.Request, s *session) {
	cs, err := c.svc.Campaigns(r.Context())
	var rows []row
	for _, x := range cs {
		st := "defined"
		if full, err := c.svc.Status(r.Context(), x.ID); err == nil {
			st = full.State
		}
		rows = append(rows, row{x, st})
	}
	data := map[string]any{"Who": s.who, "CSRF": s.csrf, "Rows": rows}
	if err != nil {
		data["Error"] = err.Error()
	}
	c.render(w, http.StatusOK, "list.html", data)
}

// preview is one locale's message as a phone shows it.
type preview struct {
	Locale, Title, Subtitle, Body string
	Default                       bool
}

func previews(def *campaign.Campaign) []preview {
	var out []preview
	for loc, m := range def.Messages {
		out = append(out, preview{Locale: loc, Title: m.Title, Subtitle: m.Subtitle, Body: m.Body, Default: loc == def.DefaultLocale})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Locale < out[j].Locale })
	return out
}

// page is what the campaign page and its event stream show.
type page struct {
	Who      identity.Identity
	CSRF     string
	ID       string
	Def      *campaign.Campaign
	Previews []preview
	Status   *control.CampaignStatus
	Proof    *control.ProofReport
	// Platforms are the planned platforms (a progress row each).
	Platforms []push.Platform
	// MayFire: the viewer's role and the launchers list allow a press.
	MayFire, MayOperate bool
	// MayRehearse: a planned launch (not a rehearsal) and an operator.
	MayRehearse bool
	// Rehearsals are the launch's latest rehearsals (none on a rehearsal's page).
	Rehearsals   []control.RehearsalSummary
	Flash, Error string
}

// shownRehearsals is how many of a launch's rehearsals its page lists.
const shownRehearsals = 5

func (c *Console) campaignPage(ctx context.Context, s *session, id string) (*page, error) {
	def, err := c.svc.Definition(ctx, id)
	if err != nil {
		return nil, err
	}
	st, err := c.svc.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	p := &page{Who: s.who, CSRF: s.csrf, ID: id, Def: def, Previews: previews(def), Status: st,
		MayFire:    control.Allow(s.who, control.ActionFire) == nil && def.MayFire(s.who.Name),
		MayOperate: control.Allow(s.who, control.ActionPrepare) == nil}
	if st.Plan != nil {
		if st.Plan.IOSTokens > 0 {
			p.Platforms = append(p.Platforms, push.IOS)
		}
		if st.Plan.AndroidTokens > 0 {
			p.Platforms = append(p.Platforms, push.Android)
		}
	}
	if def.Rehearsal == nil {
		p.MayRehearse = p.MayOperate && control.Allow(s.who, control.ActionDefine) == nil &&
			control.Allow(s.who, control.ActionPlan) == nil && st.Plan != nil
		if p.Rehearsals, err = c.svc.Rehearsals(ctx, id, shownRehearsals); err != nil {
			c.log.Warn("console: rehearsals", "campaign", id, "err", err)
		}
	}
	if st.LastProof != nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		p.Proof, _ = c.svc.WaitProof(pctx, id, st.LastProof.ProofID)
	}
	return p, nil
}

func (c *Console) campaign(w http.ResponseWriter, r *http.Request, s *session) {
	p, err := c.campaignPage(r.Context(), s, r.PathValue("id"))
	if err != nil {
		c.fail(w, err)
		return
	}
	p.Flash, p.Error = r.URL.Query().Get("flash"), r.URL.Query().Get("error")
	c.render(w, http.StatusOK, "campaign.html", p)
}

// act runs one action from a form of the campaign page as the session's
// identity, then shows the page with the outcome.
func (c *Console) act(action string) func(w http.ResponseWriter, r *http.Request, s *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		id := r.PathValue("id")
		ctx := r.Context()
		if err := control.Allow(s.who, action); err != nil {
			c.log.Warn("console: forbidden", "who", s.who.Name, "action", action, "campaign", id)
			c.actResult(w, r, s, http.StatusForbidden, "", err)
			return
		}
		var msg string
		var err error
		switch action {
		case control.ActionPrepare:
			err = c.svc.Prepare(ctx, id, s.who.Name)
			msg = "prepare requested by " + s.who.Name
		case control.ActionProof:
			var pid string
			pid, err = c.svc.Proof(ctx, id, s.who.Name)
			msg = "proof " + pid + " sent by " + s.who.Name + "; outcomes appear below"
		case control.ActionAbort, control.ActionFire:
			if r.PostForm.Get("confirm") != id {
				c.actResult(w, r, s, http.StatusBadRequest, "", fmt.Errorf("type the campaign id (%s) to confirm", id))
				return
			}
			if action == control.ActionAbort {
				_, err = c.svc.Abort(ctx, id, s.who.Name)
				msg = "aborted by " + s.who.Name
				break
			}
			var out control.FireOutcome
			out, err = c.svc.Fire(ctx, id, s.who.Name, false)
			if out.Fire.FireID != "" {
				msg = fmt.Sprintf("fired at %s by %s", out.Fire.At.UTC().Format("15:04:05.000 UTC"), out.Fire.By)
				if !out.Won {
					msg = fmt.Sprintf("already fired by %s at %s: your press did nothing", out.Fire.By, out.Fire.At.UTC().Format("15:04:05.000 UTC"))
				}
			}
		}
		code := http.StatusOK
		if err != nil {
			code = http.StatusConflict
			if errors.Is(err, control.ErrForbidden) || errors.Is(err, control.ErrNotLauncher) {
				code = http.StatusForbidden
			}
		}
		c.actResult(w, r, s, code, msg, err)
	}
}

// rehearse defines the launch's next rehearsal from the form's sample and
// rate and requests its plan from the planner service (control.Service.Rehearse,
// as the API does), then shows the rehearsal's page. Defining and planning
// are operator actions.
func (c *Console) rehearse(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	for _, a := range []string{control.ActionDefine, control.ActionPlan} {
		if err := control.Allow(s.who, a); err != nil {
			c.log.Warn("console: forbidden", "who", s.who.Name, "action", "rehearse", "campaign", id)
			c.actResult(w, r, s, http.StatusForbidden, "", err)
			return
		}
	}
	sample, rate := 1.0, 0
	var err error
	if v := strings.TrimSpace(r.PostForm.Get("sample")); v != "" {
		if sample, err = strconv.ParseFloat(v, 64); err != nil {
			c.actResult(w, r, s, http.StatusBadRequest, "", fmt.Errorf("sample: %q is not a number in (0, 1]", v))
			return
		}
	}
	if v := strings.TrimSpace(r.PostForm.Get("rate")); v != "" {
		if rate, err = strconv.Atoi(v); err != nil {
			c.actResult(w, r, s, http.StatusBadRequest, "", fmt.Errorf("rate: %q is not a whole number >= 0", v))
			return
		}
	}
	def, err := c.svc.Rehearse(r.Context(), id, sample, rate, s.who.Name)
	if def == nil {
		code := http.StatusConflict
		if errors.Is(err, control.ErrBadRequest) {
			code = http.StatusBadRequest
		}
		c.actResult(w, r, s, code, "", err)
		return
	}
	// Defined but not planned is shown as an error on the rehearsal's page.
	q := "?flash=" + url.QueryEscape(fmt.Sprintf("rehearsal %s of %s defined by %s; plan requested from the planner service", def.ID, id, s.who.Name))
	if err != nil {
		q = "?error=" + url.QueryEscape(fmt.Sprintf("rehearsal %s of %s defined by %s, but %v", def.ID, id, s.who.Name, err))
	}
	http.Redirect(w, r, "/console/c/"+url.PathEscape(def.ID)+q, http.StatusSeeOther)
}

func (c *Console) actResult(w http.ResponseWriter, r *http.Request, s *session, code int, msg string, err error) {
	p, perr := c.campaignPage(r.Context(), s, r.PathValue("id"))
	if perr != nil {
		http.Error(w, perr.Error(), http.StatusNotFound)
		return
	}
	p.Flash = msg
	if err != nil {
		p.Error = err.Error()
	}
	c.render(w, code, "campaign.html", p)
}

// live is one event of the stream: what the page updates.
type live struct {
	State    string            `json:"state"`
	Ready    bool              `json:"ready_to_fire"`
	Reasons  []string          `json:"reasons"`
	Fire     *control.FireInfo `json:"fire,omitempty"`
	Progress *control.Progress `json:"progress,omitempty"`
	Gates    []gate            `json:"gates"`
	At       time.Time         `json:"at"`
}

func (c *Console) events(w http.ResponseWriter, r *http.Request, _ *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	id := r.PathValue("id")
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	ctx := r.Context()
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for {
		st, err := c.svc.Status(ctx, id)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			b, _ := json.Marshal(live{State: st.State, Ready: st.ReadyToFire, Reasons: st.Reasons, Fire: st.Fire,
				Progress: st.Progress, Gates: gates(st), At: st.At})
			fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
			fl.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// chart draws the live curve of accepted notifications since fire
// (report.LiveSnapshot.WriteSVG over the status's progress).
func (c *Console) chart(w http.ResponseWriter, r *http.Request, _ *session) {
	st, err := c.svc.Status(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, err)
		return
	}
	var sn report.LiveSnapshot
	if p := st.Progress; p != nil {
		sn = report.LiveSnapshot{Curve: p.Curve, P50: p.P50MS, P95: p.P95MS, P99: p.P99MS, MaxMS: p.MaxMS}
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	if err := sn.WriteSVG(w, st.Campaign); err != nil {
		c.log.Warn("console: chart", "err", err)
	}
}

// report serves the final report of the campaign's fire (control.Service.Report,
// what `owlctl report` prints) as a page with the curve, as the SVG or as
// the JSON.
func (c *Console) report(as string) func(w http.ResponseWriter, r *http.Request, s *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		id := r.PathValue("id")
		rep, err := c.svc.Report(r.Context(), id)
		if err != nil {
			c.fail(w, err)
			return
		}
		switch as {
		case "svg":
			w.Header().Set("Content-Type", "image/svg+xml")
			err = rep.WriteSVG(w)
		case "json":
			w.Header().Set("Content-Type", "application/json")
			err = rep.WriteJSON(w)
		default:
			var text strings.Builder
			if err = rep.WriteText(&text); err == nil {
				c.render(w, http.StatusOK, as, map[string]any{"Who": s.who, "CSRF": s.csrf, "ID": id, "Report": rep, "Text": text.String()})
			}
		}
		if err != nil {
			c.log.Warn("console: report", "campaign", id, "err", err)
		}
	}
}

// fail answers a read that failed: 404 for an unknown campaign.
func (c *Console) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, control.ErrUnknownCampaign) {
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

// gate is one line of the readiness checklist.
type gate struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
}

// gates turns the status into the checklist the CLI's readiness checks
// make: planned, fanout holds the plan, senders per planned platform, the
// guard reachable, not fired, not aborted.
func gates(st *control.CampaignStatus) []gate {
	if st.Fire != nil { // released: the gates no longer apply
		return []gate{{Name: "released", OK: true, Reason: fmt.Sprintf("fired at %s by %s", st.Fire.At.UTC().Format("15:04:05.000 UTC"), st.Fire.By)}}
	}
	rd := st.Readiness
	g := []gate{{Name: "planned", OK: st.Plan != nil, Reason: "not planned (owlctl plan)"}}
	if st.Planning != nil {
		g[0].Reason = "not planned: " + st.Planning.Text()
	}
	if st.Plan != nil {
		g[0].Reason = fmt.Sprintf("generation %d: %d tokens in %d batches", st.Plan.Generation, st.Plan.Tokens, st.Plan.Batches)
		fanoutOK := len(rd.Fanout) > 0 && rd.ManifestMatch && len(rd.MissingPartitions) == 0 &&
			rd.BatchesHeld == st.Plan.Batches && rd.TokensHeld == st.Plan.Tokens
		g = append(g, gate{Name: "fanout holds the plan", OK: fanoutOK,
			Reason: fmt.Sprintf("%d instance(s), %d/%d partitions, %d/%d batches, manifest match %v", len(rd.Fanout),
				rd.PartitionsHeld, rd.PartitionsPlanned, rd.BatchesHeld, st.Plan.Batches, rd.ManifestMatch)})
		for _, p := range []push.Platform{push.IOS, push.Android} {
			planned := st.Plan.IOSBatches
			if p == push.Android {
				planned = st.Plan.AndroidBatches
			}
			if planned == 0 {
				continue
			}
			n := rd.SendersReady[p]
			g = append(g, gate{Name: fmt.Sprintf("%s senders connected", p), OK: n > 0, Reason: fmt.Sprintf("%d ready", n)})
		}
	}
	g = append(g, gate{Name: "guard (redis) reachable", OK: len(st.Errors) == 0, Reason: joinOr(st.Errors, "ok")},
		gate{Name: "not fired yet", OK: st.Fire == nil, Reason: "not fired"},
		gate{Name: "not aborted", OK: st.Abort == nil, Reason: "not aborted"})
	if st.Fire != nil {
		g[len(g)-2].Reason = fmt.Sprintf("fired at %s by %s", st.Fire.At.UTC().Format("15:04:05.000 UTC"), st.Fire.By)
	}
	if st.Abort != nil {
		g[len(g)-1].Reason = "aborted by " + st.Abort.By
	}
	// Any other reason the Service gives is a red gate of its own.
	for _, r := range st.Reasons {
		known := false
		for _, x := range g {
			known = known || (!x.OK && x.Reason == r)
		}
		if !known && st.Fire == nil && st.Abort == nil {
			g = append(g, gate{Name: "readiness", OK: false, Reason: r})
		}
	}
	return g
}

func joinOr(ss []string, empty string) string {
	if len(ss) == 0 {
		return empty
	}
	b, _ := json.Marshal(ss)
	return string(b)
}
