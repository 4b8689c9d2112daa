package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultConns        = 4
	DefaultDialTimeout  = 10 * time.Second
	DefaultPingInterval = 15 * time.Second
	DefaultPingTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultMaxBodySize  = 1 << 20
)

// maxAttempts bounds how often a request the server never processed
// (GOAWAY, REFUSED_STREAM, a connection lost before it was sent) is tried.
const maxAttempts = 5

// Options configures a Transport.
type Options struct {
	// TLSConfig is cloned for every connection; its NextProtos is replaced by
	// {"h2"} and ServerName defaults to the request's host.
	TLSConfig *tls.Config
	// Conns is the number of connections per host. Default DefaultConns.
	Conns int
	// DialTimeout bounds the TCP connect, the TLS handshake and the wait for
	// the server's first SETTINGS. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// PingInterval is how long a connection may be silent before a PING is
	// sent; negative disables keepalive. Default DefaultPingInterval.
	PingInterval time.Duration
	// PingTimeout is how long after a PING nothing may arrive before the
	// connection is closed. Default DefaultPingTimeout.
	PingTimeout time.Duration
	// WriteTimeout bounds one write to the socket. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response's headers, on top
	// of the request's context. Zero: the context alone.
	ResponseHeaderTimeout time.Duration
	// MaxBodySize is the largest request body accepted. Default
	// DefaultMaxBodySize.
	MaxBodySize int
}

// ErrNotProcessed is wrapped by the error of a request that the server
// provably did not process (GOAWAY above its last stream id, REFUSED_STREAM,
// or never sent), after maxAttempts connections were tried.
var ErrNotProcessed = errors.New("h2: request not processed by the server")

// ErrClosed is returned by RoundTrip after Close.
var ErrClosed = errors.New("h2: transport closed")

// Transport is an http.RoundTripper over HTTP/2 with TLS, for https URLs
// only. It is safe for concurrent use.
type Transport struct {
	opts Options
	tls  *tls.Config

	mu     sync.Mutex
	pools  map[string]*pool // by host:port
	closed bool
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport; it connects lazily (see Dial).
func New(opts Options) *Transport {
	if opts.Conns <= 0 {
		opts.Conns = DefaultConns
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = DefaultPingTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = DefaultMaxBodySize
	}
	cfg := &tls.Config{}
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	}
	cfg.NextProtos = []string{"h2"}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return &Transport{opts: opts, tls: cfg, pools: map[string]*pool{}}
}

// Dial opens every connection of the pool for authority (host:port, or a
// host for port 443) that is not open yet, so that the first requests do
// not pay the handshakes.
func (t *Transport) Dial(ctx context.Context, authority string) error {
	p, err := t.pool(authority)
	if err != nil {
		return err
	}
	for i := range p.slots {
		if _, err := p.dialSlot(ctx, &p.slots[i], true); err != nil {
			return err
		}
	}
	return nil
}

// RoundTrip sends req on one of the host's connections and returns the
// response once its headers are in; the body streams as DATA arrives. It
// retries a request only when the server provably did not process it. The
// request's context bounds the whole exchange, including reading the body.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := t.readBody(req)
	if err != nil {
		return nil, err
	}
	if req.URL == nil || req.URL.Scheme != "https" || req.URL.Host == "" {
		return nil, fmt.Errorf("h2: unsupported URL %v: https only", req.URL)
	}
	if err := validHeaders(req.Header); err != nil {
		return nil, err
	}
	ctx := req.Context()
	fields, _ := ctx.Value(FieldsKey{}).([]Field)
	if err := validFields(fields); err != nil {
		return nil, err
	}
	p, err := t.pool(req.URL.Host)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(req, body, fields)
		if err == nil || !errors.Is(err, ErrNotProcessed) || attempt >= maxAttempts {
			return resp, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
	}
}

func (t *Transport) readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	limit := t.opts.MaxBodySize
	size := 512
	if req.ContentLength > 0 {
		if req.ContentLength > int64(limit) {
			return nil, fmt.Errorf("h2: request body of %d bytes exceeds %d", req.ContentLength, limit)
		}
		size = int(req.ContentLength) + 1 // +1: see EOF without growing
	}
	// One allocation for a body of the announced length: the reads go
	// straight into buf, which grows only past it.
	buf := make([]byte, 0, size)
	for {
		if len(buf) > limit {
			return nil, fmt.Errorf("h2: request body exceeds %d bytes", limit)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := req.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("h2: read request body: %w", err)
		}
	}
	if len(buf) > limit {
		return nil, fmt.Errorf("h2: request body exceeds %d bytes", limit)
	}
	return buf, nil
}

