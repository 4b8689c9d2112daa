package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/testenv/stages"
)

// chromiumPath finds Debian's chromium, which scripts/testtools.sh installs.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("OWLPOST_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): run scripts/testtools.sh (make test does), or apt-get install chromium chromium-driver", err)
	}
	return p
}

// tab is one person's browser: a headless Chromium of its own (its own
// profile, so its own cookies) showing one page.
type tab struct {
	t    testing.TB
	who  string
	base string
	ctx  context.Context

	mu       sync.Mutex
	problems []string // JavaScript exceptions and Content-Security-Policy violations
}

// chrome starts a headless Chromium for who with a fresh profile; it is
// stopped at cleanup. Every JavaScript exception and every message of the
// browser's security log (a Content-Security-Policy violation) fails the
// test then.
func chrome(t testing.TB, base, who string) *tab {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1024))
	ctx, cancel := chromedp.NewContext(actx)
	b := &tab{t: t, who: who, base: base, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("%s's browser: %s", who, p)
		}
	})
	if err := chromedp.Listen(ctx, func(ev any) {
		var p string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p = "JavaScript exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				p += " " + e.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Source == cdplog.EntrySourceSecurity || e.Entry.Source == cdplog.EntrySourceJavascript {
				p = fmt.Sprintf("%s log: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL)
			}
		}
		if p != "" {
			b.mu.Lock()
			b.problems = append(b.problems, p)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium for %s: %v", who, err)
	}
	return b
}

// stepTimeout bounds one browser step; waits for the stack have their own.
const stepTimeout = time.Minute

// do runs the steps, failing the test with what and the page's text.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v\npage: %s", b.who, what, err, b.text())
	}
}

// text is the visible text of the page, for failure messages.
func (b *tab) text() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.who, expr, err)
	}
	return v
}

// until waits (up to d, a bound for a stuck stack, not a timing
// requirement) for a JavaScript condition on the page. It asks again while
// the page is being replaced (a form's answer loading).
func (b *tab) until(what string, d time.Duration, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		var ok bool
		ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if b.ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s: waiting for %s (%v)\npage: %s", b.who, what, err, b.text())
}

