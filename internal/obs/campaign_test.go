package obs

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// Audience of the test campaign: small, but several batches per platform,
// with malformed records (planner rejects), duplicates and tokens the
// simulator refuses as unregistered; the simulator also answers a few
// percent of requests with retryable errors.
const (
	nIOS, nAndroid = 1500, 1000
	simFaults      = "ServiceUnavailable=0.03"
	simFCMFaults   = "UNAVAILABLE=0.03"
)

func TestCampaignObservability(t *testing.T) {
	s := newStack(t, "--latency", "10ms", "--jitter", "20ms",
		"--apns-faults", simFaults, "--fcm-faults", simFCMFaults, "--retry-after", "100ms")
	cfg := s.cfg
	ctx := testenv.Context(t, 5*time.Minute)
	id := "obs-" + testenv.ID()

	// Audience, campaign, plan (by the planner service), prepare, proof.
	audience := cfg.Redis.Prefix + ".audience"
	t.Cleanup(func() { testenv.DeleteTopics(t, cfg, audience) })
	var truth struct {
		IOS, Android, Duplicates int64
		Bad                      map[string]int64
	}
	out := s.owlctl(t, time.Minute, "audience", "generate", "--topic", audience, "--partitions", "4",
		"--ios", fmt.Sprint(nIOS), "--android", fmt.Sprint(nAndroid), "--locales", "en-US,de-DE,pt-BR",
		"--bad-fraction", "0.02", "--invalid-fraction", "0.02", "--duplicate-fraction", "0.01", "--seed", "7", "--json")
	if err := json.Unmarshal([]byte(out), &truth); err != nil {
		t.Fatalf("audience ground truth: %v\n%s", err, out)
	}
	def, err := os.ReadFile("../../deploy/demo/campaign.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def = regexp.MustCompile(`(?m)^id: .*$`).ReplaceAll(def, []byte("id: "+id))
	def = regexp.MustCompile(`(?m)^audience_topic: .*$`).ReplaceAll(def, []byte("audience_topic: "+audience))
	defFile := filepath.Join(s.dir, "campaign.yaml")
	if err := os.WriteFile(defFile, def, 0o600); err != nil {
		t.Fatal(err)
	}
	var proofDevices struct {
		Proof []struct{ Platform string } `yaml:"proof_audience"`
	}
	if err := yaml.Unmarshal(def, &proofDevices); err != nil {
		t.Fatal(err)
	}
	proofByPlatform := map[string]float64{}
	for _, d := range proofDevices.Proof {
		proofByPlatform[d.Platform]++
	}
	s.owlctl(t, time.Minute, "campaign", "create", defFile)
	s.owlctl(t, 3*time.Minute, "plan", id, "--via-service", "--by", "obs-test")
	cl := testenv.Client(t, cfg)
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cat.Manifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.IOSTokens != uint64(truth.IOS) || m.AndroidTokens != uint64(truth.Android) {
		t.Fatalf("manifest plans %d iOS + %d Android tokens, the audience has %d + %d", m.IOSTokens, m.AndroidTokens, truth.IOS, truth.Android)
	}
	s.owlctl(t, 3*time.Minute, "prepare", id, "--wait", "--every", "250ms", "--timeout", "2m", "--by", "obs-test")
	for _, st := range s.stages[1:] { // every owlpost stage: ready after prepare
		e2e.WaitFor(t, time.Minute, func() error {
			if v := scrape(t, st.metrics).sum("owlpost_stage_ready", nil); v != 1 {
				return fmt.Errorf("%s: owlpost_stage_ready = %v after prepare", st.name, v)
			}
			return get("http://"+st.metrics+"/readyz", nil)
		})
	}
	// Prepared: what the dashboards can see before GO.
	prepared := map[string]families{}
	for _, st := range s.stages {
		prepared[st.name] = scrape(t, st.metrics)
	}
	s.owlctl(t, 2*time.Minute, "proof", id, "--by", "obs-test")
	// All proof arrivals happened before this instant, every fire arrival after.
	beforeFire := time.Now()

	// The live view, started before GO like an SRE would; its output is a
	// file, not a terminal.
	watch := e2e.Start(t, e2e.Spec{Name: "watch", Binary: filepath.Join(s.bin, "owlctl"), Config: s.cfgFile,
		Env: []string{e2e.Env("instance_id", "obs-watch")}, Args: []string{"status", id, "--watch"}})

	// GO through the control API, twice: one fire, one lost press.
	api := &control.Client{URL: cfg.Control.URL, Token: cfg.Control.Token}
	won, err := api.Fire(ctx, id, false)
	if err != nil || !won.Won {
		t.Fatalf("fire: %+v %v", won, err)
	}
	if lost, err := api.Fire(ctx, id, false); err != nil || lost.Won || lost.Fire.FireID != won.Fire.FireID {
		t.Fatalf("second press: %+v %v", lost, err)
	}

	// During the send: every stage serves its series (values move, so only
	// their presence is checked here).
	during := map[string]families{}
	for _, st := range s.stages {
		during[st.name] = scrape(t, st.metrics)
	}

	// The watch ends by itself once every planned token has an outcome.
	e2e.WaitFor(t, 3*time.Minute, func() error {
		if watch.Running() {
			return fmt.Errorf("owlctl status --watch still running; output so far:\n%s", watch.Tail(5))
		}
		return nil
	})
	if err := watch.Err(); err != nil {
		t.Fatalf("owlctl status --watch: %v\n%s", err, watch.Output())
	}
	svgFile := filepath.Join(s.dir, "report.svg")
	var rep report.Report
	out = s.owlctl(t, 2*time.Minute, "report", id, "--json", "--wait", "60s", "--svg", svgFile)
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out)
	}
	if !rep.Complete || rep.FireID != won.Fire.FireID || rep.Total.Planned != m.Tokens() {
		t.Fatalf("report: complete %v fire %s planned %d; want complete, fire %s, %d planned", rep.Complete, rep.FireID,
			rep.Total.Planned, won.Fire.FireID, m.Tokens())
	}
	var sim pushsim.Stats
	if err := get(s.admin+"/stats?campaign="+id, &sim); err != nil {
		t.Fatal(err)
	}
	var arrivals []int64
	if err := get(s.admin+"/arrivals?campaign="+id, &arrivals); err != nil {
		t.Fatal(err)
	}
	// The senders commit their offsets after the result records: wait for
	// their groups to catch up before the final scrape. Caught up is not 0:
	// the commit markers of the transactions that wrote last to a partition
	// are never consumed, and every batches-topic partition has its own
	// transactional producer in the fanout, so up to BatchesPartitions
	// markers can end a send-topic partition.
	e2e.WaitFor(t, time.Minute, func() error {
		for _, name := range []string{"sender-ios", "sender-android", "planner"} {
			f := scrape(t, s.stage(t, name).metrics)
			for _, mm := range f["owlpost_kafka_consumergroup_lag"].GetMetric() {
				if v := mm.GetGauge().GetValue(); v > float64(cfg.Topics.BatchesPartitions) {
					return fmt.Errorf("%s: lag %v on %v", name, v, mm.GetLabel())
				}
			}
		}
		return nil
	})
	after := map[string]families{}
	for _, st := range s.stages {
		after[st.name] = scrape(t, st.metrics)
	}
	t.Logf("campaign %s: manifest %d tokens in %d batches; report %+v; simulator accepted %d rejected %v",
		id, m.Tokens(), m.Batches(), rep.Total, sim.Accepted, sim.RejectedByReason)

	t.Run("metrics match the campaign", func(t *testing.T) {
		checkStageMetrics(t, s, m, &rep, sim, truth.Duplicates, proofByPlatform, prepared, during, after)
	})
	t.Run("dashboards and alerts name scraped series", func(t *testing.T) {
		checkQueries(t, prepared, during, after)
	})
	t.Run("every exported metric is documented", func(t *testing.T) { checkDocumented(t, prepared, during, after) })
	t.Run("report percentiles agree with the simulator", func(t *testing.T) {
		checkPercentiles(t, &rep, arrivals, beforeFire, after)
	})
	t.Run("report svg", func(t *testing.T) { checkSVG(t, svgFile, &rep) })
	t.Run("status watch", func(t *testing.T) { checkWatch(t, watch.Output(), id, m.Tokens()) })
}

