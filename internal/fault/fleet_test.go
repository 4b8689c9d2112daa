//go:build fault

package fault_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/fault"
	"github.com/owlpost/owlpost/internal/planner"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/wire"
)

// The fleet cases send with several instances per stage and move
// partitions between them mid-send. Senders are slowed (provider latency,
// one batch in flight) so a campaign lasts long enough for every event.
// OWLPOST_FAULT_GROUP_PROTOCOL (cooperative-sticky, eager, consumer) and
// OWLPOST_FAULT_STATIC_MEMBERSHIP=1 set the senders' group settings, to
// measure the stall of each.
func fleetOpts(o opts) opts {
	o.latency, o.inFlight, o.iosBatch, o.androidBatch = 100*time.Millisecond, 1, 25, 25
	if p := os.Getenv("OWLPOST_FAULT_GROUP_PROTOCOL"); p != "" {
		o.senderEnv = append(o.senderEnv, e2e.Env("sender.group_protocol", p))
	}
	if os.Getenv("OWLPOST_FAULT_STATIC_MEMBERSHIP") == "1" {
		o.senderEnv = append(o.senderEnv, e2e.Env("sender.static_membership", "true"))
	}
	return o
}

// groupSettings names the senders' group settings for the notes.
func groupSettings() string {
	p := os.Getenv("OWLPOST_FAULT_GROUP_PROTOCOL")
	if p == "" {
		p = "cooperative-sticky (default)"
	}
	if os.Getenv("OWLPOST_FAULT_STATIC_MEMBERSHIP") == "1" {
		p += ", static membership"
	}
	return "group protocol " + p
}

// event is one fleet event: its window runs from its start until the
// group has settled (the moved process ready again, plus a margin).
type event struct {
	name       string
	platform   push.Platform
	start, end time.Time
}

// settle is how long after an event's last step the window stays open:
// the group's rebalance after a join or leave takes this long at most on
// this machine (a gap that long would show as the stall).
const settle = 3 * time.Second

// waitReady polls the process's /readyz until it answers 200.
func (s *stack) waitReady(name string) {
	s.t.Helper()
	e2e.WaitFor(s.t, readyTimeout, func() error {
		resp, err := http.Get("http://" + s.metrics[name] + "/readyz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /readyz: %s", name, resp.Status)
		}
		return nil
	})
}

// restart stops a process with SIGTERM (graceful), starts it again and
// waits until it is ready: one step of a rolling restart.
func (s *stack) restart(name string, p push.Platform) event {
	ev := event{name: "SIGTERM " + name + ", restarted", platform: p, start: time.Now()}
	s.procs[name].Restart()
	s.waitReady(name)
	ev.end = time.Now().Add(settle)
	return ev
}

