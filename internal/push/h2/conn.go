package h2

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Protocol constants of this client.
const (
	streamWindow      = 1 << 20  // advertised SETTINGS_INITIAL_WINDOW_SIZE
	connWindow        = 16 << 20 // connection receive window (raised at start)
	maxHeaderListSize = 1 << 20  // advertised SETTINGS_MAX_HEADER_LIST_SIZE
	maxReadFrameSize  = 16384    // the protocol default; not raised
	defaultMaxStreams = 1000     // until the server says otherwise
	maxWindow         = 1<<31 - 1
	maxStreamID       = 1<<31 - 1
	writeBufSize      = 64 << 10
	readBufSize       = 32 << 10
	nameCacheSize     = 256 // bounds the header-name case caches
	drainTimeout      = time.Second
)

var (
	errBodyClosed    = errors.New("h2: response body closed")
	errRetired       = errors.New("h2: connection retired")
	errPingTimeout   = errors.New("h2: no answer to PING (connection dead)")
	errHeaderTimeout = timeoutError("h2: timeout awaiting response headers")
)

type timeoutError string

func (e timeoutError) Error() string { return string(e) }
func (e timeoutError) Timeout() bool { return true }

type ctrlKind uint8

const (
	ctrlSettingsAck ctrlKind = iota
	ctrlPing
	ctrlPingAck
	ctrlWindowUpdate
	ctrlRST
	ctrlGoAway
)

// ctrlFrame is a frame other than a request's HEADERS/DATA, queued for the
// writer.
type ctrlFrame struct {
	kind ctrlKind
	id   uint32
	val  uint32 // window increment or error code
	data [8]byte
}

type streamState uint8

const (
	stQueued streamState = iota // waiting in conn.queue, no id yet
	stOpen                      // HEADERS planned, in conn.active
	stDone                      // finished: answered, failed or reset
)

// stream is one request/response exchange. Fields are guarded by the
// conn's mu, except the immutable req, ctx, body and sig; resp and err are
// final once set, and are set before the first signal on sig.
type stream struct {
	c    *conn
	req  *http.Request
	ctx  context.Context
	body []byte
	// fields are sent after req.Header's (FieldsKey).
	fields []Field
	// sig (cap 1) is signalled when resp or err is set, and after that when
	// response DATA or the end of the stream arrives. Before the response
	// nothing else signals it, so the caller's first receive means "answered".
	sig chan struct{}

	state       streamState
	id          uint32
	planned     int // request body bytes handed to the writer
	localEnd    bool
	remoteEnd   bool
	sendWindow  int64
	recvWindow  int64
	recvUnacked int64
	resp        *http.Response
	err         error
	buf         []byte // received body bytes, buf[off:] unread
	off         int
	bodyErr     error // io.EOF after END_STREAM
	bodyClosed  bool
}

// dataChunk is a DATA frame planned by the writer.
type dataChunk struct {
	s   *stream
	off int
	n   int
	end bool
}

// conn is one HTTP/2 connection with its writer and reader goroutines.
type conn struct {
	opts *Options
	nc   net.Conn
	bw   *bufio.Writer
	fr   *http2.Framer // writes: writer goroutine only; reads: reader only

	// Writer goroutine only.
	henc    *hpack.Encoder
	hbuf    bytes.Buffer
	sent    map[string]sentField // by header name (see field)
	gen     uint32               // changes whenever the HPACK table may change
	lower   map[string]string    // canonical -> wire (lower-case) name
	clen    int
	clenStr string
	opened  []*stream
	chunks  []dataChunk

	// Reader goroutine only.
	canon map[string]string // wire -> canonical name

	load     atomic.Int32 // streams queued or open
	unusable atomic.Bool  // no new requests (GOAWAY, retired or closed)
	lastRead atomic.Int64 // unix nanos of the last frame read
	wake     chan struct{}
	done     chan struct{} // closed by closeLocked

	mu           sync.Mutex
	queue        []*stream
	active       map[uint32]*stream
	pending      []*stream // open streams with request body left to plan
	ctrl         []ctrlFrame
	ctrlSpare    []ctrlFrame
	nextID       uint32
	maxStreams   uint32
	peerWindow   int64 // the server's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame uint32
	peerTable    uint32
	tableChanged bool
	sendWindow   int64
	recvWindow   int64
	recvUnacked  int64
	goAway       bool
	closed       bool
	err          error
	pingOut      bool
	pingAt       time.Time
}

