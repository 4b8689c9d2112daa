package control_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/wire"
)

const testToken = "s3cret-test-token"

func TestServerRefusesToStartWithoutToken(t *testing.T) {
	if _, err := control.NewServer(nil, nil, nil, nil, nil); !errors.Is(err, control.ErrNoToken) {
		t.Fatalf("want ErrNoToken, got %v", err)
	}
}

func (f *fixture) server(t *testing.T) *httptest.Server {
	t.Helper()
	auth, err := control.NewAuthenticator(&config.Config{Control: config.ControlConfig{Token: testToken, TokenName: "control-token"}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := control.NewServer(f.svc, auth, nil, f.reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func call(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestAPIAuthAndErrors(t *testing.T) {
	f := newFixture(t)
	ts := f.server(t)
	fire := ts.URL + "/v1/campaigns/" + f.def.ID + "/fire"
	body := `{"by":"api-user"}`

	// Not ready yet: no token and a wrong token are 401 and fire nothing;
	// the right token gets the real refusal.
	cases := []struct {
		name, method, url, token, body string
		code                           int
		errCode                        string
	}{
		{"no token", "POST", fire, "", body, 401, control.CodeUnauthorized},
		{"wrong token", "POST", fire, "s3cret-test-tokeX", body, 401, control.CodeUnauthorized},
		{"wrong token status", "GET", ts.URL + "/v1/campaigns/" + f.def.ID + "/status", "nope", "", 401, control.CodeUnauthorized},
		{"not ready", "POST", fire, testToken, body, 412, control.CodeNotReady},
		{"unknown campaign", "POST", ts.URL + "/v1/campaigns/nope/fire", testToken, body, 404, control.CodeUnknownCampaign},
		{"no body", "POST", fire, testToken, ``, 412, control.CodeNotReady},
		{"unknown field", "POST", fire, testToken, `{"who":"x"}`, 400, control.CodeBadRequest},
		{"bad json", "POST", fire, testToken, `{"by":`, 400, control.CodeBadRequest},
		{"status", "GET", ts.URL + "/v1/campaigns/" + f.def.ID + "/status", testToken, "", 200, ""},
		{"list", "GET", ts.URL + "/v1/campaigns", testToken, "", 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := call(t, tc.method, tc.url, tc.token, tc.body)
			if code != tc.code || (tc.errCode != "" && m["code"] != tc.errCode) {
				t.Fatalf("want %d %s, got %d %v", tc.code, tc.errCode, code, m)
			}
			if tc.errCode == control.CodeNotReady && m["reasons"] == nil {
				t.Fatalf("412 without reasons: %v", m)
			}
		})
	}
	if code, _ := call(t, "GET", ts.URL+"/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if _, fired, _ := f.g.FireOf(f.ctx, f.def.ID); fired {
		t.Fatal("fired without being ready or without a token")
	}

	// Ready: the right token fires, a second press is 409 with the winner.
	f.ready(t)
	code, m := call(t, "POST", fire, testToken, body)
	if code != 200 || m["won"] != true {
		t.Fatalf("fire: %d %v", code, m)
	}
	// The shared token is one identity: the "by" of the body is ignored.
	if by := m["fire"].(map[string]any)["by"]; by != "control-token" {
		t.Fatalf("fire recorded by %v, want the token's identity control-token", by)
	}
	code, m2 := call(t, "POST", fire, testToken, `{"by":"someone-else","force":true}`)
	winner, _ := m["fire"].(map[string]any)
	again, _ := m2["fire"].(map[string]any)
	if code != 409 || m2["code"] != control.CodeAlreadyFired || again["fire_id"] != winner["fire_id"] {
		t.Fatalf("second press: %d %v", code, m2)
	}
	if n := f.counter(t, "owlpost_control_requests_total", map[string]string{"route": "POST /v1/campaigns/{id}/fire", "code": "401"}); n != 2 {
		t.Fatalf("401s counted %v", n)
	}
	// Abort after fire, then the metrics page must not leak the token.
	if code, m := call(t, "POST", ts.URL+"/v1/campaigns/"+f.def.ID+"/abort", testToken, body); code != 200 {
		t.Fatalf("abort: %d %v", code, m)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(page), testToken) || !strings.Contains(string(page), "owlpost_control_request_seconds") {
		t.Fatal("metrics page leaks the token or lacks the control metrics")
	}
}

func TestAPIFiftyConcurrentFires(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	ts := f.server(t)
	cl := &control.Client{URL: ts.URL, Token: testToken}
	const presses = 50
	var wg sync.WaitGroup
	outs := make([]control.FireOutcome, presses)
	errs := make([]error, presses)
	for i := range presses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = cl.Fire(f.ctx, f.def.ID, false)
		}()
	}
	wg.Wait()
	won := 0
	ids := map[string]bool{}
	for i := range presses {
		if errs[i] != nil {
			t.Fatalf("press %d: %v", i, errs[i])
		}
		if outs[i].Won {
			won++
		}
		ids[outs[i].Fire.FireID] = true
	}
	if won != 1 || len(ids) != 1 {
		t.Fatalf("want one win and one fire id, got won=%d ids=%v", won, ids)
	}
	for _, c := range f.controls(t, wire.ControlFire) {
		if !ids[c.FireID] {
			t.Fatalf("trigger with another fire id: %+v", c)
		}
	}
	// The client maps refusals back to the same sentinels.
	bad := &control.Client{URL: ts.URL, Token: "wrong"}
	if _, err := bad.Fire(f.ctx, f.def.ID, false); !errors.Is(err, control.ErrUnauthorized) {
		t.Fatalf("wrong token via client: %v", err)
	}
	if _, err := cl.Fire(f.ctx, "nope", false); !errors.Is(err, control.ErrUnknownCampaign) {
		t.Fatalf("unknown via client: %v", err)
	}
	st, err := cl.Status(f.ctx, f.def.ID)
	if err != nil || st.Fire == nil || !ids[st.Fire.FireID] {
		t.Fatalf("status via client: %+v %v", st, err)
	}
}
