//go:build fault

package fault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/fault"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/planner"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// Bounds of every wait: generous for a loaded 2-core machine, never a
// timing assertion.
const (
	readyTimeout = 3 * time.Minute
	sendTimeout  = 150 * time.Second
)

// opts tune one case's stack.
type opts struct {
	// Latency of every provider request (pushsim --latency).
	latency time.Duration
	// Batch sizes of the plan (small: more batches, more interleavings).
	iosBatch, androidBatch int
	// BatchesInFlight per sender instance.
	inFlight int
	// ClaimLease of the batch guard (how soon a dead sender's batch is taken over).
	claimLease time.Duration
	// cluster runs the case on the cluster stack (three brokers, replication
	// factor 3, min.insync.replicas 2; Redis is the Sentinel group's primary).
	cluster bool
	// redisMode, with cluster, is redis.mode of every process: "" (the
	// Sentinel group's primary as a standalone server) or sentinel (the
	// clients follow a failover).
	redisMode string
	// fanoutHost, with cluster, runs fanout-1 on that node's host (its
	// network namespace), so a partition of the node cuts it off too.
	fanoutHost string
	// senderHost, with cluster, runs the first iOS sender on that node's
	// host; the simulator's APNs endpoint then listens on the cluster
	// bridge's address, which the host reaches.
	senderHost string
	// The fleet: fanout instances and sender instances per platform
	// (default 2, 1, 1). Sender i > 1 is "sender-<platform>-<i>".
	fanouts, iosSenders, androidSenders int
	// senderEnv is added to every sender's environment (e.g. the group
	// protocol under measurement).
	senderEnv []string
}

func (o *opts) defaults() {
	if o.iosBatch == 0 {
		o.iosBatch = 50
	}
	if o.androidBatch == 0 {
		o.androidBatch = 25
	}
	if o.inFlight == 0 {
		o.inFlight = 4
	}
	if o.claimLease == 0 {
		o.claimLease = 5 * time.Second
	}
	if o.fanouts == 0 {
		o.fanouts = 2
	}
	o.iosSenders = max(o.iosSenders, 1)
	o.androidSenders = max(o.androidSenders, 1)
}

// stack is one case's world: its own topics, groups and Redis prefix on the
// dev stack, a push simulator process, two fanout processes, an iOS and an
// Android sender process, and in-process planning and control.
type stack struct {
	t        *testing.T
	o        opts
	cfg      *config.Config
	cfgFile  string
	bin      string
	ctx      context.Context
	cl       *kgo.Client
	rdb      *redis.Client
	svc      *control.Service
	cat      *catalog.Catalog
	simAdmin string
	procs    map[string]*e2e.Proc
	metrics  map[string]string // process name -> metrics address
	row      *fault.Row        // the case's figures, filled by diagnose on a timeout

	id       string // campaign id
	collapse string // its collapse id / key: what the simulator records it under
	counts   audience.Counts
	manifest *wire.Manifest
	fire     control.FireInfo
	pressed  time.Time
}