// newConn runs the HTTP/2 preface over nc (TLS already negotiated): it sends
// the client preface, SETTINGS and the connection window, waits for the
// server's SETTINGS, and starts the reader and writer.
func newConn(ctx context.Context, nc net.Conn, opts *Options) (*conn, error) {
	c := &conn{
		opts:         opts,
		nc:           nc,
		bw:           bufio.NewWriterSize(nc, writeBufSize),
		sent:         map[string]sentField{},
		lower:        map[string]string{},
		canon:        map[string]string{},
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		active:       map[uint32]*stream{},
		nextID:       1,
		maxStreams:   defaultMaxStreams,
		peerWindow:   65535,
		peerMaxFrame: 16384,
		sendWindow:   65535,
		recvWindow:   connWindow,
	}
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, readBufSize))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderListSize
	c.fr.SetMaxReadFrameSize(maxReadFrameSize)
	c.henc = hpack.NewEncoder(&c.hbuf)

	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	_, _ = c.bw.WriteString(http2.ClientPreface)
	_ = c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	)
	_ = c.fr.WriteWindowUpdate(0, connWindow-65535)
	if err := c.bw.Flush(); err != nil {
		return nil, fmt.Errorf("write preface: %w", err)
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("read server SETTINGS: %w", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return nil, fmt.Errorf("server's first frame is %v, want SETTINGS", f.Header().Type)
	}
	if err := c.applySettingsLocked(sf); err != nil {
		return nil, fmt.Errorf("server SETTINGS: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	c.lastRead.Store(time.Now().UnixNano())
	go c.readLoop()
	go c.writeLoop()
	c.signal()
	return c, nil
}

func (c *conn) usable() bool { return !c.unusable.Load() }

// signal wakes the writer; it never blocks.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// roundTrip queues one request and waits for its response headers.
func (c *conn) roundTrip(req *http.Request, body []byte, fields []Field) (*http.Response, error) {
	ctx := req.Context()
	s := &stream{c: c, req: req, ctx: ctx, body: body, fields: fields, sig: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.closed || c.goAway {
		c.mu.Unlock()
		return nil, fmt.Errorf("h2: connection no longer usable: %w", ErrNotProcessed)
	}
	c.queue = append(c.queue, s)
	c.load.Add(1)
	c.signal()
	c.mu.Unlock()

	var timeout <-chan time.Time
	if d := c.opts.ResponseHeaderTimeout; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-s.sig:
		return s.resp, s.err
	case <-ctx.Done():
		return c.abandon(s, ctx.Err())
	case <-timeout:
		return c.abandon(s, errHeaderTimeout)
	}
}

// abandon gives up on s for its caller: a queued stream is dropped, an open
// one reset (RST_STREAM CANCEL).
func (c *conn) abandon(s *stream, err error) (*http.Response, error) {
	c.mu.Lock()
	switch s.state {
	case stQueued:
		c.finishLocked(s, err)
	case stOpen:
		if s.resp == nil {
			c.resetLocked(s, http2.ErrCodeCancel, err)
		}
	}
	resp := s.resp
	c.mu.Unlock()
	if resp != nil { // answered meanwhile; the caller has gone
		resp.Body.Close()
	}
	return nil, err
}

// finishLocked ends s: it leaves the active set, and its caller (or its
// body's reader) gets err; err nil is a clean end.
func (c *conn) finishLocked(s *stream, err error) {
	if s.state == stDone {
		return
	}
	if s.state == stOpen {
		delete(c.active, s.id)
	}
	s.state = stDone
	c.load.Add(-1)
	if s.resp == nil {
		if err == nil {
			err = errors.New("h2: stream ended without a response")
		}
		s.err = err
		notify(s.sig)
	} else if s.bodyErr == nil {
		if err == nil {
			err = io.EOF
		}
		s.bodyErr = err
		notify(s.sig)
	}
	if c.goAway && len(c.active) == 0 && len(c.queue) == 0 {
		c.closeLocked(errRetired, http2.ErrCodeNo, false)
	}
	c.signal() // a stream slot is free
}

// resetLocked sends RST_STREAM code for s (if it was opened) and finishes
// it with err.
func (c *conn) resetLocked(s *stream, code http2.ErrCode, err error) {
	if s.state == stOpen {
		c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlRST, id: s.id, val: uint32(code)})
	}
	c.finishLocked(s, err)
}

