package control

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/metrics"
)

// ErrNoToken is returned when no identity source is configured: without
// identities there is no fire, so the server does not start.
var ErrNoToken = errors.New("control: no identities configured (set control.users_file, or control.token / control.token_file for one shared launcher token); refusing to serve an unauthenticated fire button")

// NewAuthenticator returns the identity source of cfg: the users file if
// control.users_file is set, else the shared control.token as the one
// identity control.token_name with role launcher, else ErrNoToken. With a
// users file, control.token is only the caller's own credential.
func NewAuthenticator(cfg *config.Config) (identity.Authenticator, error) {
	if cfg.Control.UsersFile != "" {
		return identity.LoadUsers(cfg.Control.UsersFile)
	}
	if strings.TrimSpace(cfg.Control.Token) == "" {
		return nil, ErrNoToken
	}
	if !identity.ValidName(cfg.Control.TokenName) {
		return nil, fmt.Errorf("control: control.token_name %q is not a user name ([a-z0-9][a-z0-9._-]{0,62})", cfg.Control.TokenName)
	}
	return identity.Static{Token: cfg.Control.Token, ID: identity.Identity{Name: cfg.Control.TokenName, Role: identity.Launcher, Source: "token"}}, nil
}

// OpenAPI is the API's OpenAPI 3 document (openapi.json, served at
// /v1/openapi.json). Read-only.
//
//go:embed openapi.json
var OpenAPI []byte

// Server is the control HTTP API over a Service.
type Server struct {
	svc     *Service
	auth    identity.Authenticator
	limit   *identity.Limiter
	log     *slog.Logger
	mux     *http.ServeMux
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// NewServer builds the API over svc; auth resolves bearer tokens to
// identities, limit slows down wrong tokens per client address (nil: 10
// failures, then one more every 6 s). reg receives the request metrics and
// is served on /metrics (nil: no /metrics route).
func NewServer(svc *Service, auth identity.Authenticator, limit *identity.Limiter, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	if auth == nil {
		return nil, ErrNoToken
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if limit == nil {
		limit = identity.NewLimiter(10, 6*time.Second)
	}
	s := &Server{
		svc: svc, auth: auth, limit: limit, log: log, mux: http.NewServeMux(),
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "owlpost", Subsystem: "control", Name: "requests_total",
			Help: "Control API requests by route pattern and HTTP status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "owlpost", Subsystem: "control", Name: "request_seconds",
			Help:    "Control API request duration by route pattern.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
	}
	if reg != nil {
		if err := errors.Join(metrics.Register(reg, &s.reqs), metrics.Register(reg, &s.latency)); err != nil {
			return nil, fmt.Errorf("control: %w", err)
		}
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	})
	s.route("POST /v1/campaigns/{id}/prepare", ActionPrepare, s.prepare)
	s.route("POST /v1/campaigns/{id}/proof", ActionProof, s.proof)
	s.route("GET /v1/campaigns/{id}/proofs/{proof}", ActionRead, s.proofReport)
	s.route("POST /v1/campaigns/{id}/fire", ActionFire, s.fire)
	s.route("POST /v1/campaigns/{id}/abort", ActionAbort, s.abort)
	s.route("POST /v1/campaigns/{id}/rehearsals", ActionDefine, s.rehearse)
	s.route("GET /v1/campaigns/{id}/status", ActionRead, s.status)
	s.route("GET /v1/campaigns", ActionRead, s.list)
	s.route("GET /v1/whoami", ActionRead, s.whoami)
	return s, nil
}

// Handle adds a handler beside the API's routes (the console).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the API's handler.
func (s *Server) Handler() http.Handler { return s.mux }

// statusWriter records the response code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// handler is a /v1 route's work on behalf of who.
type handler func(w http.ResponseWriter, r *http.Request, who identity.Identity) error

// route registers an authenticated, authorised, measured /v1 handler.
func (s *Server) route(pattern, action string, h handler) {
	name := pattern
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			s.reqs.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
			s.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		who, err := s.Authenticate(r)
		if err == nil {
			err = Allow(who, action)
			if err != nil {
				s.log.Warn("control api: forbidden", "route", name, "who", who.Name, "role", who.Role.String())
			}
		}
		if err == nil {
			err = checkPath(r)
		}
		if err == nil {
			err = h(sw, r, who)
		}
		if err != nil {
			code, body := errorBody(err)
			switch code {
			case http.StatusUnauthorized:
				sw.Header().Set("WWW-Authenticate", `Bearer realm="owlpost"`)
			case http.StatusTooManyRequests:
				sw.Header().Set("Retry-After", "10")
			}
			if code >= 500 {
				s.log.Error("control api", "route", name, "err", err)
			}
			writeJSON(sw, code, body)
		}
	})
}

