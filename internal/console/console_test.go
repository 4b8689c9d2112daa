package console_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/console"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

type env struct {
	ts     *httptest.Server
	g      *guard.Guard
	id     string
	tokens map[string]string
	ctx    context.Context
}

// setup defines the example campaign with launchers alice and bob, plans it
// (a one-batch manifest) and reports fanout and sender ready, then serves
// the API and the console with a users file of alice, bob (launchers) and
// vera (viewer).
func setup(t *testing.T) *env {
	t.Helper()
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, 3*time.Minute)
	cl := testenv.Client(t, cfg)
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	def := example(t)
	if err := cat.PutCampaign(ctx, def); err != nil {
		t.Fatal(err)
	}
	m := &wire.Manifest{Campaign: def.ID, Generation: 1, PlannedAt: time.Now().Add(-time.Hour), Partitions: 1,
		IOSBatches: 1, IOSTokens: 10, PerPartition: []wire.PartitionCount{{Batches: 1, Tokens: 10}}}
	if err := cat.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	for _, s := range []wire.Status{
		{Campaign: def.ID, Role: wire.RoleFanout, Instance: "f1", State: wire.StateReady, Generation: 1, ManifestMatch: true,
			Partitions: []int32{0}, Batches: 1, Tokens: 10, At: time.Now()},
		{Role: wire.RoleSenderIOS, Instance: "s1", Connected: true, At: time.Now()},
	} {
		b, _ := wire.Encode(&s)
		rec := &kgo.Record{Topic: cfg.Topics.Status, Key: []byte(wire.StatusKey(s.Campaign, s.Role, s.Instance)), Value: b}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	g := guard.New(testenv.Redis(t, cfg), cfg.Redis.Prefix, nil)
	ts, _, tokens := serve(t, cfg, cl, g, [][2]string{{"alice", "launcher"}, {"bob", "launcher"}, {"vera", "viewer"}})
	return &env{ts: ts, g: g, id: def.ID, tokens: tokens, ctx: ctx}
}

// example is the example campaign with launchers alice and bob.
func example(t *testing.T) *campaign.Campaign {
	t.Helper()
	def := testenv.ExampleCampaign(t)
	def.Launch.Launchers = []string{"alice", "bob"}
	return def
}

