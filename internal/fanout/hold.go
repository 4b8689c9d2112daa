package fanout

import (
	"cmp"
	"fmt"
	"slices"
	"sort"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// heldBatch is one batch record kept verbatim for release.
type heldBatch struct {
	key      []byte
	value    []byte
	platform push.Platform
	seq      uint32
	tokens   uint32
}

// hold is what one instance holds of one campaign on one batches-topic
// partition. The batches slice is immutable once the hold is installed;
// release reads it without locks and drops it (sets it to nil under the
// stage lock) when the partition is fully released.
type hold struct {
	partition  int32
	generation uint64
	batches    []heldBatch // sorted by key; releaseOrder gives the order a release commits and counts them
	nBatches   uint32
	tokens     uint64
	bytes      int64
	// match: every record decoded, belongs to this plan generation and
	// partition, and the counts equal the manifest's for the partition.
	match    bool
	problems []string
	// released counts batches of the current fire committed on this
	// partition (from the progress marker); done when all are.
	released uint32
	done     bool
}

// maxProblems bounds the problems kept per hold (they end up in a status).
const maxProblems = 8

// buildHold verifies the raw records of one campaign read from one
// batches-topic partition against the plan manifest and returns the hold.
// Records that fail a check are left out of the hold and reported; the
// release releases only verified batches. values maps batch key to record
// value (latest per key, tombstones already applied).
func buildHold(m *wire.Manifest, partition int32, values map[string][]byte) *hold {
	h := &hold{partition: partition, generation: m.Generation}
	problem := func(format string, args ...any) {
		if len(h.problems) < maxProblems {
			h.problems = append(h.problems, fmt.Sprintf(format, args...))
		} else if len(h.problems) == maxProblems {
			h.problems = append(h.problems, "...")
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h.batches = make([]heldBatch, 0, len(keys))
	bad := 0
	for _, k := range keys {
		v := values[k]
		c, p, seq, ok := wire.ParseBatchKey(k)
		if !ok || c != m.Campaign {
			bad++
			problem("key %q is not a batch key of %s", k, m.Campaign)
			continue
		}
		b, err := wire.DecodeBatch(v)
		switch {
		case err != nil:
			problem("%s: %v", k, err)
		case b.Campaign != c || b.Platform != p || b.Seq != seq:
			problem("%s: record says %s", k, b.Key())
		case b.Generation != m.Generation:
			problem("%s: generation %d, plan has %d", k, b.Generation, m.Generation)
		case (p == push.IOS && seq >= m.IOSBatches) || (p == push.Android && seq >= m.AndroidBatches):
			problem("%s: seq beyond the plan's %d ios / %d android batches", k, m.IOSBatches, m.AndroidBatches)
		case wire.Assign(p, seq, m.IOSBatches, m.Partitions) != partition:
			problem("%s: belongs to partition %d", k, wire.Assign(p, seq, m.IOSBatches, m.Partitions))
		default:
			h.batches = append(h.batches, heldBatch{key: []byte(k), value: v, platform: p, seq: seq, tokens: uint32(len(b.Tokens))})
			h.tokens += uint64(len(b.Tokens))
			h.bytes += int64(len(k) + len(v))
			continue
		}
		bad++
	}
	h.nBatches = uint32(len(h.batches))
	var want wire.PartitionCount
	if int(partition) < len(m.PerPartition) {
		want = m.PerPartition[partition]
	} else if m.Partitions > 0 && partition < m.Partitions {
		problem("manifest has no counts for partition %d", partition)
		bad++
	}
	if h.nBatches != want.Batches || h.tokens != want.Tokens {
		problem("partition %d holds %d batches / %d tokens, manifest says %d / %d",
			partition, h.nBatches, h.tokens, want.Batches, want.Tokens)
		bad++
	}
	h.match = bad == 0
	return h
}

// releaseOrder returns batches in the order a release commits them and its
// progress marker counts them. The iOS and the Android batches, each by
// seq, are merged in proportion to their counts: the i-th of nI iOS batches
// sits at (2i+1)/(2nI), the a-th of nA Android batches at (2a+1)/(2nA), the
// smaller first and iOS first on a tie. So both platforms' senders get work
// from a partition's first transaction on, and each platform's share of the
// partition is released at the same pace (key order put every Android
// batch before the first iOS one). The order depends only on the set of
// batches, so the next owner of a partition, holding the same verified
// batches (the marker's generation and count are checked), counts the same
// way. batches is not modified.
func releaseOrder(batches []heldBatch) []heldBatch {
	var ios, android []heldBatch
	for _, b := range batches {
		if b.platform == push.IOS {
			ios = append(ios, b)
		} else {
			android = append(android, b)
		}
	}
	bySeq := func(x, y heldBatch) int { return cmp.Compare(x.seq, y.seq) }
	slices.SortStableFunc(ios, bySeq)
	slices.SortStableFunc(android, bySeq)
	out := make([]heldBatch, 0, len(batches))
	nI, nA := uint64(len(ios)), uint64(len(android))
	i, a := 0, 0
	for i < len(ios) || a < len(android) {
		if a == len(android) || (i < len(ios) && (2*uint64(i)+1)*nA <= (2*uint64(a)+1)*nI) {
			out = append(out, ios[i])
			i++
		} else {
			out = append(out, android[a])
			a++
		}
	}
	return out
}

// planChecksum recomputes the manifest checksum over held batches covering
// every partition of the plan. It is only meaningful when holds has one
// entry per partition 0..m.Partitions-1.
func planChecksum(m *wire.Manifest, holds []*hold) string {
	ph := wire.NewPlanHash(m.IOSBatches, m.AndroidBatches)
	for _, h := range holds {
		for i := range h.batches {
			b := &h.batches[i]
			ph.Add(b.platform == push.IOS, b.seq, b.value)
		}
	}
	return ph.Sum()
}
