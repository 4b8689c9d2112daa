package fcm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/push/h2"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultClients   = 4
	DefaultChunkSize = 250
	MaxChunkSize     = 500 // firebase's limit per SendEach call, kept for the same shape
	DefaultTimeout   = 30 * time.Second
)

// chunkWorkers is the number of requests of one chunk in flight at once,
// as firebase's SendEach runs them (its numWorkers).
const chunkWorkers = 50

// defaultEndpointHost is the host of firebase's default messaging endpoint.
const defaultEndpointHost = "fcm.googleapis.com"

// messagingScope is the OAuth2 scope of the FCM HTTP v1 API.
const messagingScope = "https://www.googleapis.com/auth/firebase.messaging"

// warmupToken is the registration token of Prepare's validate-only send. It
// cannot be a real registration token (far too short), so FCM answers 400
// INVALID_ARGUMENT once the OAuth2 token and project have been checked;
// validate_only guarantees nothing is delivered anyway.
const warmupToken = "owlpost-warmup-not-a-registration-token"

// Options configures a Sender.
type Options struct {
	// ProjectID is the Firebase project; default: the service account's
	// project_id.
	ProjectID string
	// CredentialsJSON (or CredentialsFile) is a service-account key JSON. Its
	// token_uri is where OAuth2 access tokens are fetched (the simulator's
	// service accounts point at the simulator).
	CredentialsJSON []byte
	CredentialsFile string
	// Endpoint overrides the messaging endpoint, default
	// https://fcm.googleapis.com/v1 (for the simulator: pushsim's FCMURL, which
	// ends in /v1).
	Endpoint string
	// CAFile / CAPEM add roots to trust, on top of the system pool, for both
	// the token endpoint and the messaging endpoint (the simulator's CA).
	CAFile string
	CAPEM  []byte
	// Clients is the number of messaging clients, each with its own
	// connection pool (one HTTP/2 connection once warmed). Default 4.
	Clients int
	// ChunkSize is the number of tokens per chunk, each chunk sent 50
	// requests at a time on one client, like one firebase SendEach call.
	// Default 250, at most 500.
	ChunkSize int
	// Timeout bounds the wait for each messaging answer
	// (http.Transport.ResponseHeaderTimeout) and each token fetch (whole
	// request). Default 30s. The caller's ctx bounds a SendBatch as a whole.
	//
	// Not http.Client.Timeout on the messaging clients: over a transport that
	// net/http does not recognise (the oauth2 one) it costs a timer goroutine
	// per request.
	Timeout time.Duration
	// Transport is push.TransportLibrary (default: a net/http transport per
	// client) or push.TransportFast (one push/h2 transport with Clients
	// connections shared by the clients; Timeout is its
	// ResponseHeaderTimeout).
	Transport string
}

// Sender sends to FCM HTTP v1 through firebase.google.com/go/v4/messaging.
// It implements push.Sender and is safe for concurrent use.
type Sender struct {
	clients []*messaging.Client
	bases   []*http.Transport // per-client connection pools, for Close
	fast    *h2.Transport     // shared by the clients with the fast transport
	host    string            // host[:port] of the messaging endpoint, for fast.Dial
	tokenTr *http.Transport   // token endpoint pool, for Close
	auth    *authWatch
	ts      oauth2.TokenSource // shared by every client: one access token
	chunk   int
	rr      atomic.Uint32
	workers *push.Workers
}

var _ push.Sender = (*Sender)(nil)