// checkStageMetrics compares what each stage exports with the manifest, the
// report (from the results topic) and the simulator's own record.
func checkStageMetrics(t *testing.T, s *stack, m *wire.Manifest, rep *report.Report, sim pushsim.Stats,
	duplicates int64, proof map[string]float64, prepared, during, after map[string]families) {
	eq := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	lbl := func(kv ...string) map[string]string {
		out := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	ios, android := after["sender-ios"], after["sender-android"]
	var proofTotal float64
	for _, n := range proof {
		proofTotal += n
	}

	// Senders: every accepted notification, fire and proof, is the
	// simulator's; per platform too.
	acc := ios.sum("owlpost_sender_notifications_total", lbl("outcome", "accepted")) +
		android.sum("owlpost_sender_notifications_total", lbl("outcome", "accepted"))
	eq("sum(owlpost_sender_notifications_total{outcome=accepted}) (fire + proof)", acc, float64(sim.Accepted))
	eq("accepted minus the proof sends vs the report", acc-proofTotal, float64(rep.Total.Accepted))
	eq("proof sends in the report", float64(rep.ProofAccepted), proofTotal)
	for plat, f := range map[string]families{"ios": ios, "android": android} {
		p := lbl("platform", plat)
		eq(plat+" accepted vs simulator", f.sum("owlpost_sender_notifications_total", lbl("platform", plat, "outcome", "accepted")),
			float64(sim.ByPlatform[plat]))
		eq(plat+" invalid vs report", f.sum("owlpost_sender_notifications_total", lbl("platform", plat, "outcome", "invalid")),
			float64(rep.ByPlatform[plat].Invalid))
		for _, o := range []string{"failed", "expired", "aborted"} {
			eq(plat+" "+o, f.sum("owlpost_sender_notifications_total", lbl("platform", plat, "outcome", o)), 0)
		}
		// Proof sends are not timed from the fire: the fire's accepted only.
		eq(plat+" time_from_fire count vs the fire's accepted", f.sum("owlpost_sender_time_from_fire_seconds", lbl("platform", plat, "kind", "fire")),
			float64(rep.ByPlatform[plat].Accepted))
		eq(plat+` provider_responses_total{reason="ok"} vs accepted`, f.sum("owlpost_sender_provider_responses_total", lbl("reason", "ok")),
			f.sum("owlpost_sender_notifications_total", lbl("platform", plat, "outcome", "accepted")))
		// Every retryable answer of the simulator was retried once (fire and
		// proof); the report counts the fire's only.
		retryable := map[string]string{"ios": "ServiceUnavailable", "android": "UNAVAILABLE"}[plat]
		retries := f.sum("owlpost_sender_retries_total", p)
		eq(plat+" retries vs the simulator's "+retryable, retries, float64(sim.RejectedByReason[retryable]))
		if r := float64(rep.ByPlatform[plat].Retries); r > retries || r == 0 {
			t.Errorf("%s: the report counts %v retries of the fire, the sender %v in all", plat, r, retries)
		}
		// One trigger-to-first-send per fire and instance; none for the proof.
		eq(plat+" trigger_to_first_send count", f.sum("owlpost_sender_trigger_to_first_send_seconds", p), 1)
		eq(plat+" batches sent (fire + proof)", f.sum("owlpost_sender_batches_total", lbl("result", "sent")),
			float64(rep.ByPlatform[plat].Batches)+1)
		eq(plat+" inflight after the send", f.sum("owlpost_sender_inflight_requests", p), 0)
		eq(plat+" fatal", f.sum("owlpost_sender_fatal", p), 0)
		if f.sum("owlpost_sender_provider_batch_seconds", p) == 0 {
			t.Errorf("%s: no owlpost_sender_provider_batch_seconds observations", plat)
		}
		if f.sum("owlpost_guard_redis_seconds", lbl("op", "claim")) == 0 || f.sum("owlpost_guard_redis_seconds", lbl("op", "done")) == 0 {
			t.Errorf("%s: owlpost_guard_redis_seconds has no claim/done observations", plat)
		}
	}
	// Provider answers by reason: the senders saw exactly what the
	// simulator answered (it counts every rejection by reason).
	for reason, n := range sim.RejectedByReason {
		got := ios.sum("owlpost_sender_provider_responses_total", lbl("reason", reason)) +
			android.sum("owlpost_sender_provider_responses_total", lbl("reason", reason))
		eq(`owlpost_sender_provider_responses_total{reason="`+reason+`"}`, got, float64(n))
	}
	if len(sim.RejectedByReason) == 0 {
		t.Error("the simulator rejected nothing: the fault and invalid-token paths were not exercised")
	}
	pushsimAcc := after["pushsim"].sum("owlpost_pushsim_accepted_total", nil)
	eq("owlpost_pushsim_accepted_total (all campaigns)", pushsimAcc, float64(sim.Accepted))

	// Planner: the manifest's counts.
	pl := after["planner"]
	eq("planner tokens planned ios", pl.sum("owlpost_planner_tokens_planned_total", lbl("platform", "ios")), float64(m.IOSTokens))
	eq("planner tokens planned android", pl.sum("owlpost_planner_tokens_planned_total", lbl("platform", "android")), float64(m.AndroidTokens))
	eq("planner batches written", pl.sum("owlpost_planner_batches_written_total", nil), float64(m.Batches()))
	eq(`planner records{outcome="planned"}`, pl.sum("owlpost_planner_records_total", lbl("outcome", "planned")), float64(m.Tokens()))
	eq(`planner records{outcome="duplicate"}`, pl.sum("owlpost_planner_records_total", lbl("outcome", "duplicate")), float64(m.DuplicateTokens))
	eq("planner duplicates vs the audience generator", float64(m.DuplicateTokens), float64(duplicates))
	var rejected int64
	for reason, n := range m.Rejected {
		rejected += n
		eq(`planner rejects{reason="`+reason+`"}`, pl.sum("owlpost_planner_rejects_total", lbl("reason", reason)), float64(n))
	}
	eq(`planner records{outcome="rejected"}`, pl.sum("owlpost_planner_records_total", lbl("outcome", "rejected")), float64(rejected))
	eq(`planner plans{result="ok"}`, pl.sum("owlpost_planner_plans_total", lbl("result", "ok")), 1)
	eq("planner plan_duration count", pl.sum("owlpost_planner_plan_duration_seconds", nil), 1)

	// Fanout: released == planned, summed over both instances; the proof
	// went out once.
	var relTok, relBatch, relProof, held, heldBefore, heldBatches, trig float64
	for _, name := range []string{"fanout-1", "fanout-2"} {
		heldBefore += prepared[name].sum("owlpost_fanout_tokens_held", lbl("campaign", rep.Campaign))
		heldBatches += prepared[name].sum("owlpost_fanout_batches_held", lbl("campaign", rep.Campaign))
		f := after[name]
		relTok += f.sum("owlpost_fanout_tokens_released_total", lbl("kind", "fire"))
		relBatch += f.sum("owlpost_fanout_batches_released_total", lbl("kind", "fire"))
		relProof += f.sum("owlpost_fanout_tokens_released_total", lbl("kind", "proof"))
		held += f.sum("owlpost_fanout_tokens_held", lbl("campaign", rep.Campaign))
		trig += f.sum("owlpost_fanout_trigger_seconds", nil)
		eq(name+" manifest mismatches", f.sum("owlpost_fanout_manifest_mismatch_total", nil), 0)
	}
	eq("fanout tokens held after prepare", heldBefore, float64(m.Tokens()))
	eq("fanout batches held after prepare", heldBatches, float64(m.Batches()))
	eq("fanout tokens released (fire)", relTok, float64(m.Tokens()))
	eq("fanout batches released (fire)", relBatch, float64(m.Batches()))
	eq("fanout tokens released (proof)", relProof, proofTotal)
	eq("fanout tokens still held after the release", held, 0)
	if trig < 1 || trig > 2 {
		t.Errorf("fanout trigger_seconds observations = %v, want 1 or 2 (one per instance that released)", trig)
	}

	// Control API: one fire won, one lost press.
	c := after["control"]
	eq(`control presses{result="won"}`, c.sum("owlpost_control_fire_presses_total", lbl("result", "won")), 1)
	eq(`control presses{result="lost"}`, c.sum("owlpost_control_fire_presses_total", lbl("result", "lost")), 1)
	eq("control fire requests", c.sum("owlpost_control_requests_total", lbl("route", "POST /v1/campaigns/{id}/fire")), 2)

	// Lag per partition for each consumer group that commits, under the
	// documented labels; kprom client metrics for every client.
	for name, want := range map[string]struct{ group, topic string }{
		"sender-ios":     {s.cfg.Sender.Group + "-ios", s.cfg.Topics.SendIOS},
		"sender-android": {s.cfg.Sender.Group + "-android", s.cfg.Topics.SendAndroid},
		"planner":        {s.cfg.Topics.Control + ".planner", s.cfg.Topics.Control},
	} {
		f := after[name]
		var parts []string
		for _, mm := range f["owlpost_kafka_consumergroup_lag"].GetMetric() {
			if match(mm, lbl("group", want.group, "topic", want.topic)) {
				parts = append(parts, labelOf(mm, "partition"))
			}
		}
		wantParts := s.cfg.Topics.SendPartitions
		if name == "planner" {
			wantParts = 1
		}
		if len(parts) < int(wantParts) {
			t.Errorf("%s: owlpost_kafka_consumergroup_lag{group=%q,topic=%q} on partitions %v, want every one of %d",
				name, want.group, want.topic, parts, wantParts)
		}
		if f["owlpost_kafka_consumergroup_lag_sum"] == nil {
			t.Errorf("%s: no owlpost_kafka_consumergroup_lag_sum", name)
		}
	}
	for name, clients := range map[string][]string{
		"sender-ios": {"sender-ios"}, "sender-android": {"sender-android"}, "control": {"control"},
		// planner-txn and planner-audience live only while a plan runs: kprom
		// unregisters a client's collectors when the client closes.
		"planner":  {"planner", "planner-control"},
		"fanout-1": {"fanout-group", "fanout-control"}, "fanout-2": {"fanout-group", "fanout-control"},
	} {
		got := after[name].label("owlpost_kafka_connects_total", "client")
		for _, c := range clients {
			if !slices.Contains(got, c) {
				t.Errorf("%s: no kprom owlpost_kafka_connects_total{client=%q} (have %v)", name, c, got)
			}
		}
		if after[name].sum("owlpost_kafka_read_bytes_total", nil) == 0 {
			t.Errorf("%s: owlpost_kafka_read_bytes_total is 0", name)
		}
	}
	// Every stage still ready; the series seen during the send are all
	// still there after it (but the fanout's held gauges, dropped per
	// campaign once released).
	for _, st := range s.stages[1:] {
		eq(st.name+" owlpost_stage_ready", after[st.name].sum("owlpost_stage_ready", nil), 1)
	}
	for name, f := range during {
		for n := range f {
			if after[name][n] == nil && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "owlpost_fanout_") {
				t.Errorf("%s: %s was exported during the send but not after", name, n)
			}
		}
	}
}