// newStack starts the simulator and the stages as processes.
func newStack(t *testing.T, o opts) *stack {
	t.Helper()
	o.defaults()
	var cfg *config.Config
	if o.cluster {
		cfg = testenv.ClusterConfig(t)
		cfg.Redis.Addr = testenv.RedisSentinelPrimary(t)
		if o.redisMode != "" {
			testenv.RedisMode(t, cfg, o.redisMode)
			cfg.Redis.Addr = testenv.RedisSentinelPrimary(t) // the test's own cleanup client
		}
	} else {
		cfg = testenv.Config(t)
	}
	// OWLPOST_FAULT_TRANSPORT (library | fast) is the senders' apns.transport
	// and fcm.transport, so the suite runs with either; unset: the default.
	if tr := os.Getenv("OWLPOST_FAULT_TRANSPORT"); tr != "" {
		cfg.APNs.Transport, cfg.FCM.Transport = tr, tr
	}
	t.Logf("senders: apns.transport %s, fcm.transport %s", cfg.APNs.Transport, cfg.FCM.Transport)
	testenv.Topics(t, cfg)
	cfg.Planner.IOSBatchSize, cfg.Planner.AndroidBatchSize = o.iosBatch, o.androidBatch
	cfg.Sender.BatchesInFlight = o.inFlight
	cfg.Sender.ClaimLease = o.claimLease
	cfg.Sender.RetryBase, cfg.Sender.RetryMax = 50*time.Millisecond, 2*time.Second
	s := &stack{t: t, o: o, cfg: cfg, bin: e2e.Build(t), ctx: testenv.Context(t, 15*time.Minute),
		procs: map[string]*e2e.Proc{}, metrics: map[string]string{}}
	s.cl = testenv.Client(t, cfg)
	if o.cluster {
		s.waitInSync()
	}
	s.rdb = testenv.Redis(t, cfg)
	s.startSim()
	s.cfgFile = e2e.ConfigFile(t, cfg)

	// The control Service gets its own Redis client with the configured
	// command timeout, like owlctl's.
	rdb, err := guard.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if s.svc, err = control.New(cfg, control.Deps{Kafka: s.cl, Guard: guard.New(rdb, cfg.Redis.Prefix, nil)}); err != nil {
		t.Fatal(err)
	}
	if s.cat, err = catalog.New(cfg, s.cl); err != nil {
		t.Fatal(err)
	}
	for i := range o.fanouts {
		if name := fmt.Sprintf("fanout-%d", i+1); i == 0 && o.fanoutHost != "" {
			s.startOn(testenv.NodeNetns(t, o.fanoutHost), name, "fanout")
		} else {
			s.start(name, "fanout")
		}
	}
	for i := range o.iosSenders {
		s.startSender(push.IOS, i+1)
	}
	for i := range o.androidSenders {
		s.startSender(push.Android, i+1)
	}
	return s
}

// senderName is the process name of sender i (1-based) of a platform:
// "sender-ios", "sender-ios-2", ...
func senderName(p push.Platform, i int) string {
	if i == 1 {
		return "sender-" + string(p)
	}
	return fmt.Sprintf("sender-%s-%d", p, i)
}

// startSender runs sender i of platform p as a process (the first iOS
// sender on opts.senderHost's host if set).
func (s *stack) startSender(p push.Platform, i int) *e2e.Proc {
	env := append([]string{e2e.Env("sender.platform", string(p))}, s.o.senderEnv...)
	if p == push.IOS && i == 1 && s.o.senderHost != "" {
		return s.startOn(testenv.NodeNetns(s.t, s.o.senderHost), senderName(p, i), "sender", env...)
	}
	return s.start(senderName(p, i), "sender", env...)
}

// clusterBridge is the cluster stack's bridge address (10.250.<id>.1): the
// root namespace as the hosts reach it.
func clusterBridge(t *testing.T) string {
	host, _, err := net.SplitHostPort(testenv.KafkaClusterAddrs(t)[0])
	ip := net.ParseIP(host).To4()
	if err != nil || ip == nil {
		t.Fatalf("cluster broker address %q is not an IPv4 address", host)
	}
	ip[3] = 1
	return ip.String()
}

