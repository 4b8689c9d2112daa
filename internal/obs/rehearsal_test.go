package obs

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/testenv"
)

// TestRehearseThenLaunch: owlctl rehearse sends the launch's planned
// audience a silent push through the real path and judges it against the
// launch's goal; the launch's guard and audit trail stay as they were; the
// launch then sends the same tokens its alert, each exactly once.
func TestRehearseThenLaunch(t *testing.T) {
	s := newStack(t, "--latency", "5ms", "--jitter", "10ms")
	cfg := s.cfg
	id := "launch-" + testenv.ID()
	audience := cfg.Redis.Prefix + ".audience"
	t.Cleanup(func() { testenv.DeleteTopics(t, cfg, audience) })
	s.owlctl(t, time.Minute, "audience", "generate", "--topic", audience, "--partitions", "3",
		"--ios", "600", "--android", "400", "--locales", "en-US,de-DE", "--bad-fraction", "0",
		"--invalid-fraction", "0", "--duplicate-fraction", "0", "--seed", "11", "--json")
	def, err := os.ReadFile("../../deploy/demo/campaign.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def = regexp.MustCompile(`(?m)^id: .*$`).ReplaceAll(def, []byte("id: "+id))
	def = regexp.MustCompile(`(?m)^audience_topic: .*$`).ReplaceAll(def, []byte("audience_topic: "+audience))
	def = append(def, "goal: {p95: 4s, p99: 6s}\n"...)
	defFile := filepath.Join(s.dir, "launch.yaml")
	if err := os.WriteFile(defFile, def, 0o600); err != nil {
		t.Fatal(err)
	}
	s.owlctl(t, time.Minute, "campaign", "create", defFile)
	s.owlctl(t, 3*time.Minute, "plan", id, "--by", "rehearsal-test")
	const planned, proofDevices = 1000, 3

	launchStatus := func() control.CampaignStatus {
		var st control.CampaignStatus
		if err := json.Unmarshal([]byte(s.owlctl(t, time.Minute, "status", id, "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := launchStatus()
	if before.Fire != nil {
		t.Fatalf("the launch has fired before anything was pressed: %+v", before.Fire)
	}

	// The dress rehearsal, the whole path, confirmed by --yes.
	out := s.owlctl(t, 8*time.Minute, "rehearse", id, "--yes", "--json", "--every", "250ms", "--by", "rehearsal-test")
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("rehearse --json: %v\n%s", err, out)
	}
	rid := id + ".rehearsal-1"
	if rep.Campaign != rid || !rep.Complete || rep.Total.Accepted != planned || rep.Total.Planned != planned {
		t.Fatalf("rehearsal report: campaign %s complete %v accepted %d of %d planned", rep.Campaign, rep.Complete, rep.Total.Accepted, rep.Total.Planned)
	}
	v := rep.Verdict
	if v == nil || v.Rehearsal == nil || v.Rehearsal.Of != id || v.Rehearsal.LaunchTokens != planned {
		t.Fatalf("rehearsal verdict %+v", v)
	}
	// Judged against the launch's goal: a state (which one depends on this
	// machine's speed, so either), every platform against p95 and p99.
	if v.State != report.OnTrack && v.State != report.NotOnTrack {
		t.Errorf("verdict %q: %s", v.State, v.Why)
	}
	var checked []string
	for _, c := range v.Checks {
		checked = append(checked, c.Platform+"/"+c.Target)
	}
	slices.Sort(checked)
	if want := []string{"android/p95", "android/p99", "ios/p95", "ios/p99"}; !slices.Equal(checked, want) || v.Slowest == "" ||
		v.Stages.BatchesMeasured != int(rep.Total.Batches) {
		t.Errorf("checks %v (want %v), slowest %q, stages %+v", checked, want, v.Slowest, v.Stages)
	}

	// The simulator saw silent pushes only, each token once (the audience
	// and the proof devices).
	sim := simStats(t, s, rid)
	if sim.Accepted != planned+proofDevices || sim.DistinctTokens != planned+proofDevices || sim.DuplicateDeliveries != 0 {
		t.Errorf("rehearsal at the simulator: %+v", sim)
	}
	if keys := slices.Sorted(maps.Keys(sim.ByKind)); !slices.Equal(keys, []string{"android/data/normal", "ios/background/5"}) {
		t.Errorf("rehearsal kinds %v, want silent pushes only", sim.ByKind)
	}
	if st := simStats(t, s, id); st.Accepted != 0 {
		t.Errorf("the launch's record has %d notifications before the launch", st.Accepted)
	}

	// The launch is untouched: not fired, and its audit trail as it was.
	after := launchStatus()
	if after.Fire != nil || after.State != before.State || len(after.Audit) != len(before.Audit) {
		t.Fatalf("the rehearsal touched the launch: state %q -> %q, fire %+v, audit %d -> %d lines",
			before.State, after.State, after.Fire, len(before.Audit), len(after.Audit))
	}
	// owlctl report shows the verdict for the rehearsal campaign.
	text := s.owlctl(t, 2*time.Minute, "report", rid)
	t.Logf("owlctl report %s:\n%s", rid, text)
	for _, want := range []string{"VERDICT: " + strings.ToUpper(v.State), "goal  p95 4s  p99 6s", "dress rehearsal of " + id, "slowest:"} {
		if !strings.Contains(text, want) {
			t.Errorf("owlctl report %s lacks %q:\n%s", rid, want, text)
		}
	}

	// GO for real.
	s.owlctl(t, 3*time.Minute, "prepare", id, "--wait", "--every", "250ms", "--timeout", "2m", "--by", "rehearsal-test")
	s.owlctl(t, time.Minute, "fire", id, "--yes", "--by", "rehearsal-test")
	var lrep report.Report
	if err := json.Unmarshal([]byte(s.owlctl(t, 5*time.Minute, "report", id, "--wait", "4m", "--json")), &lrep); err != nil {
		t.Fatal(err)
	}
	if !lrep.Complete || lrep.Total.Accepted != planned || lrep.Verdict == nil || lrep.Verdict.Rehearsal != nil {
		t.Fatalf("launch report: complete %v accepted %d, verdict %+v", lrep.Complete, lrep.Total.Accepted, lrep.Verdict)
	}
	launch := simStats(t, s, id)
	if launch.Accepted != planned || launch.DistinctTokens != planned || launch.DuplicateDeliveries != 0 {
		t.Errorf("launch at the simulator: %+v", launch)
	}
	if keys := slices.Sorted(maps.Keys(launch.ByKind)); !slices.Equal(keys, []string{"android/notification/high", "ios/alert/10"}) {
		t.Errorf("launch kinds %v, want alerts only", launch.ByKind)
	}
	if st := launchStatus(); st.Fire == nil {
		t.Errorf("the launch is not fired after GO: state %s", st.State)
	}
	if again := simStats(t, s, rid); again.Accepted != sim.Accepted {
		t.Errorf("the launch changed the rehearsal's record: %d -> %d", sim.Accepted, again.Accepted)
	}
}

func simStats(t *testing.T, s *stack, campaign string) pushsim.Stats {
	t.Helper()
	var st pushsim.Stats
	if err := get(fmt.Sprintf("%s/stats?campaign=%s", s.admin, campaign), &st); err != nil {
		t.Fatal(err)
	}
	return st
}
