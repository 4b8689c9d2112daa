package h2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func post(t *testing.T, tr http.RoundTripper, url string, body []byte, hdr ...string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return tr.RoundTrip(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

// A burst of concurrent requests over a small pool to Go's own server, whose
// stream limit is far below the burst: every request gets its own answer.
func TestGoServerBurst(t *testing.T) {
	srv, tlsConf := goServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Header", r.Header.Get("X-N"))
		w.Header().Set("apns-id", "id-"+r.Header.Get("X-N"))
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(b)
	}), 7)
	tr := New(Options{TLSConfig: tlsConf, Conns: 2})
	defer tr.Close()

	const workers, per = 50, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				n := strconv.Itoa(w*per + i)
				path := "/echo"
				if i%5 == 0 {
					path = "/empty"
				}
				resp, err := post(t, tr, srv.URL+path, []byte("body-"+n), "X-N", n, "Authorization", "bearer same-for-all")
				if err != nil {
					errs <- err
					continue
				}
				got := readAll(t, resp)
				switch {
				case resp.Header.Get("X-Echo-Header") != n || resp.Header.Get("Apns-Id") != "id-"+n:
					errs <- fmt.Errorf("request %s: headers %v", n, resp.Header)
				case path == "/empty" && (resp.StatusCode != 204 || got != ""):
					errs <- fmt.Errorf("request %s: %d %q", n, resp.StatusCode, got)
				case path == "/echo" && (resp.StatusCode != 202 || got != "body-"+n):
					errs <- fmt.Errorf("request %s: %d %q", n, resp.StatusCode, got)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Fields carried in the request's context (FieldsKey) reach the server
// beside the Header's, on every request of a connection (the second time
// HPACK-indexed); fields the transport owns or that are not lower case are
// refused before anything is sent.
func TestContextFields(t *testing.T) {
	srv, tlsConf := goServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got", r.Header.Get("Apns-Topic")+"|"+r.Header.Get("Authorization")+"|"+r.Header.Get("X-N"))
		w.WriteHeader(http.StatusOK)
	}), 0)
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	fields := []Field{{"apns-topic", "com.example.app"}, {"authorization", "bearer abc"}}
	send := func(fs []Field, n string) (*http.Response, error) {
		ctx := context.WithValue(context.Background(), FieldsKey{}, fs)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/3/device/x", bytes.NewReader([]byte("{}")))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-N", n)
		return tr.RoundTrip(req)
	}
	for _, n := range []string{"1", "2", "3"} {
		resp, err := send(fields, n)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if got, want := resp.Header.Get("X-Got"), "com.example.app|bearer abc|"+n; got != want {
			t.Fatalf("request %s: server saw %q, want %q", n, got, want)
		}
	}
	for _, bad := range [][]Field{{{"Apns-Topic", "x"}}, {{"content-length", "1"}}, {{"te", "trailers"}}, {{"x", "a\nb"}}, {{"", "x"}}} {
		if _, err := send(bad, "bad"); err == nil {
			t.Errorf("fields %q were sent", bad)
		}
	}
}

