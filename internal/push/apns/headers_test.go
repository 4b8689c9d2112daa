package apns_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/push"
)

// Both transports send the same APNs request headers: the fast one builds
// them once per batch (authorization, topic, collapse id, priority,
// expiration) instead of apns2 setting them per push, and this pins that
// it sends what apns2 sends, including "apns-expiration: 0" for a message
// that must not be stored.
func TestBothTransportsSendTheSameHeaders(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000001")
		w.WriteHeader(http.StatusOK)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	sm := startSim(t, nil) // for its provider key

	msgs := map[string]*push.Message{"no expiration": message("hdrs")}
	later := message("hdrs-later")
	later.APNs.Expiration = time.Unix(1900000000, 0)
	later.APNs.PushType, later.APNs.Priority = "background", 5
	msgs["expiration"] = later

	for name, msg := range msgs {
		t.Run(name, func(t *testing.T) {
			got := map[string]http.Header{}
			for _, tr := range transports {
				opts := sm.options(tr)
				opts.Host, opts.CAPEM = srv.URL, caPEM
				s := newSender(t, opts)
				mu.Lock()
				seen = nil
				mu.Unlock()
				res := s.SendBatch(context.Background(), msg, []string{hexToken(t, "a0"), hexToken(t, "a1")})
				for _, r := range res {
					if r.Err != nil {
						t.Fatalf("%s: %v", tr, r.Err)
					}
				}
				mu.Lock()
				if len(seen) != 2 {
					t.Fatalf("%s: server saw %d requests", tr, len(seen))
				}
				h := seen[1]
				mu.Unlock()
				if a := h.Get("Authorization"); !strings.HasPrefix(a, "bearer ey") || len(h.Values("Authorization")) != 1 {
					t.Errorf("%s: authorization %q", tr, h.Values("Authorization"))
				}
				h.Del("Authorization") // a JWT: its iat may differ
				h.Del("Content-Length")
				h.Del("Accept-Encoding") // Go's http2 client asks for gzip
				h.Del("User-Agent")
				got[tr] = h
			}
			lib, fast := got[push.TransportLibrary], got[push.TransportFast]
			for k := range lib {
				if strings.Join(lib[k], ",") != strings.Join(fast[k], ",") {
					t.Errorf("%s: library %q, fast %q", k, lib[k], fast[k])
				}
			}
			for k := range fast {
				if _, ok := lib[k]; !ok {
					t.Errorf("%s: only the fast transport sends it: %q", k, fast[k])
				}
			}
			want := "0"
			if !msg.APNs.Expiration.IsZero() {
				want = "1900000000"
			}
			if e := fast.Get("Apns-Expiration"); e != want {
				t.Errorf("apns-expiration %q, want %q", e, want)
			}
		})
	}
}
