package planner

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestArena(t *testing.T) {
	tests := []struct {
		name   string
		sizes  []int
		blocks int
	}{
		{"empty", nil, 0},
		{"one token", []int{163}, 1},
		{"exactly one block", []int{1 << 19, 1 << 19}, 1},
		{"spills into a second block", []int{1<<20 - 10, 11}, 2},
		{"many FCM-sized tokens", slices.Repeat([]int{163}, 20000), 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a arena
			var pos []uint32
			var want []string
			for i, n := range tc.sizes {
				b := []byte(strings.Repeat("x", n))
				copy(b, fmt.Sprintf("%d:", i))
				p, err := a.add(b)
				if err != nil {
					t.Fatal(err)
				}
				pos = append(pos, p)
				want = append(want, string(b))
			}
			blocks := a.strings()
			if len(blocks) != tc.blocks {
				t.Errorf("%d blocks, want %d", len(blocks), tc.blocks)
			}
			for i, w := range want {
				off := int(pos[i] & (1<<arenaBits - 1))
				if got := blocks[pos[i]>>arenaBits][off : off+len(w)]; got != w {
					t.Fatalf("token %d: got %.20q..., want %.20q...", i, got, w)
				}
				if len(w) < 1<<16 {
					if got := tokenAt(blocks, pos[i], uint16(len(w))); got != w {
						t.Fatalf("tokenAt %d: got %.20q, want %.20q", i, got, w)
					}
				}
			}
		})
	}
}

func TestArenaTooLong(t *testing.T) {
	var a arena
	if _, err := a.add(make([]byte, 1<<20+1)); err == nil {
		t.Fatal("a token longer than a block was accepted")
	}
}

func TestRefSet(t *testing.T) {
	keys := []string{"a", "b", "a", "c", "b", "d", "a"}
	tests := []struct {
		name string
		hash func(string) uint64
	}{
		{"distinct hashes", func(k string) uint64 { return uint64(k[0]) * 0x9E3779B97F4A7C15 }},
		{"every hash equal", func(string) uint64 { return 42 }},
		{"equal slot, different tags", func(k string) uint64 { return uint64(k[0])<<32 | 7 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := newRefSet(len(keys))
			var kept []string
			for _, k := range keys {
				if set.insert(tc.hash(k), uint32(len(kept)), func(r uint32) bool { return kept[r] == k }) {
					kept = append(kept, k)
				}
			}
			if want := []string{"a", "b", "c", "d"}; !slices.Equal(kept, want) {
				t.Fatalf("kept %v, want %v", kept, want)
			}
		})
	}
}

func iosTok(b byte) [32]byte {
	var t [32]byte
	t[0], t[31] = b, b
	return t
}

func TestDedupe(t *testing.T) {
	// Duplicates within a segment, across segments, and a segment emptied.
	ios := [][]iosEnt{
		{{tok: iosTok(1), loc: 0}, {tok: iosTok(2), loc: 1}, {tok: iosTok(1), loc: 2}},
		{{tok: iosTok(2), loc: 3}},
		{{tok: iosTok(3), loc: 4}, {tok: iosTok(1), loc: 5}, {tok: iosTok(3), loc: 6}},
	}
	if d := dedupeIOS(ios); d != 4 {
		t.Errorf("iOS duplicates = %d, want 4", d)
	}
	var got []uint16
	for _, seg := range ios {
		for _, e := range seg {
			got = append(got, e.loc)
		}
	}
	if want := []uint16{0, 1, 4}; !slices.Equal(got, want) {
		t.Errorf("iOS kept locales %v, want %v (first occurrence wins)", got, want)
	}

	var a1, a2 arena
	add := func(a *arena, tok string, loc uint16) andEnt {
		p, err := a.add([]byte(tok))
		if err != nil {
			t.Fatal(err)
		}
		return andEnt{pos: p, n: uint16(len(tok)), loc: loc}
	}
	and := [][]andEnt{
		{add(&a1, "x:APA91b", 0), add(&a1, "y:APA91b", 1), add(&a1, "x:APA91b", 2)},
		{add(&a2, "y:APA91b", 3), add(&a2, "z:APA91b", 4), add(&a2, "x:APA91", 5)},
	}
	arenas := [][]string{a1.strings(), a2.strings()}
	if d := dedupeAndroid(and, arenas); d != 2 {
		t.Errorf("Android duplicates = %d, want 2", d)
	}
	var toks []string
	for g, seg := range and {
		for _, e := range seg {
			toks = append(toks, fmt.Sprintf("%s@%d", tokenAt(arenas[g], e.pos, e.n), e.loc))
		}
	}
	if want := []string{"x:APA91b@0", "y:APA91b@1", "z:APA91b@4", "x:APA91@5"}; !slices.Equal(toks, want) {
		t.Errorf("Android kept %v, want %v", toks, want)
	}
}
