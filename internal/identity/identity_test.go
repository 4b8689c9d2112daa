package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestUsersAuthenticate(t *testing.T) {
	ctx := context.Background()
	alice, ah, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	vera, vh, _ := NewToken()
	if strings.Contains(ah, alice) {
		t.Fatal("hash contains the token")
	}
	u, err := ParseUsers([]byte(fmt.Sprintf("users:\n  - {name: alice, role: launcher, token_hash: %q}\n  - {name: vera, role: viewer, token_hash: %q}\n", ah, vh)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token, name string
		role        Role
	}{{alice, "alice", Launcher}, {alice, "alice", Launcher}, {" " + vera + "\n", "vera", Viewer}} {
		id, err := u.Authenticate(ctx, tc.token)
		if err != nil || id.Name != tc.name || id.Role != tc.role {
			t.Errorf("token of %s: got %+v, %v", tc.name, id, err)
		}
	}
	for _, bad := range []string{"", "owl_x", alice + "x", ah} {
		if _, err := u.Authenticate(ctx, bad); !errors.Is(err, ErrUnknownToken) {
			t.Errorf("token %q: got %v, want ErrUnknownToken", bad, err)
		}
	}
	// The same token hashed twice gives two different hashes (salted).
	h2, _ := HashToken(alice)
	if h2 == ah {
		t.Error("two hashes of one token are equal: no salt")
	}
}

func TestParseUsersErrors(t *testing.T) {
	_, h, _ := NewToken()
	for name, tc := range map[string]struct{ in, want string }{
		"empty":     {"users: []\n", "no users"},
		"bad role":  {fmt.Sprintf("users: [{name: a, role: admin, token_hash: %q}]", h), "unknown role"},
		"bad name":  {fmt.Sprintf("users: [{name: Alice, role: viewer, token_hash: %q}]", h), "must match"},
		"twice":     {fmt.Sprintf("users: [{name: a, role: viewer, token_hash: %q}, {name: a, role: viewer, token_hash: %q}]", h, h), "appears twice"},
		"plain":     {"users: [{name: a, role: viewer, token_hash: secret}]", "token_hash"},
		"unknown":   {fmt.Sprintf("users: [{name: a, role: viewer, token: x, token_hash: %q}]", h), "malformed"},
		"weak hash": {"users: [{name: a, role: viewer, token_hash: \"$argon2id$v=19$m=16,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"}]", "out of range"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseUsers([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		have, need Role
		ok         bool
	}{{Viewer, Viewer, true}, {Viewer, Operator, false}, {Operator, Launcher, false}, {Launcher, Operator, true}, {Launcher, Launcher, true}} {
		err := Identity{Name: "x", Role: tc.have}.Require(tc.need, "act")
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("%s needs %s: got %v", tc.have, tc.need, err)
		}
	}
	if _, err := ParseRole("admin"); err == nil {
		t.Error("admin parsed as a role")
	}
}

func TestStatic(t *testing.T) {
	s := Static{Token: "s3cret", ID: Identity{Name: "control-token", Role: Launcher}}
	if id, err := s.Authenticate(context.Background(), "s3cret"); err != nil || id.Name != "control-token" {
		t.Fatalf("got %+v, %v", id, err)
	}
	if _, err := s.Authenticate(context.Background(), "s3cre"); !errors.Is(err, ErrUnknownToken) {
		t.Fatalf("prefix accepted: %v", err)
	}
	if _, err := (Static{}).Authenticate(context.Background(), ""); !errors.Is(err, ErrUnknownToken) {
		t.Fatal("empty token accepted by an empty Static")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := &Limiter{Burst: 3, Every: time.Minute, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		if !l.Allow("ip") {
			t.Fatalf("try %d refused", i)
		}
		l.Fail("ip")
	}
	if l.Allow("ip") {
		t.Fatal("fourth failure allowed")
	}
	if !l.Allow("other") {
		t.Fatal("another client is limited too")
	}
	now = now.Add(time.Minute)
	if !l.Allow("ip") {
		t.Fatal("no try earned back after Every")
	}
}