// retireLocked takes no new streams on c; queued requests go elsewhere.
func (c *conn) retireLocked(err error) {
	c.goAway = true
	c.unusable.Store(true)
	for _, s := range c.queue {
		if s.state == stQueued {
			c.finishLocked(s, err)
		}
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	if len(c.active) == 0 {
		c.closeLocked(errRetired, http2.ErrCodeNo, false)
	}
}

func (c *conn) closeWith(err error, sendGoAway bool) {
	c.mu.Lock()
	code := http2.ErrCodeNo
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		code = http2.ErrCode(ce)
	}
	c.closeLocked(err, code, sendGoAway)
	c.mu.Unlock()
}

// closeLocked fails every stream (queued ones as not processed) and tells
// the writer to send GOAWAY code (if sendGoAway) and close the socket.
func (c *conn) closeLocked(err error, code http2.ErrCode, sendGoAway bool) {
	if c.closed {
		return
	}
	c.closed = true
	c.goAway = true
	c.unusable.Store(true)
	c.err = err
	notSent := fmt.Errorf("h2: connection closed before the request was sent (%w): %w", err, ErrNotProcessed)
	for _, s := range c.queue {
		c.finishLocked(s, notSent)
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	sent := fmt.Errorf("h2: connection closed: %w", err)
	for _, s := range c.active {
		c.finishLocked(s, sent)
	}
	if sendGoAway {
		c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlGoAway, val: uint32(code)})
	}
	close(c.done)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// refundLocked returns n received bytes to the peer's windows: the
// connection's always, s's too when s is still open. WINDOW_UPDATEs go out
// once half a window is owed.
func (c *conn) refundLocked(s *stream, n int64) {
	if n <= 0 {
		return
	}
	c.recvUnacked += n
	if c.recvUnacked >= connWindow/2 {
		c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlWindowUpdate, val: uint32(c.recvUnacked)})
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
		c.signal()
	}
	if s == nil || s.state != stOpen || s.remoteEnd {
		return
	}
	s.recvUnacked += n
	if s.recvUnacked >= streamWindow/2 {
		c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlWindowUpdate, id: s.id, val: uint32(s.recvUnacked)})
		s.recvWindow += s.recvUnacked
		s.recvUnacked = 0
		c.signal()
	}
}

// writeLoop is the connection's only writer.
func (c *conn) writeLoop() {
	var tick <-chan time.Time
	if c.opts.PingInterval > 0 {
		t := time.NewTicker(min(c.opts.PingInterval, c.opts.PingTimeout) / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.wake:
		case <-tick:
			c.keepalive()
		case <-c.done:
			_ = c.flush(true) // the GOAWAY, if any; best effort
			c.nc.Close()
			return
		}
		// Let the callers that are runnable queue their requests first:
		// woken by the first of a burst, the writer would otherwise send
		// one or two requests per TLS record and write syscall (1.5 on
		// average in a 500-token batch, against about 50 with the yield).
		runtime.Gosched()
		if err := c.flush(false); err != nil {
			// The frames the server sent before it stopped reading (a
			// GOAWAY above all, which says what it did not process) may
			// still wait to be read: the reader gets a moment to drain them.
			_ = c.nc.SetReadDeadline(time.Now().Add(drainTimeout))
			select {
			case <-c.done:
			case <-time.After(drainTimeout + 100*time.Millisecond):
			}
			c.closeWith(fmt.Errorf("h2: write: %w", err), false)
			c.nc.Close()
			return
		}
	}
}

func (c *conn) keepalive() {
	now := time.Now()
	last := time.Unix(0, c.lastRead.Load())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pingOut {
		if now.Sub(c.pingAt) > c.opts.PingTimeout && last.Before(c.pingAt) {
			c.closeLocked(errPingTimeout, http2.ErrCodeNo, false)
		}
		return
	}
	if now.Sub(last) >= c.opts.PingInterval {
		c.pingOut, c.pingAt = true, now
		f := ctrlFrame{kind: ctrlPing}
		copy(f.data[:], "owlpost!")
		c.ctrl = append(c.ctrl, f)
	}
}