var (
	idRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	proofRE = regexp.MustCompile(`^proof-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}$`)
)

// checkPath refuses path parameters that cannot name a campaign or proof.
func checkPath(r *http.Request) error {
	if id := r.PathValue("id"); id != "" && !idRE.MatchString(id) {
		return fmt.Errorf("%w: %q is not a campaign id ([a-z0-9][a-z0-9._-]{0,62})", ErrBadRequest, id)
	}
	if p := r.PathValue("proof"); p != "" && !proofRE.MatchString(p) {
		return fmt.Errorf("%w: %q is not a proof id", ErrBadRequest, p)
	}
	return nil
}

// ErrRateLimited: too many wrong tokens from this client; wait and retry.
var ErrRateLimited = errors.New("too many failed logins from this address; wait and retry")

// Authenticate returns the identity of r's bearer token. Wrong tokens are
// counted per client address by the limiter; over the limit no token is
// checked and the error wraps ErrRateLimited.
func (s *Server) Authenticate(r *http.Request) (identity.Identity, error) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) < len(p) || !strings.EqualFold(h[:len(p)], p) || strings.TrimSpace(h[len(p):]) == "" {
		return identity.Identity{}, fmt.Errorf("%w: missing bearer token", ErrUnauthorized)
	}
	return s.Login(r, h[len(p):])
}

// Login checks token for the client of r, rate-limiting wrong tokens per
// client address. The console's login form uses it too.
func (s *Server) Login(r *http.Request, token string) (identity.Identity, error) {
	client := ClientAddr(r)
	if !s.limit.Allow(client) {
		return identity.Identity{}, ErrRateLimited
	}
	who, err := s.auth.Authenticate(r.Context(), token)
	if err != nil {
		s.limit.Fail(client)
		s.log.Warn("control api: wrong token", "client", client)
		return identity.Identity{}, fmt.Errorf("%w: wrong token", ErrUnauthorized)
	}
	return who, nil
}

// ClientAddr is the client's IP address (the key of the login limiter).
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// apiError is the JSON error body.
type apiError struct {
	Error   string    `json:"error"`
	Code    string    `json:"code"`
	Reasons []string  `json:"reasons,omitempty"`
	Fire    *FireInfo `json:"fire,omitempty"`
}

// Machine-readable error codes.
const (
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotLauncher      = "not_a_launcher"
	CodeRateLimited      = "rate_limited"
	CodeBadRequest       = "bad_request"
	CodeUnknownCampaign  = "unknown_campaign"
	CodeUnknownProof     = "unknown_proof"
	CodeNotPlanned       = "not_planned"
	CodeNotReady         = "not_ready"
	CodeAborted          = "aborted"
	CodeIsRehearsal      = "is_rehearsal"
	CodeAlreadyFired     = "already_fired"
	CodeGuardUnavailable = "guard_unavailable"
	CodeInternal         = "internal"
)

