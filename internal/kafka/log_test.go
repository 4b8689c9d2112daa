package kafka_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/kafka"
)

// syncBuffer is a bytes.Buffer safe for franz-go's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pingDeadBroker points a client at a closed port with the given log_level
// and returns what reached slog's default logger.
func pingDeadBroker(t *testing.T, logLevel string) string {
	t.Helper()
	addr := e2e.FreeAddr(t) // nothing listens there

	var buf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	cfg := config.Default()
	cfg.Kafka.Brokers = []string{addr}
	cfg.Kafka.DialTimeout = time.Second
	cfg.LogLevel = logLevel
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err == nil {
		t.Fatalf("ping of the closed port %s succeeded", addr)
	}
	cl.Close()
	return buf.String()
}

// TestClientLogWarnings: franz-go's warnings reach the daemon's log at the
// default level; its per-request debug lines do not.
func TestClientLogWarnings(t *testing.T) {
	out := pingDeadBroker(t, "info")
	if !strings.Contains(out, `level=WARN msg="kafka client: unable to open connection to broker"`) {
		t.Fatalf("no connection warning logged at log_level info:\n%s", out)
	}
	if strings.Contains(out, "level=DEBUG") {
		t.Fatalf("franz-go debug lines logged at log_level info:\n%s", out)
	}
}

// TestClientLogDebug: log_level debug passes franz-go's debug lines too.
func TestClientLogDebug(t *testing.T) {
	out := pingDeadBroker(t, "debug")
	if !strings.Contains(out, `level=DEBUG msg="kafka client: `) {
		t.Fatalf("no franz-go debug line at log_level debug:\n%s", out)
	}
}

// TestClientLogError: log_level error keeps franz-go's warnings out.
func TestClientLogError(t *testing.T) {
	if out := pingDeadBroker(t, "error"); strings.Contains(out, "level=WARN") {
		t.Fatalf("franz-go warning logged at log_level error:\n%s", out)
	}
}
