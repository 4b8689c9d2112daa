package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// PlanHash computes a manifest checksum: SHA-256 over the SHA-256 of every
// batch record value, iOS batches by seq then Android batches by seq. The
// planner feeds batches as it encodes them; the fanout feeds the record bytes
// it holds, so both sides hash exactly what travels.
type PlanHash struct {
	ios, android [][32]byte
}

// NewPlanHash sizes a hash for the given batch counts.
func NewPlanHash(iosBatches, androidBatches uint32) *PlanHash {
	return &PlanHash{ios: make([][32]byte, iosBatches), android: make([][32]byte, androidBatches)}
}

// Add records one batch record value; ok is false if seq is out of range.
func (h *PlanHash) Add(ios bool, seq uint32, value []byte) bool {
	s := h.android
	if ios {
		s = h.ios
	}
	if int(seq) >= len(s) {
		return false
	}
	s[seq] = sha256.Sum256(value)
	return true
}

// Sum returns the hex checksum.
func (h *PlanHash) Sum() string {
	var d hash.Hash = sha256.New()
	for _, s := range [][][32]byte{h.ios, h.android} {
		for i := range s {
			d.Write(s[i][:])
		}
	}
	return hex.EncodeToString(d.Sum(nil))
}
