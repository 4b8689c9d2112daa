package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
)

// builds caches one build per package list for the whole test process.
type build struct {
	once sync.Once
	dir  string
	err  error
}

// harness is the per-process state of the package (what Build produced).
type harness struct {
	mu     sync.Mutex
	builds map[string]*build
	dirs   []string
}

// process is the one per-process build cache that Build documents (a
// sync.Once per package list); nothing else is package state.
var process = &harness{builds: map[string]*build{}}

// Build compiles the given packages (default ./cmd/...) of this module once
// per test process into a temporary directory and returns it; binary NAME
// is at filepath.Join(dir, NAME). A failing build fails t with the output.
func Build(t testing.TB, pkgs ...string) string {
	t.Helper()
	if len(pkgs) == 0 {
		pkgs = []string{"./cmd/..."}
	}
	key := strings.Join(pkgs, " ")
	process.mu.Lock()
	b, ok := process.builds[key]
	if !ok {
		b = &build{}
		process.builds[key] = b
	}
	process.mu.Unlock()
	b.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			b.err = err
			return
		}
		dir, err := os.MkdirTemp("", "owlpost-e2e-bin-")
		if err != nil {
			b.err = err
			return
		}
		process.mu.Lock()
		process.dirs = append(process.dirs, dir)
		process.mu.Unlock()
		cmd := exec.Command("go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, pkgs...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", key, err, out)
			return
		}
		b.dir = dir
	})
	if b.err != nil {
		t.Fatalf("e2e: %v", b.err)
	}
	return b.dir
}

// Main runs the tests and removes what Build created:
//
//	func TestMain(m *testing.M) { e2e.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	process.mu.Lock()
	for _, d := range process.dirs {
		_ = os.RemoveAll(d)
	}
	process.mu.Unlock()
	os.Exit(code)
}

// ModuleRoot finds the directory of go.mod from the working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2e: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// ConfigMap returns cfg as nested maps keyed by the config keys (the
// mapstructure tags), durations as Go duration strings: the shape of a
// config file.
func ConfigMap(cfg *config.Config) map[string]any {
	return structMap(reflect.ValueOf(*cfg))
}

func structMap(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeOf(time.Duration(0)):
			out[tag] = time.Duration(f.Int()).String()
		case f.Kind() == reflect.Struct:
			out[tag] = structMap(f)
		default:
			out[tag] = f.Interface()
		}
	}
	return out
}

// ConfigFile writes cfg as a JSON config file under t.TempDir() (mode 0600:
// it may hold test secrets) and returns its path.
func ConfigFile(t testing.TB, cfg *config.Config) string {
	t.Helper()
	b, err := json.MarshalIndent(ConfigMap(cfg), "", "  ")
	if err != nil {
		t.Fatalf("e2e: config file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "owlpost.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("e2e: config file: %v", err)
	}
	return path
}

// Env returns the environment entry overriding one config key, e.g.
// Env("instance_id", "fanout-1") = "OWLPOST_INSTANCE_ID=fanout-1".
func Env(key, value string) string { return config.EnvName(key) + "=" + value }

// FreeAddr returns a 127.0.0.1 address with a port free right now (for a
// process's metrics or API listener).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("e2e: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Proc is one binary run as a separate process.
type Proc struct {
	Name string   // for logs, e.g. "fanout-1"
	Path string   // the binary
	Args []string // command-line arguments
	Env  []string // added to the test process's environment (later entries win)

	t       testing.TB
	log     string
	logFrom int64 // where this test's part of the log starts (a kept log is appended to by every run of the test)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status of the last run
}

// Spec says what to run.
type Spec struct {
	Name   string   // unique in the test, names the log: "fanout-1"
	Binary string   // path of the binary: filepath.Join(Build(t), "fanout")
	Config string   // config file (ConfigFile), passed as OWLPOST_CONFIG; "" for none
	Env    []string // extra "KEY=value" entries (see Env); they override the file
	Args   []string
}

// Start runs a process and registers cleanup: it is stopped at the end of
// the test and its log tail printed if the test failed.
func Start(t testing.TB, s Spec) *Proc {
	t.Helper()
	env := append([]string(nil), s.Env...)
	if s.Config != "" {
		env = append([]string{"OWLPOST_CONFIG=" + s.Config}, env...)
	}
	p := &Proc{Name: s.Name, Path: s.Binary, Args: s.Args, Env: env, t: t, log: filepath.Join(logDir(t), s.Name+".log")}
	if fi, err := os.Stat(p.log); err == nil {
		p.logFrom = fi.Size()
	}
	digestOnFailure(t, p)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", p.Name, p.Tail(40))
		}
	})
	p.start()
	return p
}