func labelOf(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// checkQueries extracts the series names of every dashboard panel query and
// alert expression and checks each was scraped from some stage.
func checkQueries(t *testing.T, scrapes ...map[string]families) {
	have := map[string]bool{"up": true} // made by Prometheus for every target
	for _, sc := range scrapes {
		for _, f := range sc {
			for _, n := range f.series() {
				have[n] = true
			}
		}
	}
	dashboards, _ := filepath.Glob("../../deploy/grafana/dashboards/*.json")
	if len(dashboards) == 0 {
		t.Fatal("no dashboards under deploy/grafana/dashboards")
	}
	type query struct{ where, expr string }
	var queries []query
	for _, file := range dashboards {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%s: invalid JSON: %v", file, err)
			continue
		}
		n := 0
		walkExprs(d, filepath.Base(file), func(where, expr string) {
			n++
			queries = append(queries, query{where, expr})
		})
		if n == 0 {
			t.Errorf("%s: no queries", file)
		}
	}
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Record, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries = append(queries, query{"alerts.yml " + r.Alert + r.Record, r.Expr})
			if r.Record != "" {
				have[r.Record] = true
			}
		}
	}
	for _, q := range queries {
		names := metricNames(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: no series in %q", q.where, q.expr)
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s: %s is not exported by any stage (query %q)", q.where, n, strings.Join(strings.Fields(q.expr), " "))
			}
		}
	}
	t.Logf("%d queries checked against %d scraped series names", len(queries), len(have))
}

