//go:build fault

package fault_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/fault"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
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
	row.Note = fmt.Sprintf("scaled in at %d/%d iOS accepted; largest stall %.2f s; %s",
		atDown.ByPlatform["ios"], ios, worst.Seconds(), groupSettings())
	if atDown.ByPlatform["ios"] >= ios {
		t.Errorf("the scale-in came after the iOS send (%d of %d)", atDown.ByPlatform["ios"], ios)
	}
	for _, name := range []string{senderName(push.IOS, 3), senderName(push.IOS, 4)} {
		if out := s.procs[name].Output(); !strings.Contains(out, "exited: <nil>") {
			t.Errorf("%s did not exit cleanly on SIGTERM:\n%s", name, s.procs[name].Tail(10))
		}
	}
}
