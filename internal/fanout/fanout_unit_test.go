package fanout

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

func TestMarkerKey(t *testing.T) {
	for _, tc := range []struct {
		campaign, fire string
		partition      int32
	}{
		{"superbowl-2027", "f-01HZX", 0},
		{"c.1_x", "proof-abc", 11},
	} {
		k := MarkerKey(tc.campaign, tc.fire, tc.partition)
		c, f, p, ok := ParseMarkerKey(k)
		if !ok || c != tc.campaign || f != tc.fire || p != tc.partition {
			t.Errorf("ParseMarkerKey(%q) = %q %q %d %v", k, c, f, p, ok)
		}
	}
	for _, bad := range []string{"", "c/fanout/inst", "c/release/f/px", "c/release/f/p-1", "/release/f/p1", "c/release//p1",
		"c/sender-ios/f/p1", wire.StatusKey("c", wire.RoleFanout, "host-1")} {
		if _, _, _, ok := ParseMarkerKey(bad); ok {
			t.Errorf("ParseMarkerKey(%q) accepted", bad)
		}
	}
}

func TestMarkerValueRoundTrip(t *testing.T) {
	v, err := markerValue("c", "inst-1", 3, marker{generation: 7, batches: 100, released: 36})
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseMarker(v)
	if err != nil {
		t.Fatal(err)
	}
	if m.generation != 7 || m.batches != 100 || m.released != 36 || m.instance != "inst-1" || m.done() {
		t.Fatalf("round trip: %+v", m)
	}
	var st wire.Status
	if err := wire.Decode(v, &st); err != nil || st.Role != RoleRelease || st.State != wire.StateReleasing {
		t.Fatalf("marker as status: %+v %v", st, err)
	}
}

func TestChunkSize(t *testing.T) {
	want := []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 256}
	for n, w := range want {
		if got := chunkSize(n); got != w {
			t.Errorf("chunkSize(%d) = %d, want %d", n, got, w)
		}
	}
	big := make([]heldBatch, 10)
	for i := range big {
		big[i].value = make([]byte, maxChunkBytes/3)
	}
	for _, tc := range []struct {
		start uint32
		size  int
		want  uint32
	}{
		{0, 4, 3}, {3, 2, 5}, {8, 256, 10}, {9, 256, 10},
	} {
		if got := chunkEnd(big, tc.start, tc.size); got != tc.want {
			t.Errorf("chunkEnd(start %d, size %d) = %d, want %d", tc.start, tc.size, got, tc.want)
		}
	}
	huge := []heldBatch{{value: make([]byte, 2*maxChunkBytes)}, {value: []byte("x")}}
	if got := chunkEnd(huge, 0, 4); got != 1 {
		t.Errorf("a chunk holds at least one batch: %d", got)
	}
}

func TestBuildHold(t *testing.T) {
	tp := makePlan("camp", 3, 4, 9, 5, 3)
	other := makePlan("camp", 2, 4, 9, 5, 3) // an older generation
	tests := []struct {
		name      string
		partition int32
		mutate    func(map[string][]byte)
		match     bool
		held      int
		problem   string
	}{
		{name: "exact", partition: 1, match: true, held: len(tp.values[1])},
		{name: "missing batch", partition: 2, mutate: func(v map[string][]byte) {
			for k := range v {
				delete(v, k)
				break
			}
		}, held: len(tp.values[2]) - 1, problem: "manifest says"},
		{name: "old generation", partition: 0, mutate: func(v map[string][]byte) {
			for k, b := range other.values[0] {
				v[k] = b
				break
			}
		}, held: len(tp.values[0]) - 1, problem: "generation 2"},
		{name: "wrong partition", partition: 3, mutate: func(v map[string][]byte) {
			maps.Copy(v, tp.values[0])
		}, held: len(tp.values[3]), problem: "belongs to partition 0"},
		{name: "garbage", partition: 1, mutate: func(v map[string][]byte) {
			v[wire.BatchKey("camp", push.IOS, 1)] = []byte("not a batch")
		}, held: len(tp.values[1]) - 1, problem: "not an owlpost batch"},
		{name: "foreign key", partition: 1, mutate: func(v map[string][]byte) {
			v["camp/other"] = []byte("x")
		}, held: len(tp.values[1]), problem: "not a batch key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vals := maps.Clone(tp.values[tc.partition])
			if tc.mutate != nil {
				tc.mutate(vals)
			}
			h := buildHold(tp.m, tc.partition, vals)
			if h.match != tc.match || len(h.batches) != tc.held {
				t.Fatalf("match=%v held=%d, want %v %d; problems %v", h.match, len(h.batches), tc.match, tc.held, h.problems)
			}
			if tc.problem != "" && !strings.Contains(strings.Join(h.problems, "|"), tc.problem) {
				t.Fatalf("problems %v lack %q", h.problems, tc.problem)
			}
			for i := 1; i < len(h.batches); i++ {
				if string(h.batches[i-1].key) >= string(h.batches[i].key) {
					t.Fatal("held batches not in key order")
				}
			}
		})
	}
}

func TestPlanChecksum(t *testing.T) {
	tp := makePlan("camp", 1, 3, 7, 4, 2)
	var holds []*hold
	for p := int32(0); p < 3; p++ {
		h := buildHold(tp.m, p, tp.values[p])
		if !h.match {
			t.Fatalf("partition %d: %v", p, h.problems)
		}
		holds = append(holds, h)
	}
	if got := planChecksum(tp.m, holds); got != tp.m.Checksum {
		t.Fatalf("checksum %s, manifest %s", got, tp.m.Checksum)
	}
	holds[1].batches[0].value = append([]byte(nil), holds[1].batches[0].value...)
	holds[1].batches[0].value[len(holds[1].batches[0].value)-1] ^= 1
	if planChecksum(tp.m, holds) == tp.m.Checksum {
		t.Fatal("a changed byte must change the checksum")
	}
}