// walkExprs calls fn for every "expr" string of the dashboard JSON (panel
// targets, nested rows) and every templating "query" string.
func walkExprs(v any, where string, fn func(where, expr string)) {
	switch x := v.(type) {
	case map[string]any:
		if title, ok := x["title"].(string); ok {
			where += " / " + title
		}
		for k, val := range x {
			if s, ok := val.(string); ok && k == "expr" && strings.TrimSpace(s) != "" {
				fn(where, s)
			}
			walkExprs(val, where, fn)
		}
	case []any:
		for _, e := range x {
			walkExprs(e, where, fn)
		}
	}
}

// checkPercentiles computes the time-from-fire percentiles from the
// simulator's arrival record (stamped on the simulator side, measured from
// the report's fire time) and compares them with the report's (stamped by
// the sender when the provider answered).
func checkPercentiles(t *testing.T, rep *report.Report, arrivals []int64, beforeFire time.Time, after map[string]families) {
	fired := rep.FiredAt.UnixNano()
	var simMS []uint32
	var proofs int
	for _, ns := range arrivals {
		switch {
		case ns < beforeFire.UnixNano():
			proofs++
		case ns < fired:
			t.Fatalf("an arrival at %s, before the fire at %s but after the proof", time.Unix(0, ns), rep.FiredAt)
		default:
			simMS = append(simMS, uint32((ns-fired)/int64(time.Millisecond)))
		}
	}
	sort.Slice(simMS, func(i, j int) bool { return simMS[i] < simMS[j] })
	if uint64(len(simMS)) != rep.Total.Accepted || uint64(proofs) != rep.ProofAccepted {
		t.Fatalf("simulator arrivals: %d after the fire and %d proofs; report: %d accepted, %d proofs",
			len(simMS), proofs, rep.Total.Accepted, rep.ProofAccepted)
	}
	// The buckets of the sender's histogram, as served.
	var bounds []float64
	for _, mm := range after["sender-ios"]["owlpost_sender_time_from_fire_seconds"].GetMetric() {
		for _, b := range mm.GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound()*1000)
		}
		break
	}
	if len(bounds) < 10 {
		t.Fatalf("time_from_fire histogram has %d buckets", len(bounds))
	}
	bucket := func(ms uint32) int {
		return sort.SearchFloat64s(bounds, float64(ms)) // index of the first bound >= ms
	}
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", .5}, {"p90", .9}, {"p95", .95}, {"p99", .99}, {"max", 1}} {
		got := rep.Latency.Percentiles[q.name]
		want := report.Percentile(simMS, q.q)
		t.Logf("%s: report %d ms, simulator %d ms (buckets %d and %d)", q.name, got, want, bucket(got), bucket(want))
		if d := bucket(got) - bucket(want); d < -1 || d > 1 {
			t.Errorf("%s: report %d ms and simulator %d ms are more than one histogram bucket apart", q.name, got, want)
		}
		// A notification arrives before the sender sees its answer, and the
		// send tasks carry the fire time in whole milliseconds (rounded
		// down): the simulator's figure can never be the later one.
		if want > got {
			t.Errorf("%s: the simulator's %d ms is later than the report's %d ms", q.name, want, got)
		}
	}
}