// flush plans under the lock (control frames, new streams up to the
// server's limit, DATA within the windows) and writes everything planned in
// one buffered write. final: control frames only, the connection is
// closing.
func (c *conn) flush(final bool) error {
	c.mu.Lock()
	ctrl := c.ctrl
	c.ctrl = c.ctrlSpare[:0]
	c.ctrlSpare = ctrl
	opened, chunks := c.opened[:0], c.chunks[:0]
	maxFrame := c.peerMaxFrame
	table, tableChanged := c.peerTable, c.tableChanged
	c.tableChanged = false
	if !final && !c.closed {
		opened = c.openLocked(opened)
		chunks = c.planDataLocked(chunks, maxFrame)
	}
	c.mu.Unlock()

	if len(ctrl) == 0 && len(opened) == 0 && len(chunks) == 0 {
		return nil
	}
	wt := c.opts.WriteTimeout
	if final {
		wt = time.Second
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(wt))
	if tableChanged {
		c.henc.SetMaxDynamicTableSizeLimit(table)
		c.gen++ // entries may be evicted; the next field carries the update
	}
	var err error
	for i := range ctrl {
		if err = c.writeCtrl(&ctrl[i]); err != nil {
			return err
		}
	}
	for _, s := range opened {
		if err = c.writeHeaders(s, maxFrame); err != nil {
			return err
		}
	}
	for _, ch := range chunks {
		if err = c.fr.WriteData(ch.s.id, ch.end, ch.s.body[ch.off:ch.off+ch.n]); err != nil {
			return err
		}
	}
	clear(opened)
	clear(chunks)
	c.opened, c.chunks = opened[:0], chunks[:0]
	return c.bw.Flush()
}

// openLocked gives queued requests stream ids, as many as the server's
// MAX_CONCURRENT_STREAMS allows now.
func (c *conn) openLocked(opened []*stream) []*stream {
	k := 0
	for ; k < len(c.queue) && !c.goAway && uint32(len(c.active)) < c.maxStreams; k++ {
		s := c.queue[k]
		if s.state != stQueued {
			continue
		}
		if c.nextID > maxStreamID {
			break // retired below
		}
		s.id, c.nextID = c.nextID, c.nextID+2
		s.state = stOpen
		s.sendWindow = c.peerWindow
		s.recvWindow = streamWindow
		c.active[s.id] = s
		opened = append(opened, s)
		if len(s.body) == 0 {
			s.localEnd = true
		} else {
			c.pending = append(c.pending, s)
		}
	}
	n := copy(c.queue, c.queue[k:])
	clear(c.queue[n:])
	c.queue = c.queue[:n]
	if c.nextID > maxStreamID && !c.goAway {
		c.retireLocked(fmt.Errorf("h2: stream ids used up: %w", ErrNotProcessed))
	}
	return opened
}

// planDataLocked hands the writer the request DATA the windows allow.
func (c *conn) planDataLocked(chunks []dataChunk, maxFrame uint32) []dataChunk {
	keep := c.pending[:0]
	for _, s := range c.pending {
		if s.state != stOpen || s.localEnd {
			continue
		}
		for s.planned < len(s.body) {
			n := int64(min(len(s.body)-s.planned, int(maxFrame)))
			n = min(n, s.sendWindow, c.sendWindow)
			if n <= 0 {
				break
			}
			end := s.planned+int(n) == len(s.body)
			chunks = append(chunks, dataChunk{s: s, off: s.planned, n: int(n), end: end})
			s.planned += int(n)
			s.sendWindow -= n
			c.sendWindow -= n
		}
		if s.planned < len(s.body) {
			keep = append(keep, s)
			continue
		}
		s.localEnd = true
		if s.remoteEnd {
			c.finishLocked(s, nil)
		}
	}
	clear(c.pending[len(keep):])
	c.pending = keep
	return chunks
}

func (c *conn) writeCtrl(f *ctrlFrame) error {
	switch f.kind {
	case ctrlSettingsAck:
		return c.fr.WriteSettingsAck()
	case ctrlPing:
		return c.fr.WritePing(false, f.data)
	case ctrlPingAck:
		return c.fr.WritePing(true, f.data)
	case ctrlWindowUpdate:
		return c.fr.WriteWindowUpdate(f.id, f.val)
	case ctrlRST:
		return c.fr.WriteRSTStream(f.id, http2.ErrCode(f.val))
	case ctrlGoAway:
		return c.fr.WriteGoAway(0, http2.ErrCode(f.val), nil)
	}
	return nil
}

