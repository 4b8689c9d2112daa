package control_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/wire"
)

// schemathesisBin finds the schemathesis that scripts/testtools.sh installs.
func schemathesisBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OWLPOST_SCHEMATHESIS"); p != "" {
		return p
	}
	cache := os.Getenv("OWLPOST_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "owlpost")
	}
	p := filepath.Join(cache, "venv", "bin", "schemathesis")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("schemathesis not installed (%v): run scripts/testtools.sh (make test does)", err)
	}
	return p
}

// TestAPIContract runs schemathesis against the running API with its own
// OpenAPI document: generated and malformed requests, as a viewer and as a
// launcher. No 5xx, every answer as documented (status, content type,
// schema, headers), requests without credentials refused; and the viewer's
// run changes nothing (no control record, no fire, no abort).
func TestAPIContract(t *testing.T) {
	st := schemathesisBin(t)
	f := newFixture(t)
	path, tok := people(t)
	f.cfg.Control.UsersFile = path
	auth, err := control.NewAuthenticator(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := control.NewServer(f.svc, auth, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ln.Addr().String()
	if resp, err := http.Get(base + "/v1/openapi.json"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("openapi.json: %v %v", resp, err)
	}

	run := func(who string) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(f.ctx, 3*time.Minute)
		defer rcancel()
		cmd := exec.CommandContext(rctx, st, "run", base+"/v1/openapi.json",
			"--checks", "all", "--exclude-checks", "positive_data_acceptance,use_after_free,ensure_resource_availability",
			"--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--workers", "1",
			"--seed", "22", "--request-timeout", "30", "--no-color", "--generation-database", "none",
			"-H", "Authorization: Bearer "+tok[who])
		cmd.Env = append(os.Environ(), "SCHEMATHESIS_HOOKS=")
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		t.Logf("schemathesis as %s:\n%s", who, out)
		if err != nil {
			t.Fatalf("schemathesis as %s: %v", who, err)
		}
	}
	run("vera")
	for _, typ := range []string{wire.ControlDefine, wire.ControlPlan, wire.ControlPrepare, wire.ControlProof, wire.ControlFire,
		wire.ControlAbort, wire.ControlRefused} {
		if cs := f.controls(t, typ); len(cs) != 0 {
			t.Fatalf("a viewer's requests wrote %s records: %+v", typ, cs)
		}
	}
	if _, fired, _ := f.g.FireOf(f.ctx, f.def.ID); fired {
		t.Fatal("a viewer's requests fired the campaign")
	}
	if _, aborted, _ := f.g.Aborted(f.ctx, f.def.ID); aborted {
		t.Fatal("a viewer's requests aborted the campaign")
	}
	run("alice")
}
