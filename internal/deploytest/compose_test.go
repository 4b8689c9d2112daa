package deploytest

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/owlpost/owlpost/internal/campaign"
)

// composeFile is the part of the Compose specification the project uses.
// Decoding is strict: a field outside these structs fails (x- extension
// fields are collected in Ext and must start with "x-").
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]*composeVolume `yaml:"volumes"`
	Configs  map[string]composeConfig  `yaml:"configs"`
	Ext      map[string]any            `yaml:",inline"`
}

type composeVolume struct {
	External bool   `yaml:"external"`
	Driver   string `yaml:"driver"`
}

type composeConfig struct {
	Content string `yaml:"content"`
	File    string `yaml:"file"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Target     string `yaml:"target"`
}

type composeHealth struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type composeDep struct {
	Condition string `yaml:"condition"`
}

type composeConfigRef struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

type composeService struct {
	Image       string                `yaml:"image"`
	Build       *composeBuild         `yaml:"build"`
	User        string                `yaml:"user"`
	Restart     string                `yaml:"restart"`
	Hostname    string                `yaml:"hostname"`
	Command     []string              `yaml:"command"`
	Environment map[string]string     `yaml:"environment"`
	Ports       []string              `yaml:"ports"`
	Volumes     []string              `yaml:"volumes"`
	Healthcheck *composeHealth        `yaml:"healthcheck"`
	DependsOn   map[string]composeDep `yaml:"depends_on"`
	NetworkMode string                `yaml:"network_mode"`
	Configs     []composeConfigRef    `yaml:"configs"`
	Profiles    []string              `yaml:"profiles"`
}

// interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}; $$ is a literal $.
var interpRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}`)

// interp resolves compose interpolation as on a machine where none of the
// variables is set (the defaults the file documents).
func interp(s string) string {
	return interpRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return interpRef.FindStringSubmatch(m)[3]
	})
}

func decodeCompose(data []byte) (*composeFile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cf composeFile
	if err := dec.Decode(&cf); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return &cf, nil
}

func loadCompose(t *testing.T) (*composeFile, string) {
	t.Helper()
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "docker-compose.yml"))
	if err != nil {
		t.Fatalf("read compose file: %v", err)
	}
	cf, err := decodeCompose(data)
	if err != nil {
		t.Fatal(err)
	}
	return cf, root
}

// stageBinaries are the owlpost daemons; their listen ports come from config.
var stageBinaries = []string{"planner", "fanout", "sender"}

// binary is the base name of the program a service runs ("" for a shell).
func (s composeService) binary() string {
	if len(s.Command) == 0 {
		return ""
	}
	return path.Base(s.Command[0])
}

// daemon reports whether the service is a long-running owlpost process that
// serves metrics: a stage, or the control API (owlctl serve).
func (s composeService) daemon() bool {
	b := s.binary()
	return slices.Contains(stageBinaries, b) || (b == "owlctl" && len(s.Command) > 1 && s.Command[1] == "serve")
}

// thirdPartyPorts are the ports official images listen on by default.
var thirdPartyPorts = map[string][]int{
	"redis":           {6379},
	"prom/prometheus": {9090},
	"grafana/grafana": {3000},
	"apache/kafka":    nil, // from KAFKA_LISTENERS
	"owlpost-toolbox": nil, // from flags (pushsim)
	"owlpost":         nil, // from config
}

var addrFlag = regexp.MustCompile(`^--[a-z-]*addr=(.+)$`)

// listens returns the ports a service listens on (non-loopback unless
// loopback is true) as far as the file tells: config for owlpost daemons,
// --*-addr flags (the simulator), KAFKA_LISTENERS, image defaults.
func listens(t *testing.T, s composeService, loopback bool) []int {
	t.Helper()
	var ports []int
	add := func(addr string) {
		p, lo, err := listenPort(addr)
		if err == nil && (!lo || loopback) {
			ports = append(ports, p)
		}
	}
	img := s.Image
	if i := strings.LastIndex(img, ":"); i > 0 {
		img = img[:i]
	}
	ports = append(ports, thirdPartyPorts[img]...)
	if l, ok := s.Environment["KAFKA_LISTENERS"]; ok {
		for _, ln := range strings.Split(l, ",") {
			_, hp, _ := strings.Cut(ln, "://")
			if strings.HasPrefix(hp, ":") {
				hp = "0.0.0.0" + hp
			}
			add(hp)
		}
	}
	for _, arg := range s.Command {
		if m := addrFlag.FindStringSubmatch(arg); m != nil {
			add(m[1])
		}
	}
	if s.daemon() {
		cfg, err := loadConfigFromEnv(t, s.Environment)
		if err == nil {
			add(cfg.Metrics.Addr)
			if s.binary() == "owlctl" {
				add(cfg.Control.Addr)
			}
		}
	}
	return ports
}