// shot saves a PNG of the page (sel "") or of one element into
// $OWLPOST_SCREENSHOTS/name.png when that is set (make screenshots).
func (b *tab) shot(name, sel string) {
	b.t.Helper()
	dir := os.Getenv("OWLPOST_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	var png []byte
	var err error
	if sel == "" {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	} else {
		png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	}
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
}

func (b *tab) login(token string) {
	b.t.Helper()
	b.do("open the login page", chromedp.Navigate(b.base+"/console/login"), chromedp.WaitVisible(chromedp.ID("token")))
	b.shot("login", "")
	b.do("log in", chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")), chromedp.WaitVisible(chromedp.ID("campaigns")))
}

func (b *tab) open(id string) {
	b.t.Helper()
	b.do("open "+id, chromedp.Navigate(b.base+"/console/c/"+id), chromedp.WaitVisible(chromedp.ID("gates")))
	b.until("the first status event", time.Minute, `document.querySelectorAll("#gates li").length > 0`)
}

// flash waits for the page an action answered with and returns its message.
func (b *tab) flash(what string, want string) string {
	b.t.Helper()
	b.until(what, time.Minute, fmt.Sprintf(`(document.getElementById("flash")?.textContent || "").includes(%q) ||
		!!document.getElementById("error")`, want))
	if e := eval[string](b, `document.getElementById("error")?.textContent || ""`); e != "" {
		b.t.Fatalf("%s: %s: the console answered %q", b.who, what, e)
	}
	return eval[string](b, `document.getElementById("flash").textContent`)
}

// post sends a form from the page with fetch (credentials as the browser
// holds them, or none) and returns the HTTP status.
func (b *tab) post(path string, form map[string]string, credentials bool) int {
	b.t.Helper()
	creds := "same-origin"
	if !credentials {
		creds = "omit"
	}
	var fields []string
	for k, v := range form {
		fields = append(fields, fmt.Sprintf("[%q, %q]", k, v))
	}
	return eval[int](b, fmt.Sprintf(`fetch(%q, {method: "POST", credentials: %q, redirect: "manual",
		body: new URLSearchParams([%s])}).then(r => r.status)`, path, creds, strings.Join(fields, ", ")))
}

// allGreen is true when the readiness checklist is shown and every gate is green.
const allGreen = `document.querySelectorAll("#gates li").length > 0 && document.querySelectorAll("#gates li.bad").length === 0`

// browserEnv is a real stack in-process (planner, fanout, senders, the push
// simulator, Kafka, Redis) with the control API and the console served.
type browserEnv struct {
	base   string
	svc    *control.Service
	g      *guard.Guard
	sim    *pushsim.Server
	tokens map[string]string
	ctx    context.Context
}

// TestBrowser drives the console in headless Chromium against the real
// stack: a launcher takes a campaign from planned to its report, a viewer
// never gets an enabled GO and is refused by the server, two launchers press
// at once and exactly one fires, and requests with a bad CSRF token or no
// credentials are refused.
func TestBrowser(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, 10*time.Minute)
	cl := testenv.Client(t, cfg)
	sim := testenv.PushSim(t, cfg, nil)
	cfg.APNs.Connections, cfg.FCM.Clients = 1, 1
	g := guard.New(testenv.Redis(t, cfg), cfg.Redis.Prefix, nil)
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	def := example(t)
	def.AudienceTopic = cfg.Topics.Campaigns + ".audience"
	race := *def
	race.ID = def.ID + "-race"
	const nIOS, nAndroid = 60, 40
	stages.Audience(t, ctx, cfg, cl, def.AudienceTopic, nIOS, nAndroid)
	for _, d := range []*campaign.Campaign{def, &race} {
		if err := cat.PutCampaign(ctx, d); err != nil {
			t.Fatal(err)
		}
		stages.Plan(t, ctx, cfg, d.ID, "dana")
	}
	stages.Start(t, cfg, g)
	ts, svc, tokens := serve(t, cfg, cl, g, [][2]string{{"alice", "launcher"}, {"bob", "launcher"}, {"oscar", "operator"}, {"vera", "viewer"}})
	e := &browserEnv{base: ts.URL, svc: svc, g: g, sim: sim, tokens: tokens, ctx: ctx}

	// (a) alice, a launcher, from planned to the report.
	alice := chrome(t, e.base, "alice")
	alice.login(tokens["alice"])
	alice.open(def.ID)
	if eval[int](alice, `document.querySelectorAll("#gates li.bad").length`) == 0 {
		t.Fatalf("before prepare every gate is green:\n%s", alice.text())
	}
	alice.do("type the id before prepare", chromedp.SendKeys(chromedp.ID("confirm"), def.ID))
	if !eval[bool](alice, `document.getElementById("go").disabled`) {
		t.Fatal("GO is enabled while gates are red")
	}
	alice.do("prepare", chromedp.Click(chromedp.ID("prepare")))
	alice.flash("the prepare", "prepare requested by alice")
	alice.until("every gate green", 2*time.Minute, allGreen)

	// (b) vera, a viewer, sees the same green gates and never an enabled GO.
	t.Run("viewer", func(t *testing.T) { e.viewer(t, def.ID) })

	alice.do("send the proof", chromedp.Click(chromedp.ID("proof")))
	alice.flash("the proof", "sent by alice")
	// The proof's outcomes arrive within seconds; reload the page until every device has one.
	proofDone := fmt.Sprintf(`document.querySelectorAll("#proof-devices tbody td.outcome-accepted").length === %d`, len(def.ProofAudience))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		alice.open(def.ID)
		if eval[bool](alice, proofDone) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the proof's outcomes never all arrived:\n%s", alice.text())
		}
		time.Sleep(time.Second)
	}
	if got := sim.Stats(def.ID).Accepted; got != int64(len(def.ProofAudience)) {
		t.Fatalf("the proof sent %d notifications, want %d", got, len(def.ProofAudience))
	}
	alice.until("every gate green", 2*time.Minute, allGreen)
	alice.shot("campaign", "")
	alice.do("type the id", chromedp.SendKeys(chromedp.ID("confirm"), def.ID))
	alice.until("GO enabled", time.Minute, `!document.getElementById("go").disabled`)
	alice.do("press GO", chromedp.Click(chromedp.ID("go")))
	if msg := alice.flash("the fire", "fired at"); !strings.Contains(msg, "by alice") || strings.Contains(msg, "already") {
		t.Fatalf("alice's press: %q", msg)
	}
	total := nIOS + nAndroid
	alice.until("COMPLETE with every token accepted", 3*time.Minute, fmt.Sprintf(`document.getElementById("state").textContent === "done" &&
		document.getElementById("p-accepted").textContent === "%d"`, total))
	// The live figures: per platform, the rate, the percentiles, the lag per stage, the chart.
	for plat, n := range map[string]int{"ios": nIOS, "android": nAndroid} {
		if got := eval[string](alice, fmt.Sprintf(`document.querySelector("#row-%s .accepted").textContent`, plat)); got != fmt.Sprint(n) {
			t.Fatalf("%s row shows %s accepted, want %d:\n%s", plat, got, n, alice.text())
		}
	}
	alice.until("the figures and the chart", time.Minute, `/^\d+$/.test(document.getElementById("rate").textContent) &&
		document.getElementById("latency").textContent.includes("p95") &&
		document.querySelectorAll("#lag li").length === 3 &&
		!document.getElementById("complete").hidden &&
		document.getElementById("chart").complete && document.getElementById("chart").naturalWidth > 0`)
	alice.shot("progress", "section.launch")
	// The report: what owlctl report prints, the curve, the JSON.
	alice.do("open the report", chromedp.Click(chromedp.ID("report-link")), chromedp.WaitVisible(chromedp.ID("report-text")))
	alice.until("the report's curve", time.Minute, `document.getElementById("report-chart").complete && document.getElementById("report-chart").naturalWidth > 0`)
	alice.shot("report", "")
	if txt := eval[string](alice, `document.getElementById("report-text").textContent`); !strings.Contains(txt, "COMPLETE") ||
		!strings.Contains(txt, "time from fire to accepted") || !strings.Contains(txt, "fired") {
		t.Fatalf("report page:\n%s", txt)
	}
	if n := eval[int](alice, `fetch(document.getElementById("report-json").href).then(r => r.json()).then(j => j.total.accepted)`); n != total {
		t.Fatalf("report JSON: %d accepted, want %d", n, total)
	}
	if st := sim.Stats(def.ID); st.DistinctTokens != int64(total)+int64(len(def.ProofAudience)) || st.DuplicateDeliveries != 0 {
		t.Fatalf("simulator: %d distinct tokens, %d duplicates; want %d proof + %d campaign tokens once each",
			st.DistinctTokens, st.DuplicateDeliveries, len(def.ProofAudience), total)
	}

	// (c) an operator's Rehearse on the other (planned) campaign defines
	// and plans its rehearsal; a viewer has no form and is refused.
	t.Run("rehearse", func(t *testing.T) { e.rehearse(t, race.ID) })
	// (d) alice and bob press GO on the other campaign at the same time.
	t.Run("two presses", func(t *testing.T) { e.race(t, race.ID) })
	// (e) a bad CSRF token and no credentials are refused.
	t.Run("refused", func(t *testing.T) { e.refused(t, race.ID) })
}

