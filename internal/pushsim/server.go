package pushsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Server is a running (or ready to run) simulator. All methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	tls     *tlsMaterial
	rec     *recorder
	met     *metrics
	faults  atomic.Pointer[faultSet]
	budget  atomic.Pointer[budgetState]
	limiter *rate.Limiter // nil when RateCap is 0
	apnsJWT *jwtCache
	fcmTok  *accessTokens
	pat     *patternState

	mu                      sync.Mutex
	started, closed         bool
	apnsLn, fcmLn, adminLn  net.Listener
	apnsSrv, fcmSrv, admSrv *http.Server
	serveErrs               chan error
	fcmPort                 string // set by Start before serving; read by handlers
}

// New validates cfg, generates the TLS CA and leaf certificate, and returns a
// Server that listens only once Start is called.
func New(cfg Config) (*Server, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.APNsTopics = append([]string(nil), cfg.APNsTopics...)
	tm, err := newTLSMaterial(listenIPs(cfg.APNsAddr, cfg.FCMAddr)...)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		tls:     tm,
		rec:     newRecorder(),
		met:     newMetrics(),
		apnsJWT: newJWTCache(),
		fcmTok:  newAccessTokens(),
		pat:     &patternState{seen: make(map[string]int)},
	}
	if cfg.RateCap > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.RateCap), cfg.RateCap)
	}
	s.faults.Store(compileFaults(cfg.Faults))
	s.SetBudget(cfg.Budget)
	return s, nil
}

// Start binds the three listeners and serves them in goroutines. It returns
// once the addresses are bound, so the URL methods are valid after it.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("pushsim: already started")
	}
	if s.closed {
		return errors.New("pushsim: closed")
	}
	var lns []net.Listener
	listen := func(what, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("pushsim: listen %s on %s: %w", what, addr, err)
		}
		lns = append(lns, ln)
		return ln, nil
	}
	var err error
	if s.apnsLn, err = listen("APNs", s.cfg.APNsAddr); err != nil {
		return err
	}
	if s.fcmLn, err = listen("FCM", s.cfg.FCMAddr); err != nil {
		return err
	}
	if s.adminLn, err = listen("admin", s.cfg.AdminAddr); err != nil {
		return err
	}
	_, s.fcmPort, _ = net.SplitHostPort(s.fcmLn.Addr().String())

	// APNs: HTTP/2 only over TLS, like api.push.apple.com.
	apnsProto := new(http.Protocols)
	apnsProto.SetHTTP2(true)
	s.apnsSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveAPNs),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.tls.leaf}, MinVersion: tls.VersionTLS12},
		Protocols:         apnsProto,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(s.cfg.MaxConcurrentStreams)},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       time.Hour,
	}
	fcmProto := new(http.Protocols)
	fcmProto.SetHTTP1(true)
	fcmProto.SetHTTP2(true)
	s.fcmSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveFCM),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.tls.leaf}, MinVersion: tls.VersionTLS12},
		Protocols:         fcmProto,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(s.cfg.MaxConcurrentStreams)},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       time.Hour,
	}
	s.admSrv = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}

	s.serveErrs = make(chan error, 3)
	go func() { s.serveErrs <- s.apnsSrv.ServeTLS(s.apnsLn, "", "") }()
	go func() { s.serveErrs <- s.fcmSrv.ServeTLS(s.fcmLn, "", "") }()
	go func() { s.serveErrs <- s.admSrv.Serve(s.adminLn) }()
	s.started = true
	return nil
}

// Close shuts the listeners down, letting in-flight requests finish for up
// to five seconds.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.started {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range []*http.Server{s.apnsSrv, s.fcmSrv, s.admSrv} {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			_ = srv.Close()
		}
	}
	for range 3 {
		if err := <-s.serveErrs; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pushsim: close: %w", err)
	}
	return nil
}

func (s *Server) addr(ln *net.Listener) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *ln == nil {
		return ""
	}
	return (*ln).Addr().String()
}