// netns returns the services sharing name's network namespace, name included.
func netns(cf *composeFile, name string) []string {
	owner := name
	if m, ok := strings.CutPrefix(cf.Services[name].NetworkMode, "service:"); ok {
		owner = m
	}
	var out []string
	for n, s := range cf.Services {
		if n == owner || s.NetworkMode == "service:"+owner {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// checkCompose is every check that needs no config loading: structure,
// images, builds, dependencies, volumes, secrets paths, env names.
func checkCompose(cf *composeFile, root string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for k := range cf.Ext {
		if !strings.HasPrefix(k, "x-") {
			bad("top-level key %q is not part of the compose file format (extensions start with x-)", k)
		}
	}
	if len(cf.Services) == 0 {
		bad("no services")
	}
	deployDir := filepath.Join(root, "deploy")
	stages, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		bad("Dockerfile: %v", err)
	}
	for name, s := range cf.Services {
		where := "service " + name
		if err := imagePinned(interp(s.Image)); err != nil {
			bad("%s: %v", where, err)
		}
		shell := true
		if b := s.Build; b != nil {
			ctx := filepath.Join(deployDir, interp(b.Context))
			if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
				bad("%s: build context %s does not exist", where, b.Context)
			}
			df := b.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
				bad("%s: %s not found in the build context", where, df)
			}
			st, ok := stageByName(stages, b.Target)
			if b.Target != "" && !ok {
				bad("%s: build target %q is not a stage of the Dockerfile", where, b.Target)
			}
			if ok && shellless(st) {
				shell = false
			}
		}
		if !shell {
			if len(s.Command) > 0 && strings.HasPrefix(s.Command[0], "/bin/") {
				bad("%s: runs %s but its image has no shell", where, s.Command[0])
			}
			if s.Healthcheck != nil && len(s.Healthcheck.Test) > 0 && s.Healthcheck.Test[0] == "CMD-SHELL" {
				bad("%s: CMD-SHELL health check but its image has no shell", where)
			}
		}
		if s.Healthcheck != nil {
			if len(s.Healthcheck.Test) < 2 || (s.Healthcheck.Test[0] != "CMD" && s.Healthcheck.Test[0] != "CMD-SHELL") {
				bad("%s: health check test must be [CMD, ...] or [CMD-SHELL, ...]", where)
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := cf.Services[dep]
			if !ok {
				bad("%s: depends on unknown service %q", where, dep)
				continue
			}
			switch d.Condition {
			case "service_started":
			case "service_healthy":
				if target.Healthcheck == nil || len(target.Healthcheck.Test) == 0 {
					bad("%s: waits for %s to be healthy, but %s has no health check", where, dep, dep)
				}
			case "service_completed_successfully":
				if target.Restart == "always" || target.Restart == "unless-stopped" {
					bad("%s: waits for %s to complete, but %s restarts %s", where, dep, dep, target.Restart)
				}
			default:
				bad("%s: depends_on %s: unknown condition %q", where, dep, d.Condition)
			}
		}
		if owner, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
			if _, ok := cf.Services[owner]; !ok {
				bad("%s: network_mode names unknown service %q", where, owner)
			}
			if len(s.Ports) > 0 || s.Hostname != "" {
				bad("%s: shares %s's network: ports and hostname belong to %s", where, owner, owner)
			}
		}
		mounts := map[string]bool{}
		for _, v := range s.Volumes {
			parts := strings.Split(interp(v), ":")
			if len(parts) < 2 {
				bad("%s: volume %q: want SOURCE:TARGET[:MODE]", where, v)
				continue
			}
			src, tgt := parts[0], parts[1]
			mounts[tgt] = true
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(deployDir, src)); err != nil {
					bad("%s: bind mount source %s does not exist", where, src)
				}
			} else if _, ok := cf.Volumes[src]; !ok {
				bad("%s: named volume %q is not declared under volumes:", where, src)
			}
		}
		for _, c := range s.Configs {
			def, ok := cf.Configs[c.Source]
			if !ok {
				bad("%s: config %q is not declared under configs:", where, c.Source)
				continue
			}
			if def.File != "" {
				if _, err := os.Stat(filepath.Join(deployDir, def.File)); err != nil {
					bad("%s: config %q: file %s does not exist", where, c.Source, def.File)
				}
			}
		}
		errs = append(errs, envProblems(where, s.Environment)...)
		for k, v := range s.Environment {
			if !strings.HasPrefix(k, "OWLPOST_") || !strings.HasSuffix(k, "_FILE") || v == "" {
				continue
			}
			covered := false
			for m := range mounts {
				if strings.HasPrefix(v, strings.TrimSuffix(m, "/")+"/") {
					covered = true
				}
			}
			if !covered {
				bad("%s: %s=%s is not inside any mounted volume", where, k, v)
			}
		}
	}
	return errs
}