// startSim runs bin/pushsim on free loopback ports with generated
// credentials and points cfg's APNs and FCM settings at it.
func (s *stack) startSim() {
	t := s.t
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	apnsAddr, fcmAddr, adminAddr := e2e.FreeAddr(t), e2e.FreeAddr(t), e2e.FreeAddr(t)
	if s.o.senderHost != "" {
		_, port, _ := net.SplitHostPort(apnsAddr)
		apnsAddr = net.JoinHostPort(clusterBridge(t), port)
	}
	args := []string{"--gen-creds", filepath.Join(dir, "creds"), "--write-ca", ca,
		"--apns-addr", apnsAddr, "--fcm-addr", fcmAddr, "--admin-addr", adminAddr,
		"--apns-topics", "com.example.owlapp"}
	if s.o.latency > 0 {
		args = append(args, "--latency", s.o.latency.String())
	}
	s.procs["pushsim"] = e2e.Start(t, e2e.Spec{Name: "pushsim", Binary: filepath.Join(s.bin, "pushsim"), Args: args})
	s.simAdmin = "http://" + adminAddr
	e2e.WaitFor(t, 30*time.Second, func() error {
		if _, err := os.Stat(ca); err != nil {
			return err
		}
		resp, err := http.Get(s.simAdmin + "/healthz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		return nil
	})
	s.cfg.APNs = config.APNsConfig{Host: "https://" + apnsAddr, Topic: "com.example.owlapp",
		KeyFile: filepath.Join(dir, "creds", pushsim.GenAPNsKeyFile), KeyID: "SIMKEY0001", TeamID: "SIMTEAM001",
		CAFile: ca, Connections: 2, Timeout: 10 * time.Second, Transport: s.cfg.APNs.Transport}
	s.cfg.FCM = config.FCMConfig{ProjectID: "owlpost-sim", CredentialsFile: filepath.Join(dir, "creds", pushsim.GenServiceAccountFile),
		Endpoint: "https://" + fcmAddr + "/v1", CAFile: ca, Clients: 2, Timeout: 10 * time.Second, Transport: s.cfg.FCM.Transport}
}

// start runs one owlpost stage as a process.
func (s *stack) start(name, binary string, env ...string) *e2e.Proc {
	return s.startOn("", name, binary, env...)
}

// startOn runs one owlpost stage as a process in the network namespace
// netns ("" = this one). ip netns exec execs the stage, so the process's
// pid is the stage's.
func (s *stack) startOn(netns, name, binary string, env ...string) *e2e.Proc {
	addr := e2e.FreeAddr(s.t)
	s.metrics[name] = addr
	env = append([]string{e2e.Env("instance_id", name), e2e.Env("metrics.addr", addr)}, env...)
	spec := e2e.Spec{Name: name, Binary: filepath.Join(s.bin, binary), Config: s.cfgFile, Env: env}
	if netns != "" {
		spec.Args = []string{"netns", "exec", netns, spec.Binary}
		spec.Binary = "ip"
	}
	p := e2e.Start(s.t, spec)
	s.procs[name] = p
	return p
}

// campaignSpec is what a case changes in the demo campaign.
type campaignSpec struct {
	deadline time.Duration // default 10m
}

// define writes a fresh audience and the campaign definition, then plans it
// with the real planner and checks the plan against the audience's ground
// truth (exact planned tokens per platform).
func (s *stack) define(spec audience.Spec, cs campaignSpec) {
	t := s.t
	s.id = "fault-" + testenv.ID()
	s.collapse = s.id + ".c" // differs from the id: the simulator's record proves the collapse id was sent
	topic := s.cfg.Topics.Campaigns + ".audience"
	if _, err := kadm.NewClient(s.cl).CreateTopic(s.ctx, 4, s.cfg.Topics.ReplicationFactor, nil, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.DeleteTopics(t, s.cfg, topic) })
	acl := testenv.Client(t, s.cfg, audience.ProducerOpts()...)
	var err error
	if s.counts, err = audience.Generate(s.ctx, acl, topic, spec, nil); err != nil {
		t.Fatalf("audience: %v", err)
	}

	src, err := os.ReadFile("../../deploy/demo/campaign.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := campaign.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	def.ID, def.AudienceTopic = s.id, topic
	def.APNs.CollapseID, def.FCM.CollapseKey = s.collapse, s.collapse
	def.Deadline = campaign.Duration(10 * time.Minute)
	if cs.deadline > 0 {
		def.Deadline = campaign.Duration(cs.deadline)
		def.APNs.Expiration, def.FCM.TTL = nil, nil
	}
	def.ApplyDefaults()
	if err := def.Validate(); err != nil {
		t.Fatalf("campaign: %v", err)
	}
	if err := s.cat.PutCampaign(s.ctx, def); err != nil {
		t.Fatal(err)
	}
	pl, err := planner.New(s.cfg, planner.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if s.manifest, err = pl.Plan(s.ctx, s.id, "fault-suite", nil); err != nil {
		t.Fatalf("plan: %v", err)
	}
	m := s.manifest
	// Plan returns once its transaction is committed, but Kafka writes the
	// commit markers after EndTxn answers: read_committed readers (the
	// catalog, the fanout) see the plan a moment later.
	e2e.WaitFor(t, time.Minute, func() error {
		got, err := s.cat.Manifest(s.ctx, s.id)
		if err != nil {
			return err
		}
		if got.Generation != m.Generation {
			return fmt.Errorf("catalog shows plan generation %d, planned %d", got.Generation, m.Generation)
		}
		return nil
	})
	t.Logf("planned %s: %d tokens in %d batches (%d audience records)", s.id, m.Tokens(), m.Batches(), s.counts.Records)
	if int64(m.IOSTokens) != s.counts.IOS || int64(m.AndroidTokens) != s.counts.Android {
		t.Fatalf("planned %d iOS + %d Android tokens, the audience has exactly %d + %d",
			m.IOSTokens, m.AndroidTokens, s.counts.IOS, s.counts.Android)
	}
}

// prepare asks the stages to get ready and waits until GO would fire.
func (s *stack) prepare() {
	s.t.Helper()
	if err := s.svc.Prepare(s.ctx, s.id, "fault-suite"); err != nil {
		s.t.Fatal(err)
	}
	s.waitStatus(readyTimeout, "ready to fire", func(st *control.CampaignStatus) bool { return st.ReadyToFire })
	s.t.Logf("prepared: ready to fire")
}

// owlctl runs bin/owlctl with the case's config and returns its exit code
// and combined output.
func (s *stack) owlctl(ctx context.Context, args ...string) (int, string) {
	return s.owlctlEnv(ctx, nil, args...)
}

// owlctlEnv is owlctl with extra environment entries (see e2e.Env).
func (s *stack) owlctlEnv(ctx context.Context, env []string, args ...string) (int, string) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "owlctl"), args...)
	cmd.Env = append(append(os.Environ(), "OWLPOST_CONFIG="+s.cfgFile, "OWLPOST_LOG_LEVEL=warn"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	default:
		return -1, out.String() + err.Error()
	}
}