// Flow control both ways against Go's server: a request body larger than
// the initial windows, and a response body that the client does not read
// for a while (a stalled stream) while other requests on the same
// connection go on.
func TestGoServerFlowControl(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 200_000/16) // 200 kB
	large := bytes.Repeat([]byte("owlpost!"), 3<<20/8)          // 3 MiB
	srv, tlsConf := goServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload": // read slowly: the client's sends stall on the windows
			h := sha256.New()
			buf := make([]byte, 8<<10)
			for {
				n, err := r.Body.Read(buf)
				h.Write(buf[:n])
				if err != nil {
					break
				}
				time.Sleep(time.Millisecond)
			}
			fmt.Fprintf(w, "%x", h.Sum(nil))
		case "/download":
			_, _ = w.Write(large)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}), 0)
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()

	stalled, err := post(t, tr, srv.URL+"/download", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The download is stalled on its stream window (the client reads
	// nothing); the connection still serves other streams.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := post(t, tr, srv.URL+"/small", []byte("x"))
			if err != nil {
				t.Error(err)
				return
			}
			if got := readAll(t, resp); got != "ok" {
				t.Errorf("small: %q", got)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := post(t, tr, srv.URL+"/upload", big)
		if err != nil {
			t.Error(err)
			return
		}
		if got, want := readAll(t, resp), fmt.Sprintf("%x", sha256.Sum256(big)); got != want {
			t.Errorf("upload digest %s, want %s", got, want)
		}
	}()
	wg.Wait()
	// Read the stalled body slowly, in small pieces.
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		n, err := stalled.Body.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), large) {
		t.Fatalf("download: %d bytes, want %d", got.Len(), len(large))
	}
}

// Go's server shutting down gracefully sends GOAWAY: the requests it
// already has finish with their answers.
func TestGoServerGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(5)
	srv, tlsConf := goServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		<-release
		_, _ = w.Write([]byte("done"))
	}), 0)
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := post(t, tr, srv.URL, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if got := readAll(t, resp); got != "done" {
				t.Errorf("got %q", got)
			}
		}()
	}
	started.Wait()
	shut := make(chan error, 1)
	go func() { shut <- srv.Config.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // let the GOAWAY reach the client
	close(release)
	wg.Wait()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// GOAWAY in the middle of a burst: the server answers the streams up to its
// last stream id and drops the rest; those, never processed, are retried on
// a second connection. Each request is answered exactly once.
func TestGoAwayMidBurst(t *testing.T) {
	const n = 60
	var mu sync.Mutex
	processed := map[string]int{}
	var firstConnAnswers atomic.Int32
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		seen, gone := 0, false
		sc.readRequests(func(r *request) bool {
			seen++
			if gone {
				return true // after GOAWAY: read and drop, as a server draining
			}
			if i == 0 && seen == 20 {
				// Up to last is answered; GOAWAY; the rest is dropped and
				// the connection closed a little later.
				last := r.id - 2*5
				_ = sc.write(func() error { return sc.fr.WriteGoAway(last, http2.ErrCodeNo, []byte("bye")) })
				gone = true
				time.AfterFunc(200*time.Millisecond, func() { sc.nc.Close() })
				return true
			}
			if i == 0 && r.id > 2*15 {
				return true // held: beyond the coming last stream id
			}
			mu.Lock()
			processed[r.header["x-n"]]++
			mu.Unlock()
			if i == 0 {
				firstConnAnswers.Add(1)
			}
			_ = sc.respond(r.id, 200, "ok "+r.header["x-n"])
			return true
		}, nil)
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := strconv.Itoa(k)
			resp, err := post(t, tr, rs.url, []byte("p"), "X-N", id)
			if err != nil {
				t.Errorf("request %s: %v", id, err)
				return
			}
			if got := readAll(t, resp); got != "ok "+id {
				t.Errorf("request %s: %q", id, got)
			}
		}()
	}
	wg.Wait()
	if len(processed) != n {
		t.Fatalf("%d requests processed, want %d", len(processed), n)
	}
	for id, c := range processed {
		if c != 1 {
			t.Errorf("request %s processed %d times", id, c)
		}
	}
	if firstConnAnswers.Load() == 0 {
		t.Fatal("the first connection answered nothing: GOAWAY was not mid-burst")
	}
}