func TestComposeStructure(t *testing.T) {
	cf, root := loadCompose(t)
	if errs := checkCompose(cf, root); len(errs) > 0 {
		t.Errorf("deploy/docker-compose.yml:%s", errorsText(errs))
	}
	// What the issue asks the stack to contain.
	want := map[string]int{"planner": 1, "fanout": 2, "sender": 2}
	got := map[string]int{}
	platforms := map[string]bool{}
	for _, s := range cf.Services {
		got[s.binary()]++
		if s.binary() == "sender" {
			platforms[s.Environment["OWLPOST_SENDER_PLATFORM"]] = true
		}
	}
	for b, n := range want {
		if got[b] != n {
			t.Errorf("%d %s service(s), want %d", got[b], b, n)
		}
	}
	if !platforms["ios"] || !platforms["android"] {
		t.Errorf("sender platforms %v, want ios and android", platforms)
	}
	for _, name := range []string{"kafka", "redis", "topic-init", "pushsim", "control", "prometheus", "grafana", "demo"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	for _, name := range []string{"kafka", "redis"} {
		if s := cf.Services[name]; s.Healthcheck == nil {
			t.Errorf("%s: no health check", name)
		}
	}
	if c := cf.Services["topic-init"].Command; len(c) < 3 || c[1] != "topics" || c[2] != "create" {
		t.Errorf("topic-init: command %v, want owlctl topics create", c)
	}
	if d := cf.Services["demo"]; len(d.Profiles) > 0 {
		t.Errorf("demo: profiles %v: `docker compose up` must run the demo", d.Profiles)
	}
}

// TestComposeConfigLoads loads the configuration of every service that sets
// OWLPOST_* variables exactly as the process would (config.Load with that
// environment), so a bad value (duration, platform, address) fails here.
func TestComposeConfigLoads(t *testing.T) {
	cf, _ := loadCompose(t)
	for name, s := range cf.Services {
		hasOwlpost := false
		for k := range s.Environment {
			hasOwlpost = hasOwlpost || strings.HasPrefix(k, "OWLPOST_")
		}
		if !hasOwlpost {
			continue
		}
		t.Run(name, func(t *testing.T) {
			cfg, err := loadConfigFromEnv(t, s.Environment)
			if err != nil {
				t.Fatalf("config does not load: %v", err)
			}
			if s.daemon() {
				if _, lo, err := listenPort(cfg.Metrics.Addr); err != nil || lo {
					t.Errorf("metrics.addr %q: other containers cannot reach it (set OWLPOST_METRICS_ADDR=0.0.0.0:PORT)", cfg.Metrics.Addr)
				}
			}
			if s.binary() == "owlctl" && s.daemon() {
				if _, lo, err := listenPort(cfg.Control.Addr); err != nil || lo {
					t.Errorf("control.addr %q is loopback only", cfg.Control.Addr)
				}
			}
			if s.binary() == "sender" {
				if cfg.Sender.Platform != "ios" && cfg.Sender.Platform != "android" {
					t.Errorf("sender.platform %q, want ios or android", cfg.Sender.Platform)
				}
				if cfg.Sender.Group == "" {
					t.Error("sender.group is empty")
				}
			}
			if cfg.Kafka.Brokers[0] != "kafka:9092" {
				t.Errorf("kafka.brokers %v, want the compose broker kafka:9092", cfg.Kafka.Brokers)
			}
		})
	}
}

// TestComposePorts checks published ports and shared network namespaces
// against the ports the processes listen on.
func TestComposePorts(t *testing.T) {
	cf, _ := loadCompose(t)
	for name, s := range cf.Services {
		shared := netns(cf, name)
		listening := map[int]string{}
		for _, n := range shared {
			for _, p := range listens(t, cf.Services[n], true) {
				// Reported once, from the namespace's owner.
				if other, dup := listening[p]; dup && other != n && s.NetworkMode == "" {
					t.Errorf("%s and %s share a network namespace and both listen on %d", other, n, p)
				}
				listening[p] = n
			}
		}
		own := listens(t, s, false)
		for _, pub := range s.Ports {
			parts := strings.Split(pub, ":")
			var cport int
			if _, err := fmt.Sscanf(parts[len(parts)-1], "%d", &cport); err != nil {
				t.Errorf("%s: port %q: %v", name, pub, err)
				continue
			}
			if !slices.Contains(own, cport) && listening[cport] == "" {
				t.Errorf("%s: publishes container port %d but nothing there listens on it (non-loopback)", name, cport)
			}
			if len(parts) != 3 || parts[0] != "127.0.0.1" {
				t.Errorf("%s: port %q: publish on 127.0.0.1 only", name, pub)
			}
		}
	}
}

// TestComposeDemoCampaign parses the demo campaign with the real campaign
// parser and checks the demo script uses it.
func TestComposeDemoCampaign(t *testing.T) {
	cf, _ := loadCompose(t)
	demo, ok := cf.Services["demo"]
	if !ok {
		t.Fatal("no demo service")
	}
	if len(demo.Configs) == 0 {
		t.Fatal("demo: no campaign config mounted")
	}
	ref := demo.Configs[0]
	cfgDef := cf.Configs[ref.Source]
	data := []byte(cfgDef.Content)
	if cfgDef.File != "" {
		var err error
		if data, err = os.ReadFile(filepath.Join(repoRoot(t), "deploy", cfgDef.File)); err != nil {
			t.Fatalf("demo campaign: %v", err)
		}
	}
	c, err := campaign.Parse(data)
	if err != nil {
		t.Fatalf("demo campaign does not validate: %v", err)
	}
	script := strings.Join(demo.Command, "\n")
	for _, want := range []string{
		"owlctl campaign create " + ref.Target,
		"--topic " + c.AudienceTopic,
		"c=" + c.ID,
		"owlctl plan", "owlctl prepare", "owlctl proof", "owlctl fire", "owlctl report",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("demo script does not contain %q", want)
		}
	}
	if args := strings.Join(cf.Services["pushsim"].Command, " "); c.APNs.Topic != "" && !regexp.MustCompile(`--apns-topics=\S*\b`+regexp.QuoteMeta(c.APNs.Topic)+`\b`).MatchString(args) {
		t.Errorf("pushsim does not accept the campaign's APNs topic %q", c.APNs.Topic)
	}
}

