package h2

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// testTLS returns a server certificate for 127.0.0.1 (httptest's) and a
// client config trusting it.
func testTLS(t *testing.T) (server *tls.Config, client *tls.Config) {
	t.Helper()
	s := httptest.NewUnstartedServer(http.NotFoundHandler())
	s.StartTLS()
	certs := s.TLS.Certificates
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	s.Close()
	return &tls.Config{Certificates: certs, NextProtos: []string{"h2"}}, &tls.Config{RootCAs: roots}
}

// goServer starts Go's own HTTP/2 server (net/http over TLS) with h.
func goServer(t *testing.T, h http.Handler, maxStreams int) (*httptest.Server, *tls.Config) {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	if maxStreams > 0 {
		s.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: maxStreams}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	return s, &tls.Config{RootCAs: roots}
}

// rawServer is a scripted HTTP/2 server built on http2.Framer: each
// accepted connection is handed, with its index, to serve.
type rawServer struct {
	ln  net.Listener
	url string
	wg  sync.WaitGroup
}

func newRawServer(t *testing.T, serve func(i int, sc *srvConn), settings ...http2.Setting) (*rawServer, *tls.Config) {
	t.Helper()
	scfg, ccfg := testTLS(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawServer{ln: ln, url: "https://" + ln.Addr().String()}
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		for i := 0; ; i++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			rs.wg.Add(1)
			go func() {
				defer rs.wg.Done()
				defer nc.Close()
				sc := newSrvConn(nc)
				if err := sc.handshake(settings...); err != nil {
					return
				}
				serve(i, sc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); rs.wg.Wait() })
	return rs, ccfg
}

// srvConn is the server side of one connection.
type srvConn struct {
	nc   net.Conn
	fr   *http2.Framer
	wmu  sync.Mutex
	enc  *hpack.Encoder
	ebuf bytes.Buffer
}

func newSrvConn(nc net.Conn) *srvConn {
	sc := &srvConn{nc: nc, fr: http2.NewFramer(nc, nc)}
	sc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	sc.enc = hpack.NewEncoder(&sc.ebuf)
	return sc
}

// handshake reads the client preface and sends the server's SETTINGS.
func (sc *srvConn) handshake(settings ...http2.Setting) error {
	buf := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(sc.nc, buf); err != nil {
		return err
	}
	if string(buf) != http2.ClientPreface {
		return io.ErrUnexpectedEOF
	}
	return sc.write(func() error { return sc.fr.WriteSettings(settings...) })
}

func (sc *srvConn) write(fn func() error) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	return fn()
}

// respond sends a response: status, headers (name, value pairs) and body.
func (sc *srvConn) respond(id uint32, status int, body string, hdrs ...string) error {
	return sc.write(func() error {
		sc.ebuf.Reset()
		_ = sc.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
		for i := 0; i+1 < len(hdrs); i += 2 {
			_ = sc.enc.WriteField(hpack.HeaderField{Name: hdrs[i], Value: hdrs[i+1]})
		}
		if err := sc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: sc.ebuf.Bytes(),
			EndHeaders: true, EndStream: body == ""}); err != nil {
			return err
		}
		if body == "" {
			return nil
		}
		return sc.fr.WriteData(id, true, []byte(body))
	})
}

// request is what a srvConn read of one client request.
type request struct {
	id     uint32
	header map[string]string
	body   []byte
}

// readRequests reads frames, acks SETTINGS and answers PINGs, and calls fn
// for every complete request (END_STREAM seen). It returns when the
// connection fails or fn returns false. other (may be nil) sees every frame
// first, before a request it completes is answered.
func (sc *srvConn) readRequests(fn func(r *request) bool, other func(f http2.Frame)) {
	open := map[uint32]*request{}
	for {
		f, err := sc.fr.ReadFrame()
		if err != nil {
			return
		}
		if other != nil {
			other(f)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = sc.write(sc.fr.WriteSettingsAck)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = sc.write(func() error { return sc.fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			r := &request{id: f.StreamID, header: map[string]string{}}
			for _, hf := range f.Fields {
				r.header[hf.Name] = hf.Value
			}
			if f.StreamEnded() {
				if !fn(r) {
					return
				}
				continue
			}
			open[f.StreamID] = r
		case *http2.DataFrame:
			r := open[f.StreamID]
			if r == nil {
				continue
			}
			r.body = append(r.body, f.Data()...)
			if n := len(f.Data()); n > 0 {
				id, ended := f.StreamID, f.StreamEnded()
				_ = sc.write(func() error {
					if err := sc.fr.WriteWindowUpdate(0, uint32(n)); err != nil || ended {
						return err
					}
					return sc.fr.WriteWindowUpdate(id, uint32(n))
				})
			}
			if f.StreamEnded() {
				delete(open, f.StreamID)
				if !fn(r) {
					return
				}
			}
		}
	}
}
