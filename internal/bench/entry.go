package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the bench ran.
type Machine struct {
	CPUs     int
	CPUModel string
	MemTotal string
	Load     string // /proc/loadavg at the start
	Kernel   string
}

// ReadMachine reads /proc.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: "unknown", MemTotal: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Versions lists the Go toolchain, the libraries under test (from this
// binary's build info) and Kafka (from the dev-stack script).
func Versions(devstackScript string) []string {
	out := []string{"go " + strings.TrimPrefix(runtime.Version(), "go")}
	if gv, err := exec.Command("go", "version").Output(); err == nil {
		out[0] = strings.TrimSpace(string(gv))
	}
	want := []string{"github.com/sideshow/apns2", "firebase.google.com/go/v4", "github.com/twmb/franz-go",
		"github.com/redis/go-redis/v9", "golang.org/x/net"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, w := range want {
			for _, d := range bi.Deps {
				if d.Path == w {
					out = append(out, d.Path+" "+d.Version)
				}
			}
		}
	}
	kafka := "Kafka (version unknown)"
	if b, err := os.ReadFile(devstackScript); err == nil {
		if m := regexp.MustCompile(`KAFKA_VERSION=([0-9.]+)`).FindSubmatch(b); m != nil {
			kafka = "Apache Kafka " + string(m[1]) + " (KRaft, single node, dev stack)"
		}
	}
	if rv, err := exec.Command("redis-server", "--version").Output(); err == nil {
		if m := regexp.MustCompile(`v=([0-9.]+)`).FindSubmatch(rv); m != nil {
			out = append(out, "redis-server "+string(m[1]))
		}
	}
	return append(out, kafka)
}

// Entry is one dated record of a bench run for the bench log (docs/bench-log.md).
type Entry struct {
	When     time.Time
	Command  string
	Machine  Machine
	Versions []string
	Options  Options
	Results  *Results
	Failures []string // phase runs that failed
	Notes    []string
}

// logHeader starts a bench log that does not exist yet.
const logHeader = "# owlpost bench log\n\nDated `owlctl bench` runs, oldest first; each run appends one entry.\n"

// WriteMarkdown renders the entry.
func (e *Entry) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n", e.When.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Command: `%s`\n\n", e.Command)
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s memory, kernel %s, load average at start %s; shared with other "+
		"work, so figures are noisy: medians of %d rounds.\n\n",
		e.Machine.CPUs, e.Machine.CPUModel, e.Machine.MemTotal, e.Machine.Kernel, e.Machine.Load, e.Options.Rounds)
	fmt.Fprintf(w, "Versions: %s.\n\n", strings.Join(e.Versions, ", "))
	fmt.Fprintf(w, "Phases: %s; raw N=%d (apns2: %d clients x %d goroutines; firebase: %d tokens per "+
		"SendEachForMulticast, %d in flight); sender N=%d per platform; pipeline %d tokens (%.0f%% iOS), %d fanouts, "+
		"senders at GOMAXPROCS=%s. Every Go process with GODEBUG=%s.\n\n",
		strings.Join(e.Options.Phases, ","), e.Options.RawN, e.Options.APNsClients, e.Options.APNsWorkers,
		e.Options.FCMPerCall, e.Options.FCMInFlight, e.Options.SenderN, e.Options.Tokens, 100*e.Options.IOSShare,
		e.Options.Fanouts, procsText(e.Options.SenderProcs), StackShrinkOff)
	e.Results.WriteMarkdown(w, Ratios())
	if len(e.Failures) > 0 {
		fmt.Fprintln(w, "\nFailed phase runs (not in the medians):")
		for _, f := range e.Failures {
			fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(f, "\n", " "))
		}
	}
	for _, n := range e.Notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
}

// AppendEntry adds e at the end of the Markdown log at path, creating the
// file with a header when it is missing; what is already there is kept.
func AppendEntry(path string, e *Entry) error {
	var buf bytes.Buffer
	if _, err := os.Stat(path); os.IsNotExist(err) {
		buf.WriteString(logHeader)
	}
	buf.WriteString("\n")
	e.WriteMarkdown(&buf)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("bench: open %s: %w", path, err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	return nil
}

// procsText renders Options.SenderProcs.
func procsText(n int) string {
	if n <= 0 {
		return "Go's default"
	}
	return strconv.Itoa(n)
}
