package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestServePprofOptIn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pprof bool
		want  int
	}{
		{"off by default", false, http.StatusNotFound},
		{"on when asked", true, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			go func() { done <- ServeListener(ctx, ln, NewRegistry(), "test", Health{Pprof: tc.pprof}, log) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
			base := "http://" + ln.Addr().String()
			client := &http.Client{Timeout: 5 * time.Second}
			for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
				resp, err := client.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, tc.want)
				}
			}
			resp, err := client.Get(base + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /healthz: status %d", resp.StatusCode)
			}
		})
	}
}