// press presses GO once through a bin/owlctl process and requires the win.
func (s *stack) press() {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	s.pressed = time.Now()
	code, out := s.owlctl(ctx, "fire", s.id, "--yes", "--by", "fault-suite")
	if code != 0 || !strings.Contains(out, "fired: fire id") {
		t.Fatalf("owlctl fire: exit %d: %s", code, out)
	}
	s.loadFire()
	t.Logf("%s", lineWith(out, "fired: fire id"))
}

// pressUntilFired presses GO every second until a press names the fire or
// d has passed; each refusal must be a fail-closed one (exit 1, "not fired").
func (s *stack) pressUntilFired(d time.Duration) {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, d)
	defer cancel()
	s.pressed = time.Now()
	for {
		code, out := s.owlctl(ctx, "fire", s.id, "--yes", "--by", "fault-suite")
		// Exit 3 (already fired) names a refused press's record that a
		// replica confirmed later; this press published its trigger.
		if (code == 0 || code == 3) && strings.Contains(out, "fire id") {
			s.loadFire()
			t.Logf("%s", lineWith(out, "fire id"))
			return
		}
		if code != 1 || !strings.Contains(out, "not fired") || ctx.Err() != nil {
			t.Fatalf("owlctl fire: exit %d: %s", code, out)
		}
		t.Logf("press refused (fail closed), pressing again: %s", lineWith(out, "not fired"))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// pressResult is one owlctl fire press: its exit status, its output and the
// fire id it named ("" if none).
type pressResult struct {
	code   int
	out    string
	fireID string
}

var fireIDRe = regexp.MustCompile(`fire id (fire-\S+)`)

// pressAtOnce runs n owlctl fire presses of the campaign released at the
// same moment, press i with env(i) added to its environment (env may be
// nil) and args(i) after "fire ID --yes" (nil: "--by marketer-i");
// during, if not nil, runs right after the release. It returns when every
// press has answered.
func (s *stack) pressAtOnce(n int, env, args func(i int) []string, during func()) []pressResult {
	res := make([]pressResult, n)
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Minute)
	defer cancel()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := []string{"fire", s.id, "--yes", "--by", fmt.Sprintf("marketer-%d", i)}
			if args != nil {
				a = append(a[:3], args(i)...)
			}
			var e []string
			if env != nil {
				e = env(i)
			}
			<-start
			r := &res[i]
			r.code, r.out = s.owlctlEnv(ctx, e, a...)
			if m := fireIDRe.FindStringSubmatch(r.out); m != nil {
				r.fireID = m[1]
			}
		}()
	}
	close(start)
	if during != nil {
		during()
	}
	wg.Wait()
	return res
}

// loadFire reads the winning fire from the status. It waits longer than
// the longest fault a case holds while the press finishes (a broker
// partitioned for up to two minutes can hang the status reads).
func (s *stack) loadFire() {
	st := s.waitStatus(3*time.Minute, "fire recorded", func(st *control.CampaignStatus) bool { return st.Fire != nil })
	s.fire = *st.Fire
}

