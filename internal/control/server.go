package control

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/owlpost/owlpost/internal/guard"
)

// ErrNoToken is returned by NewServer when no control token is configured:
// without a token there is no fire, so the server does not start.
var ErrNoToken = errors.New("control: no API token configured (set control.token or control.token_file); refusing to serve an unauthenticated fire button")

// Server is the control HTTP API over a Service.
type Server struct {
	svc     *Service
	token   []byte
	log     *slog.Logger
	mux     *http.ServeMux
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// NewServer builds the API over svc with bearer token auth. reg receives the
// request metrics and is served on /metrics (nil: no /metrics route).
func NewServer(svc *Service, token string, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	if strings.TrimSpace(token) == "" {
		return nil, ErrNoToken
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		svc: svc, token: []byte(token), log: log, mux: http.NewServeMux(),
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
		if err := register(reg, s.reqs, s.latency); err != nil {
			return nil, err
		}
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.route("POST /v1/campaigns/{id}/prepare", s.prepare)
	s.route("POST /v1/campaigns/{id}/proof", s.proof)
	s.route("GET /v1/campaigns/{id}/proofs/{proof}", s.proofReport)
	s.route("POST /v1/campaigns/{id}/fire", s.fire)
	s.route("POST /v1/campaigns/{id}/abort", s.abort)
	s.route("GET /v1/campaigns/{id}/status", s.status)
	s.route("GET /v1/campaigns", s.list)
	return s, nil
}

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

// route registers an authenticated, measured /v1 handler.
func (s *Server) route(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
	name := pattern
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			s.reqs.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
			s.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		if !s.authorized(r) {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="owlpost"`)
			writeJSON(sw, http.StatusUnauthorized, apiError{Error: "missing or wrong bearer token", Code: "unauthorized"})
			return
		}
		if err := h(sw, r); err != nil {
			code, body := errorBody(err)
			if code >= 500 {
				s.log.Error("control api", "route", name, "err", err)
			}
			writeJSON(sw, code, body)
		}
	})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) < len(p) || !strings.EqualFold(h[:len(p)], p) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[len(p):])), s.token) == 1
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
	CodeBadRequest       = "bad_request"
	CodeUnknownCampaign  = "unknown_campaign"
	CodeNotPlanned       = "not_planned"
	CodeNotReady         = "not_ready"
	CodeAborted          = "aborted"
	CodeAlreadyFired     = "already_fired"
	CodeGuardUnavailable = "guard_unavailable"
	CodeInternal         = "internal"
)

func errorBody(err error) (int, apiError) {
	e := apiError{Error: err.Error()}
	var nr *NotReadyError
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, withCode(e, CodeBadRequest)
	case errors.Is(err, ErrUnknownCampaign):
		return http.StatusNotFound, withCode(e, CodeUnknownCampaign)
	case errors.Is(err, ErrNotPlanned):
		return http.StatusPreconditionFailed, withCode(e, CodeNotPlanned)
	case errors.As(err, &nr):
		e.Reasons = nr.Reasons
		return http.StatusPreconditionFailed, withCode(e, CodeNotReady)
	case errors.Is(err, ErrAborted):
		return http.StatusConflict, withCode(e, CodeAborted)
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

// request is the body of the POST routes.
type request struct {
	By    string `json:"by"`
	Force bool   `json:"force"`
}

func readRequest(r *http.Request) (request, error) {
	var req request
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return req, fmt.Errorf("%w: read body: %v", ErrBadRequest, err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return req, fmt.Errorf("%w: JSON body {\"by\": \"who\"} required", ErrBadRequest)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	return req, nil
}

func (s *Server) prepare(w http.ResponseWriter, r *http.Request) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := s.svc.Prepare(r.Context(), id, req.By); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"campaign": id, "message": "prepare requested; follow GET status"})
	return nil
}

func (s *Server) proof(w http.ResponseWriter, r *http.Request) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	pid, err := s.svc.Proof(r.Context(), id, req.By)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"campaign": id, "proof_id": pid,
		"report": "/v1/campaigns/" + id + "/proofs/" + pid + "?wait=30s"})
	return nil
}

func (s *Server) proofReport(w http.ResponseWriter, r *http.Request) error {
	wait := time.Duration(0)
	if q := r.URL.Query().Get("wait"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < 0 || d > 5*time.Minute {
			return fmt.Errorf("%w: wait must be a duration up to 5m", ErrBadRequest)
		}
		wait = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), max(wait, 100*time.Millisecond))
	defer cancel()
	rep, err := s.svc.WaitProof(ctx, r.PathValue("id"), r.PathValue("proof"))
	if rep == nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) fire(w http.ResponseWriter, r *http.Request) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	out, err := s.svc.Fire(r.Context(), r.PathValue("id"), req.By, req.Force)
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

func (s *Server) abort(w http.ResponseWriter, r *http.Request) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	rec, err := s.svc.Abort(r.Context(), id, req.By)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, abortReply(id, rec))
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

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	st, err := s.svc.Status(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.svc.Campaigns(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": cs})
	return nil
}

// Serve serves the API on ln until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		// Proof waits may hold a response open for minutes.
		WriteTimeout: 6 * time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("control API listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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
