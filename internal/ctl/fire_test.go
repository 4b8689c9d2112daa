package ctl

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// controlConfigFile writes cfg's connection, topic and Redis settings to a
// config file for --config.
func controlConfigFile(t *testing.T, cfg *config.Config) string {
	t.Helper()
	tp := cfg.Topics
	m := map[string]any{
		"kafka": map[string]any{"brokers": cfg.Kafka.Brokers},
		"redis": map[string]any{"addr": cfg.Redis.Addr, "prefix": cfg.Redis.Prefix},
		"topics": map[string]any{"campaigns": tp.Campaigns, "plans": tp.Plans, "batches": tp.Batches, "control": tp.Control,
			"status": tp.Status, "send_ios": tp.SendIOS, "send_android": tp.SendAndroid, "results": tp.Results,
			"feedback": tp.Feedback, "rejects": tp.Rejects, "batches_partitions": tp.BatchesPartitions},
		"control": map[string]any{"url": cfg.Control.URL, "token": cfg.Control.Token},
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "owlpost.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readyCampaign defines, plans and reports ready the example campaign.
func readyCampaign(t *testing.T, ctx context.Context, cfg *config.Config) string {
	t.Helper()
	cl := testenv.Client(t, cfg)
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	def := testenv.ExampleCampaign(t)
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
	return def.ID
}

func TestFireCommandConfirmation(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, 2*time.Minute)
	id := readyCampaign(t, ctx, cfg)
	g := guard.New(testenv.Redis(t, cfg), cfg.Redis.Prefix, nil)
	file := controlConfigFile(t, cfg)

	run := func(stdin string, args ...string) (int, string) {
		var out, errb bytes.Buffer
		env := &Env{Out: &out, Err: &errb, In: strings.NewReader(stdin), Log: NewEnv().Log}
		code := Main(context.Background(), append(args, "--config", file), env)
		return code, out.String() + errb.String()
	}
	// Before the fire the definition can still be changed.
	if code, out := run("", "campaign", "update", "../campaign/testdata/example.yaml"); code != 0 || !strings.Contains(out, "updated") {
		t.Fatalf("campaign update before fire: exit %d:\n%s", code, out)
	}
	cases := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
		fired       bool
	}{
		{"wrong id typed", "superbowl\n", []string{"fire", id, "--by", "alice"}, 1, "not fired", false},
		{"enter only", "\n", []string{"fire", id, "--by", "alice"}, 1, "not fired", false},
		{"nothing typed", "", []string{"fire", id, "--by", "alice"}, 1, "not fired", false},
		{"unknown campaign", "", []string{"fire", "nope", "--yes", "--by", "alice"}, 1, "unknown campaign", false},
		{"typed the id", id + "\n", []string{"fire", id, "--by", "alice"}, 0, "fired: fire id fire-", true},
		{"again with --yes", "", []string{"fire", id, "--yes", "--by", "bob"}, ExitAlreadyFired, "already fired at", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("want exit %d and %q, got exit %d:\n%s", tc.code, tc.want, code, out)
			}
			rec, fired, err := g.FireOf(ctx, id)
			if err != nil || fired != tc.fired {
				t.Fatalf("fired=%v want %v (%v)", fired, tc.fired, err)
			}
			if fired && rec.By != "alice" {
				t.Fatalf("winner %q, want alice", rec.By)
			}
		})
	}
	code, out := run("", "status", id)
	if code != 0 || !strings.Contains(out, "FIRING") || !strings.Contains(out, "by alice") ||
		!strings.Contains(out, "fanout      released at") || strings.Contains(out, "NOT READY") || strings.Contains(out, "MISMATCH") {
		t.Fatalf("status after fire: exit %d\n%s", code, out)
	}
	t.Log(out)

	// A fired campaign's definition is not changed any more.
	if code, out := run("", "campaign", "update", "../campaign/testdata/example.yaml"); code != 1 || !strings.Contains(out, "it fired at") {
		t.Fatalf("campaign update after fire: want exit 1 and a refusal, got exit %d:\n%s", code, out)
	}

	// Through the control API: a later press gets the winner (exit 3); a
	// wrong token is refused (exit 1).
	svc, err := control.New(cfg, control.Deps{Kafka: testenv.Client(t, cfg), Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := control.NewAuthenticator(&config.Config{Control: config.ControlConfig{Token: "tok-123", TokenName: "control-token"}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := control.NewServer(svc, auth, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, tc := range []struct {
		token string
		code  int
		want  string
	}{
		{"tok-123", ExitAlreadyFired, "already fired at"},
		{"wrong", 1, "unauthorized"},
	} {
		code, out := run("", "fire", id, "--yes", "--via-api", "--control.url", hs.URL, "--control.token", tc.token)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Fatalf("via api with token %q: want exit %d and %q, got %d:\n%s", tc.token, tc.code, tc.want, code, out)
		}
	}
}

// TestFireCommandIdentities: with a users file, owlctl acts as the owner of
// control.token: a viewer cannot fire, --by cannot borrow another name, and
// a launcher's fire is recorded under the token's name.
func TestFireCommandIdentities(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, 2*time.Minute)
	id := readyCampaign(t, ctx, cfg)
	g := guard.New(testenv.Redis(t, cfg), cfg.Redis.Prefix, nil)
	file := controlConfigFile(t, cfg)
	tokens := map[string]string{}
	users := "users:\n"
	for _, u := range [][2]string{{"alice", "launcher"}, {"vera", "viewer"}} {
		tok, hash, err := identity.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tokens[u[0]] = tok
		users += fmt.Sprintf("  - {name: %s, role: %s, token_hash: %q}\n", u[0], u[1], hash)
	}
	usersFile := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		env := &Env{Out: &out, Err: &errb, In: strings.NewReader(""), Log: NewEnv().Log}
		code := Main(context.Background(), append(args, "--config", file, "--control.users_file", usersFile), env)
		return code, out.String() + errb.String()
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no token", []string{"fire", id, "--yes"}, 1, "needs your own token"},
		{"viewer", []string{"fire", id, "--yes", "--control.token", tokens["vera"]}, 1, "forbidden"},
		{"borrowed name", []string{"fire", id, "--yes", "--control.token", tokens["vera"], "--by", "alice"}, 2, "the audit log takes the name from the token"},
		{"whoami", []string{"user", "whoami", "--control.token", tokens["vera"]}, 0, "vera (viewer, from users-file)"},
		{"launcher", []string{"fire", id, "--yes", "--control.token", tokens["alice"]}, 0, "by alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("want exit %d and %q, got %d:\n%s", tc.code, tc.want, code, out)
			}
			if strings.Contains(out, tokens["alice"]) || strings.Contains(out, tokens["vera"]) {
				t.Fatalf("a token reached the output:\n%s", out)
			}
		})
	}
	if rec, fired, err := g.FireOf(ctx, id); err != nil || !fired || rec.By != "alice" {
		t.Fatalf("fire record %+v fired=%v (%v), want by alice", rec, fired, err)
	}
}