// New validates opts and builds the clients. It makes no request; see
// Prepare. Errors name the offending field and never contain key material.
func New(opts Options) (*Sender, error) {
	if opts.Clients < 0 || opts.ChunkSize < 0 || opts.Timeout < 0 {
		return nil, errors.New("fcm: Options.Clients, ChunkSize and Timeout must not be negative")
	}
	if opts.ChunkSize > MaxChunkSize {
		return nil, fmt.Errorf("fcm: Options.ChunkSize %d exceeds firebase's limit of %d", opts.ChunkSize, MaxChunkSize)
	}
	if opts.Clients == 0 {
		opts.Clients = DefaultClients
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Endpoint != "" {
		if u, err := url.Parse(opts.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("fcm: Options.Endpoint %q is not an absolute URL", opts.Endpoint)
		}
	}
	credJSON := opts.CredentialsJSON
	switch {
	case len(credJSON) > 0 && opts.CredentialsFile != "":
		return nil, errors.New("fcm: set Options.CredentialsJSON or Options.CredentialsFile, not both")
	case len(credJSON) == 0 && opts.CredentialsFile == "":
		return nil, errors.New("fcm: Options.CredentialsJSON or Options.CredentialsFile (service account key) is required")
	case len(credJSON) == 0:
		b, err := os.ReadFile(opts.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("fcm: Options.CredentialsFile: %w", err)
		}
		credJSON = b
	}
	roots, err := push.RootPool(opts.CAFile, opts.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}

	s := &Sender{chunk: opts.ChunkSize, workers: push.NewWorkers()}
	// The token fetch to token_uri goes through its own client trusting roots:
	// oauth2 reads it from the context the token source was built with (the
	// source keeps that context for every refresh, so it is not a request's).
	s.tokenTr = baseTransport(roots, 0)
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient,
		&http.Client{Transport: s.tokenTr, Timeout: opts.Timeout})
	creds, err := google.CredentialsFromJSONWithTypeAndParams(tokenCtx, credJSON, google.ServiceAccount,
		google.CredentialsParams{Scopes: []string{messagingScope}})
	if err != nil {
		// Parse/type errors only; they do not quote the key.
		return nil, fmt.Errorf("fcm: Options.CredentialsJSON/CredentialsFile: %w", err)
	}
	project := opts.ProjectID
	if project == "" {
		project = creds.ProjectID
	}
	if project == "" {
		return nil, errors.New("fcm: Options.ProjectID is required (the service account has no project_id)")
	}
	s.auth = &authWatch{src: creds.TokenSource}
	s.ts = oauth2.ReuseTokenSource(nil, s.auth)

	switch opts.Transport {
	case "", push.TransportLibrary:
	case push.TransportFast:
		s.fast = h2.New(h2.Options{TLSConfig: &tls.Config{RootCAs: roots}, Conns: opts.Clients,
			ResponseHeaderTimeout: opts.Timeout})
		s.host = defaultEndpointHost
		if opts.Endpoint != "" {
			u, _ := url.Parse(opts.Endpoint) // validated above
			s.host = u.Host
		}
	default:
		return nil, fmt.Errorf("fcm: Options.Transport %q: want %q or %q", opts.Transport, push.TransportLibrary, push.TransportFast)
	}
	for i := range opts.Clients {
		var base http.RoundTripper = s.fast
		if s.fast == nil {
			t := baseTransport(roots, opts.Timeout)
			s.bases = append(s.bases, t)
			base = t
		}
		// The fast transport's requests carry the access token as a header
		// field of their context (Sender.authorize); oauth2.Transport would
		// clone every request and its header map to set it.
		if s.fast == nil {
			base = &oauth2.Transport{Source: s.ts, Base: base}
		}
		hc := &http.Client{Transport: &noLibraryRetry{base: base}}
		// WithHTTPClient makes firebase use hc as is (its own credential
		// handling is bypassed; hc carries the OAuth2 token itself).
		appOpts := []option.ClientOption{option.WithHTTPClient(hc)}
		if opts.Endpoint != "" {
			appOpts = append(appOpts, option.WithEndpoint(opts.Endpoint))
		}
		app, err := firebase.NewApp(context.Background(), &firebase.Config{ProjectID: project}, appOpts...)
		if err != nil {
			return nil, fmt.Errorf("fcm: firebase app %d: %w", i, err)
		}
		mc, err := app.Messaging(context.Background())
		if err != nil {
			return nil, fmt.Errorf("fcm: messaging client %d: %w", i, err)
		}
		s.clients = append(s.clients, mc)
	}
	return s, nil
}

// baseTransport is what google.golang.org/api uses by default (a clone of
// http.DefaultTransport with 100 idle connections per host, HTTP/2 when the
// server offers it), plus the extra roots and the response-header timeout.
func baseTransport(roots *x509.CertPool, headerTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 100
	t.ResponseHeaderTimeout = headerTimeout
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return t
}