// serve writes a users file of people (name, role) with fresh tokens, and
// serves the control API with the console over cfg's topics and g until the
// test ends; it returns the server, the Service and each person's token.
func serve(t *testing.T, cfg *config.Config, cl *kgo.Client, g *guard.Guard, people [][2]string) (*httptest.Server, *control.Service, map[string]string) {
	t.Helper()
	tokens := map[string]string{}
	users := "users:\n"
	for _, u := range people {
		tok, hash, err := identity.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[u[0]] = tok
		users += fmt.Sprintf("  - {name: %s, role: %s, token_hash: %q}\n", u[0], u[1], hash)
	}
	cfg.Control.UsersFile = filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(cfg.Control.UsersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := control.New(cfg, control.Deps{Kafka: cl, Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := control.NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := control.NewServer(svc, auth, identity.NewLimiter(5, time.Hour), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	con, err := console.New(svc, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	con.Register(srv)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, svc, tokens
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// browser is one logged-in person: a cookie jar and the session's CSRF token.
type browser struct {
	t    *testing.T
	hc   *http.Client
	base string
	csrf string
}

func (e *env) login(t *testing.T, who string) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, hc: &http.Client{Jar: jar}, base: e.ts.URL}
	code, page := b.post("/console/login", url.Values{"token": {e.tokens[who]}})
	if code != 200 || !strings.Contains(page, e.id) {
		t.Fatalf("login as %s: %d\n%s", who, code, page)
	}
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the list page:\n%s", page)
	}
	b.csrf = m[1]
	return b
}

func (b *browser) do(req *http.Request) (int, string) {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if csp := resp.Header.Get("Content-Security-Policy"); resp.Request.URL.Path != "/v1/campaigns" && !strings.Contains(csp, "script-src 'self'") {
		b.t.Fatalf("%s: no Content-Security-Policy (%q)", req.URL.Path, csp)
	}
	return resp.StatusCode, string(body)
}

func (b *browser) get(path string) (int, string) {
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) (int, string) {
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) press(id string) (int, string) {
	return b.post("/console/c/"+id+"/fire", url.Values{"csrf": {b.csrf}, "confirm": {id}})
}

var inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)

// TestConsole: sessions, CSRF, roles and the one fire through the console.
func TestConsole(t *testing.T) {
	e := setup(t)

	// No credentials: pages redirect to the login, actions are refused.
	anon := &browser{t: t, hc: &http.Client{}, base: e.ts.URL}
	if code, page := anon.get("/console/"); code != 200 || !strings.Contains(page, `name="token"`) {
		t.Fatalf("anonymous list: want the login page, got %d", code)
	}
	if code, _ := anon.post("/console/c/"+e.id+"/fire", url.Values{"confirm": {e.id}}); code != 401 {
		t.Fatalf("anonymous press: %d, want 401", code)
	}

	// The session cookie's flags.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(e.ts.URL+"/console/login", url.Values{"token": {e.tokens["vera"]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Header.Get("Set-Cookie")
	if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
		t.Fatalf("session cookie %q lacks HttpOnly or SameSite=Strict", ck)
	}

	// A viewer sees the campaign, a disabled GO, and the server refuses the press.
	vera := e.login(t, "vera")
	code, page := vera.get("/console/c/" + e.id)
	if code != 200 || !regexp.MustCompile(`id="go" class="go" disabled`).MatchString(page) || !strings.Contains(page, "may not fire") {
		t.Fatalf("viewer's campaign page: %d, GO not disabled or no reason given", code)
	}
	if inlineScript.MatchString(page) {
		t.Fatal("the campaign page has an inline script")
	}
	for _, want := range []string{`class="phone"`, `id="plan"`, `id="gates"`, "console.js"} {
		if !strings.Contains(page, want) {
			t.Fatalf("campaign page lacks %q", want)
		}
	}
	if code, _ := vera.press(e.id); code != 403 {
		t.Fatalf("viewer's press: %d, want 403", code)
	}

	// Rehearse is an operator's form: none for a viewer, whose post is
	// refused; bad fields and a bad CSRF token are refused too, and a plan
	// without its audience snapshot cannot be rehearsed. Nothing is defined.
	if strings.Contains(page, `id="rehearse-form"`) {
		t.Fatal("a viewer is shown the Rehearse form")
	}
	rehearse := func(b *browser, csrf, sample, rate string) (int, string) {
		return b.post("/console/c/"+e.id+"/rehearse", url.Values{"csrf": {csrf}, "sample": {sample}, "rate": {rate}})
	}
	if code, _ := rehearse(vera, vera.csrf, "1", "0"); code != 403 {
		t.Fatalf("viewer's Rehearse: %d, want 403", code)
	}
	alice := e.login(t, "alice")
	if _, page := alice.get("/console/c/" + e.id); !strings.Contains(page, `id="rehearse-form"`) {
		t.Fatal("a launcher (an operator's rights) is not shown the Rehearse form on a planned launch")
	}
	for _, tc := range []struct {
		csrf, sample, rate string
		code               int
		mention            string
	}{
		{"x" + alice.csrf, "1", "0", 403, "CSRF"},
		{alice.csrf, "2", "0", 400, "sample"},
		{alice.csrf, "half", "0", 400, "sample"},
		{alice.csrf, "1", "-5", 400, "rate"},
		{alice.csrf, "1", "fast", 400, "rate"},
		{alice.csrf, "0.5", "0", 409, "audience snapshot"},
	} {
		if code, page := rehearse(alice, tc.csrf, tc.sample, tc.rate); code != tc.code || !strings.Contains(page, tc.mention) {
			t.Fatalf("Rehearse sample %q rate %q: %d, want %d naming %q\n%s", tc.sample, tc.rate, code, tc.code, tc.mention, page)
		}
	}
	if _, page := alice.get("/console/"); strings.Contains(page, ".rehearsal-") {
		t.Fatalf("a refused Rehearse defined a rehearsal:\n%s", page)
	}

	// A launcher's press with a bad or missing CSRF token is refused.
	for _, bad := range []string{"", "x" + alice.csrf} {
		if code, _ := alice.post("/console/c/"+e.id+"/fire", url.Values{"csrf": {bad}, "confirm": {e.id}}); code != 403 {
			t.Fatalf("press with CSRF %q: %d, want 403", bad, code)
		}
	}
	// Without the typed confirmation nothing fires.
	if code, _ := alice.post("/console/c/"+e.id+"/fire", url.Values{"csrf": {alice.csrf}, "confirm": {"yes"}}); code != 400 {
		t.Fatalf("press without the typed id: %d, want 400", code)
	}
	if _, fired, _ := e.g.FireOf(e.ctx, e.id); fired {
		t.Fatal("fired by a refused press")
	}

	// alice fires; bob's later press does nothing and says who fired.
	code, page = alice.press(e.id)
	if code != 200 || !strings.Contains(page, "fired at") || !strings.Contains(page, "by alice") {
		t.Fatalf("alice's press: %d\n%s", code, page)
	}
	bob := e.login(t, "bob")
	code, page = bob.press(e.id)
	if code != 200 || !strings.Contains(page, "already fired by alice") {
		t.Fatalf("bob's press: %d\n%s", code, page)
	}
	if rec, fired, err := e.g.FireOf(e.ctx, e.id); err != nil || !fired || rec.By != "alice" {
		t.Fatalf("fire record %+v fired=%v (%v)", rec, fired, err)
	}

	// Every open screen learns it from the event stream.
	req, _ := http.NewRequestWithContext(e.ctx, "GET", e.ts.URL+"/console/c/"+e.id+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err = vera.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var data string
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = d
			break
		}
	}
	resp.Body.Close()
	if !strings.Contains(data, `"by":"alice"`) || !strings.Contains(data, `"state":"firing"`) {
		t.Fatalf("first event after the fire: %s", data)
	}

	// Wrong tokens are limited per address (5 here), then 429.
	for i := range 6 {
		resp, err := http.PostForm(e.ts.URL+"/console/login", url.Values{"token": {fmt.Sprint("guess-", i)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := 401
		if i == 5 {
			want = 429
		}
		if resp.StatusCode != want {
			t.Fatalf("wrong token %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
}
