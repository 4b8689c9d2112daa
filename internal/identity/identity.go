package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Role is what an identity may do. Higher roles include the lower ones.
type Role int

// The roles, in order.
const (
	Viewer Role = iota + 1
	Operator
	Launcher
)

var roleNames = map[Role]string{Viewer: "viewer", Operator: "operator", Launcher: "launcher"}

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// MarshalText writes the role's name (JSON, YAML).
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a role name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	*r = v
	return err
}

// ParseRole reads viewer, operator or launcher.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("identity: unknown role %q (want viewer, operator or launcher)", s)
}

// Allows reports whether r includes need.
func (r Role) Allows(need Role) bool { return r >= need }

// Identity is an authenticated actor.
type Identity struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Source says how it was established: "users-file", "token" (the single
	// shared token) or "local" (owlctl without a users file).
	Source string `json:"source"`
}

// Errors of authentication and authorisation.
var (
	// ErrUnknownToken: the token matches no identity.
	ErrUnknownToken = errors.New("unknown token")
	// ErrForbidden: the identity's role does not allow the action.
	ErrForbidden = errors.New("forbidden")
)

// Require returns nil if id's role includes need, else an error wrapping
// ErrForbidden that names both.
func (id Identity) Require(need Role, action string) error {
	if id.Role.Allows(need) {
		return nil
	}
	return fmt.Errorf("%w: %s is a %s; %s needs a %s", ErrForbidden, id.Name, id.Role, action, need)
}

// Authenticator resolves a bearer token to an identity.
type Authenticator interface {
	// Authenticate returns the identity token belongs to, or an error wrapping
	// ErrUnknownToken. ctx bounds a remote check (an OIDC verifier); local
	// sources ignore it. The token never appears in the error.
	Authenticate(ctx context.Context, token string) (Identity, error)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName reports whether s is a valid identity name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Static is one shared token as one identity (the control token of earlier
// versions). It compares in constant time.
type Static struct {
	Token string
	ID    Identity
}

// Authenticate implements Authenticator.
func (s Static) Authenticate(_ context.Context, token string) (Identity, error) {
	if s.Token != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.Token)) == 1 {
		return s.ID, nil
	}
	return Identity{}, ErrUnknownToken
}
