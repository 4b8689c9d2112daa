package apns

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/certificate"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/push/h2"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultConnections = 4
	DefaultTimeout     = 30 * time.Second
)

// warmupToken is the device token Prepare pushes to. It is deliberately not
// 64 hex digits, so no device can own it: APNs (and the simulator) answer
// 400 BadDeviceToken once the JWT and topic have been checked, which proves
// the credential and leaves a warm HTTP/2 connection behind.
const warmupToken = "owlpost-warmup-not-a-device-token"

// warmupPayload is a silent background push, harmless whatever happens.
var warmupPayload = []byte(`{"aps":{"content-available":1}}`)

// Options configures a Sender. Exactly one of token auth (KeyPEM or KeyFile,
// with KeyID and TeamID) or certificate auth (CertFile) must be set.
type Options struct {
	// Host is the APNs base URL: "" or "production" for api.push.apple.com,
	// "development" (or "sandbox") for the sandbox, or any https URL (the
	// simulator).
	Host string

	// Token (JWT, .p8) auth.
	KeyPEM  []byte // contents of the .p8 file; takes precedence over KeyFile
	KeyFile string
	KeyID   string
	TeamID  string

	// Certificate auth: a .p12/.pfx (PKCS#12) or .pem file with certificate
	// and private key, and its password (may be empty).
	CertFile     string
	CertPassword string

	// Topic is the app's bundle id (apns-topic), required.
	Topic string

	// CAFile / CAPEM add roots to trust on top of the system pool, for the
	// simulator's self-signed certificate.
	CAFile string
	CAPEM  []byte

	// Connections is the number of independent HTTP/2 connections (apns2
	// clients); tokens of a batch are spread round-robin over them. Default 4.
	Connections int
	// Concurrency bounds the requests in flight per SendBatch call; 0 means
	// one goroutine per token.
	Concurrency int
	// Timeout bounds one request (a context deadline per push). Default 30s.
	Timeout time.Duration
	// Transport is push.TransportLibrary (default: apns2's own HTTP/2
	// transport, one per connection) or push.TransportFast (one push/h2
	// transport with Connections connections under a single apns2 client).
	Transport string
}

// Sender sends to APNs over sideshow/apns2. It implements push.Sender and is
// safe for concurrent use.
type Sender struct {
	topic       string
	concurrency int
	timeout     time.Duration
	clients     []*apns2.Client
	jwt         *token.Token // nil with certificate auth
	rr          atomic.Uint32
	workers     *push.Workers
	fast        *h2.Transport // nil with the library transport
	authority   string        // host[:port] of the APNs URL, for fast.Dial
}

var _ push.Sender = (*Sender)(nil)

