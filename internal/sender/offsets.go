package sender

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// offsets tracks, per partition of the send topic, the records handed to
// workers and which of them are finished, so that an offset is committed only
// when every earlier record of its partition is finished. Several batches of a
// partition are in flight at once and finish in any order.
type offsets struct {
	mu      sync.Mutex
	parts   map[int32]*partState
	changed chan struct{} // closed and replaced on every finish/drop
}

// partState is one partition's queue of dispatched records, in offset order.
type partState struct {
	q         []*entry
	next      kgo.EpochOffset // offset to commit: after the last finished prefix
	committed int64           // last offset committed (-1: none by us)
}

// entry is one dispatched record. It points at the partState it was added to:
// once that partition is dropped (revoked, lost), finishing the entry has no
// effect, even if the partition comes back with a new state.
type entry struct {
	p       *partState
	offset  int64
	epoch   int32
	done    bool
	running bool // a worker still has it (false once finished or abandoned)
}

func newOffsets() *offsets {
	return &offsets{parts: map[int32]*partState{}, changed: make(chan struct{})}
}

// add registers a dispatched record; records of a partition must be added in
// offset order (the order polls return them).
func (o *offsets) add(partition int32, offset int64, epoch int32) *entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	ps := o.parts[partition]
	if ps == nil {
		ps = &partState{next: kgo.EpochOffset{Epoch: -1, Offset: -1}, committed: -1}
		o.parts[partition] = ps
	}
	e := &entry{p: ps, offset: offset, epoch: epoch, running: true}
	ps.q = append(ps.q, e)
	return e
}

// finish marks e finished and advances its partition's committable offset
// over the finished prefix.
func (o *offsets) finish(e *entry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.done, e.running = true, false
	ps := e.p
	for len(ps.q) > 0 && ps.q[0].done {
		h := ps.q[0]
		ps.q[0] = nil
		ps.q = ps.q[1:]
		ps.next = kgo.EpochOffset{Epoch: h.epoch, Offset: h.offset + 1}
	}
	o.notifyLocked()
}

// abandon records that no worker has e any more although it is not finished
// (interrupted, fatal): it holds back its partition's commits but is not
// waited for.
func (o *offsets) abandon(e *entry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.running = false
	o.notifyLocked()
}

func (o *offsets) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// uncommitted returns the committable offsets not committed yet, per
// partition (nil when there is nothing to commit).
func (o *offsets) uncommitted() map[int32]kgo.EpochOffset {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out map[int32]kgo.EpochOffset
	for p, ps := range o.parts {
		if ps.next.Offset > ps.committed {
			if out == nil {
				out = map[int32]kgo.EpochOffset{}
			}
			out[p] = ps.next
		}
	}
	return out
}

// committed records a successful commit of offs.
func (o *offsets) markCommitted(offs map[int32]kgo.EpochOffset) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, eo := range offs {
		if ps := o.parts[p]; ps != nil && eo.Offset > ps.committed {
			ps.committed = eo.Offset
		}
	}
}

// inFlight counts the records of the given partitions (all when partitions
// is nil) that a worker still processes.
func (o *offsets) inFlight(partitions []int32) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inFlightLocked(partitions)
}

func (o *offsets) inFlightLocked(partitions []int32) int {
	n := 0
	count := func(ps *partState) {
		for _, e := range ps.q {
			if e.running {
				n++
			}
		}
	}
	if partitions == nil {
		for _, ps := range o.parts {
			count(ps)
		}
		return n
	}
	for _, p := range partitions {
		if ps := o.parts[p]; ps != nil {
			count(ps)
		}
	}
	return n
}

// waitIdle waits until no worker processes a record of the given partitions
// (nil: all), or timeout passes; it reports whether they became idle.
func (o *offsets) waitIdle(partitions []int32, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		o.mu.Lock()
		n := o.inFlightLocked(partitions)
		ch := o.changed
		o.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

// drop forgets partitions (revoked or lost): their in-flight records will
// finish without effect and nothing more is committed for them.
func (o *offsets) drop(partitions []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range partitions {
		delete(o.parts, p)
	}
	o.notifyLocked()
}

// only returns the subset of offs for partitions.
func only(offs map[int32]kgo.EpochOffset, partitions []int32) map[int32]kgo.EpochOffset {
	out := map[int32]kgo.EpochOffset{}
	for _, p := range partitions {
		if eo, ok := offs[p]; ok {
			out[p] = eo
		}
	}
	return out
}