func errorBody(err error) (int, apiError) {
	e := apiError{Error: err.Error()}
	var nr *NotReadyError
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, withCode(e, CodeUnauthorized)
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, withCode(e, CodeRateLimited)
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, withCode(e, CodeForbidden)
	case errors.Is(err, ErrNotLauncher):
		return http.StatusForbidden, withCode(e, CodeNotLauncher)
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, withCode(e, CodeBadRequest)
	case errors.Is(err, ErrUnknownCampaign):
		return http.StatusNotFound, withCode(e, CodeUnknownCampaign)
	case errors.Is(err, ErrUnknownProof):
		return http.StatusNotFound, withCode(e, CodeUnknownProof)
	case errors.Is(err, ErrNotPlanned):
		return http.StatusPreconditionFailed, withCode(e, CodeNotPlanned)
	case errors.As(err, &nr):
		e.Reasons = nr.Reasons
		return http.StatusPreconditionFailed, withCode(e, CodeNotReady)
	case errors.Is(err, ErrAborted):
		return http.StatusConflict, withCode(e, CodeAborted)
	case errors.Is(err, ErrIsRehearsal):
		return http.StatusConflict, withCode(e, CodeIsRehearsal)
	case errors.Is(err, ErrGuardUnavailable):
		return http.StatusServiceUnavailable, withCode(e, CodeGuardUnavailable)
	}
	return http.StatusInternalServerError, withCode(e, CodeInternal)
}

func withCode(e apiError, code string) apiError { e.Code = code; return e }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// request is the body of the POST routes; it may be empty. The actor is
// the token's identity: a "by" sent by an older client is ignored.
type request struct {
	By    string `json:"by,omitempty"`
	Force bool   `json:"force,omitempty"`
}

func readRequest(r *http.Request) (request, error) {
	var req request
	err := readBody(r, &req)
	return req, err
}

// readBody decodes r's body, a JSON object with no unknown fields, into v;
// an empty body leaves v as it is.
func readBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("%w: read body: %v", ErrBadRequest, err)
	}
	body := strings.TrimSpace(string(b))
	if body == "" {
		return nil
	}
	if body[0] != '{' {
		return fmt.Errorf("%w: body must be a JSON object", ErrBadRequest)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: more than one JSON value", ErrBadRequest)
	}
	return nil
}

func (s *Server) prepare(w http.ResponseWriter, r *http.Request, who identity.Identity) error {
	if _, err := readRequest(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := s.svc.Prepare(r.Context(), id, who.Name); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"campaign": id, "message": "prepare requested; follow GET status"})
	return nil
}

func (s *Server) proof(w http.ResponseWriter, r *http.Request, who identity.Identity) error {
	if _, err := readRequest(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	pid, err := s.svc.Proof(r.Context(), id, who.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"campaign": id, "proof_id": pid,
		"report": "/v1/campaigns/" + id + "/proofs/" + pid + "?wait=30s"})
	return nil
}