// writeHeaders HPACK-encodes s's request and writes its HEADERS (and
// CONTINUATION) frames.
func (c *conn) writeHeaders(s *stream, maxFrame uint32) error {
	c.hbuf.Reset()
	req := s.req
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	c.field(":method", method)
	c.field(":scheme", "https")
	c.field(":authority", host)
	c.field(":path", req.URL.RequestURI())
	for k, vv := range req.Header {
		name := c.wireName(k)
		switch {
		case connectionField(name):
			continue
		case name == "te":
			for _, v := range vv {
				if strings.EqualFold(v, "trailers") {
					c.field(name, "trailers")
				}
			}
			continue
		}
		for _, v := range vv {
			c.field(name, v)
		}
	}
	for _, f := range s.fields {
		c.field(f.Name, f.Value)
	}
	if len(s.body) > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		if c.clenStr == "" || c.clen != len(s.body) {
			c.clen, c.clenStr = len(s.body), strconv.Itoa(len(s.body))
		}
		c.field("content-length", c.clenStr)
	}
	block := c.hbuf.Bytes()
	endStream := len(s.body) == 0
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), int(maxFrame))
		frag := block[:n]
		block = block[n:]
		var err error
		if first {
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: frag,
				EndStream: endStream, EndHeaders: len(block) == 0})
		} else {
			err = c.fr.WriteContinuation(s.id, len(block) == 0, frag)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sentField is what a connection last sent for a header name.
type sentField struct {
	value string
	gen   uint32  // conn.gen when idx was encoded
	n     uint8   // len(idx); 0: value was not sent indexed
	idx   [3]byte // value's HPACK indexed representation
}

// field encodes one header field. A value the connection sent last time
// for the same name is indexed (HPACK incremental indexing); a new value is
// sent as a literal never indexed, so that one-off values (a device path)
// do not push the repeated ones (authorization, topic) out of the table.
// Once a repeated value is in the table, its indexed representation is
// reused as it was encoded, without the encoder's table search, for as long
// as the table has not changed (c.gen).
func (c *conn) field(name, value string) {
	sf, ok := c.sent[name]
	repeated := ok && sf.value == value
	if repeated && sf.n > 0 && sf.gen == c.gen {
		c.hbuf.Write(sf.idx[:sf.n])
		return
	}
	if !ok && len(c.sent) >= nameCacheSize {
		clear(c.sent)
	}
	off := c.hbuf.Len()
	_ = c.henc.WriteField(hpack.HeaderField{Name: name, Value: value, Sensitive: !repeated})
	out := c.hbuf.Bytes()[off:]
	sf = sentField{value: value}
	switch {
	case out[0]&0x80 != 0: // indexed (RFC 7541 6.1): the table is unchanged
		if len(out) <= len(sf.idx) {
			sf.n, sf.gen = uint8(copy(sf.idx[:], out)), c.gen
		}
	case out[0]&0xf0 == 0x10: // literal never indexed (6.2.3): unchanged
	default: // an insertion (6.2.1), or a table size update first (6.3)
		c.gen++
	}
	c.sent[name] = sf
}

// wireName is the lower-case form of a header name, cached.
func (c *conn) wireName(k string) string {
	if v, ok := c.lower[k]; ok {
		return v
	}
	v := strings.ToLower(k)
	if len(c.lower) >= nameCacheSize {
		clear(c.lower)
	}
	c.lower[k] = v
	return v
}

// canonName is the canonical form of a received header name, cached.
func (c *conn) canonName(k string) string {
	if v, ok := c.canon[k]; ok {
		return v
	}
	v := http.CanonicalHeaderKey(k)
	if len(c.canon) >= nameCacheSize {
		clear(c.canon)
	}
	c.canon[k] = v
	return v
}

// readLoop is the connection's only reader.
func (c *conn) readLoop() {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.mu.Lock()
				if s := c.active[se.StreamID]; s != nil {
					c.resetLocked(s, se.Code, fmt.Errorf("h2: %w", se))
				} else {
					c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlRST, id: se.StreamID, val: uint32(se.Code)})
					c.signal()
				}
				c.mu.Unlock()
				continue
			}
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &ce):
				c.closeWith(fmt.Errorf("h2: protocol error from server: %w", err), true)
			case errors.Is(err, http2.ErrFrameTooLarge):
				c.closeWith(fmt.Errorf("h2: %w", http2.ConnectionError(http2.ErrCodeFrameSize)), true)
			default:
				c.closeWith(fmt.Errorf("h2: read: %w", err), false)
			}
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		if err := c.handle(f); err != nil {
			c.closeWith(err, true)
			return
		}
	}
}

