package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"gopkg.in/yaml.v3"
)

// argon2id parameters for new hashes (OWASP's minimum for argon2id). Tokens
// are 256 random bits, so the hash guards a leaked users file, not a guess.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// User is one line of the users file.
type User struct {
	Name      string `yaml:"name"`
	Role      string `yaml:"role"`
	TokenHash string `yaml:"token_hash"`
}

type usersFile struct {
	Users []User `yaml:"users"`
}

type entry struct {
	id   Identity
	hash argonHash
}

// Users authenticates tokens against a users file. Safe for concurrent use.
type Users struct {
	entries []entry
	mu      sync.Mutex
	known   map[[32]byte]Identity // sha256(token) -> identity, verified tokens only
}

// LoadUsers reads and validates the users file at path.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: users file: %w", err)
	}
	u, err := ParseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("identity: users file %s: %w", path, err)
	}
	return u, nil
}

// ParseUsers reads a users file's content. Every problem is reported.
func ParseUsers(b []byte) (*Users, error) {
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("malformed: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	u := &Users{known: map[[32]byte]Identity{}}
	for i, x := range f.Users {
		at := fmt.Sprintf("users[%d]", i)
		if !ValidName(x.Name) {
			errs = append(errs, fmt.Errorf("%s: name %q must match [a-z0-9][a-z0-9._-]{0,62}", at, x.Name))
		} else if seen[x.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q appears twice", at, x.Name))
		}
		seen[x.Name] = true
		r, err := ParseRole(x.Role)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", at, x.Name, err))
		}
		h, err := parseHash(x.TokenHash)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): token_hash: %w", at, x.Name, err))
		}
		u.entries = append(u.entries, entry{id: Identity{Name: x.Name, Role: r, Source: "users-file"}, hash: h})
	}
	if len(f.Users) == 0 {
		errs = append(errs, errors.New("no users"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return u, nil
}

// Lookup returns the user called name (no token check): for validating a
// campaign's launchers list.
func (u *Users) Lookup(name string) (Identity, bool) {
	for _, e := range u.entries {
		if e.id.Name == name {
			return e.id, true
		}
	}
	return Identity{}, false
}

// Authenticate implements Authenticator.
func (u *Users) Authenticate(_ context.Context, token string) (Identity, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return Identity{}, ErrUnknownToken
	}
	key := sha256.Sum256([]byte(token))
	u.mu.Lock()
	id, ok := u.known[key]
	u.mu.Unlock()
	if ok {
		return id, nil
	}
	for _, e := range u.entries {
		if e.hash.matches(token) {
			u.mu.Lock()
			u.known[key] = e.id
			u.mu.Unlock()
			return e.id, nil
		}
	}
	return Identity{}, ErrUnknownToken
}

// NewToken returns a new random token and its users-file hash.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = "owl_" + base64.RawURLEncoding.EncodeToString(b)
	hash, err = HashToken(token)
	return token, hash, err
}

// HashToken returns the salted argon2id hash of token in the PHC string form.
func HashToken(token string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	k := argon2.IDKey([]byte(token), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(k)), nil
}

type argonHash struct {
	time, memory uint32
	threads      uint8
	salt, key    []byte
}

func parseHash(s string) (argonHash, error) {
	var h argonHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, errors.New("want $argon2id$v=19$m=...,t=...,p=...$salt$hash (owlctl user new prints one)")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return h, fmt.Errorf("argon2 version %q, want v=%d", parts[2], argon2.Version)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.memory, &h.time, &h.threads); err != nil {
		return h, fmt.Errorf("parameters %q: %v", parts[3], err)
	}
	if h.time < 1 || h.memory < 8*1024 || h.memory > 1<<20 || h.threads < 1 {
		return h, fmt.Errorf("parameters %q out of range (t>=1, 8 MiB <= m <= 1 GiB, p>=1)", parts[3])
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return h, errors.New("salt: want at least 8 bytes, unpadded base64")
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 {
		return h, errors.New("hash: want at least 16 bytes, unpadded base64")
	}
	return h, nil
}

func (h argonHash) matches(token string) bool {
	k := argon2.IDKey([]byte(token), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}