func (s *Server) proofReport(w http.ResponseWriter, r *http.Request, _ identity.Identity) error {
	wait := time.Duration(0)
	if q := r.URL.Query().Get("wait"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < 0 || d > 5*time.Minute {
			return fmt.Errorf("%w: wait must be a duration up to 5m", ErrBadRequest)
		}
		wait = d
	}
	rep, err := s.svc.waitProof(r.Context(), r.PathValue("id"), r.PathValue("proof"), max(wait, 500*time.Millisecond))
	if rep == nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) fire(w http.ResponseWriter, r *http.Request, who identity.Identity) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	out, err := s.svc.Fire(r.Context(), r.PathValue("id"), who.Name, req.Force)
	if err != nil {
		return err
	}
	if !out.Won {
		writeJSON(w, http.StatusConflict, apiError{Error: out.Message, Code: CodeAlreadyFired, Fire: &out.Fire})
		return nil
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request, who identity.Identity) error {
	if _, err := readRequest(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	rec, err := s.svc.Abort(r.Context(), id, who.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, abortReply(id, rec))
	return nil
}

// rehearsalRequest is the body of POST /v1/campaigns/{id}/rehearsals; it
// may be empty (the whole audience, no cap of its own).
type rehearsalRequest struct {
	Sample *float64 `json:"sample"`
	// Rate is a whole number; a float so that 1e3 reads as JSON Schema
	// reads it.
	Rate *float64 `json:"rate"`
}

// RehearsalAccepted is the API's answer to a rehearsal: defined, its plan
// requested from the planner service.
type RehearsalAccepted struct {
	Campaign string   `json:"campaign"`
	Of       string   `json:"of"`
	Sample   float64  `json:"sample"`
	Rate     int      `json:"rate"`
	Status   string   `json:"status"`
	Next     []string `json:"next"`
	Message  string   `json:"message"`
}

// rehearse defines the launch's next rehearsal and requests its plan:
// operator actions (define and plan). Firing the rehearsal later is the
// fire route's, for a launcher the launch allows.
func (s *Server) rehearse(w http.ResponseWriter, r *http.Request, who identity.Identity) error {
	if err := Allow(who, ActionPlan); err != nil {
		return err
	}
	req := rehearsalRequest{}
	if err := readBody(r, &req); err != nil {
		return err
	}
	sample, rate := 1.0, 0
	if req.Sample != nil {
		sample = *req.Sample
	}
	if v := req.Rate; v != nil {
		if *v != math.Trunc(*v) || *v < 0 || *v > MaxRehearsalRate {
			return fmt.Errorf("%w: rate must be a whole number in [0, %d] (0 = no cap of its own), got %v", ErrBadRequest, MaxRehearsalRate, *v)
		}
		rate = int(*v)
	}
	launch := r.PathValue("id")
	def, err := s.svc.Rehearse(r.Context(), launch, sample, rate, who.Name)
	if err != nil {
		return err
	}
	id, base := def.ID, "/v1/campaigns/"+def.ID
	writeJSON(w, http.StatusAccepted, RehearsalAccepted{Campaign: id, Of: launch, Sample: sample, Rate: rate, Status: base + "/status",
		Next: []string{
			"GET " + base + "/status until state is planned (planning shows the planner's progress)",
			"POST " + base + "/prepare, then GET status until ready_to_fire",
			"POST " + base + "/proof",
			"POST " + base + "/fire (a launcher the launch " + launch + " allows)",
			"owlctl report " + id + ": the verdict against the launch's goal",
		},
		Message: fmt.Sprintf("rehearsal %s of %s defined (silent push, sample %.4g, rate cap %s); plan requested from the planner service",
			id, launch, sample, RateText(rate))})
	return nil
}

// AbortReply is the API's answer to an abort.
type AbortReply struct {
	Campaign string    `json:"campaign"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Message  string    `json:"message"`
}

func abortReply(id string, rec guard.AbortRecord) AbortReply {
	return AbortReply{Campaign: id, By: rec.By, At: rec.At,
		Message: fmt.Sprintf("aborted by %s at %s: no fire from now on; unsent notifications are dropped", rec.By, rec.At.UTC().Format(time.RFC3339))}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, _ identity.Identity) error {
	st, err := s.svc.Status(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, _ identity.Identity) error {
	cs, err := s.svc.Campaigns(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": cs})
	return nil
}

func (s *Server) whoami(w http.ResponseWriter, _ *http.Request, who identity.Identity) error {
	writeJSON(w, http.StatusOK, who)
	return nil
}

// ShutdownTimeout is how long the API drains the requests in flight after
// SIGTERM (new connections are refused at once). A pod also needs a preStop
// pause before it, so that its endpoint leaves the Service first
// (deploy/k8s; internal/deploytest checks both).
const ShutdownTimeout = 10 * time.Second

// Serve serves the API on ln until ctx is done, then drains the requests in
// flight for up to ShutdownTimeout.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		// Proof waits may hold a response open for minutes.
		WriteTimeout: 6 * time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("control API listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return fmt.Errorf("control: serve: %w", err)
	}
}

// ListenAndServe listens on addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("control: listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}
