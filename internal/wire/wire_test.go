package wire

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/push"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/wire -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s changed: the wire contract is public; bump Version or run -update deliberately\ngot:  %q\nwant: %q", name, got, want)
	}
}

func iosToken(r *rand.Rand) string {
	const hexd = "0123456789abcdef"
	b := make([]byte, 64)
	for i := range b {
		b[i] = hexd[r.IntN(16)]
	}
	return string(b)
}

func fcmToken(r *rand.Rand) string {
	const cs = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	b := make([]byte, 163)
	for i := range b {
		b[i] = cs[r.IntN(len(cs))]
	}
	b[22] = ':'
	return string(b)
}

func sampleBatch(p push.Platform, n int) *Batch {
	r := rand.New(rand.NewPCG(1, 2))
	b := &Batch{Campaign: "superbowl-2027", Platform: p, Generation: 3, Seq: 42,
		Locales: []string{"en-US", "es-US", "de-DE", "pt-BR"}}
	for i := 0; i < n; i++ {
		tok := iosToken(r)
		if p == push.Android {
			tok = fcmToken(r)
		}
		b.Tokens = append(b.Tokens, Token{Token: tok, Locale: uint16(i % len(b.Locales))})
	}
	return b
}

func TestBatchRoundTripAndGolden(t *testing.T) {
	for _, p := range []push.Platform{push.IOS, push.Android} {
		t.Run(string(p), func(t *testing.T) {
			b := sampleBatch(p, 3)
			enc, err := EncodeBatch(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "batch_"+string(p)+".bin", enc)
			got, err := DecodeBatch(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, b) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, b)
			}
		})
	}
}

// TestBatchSize measures full batches; the figures are quoted in doc.go.
func TestBatchSize(t *testing.T) {
	for _, tc := range []struct {
		p    push.Platform
		n    int
		max  int
		name string
	}{{push.IOS, 500, 17000, "500 ios"}, {push.Android, 250, 42000, "250 android"}} {
		enc, err := EncodeBatch(nil, sampleBatch(tc.p, tc.n))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", tc.name, len(enc))
		if len(enc) > tc.max {
			t.Errorf("%s: %d bytes, more than the documented %d", tc.name, len(enc), tc.max)
		}
	}
}