// waitStatus polls the campaign status until ok accepts it. Status errors
// (Kafka restarting) are tolerated until the timeout.
func (s *stack) waitStatus(d time.Duration, what string, ok func(*control.CampaignStatus) bool) *control.CampaignStatus {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(d)
	var last *control.CampaignStatus
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		st, err := s.svc.Status(ctx, s.id)
		cancel()
		switch {
		case err != nil:
			lastErr = err
		case ok(st):
			return st
		default:
			last = st
		}
		time.Sleep(250 * time.Millisecond)
	}
	if last == nil {
		t.Fatalf("timed out after %s waiting for %s: %v", d, what, lastErr)
	}
	t.Fatalf("timed out after %s waiting for %s; last status: state %s reasons %v progress %+v errors %v (last error %v)",
		d, what, last.State, last.Reasons, last.Progress, last.Errors, lastErr)
	return nil
}

// waitAllBatches waits until every planned batch has a result of the fire;
// if that does not happen it logs what the guard and the send topics say
// about the missing batches before failing.
func (s *stack) waitAllBatches() *control.CampaignStatus {
	t := s.t
	t.Helper()
	var st *control.CampaignStatus
	deadline := time.Now().Add(sendTimeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		got, err := s.svc.Status(ctx, s.id)
		cancel()
		if err == nil {
			st = got
			if pr := st.Progress; pr != nil && pr.BatchesPlanned > 0 && pr.BatchesDone == int(pr.BatchesPlanned) {
				t.Logf("every batch has a result")
				return st
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.diagnose()
	if st == nil {
		t.Fatalf("timed out after %s waiting for a result for every planned batch (no status)", sendTimeout)
	}
	t.Fatalf("timed out after %s waiting for a result for every planned batch; state %s progress %+v errors %v",
		sendTimeout, st.State, st.Progress, st.Errors)
	return nil
}

// diagnose logs, for every planned batch without a result, its guard keys
// and how often it is on the send topics, and the senders' batch metrics.
func (s *stack) diagnose() {
	t := s.t
	have := map[string]bool{}
	for _, r := range s.fireResults() {
		have[wire.BatchKey(r.Campaign, r.Platform, r.Seq)] = true
	}
	sent := s.sendTopicCounts()
	var missing []string
	for _, p := range []struct {
		plat push.Platform
		n    uint32
	}{{push.IOS, s.manifest.IOSBatches}, {push.Android, s.manifest.AndroidBatches}} {
		for seq := range p.n {
			if k := wire.BatchKey(s.id, p.plat, seq); !have[k] {
				missing = append(missing, k)
			}
		}
	}
	t.Logf("diagnosis: %d batches without a result", len(missing))
	if s.row != nil {
		s.row.Tokens = s.manifest.Tokens()
		if sim, err := s.simStats(s.collapse); err == nil {
			s.row.Accepted, s.row.Distinct, s.row.Duplicates = sim.Accepted, sim.DistinctTokens, sim.DuplicateDeliveries
		}
		s.row.Note = fmt.Sprintf("campaign never completed: %d batches without a result record", len(missing))
		if len(missing) > 0 {
			s.row.Note += fmt.Sprintf(" (e.g. %s: guard says done, no result)", missing[0])
		}
	}
	for i, k := range missing {
		if i == 20 {
			break
		}
		var guardKeys []string
		iter := s.rdb.Scan(s.ctx, 0, s.cfg.Redis.Prefix+":*:"+k+":*", 100).Iterator()
		for iter.Next(s.ctx) {
			ttl, _ := s.rdb.PTTL(s.ctx, iter.Val()).Result()
			guardKeys = append(guardKeys, fmt.Sprintf("%s (ttl %s)", strings.TrimPrefix(iter.Val(), s.cfg.Redis.Prefix+":"), ttl))
		}
		t.Logf("  %s: on the send topics x%d; guard keys %v", k, sent[k], guardKeys)
	}
	for name, addr := range s.metrics {
		if !strings.HasPrefix(name, "sender") {
			continue
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Logf("  %s metrics: %v", name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "owlpost_sender_batches") || strings.HasPrefix(l, "owlpost_sender_inflight") {
				t.Logf("  %s: %s", name, l)
			}
		}
	}
}

// simStats reads the simulator's record of one campaign key ("" = all).
func (s *stack) simStats(key string) (pushsim.Stats, error) {
	var st pushsim.Stats
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.simAdmin+"/stats?campaign="+key, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("simulator stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (s *stack) mustSimStats(key string) pushsim.Stats {
	s.t.Helper()
	st, err := s.simStats(key)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

// arrivals reads the simulator's accepted arrival times of the campaign.
func (s *stack) arrivals() []int64 {
	t := s.t
	t.Helper()
	resp, err := http.Get(s.simAdmin + "/arrivals?campaign=" + s.collapse)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ns []int64
	if err := json.NewDecoder(resp.Body).Decode(&ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// faults posts a fault storm to the simulator's admin API.
func (s *stack) faults(f map[string]any) {
	t := s.t
	t.Helper()
	b, _ := json.Marshal(f)
	resp, err := http.Post(s.simAdmin+"/faults", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("simulator faults: %s: %s", resp.Status, body)
	}
}

// waitAccepted waits until the simulator accepted at least n notifications
// of the campaign, polling fast so a fault lands mid-campaign.
func (s *stack) waitAccepted(n int64, timeout time.Duration) int64 {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := s.simStats(s.collapse)
		if err == nil && st.Accepted >= n {
			return st.Accepted
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the simulator did not accept %d notifications within %s", n, timeout)
	return 0
}

// devstack runs scripts/devstack.sh VERB SERVICE (the environment, e.g.
// OWLPOST_STATE and the ports, passes through).
func devstack(verb, svc string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../../scripts/devstack.sh", verb, svc)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("devstack %s %s: %w\n%s", verb, svc, err, out)
	}
	return nil
}

// restoreOnCleanup makes sure svc runs again when the case ends, pass or
// fail. Register it just before disturbing svc: cleanups run last-in
// first-out, so the service is back before the processes stop and the
// topics are deleted.
func restoreOnCleanup(t *testing.T, svc string) {
	t.Cleanup(func() {
		if err := devstack("start", svc); err != nil {
			t.Errorf("restoring %s: %v", svc, err)
		}
	})
}

// outcome is what a case expects of the fire.
type outcome struct {
	// maxDuplicates allowed (with the reason in the row's note).
	maxDuplicates int64
	// expired tokens are allowed (deadline cases).
	allowExpired bool
}

// result gathers the simulator's record and the report and checks the
// invariants every case shares:
//   - everything the simulator accepted carried the campaign's collapse id
//     (its record under the collapse key equals its record of all traffic);
//   - lost = planned - distinct accepted - invalid - expired is 0;
//   - the report's accepted equals the simulator's distinct tokens, its
//     invalid the audience's refused tokens; nothing failed or aborted;
//   - duplicates within the case's allowance.
func (s *stack) result(row *fault.Row, want outcome) *report.Report {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	rep, err := report.Build(ctx, s.cfg, s.cl, s.id, "")
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	sim := s.mustSimStats(s.collapse)
	all := s.mustSimStats("")
	row.Tokens = s.manifest.Tokens()
	row.Accepted, row.Distinct, row.Duplicates = sim.Accepted, sim.DistinctTokens, sim.DuplicateDeliveries
	row.Invalid, row.Expired, row.Retries = rep.Total.Invalid, rep.Total.Expired, rep.Total.Retries
	row.Lost = int64(row.Tokens) - sim.DistinctTokens - int64(rep.Total.Invalid) - int64(rep.Total.Expired)
	if !rep.FiredAt.IsZero() && rep.Latency.N > 0 {
		row.Seconds = float64(rep.Latency.MaxMS) / 1000
	}
	t.Logf("%s: tokens %d, accepted %d (distinct %d, duplicates %d), invalid %d, expired %d, lost %d, retries %d, resent %d, GO to last acceptance %.1f s",
		row.Case, row.Tokens, row.Accepted, row.Distinct, row.Duplicates, row.Invalid, row.Expired, row.Lost,
		rep.Total.Retries, rep.Total.Resent, row.Seconds)

	if all.Accepted != sim.Accepted {
		t.Errorf("the simulator accepted %d notifications in all but %d under the collapse id %s: some were sent without it",
			all.Accepted, sim.Accepted, s.collapse)
	}
	if row.Lost != 0 {
		t.Errorf("lost %d tokens: planned %d, distinct accepted %d, invalid %d, expired %d",
			row.Lost, row.Tokens, sim.DistinctTokens, rep.Total.Invalid, rep.Total.Expired)
	}
	if rep.Total.Accepted != uint64(sim.DistinctTokens) {
		t.Errorf("the report says %d accepted, the simulator accepted %d distinct tokens", rep.Total.Accepted, sim.DistinctTokens)
	}
	// With a deadline, refused tokens that were never sent are expired.
	if wantInvalid := uint64(s.counts.InvalidIOS + s.counts.InvalidAndroid); rep.Total.Invalid != wantInvalid &&
		!(want.allowExpired && rep.Total.Invalid < wantInvalid) {
		t.Errorf("report: %d invalid, the audience has %d tokens the provider refuses", rep.Total.Invalid, wantInvalid)
	}
	if rep.Total.Failed != 0 || rep.Total.Aborted != 0 {
		t.Errorf("report: failed %d, aborted %d, want 0", rep.Total.Failed, rep.Total.Aborted)
	}
	if !want.allowExpired && rep.Total.Expired != 0 {
		t.Errorf("report: %d expired, want 0", rep.Total.Expired)
	}
	if !want.allowExpired && rep.Total.Done() != row.Tokens {
		t.Errorf("report: %d tokens with an outcome, %d planned", rep.Total.Done(), row.Tokens)
	}
	if sim.DuplicateDeliveries > want.maxDuplicates {
		t.Errorf("the simulator saw %d duplicate deliveries (%d tokens), at most %d allowed",
			sim.DuplicateDeliveries, sim.DuplicateTokens, want.maxDuplicates)
	}
	return rep
}

// newRow starts a case's figures; the row is written when the case ends,
// pass or fail, after every other cleanup.
func newRow(t *testing.T, name string) *fault.Row {
	if tr := os.Getenv("OWLPOST_FAULT_TRANSPORT"); tr != "" {
		name += " [" + tr + " transport]" // a second pass of the suite (make fault)
	}
	row := &fault.Row{Case: name}
	t.Cleanup(func() {
		row.Pass = !t.Failed()
		row.At = time.Now().UTC()
		if path := os.Getenv(fault.EnvOut); path != "" {
			if err := fault.Append(path, *row); err != nil {
				t.Error(err)
			}
		}
	})
	return row
}

// sendTopicCounts counts, per batch key, the send tasks of the campaign on
// both send topics (read_committed, up to the current end).
func (s *stack) sendTopicCounts() map[string]int {
	s.t.Helper()
	counts, err := s.trySendTopicCounts()
	if err != nil {
		s.t.Fatal(err)
	}
	return counts
}

// releasedSoFar counts the batches on the send topics, retrying for a
// minute while a broker is down (a partition without a leader yet).
func (s *stack) releasedSoFar() int {
	s.t.Helper()
	var n int
	e2e.WaitFor(s.t, time.Minute, func() error {
		counts, err := s.trySendTopicCounts()
		n = len(counts)
		return err
	})
	return n
}

func (s *stack) trySendTopicCounts() (map[string]int, error) {
	opts, err := kafka.Opts(s.cfg)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	counts := map[string]int{}
	for _, topic := range []string{s.cfg.Topics.SendIOS, s.cfg.Topics.SendAndroid} {
		ends, err := kafka.SnapshotEnds(s.ctx, kadm.NewClient(s.cl), topic, nil)
		if err != nil {
			return nil, err
		}
		err = kafka.ReadSnapshot(s.ctx, opts, topic, ends, func(r *kgo.Record) error {
			if c, _, _, ok := wire.ParseBatchKey(string(r.Key)); ok && c == s.id {
				mu.Lock()
				counts[string(r.Key)]++
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// readTopic reads every record of a topic up to its end now
// (read_committed) and calls fn for each, concurrently across partitions.
func (s *stack) readTopic(topic string, fn func(*kgo.Record) error) {
	t := s.t
	t.Helper()
	opts, err := kafka.Opts(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kafka.SnapshotEnds(s.ctx, kadm.NewClient(s.cl), topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := kafka.ReadSnapshot(s.ctx, opts, topic, ends, fn); err != nil {
		t.Fatal(err)
	}
}

// fireResults returns every result record of the winning fire.
func (s *stack) fireResults() []wire.Result {
	s.t.Helper()
	var mu sync.Mutex
	var out []wire.Result
	s.readTopic(s.cfg.Topics.Results, func(r *kgo.Record) error {
		var res wire.Result
		if err := wire.Decode(r.Value, &res); err != nil {
			return err
		}
		if res.Campaign == s.id && res.FireID == s.fire.FireID {
			mu.Lock()
			out = append(out, res)
			mu.Unlock()
		}
		return nil
	})
	return out
}