// authWatch remembers whether the token endpoint refused the last fetch:
// firebase turns a failed fetch into a bare transport error string, and a
// refused credential must stop the sender rather than be retried.
type authWatch struct {
	src     oauth2.TokenSource
	refused atomic.Bool
}

func (a *authWatch) Token() (*oauth2.Token, error) {
	t, err := a.src.Token()
	a.refused.Store(refusedFetch(err))
	return t, err
}

// refusedFetch reports whether err is the token endpoint's 4xx answer
// (invalid_grant, unauthorized_client, ...), other than 408/429.
func refusedFetch(err error) bool {
	var re *oauth2.RetrieveError
	if err == nil || !errors.As(err, &re) || re.Response == nil {
		return false
	}
	c := re.Response.StatusCode
	return c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests
}

// tokenError classifies a failed access-token fetch.
func tokenError(err error) error {
	if refusedFetch(err) {
		return &push.ReasonError{Reason: "oauth2_refused", Err: fmt.Errorf("fcm: access token: %w: %w", push.ErrFatal, err)}
	}
	return &push.RetryAfterError{Reason: "oauth2_token", Err: fmt.Errorf("fcm: access token: %w", err)}
}

// noLibraryRetry keeps firebase's messaging client from retrying by itself.
// It retries HTTP 503 and every transport error (up to 4 times, backing off
// up to minutes, internal.WithDefaultRetryConfig, not configurable), which
// would hide back-pressure and failures from the sender's metrics and
// deadline, stall a worker for minutes (4 more response-header timeouts
// behind a silent connection), and break the push.Sender contract "never
// retries by itself". So:
//   - 503 is shown to firebase as 500 (not retried); the Google error body,
//     and so the UNAVAILABLE code and the Retry-After header, are untouched;
//   - a transport error (no HTTP answer: connection refused or reset, TLS
//     failure, response-header timeout, access-token fetch failure) of a
//     Send is kept in its sendCtx and firebase is shown a 500 instead;
//     chunk.work reports the kept error, which the sender retries in its
//     next round, and Prepare reports it at once (the sender stage retries
//     Prepare with its own backoff, logging each attempt).
//
// It also marks the request's sendCtx as sent (see chunk.work). Every
// request of the Sender carries a sendCtx; one without would pass through
// unchanged.
type noLibraryRetry struct {
	base http.RoundTripper
}

func (t *noLibraryRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	sc, _ := req.Context().Value(sendCtxKey{}).(*sendCtx)
	if sc != nil {
		sc.sent = true
	}
	resp, err := t.base.RoundTrip(req)
	switch {
	case err != nil && sc != nil:
		sc.transportErr = err
		return &http.Response{
			Status: "500 Internal Server Error", StatusCode: http.StatusInternalServerError,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:  http.Header{"Content-Type": {"application/json"}},
			Body:    io.NopCloser(strings.NewReader(transportErrorBody)),
			Request: req,
		}, nil
	case err == nil && resp.StatusCode == http.StatusServiceUnavailable:
		resp.StatusCode = http.StatusInternalServerError
	}
	return resp, err
}

// transportErrorBody is what firebase parses instead of a transport error;
// chunk.work replaces its error with the real one.
const transportErrorBody = `{"error":{"code":500,"message":"owlpost: transport error (no HTTP answer)","status":"INTERNAL"}}`

// Platform returns push.Android.
func (s *Sender) Platform() push.Platform { return push.Android }