func TestDecodeBatchRejectsGarbage(t *testing.T) {
	good, _ := EncodeBatch(nil, sampleBatch(push.IOS, 2))
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     []byte("XX\x01\x01"),
		"version":   append([]byte("OB\x09"), good[3:]...),
		"platform":  append([]byte("OB\x01\x07"), good[4:]...),
		"truncated": good[:len(good)-5],
		"trailing":  append(append([]byte{}, good...), 0),
		"hugecount": []byte("OB\x01\x01\x01c\x01\x01\xff\xff\xff\xff\x0f"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeBatch(data); err == nil {
				t.Fatal("want an error")
			}
		})
	}
	_, err := DecodeBatch(cases["version"])
	if !errors.Is(err, ErrVersion) {
		t.Errorf("version: want ErrVersion, got %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	good, _ := EncodeBatch(nil, sampleBatch(push.Android, 2))
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		again, err := EncodeBatch(nil, b)
		if err != nil {
			t.Fatalf("decoded batch does not re-encode: %v", err)
		}
		if _, err := DecodeBatch(again); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBatchKey(t *testing.T) {
	k := BatchKey("camp/x", push.Android, 7)
	if k != "camp/x/android/000007" {
		t.Fatalf("key %q", k)
	}
	c, p, s, ok := ParseBatchKey(k)
	if !ok || c != "camp/x" || p != push.Android || s != 7 {
		t.Fatalf("parse %q: %q %q %d %v", k, c, p, s, ok)
	}
	for _, bad := range []string{"", "c", "c/ios", "c/web/1", "c/ios/", "c/ios/1x", "c/ios/99999999999"} {
		if _, _, _, ok := ParseBatchKey(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestAssignBalanced(t *testing.T) {
	for _, tc := range []struct{ ios, android, tokIOS, tokAndroid int }{
		{10000, 0, 500, 250}, {6, 4, 500, 250}, {2401, 2400, 500, 250}, {13, 29, 500, 250}, {0, 7, 500, 250},
	} {
		for _, parts := range []int32{1, 3, 12} {
			t.Run(fmt.Sprintf("%d_%d_p%d", tc.ios, tc.android, parts), func(t *testing.T) {
				tokens := make([]int, parts)
				for s := 0; s < tc.ios; s++ {
					tokens[Assign(push.IOS, uint32(s), uint32(tc.ios), parts)] += tc.tokIOS
				}
				for s := 0; s < tc.android; s++ {
					tokens[Assign(push.Android, uint32(s), uint32(tc.ios), parts)] += tc.tokAndroid
				}
				lo, hi := tokens[0], tokens[0]
				for _, n := range tokens {
					lo, hi = min(lo, n), max(hi, n)
				}
				if hi-lo > tc.tokIOS {
					t.Fatalf("partition tokens %v differ by %d > one batch", tokens, hi-lo)
				}
			})
		}
	}
}

func TestJSONGolden(t *testing.T) {
	at := time.Date(2027, 2, 7, 23, 30, 0, 0, time.UTC)
	recs := map[string]any{
		"manifest.json": &Manifest{Campaign: "superbowl-2027", Generation: 3, PlannedAt: at, PlannedBy: "planner-1",
			Partitions: 2, IOSBatches: 2, AndroidBatches: 1, IOSTokens: 700, AndroidTokens: 100,
			PerPartition: []PartitionCount{{2, 600}, {1, 200}}, Checksum: "ab12", AudienceTopic: "audience.sb",
			AudienceRecords: 812, Rejected: map[string]int64{RejectBadJSON: 2}, DuplicateTokens: 10,
			BatchSizeIOS: 500, BatchSizeAndroid: 250, AudienceEnds: map[int32]int64{0: 410, 1: 402}},
		"control_fire.json": &Control{Type: ControlFire, Campaign: "superbowl-2027", By: "alice", At: at,
			FireID: "f-01", Deadline: at.Add(10 * time.Minute)},
		"status.json": &Status{Campaign: "superbowl-2027", Role: RoleFanout, Instance: "fanout-1", State: StateReady,
			At: at, Generation: 3, Partitions: []int32{0, 1}, Batches: 3, Tokens: 800, ManifestMatch: true},
		"result.json": &Result{Campaign: "superbowl-2027", Platform: push.IOS, Seq: 1, Generation: 3,
			FireID: "f-01", Kind: KindFire, Sender: "sender-ios-1", Tokens: 3, Accepted: 2, Invalid: 1,
			Reasons: map[string]int{"Unregistered": 1}, FiredAt: at, ReleasedAt: at.Add(5 * time.Millisecond), StartedAt: at.Add(20 * time.Millisecond),
			FinishedAt: at.Add(90 * time.Millisecond), AcceptedMS: []uint32{41, 88}},
		"feedback.json": &Feedback{Token: strings.Repeat("ab", 32), Platform: push.IOS, Reason: "Unregistered",
			Campaign: "superbowl-2027", At: at},
	}
	for name, rec := range recs {
		t.Run(name, func(t *testing.T) {
			enc, err := Encode(rec)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, enc)
			back := reflect.New(reflect.TypeOf(rec).Elem()).Interface()
			if err := Decode(enc, back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, rec) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", back, rec)
			}
		})
	}
	var m Manifest
	if err := Decode([]byte(`{"v":2}`), &m); !errors.Is(err, ErrVersion) {
		t.Errorf("want ErrVersion, got %v", err)
	}
}

func TestFireHeaders(t *testing.T) {
	f := Fire{ID: "f1", Kind: KindFire, FiredAt: time.UnixMilli(1700000000123), Deadline: time.UnixMilli(1700000600123)}
	got, err := ParseFireHeaders(FireHeaders(f))
	if err != nil || got != f {
		t.Fatalf("got %+v %v", got, err)
	}
	if _, err := ParseFireHeaders(FireHeaders(f)[:2]); err == nil {
		t.Fatal("missing headers accepted")
	}
}

func TestDecodeAudience(t *testing.T) {
	ios := strings.Repeat("AB", 32)
	fcm := strings.Repeat("x", 150)
	cases := []struct {
		name, in, reason string
		normalised       []string
	}{
		{"ok ios", `{"user_id":"u","platform":"ios","token":"` + ios + `","locale":"en"}`, "", nil},
		{"ok android upper platform", `{"user_id":"u","platform":"ANDROID","token":"` + fcm + `","locale":"en"}`, "", nil},
		{"bad json", `{"user_id":`, RejectBadJSON, nil},
		{"trailing", `{"user_id":"u"} {}`, RejectBadJSON, nil},
		{"no user", `{"platform":"ios","token":"` + ios + `","locale":"en"}`, RejectMissingField, nil},
		{"no locale", `{"user_id":"u","platform":"ios","token":"` + ios + `"}`, "", []string{NormalisedLocale}},
		{"blank locale, padded token", `{"user_id":"u","platform":"android","token":" ` + fcm + "\\t\\n" + `","locale":"  "}`, "",
			[]string{NormalisedToken, NormalisedLocale}},
		{"padded ios token", `{"user_id":"u","platform":"ios","token":"  ` + ios + ` ","locale":"en"}`, "", []string{NormalisedToken}},
		{"blank token", `{"user_id":"u","platform":"ios","token":"   ","locale":"en"}`, RejectMissingField, nil},
		{"space inside a token", `{"user_id":"u","platform":"ios","token":"` + ios[:10] + " " + ios[11:] + `","locale":"en"}`, RejectBadToken, nil},
		{"platform", `{"user_id":"u","platform":"web","token":"` + ios + `","locale":"en"}`, RejectUnknownPlatform, nil},
		{"short ios", `{"user_id":"u","platform":"ios","token":"abc","locale":"en"}`, RejectBadToken, nil},
		{"ios token on android", `{"user_id":"u","platform":"android","token":"` + ios + `","locale":"en"}`, RejectBadToken, nil},
		{"huge", `{"user_id":"` + strings.Repeat("u", MaxAudienceRecordBytes) + `"}`, RejectTooLarge, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeAudience([]byte(tc.in))
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Platform == push.IOS && r.Token != strings.ToLower(ios) {
					t.Errorf("ios token not lower-cased or not trimmed: %q", r.Token)
				}
				if r.Platform == push.Android && r.Token != fcm {
					t.Errorf("android token not trimmed: %q", r.Token)
				}
				if !slices.Equal(r.Normalised, tc.normalised) {
					t.Errorf("normalised %v, want %v", r.Normalised, tc.normalised)
				}
				if slices.Contains(r.Normalised, NormalisedLocale) != (r.Locale == "") {
					t.Errorf("locale %q with normalised %v", r.Locale, r.Normalised)
				}
				return
			}
			var ae *AudienceError
			if !errors.As(err, &ae) || ae.Reason != tc.reason {
				t.Fatalf("want reason %s, got %v", tc.reason, err)
			}
		})
	}
}

func TestPlanHash(t *testing.T) {
	h1, h2 := NewPlanHash(2, 1), NewPlanHash(2, 1)
	for _, h := range []*PlanHash{h1, h2} {
		h.Add(true, 0, []byte("a"))
		h.Add(true, 1, []byte("b"))
		h.Add(false, 0, []byte("c"))
	}
	if h1.Sum() != h2.Sum() {
		t.Fatal("same input, different sums")
	}
	h2.Add(true, 1, []byte("B"))
	if h1.Sum() == h2.Sum() {
		t.Fatal("changed batch, same sum")
	}
	if h1.Add(false, 5, nil) {
		t.Fatal("out of range seq accepted")
	}
}

// TestStateValues pins the status vocabulary: the strings are part of the
// status topic's contract, read by control, owlctl and dashboards.
func TestStateValues(t *testing.T) {
	for st, want := range map[State]string{
		StateLoading: "loading", StateReady: "ready", StateError: "error", StateIdle: "idle",
		StateReleasing: "releasing", StateReleased: "released", StateAborted: "aborted",
		StateStopped: "stopped", StatePlanning: "planning", StatePlanned: "planned",
	} {
		enc, err := Encode(&Status{State: st})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(enc, []byte(`"state":"`+want+`"`)) {
			t.Errorf("%s encodes as %s, want state %q", st, enc, want)
		}
		var got Status
		if err := Decode(enc, &got); err != nil || got.State != st {
			t.Errorf("%s: decoded %q, %v", st, got.State, err)
		}
	}
}

// TestEncodedSize: EncodedSize is the exact length EncodeBatch produces,
// across platforms, batch sizes and varint widths.
func TestEncodedSize(t *testing.T) {
	for _, p := range []push.Platform{push.IOS, push.Android} {
		for _, n := range []int{0, 1, 127, 128, 500} {
			b := sampleBatch(p, n)
			b.Generation, b.Seq = uint64(n)<<20, uint32(n)*1000
			enc, err := EncodeBatch(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			if got := EncodedSize(b); got != len(enc) {
				t.Errorf("%s, %d tokens: EncodedSize %d, encoded %d bytes", p, n, got, len(enc))
			}
		}
	}
}