// handle processes one frame; an error is a connection error.
func (c *conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		s := c.active[f.StreamID]
		switch {
		case s == nil:
			return c.idleLocked(f.StreamID)
		case f.ErrCode == http2.ErrCodeRefusedStream && s.resp == nil:
			c.finishLocked(s, fmt.Errorf("h2: stream refused: %w", ErrNotProcessed))
		default:
			c.finishLocked(s, fmt.Errorf("h2: %w", http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode}))
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.applySettingsLocked(f)
	case *http2.PingFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.IsAck() {
			c.pingOut = false
			return nil
		}
		c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlPingAck, data: f.Data})
		c.signal()
	case *http2.GoAwayFrame:
		c.onGoAway(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PushPromiseFrame:
		return fmt.Errorf("h2: PUSH_PROMISE with push disabled: %w", http2.ConnectionError(http2.ErrCodeProtocol))
	}
	return nil // PRIORITY, unknown frame types: ignored
}

// idleLocked is the answer to a frame for a stream c does not know: an
// error for a stream never opened, nothing for one already closed.
func (c *conn) idleLocked(id uint32) error {
	if id%2 == 0 || id >= c.nextID {
		return fmt.Errorf("h2: frame for idle stream %d: %w", id, http2.ConnectionError(http2.ErrCodeProtocol))
	}
	return nil
}

func (c *conn) applySettingsLocked(f *http2.SettingsFrame) error {
	err := f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			return err
		}
		switch st.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = st.Val
		case http2.SettingInitialWindowSize:
			delta := int64(st.Val) - c.peerWindow
			for _, s := range c.active {
				s.sendWindow += delta
				if s.sendWindow > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.peerWindow = int64(st.Val)
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = st.Val
		case http2.SettingHeaderTableSize:
			c.peerTable, c.tableChanged = st.Val, true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("h2: SETTINGS: %w", err)
	}
	c.ctrl = append(c.ctrl, ctrlFrame{kind: ctrlSettingsAck})
	c.signal()
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return fmt.Errorf("h2: connection window overflow: %w", http2.ConnectionError(http2.ErrCodeFlowControl))
		}
	} else if s := c.active[f.StreamID]; s == nil {
		return c.idleLocked(f.StreamID)
	} else {
		s.sendWindow += int64(f.Increment)
		if s.sendWindow > maxWindow {
			c.resetLocked(s, http2.ErrCodeFlowControl, errors.New("h2: stream window overflow"))
		}
	}
	if len(c.pending) > 0 {
		c.signal()
	}
	return nil
}