// New validates opts and builds the clients. It does not connect; see Prepare.
// Errors name the offending field and never contain key material.
func New(opts Options) (*Sender, error) {
	host, err := resolveHost(opts.Host)
	if err != nil {
		return nil, err
	}
	if opts.Topic == "" {
		return nil, errors.New("apns: Options.Topic (bundle id) is required")
	}
	if opts.Connections < 0 || opts.Concurrency < 0 || opts.Timeout < 0 {
		return nil, errors.New("apns: Options.Connections, Concurrency and Timeout must not be negative")
	}
	if opts.Connections == 0 {
		opts.Connections = DefaultConnections
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	roots, err := push.RootPool(opts.CAFile, opts.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("apns: %w", err)
	}

	s := &Sender{topic: opts.Topic, concurrency: opts.Concurrency, timeout: opts.Timeout, workers: push.NewWorkers()}
	tokenAuth := len(opts.KeyPEM) > 0 || opts.KeyFile != ""
	certAuth := opts.CertFile != ""
	var cert tls.Certificate
	switch {
	case tokenAuth && certAuth:
		return nil, errors.New("apns: set either token auth (Options.KeyPEM/KeyFile) or certificate auth (Options.CertFile), not both")
	case tokenAuth:
		if s.jwt, err = newJWT(opts); err != nil {
			return nil, err
		}
	case certAuth:
		if cert, err = loadCertificate(opts.CertFile, opts.CertPassword); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("apns: no credentials: set Options.KeyPEM or KeyFile (with KeyID, TeamID), or Options.CertFile")
	}

	switch opts.Transport {
	case "", push.TransportLibrary:
	case push.TransportFast:
		tlsConf := &tls.Config{RootCAs: roots}
		if certAuth {
			tlsConf.Certificates = []tls.Certificate{cert}
		}
		s.fast = h2.New(h2.Options{TLSConfig: tlsConf, Conns: opts.Connections})
		u, _ := url.Parse(host)
		s.authority = u.Host
		// One client: the pool spreads its requests over the connections.
		// It has no Token: the authorization header is one of the fields
		// sent through the request context (headerFields), like the
		// certificate, which is in the TLS config.
		c := &apns2.Client{Host: host,
			HTTPClient: &http.Client{Transport: &transport{base: s.fast, zero: []string{"0"}}}}
		s.clients = []*apns2.Client{c}
		return s, nil
	default:
		return nil, fmt.Errorf("apns: Options.Transport %q: want %q or %q", opts.Transport, push.TransportLibrary, push.TransportFast)
	}
	for range opts.Connections {
		c := newClient(s.jwt, cert)
		lib, ok := c.HTTPClient.Transport.(*http2.Transport)
		if !ok {
			return nil, fmt.Errorf("apns: unexpected apns2 transport %T", c.HTTPClient.Transport)
		}
		if lib.TLSClientConfig == nil {
			lib.TLSClientConfig = &tls.Config{}
		}
		lib.TLSClientConfig.RootCAs = roots
		c.HTTPClient.Transport = &transport{base: lib, zero: []string{"0"}}
		// The per-request timeout is a context deadline set by the worker:
		// http.Client.Timeout over a transport net/http does not recognise
		// (ours wraps http2's) costs a timer goroutine per request.
		c.HTTPClient.Timeout = 0
		c.Host = host
		s.clients = append(s.clients, c)
	}
	return s, nil
}

// newClient is apns2's client for token auth (jwt set) or certificate auth.
func newClient(jwt *token.Token, cert tls.Certificate) *apns2.Client {
	if jwt != nil {
		return apns2.NewTokenClient(jwt)
	}
	return apns2.NewClient(cert)
}

func resolveHost(h string) (string, error) {
	switch strings.ToLower(h) {
	case "", "production":
		return apns2.HostProduction, nil
	case "development", "sandbox":
		return apns2.HostDevelopment, nil
	}
	u, err := url.Parse(h)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("apns: Options.Host %q: want \"production\", \"development\" or an https:// URL", h)
	}
	return strings.TrimRight(h, "/"), nil
}

func newJWT(opts Options) (*token.Token, error) {
	if opts.KeyID == "" || opts.TeamID == "" {
		return nil, errors.New("apns: token auth needs Options.KeyID and Options.TeamID")
	}
	pemBytes := opts.KeyPEM
	if len(pemBytes) == 0 {
		b, err := os.ReadFile(opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("apns: Options.KeyFile: %w", err)
		}
		pemBytes = b
	}
	key, err := token.AuthKeyFromBytes(pemBytes)
	if err != nil {
		// The library's errors describe the format problem, not the key.
		return nil, fmt.Errorf("apns: Options.KeyPEM/KeyFile is not a PKCS#8 EC (.p8) key: %w", err)
	}
	return &token.Token{AuthKey: key, KeyID: opts.KeyID, TeamID: opts.TeamID}, nil
}

func loadCertificate(file, password string) (tls.Certificate, error) {
	var (
		cert tls.Certificate
		err  error
	)
	switch strings.ToLower(filepath.Ext(file)) {
	case ".p12", ".pfx":
		cert, err = certificate.FromP12File(file, password)
	default:
		cert, err = certificate.FromPemFile(file, password)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("apns: Options.CertFile %s: %w", file, err)
	}
	return cert, nil
}

// Platform returns push.IOS.
func (s *Sender) Platform() push.Platform { return push.IOS }