// The server lowers MAX_CONCURRENT_STREAMS mid-burst: once the client has
// acknowledged the new SETTINGS, it never has more streams open than that.
func TestStreamLimitLoweredMidBurst(t *testing.T) {
	const n, lowered = 80, 3
	var violations atomic.Int32
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		var mu sync.Mutex
		open, acked, sent := 0, false, false
		answer := make(chan uint32, n)
		go func() {
			for id := range answer {
				time.Sleep(time.Millisecond)
				mu.Lock()
				open--
				mu.Unlock()
				_ = sc.respond(id, 200, "ok")
			}
		}()
		defer close(answer)
		sc.readRequests(func(r *request) bool {
			mu.Lock()
			open++
			if acked && open > lowered {
				violations.Add(1)
			}
			if !sent && open >= 10 {
				sent = true
				_ = sc.write(func() error {
					return sc.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: lowered})
				})
			}
			mu.Unlock()
			answer <- r.id
			return true
		}, func(f http2.Frame) {
			if s, ok := f.(*http2.SettingsFrame); ok && s.IsAck() && sent {
				mu.Lock()
				acked = true
				mu.Unlock()
			}
		})
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := post(t, tr, rs.url, nil)
			if err != nil {
				t.Error(err)
				return
			}
			readAll(t, resp)
		}()
	}
	wg.Wait()
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d streams opened beyond the lowered limit", v)
	}
}

// REFUSED_STREAM means "not processed": the request is retried and
// answered once.
func TestRefusedStreamRetried(t *testing.T) {
	var mu sync.Mutex
	refused := map[string]bool{}
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		sc.readRequests(func(r *request) bool {
			n := r.header["x-n"]
			mu.Lock()
			first := !refused[n]
			refused[n] = true
			mu.Unlock()
			if first {
				_ = sc.write(func() error { return sc.fr.WriteRSTStream(r.id, http2.ErrCodeRefusedStream) })
				return true
			}
			_ = sc.respond(r.id, 200, "ok "+n)
			return true
		}, nil)
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	for k := range 10 {
		resp, err := post(t, tr, rs.url, []byte("x"), "X-N", strconv.Itoa(k))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "ok "+strconv.Itoa(k) {
			t.Fatalf("got %q", got)
		}
	}
	// Another reset code is an error, not retried.
	rs2, tlsConf2 := newRawServer(t, func(i int, sc *srvConn) {
		sc.readRequests(func(r *request) bool {
			_ = sc.write(func() error { return sc.fr.WriteRSTStream(r.id, http2.ErrCodeInternal) })
			return true
		}, nil)
	})
	tr2 := New(Options{TLSConfig: tlsConf2, Conns: 1})
	defer tr2.Close()
	_, err := post(t, tr2, rs2.url, []byte("x"))
	var se http2.StreamError
	if !errors.As(err, &se) || se.Code != http2.ErrCodeInternal {
		t.Fatalf("err = %v, want a StreamError INTERNAL_ERROR", err)
	}
}

