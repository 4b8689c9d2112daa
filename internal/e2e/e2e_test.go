package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
)

func TestMain(m *testing.M) { Main(m) }

// TestConfigFileRoundTrip: a config written by ConfigFile loads back equal,
// and an env entry made by Env overrides the file.
func TestConfigFileRoundTrip(t *testing.T) {
	cfg := config.Default()
	cfg.InstanceID = "x-1"
	cfg.Kafka.Brokers = []string{"127.0.0.1:19092", "127.0.0.1:29092"}
	cfg.Topics.Batches = "t-abc.batches"
	cfg.Topics.BatchesPartitions = 7
	cfg.Redis.Timeout = 1500 * time.Millisecond
	cfg.Sender.ClaimLease = 42 * time.Second
	cfg.Control.Token = "s3cret"
	t.Setenv("OWLPOST_CONFIG", ConfigFile(t, cfg))
	got, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got.Redacted(), cfg.Redacted())
	}
	kv := strings.SplitN(Env("metrics.addr", "127.0.0.1:9999"), "=", 2)
	t.Setenv(kv[0], kv[1])
	got, err = config.Load(nil)
	if err != nil || got.Metrics.Addr != "127.0.0.1:9999" {
		t.Fatalf("env override: %v %v", got.Metrics.Addr, err)
	}
}

// TestProcKillRestart runs a shell as the process: output is captured, Kill
// ends it, Restart runs it again appending to the same log, Stop is clean.
func TestProcKillRestart(t *testing.T) {
	p := Start(t, Spec{Name: "sh", Binary: "/bin/sh", Env: []string{"E2E_WORD=hello"},
		Args: []string{"-c", `echo "$E2E_WORD $OWLPOST_CONFIG"; trap 'echo term; exit 0' TERM; while :; do sleep 0.1; done`}})
	WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(p.Output(), "hello") {
			return fmt.Errorf("no output yet: %q", p.Output())
		}
		return nil
	})
	p.Kill()
	if p.Running() || p.Err() == nil {
		t.Fatalf("after Kill: running=%v err=%v", p.Running(), p.Err())
	}
	p.Restart()
	if !p.Running() {
		t.Fatal("not running after Restart")
	}
	WaitFor(t, 10*time.Second, func() error {
		if strings.Count(p.Output(), "hello") != 2 {
			return fmt.Errorf("second run not logged: %q", p.Output())
		}
		return nil
	})
	p.Stop()
	if p.Running() {
		t.Fatal("running after Stop")
	}
	if !strings.Contains(p.Tail(3), "term") {
		t.Fatalf("SIGTERM not delivered: %q", p.Tail(3))
	}
}

func TestLastWarnings(t *testing.T) {
	log := filepath.Join(t.TempDir(), "x.log")
	lines := []string{
		"time=1 level=INFO msg=a",
		"time=2 level=WARN msg=b",
		`time=3 level=WARN msg="kafka client: unable to open connection to broker"`,
		"time=4 level=ERROR msg=c " + strings.Repeat("x", 400),
		"time=5 level=WARN msg=d",
		"time=6 level=INFO msg=e",
	}
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Proc{log: log}
	got := p.lastWarnings(2)
	if len(got) != 2 || !strings.HasPrefix(got[0], "time=4 level=ERROR") || len(got[0]) != 303 || got[1] != "time=5 level=WARN msg=d" {
		t.Fatalf("lastWarnings(2) = %q", got)
	}
	if got := p.lastWarnings(10); len(got) != 3 || got[0] != "time=2 level=WARN msg=b" {
		t.Fatalf("lastWarnings(10) = %q", got)
	}
	// A kept log appended to by an earlier run of the test: only this run's lines.
	p.logFrom = int64(len(strings.Join(lines[:4], "\n")) + 1)
	if got := p.lastWarnings(10); len(got) != 1 || got[0] != "time=5 level=WARN msg=d" {
		t.Fatalf("lastWarnings(10) from offset %d = %q", p.logFrom, got)
	}
}
