package planner

import (
	"fmt"
	"math"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/kafka"
)

// rehearsalEnds returns the launch's audience snapshot that a rehearsal
// plans: its recorded end offsets, checked against the topic's current ones
// (now). A partition that is gone, or an end beyond the current end (the
// topic was deleted and re-created), means the launch's snapshot can no
// longer be read: re-plan the launch, then rehearse again.
func rehearsalEnds(r *campaign.Rehearsal, topic string, now kafka.SnapshotEnd) (kafka.SnapshotEnd, error) {
	ends := kafka.SnapshotEnd{}
	for p, end := range r.AudienceEnds {
		cur, ok := now[p]
		if !ok || end > cur {
			return nil, fmt.Errorf("audience %s no longer holds the snapshot of %s (partition %d: planned up to %d, now ends at %d); re-plan %s and rehearse again",
				topic, r.Of, p, end, cur, r.Of)
		}
		ends[p] = end
	}
	return ends, nil
}

// inSample reports whether a token belongs to the sample: its mixed FNV-1a
// hash falls in the first sample-th of the 64-bit range. The same token is
// in or out on every plan, on every machine; iOS tokens are hashed in their
// 32-byte binary form, so upper- and lower-case hex agree. FNV-1a alone
// leaves the high bits of tokens that differ in a few trailing bytes
// clustered (all 60 sequential test tokens fell into a 50% sample), so the
// hash goes through a 64-bit finaliser (MurmurHash3's fmix64).
func inSample(token []byte, sample float64) bool {
	h := uint64(14695981039346656037) // FNV-1a, 64 bit, without allocating
	for _, c := range token {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return float64(h) < sample*math.MaxUint64
}