// Prepare fetches the OAuth2 access token from the service account's
// token_uri and warms every client with one validate-only send to an
// impossible token, so each opens its (HTTP/2) connection before GO; without
// it, the 50 workers of a fresh client's first chunk would each dial.
// A refused credential (token endpoint 4xx, FCM 401/403, SENDER_ID_MISMATCH)
// is an error wrapping push.ErrFatal; the expected INVALID_ARGUMENT for the
// warm-up token means ready.
func (s *Sender) Prepare(ctx context.Context) error {
	if _, err := s.ts.Token(); err != nil {
		return fmt.Errorf("fcm: prepare: %w", tokenError(err))
	}
	if s.fast != nil {
		if err := s.fast.Dial(ctx, s.host); err != nil {
			return fmt.Errorf("fcm: prepare: %w", &push.RetryAfterError{Reason: "network", Err: err})
		}
	}
	errs := make([]error, len(s.clients))
	var wg sync.WaitGroup
	for i, c := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &sendCtx{Context: ctx}
			if err := s.authorize(sc); err != nil {
				errs[i] = tokenError(err)
				return
			}
			_, err := c.SendDryRun(sc, &messaging.Message{
				Token: warmupToken,
				Data:  map[string]string{"owlpost": "warmup"},
			})
			if sc.transportErr != nil {
				err = sc.transportErr
			}
			err = sendError(ctx, err, s.auth.refused.Load(), time.Now())
			switch push.Classify(err) {
			case push.ClassFatal, push.ClassRetryable:
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("fcm: prepare client %d: %w", i, err)
		}
	}
	return nil
}

// SendBatch sends msg to every token, one firebase Send per token, in chunks
// of Options.ChunkSize run concurrently, each on the next client
// round-robin, with 50 requests of a chunk in flight at once: what
// firebase's SendEach does, but on workers the Sender keeps between chunks
// (push.Workers) rather than 50 new goroutines per call. Results are in the order
// of tokens. It never retries.
func (s *Sender) SendBatch(ctx context.Context, msg *push.Message, tokens []string) []push.Result {
	results := make([]push.Result, len(tokens))
	if msg == nil || msg.FCM == nil {
		fillErr(results, tokens, &push.ReasonError{Reason: "no_fcm_message", Err: push.ErrFatal})
		return results
	}
	// A valid access token is cached, so this is cheap. Checking here keeps a
	// token-endpoint failure from reaching firebase, which would retry it as a
	// transport error for seconds per token.
	if _, err := s.ts.Token(); err != nil {
		fillErr(results, tokens, tokenError(err))
		return results
	}
	tmpl := template(msg)
	// One allocation for all messages of the batch; empty tokens would make
	// firebase refuse the message, so they are answered here.
	msgs := make([]messaging.Message, len(tokens))
	ptrs := make([]*messaging.Message, 0, len(tokens))
	idx := make([]int32, 0, len(tokens))
	for i, t := range tokens {
		if t == "" {
			results[i] = push.Result{Err: &push.ReasonError{Reason: "empty_token", Err: push.ErrBadToken}}
			continue
		}
		msgs[i] = tmpl
		msgs[i].Token = t
		ptrs = append(ptrs, &msgs[i])
		idx = append(idx, int32(i))
	}
	nChunks := (len(ptrs) + s.chunk - 1) / s.chunk
	chunks := make([]chunk, nChunks)
	var wg sync.WaitGroup
	for n, off := 0, 0; off < len(ptrs); n, off = n+1, off+s.chunk {
		end := min(off+s.chunk, len(ptrs))
		ch := &chunks[n]
		*ch = chunk{s: s, ctx: ctx, c: s.clients[int(s.rr.Add(1))%len(s.clients)],
			msgs: ptrs[off:end], idx: idx[off:end], tokens: tokens, results: results, wg: &wg}
		w := min(chunkWorkers, end-off)
		wg.Add(w)
		for range w {
			s.workers.Run(ch)
		}
	}
	wg.Wait()
	return results
}

// chunk is the state shared by the workers of one chunk of a batch.
type chunk struct {
	s       *Sender
	ctx     context.Context
	c       *messaging.Client
	msgs    []*messaging.Message
	idx     []int32 // msgs[j] is for tokens[idx[j]]
	tokens  []string
	results []push.Result
	next    atomic.Int64
	wg      *sync.WaitGroup // the batch's
}

