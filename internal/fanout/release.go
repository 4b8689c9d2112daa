package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

var errAborted = errors.New("fanout: campaign aborted")

// errTxnFailed marks a release transaction that did not commit, or whose
// outcome is unknown. The partition's producer is never used again after
// one (see recoverProducer): franz-go's in-place recovery of a failed
// transaction can leave the broker's transaction open at the same epoch
// (an abort it reports done without reaching the coordinator), and the next
// transaction would then commit the failed attempt's send tasks with its
// own. Its epoch may also have been bumped under it: by another instance
// initialising the same transactional id (the partition moved), or by the
// transaction coordinator aborting a transaction left open longer than
// txnTimeout (a coordinator failover, a partitioned broker), which under
// transaction.version 2 (Kafka 4's default) no producer recovers from.
var errTxnFailed = errors.New("fanout: release transaction failed")

// chunkSize is the number of batches in the n-th transaction of a
// partition's release: small first (the first send task should be visible
// within milliseconds of the trigger), then doubling to maxChunk.
func chunkSize(n int) int {
	c := firstChunk
	for i := 0; i < n && c < maxChunk; i++ {
		c *= 2
	}
	return min(c, maxChunk)
}

// chunkEnd returns the end of the chunk starting at start: at most size
// batches and maxChunkBytes of values, and at least one batch.
func chunkEnd(batches []heldBatch, start uint32, size int) uint32 {
	end := min(int(start)+size, len(batches))
	bytes := 0
	for i := int(start); i < end; i++ {
		bytes += len(batches[i].value)
		if bytes > maxChunkBytes && i > int(start) {
			return uint32(i)
		}
	}
	return uint32(end)
}

// release commits batches (in the given order, releaseOrder's) to the send topics, from
// the partition's progress marker on, one transaction per chunk. Each
// transaction also writes the marker with the count released so far, so
// records and progress commit or abort together. A failed transaction ends
// the release with an error wrapping errTxnFailed; the release goes on with
// a new producer, from the markers (recoverProducer). It returns the final
// marker.
func (s *Stage) release(p *partition, campaign string, fire wire.Fire, batches []heldBatch, generation uint64,
	onCommit func(released uint32)) (marker, error) {
	id := markerID(campaign, fire.ID)
	total := uint32(len(batches))
	mk := p.markers[id]
	if mk.batches == 0 && mk.released == 0 {
		mk = marker{generation: generation, batches: total}
	}
	if total == 0 {
		return mk, nil
	}
	hdrs := kafka.Headers(wire.FireHeaders(fire))
	key := MarkerKey(campaign, fire.ID, p.id)
	pace := s.cfg.Fanout.ReleasePace
	for n := 0; mk.released < total; {
		if pace > 0 && n > 0 && !retry.Sleep(p.ctx, pace) {
			return mk, p.ctx.Err()
		}
		if err := p.ctx.Err(); err != nil {
			return mk, err
		}
		if fire.Kind == wire.KindFire && s.campaignAborted(campaign) {
			return mk, errAborted
		}
		size := chunkSize(n)
		if pace > 0 {
			size = 1
		}
		end := chunkEnd(batches, mk.released, size)
		next := marker{generation: generation, batches: total, released: end, instance: s.cfg.InstanceID}
		val, err := markerValue(campaign, s.cfg.InstanceID, p.id, next)
		if err != nil {
			return mk, err
		}
		if err := p.prod.BeginTransaction(); err != nil {
			return mk, fmt.Errorf("%w: %s partition %d: %w", errTxnFailed, campaign, p.id, err)
		}
		chunk := batches[mk.released:end]
		err = s.commitChunk(p, chunk, hdrs, &kgo.Record{Topic: s.cfg.Topics.Status, Key: []byte(key), Value: val})
		if err != nil {
			if p.ctx.Err() != nil {
				return mk, p.ctx.Err()
			}
			s.m.txnRetries.Inc()
			return mk, fmt.Errorf("%w: %s partition %d batches %d-%d: %w", errTxnFailed, campaign, p.id, mk.released, end, err)
		}
		for i := range chunk {
			plat := string(chunk[i].platform)
			s.m.batchesRel.WithLabelValues(plat, fire.Kind).Inc()
			s.m.tokensRel.WithLabelValues(plat, fire.Kind).Add(float64(chunk[i].tokens))
		}
		mk = next
		p.markers[id] = mk
		n++
		if onCommit != nil {
			onCommit(mk.released)
		}
	}
	return mk, nil
}

// commitChunk runs one transaction: the chunk's send tasks plus the marker.
// The context is not the partition's: cancelling an EndTransaction in
// flight would leave its outcome unknown. A failed transaction is not
// aborted here: the producer is replaced, and the new one's InitProducerID
// aborts it at the coordinator.
func (s *Stage) commitChunk(p *partition, chunk []heldBatch, hdrs []kgo.RecordHeader, mrec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), txnTimeout)
	defer cancel()
	var mu sync.Mutex
	var perr error
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = errors.Join(perr, err)
			mu.Unlock()
		}
	}
	for i := range chunk {
		b := &chunk[i]
		p.prod.Produce(ctx, &kgo.Record{Topic: s.sendTopic(b.platform), Key: b.key, Value: b.value, Headers: hdrs}, cb)
	}
	p.prod.Produce(ctx, mrec, cb)
	if err := p.prod.Flush(ctx); err != nil {
		mu.Lock()
		perr = errors.Join(perr, err)
		mu.Unlock()
	}
	mu.Lock()
	failed := perr
	mu.Unlock()
	if failed != nil {
		return failed
	}
	if s.beforeCommit != nil {
		s.beforeCommit(p.id)
	}
	// The commit has a context of its own: the produce phase may have used
	// most of ctx's.
	ectx, ecancel := context.WithTimeout(context.Background(), txnTimeout)
	defer ecancel()
	return p.prod.EndTransaction(ectx, kgo.TryCommit)
}

func (s *Stage) sendTopic(p push.Platform) string {
	if p == push.IOS {
		return s.cfg.Topics.SendIOS
	}
	return s.cfg.Topics.SendAndroid
}
