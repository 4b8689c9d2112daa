package audience

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestCountsAreGroundTruth decodes every generated record the way the planner
// does and checks that Counts says exactly what is in the stream.
func TestCountsAreGroundTruth(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"mixed", Spec{IOS: 6000, Android: 4000, Locales: []string{"en-US", "es-US", "de-DE", "pt-BR"},
			BadFraction: 0.03, InvalidFraction: 0.01, DuplicateFraction: 0.05, Seed: 1}},
		{"ios only", Spec{IOS: 777, BadFraction: 0.1, DuplicateFraction: 0.2, Seed: 2}},
		{"android only", Spec{Android: 501, InvalidFraction: 0.5, Seed: 3}},
		{"empty", Spec{Seed: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			users := map[string]bool{}
			var got Counts
			got.Bad = map[string]int64{}
			keys := map[string]string{} // token -> key of first record
			counts, err := Records(tc.spec, func(key, value []byte) error {
				got.Records++
				r, err := wire.DecodeAudience(value)
				var ae *wire.AudienceError
				if errors.As(err, &ae) {
					got.Bad[ae.Reason]++
					return nil
				}
				if err != nil {
					t.Fatalf("unexpected error type %v", err)
				}
				if string(key) != r.UserID {
					t.Fatalf("key %q != user id %q", key, r.UserID)
				}
				id := string(r.Platform) + "/" + r.Token
				if seen[id] {
					got.Duplicates++
					if keys[id] != string(key) {
						t.Fatalf("duplicate of %s under another key", id)
					}
					return nil
				}
				seen[id] = true
				keys[id] = string(key)
				users[r.UserID] = true
				switch r.Platform {
				case push.IOS:
					got.IOS++
					if strings.HasPrefix(r.Token, "dead0410") {
						got.InvalidIOS++
					} else if strings.HasPrefix(r.Token, "dead") {
						t.Fatalf("valid ios token with a simulator prefix: %s", r.Token)
					}
				case push.Android:
					got.Android++
					if len(r.Token) != 163 || r.Token[22:29] != ":APA91b" {
						t.Fatalf("fcm token shape: %s", r.Token)
					}
					if strings.Contains(r.Token, "UNREGISTERED") {
						got.InvalidAndroid++
					}
					for _, p := range simPatterns[1:] {
						if strings.Contains(r.Token, p) {
							t.Fatalf("token %s contains simulator pattern %s", r.Token, p)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got.Users = int64(len(users))
			if got.Records != counts.Records || got.IOS != counts.IOS || got.Android != counts.Android ||
				got.Duplicates != counts.Duplicates || got.InvalidIOS != counts.InvalidIOS ||
				got.InvalidAndroid != counts.InvalidAndroid || got.Users != counts.Users {
				t.Fatalf("decoded %+v\ncounts  %+v", got, counts)
			}
			if counts.IOS != int64(tc.spec.IOS) || counts.Android != int64(tc.spec.Android) {
				t.Fatalf("distinct tokens %d/%d, spec %d/%d", counts.IOS, counts.Android, tc.spec.IOS, tc.spec.Android)
			}
			if len(got.Bad) != len(counts.Bad) {
				t.Fatalf("bad reasons %v, counts %v", got.Bad, counts.Bad)
			}
			for r, n := range counts.Bad {
				if got.Bad[r] != n {
					t.Fatalf("bad %s: decoded %d, counts %d", r, got.Bad[r], n)
				}
			}
			if tc.spec.BadFraction >= 0.03 && len(counts.Bad) != 5 {
				t.Fatalf("want every reject reason represented, got %v", counts.Bad)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	spec := Spec{IOS: 300, Android: 200, BadFraction: 0.05, DuplicateFraction: 0.05, Seed: 9}
	collect := func(s Spec) []byte {
		var buf bytes.Buffer
		if _, err := Records(s, func(k, v []byte) error { buf.Write(k); buf.Write(v); return nil }); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b := collect(spec), collect(spec)
	if !bytes.Equal(a, b) {
		t.Fatal("same spec, different records")
	}
	spec.Seed = 10
	if bytes.Equal(a, collect(spec)) {
		t.Fatal("different seed, same records")
	}
}

func TestSpecValidate(t *testing.T) {
	for _, s := range []Spec{{IOS: -1}, {BadFraction: 2}, {InvalidFraction: -0.1}, {Locales: []string{""}}} {
		if s.Validate() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}
