package control_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/wire"
)

// people writes a users file of alice and bob (launchers), carl (a launcher
// the campaign does not name), oscar (operator) and vera (viewer), and
// returns it with each one's token.
func people(t *testing.T) (string, map[string]string) {
	t.Helper()
	tokens := map[string]string{}
	var b strings.Builder
	b.WriteString("users:\n")
	for _, u := range [][2]string{{"alice", "launcher"}, {"bob", "launcher"}, {"carl", "launcher"}, {"oscar", "operator"}, {"vera", "viewer"}} {
		tok, hash, err := identity.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[u[0]] = tok
		fmt.Fprintf(&b, "  - {name: %s, role: %s, token_hash: %q}\n", u[0], u[1], hash)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tokens
}

// usersServer serves the API with the users file of people.
func (f *fixture) usersServer(t *testing.T, limit *identity.Limiter) (*httptest.Server, map[string]string) {
	t.Helper()
	path, tokens := people(t)
	auth, err := control.NewAuthenticator(&config.Config{Control: config.ControlConfig{UsersFile: path, Token: "ignored-with-a-users-file"}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := control.NewServer(f.svc, auth, limit, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, tokens
}

// TestAPIRolesAndLaunchers: a viewer, an operator and a launcher the
// campaign does not name cannot fire, whatever their body says; a named
// launcher fires, a second named launcher sees the winner; the audit log
// names the identity of every action.
func TestAPIRolesAndLaunchers(t *testing.T) {
	f := newFixture(t)
	f.def.Launch.Launchers = []string{"alice", "bob"}
	if err := f.cat.PutCampaign(f.ctx, f.def); err != nil {
		t.Fatal(err)
	}
	ts, tok := f.usersServer(t, nil)
	base := ts.URL + "/v1/campaigns/" + f.def.ID
	liar := `{"by":"alice"}` // a body naming someone else changes nothing

	for _, tc := range []struct {
		name, method, path, token string
		code                      int
		errCode                   string
	}{
		{"viewer reads", "GET", "/status", tok["vera"], 200, ""},
		{"viewer cannot prepare", "POST", "/prepare", tok["vera"], 403, control.CodeForbidden},
		{"viewer cannot abort", "POST", "/abort", tok["vera"], 403, control.CodeForbidden},
		{"viewer cannot fire", "POST", "/fire", tok["vera"], 403, control.CodeForbidden},
		{"operator prepares", "POST", "/prepare", tok["oscar"], 202, ""},
		{"operator cannot fire", "POST", "/fire", tok["oscar"], 403, control.CodeForbidden},
		{"no credentials", "POST", "/fire", "", 401, control.CodeUnauthorized},
		{"the users file's hash is no token", "POST", "/fire", "owl_" + strings.Repeat("A", 43), 401, control.CodeUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := call(t, tc.method, base+tc.path, tc.token, liar)
			if code != tc.code || (tc.errCode != "" && m["code"] != tc.errCode) {
				t.Fatalf("want %d %s, got %d %v", tc.code, tc.errCode, code, m)
			}
		})
	}
	f.ready(t)
	if code, m := call(t, "POST", base+"/fire", tok["carl"], liar); code != 403 || m["code"] != control.CodeNotLauncher {
		t.Fatalf("unlisted launcher: want 403 %s, got %d %v", control.CodeNotLauncher, code, m)
	}
	if _, fired, err := f.g.FireOf(f.ctx, f.def.ID); err != nil || fired {
		t.Fatalf("fired by someone who may not (fired=%v, %v)", fired, err)
	}
	code, m := call(t, "POST", base+"/fire", tok["alice"], `{"by":"mallory"}`)
	if code != 200 || m["fire"].(map[string]any)["by"] != "alice" {
		t.Fatalf("alice's press: %d %v", code, m)
	}
	code, m = call(t, "POST", base+"/fire", tok["bob"], "")
	if code != 409 || m["code"] != control.CodeAlreadyFired || !strings.Contains(m["error"].(string), "by alice") {
		t.Fatalf("bob's press: want 409 already fired by alice, got %d %v", code, m)
	}
	if code, m := call(t, "GET", ts.URL+"/v1/whoami", tok["oscar"], ""); code != 200 || m["name"] != "oscar" || m["role"] != "operator" {
		t.Fatalf("whoami: %d %v", code, m)
	}

	// The audit log: every action with the identity that did it.
	want := map[string]string{wire.ControlPrepare: "oscar", wire.ControlRefused: "carl"}
	for typ, by := range want {
		cs := f.controls(t, typ)
		if len(cs) != 1 || cs[0].By != by {
			t.Fatalf("audit %s: want one by %s, got %+v", typ, by, cs)
		}
	}
	fires := f.controls(t, wire.ControlFire)
	if len(fires) != 2 || fires[0].By != "alice" || fires[1].By != "alice" || !strings.Contains(fires[1].Note, "later press of bob") {
		t.Fatalf("audit fire: want alice's trigger and its re-publication by bob's press, got %+v", fires)
	}
	for _, c := range append(f.controls(t, wire.ControlRefused), fires...) {
		if c.By == "mallory" {
			t.Fatalf("a name from a request body reached the audit log: %+v", c)
		}
	}
}

// TestAPIFailedLoginsLimited: after the limiter's burst of wrong tokens an
// address is refused with 429 before any token is checked, then earns tries
// back.
func TestAPIFailedLoginsLimited(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	limit := &identity.Limiter{Burst: 3, Every: time.Minute, Now: func() time.Time { return now }}
	ts, tok := f.usersServer(t, limit)
	url := ts.URL + "/v1/campaigns"
	for i := range 3 {
		if code, _ := call(t, "GET", url, fmt.Sprintf("guess-%d", i), ""); code != 401 {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	if code, m := call(t, "GET", url, tok["vera"], ""); code != 429 || m["code"] != control.CodeRateLimited {
		t.Fatalf("after 3 wrong tokens: want 429, got %d %v", code, m)
	}
	now = now.Add(time.Minute)
	if code, _ := call(t, "GET", url, tok["vera"], ""); code != 200 {
		t.Fatalf("a minute later: %d, want 200", code)
	}
}