// checkSVG parses the report picture as XML and finds the p95 and p99 marks.
func checkSVG(t *testing.T, file string, rep *report.Report) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var root string
	var texts []string
	var dashed, polylines int
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", file, err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = e.Name.Space + " " + e.Name.Local
			}
			inText = e.Name.Local == "text"
			if e.Name.Local == "polyline" {
				polylines++
			}
			for _, a := range e.Attr {
				if e.Name.Local == "line" && a.Name.Local == "stroke-dasharray" {
					dashed++
				}
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "http://www.w3.org/2000/svg svg" {
		t.Errorf("root element %q, want svg in the SVG namespace", root)
	}
	if polylines != 1 || dashed < 2 {
		t.Errorf("want one curve and dashed marks, got %d polylines and %d dashed lines", polylines, dashed)
	}
	for _, mark := range []struct {
		name string
		ms   uint32
	}{{"p95", rep.Latency.Percentiles["p95"]}, {"p99", rep.Latency.Percentiles["p99"]}} {
		label := mark.name + " " + msLabel(mark.ms)
		if !slices.Contains(texts, label) {
			t.Errorf("no %q mark in the SVG; texts: %q", label, texts)
		}
	}
}

// msLabel is how the report labels a mark.
func msLabel(v uint32) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", float64(v)/1000)
	}
	return fmt.Sprintf("%d ms", v)
}