// viewer: vera's GO is never enabled, and the console and the API both
// refuse her press.
func (e *browserEnv) viewer(t *testing.T, id string) {
	vera := chrome(t, e.base, "vera")
	vera.login(e.tokens["vera"])
	vera.open(id)
	// Record any moment GO is enabled, from now on.
	eval[bool](vera, `(() => { const go = document.getElementById("go"); window.goEverEnabled = !go.disabled;
		new MutationObserver(() => { if (!go.disabled) window.goEverEnabled = true; })
			.observe(go, {attributes: true}); return true; })()`)
	vera.until("every gate green", 2*time.Minute, allGreen)
	if !eval[bool](vera, `document.getElementById("confirm").disabled`) || !strings.Contains(vera.text(), "may not fire") {
		t.Fatalf("a viewer can type the confirmation, or is not told why not:\n%s", vera.text())
	}
	csrf := eval[string](vera, `document.querySelector("#fire-form input[name=csrf]").value`)
	if code := vera.post("/console/c/"+id+"/fire", map[string]string{"csrf": csrf, "confirm": id}, true); code != http.StatusForbidden {
		t.Fatalf("the console answered the viewer's press with %d, want 403", code)
	}
	req, _ := http.NewRequestWithContext(e.ctx, "POST", e.base+"/v1/campaigns/"+id+"/fire", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+e.tokens["vera"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the API answered the viewer's press with %d, want 403", resp.StatusCode)
	}
	if eval[bool](vera, `window.goEverEnabled`) {
		t.Fatal("the viewer's GO was enabled at some point")
	}
	if _, fired, err := e.g.FireOf(e.ctx, id); err != nil || fired {
		t.Fatalf("after the viewer's presses: fired=%v (%v)", fired, err)
	}
}

// rehearse: oscar, an operator, presses Rehearse on the planned launch id
// and lands on launch.rehearsal-1's page: a silent rehearsal of id, planned
// by the planner service, its GO armed by its own id; the launch's page
// lists it. vera, a viewer, sees no form and her post is refused.
func (e *browserEnv) rehearse(t *testing.T, id string) {
	rid := campaign.RehearsalID(id, 1)
	vera := chrome(t, e.base, "vera")
	vera.login(e.tokens["vera"])
	vera.open(id)
	if eval[bool](vera, `!!document.getElementById("rehearse-form")`) {
		t.Fatalf("a viewer is shown the Rehearse form:\n%s", vera.text())
	}
	csrf := eval[string](vera, `document.querySelector("#fire-form input[name=csrf]").value`)
	if code := vera.post("/console/c/"+id+"/rehearse", map[string]string{"csrf": csrf, "sample": "1", "rate": "0"}, true); code != http.StatusForbidden {
		t.Fatalf("the console answered the viewer's Rehearse with %d, want 403", code)
	}
	if _, err := e.svc.Definition(e.ctx, rid); err == nil {
		t.Fatalf("a viewer's post defined %s", rid)
	}

	oscar := chrome(t, e.base, "oscar")
	oscar.login(e.tokens["oscar"])
	oscar.open(id)
	oscar.do("fill in the sample", chromedp.SetValue(chromedp.ID("sample"), "0.5"))
	oscar.do("press Rehearse", chromedp.Click(chromedp.ID("rehearse")))
	oscar.flash("the rehearsal's page", "rehearsal "+rid+" of "+id+" defined by oscar")
	if got := eval[string](oscar, `document.querySelector("#campaign").dataset.id`); got != rid {
		t.Fatalf("after Rehearse the page shows %q, want %s", got, rid)
	}
	if txt := eval[string](oscar, `document.getElementById("rehearsal-of").textContent`); !strings.Contains(txt, "rehearsal of "+id) ||
		!strings.Contains(txt, "silent") || !strings.Contains(txt, "0.5") {
		t.Fatalf("the rehearsal's page does not say what it is: %q", txt)
	}
	if eval[bool](oscar, `!!document.getElementById("rehearse-form")`) {
		t.Fatal("a rehearsal's page offers to rehearse it")
	}
	if lbl := eval[string](oscar, `document.querySelector("label[for=confirm]").textContent`); !strings.Contains(lbl, rid) {
		t.Fatalf("GO's confirmation is not the rehearsal's id: %q", lbl)
	}
	// The planner service plans it (the "planned" gate turns green live).
	oscar.until("the rehearsal planned by the planner service", 2*time.Minute,
		`[...document.querySelectorAll("#gates li.ok")].some(li => li.textContent.includes("planned: generation"))`)
	oscar.shot("rehearsal", "")
	st, err := e.svc.Status(e.ctx, rid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Plan == nil || st.Plan.Tokens == 0 || st.Planning == nil || st.Planning.State != "planned" || st.Planning.RequestedBy != "oscar" ||
		st.Definition.PushType != campaign.PushTypeBackground {
		t.Fatalf("rehearsal status: plan %+v planning %+v push type %s", st.Plan, st.Planning, st.Definition.PushType)
	}
	// oscar prepares it from its page; GO is not his (a launcher's, of the
	// launch's launchers): alice presses it, then every planned token gets
	// one silent push.
	oscar.do("prepare the rehearsal", chromedp.Click(chromedp.ID("prepare")))
	oscar.flash("the rehearsal's prepare", "prepare requested by oscar")
	oscar.until("every gate of the rehearsal green", 2*time.Minute, allGreen)
	if !eval[bool](oscar, `document.getElementById("confirm").disabled`) {
		t.Fatal("an operator can arm the rehearsal's GO")
	}
	out, err := e.svc.Fire(e.ctx, rid, "alice", false)
	if err != nil || !out.Won {
		t.Fatalf("alice fires the rehearsal: %+v %v", out, err)
	}
	oscar.until("the rehearsal done", 3*time.Minute, fmt.Sprintf(`document.getElementById("state").textContent === "done" &&
		document.getElementById("p-accepted").textContent === "%d"`, st.Plan.Tokens))
	if got := e.sim.Stats(rid); got.DistinctTokens != int64(st.Plan.Tokens) || got.DuplicateDeliveries != 0 ||
		got.ByKind["ios/background/5"]+got.ByKind["android/data/normal"] != int64(st.Plan.Tokens) {
		t.Fatalf("simulator record of the rehearsal: %+v, want %d silent pushes, each token once", got, st.Plan.Tokens)
	}
	// The launch's page lists it with its verdict; the launch is untouched.
	oscar.open(id)
	if txt := eval[string](oscar, `document.getElementById("rehearsal-list")?.textContent || ""`); !strings.Contains(txt, rid) ||
		!strings.Contains(txt, "by alice") {
		t.Fatalf("the launch's page does not list %s fired by alice:\n%s", rid, oscar.text())
	}
	t.Logf("the launch's rehearsals: %s", eval[string](oscar, `document.getElementById("rehearsal-list").innerText`))
	if v := eval[string](oscar, `document.querySelector("#rehearsal-list td.verdict").textContent`); !strings.Contains(v, "judged") &&
		!strings.Contains(v, "on track") {
		t.Fatalf("the launch's page shows no verdict for %s: %q", rid, v)
	}
	if _, fired, err := e.g.FireOf(e.ctx, id); err != nil || fired {
		t.Fatalf("the launch after its rehearsal was defined: fired=%v (%v)", fired, err)
	}
}

// race: two launchers armed on the same campaign press at once; one fire,
// and the other sees who fired.
func (e *browserEnv) race(t *testing.T, id string) {
	if err := e.svc.Prepare(e.ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	tabs := []*tab{chrome(t, e.base, "alice"), chrome(t, e.base, "bob")}
	for _, b := range tabs {
		b.login(e.tokens[b.who])
		b.open(id)
		b.until("every gate green", 2*time.Minute, allGreen)
		b.do("type the id", chromedp.SendKeys(chromedp.ID("confirm"), id))
		b.until("GO enabled", time.Minute, `!document.getElementById("go").disabled`)
	}
	var wg sync.WaitGroup
	for _, b := range tabs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("go"))); err != nil {
				t.Errorf("%s: press GO: %v", b.who, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	msgs := map[*tab]string{}
	for _, b := range tabs {
		msgs[b] = b.flash("the answer to the press", "fired")
	}
	rec, fired, err := e.g.FireOf(e.ctx, id)
	if err != nil || !fired {
		t.Fatalf("after two presses: fired=%v (%v)", fired, err)
	}
	won, lost := 0, 0
	for b, msg := range msgs {
		switch {
		case strings.Contains(msg, "already fired by "+rec.By):
			lost++
		case strings.HasPrefix(msg, "fired at") && b.who == rec.By:
			won++
		default:
			t.Errorf("%s's page after the press: %q (the fire is %s's)", b.who, msg, rec.By)
		}
	}
	if won != 1 || lost != 1 {
		t.Fatalf("want one winner and one 'already fired by', got %d and %d", won, lost)
	}
}

// refused: a form with a bad CSRF token, a form without the session cookie
// and an API call without a token change nothing.
func (e *browserEnv) refused(t *testing.T, id string) {
	b := chrome(t, e.base, "alice")
	b.login(e.tokens["alice"])
	b.open(id)
	csrf := eval[string](b, `document.querySelector("#abort-form input[name=csrf]").value`)
	if code := b.post("/console/c/"+id+"/abort", map[string]string{"csrf": "x" + csrf, "confirm": id}, true); code != http.StatusForbidden {
		t.Fatalf("abort with a bad CSRF token: %d, want 403", code)
	}
	if code := b.post("/console/c/"+id+"/abort", map[string]string{"csrf": csrf, "confirm": id}, false); code != http.StatusUnauthorized {
		t.Fatalf("abort without the session cookie: %d, want 401", code)
	}
	resp, err := http.Post(e.base+"/v1/campaigns/"+id+"/abort", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API abort without a token: %d, want 401", resp.StatusCode)
	}
	if _, aborted, err := e.g.Aborted(e.ctx, id); err != nil || aborted {
		t.Fatalf("after the refused requests: aborted=%v (%v)", aborted, err)
	}
}