// A server that closes the connection with requests in flight: they fail
// (they may have been processed, so they are not retried), nothing hangs,
// and the next request gets a new connection.
func TestServerClosesConnection(t *testing.T) {
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		seen := 0
		sc.readRequests(func(r *request) bool {
			seen++
			if i == 0 {
				return seen < 5 // then close, with all of them unanswered
			}
			_ = sc.respond(r.id, 200, "ok")
			return true
		}, nil)
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := post(t, tr, rs.url, []byte("x")); err == nil {
				readAll(t, resp)
			} else {
				failed.Add(1)
				if errors.Is(err, ErrNotProcessed) {
					t.Errorf("a sent request reported as not processed: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 5 {
		t.Fatalf("%d of 5 requests failed, want all", failed.Load())
	}
	resp, err := post(t, tr, rs.url, []byte("x"))
	if err != nil {
		t.Fatalf("after the close: %v", err)
	}
	if got := readAll(t, resp); got != "ok" {
		t.Fatalf("got %q", got)
	}
}

// A request whose context ends before the answer fails with the context's
// error, and the server sees its stream reset (CANCEL); so does one past
// ResponseHeaderTimeout.
func TestRequestTimeouts(t *testing.T) {
	resets := make(chan http2.ErrCode, 4)
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		sc.readRequests(func(r *request) bool { return true }, func(f http2.Frame) {
			if f, ok := f.(*http2.RSTStreamFrame); ok {
				resets <- f.ErrCode
			}
		})
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, rs.url, strings.NewReader("x"))
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if code := <-resets; code != http2.ErrCodeCancel {
		t.Fatalf("reset code %v, want CANCEL", code)
	}

	tr2 := New(Options{TLSConfig: tlsConf, Conns: 1, ResponseHeaderTimeout: 100 * time.Millisecond})
	defer tr2.Close()
	_, err := post(t, tr2, rs.url, []byte("x"))
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if code := <-resets; code != http2.ErrCodeCancel {
		t.Fatalf("reset code %v, want CANCEL", code)
	}
}

// Keepalive: a server that answers PINGs keeps the connection; one that
// goes silent has it closed, failing the request waiting on it.
func TestPingKeepalive(t *testing.T) {
	var pings atomic.Int32
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		if i == 0 { // answers PINGs (readRequests does), never the request
			sc.readRequests(func(r *request) bool { return true }, func(f http2.Frame) {
				if _, ok := f.(*http2.PingFrame); ok {
					pings.Add(1)
				}
			})
			return
		}
		// Silent: reads, never writes.
		_, _ = io.Copy(io.Discard, sc.nc)
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1, PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, rs.url, strings.NewReader("x"))
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("answering server: err = %v, want the context's deadline (connection kept)", err)
	}
	if pings.Load() == 0 {
		t.Fatal("no PING sent on an idle connection")
	}
	tr.CloseIdleConnections()
	// The next connection is the silent one.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	req2, _ := http.NewRequestWithContext(ctx2, http.MethodPost, rs.url, strings.NewReader("x"))
	_, err := tr.RoundTrip(req2)
	if err == nil || !errors.Is(err, errPingTimeout) {
		t.Fatalf("silent server: err = %v, want the PING timeout", err)
	}
}

// The server's SETTINGS_INITIAL_WINDOW_SIZE, tiny and then raised while a
// body is being sent, bounds every DATA frame (the server refills the
// window after each frame).
func TestSendWindowSettings(t *testing.T) {
	body := bytes.Repeat([]byte("z"), 5000)
	var overrun, bigAfter atomic.Int32
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		got := map[uint32]int{}
		window := 100
		sc.readRequests(func(r *request) bool {
			_ = sc.respond(r.id, 200, strconv.Itoa(len(r.body)))
			return true
		}, func(f http2.Frame) {
			d, ok := f.(*http2.DataFrame)
			if !ok {
				return
			}
			if len(d.Data()) > window {
				overrun.Add(1)
			}
			if window > 100 && len(d.Data()) > 100 {
				bigAfter.Add(1)
			}
			got[d.StreamID] += len(d.Data())
			if got[d.StreamID] >= 1000 && window == 100 {
				window = 1 << 20
				_ = sc.write(func() error {
					return sc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
				})
			}
		})
	}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	resp, err := post(t, tr, rs.url, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "5000" {
		t.Fatalf("server got %s bytes, want 5000", got)
	}
	if overrun.Load() > 0 {
		t.Fatal("the client sent beyond the stream window")
	}
	if bigAfter.Load() == 0 {
		t.Fatal("the raised window was not used")
	}
}