func TestProofBatches(t *testing.T) {
	def := &campaign.Campaign{ID: "camp", ProofAudience: []campaign.ProofDevice{
		{Name: "a", Platform: push.IOS, Token: strings.ToUpper(iosTok(1)), Locale: "en-US"},
		{Name: "b", Platform: push.Android, Token: androidTok(2), Locale: "de-DE"},
		{Name: "c", Platform: push.IOS, Token: iosTok(3), Locale: "es-MX"},
		{Name: "d", Platform: push.IOS, Token: iosTok(4), Locale: "en-US"},
	}}
	bs, err := proofBatches(def, 2, 250)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	toks := map[string]string{}
	for _, hb := range bs {
		keys = append(keys, string(hb.key))
		b, err := wire.DecodeBatch(hb.value)
		if err != nil {
			t.Fatal(err)
		}
		if b.Generation != 0 || b.Key() != string(hb.key) || int(hb.tokens) != len(b.Tokens) {
			t.Fatalf("batch %s: %+v", hb.key, b)
		}
		for _, tk := range b.Tokens {
			toks[tk.Token] = b.Locales[tk.Locale]
		}
	}
	if got := strings.Join(keys, ","); got != "camp/android/000000,camp/ios/000000,camp/ios/000001" {
		t.Fatalf("keys %s", got)
	}
	if toks[iosTok(1)] != "en-US" || toks[androidTok(2)] != "de-DE" || toks[iosTok(3)] != "es-MX" || len(toks) != 4 {
		t.Fatalf("tokens %v", toks)
	}
	if bs, err := proofBatches(&campaign.Campaign{ID: "camp"}, 500, 250); err != nil || len(bs) != 0 {
		t.Fatalf("empty audience: %v %v", bs, err)
	}
	bad := &campaign.Campaign{ID: "camp", ProofAudience: []campaign.ProofDevice{{Platform: push.IOS, Token: "xyz"}}}
	if _, err := proofBatches(bad, 500, 250); err == nil {
		t.Fatal("a bad iOS token must be an error, not a panic")
	}
}

func TestReleaseOrder(t *testing.T) {
	mk := func(ios, android int) []heldBatch {
		var out []heldBatch
		for seq := range android {
			out = append(out, heldBatch{key: []byte(wire.BatchKey("c", push.Android, uint32(seq))), platform: push.Android, seq: uint32(seq)})
		}
		for seq := range ios {
			out = append(out, heldBatch{key: []byte(wire.BatchKey("c", push.IOS, uint32(seq))), platform: push.IOS, seq: uint32(seq)})
		}
		return out // key order: every Android batch first
	}
	str := func(bs []heldBatch) string {
		var b strings.Builder
		for _, h := range bs {
			b.WriteString(string(h.platform[0]))
			b.WriteString(strconv.Itoa(int(h.seq)))
		}
		return b.String()
	}
	tests := []struct {
		name         string
		ios, android int
		want         string
	}{
		{name: "empty", want: ""},
		{name: "ios only", ios: 3, want: "i0i1i2"},
		{name: "android only", android: 2, want: "a0a1"},
		{name: "equal counts alternate, iOS first", ios: 3, android: 3, want: "i0a0i1a1i2a2"},
		{name: "proportional", ios: 2, android: 4, want: "a0i0a1a2i1a3"},
		{name: "one of each", ios: 1, android: 1, want: "i0a0"},
		{name: "more iOS", ios: 3, android: 1, want: "i0i1a0i2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := mk(tc.ios, tc.android)
			before := str(in)
			got := releaseOrder(in)
			if s := str(got); s != tc.want {
				t.Fatalf("order %s, want %s", s, tc.want)
			}
			if str(in) != before {
				t.Fatal("releaseOrder modified its input")
			}
			// Deterministic from the set: a shuffled input gives the same order.
			rev := slices.Clone(in)
			slices.Reverse(rev)
			if s := str(releaseOrder(rev)); s != tc.want {
				t.Fatalf("reversed input: order %s, want %s", s, tc.want)
			}
		})
	}
}

func TestSendPartition(t *testing.T) {
	for _, tc := range []struct{ n, b int }{{12, 12}, {48, 12}, {50, 12}, {4, 12}, {12, 4}, {1, 1}} {
		used := map[int]int32{}
		for pid := int32(0); pid < int32(tc.b); pid++ {
			for k := 0; k < 200; k++ {
				got := sendPartition(pid, []byte("c/ios/"+strconv.Itoa(k)), tc.n, tc.b)
				if got < 0 || got >= tc.n {
					t.Fatalf("n=%d b=%d pid=%d: partition %d out of range", tc.n, tc.b, pid, got)
				}
				if tc.n >= tc.b {
					if owner, ok := used[got]; ok && owner != pid {
						t.Fatalf("n=%d b=%d: send partition %d used by batches partitions %d and %d", tc.n, tc.b, got, owner, pid)
					}
				}
				used[got] = pid
			}
		}
		if want := min(tc.n, tc.b*((tc.n+tc.b-1)/tc.b)); tc.n >= tc.b && len(used) != want {
			t.Errorf("n=%d b=%d: %d send partitions used, want %d", tc.n, tc.b, len(used), want)
		}
	}
}