func validHeaders(h http.Header) error {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h2: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				// The value may be a secret: name the field only.
				return fmt.Errorf("h2: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// FieldsKey is the context key of header fields a request carries besides
// its Header: when req.Context().Value(FieldsKey{}) is a []Field, those
// fields are sent after the Header's. A caller sending the same fields with
// many requests keeps one slice; set in each request's Header, every field
// costs a map entry, a canonical key and a value slice per request, and
// http.Client copies the map once more.
type FieldsKey struct{}

// Field is one request header field carried under FieldsKey. Name must be
// lower case, as HTTP/2 sends it.
type Field struct{ Name, Value string }

// validFields checks fields as validHeaders checks a Header, and refuses
// what only the transport may send.
func validFields(fields []Field) error {
	for _, f := range fields {
		if !httpguts.ValidHeaderFieldName(f.Name) || strings.ToLower(f.Name) != f.Name {
			return fmt.Errorf("h2: invalid header field name %q (lower case token)", f.Name)
		}
		if connectionField(f.Name) || f.Name == "te" {
			return fmt.Errorf("h2: header field %q is the transport's", f.Name)
		}
		if !httpguts.ValidHeaderFieldValue(f.Value) {
			return fmt.Errorf("h2: invalid header field value for %q", f.Name)
		}
	}
	return nil
}

// connectionField reports whether a lower-case header name is one HTTP/2
// does not carry (RFC 9113 8.2.2) or the transport sets itself.
func connectionField(name string) bool {
	switch name {
	case "connection", "proxy-connection", "transfer-encoding", "upgrade", "keep-alive", "host", "content-length":
		return true
	}
	return false
}

func (t *Transport) pool(authority string) (*pool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if p := t.pools[authority]; p != nil {
		return p, nil
	}
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host, port = authority, "443"
	}
	p := &pool{t: t, addr: net.JoinHostPort(host, port), serverName: host, slots: make([]slot, t.opts.Conns)}
	t.pools[authority] = p
	return p, nil
}

// CloseIdleConnections closes the connections that have no request in
// flight; the pool dials again when needed.
func (t *Transport) CloseIdleConnections() {
	t.each(func(c *conn) {
		if c.load.Load() == 0 {
			c.closeWith(errIdleClosed, false)
		}
	})
}

// Close closes every connection (requests in flight fail) and makes later
// RoundTrips fail with ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.each(func(c *conn) { c.closeWith(ErrClosed, true) })
	return nil
}

func (t *Transport) each(fn func(*conn)) {
	t.mu.Lock()
	pools := make([]*pool, 0, len(t.pools))
	for _, p := range t.pools {
		pools = append(pools, p)
	}
	t.mu.Unlock()
	for _, p := range pools {
		for i := range p.slots {
			if c := p.slots[i].c.Load(); c != nil {
				fn(c)
			}
		}
	}
}

var errIdleClosed = errors.New("h2: idle connection closed")

// pool is the fixed set of connections to one host.
type pool struct {
	t          *Transport
	addr       string
	serverName string
	slots      []slot
	rr         atomic.Uint32
}

type slot struct {
	mu sync.Mutex // held while dialing
	c  atomic.Pointer[conn]
}

// get returns the least loaded usable connection, dialing an empty slot
// first (in the caller's goroutine) unless another caller already is.
func (p *pool) get(ctx context.Context) (*conn, error) {
	n := len(p.slots)
	start := int(p.rr.Add(1))
	var best *conn
	var bestLoad int32
	var empty *slot
	for i := range n {
		s := &p.slots[(start+i)%n]
		c := s.c.Load()
		if c == nil || !c.usable() {
			if empty == nil {
				empty = s
			}
			continue
		}
		if l := c.load.Load(); best == nil || l < bestLoad {
			best, bestLoad = c, l
		}
	}
	if empty == nil {
		return best, nil
	}
	// With a usable connection at hand, dial only if nobody else is.
	c, err := p.dialSlot(ctx, empty, best == nil)
	if err != nil && best != nil {
		return best, nil
	}
	return c, err
}

// dialSlot returns s's usable connection, dialing one if there is none.
func (p *pool) dialSlot(ctx context.Context, s *slot, wait bool) (*conn, error) {
	if wait {
		s.mu.Lock()
	} else if !s.mu.TryLock() {
		return nil, errors.New("h2: slot busy")
	}
	defer s.mu.Unlock()
	if c := s.c.Load(); c != nil && c.usable() {
		return c, nil
	}
	c, err := p.t.dial(ctx, p.addr, p.serverName)
	if err != nil {
		return nil, err
	}
	s.c.Store(c)
	return c, nil
}

func (t *Transport) dial(ctx context.Context, addr, serverName string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("h2: dial %s: %w", addr, err)
	}
	cfg := t.tls
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = serverName
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("h2: TLS handshake with %s: %w", addr, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		raw.Close()
		return nil, fmt.Errorf("h2: %s did not negotiate h2 with ALPN (got %q)", addr, p)
	}
	c, err := newConn(ctx, tc, &t.opts)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("h2: %s: %w", addr, err)
	}
	return c, nil
}