// Prepare signs the first JWT and opens one HTTP/2 connection per client by
// pushing a silent notification to an impossible token (see warmupToken).
// APNs checks the credential and topic before the token, so an auth or topic
// refusal comes back as an error wrapping push.ErrFatal; the expected 400
// BadDeviceToken (or any per-token/per-notification answer) means ready.
// 429/5xx/network errors are returned as retryable.
func (s *Sender) Prepare(ctx context.Context) error {
	if s.jwt != nil {
		s.jwt.Lock()
		_, err := s.jwt.Generate()
		s.jwt.Unlock()
		if err != nil {
			return fmt.Errorf("apns: sign provider token: %w: %w", err, push.ErrFatal)
		}
	}
	if s.fast != nil {
		dctx, cancel := context.WithTimeout(ctx, s.timeout)
		err := s.fast.Dial(dctx, s.authority)
		cancel()
		if err != nil {
			return fmt.Errorf("apns: prepare: %w", &push.RetryAfterError{Reason: "network", Err: err})
		}
	}
	errs := make([]error, len(s.clients))
	var wg sync.WaitGroup
	for i, c := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.warm(ctx, c)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("apns: prepare connection %d: %w", i, err)
		}
	}
	return nil
}

func (s *Sender) warm(ctx context.Context, c *apns2.Client) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rc := &reqContext{Context: ctx, expireNow: true}
	n := &apns2.Notification{
		DeviceToken: warmupToken,
		Topic:       s.topic,
		Priority:    apns2.PriorityLow,
		PushType:    apns2.PushTypeBackground,
		Payload:     warmupPayload,
	}
	if s.fast != nil {
		rc.expireNow, rc.fields = false, s.headerFields("", apns2.PriorityLow, time.Time{})
		n.Topic, n.Priority = "", 0
	}
	resp, err := c.PushWithContext(rc, n)
	if err != nil {
		return &push.RetryAfterError{Reason: "network", Err: err}
	}
	err = responseError(resp.StatusCode, resp.Reason, rc.retryAfter, time.Now())
	switch push.Classify(err) {
	case push.ClassFatal, push.ClassRetryable:
		return err
	}
	return nil
}

// SendBatch pushes msg to every token concurrently: one request per token in
// flight at once (at most Options.Concurrency), made by the Sender's reused
// workers and spread round-robin over the connections. Results are in the
// order of tokens. The payload bytes are sent as they are. It never retries.
//
// Options.Timeout bounds each request. When every token of the batch goes out
// at once (Concurrency 0 or >= len(tokens)) that is one deadline for the whole
// batch, set as it starts: the requests start together, and one timer and one
// Done channel per batch are much cheaper than one per token. With a smaller
// Concurrency, tokens wait for a free worker, so each request gets its own.
func (s *Sender) SendBatch(ctx context.Context, msg *push.Message, tokens []string) []push.Result {
	results := make([]push.Result, len(tokens))
	if len(tokens) == 0 {
		return results
	}
	if msg == nil || msg.APNs == nil {
		err := &push.ReasonError{Reason: "no_apns_message", Err: push.ErrFatal}
		for i, t := range tokens {
			results[i] = push.Result{Token: t, Err: err}
		}
		return results
	}
	workers := s.concurrency
	if workers <= 0 || workers > len(tokens) {
		workers = len(tokens)
	}
	b := &batch{
		s:       s,
		ctx:     ctx,
		reqCtx:  ctx,
		msg:     msg,
		payload: msg.APNs.Payload,
		tokens:  tokens,
		results: results,
		first:   int(s.rr.Add(1)),
	}
	if s.fast != nil {
		b.fields = s.headerFields(msg.CollapseID, msg.APNs.Priority, msg.APNs.Expiration)
	}
	if workers == len(tokens) {
		var cancel context.CancelFunc
		b.reqCtx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	} else {
		b.perRequest = true
	}
	b.wg.Add(workers)
	for range workers {
		s.workers.Run(b)
	}
	b.wg.Wait()
	return results
}