// checkWatch reads what `owlctl status --watch` printed into a file: plain
// lines (no terminal control sequences), progress lines once a second, and
// a last line saying every planned token has an outcome.
func checkWatch(t *testing.T, output, id string, planned uint64) {
	if strings.Contains(output, "\033") {
		t.Errorf("terminal escape sequences in non-TTY output:\n%q", output)
	}
	progress := regexp.MustCompile(`^\d\d:\d\d:\d\d ` + regexp.QuoteMeta(id) + `: (\d+)/` + fmt.Sprint(planned) +
		` accepted \([0-9.]+%\) \d+/s p95 \d+(\.\d+)?m?s invalid \d+ expired \d+ aborted \d+ lag \d+$`)
	waiting := regexp.MustCompile(`^\d\d:\d\d:\d\d ` + regexp.QuoteMeta(id) + `: not fired yet \(state \w+\)$`)
	var lines, progressLines []string
	for _, l := range strings.Split(output, "\n") {
		if l == "" || strings.HasPrefix(l, "=== e2e:") || strings.Contains(l, "level=") {
			continue // harness markers and log lines on stderr
		}
		lines = append(lines, l)
		switch {
		case progress.MatchString(l):
			progressLines = append(progressLines, l)
		case waiting.MatchString(l):
		case strings.HasPrefix(l, "all "):
		default:
			t.Errorf("unexpected watch line %q", l)
		}
	}
	if len(progressLines) == 0 {
		t.Fatalf("no progress lines in:\n%s", output)
	}
	last := fmt.Sprintf("all %d planned tokens have an outcome; `owlctl report %s` for the final account", planned, id)
	if len(lines) == 0 || lines[len(lines)-1] != last {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], last)
	}
	t.Logf("watch printed %d progress lines; last: %s", len(progressLines), progressLines[len(progressLines)-1])
}