// TestComposeChecksCatchMistakes proves the checks fail on the mistakes they
// exist for.
func TestComposeChecksCatchMistakes(t *testing.T) {
	_, root := loadCompose(t)
	base := `
name: t
services:
  kafka:
    image: apache/kafka:4.1.1
  app:
    image: owlpost:dev
    build: {context: .., target: runtime}
    command: ["/usr/local/bin/planner"]
    environment: {OWLPOST_KAFKA_BROKERS: "kafka:9092"}
    depends_on:
      kafka: {condition: service_started}
volumes: {}
`
	if cf, err := decodeCompose([]byte(base)); err != nil {
		t.Fatal(err)
	} else if errs := checkCompose(cf, root); len(errs) > 0 {
		t.Fatalf("the valid base has problems:%s", errorsText(errs))
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown env key", "OWLPOST_KAFKA_BROKERS", "OWLPOST_KAFKA_BROKER", "not a config key"},
		{"latest image", "apache/kafka:4.1.1", "apache/kafka:latest", "pin a version"},
		{"untagged image", "apache/kafka:4.1.1", "apache/kafka", "no tag"},
		{"healthy without healthcheck", "service_started", "service_healthy", "has no health check"},
		{"unknown dependency", "kafka: {condition", "kfka: {condition", "unknown service"},
		{"missing build context", "context: ..", "context: ../nope", "build context"},
		{"unknown build target", "target: runtime", "target: runtim", "not a stage"},
		{"shell in distroless", `["/usr/local/bin/planner"]`, `["/bin/sh", "-c", "planner"]`, "no shell"},
		{"misspelled field", "depends_on:", "depend_on:", "not found in type"},
		{"undeclared volume", "    depends_on:", "    volumes: [\"data:/var/lib/x\"]\n    depends_on:", "not declared"},
		{"secret file outside mounts", "OWLPOST_KAFKA_BROKERS: \"kafka:9092\"", "OWLPOST_KAFKA_BROKERS: \"kafka:9092\", OWLPOST_REDIS_PASSWORD_FILE: /run/x", "not inside any mounted volume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			if src == base {
				t.Fatalf("test case does not change the file (%q not found)", tc.from)
			}
			cf, err := decodeCompose([]byte(src))
			var errs []error
			if err != nil {
				errs = append(errs, err)
			} else {
				errs = checkCompose(cf, root)
			}
			if !strings.Contains(errorsText(errs), tc.want) {
				t.Errorf("want a problem containing %q, got:%s", tc.want, errorsText(errs))
			}
		})
	}
}
