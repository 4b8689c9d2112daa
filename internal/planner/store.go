package planner

import (
	"errors"
	"math/bits"
	"strings"
)

// How the planner holds an audience in memory while it plans (4M tokens:
// about 80 MB of iOS entries, 260 MB of Android token text, 13 MB of Android
// entries). Every structure grows by whole blocks, never by re-allocating
// and copying what it holds: a single growing slice copies, and leaves
// behind for the GC, about four times its final size on the way, and keeps
// up to a quarter of it unused at the end.

// blockBits sets the entries per block (32,768) of blocks; a reference to
// an entry is (segment << blockBits | index), see refSet.
const blockBits = 15

// blocks is an append-only list of entries in fixed-capacity segments.
type blocks[T any] struct {
	segs [][]T
}

func (b *blocks[T]) add(v T) {
	n := len(b.segs)
	if n == 0 || len(b.segs[n-1]) == cap(b.segs[n-1]) {
		b.segs = append(b.segs, make([]T, 0, 1<<blockBits))
		n++
	}
	b.segs[n-1] = append(b.segs[n-1], v)
}

// arenaBits sets the size of an arena block (1 MiB); a token's position is
// (block << arenaBits | offset), so a partition holds at most 4 GiB.
const arenaBits = 20

// errArenaFull is returned when a partition's Android tokens exceed 4 GiB.
var errArenaFull = errors.New("more than 4 GiB of Android tokens")

// arena holds token bytes back to back in 1 MiB blocks. A token never
// straddles two blocks (tokens are shorter than an audience record, 16 KiB).
// Each block is a strings.Builder grown once, so its String() is the block
// without a copy and every token is a substring of it.
type arena struct {
	blocks []*strings.Builder
}

// add appends tok and returns its position.
func (a *arena) add(tok []byte) (uint32, error) {
	n := len(a.blocks)
	if n == 0 || a.blocks[n-1].Len()+len(tok) > 1<<arenaBits {
		if n == 1<<(32-arenaBits) || len(tok) > 1<<arenaBits {
			return 0, errArenaFull
		}
		b := new(strings.Builder)
		b.Grow(1 << arenaBits)
		a.blocks = append(a.blocks, b)
		n++
	}
	b := a.blocks[n-1]
	off := b.Len()
	b.Write(tok)
	return uint32(n-1)<<arenaBits | uint32(off), nil
}

// strings returns the blocks as strings (no copy); the arena must not be
// added to afterwards.
func (a *arena) strings() []string {
	s := make([]string, len(a.blocks))
	for i, b := range a.blocks {
		s[i] = b.String()
	}
	return s
}

// tokenAt is the token of length n at pos in blocks from arena.strings.
func tokenAt(blocks []string, pos uint32, n uint16) string {
	off := pos & (1<<arenaBits - 1)
	return blocks[pos>>arenaBits][off : off+uint32(n)]
}

// refSet is the de-duplication set: an open-addressing hash table (linear
// probing, at most 3/4 full) of references to the entries kept so far.
// Each slot is 8 bytes, the upper half of the key's hash next to the
// reference plus one (0 = empty), so most probes are decided without
// touching the entry; a Go map of the 32-byte iOS tokens costs about five
// times as much memory, and one of the Android token strings adds pointers
// for the GC to scan.
type refSet struct {
	slots []uint64
	mask  uint64
}

func newRefSet(n int) *refSet {
	size := uint64(8)
	if want := uint64(n) + uint64(n)/3 + 1; want > size {
		size = 1 << bits.Len64(want-1)
	}
	return &refSet{slots: make([]uint64, size), mask: size - 1}
}

// insert adds ref under hash h unless the set holds a reference for which
// same is true; it reports whether ref was added.
func (s *refSet) insert(h uint64, ref uint32, same func(ref uint32) bool) bool {
	tag := h &^ (1<<32 - 1)
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		v := s.slots[i]
		if v == 0 {
			s.slots[i] = tag | (uint64(ref) + 1)
			return true
		}
		if v&^(1<<32-1) == tag && same(uint32(v)-1) {
			return false
		}
	}
}