// checkDocumented compares the scraped owlpost_* families with the list in
// internal/metrics/doc.go, both ways (kprom's owlpost_kafka_* client
// metrics are documented as a family).
func checkDocumented(t *testing.T, scrapes ...map[string]families) {
	b, err := os.ReadFile("../metrics/doc.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, n := range regexp.MustCompile(`owlpost_[a-z0-9_]*[a-z0-9](_\*)?`).FindAllString(string(b), -1) {
		if !strings.HasSuffix(n, "_*") { // a family: owlpost_kafka_*
			documented[n] = true
		}
	}
	kprom := func(n string) bool {
		return strings.HasPrefix(n, "owlpost_kafka_") && !strings.HasPrefix(n, "owlpost_kafka_consumergroup_") &&
			n != "owlpost_kafka_lag_errors_total"
	}
	scraped := map[string]bool{}
	for _, sc := range scrapes {
		for _, f := range sc {
			for n := range f {
				if strings.HasPrefix(n, "owlpost_") {
					scraped[n] = true
				}
			}
		}
	}
	for n := range scraped {
		if !documented[n] && !kprom(n) {
			t.Errorf("%s is exported but not listed in internal/metrics/doc.go", n)
		}
	}
	for n := range documented {
		if !scraped[n] && !kprom(n) {
			t.Errorf("internal/metrics/doc.go lists %s, which no stage exported during the campaign", n)
		}
	}
}