// digests holds, per test, the processes whose warnings are summed up when
// it fails.
var digests = struct {
	sync.Mutex
	m map[testing.TB][]*Proc
}{m: map[testing.TB][]*Proc{}}

// digestOnFailure adds p to t's digest. The test's first process registers
// the digest's cleanup, which runs after the others (cleanups run last
// registered first): a failed test's output then ends with each process's
// last warnings, so that what went wrong is in the last lines, where a
// truncated CI log still shows it.
func digestOnFailure(t testing.TB, p *Proc) {
	digests.Lock()
	defer digests.Unlock()
	first := len(digests.m[t]) == 0
	digests.m[t] = append(digests.m[t], p)
	if !first {
		return
	}
	t.Cleanup(func() {
		digests.Lock()
		procs := digests.m[t]
		delete(digests.m, t)
		digests.Unlock()
		if !t.Failed() {
			return
		}
		var b strings.Builder
		for _, p := range procs {
			for _, l := range p.lastWarnings(3) {
				fmt.Fprintf(&b, "\n%s: %s", p.Name, l)
			}
		}
		if b.Len() > 0 {
			t.Logf("--- the last warnings of each process ---%s", b.String())
		}
	})
}

// lastWarnings returns the last n WARN and ERROR lines this test's run
// logged, cut to 300 bytes, leaving out the client's repeated dial failures
// while a broker is down.
func (p *Proc) lastWarnings(n int) []string {
	b, _ := os.ReadFile(p.log)
	b = b[min(p.logFrom, int64(len(b))):]
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "level=WARN") && !strings.Contains(l, "level=ERROR") ||
			strings.Contains(l, "unable to open connection to broker") {
			continue
		}
		if len(l) > 300 {
			l = l[:300] + "..."
		}
		out = append(out, l)
	}
	return out[max(0, len(out)-n):]
}

// EnvLogs names a directory under which the processes' logs are kept, one
// subdirectory per test ("make fault" sets it to fault-out/logs), so that a
// failed case's whole timeline can be read afterwards, not only the tails.
const EnvLogs = "OWLPOST_E2E_LOGS"

func logDir(t testing.TB) string {
	root := os.Getenv(EnvLogs)
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("e2e: %s: %v", EnvLogs, err)
	}
	return dir
}

func (p *Proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatalf("e2e: %s: log file: %v", p.Name, err)
	}
	fmt.Fprintf(f, "=== e2e: start %s %s at %s\n", p.Path, strings.Join(p.Args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		p.t.Fatalf("e2e: start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== e2e: %s exited: %v\n", p.Name, err)
		_ = f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
}

// Pid is the process id of the current run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Running reports whether the current run has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Err is the exit error of the last run (nil while running or after a
// clean exit).
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Kill sends SIGKILL (a crash: no shutdown code runs) and waits for the exit.
func (p *Proc) Kill() {
	p.signalAndWait(syscall.SIGKILL, time.Minute)
}

// Stop sends SIGTERM and waits up to 20 s for a clean exit, then kills.
func (p *Proc) Stop() {
	if !p.signalAndWait(syscall.SIGTERM, 20*time.Second) {
		p.t.Logf("e2e: %s did not stop within 20s of SIGTERM; killing it", p.Name)
		p.Kill()
	}
}

func (p *Proc) signalAndWait(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// Signal sends sig to the current run (e.g. SIGSTOP to freeze it, SIGCONT
// to let it go on) without waiting.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("e2e: %s not started", p.Name)
	}
	return cmd.Process.Signal(sig)
}

// Restart stops the process if it runs and starts it again with the same
// binary, arguments and environment; output appends to the same log.
func (p *Proc) Restart() {
	p.t.Helper()
	p.Stop()
	p.start()
}

// LogPath is the file holding the process's output.
func (p *Proc) LogPath() string { return p.log }

// Output returns the whole log so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// WaitFor polls cond every 50 ms until it returns nil, and fails t with
// cond's last error if that does not happen within timeout.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: condition not met within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
