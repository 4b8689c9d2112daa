package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// frames builds server frames with a Framer, for seeds.
func frames(fn func(fr *http2.Framer, enc func(kv ...string) []byte)) []byte {
	var out, hb bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	he := hpack.NewEncoder(&hb)
	enc := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = he.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	fn(fr, enc)
	return out.Bytes()
}

// FuzzResponse feeds arbitrary bytes, as what the server sends after its
// SETTINGS, to a connection with one request in flight (stream 1). Whatever
// arrives, the transport must not panic or hang, and a response it returns
// must be well formed.
func FuzzResponse(f *testing.F) {
	f.Add(frames(func(fr *http2.Framer, enc func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: enc(":status", "200", "apns-id", "5e9d6a0e-0000-0000-0000-000000000001")})
		_ = fr.WriteData(1, true, nil)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: enc(":status", "400", "content-type", "application/json", "content-length", "31")})
		_ = fr.WriteData(1, false, []byte(`{"reason":"BadDev`))
		_ = fr.WriteDataPadded(1, true, []byte(`iceToken"}`), []byte{0, 0, 0})
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(kv ...string) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1},
			http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteWindowUpdate(0, 1000)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: false,
			BlockFragment: enc(":status", "503", "retry-after", "3")})
		_ = fr.WriteContinuation(1, true, enc("x-more", "y"))
		_ = fr.WriteRSTStream(1, http2.ErrCodeInternal)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(kv ...string) []byte) {
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, []byte("shutting down"))
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(kv ...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: enc(":status", "100")})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: enc(":status", "200")})
		_ = fr.WriteData(1, false, []byte(`{"name":"projects/p/messages/1"}`))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: enc("grpc-status", "0")})
	}))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cli, srv := net.Pipe()
		defer cli.Close()
		go func() {
			defer srv.Close()
			go func() { _, _ = io.Copy(io.Discard, srv) }()
			var pre bytes.Buffer
			_ = http2.NewFramer(&pre, nil).WriteSettings()
			if _, err := srv.Write(append(pre.Bytes(), in...)); err != nil {
				return
			}
		}()
		opts := Options{PingInterval: -1, WriteTimeout: time.Second, MaxBodySize: DefaultMaxBodySize}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := newConn(ctx, cli, &opts)
		if err != nil {
			return
		}
		defer c.closeWith(ErrClosed, false)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://push.test/3/device/abc", strings.NewReader("{}"))
		resp, err := c.roundTrip(req, []byte("{}"), nil)
		if err != nil {
			if resp != nil {
				t.Fatal("a response with an error")
			}
			return
		}
		if resp.StatusCode < 200 || resp.StatusCode > 999 || resp.Body == nil || resp.Header == nil {
			t.Fatalf("malformed response %+v", resp)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
}
