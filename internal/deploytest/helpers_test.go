package deploytest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/owlpost/owlpost/internal/config"
)

// repoRoot is the directory holding go.mod, found from the test's working
// directory (the package directory under `go test`).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// envKeys maps every OWLPOST_* variable name to its config key.
func envKeys() map[string]string {
	m := make(map[string]string)
	for _, k := range config.Keys() {
		m[config.EnvName(k)] = k
	}
	return m
}

// envProblems names every OWLPOST_* variable of env that is not a config key.
// Other variables (KAFKA_*, DEMO_*, GF_*) are not owlpost's and pass.
func envProblems(where string, env map[string]string) []error {
	known := envKeys()
	var errs []error
	for name := range env {
		if !strings.HasPrefix(name, "OWLPOST_") {
			continue
		}
		if _, ok := known[name]; !ok {
			errs = append(errs, fmt.Errorf("%s: %s is not a config key (see config.Keys)", where, name))
		}
	}
	return errs
}

// loadConfigFromEnv loads the configuration a process with exactly env would
// get (plus defaults): the host's own OWLPOST_* variables are hidden, and
// every *_FILE path is replaced by a temporary file, since secret files exist
// only in the running container. Not for parallel tests (t.Setenv).
func loadConfigFromEnv(t *testing.T, env map[string]string) (*config.Config, error) {
	t.Helper()
	names := append([]string{"OWLPOST_CONFIG"}, keysOf(envKeys())...)
	for _, name := range names {
		t.Setenv(name, "") // restores the old value after the test
		if err := os.Unsetenv(name); err != nil {
			t.Fatalf("unsetenv %s: %v", name, err)
		}
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("not-a-real-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, val := range env {
		if !strings.HasPrefix(name, "OWLPOST_") {
			continue
		}
		if strings.HasSuffix(name, "_FILE") && val != "" {
			val = secret
		}
		t.Setenv(name, val)
	}
	return config.Load(nil)
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// listenPort returns the port of a listen address and whether it binds only
// to loopback (unreachable from other containers or pods).
func listenPort(addr string) (port int, loopback bool, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false, fmt.Errorf("listen address %q: %w", addr, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return 0, false, fmt.Errorf("listen address %q: bad port", addr)
	}
	if host == "localhost" {
		return port, true, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return port, true, nil
	}
	return port, false, nil
}

// imagePinned fails for an image without a tag or digest, or tagged latest.
func imagePinned(ref string) error {
	if ref == "" {
		return errors.New("no image")
	}
	if strings.Contains(ref, "@sha256:") {
		return nil
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(last, ":")
	if i < 0 {
		return fmt.Errorf("image %q has no tag: pin a version", ref)
	}
	if tag := last[i+1:]; tag == "" || tag == "latest" {
		return fmt.Errorf("image %q: pin a version, not %q", ref, tag)
	}
	return nil
}

// dockerStage is one FROM of the Dockerfile.
type dockerStage struct {
	Name, Image string
	User        string // last USER of the stage
	Lines       []string
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// parseDockerfile reads the stages of a Dockerfile, expanding the global ARG
// defaults in FROM lines. Continuation lines are joined.
func parseDockerfile(path string) ([]dockerStage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	args := map[string]string{}
	var stages []dockerStage
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	handle := func(line string) error {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return nil
		}
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			if len(stages) == 0 && len(fields) > 1 {
				k, v, _ := strings.Cut(fields[1], "=")
				args[k] = v
			}
		case "FROM":
			// FROM [--platform=...] image [AS name]
			rest := fields[1:]
			for len(rest) > 0 && strings.HasPrefix(rest[0], "--") {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				return fmt.Errorf("FROM without image: %q", line)
			}
			img := argRef.ReplaceAllStringFunc(rest[0], func(m string) string {
				return args[argRef.FindStringSubmatch(m)[1]]
			})
			st := dockerStage{Image: img}
			if len(rest) == 3 && strings.EqualFold(rest[1], "AS") {
				st.Name = rest[2]
			}
			stages = append(stages, st)
		case "USER":
			if len(stages) > 0 && len(fields) > 1 {
				stages[len(stages)-1].User = fields[1]
			}
		}
		if len(stages) > 0 {
			stages[len(stages)-1].Lines = append(stages[len(stages)-1].Lines, line)
		}
		return nil
	}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		if err := handle(cur.String()); err != nil {
			return nil, err
		}
		cur.Reset()
	}
	return stages, sc.Err()
}

// stageByName finds a stage of the Dockerfile.
func stageByName(stages []dockerStage, name string) (dockerStage, bool) {
	for _, s := range stages {
		if s.Name == name {
			return s, true
		}
	}
	return dockerStage{}, false
}

// shellless reports whether a stage's base image has no shell (distroless,
// scratch): its containers can run neither sh -c commands nor CMD-SHELL checks.
func shellless(s dockerStage) bool {
	return s.Image == "scratch" || strings.Contains(s.Image, "distroless")
}

// errorsText joins errors for a failure message.
func errorsText(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}