// headerFields are the request headers of the fast transport's pushes that
// apns2 would set in every request's header map from the Notification (and
// its Token): built once per batch and sent through the request context
// (h2.FieldsKey), with the Notification's fields left empty. apns2 still
// sets content-type and apns-push-type. The values are apns2's: a bearer
// JWT it re-signs after token.TokenTimeout, and an expiration sent only
// when after the epoch, except that a zero one is sent as "0" (see
// reqContext.expireNow).
func (s *Sender) headerFields(collapseID string, priority int, exp time.Time) []h2.Field {
	f := make([]h2.Field, 0, 5)
	if s.jwt != nil {
		f = append(f, h2.Field{Name: "authorization", Value: "bearer " + s.jwt.GenerateIfExpired()})
	}
	if s.topic != "" {
		f = append(f, h2.Field{Name: "apns-topic", Value: s.topic})
	}
	if collapseID != "" {
		f = append(f, h2.Field{Name: "apns-collapse-id", Value: collapseID})
	}
	if priority > 0 {
		f = append(f, h2.Field{Name: "apns-priority", Value: strconv.Itoa(priority)})
	}
	switch {
	case exp.IsZero():
		f = append(f, h2.Field{Name: "apns-expiration", Value: "0"})
	case exp.After(time.Unix(0, 0)):
		f = append(f, h2.Field{Name: "apns-expiration", Value: strconv.FormatInt(exp.Unix(), 10)})
	}
	return f
}

// batch is the state shared by the workers of one SendBatch call.
type batch struct {
	s          *Sender
	ctx        context.Context // the caller's: its end is the caller giving up
	reqCtx     context.Context // parent of every request: ctx, or ctx with the batch deadline
	perRequest bool            // a deadline per request (bounded concurrency)
	msg        *push.Message
	payload    any // msg.APNs.Payload boxed once, not per token
	tokens     []string
	results    []push.Result
	first      int        // round-robin start, so small batches still use every connection
	fields     []h2.Field // the fast transport's header fields (headerFields); nil with the library's
	next       atomic.Int64
	wg         sync.WaitGroup
}

// work sends tokens of b until none is left, then marks one worker done.
func (b *batch) Work() {
	defer b.wg.Done()
	a := b.msg.APNs
	expireNow := a.Expiration.IsZero()
	// One Notification per worker and batch, reused for each of its tokens:
	// apns2 marshals it into the request and keeps no reference after
	// PushWithContext returns. The request context is not reused: http2's
	// stream goroutine may still read it after the response is in.
	n := &apns2.Notification{
		Payload:  b.payload,
		PushType: apns2.EPushType(a.PushType),
	}
	if b.fields == nil {
		n.CollapseID, n.Topic, n.Expiration, n.Priority = b.msg.CollapseID, b.s.topic, a.Expiration, a.Priority
	} else {
		expireNow = false // apns-expiration is one of the fields
	}
	clients := b.s.clients
	for {
		i := int(b.next.Add(1) - 1)
		if i >= len(b.tokens) {
			return
		}
		tok := b.tokens[i]
		if err := b.ctx.Err(); err != nil {
			b.results[i] = push.Result{Token: tok, Err: err}
			continue
		}
		n.DeviceToken = tok
		ctx, cancel := b.reqCtx, context.CancelFunc(nil)
		if b.perRequest {
			ctx, cancel = context.WithTimeout(b.reqCtx, b.s.timeout)
		}
		rc := &reqContext{Context: ctx, expireNow: expireNow, fields: b.fields}
		resp, err := clients[(b.first+i)%len(clients)].PushWithContext(rc, n)
		if cancel != nil {
			cancel()
		}
		switch {
		case err != nil:
			b.results[i] = push.Result{Token: tok, Err: b.transportError(err)}
		case resp.StatusCode == apns2.StatusSent:
			b.results[i] = push.Result{Token: tok, ID: resp.ApnsID, At: time.Now()}
		default:
			b.results[i] = push.Result{Token: tok, Err: responseError(resp.StatusCode, resp.Reason, rc.retryAfter, time.Now())}
		}
	}
}

// transportError maps a failed round trip: the caller's cancellation stays
// ctx.Err(); anything else (dial, TLS, reset, timeout) is retryable.
func (b *batch) transportError(err error) error {
	if cerr := b.ctx.Err(); cerr != nil {
		return cerr
	}
	reason := "network"
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		reason = "timeout"
	}
	return &push.RetryAfterError{Reason: reason, Err: fmt.Errorf("apns: %w", err)}
}

// Close lets the idle workers exit and closes idle connections of every
// client.
func (s *Sender) Close() error {
	s.workers.Close()
	if s.fast != nil {
		return s.fast.Close()
	}
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
	return nil
}