// onGoAway finishes nothing that the server may have processed: streams
// above its last stream id, and queued requests, are failed as not
// processed (RoundTrip retries them elsewhere); the rest go on.
func (c *conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	debug := f.DebugData()
	if len(debug) > 64 {
		debug = debug[:64]
	}
	err := fmt.Errorf("h2: server sent GOAWAY %v (last stream %d, %q): %w", f.ErrCode, f.LastStreamID, debug, ErrNotProcessed)
	for id, s := range c.active {
		if id > f.LastStreamID {
			c.finishLocked(s, err)
		}
	}
	c.retireLocked(err)
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	status := f.PseudoValue("status")
	var resp *response
	var perr error
	if status != "" {
		resp, perr = c.response(status, f)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.active[f.StreamID]
	if s == nil {
		return c.idleLocked(f.StreamID)
	}
	switch {
	case s.remoteEnd:
		c.resetLocked(s, http2.ErrCodeStreamClosed, errors.New("h2: HEADERS after the end of the stream"))
		return nil
	case f.Truncated:
		c.resetLocked(s, http2.ErrCodeCancel, errors.New("h2: response headers exceed the advertised limit"))
		return nil
	case s.resp == nil && status == "":
		c.resetLocked(s, http2.ErrCodeProtocol, errors.New("h2: response without :status"))
		return nil
	case s.resp == nil && perr != nil:
		c.resetLocked(s, http2.ErrCodeProtocol, perr)
		return nil
	case s.resp == nil && resp.StatusCode < 200:
		if f.StreamEnded() {
			c.resetLocked(s, http2.ErrCodeProtocol, errors.New("h2: stream ended with an informational response"))
		}
		return nil // 1xx: the final response follows
	case s.resp == nil:
		resp.Request = s.req
		if f.StreamEnded() {
			resp.Body = http.NoBody
			resp.ContentLength = 0
		} else {
			resp.body.s = s
			resp.Body = &resp.body
		}
		s.resp = &resp.Response
		notify(s.sig)
	case !f.StreamEnded():
		c.resetLocked(s, http2.ErrCodeProtocol, errors.New("h2: trailers without END_STREAM"))
		return nil
	}
	if f.StreamEnded() {
		c.remoteEndLocked(s)
	}
	return nil
}

// response is an http.Response allocated with its body and, for the few
// header fields a push answer has, its header values: one allocation.
type response struct {
	http.Response
	body body
	vals [4]string
}

// response builds the response of a HEADERS frame (reader goroutine).
func (c *conn) response(status string, f *http2.MetaHeadersFrame) (*response, error) {
	code, err := strconv.Atoi(status)
	if err != nil || code < 100 || code > 999 || len(status) != 3 {
		return nil, fmt.Errorf("h2: malformed :status %q", status)
	}
	regular := f.RegularFields()
	h := make(http.Header, len(regular))
	r := &response{}
	vals := r.vals[:]
	if len(regular) > len(vals) {
		vals = make([]string, len(regular))
	}
	for i, hf := range regular {
		k := c.canonName(hf.Name)
		vals[i] = hf.Value
		if vv := h[k]; vv != nil {
			h[k] = append(vv, hf.Value)
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
	r.Response = http.Response{
		Status:        status + " " + http.StatusText(code),
		StatusCode:    code,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h,
		ContentLength: -1,
	}
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			r.ContentLength = n
		}
	}
	return r, nil
}

func (c *conn) remoteEndLocked(s *stream) {
	s.remoteEnd = true
	if s.resp != nil && s.bodyErr == nil {
		s.bodyErr = io.EOF
		notify(s.sig)
	}
	if s.localEnd {
		c.finishLocked(s, nil)
	}
}

func (c *conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length) // flow control counts padding too
	data := f.Data()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.recvWindow {
		return fmt.Errorf("h2: server overran the connection window: %w", http2.ConnectionError(http2.ErrCodeFlowControl))
	}
	c.recvWindow -= n
	s := c.active[f.StreamID]
	if s == nil || s.resp == nil || s.remoteEnd {
		c.refundLocked(nil, n)
		switch {
		case s == nil:
			return c.idleLocked(f.StreamID)
		case s.remoteEnd:
			c.resetLocked(s, http2.ErrCodeStreamClosed, errors.New("h2: DATA after the end of the stream"))
		default:
			c.resetLocked(s, http2.ErrCodeProtocol, errors.New("h2: DATA before response headers"))
		}
		return nil
	}
	if n > s.recvWindow {
		c.refundLocked(nil, n)
		c.resetLocked(s, http2.ErrCodeFlowControl, errors.New("h2: server overran the stream window"))
		return nil
	}
	s.recvWindow -= n
	if s.bodyClosed {
		c.refundLocked(nil, n)
	} else {
		s.buf = append(s.buf, data...)
		c.refundLocked(s, n-int64(len(data))) // padding: never read
		notify(s.sig)
	}
	if f.StreamEnded() {
		c.remoteEndLocked(s)
	}
	return nil
}

// body is a response body; reads return DATA as it arrives and refill the
// flow-control windows.
type body struct{ s *stream }

func (b *body) Read(p []byte) (int, error) {
	s, c := b.s, b.s.c
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.mu.Lock()
		if s.off < len(s.buf) {
			n := copy(p, s.buf[s.off:])
			s.off += n
			if s.off == len(s.buf) {
				s.buf, s.off = s.buf[:0], 0
			}
			c.refundLocked(s, int64(n))
			c.mu.Unlock()
			return n, nil
		}
		err := s.bodyErr
		if s.bodyClosed {
			err = errBodyClosed
		}
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
		select {
		case <-s.sig:
		case <-s.ctx.Done():
			b.Close()
			return 0, s.ctx.Err()
		}
	}
}

// Close discards what is unread and resets the stream if the server has
// not finished it.
func (b *body) Close() error {
	s, c := b.s, b.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.bodyClosed {
		return nil
	}
	s.bodyClosed = true
	c.refundLocked(nil, int64(len(s.buf)-s.off))
	s.buf, s.off = nil, 0
	if s.state != stDone {
		c.resetLocked(s, http2.ErrCodeCancel, errBodyClosed)
	}
	return nil
}