// Response header blocks as the reader decodes them: split over CONTINUATION
// frames, and malformed ones (each resets its stream only; the connection
// goes on serving the next request).
func TestResponseHeaderBlocks(t *testing.T) {
	big := strings.Repeat("v", 600<<10)
	cases := []struct {
		name   string
		fields []string // name, value pairs after :status
		status string
		ok     bool
	}{
		{"split over CONTINUATION frames", []string{"apns-id", "id-1", "x-pad", strings.Repeat("p", 40000), "x-last", "z"}, "200", true},
		{"upper-case name", []string{"Apns-Id", "id-1"}, "200", false},
		{"invalid value", []string{"apns-id", "a\r\nb"}, "200", false},
		{"pseudo field after a regular one", []string{"apns-id", "id-1", ":status", "200"}, "", false},
		{"unknown pseudo field", []string{":foo", "bar"}, "200", false},
		{"request pseudo field", []string{":path", "/"}, "200", false},
		{"over the advertised header list size", []string{"x-a", big, "x-b", big}, "200", false},
	}
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		sc.readRequests(func(r *request) bool {
			k, _ := strconv.Atoi(r.header["x-case"])
			if k >= len(cases) {
				_ = sc.respond(r.id, 200, "ok")
				return true
			}
			c := cases[k]
			_ = sc.write(func() error {
				sc.ebuf.Reset()
				if c.status != "" {
					_ = sc.enc.WriteField(hpack.HeaderField{Name: ":status", Value: c.status})
				}
				for j := 0; j+1 < len(c.fields); j += 2 {
					_ = sc.enc.WriteField(hpack.HeaderField{Name: c.fields[j], Value: c.fields[j+1]})
				}
				block := sc.ebuf.Bytes()
				for first := true; first || len(block) > 0; first = false {
					frag := block[:min(len(block), 16384)]
					block = block[len(frag):]
					var err error
					if first {
						err = sc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: r.id, BlockFragment: frag,
							EndStream: true, EndHeaders: len(block) == 0})
					} else {
						err = sc.fr.WriteContinuation(r.id, len(block) == 0, frag)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
			return true
		}, nil)
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	for k, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := post(t, tr, rs.url, []byte("x"), "X-Case", strconv.Itoa(k))
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
				if resp.StatusCode != 200 || resp.Header.Get("Apns-Id") != "id-1" || resp.Header.Get("X-Last") != "z" {
					t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
				}
			} else if err == nil {
				resp.Body.Close()
				t.Fatalf("got %d %v, want an error", resp.StatusCode, resp.Header)
			}
			// The connection still serves.
			resp, err = post(t, tr, rs.url, []byte("x"), "X-Case", strconv.Itoa(len(cases)))
			if err != nil {
				t.Fatalf("next request: %v", err)
			}
			if got := readAll(t, resp); got != "ok" {
				t.Fatalf("next request: got %q", got)
			}
		})
	}
}

// HPACK state across requests: repeated fields are indexed and then sent as
// indexes; when the server shrinks its header table mid-connection (to 0,
// later back to 4096), the next header block starts with the size update
// and refers to no evicted entry (the server's decoder would fail).
func TestHeaderTableSizeChanges(t *testing.T) {
	rs, tlsConf := newRawServer(t, func(i int, sc *srvConn) {
		sc.readRequests(func(r *request) bool {
			n := r.header["x-n"]
			if r.header["authorization"] != "bearer same" || r.header["apns-topic"] != "com.example" ||
				r.header[":path"] != "/3/device/"+n {
				_ = sc.respond(r.id, 400, "bad headers")
				return true
			}
			switch n {
			case "10":
				_ = sc.write(func() error {
					return sc.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
				})
			case "20":
				_ = sc.write(func() error {
					return sc.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096})
				})
			}
			_ = sc.respond(r.id, 200, "ok "+n)
			return true
		}, nil)
	})
	tr := New(Options{TLSConfig: tlsConf, Conns: 1})
	defer tr.Close()
	for k := range 30 {
		n := strconv.Itoa(k)
		resp, err := post(t, tr, rs.url+"/3/device/"+n, []byte("x"), "X-N", n, "Authorization", "bearer same",
			"Apns-Topic", "com.example")
		if err != nil {
			t.Fatalf("request %d: %v", k, err)
		}
		if got := readAll(t, resp); got != "ok "+n {
			t.Fatalf("request %d: got %d %q", k, resp.StatusCode, got)
		}
	}
}
