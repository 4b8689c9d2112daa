package obs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// stage is one running process with a metrics endpoint.
type stage struct {
	name    string
	metrics string // host:port of /metrics, /healthz, /readyz
	proc    *e2e.Proc
}

// stack is the whole system as separate processes on free loopback ports.
type stack struct {
	cfg     *config.Config
	cfgFile string
	bin     string
	dir     string
	admin   string // pushsim admin base URL
	stages  []*stage
}

// newStack starts pushsim (simArgs added to its flags), writes the config
// every process reads and starts planner, two fanouts, both senders and the
// control API, each with its own metrics address; it waits until every
// stage answers /healthz.
func newStack(t *testing.T, simArgs ...string) *stack {
	t.Helper()
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	testenv.Redis(t, cfg) // deletes the test's keys at cleanup
	s := &stack{cfg: cfg, bin: e2e.Build(t), dir: t.TempDir()}

	apnsAddr, fcmAddr, adminAddr := e2e.FreeAddr(t), e2e.FreeAddr(t), e2e.FreeAddr(t)
	creds, ca := filepath.Join(s.dir, "creds"), filepath.Join(s.dir, "ca.pem")
	sim := e2e.Start(t, e2e.Spec{Name: "pushsim", Binary: filepath.Join(s.bin, "pushsim"),
		Args: append([]string{"--apns-addr", apnsAddr, "--fcm-addr", fcmAddr, "--admin-addr", adminAddr,
			"--gen-creds", creds, "--write-ca", ca}, simArgs...)})
	s.admin = "http://" + adminAddr
	s.stages = append(s.stages, &stage{name: "pushsim", metrics: adminAddr, proc: sim})
	e2e.WaitFor(t, 30*time.Second, func() error {
		if st, err := os.Stat(ca); err != nil || st.Size() == 0 {
			return fmt.Errorf("no CA file yet")
		}
		return get(s.admin+"/healthz", nil)
	})

	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	controlAddr := e2e.FreeAddr(t)
	cfg.Control.Addr, cfg.Control.URL, cfg.Control.Token = controlAddr, "http://"+controlAddr, hex.EncodeToString(tok)
	cfg.APNs.Host, cfg.APNs.Topic, cfg.APNs.CAFile = "https://"+apnsAddr, "com.example.owlapp", ca
	cfg.APNs.KeyFile, cfg.APNs.KeyID, cfg.APNs.TeamID = filepath.Join(creds, pushsim.GenAPNsKeyFile), "SIMKEY0001", "SIMTEAM001"
	cfg.FCM.ProjectID, cfg.FCM.Endpoint, cfg.FCM.CAFile = "owlpost-sim", "https://"+fcmAddr+"/v1", ca
	cfg.FCM.CredentialsFile = filepath.Join(creds, pushsim.GenServiceAccountFile)
	// Small batches: the sender stamps a token's acceptance when its batch's
	// adapter call returns, so short calls keep that stamp close to the
	// simulator's arrival time (the percentile comparison).
	cfg.Planner.IOSBatchSize, cfg.Planner.AndroidBatchSize = 100, 50
	s.cfgFile = e2e.ConfigFile(t, cfg)

	for _, p := range []struct{ name, bin, platform string }{
		{"planner", "planner", ""}, {"fanout-1", "fanout", ""}, {"fanout-2", "fanout", ""},
		{"sender-ios", "sender", "ios"}, {"sender-android", "sender", "android"}, {"control", "owlctl", ""},
	} {
		addr := e2e.FreeAddr(t)
		env := []string{e2e.Env("instance_id", p.name), e2e.Env("metrics.addr", addr)}
		var args []string
		if p.platform != "" {
			env = append(env, e2e.Env("sender.platform", p.platform))
		}
		if p.bin == "owlctl" {
			args = []string{"serve"}
		}
		proc := e2e.Start(t, e2e.Spec{Name: p.name, Binary: filepath.Join(s.bin, p.bin), Config: s.cfgFile, Env: env, Args: args})
		s.stages = append(s.stages, &stage{name: p.name, metrics: addr, proc: proc})
	}
	for _, st := range s.stages {
		e2e.WaitFor(t, time.Minute, func() error {
			if !st.proc.Running() {
				t.Fatalf("%s exited: %v", st.name, st.proc.Err())
			}
			return get("http://"+st.metrics+"/healthz", nil)
		})
	}
	return s
}

func (s *stack) stage(t *testing.T, name string) *stage {
	t.Helper()
	for _, st := range s.stages {
		if st.name == name {
			return st
		}
	}
	t.Fatalf("no stage %q", name)
	return nil
}

// owlctl runs one owlctl command with the stack's config and returns its
// standard output; it fails the test on a non-zero exit.
func (s *stack) owlctl(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "owlctl"), args...)
	cmd.Env = append(os.Environ(), "OWLPOST_CONFIG="+s.cfgFile, e2e.Env("instance_id", "obs-owlctl"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("owlctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// get fetches url; with into != nil it decodes the JSON body into it.
func get(url string, into any) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	if into == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// families is one scrape: metric families by name.
type families map[string]*dto.MetricFamily

// scrape reads a stage's /metrics with the Prometheus text parser.
func scrape(t *testing.T, addr string) families {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: parse exposition format: %v", addr, err)
	}
	return mf
}

// series returns the names a query can select from the scrape: the family
// names, and for histograms and summaries their _bucket/_sum/_count.
func (f families) series() []string {
	var out []string
	for name, mf := range f {
		out = append(out, name)
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out = append(out, name+"_bucket", name+"_sum", name+"_count")
		case dto.MetricType_SUMMARY:
			out = append(out, name+"_sum", name+"_count")
		}
	}
	sort.Strings(out)
	return out
}

// match reports whether m has every label of want.
func match(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds the values of the samples of family name whose labels include
// want (counter, gauge, untyped; histograms: the sample count).
func (f families) sum(name string, want map[string]string) float64 {
	var v float64
	for _, m := range f[name].GetMetric() {
		if !match(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v
}

// label returns the values of label on the samples of family name.
func (f families) label(name, label string) []string {
	var out []string
	for _, m := range f[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && !slices.Contains(out, lp.GetValue()) {
				out = append(out, lp.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}
