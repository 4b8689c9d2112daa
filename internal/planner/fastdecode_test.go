package planner

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// agree fails when fastAudience accepts something DecodeAudience refuses or
// decodes differently.
func agree(t *testing.T, data []byte) bool {
	t.Helper()
	var fr fastRecord
	if !fastAudience(data, &fr) {
		return false
	}
	r, err := wire.DecodeAudience(data)
	if err != nil {
		t.Fatalf("fast path accepted what DecodeAudience refuses (%v): %q", err, data)
	}
	if r.Platform != fr.platform || r.Locale != string(fr.locale) {
		t.Fatalf("fast %s/%q, slow %s/%q: %q", fr.platform, fr.locale, r.Platform, r.Locale, data)
	}
	tok := string(fr.token)
	if fr.platform == push.IOS {
		tok = hex.EncodeToString(fr.ios[:])
	}
	if tok != r.Token {
		t.Fatalf("fast token %q, slow %q: %q", tok, r.Token, data)
	}
	return true
}

func TestFastAudience(t *testing.T) {
	ios := strings.Repeat("aB", 32)
	fcm := strings.Repeat("x", 120) + ":APA91b-_"
	cases := []struct {
		in   string
		fast bool
	}{
		{`{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"en-US"}`, true},
		{` {"user_id" : "u", "platform":"android","token":"` + fcm + `","locale":"de","attrs":{"a":"b","c":"d"}}` + "\n", true},
		{`{"attrs":null,"user_id":"u","platform":"android","token":"` + fcm + `","locale":"de"}`, true},
		{`{"attrs":{},"user_id":"u","platform":"android","token":"` + fcm + `","locale":"de"}`, true},
		// Declined: the slow path decides (accepts or rejects).
		{`{"user_id":"u","platform":"IOS","token":"` + ios + `","locale":"en"}`, false},
		{`{"User_Id":"u","platform":"ios","token":"` + ios + `","locale":"en"}`, false},
		{`{"user_id":"u","user_id":"v","platform":"ios","token":"` + ios + `","locale":"en"}`, false},
		{`{"user_id":"u\n","platform":"ios","token":"` + ios + `","locale":"en"}`, false},
		{`{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"en","x":1}`, false},
		{`{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"en"} {}`, false},
		{`{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"en",}`, false},
		{`{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"é"}`, false},
		{`{"user_id":"u","platform":"ios","token":"` + ios[:63] + `","locale":"en"}`, false},
		{`{"user_id":"u","platform":"android","token":"` + fcm + `!","locale":"en"}`, false},
		{`{"user_id":"","platform":"ios","token":"` + ios + `","locale":"en"}`, false},
		{`{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"en","attrs":{"a":1}}`, false},
		{`{"user_id":"u","platform":"ios","token":"` + ios + `"`, false},
		{``, false},
	}
	for _, tc := range cases {
		if got := agree(t, []byte(tc.in)); got != tc.fast {
			t.Errorf("fast=%v, want %v: %s", got, tc.fast, tc.in)
		}
	}
}

// TestFastAudienceOnGenerated: every valid generated record takes the fast
// path, and agrees with the slow one.
func TestFastAudienceOnGenerated(t *testing.T) {
	spec := audience.Spec{IOS: 2000, Android: 2000, Locales: []string{"en-US", "pt-BR"}, BadFraction: 0.1,
		DuplicateFraction: 0.1, InvalidFraction: 0.01, Seed: 5}
	var fast int64
	c, err := audience.Records(spec, func(_, v []byte) error {
		if agree(t, v) {
			fast++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := c.Records - c.BadTotal(); fast != want {
		t.Fatalf("fast path took %d records, want every well-formed one (%d)", fast, want)
	}
}

func FuzzFastAudience(f *testing.F) {
	ios := strings.Repeat("ab", 32)
	f.Add([]byte(`{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"en-US","attrs":{"a":"b"}}`))
	f.Add([]byte(`{"user_id":"u","platform":"android","token":"` + strings.Repeat("y", 150) + `","locale":"en"}`))
	f.Add([]byte(`{"attrs":null,"user_id":"u","platform":"ios","token":"` + ios + `","locale":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) { agree(t, data) })
}