// work sends messages of ch until none is left, then marks one worker done.
func (ch *chunk) Work() {
	defer ch.wg.Done()
	// One sendCtx per worker and chunk, reset per message: only this
	// goroutine reads or writes sent (firebase calls the transport in the
	// goroutine of Send); http2 may read the context later, but only its
	// embedded, immutable parent.
	sc := &sendCtx{Context: ch.ctx}
	for {
		j := int(ch.next.Add(1) - 1)
		if j >= len(ch.msgs) {
			return
		}
		k := ch.idx[j]
		if err := ch.s.authorize(sc); err != nil {
			ch.results[k] = push.Result{Token: ch.tokens[k], Err: tokenError(err)}
			continue
		}
		sc.sent, sc.transportErr = false, nil
		id, err := ch.c.Send(sc, ch.msgs[j])
		now := time.Now()
		switch {
		case sc.transportErr != nil:
			ch.results[k] = push.Result{Token: ch.tokens[k], Err: sendError(ch.ctx, sc.transportErr, ch.s.auth.refused.Load(), now)}
		case err == nil:
			ch.results[k] = push.Result{Token: ch.tokens[k], ID: id, At: now}
		case !sc.sent:
			// firebase refused the message before any request (SendEach
			// would have refused the whole call): invalid for every token.
			ch.results[k] = push.Result{Token: ch.tokens[k], Err: &push.ReasonError{Reason: "invalid_message",
				Err: fmt.Errorf("fcm: %w: %w", push.ErrFatal, err)}}
		default:
			ch.results[k] = push.Result{Token: ch.tokens[k], Err: sendError(ch.ctx, err, ch.s.auth.refused.Load(), now)}
		}
	}
}

// sendCtx is the context of one worker's Sends; the transport marks sent
// when a request reaches it, which tells firebase's refusal of a message
// (no request) from a failed round trip.
type sendCtx struct {
	context.Context
	sent         bool
	transportErr error // the round trip failed without an HTTP answer (see noLibraryRetry)
	// tok and fields: the access token the fast transport's requests carry
	// (Sender.authorize), answered for h2.FieldsKey.
	tok    *oauth2.Token
	fields []h2.Field
}

// authorize sets sc's authorization header field from the current access
// token, with the fast transport (the library's has oauth2.Transport). The
// token source hands out the same token until it nears expiry, so the
// field is built once per token and worker.
func (s *Sender) authorize(sc *sendCtx) error {
	if s.fast == nil {
		return nil
	}
	tok, err := s.ts.Token()
	if err != nil {
		return err
	}
	if tok != sc.tok {
		sc.tok = tok
		sc.fields = []h2.Field{{Name: "authorization", Value: tok.Type() + " " + tok.AccessToken}}
	}
	return nil
}

type sendCtxKey struct{}

func (c *sendCtx) Value(key any) any {
	switch key {
	case sendCtxKey{}:
		return c
	case h2.FieldsKey{}:
		if c.fields != nil {
			return c.fields
		}
	}
	return c.Context.Value(key)
}

// fillErr sets err on every result.
func fillErr(results []push.Result, tokens []string, err error) {
	for i, t := range tokens {
		results[i] = push.Result{Token: t, Err: err}
	}
}

// template is the message every token of msg receives, without the token.
// Its pointers are shared read-only by all messages of the batch, as
// firebase's own SendEachForMulticast does.
func template(msg *push.Message) messaging.Message {
	f := msg.FCM
	android := &messaging.AndroidConfig{CollapseKey: msg.CollapseID, Priority: f.Priority}
	if f.TTL > 0 { // zero: FCM's default TTL
		ttl := f.TTL
		android.TTL = &ttl
	}
	m := messaging.Message{Data: f.Data, Android: android}
	if !f.Silent {
		m.Notification = &messaging.Notification{Title: f.Title, Body: f.Body, ImageURL: f.ImageURL}
		android.Notification = &messaging.AndroidNotification{
			Tag:         msg.CollapseID,
			Sound:       f.Sound,
			ClickAction: f.ClickAction,
		}
	}
	return m
}

// Close lets the idle workers exit and closes idle connections.
func (s *Sender) Close() error {
	s.workers.Close()
	if s.fast != nil {
		_ = s.fast.Close()
	}
	for _, b := range s.bases {
		b.CloseIdleConnections()
	}
	s.tokenTr.CloseIdleConnections()
	return nil
}