// APNsURL is the APNs base URL, "https://127.0.0.1:PORT", for apns2's
// Client.Host. Empty before Start.
func (s *Server) APNsURL() string {
	if a := s.addr(&s.apnsLn); a != "" {
		return "https://" + a
	}
	return ""
}

// FCMURL is the FCM HTTP v1 base URL, "https://127.0.0.1:PORT/v1", for
// firebase's option.WithEndpoint (messaging appends
// "/projects/{p}/messages:send"). Empty before Start.
func (s *Server) FCMURL() string {
	if a := s.addr(&s.fcmLn); a != "" {
		return "https://" + a + "/v1"
	}
	return ""
}

// TokenURL is the OAuth2 token endpoint, "https://127.0.0.1:PORT/token", for
// a service account's token_uri. Empty before Start.
func (s *Server) TokenURL() string {
	if a := s.addr(&s.fcmLn); a != "" {
		return "https://" + a + "/token"
	}
	return ""
}

// AdminURL is the plain-HTTP admin API base, "http://127.0.0.1:PORT". Empty
// before Start.
func (s *Server) AdminURL() string {
	if a := s.addr(&s.adminLn); a != "" {
		return "http://" + a
	}
	return ""
}

// CACertPEM is the PEM of the CA that signed the TLS certificate.
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.tls.caPEM...) }

// ClientTLSConfig is a client TLS configuration that trusts only the
// simulator's CA, for apns2's http2.Transport or an http.Transport.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.tls.pool, MinVersion: tls.VersionTLS12}
}

// SetFaults replaces the random faults. Unknown reasons or codes are ignored;
// call Faults.Validate first to reject them.
func (s *Server) SetFaults(f Faults) { s.faults.Store(compileFaults(f)) }

// CurrentFaults returns a copy of the faults in force.
func (s *Server) CurrentFaults() Faults { return cloneFaults(s.faults.Load().raw) }

// Stats summarises campaign ("" = all campaigns).
func (s *Server) Stats(campaign string) Stats { return s.rec.stats(campaign) }

// Arrivals returns the arrival time of every accepted notification of
// campaign ("" = all), sorted.
func (s *Server) Arrivals(campaign string) []time.Time {
	ns := s.rec.arrivalsNanos(campaign, "")
	out := make([]time.Time, len(ns))
	for i, n := range ns {
		out[i] = time.Unix(0, n)
	}
	return out
}

// Reset forgets every recording, the per-token pattern counts and the
// background budget spent per token. Faults, the budget's figures,
// credentials and issued tokens stay.
func (s *Server) Reset() {
	s.rec.reset()
	s.pat.reset()
	s.SetBudget(s.CurrentBudget())
}

// delay sleeps Latency + rand[0,Jitter), or until ctx ends.
func (s *Server) delay(ctx context.Context) {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		d += time.Duration(rand.Int64N(int64(s.cfg.Jitter)))
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// randomFault draws a random fault for one request, "" if none.
func (s *Server) randomFault(apns bool, now time.Time) (key string, fs *faultSet) {
	fs = s.faults.Load()
	if !fs.until.IsZero() && !now.Before(fs.until) {
		return "", fs
	}
	entries := fs.fcm
	if apns {
		entries = fs.apns
	}
	if len(entries) == 0 {
		return "", fs
	}
	return pick(entries, rand.Float64()), fs
}

// allow applies the rate cap; false means answer 429.
func (s *Server) allow() bool { return s.limiter == nil || s.limiter.Allow() }

// retryAfterSeconds renders d as whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) string {
	sec := int64((d + time.Second - 1) / time.Second)
	if sec < 1 {
		sec = 1
	}
	return strconv.FormatInt(sec, 10)
}

// patternState counts how often each pattern token was seen.
type patternState struct {
	mu   sync.Mutex
	seen map[string]int
}

// next returns how many times token was seen before this call.
func (p *patternState) next(token string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.seen[token]
	p.seen[token] = n + 1
	return n
}

func (p *patternState) reset() {
	p.mu.Lock()
	p.seen = make(map[string]int)
	p.mu.Unlock()
}