// platformArrivals reads the simulator's accepted arrival times (unix ns,
// sorted) of the campaign on one platform.
func (s *stack) platformArrivals(p push.Platform) []int64 {
	t := s.t
	t.Helper()
	resp, err := http.Get(s.simAdmin + "/arrivals?campaign=" + s.collapse + "&platform=" + string(p))
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

// stall is the largest gap between two consecutive arrivals that overlaps
// [from, to], counting only while the platform was still sending (the gap
// after its last acceptance is the end of the campaign, not a stall).
func stall(arr []int64, from, to time.Time) time.Duration {
	lo, hi := from.UnixNano(), to.UnixNano()
	var worst int64
	for i := 1; i < len(arr); i++ {
		if arr[i] < lo || arr[i-1] > hi {
			continue
		}
		worst = max(worst, arr[i]-arr[i-1])
	}
	return time.Duration(worst)
}

// stalls measures every event against its platform's arrivals, records
// them in the row and logs them.
func (s *stack) stalls(row *fault.Row, evs []event) time.Duration {
	arr := map[push.Platform][]int64{}
	var worst time.Duration
	for _, ev := range evs {
		if _, ok := arr[ev.platform]; !ok {
			arr[ev.platform] = s.platformArrivals(ev.platform)
		}
		a := arr[ev.platform]
		if len(a) == 0 || ev.start.UnixNano() > a[len(a)-1] {
			s.t.Errorf("%s: the %s send had finished before it", ev.name, ev.platform)
			continue
		}
		d := stall(a, ev.start, ev.end)
		worst = max(worst, d)
		row.Stalls = append(row.Stalls, fault.Stall{Event: ev.name, Seconds: d.Seconds()})
		s.t.Logf("%s: %s stall %s", ev.name, ev.platform, d.Round(time.Millisecond))
	}
	return worst
}

// TestFleetRollingRestartSenders: 3 iOS and 2 Android senders; during the
// send every sender is restarted with SIGTERM, one at a time per platform
// (the next once the previous is ready again). Graceful: 0 duplicates.
func TestFleetRollingRestartSenders(t *testing.T) {
	row := newRow(t, "fleet: rolling restart of every sender mid-send (3 iOS, 2 Android), one at a time")
	s := newStack(t, fleetOpts(opts{iosSenders: 3, androidSenders: 2}))
	s.row = row
	s.define(spec(11), campaignSpec{})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	s.waitSim(time.Minute, "10% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total/10 })

	var mu sync.Mutex
	var evs []event
	var wg sync.WaitGroup
	for _, p := range []struct {
		plat push.Platform
		n    int
	}{{push.IOS, s.o.iosSenders}, {push.Android, s.o.androidSenders}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= p.n; i++ {
				ev := s.restart(senderName(p.plat, i), p.plat)
				mu.Lock()
				evs = append(evs, ev)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	atEnd := s.mustSimStats(s.collapse)
	s.waitAllBatches()
	s.result(row, outcome{})
	worst := s.stalls(row, evs)
	row.Note = fmt.Sprintf("%d restarts done at %d/%d accepted; largest stall %.2f s; %s",
		len(evs), atEnd.Accepted, total, worst.Seconds(), groupSettings())
	if atEnd.Accepted >= total {
		t.Errorf("the restarts ended after the campaign (%d accepted of %d): not mid-send", atEnd.Accepted, total)
	}
}

// TestFleetScaleIOS: the iOS senders scale from 1 to 4 at ~20% accepted and
// from 4 to 2 (SIGTERM) at ~60%. Graceful: 0 duplicates.
func TestFleetScaleIOS(t *testing.T) {
	row := newRow(t, "fleet: iOS senders scaled 1->4 at ~20% accepted, 4->2 at ~60%")
	s := newStack(t, fleetOpts(opts{}))
	s.row = row
	sp := spec(12)
	sp.IOS, sp.Android = 16000, 2000
	s.define(sp, campaignSpec{})
	s.prepare()
	s.press()
	ios := int64(s.manifest.IOSTokens)
	s.waitSim(time.Minute, "20% of iOS accepted", func(st pushsim.Stats) bool { return st.ByPlatform["ios"] >= ios/5 })

	keda := s.kedaDecision(push.IOS, 1)
	t.Logf("KEDA at 20%%: %s", keda)
	up := event{name: "iOS senders 1->4 (3 started)", platform: push.IOS, start: time.Now()}
	for i := 2; i <= 4; i++ {
		s.startSender(push.IOS, i)
	}
	for i := 2; i <= 4; i++ {
		s.waitReady(senderName(push.IOS, i))
	}
	up.end = time.Now().Add(settle)
	s.waitSim(2*time.Minute, "60% of iOS accepted", func(st pushsim.Stats) bool { return st.ByPlatform["ios"] >= ios*6/10 })
	down := event{name: "iOS senders 4->2 (SIGTERM to 2)", platform: push.IOS, start: time.Now()}
	var wg sync.WaitGroup
	for _, i := range []int{3, 4} {
		wg.Add(1)
		go func() { defer wg.Done(); s.procs[senderName(push.IOS, i)].Stop() }()
	}
	wg.Wait()
	down.end = time.Now().Add(settle)
	atDown := s.mustSimStats(s.collapse)

	s.waitAllBatches()
	s.result(row, outcome{})
	worst := s.stalls(row, []event{up, down})
	row.Note = fmt.Sprintf("%s; scaled in at %d/%d iOS accepted; largest stall %.2f s; %s",
		keda, atDown.ByPlatform["ios"], ios, worst.Seconds(), groupSettings())
	if atDown.ByPlatform["ios"] >= ios {
		t.Errorf("the scale-in came after the iOS send (%d of %d)", atDown.ByPlatform["ios"], ios)
	}
	for _, name := range []string{senderName(push.IOS, 3), senderName(push.IOS, 4)} {
		if out := s.procs[name].Output(); !strings.Contains(out, "exited: <nil>") {
			t.Errorf("%s did not exit cleanly on SIGTERM:\n%s", name, s.procs[name].Tail(10))
		}
	}
}

// TestFleetSenderFrozen: one of two iOS senders is frozen with SIGSTOP for
// longer than its claim lease and its group session (2 s, 10 s): until the
// other sender has taken over the batch it held; then it is continued. Its partitions and its claimed batch move to the other
// sender, which takes the batch over; the frozen one, continued, finds
// its lease lost and stops sending that batch. The only case that may
// duplicate: what it sent between SIGCONT and noticing, bounded by its
// in-flight batch, all under the collapse id.
func TestFleetSenderFrozen(t *testing.T) {
	row := newRow(t, "fleet: an iOS sender frozen (SIGSTOP) until its batch was taken over (> 2 s lease, > 10 s session), then continued")
	s := newStack(t, fleetOpts(opts{iosSenders: 2, claimLease: 2 * time.Second}))
	s.row = row
	s.define(spec(13), campaignSpec{})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	s.waitSim(time.Minute, "20% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total/5 })
	frozen := s.procs[senderName(push.IOS, 1)]
	// Freeze it while it holds a batch claim: a small batch is sent within
	// milliseconds, so a freeze can fall between two batches; then it is
	// continued at once and frozen again a moment later.
	var ev event
	var held []string
	freezes := 0
	for try := 0; len(held) == 0; try++ {
		freezes++
		if try == 50 {
			t.Fatalf("the sender held no batch claim at any of %d freezes", try)
		}
		if try > 0 {
			if err := frozen.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(10+try) * time.Millisecond)
		}
		ev = event{name: "SIGSTOP " + frozen.Name + " until its batch was taken over, SIGCONT", platform: push.IOS, start: time.Now()}
		if err := frozen.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// The batches the frozen sender holds; it stays frozen until the
		// other sender has taken every one of them over (claimed or
		// finished it), which needs its partitions to move (the 10 s
		// session) and the lease to expire.
		held = s.claimsOf(frozen.Name + "/")
	}
	e2e.WaitFor(t, 2*time.Minute, func() error {
		for _, k := range held {
			owner, _ := s.rdb.Get(s.ctx, k).Result()
			done, _ := s.rdb.Exists(s.ctx, strings.Replace(k, ":claim:", ":done:", 1)).Result()
			if strings.HasPrefix(owner, frozen.Name+"/") || (owner == "" && done == 0) {
				return fmt.Errorf("batch %s not taken over yet", k)
			}
		}
		return nil
	})
	t.Logf("frozen %s (freeze %d); its %d batch(es) taken over by the other sender", time.Since(ev.start).Round(100*time.Millisecond), freezes, len(held))
	if err := frozen.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ev.end = time.Now().Add(settle)
	atCont := s.mustSimStats(s.collapse)
	s.waitAllBatches()
	bound := int64(s.o.inFlight * s.o.iosBatch)
	s.result(row, outcome{maxDuplicates: bound})
	worst := s.stalls(row, []event{ev})
	lost := strings.Count(frozen.Output(), "batch lease lost")
	row.Note = fmt.Sprintf("continued at %d/%d accepted; the frozen sender found %d batch lease(s) lost and dropped them; duplicates <= its in-flight batch (%d); stall %.2f s; %s",
		atCont.Accepted, total, lost, bound, worst.Seconds(), groupSettings())
	if lost == 0 {
		t.Errorf("the frozen sender never reported a lost lease after SIGCONT:\n%s", frozen.Tail(20))
	}
	if atCont.Accepted >= total {
		t.Errorf("the freeze ended after the campaign (%d of %d)", atCont.Accepted, total)
	}
}

// TestFleetTwoPlanners: two planners plan the same campaign at once. The
// per-campaign transactional id fences one of them (or they run one after
// the other): the catalog holds one complete plan whose counts match the
// audience exactly, and the campaign sends every token once.
func TestFleetTwoPlanners(t *testing.T) {
	row := newRow(t, "fleet: two planners plan the same campaign at once")
	s := newStack(t, opts{})
	s.row = row
	s.define(spec(14), campaignSpec{}) // a first plan, so the campaign exists
	first := s.manifest.Generation

	type res struct {
		m   *wire.Manifest
		err error
	}
	out := make([]res, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range out {
		pl, err := planner.New(s.cfg, planner.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		defer pl.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i].m, out[i].err = pl.Plan(s.ctx, s.id, fmt.Sprintf("planner-%d", i+1), nil)
		}()
	}
	close(start)
	wg.Wait()
	var ok []string
	for i, r := range out {
		if r.err != nil {
			t.Logf("planner-%d: %v", i+1, r.err)
			continue
		}
		ok = append(ok, fmt.Sprintf("planner-%d generation %d", i+1, r.m.Generation))
		if int64(r.m.IOSTokens) != s.counts.IOS || int64(r.m.AndroidTokens) != s.counts.Android {
			t.Errorf("planner-%d planned %d+%d tokens, the audience has %d+%d", i+1, r.m.IOSTokens, r.m.AndroidTokens, s.counts.IOS, s.counts.Android)
		}
	}
	if len(ok) == 0 {
		t.Fatal("neither planner finished")
	}
	m, err := s.cat.Manifest(s.ctx, s.id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Generation <= first || int64(m.IOSTokens) != s.counts.IOS || int64(m.AndroidTokens) != s.counts.Android {
		t.Fatalf("catalog plan: generation %d (first %d), %d+%d tokens; audience %d+%d", m.Generation, first, m.IOSTokens, m.AndroidTokens, s.counts.IOS, s.counts.Android)
	}
	s.manifest = m
	s.prepare()
	s.press()
	s.waitAllBatches()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("finished: %s; the catalog holds generation %d, exact counts; sent once", strings.Join(ok, ", "), m.Generation)
}

// kedaDecision computes what the sender-apns/sender-fcm ScaledObject
// (deploy/k8s/components/keda) would decide from the group's real lag, as
// scraped from the running sender's /metrics: KEDA's kafka scaler targets
// lagThreshold records per replica, so desired = ceil(total lag /
// lagThreshold), at least minReplicaCount, at most maxReplicaCount and the
// partition count (allowIdleConsumers false). It fails the case when the
// backlog does not call for more than current replicas: the campaign is
// sending with a backlog, so the decision must be to scale out.
func (s *stack) kedaDecision(p push.Platform, current int) string {
	t := s.t
	t.Helper()
	threshold, minR, maxR := kedaSettings(t, p)
	group := s.cfg.Sender.GroupOf(string(p))
	topic := s.cfg.Topics.SendIOS
	if p == push.Android {
		topic = s.cfg.Topics.SendAndroid
	}
	lag := -1.0
	e2e.WaitFor(t, 30*time.Second, func() error {
		v, err := scrape(s.metrics[senderName(p, 1)], "owlpost_kafka_consumergroup_lag_sum",
			map[string]string{"group": group, "topic": topic})
		if err != nil {
			return err
		}
		lag = v
		return nil
	})
	desired := int(math.Ceil(lag / float64(threshold)))
	desired = max(desired, minR)
	desired = min(desired, maxR, int(s.cfg.Topics.SendPartitions))
	if desired <= current {
		t.Errorf("KEDA would keep %d replicas at a lag of %.0f records (threshold %d): no scale-out for a campaign with a backlog", desired, lag, threshold)
	}
	return fmt.Sprintf("KEDA decision from the group's lag: ceil(%.0f records / lagThreshold %d) bounded by [%d, min(%d, %d partitions)] = %d replicas",
		lag, threshold, minR, maxR, s.cfg.Topics.SendPartitions, desired)
}

// kedaSettings reads lagThreshold, minReplicaCount and maxReplicaCount of
// the platform's ScaledObject from deploy/k8s/components/keda.
func kedaSettings(t *testing.T, p push.Platform) (threshold, minR, maxR int) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/k8s/components/keda/scaledobjects.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name := "sender-apns"
	if p == push.Android {
		name = "sender-fcm"
	}
	for _, doc := range strings.Split(string(b), "\n---") {
		var so struct {
			Metadata struct{ Name string }
			Spec     struct {
				MinReplicaCount int `json:"minReplicaCount"`
				MaxReplicaCount int `json:"maxReplicaCount"`
				Triggers        []struct {
					Type     string
					Metadata map[string]string
				}
			}
		}
		if err := yaml.Unmarshal([]byte(doc), &so); err != nil {
			t.Fatal(err)
		}
		if so.Metadata.Name != name {
			continue
		}
		for _, tr := range so.Spec.Triggers {
			if tr.Type == "kafka" {
				if threshold, err = strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil {
					t.Fatal(err)
				}
			}
		}
		return threshold, so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount
	}
	t.Fatalf("no ScaledObject %s", name)
	return
}

// scrape reads one sample of a gauge or counter from a process's /metrics.
func scrape(addr, name string, labels map[string]string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	fam, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("%s: no %s", addr, name)
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue(), nil
		}
		return m.GetGauge().GetValue(), nil
	}
	return 0, fmt.Errorf("%s: no %s%v", addr, name, labels)
}

// TestFleetPressesTwoReplicas: two control API replicas (bin/owlctl serve);
// 50 owlctl processes press GO through the API at once, 25 on each
// replica. Exactly one press fires; the 49 others are told "already fired"
// with the same fire id, whichever replica they reached.
func TestFleetPressesTwoReplicas(t *testing.T) {
	row := newRow(t, "fleet: 50 presses split between two control API replicas")
	s := newStack(t, opts{})
	s.row = row
	s.define(spec(15), campaignSpec{})
	s.prepare()
	const token = "fault-suite-control-token"
	var urls []string
	for i := 1; i <= 2; i++ {
		name, addr := fmt.Sprintf("control-%d", i), e2e.FreeAddr(t)
		s.metrics[name] = e2e.FreeAddr(t)
		s.procs[name] = e2e.Start(t, e2e.Spec{Name: name, Binary: filepath.Join(s.bin, "owlctl"), Config: s.cfgFile,
			Args: []string{"serve"}, Env: []string{e2e.Env("instance_id", name), e2e.Env("metrics.addr", s.metrics[name]),
				e2e.Env("control.addr", addr), e2e.Env("control.token", token)}})
		urls = append(urls, "http://"+addr)
		e2e.WaitFor(t, readyTimeout, func() error {
			resp, err := http.Get("http://" + addr + "/v1/openapi.json")
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			return nil
		})
	}

	const presses = 50
	res := s.pressAtOnce(presses, func(i int) []string {
		return []string{e2e.Env("control.url", urls[i%2]), e2e.Env("control.token", token)}
	}, func(int) []string { return []string{"--via-api"} }, nil)
	won, lost := [2]int{}, [2]int{}
	ids := map[string]int{}
	for i, p := range res {
		if p.fireID != "" {
			ids[p.fireID]++
		}
		switch {
		case p.code == 0:
			won[i%2]++
		case p.code == 3:
			lost[i%2]++
		default:
			t.Errorf("press %d (replica %d): exit %d: %s", i, i%2+1, p.code, p.out)
		}
	}
	if won[0]+won[1] != 1 || lost[0]+lost[1] != presses-1 || len(ids) != 1 {
		t.Fatalf("want 1 win and %d already fired naming one fire id; got wins %v, already fired %v, fire ids %v (e.g. %q)",
			presses-1, won, lost, ids, res[0].out)
	}
	s.loadFire()
	if ids[s.fire.FireID] != presses {
		t.Errorf("presses name fire ids %v, the guard's winner is %s", ids, s.fire.FireID)
	}
	s.waitAllBatches()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("replica 1: %d fired, %d already fired; replica 2: %d fired, %d already fired; all naming fire id %s",
		won[0], lost[0], won[1], lost[1], s.fire.FireID)
}

// claimsOf lists the guard's batch claim keys whose owner starts with
// prefix (an instance id and "/"): the batches that sender holds now.
func (s *stack) claimsOf(prefix string) []string {
	var keys []string
	iter := s.rdb.Scan(s.ctx, 0, s.cfg.Redis.Prefix+":claim:*", 1000).Iterator()
	for iter.Next(s.ctx) {
		if v, err := s.rdb.Get(s.ctx, iter.Val()).Result(); err == nil && strings.HasPrefix(v, prefix) {
			keys = append(keys, iter.Val())
		}
	}
	return keys
}
