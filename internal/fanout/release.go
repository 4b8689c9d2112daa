package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

var errAborted = errors.New("fanout: campaign aborted")

// errFenced marks errors after which the partition's producer can never
// write again: its epoch was bumped under it. Either another instance
// initialised the same transactional id (the partition moved), or the
// transaction coordinator aborted a transaction of this producer that stayed
// open longer than txnTimeout (a coordinator failover, a partitioned broker)
// while the partition is still this instance's. recoverFenced tells which.
var errFenced = errors.New("fanout: producer fenced")

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
// records and progress commit or abort together. After a failed
// transaction the marker is re-read before going on: the retry might
// otherwise repeat a chunk whose commit outcome was unknown. It returns the
// final marker.
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
	dirty := false
	attempts := 0
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
		if err := p.prod.BeginTransaction(); err != nil {
			return mk, fmt.Errorf("%w: %s partition %d: %w", errFenced, campaign, p.id, err)
		}
		if dirty {
			// BeginTransaction recovered the producer id (a new epoch), so
			// what the markers say now is final for earlier epochs.
			ms, err := s.readMarkers(p.ctx, p.id)
			if err != nil {
				_ = p.prod.EndTransaction(context.Background(), kgo.TryAbort)
				if !retry.Sleep(p.ctx, time.Second) {
					return mk, p.ctx.Err()
				}
				continue
			}
			p.markers = ms
			if cur, ok := ms[id]; ok {
				mk = cur
			}
			dirty = false
			if mk.released >= total {
				_ = p.prod.EndTransaction(context.Background(), kgo.TryAbort)
				break
			}
		}
		size := chunkSize(n)
		if pace > 0 {
			size = 1
		}
		end := chunkEnd(batches, mk.released, size)
		next := marker{generation: generation, batches: total, released: end, instance: s.cfg.InstanceID}
		val, err := markerValue(campaign, s.cfg.InstanceID, p.id, next)
		if err != nil {
			_ = p.prod.EndTransaction(context.Background(), kgo.TryAbort)
			return mk, err
		}
		chunk := batches[mk.released:end]
		err = s.commitChunk(p, chunk, hdrs, &kgo.Record{Topic: s.cfg.Topics.Status, Key: []byte(key), Value: val})
		if err != nil {
			if p.ctx.Err() != nil {
				return mk, p.ctx.Err()
			}
			attempts++
			s.m.txnRetries.Inc()
			if fenced(err) || attempts >= maxTxnAttempts {
				return mk, fmt.Errorf("fanout: release %s partition %d batches %d-%d: %w", campaign, p.id, mk.released, end, err)
			}
			s.log.Warn("fanout: release transaction failed, retrying", "campaign", campaign, "partition", p.id, "attempt", attempts, "err", err)
			dirty = true
			if !retry.Sleep(p.ctx, time.Duration(attempts)*100*time.Millisecond) {
				return mk, p.ctx.Err()
			}
			continue
		}
		attempts = 0
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
// flight would leave its outcome unknown.
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
		if err := abortTxn(p); err != nil {
			return errors.Join(failed, err)
		}
		return failed
	}
	if s.beforeCommit != nil {
		s.beforeCommit(p.id)
	}
	// The commit has a context of its own: the produce phase may have used
	// most of ctx's.
	ectx, ecancel := context.WithTimeout(context.Background(), txnTimeout)
	defer ecancel()
	if err := p.prod.EndTransaction(ectx, kgo.TryCommit); err != nil {
		// Not committed, or unknown: abort (franz-go bumps the epoch if
		// the outcome is unknown, which settles it), then re-read markers.
		if aerr := abortTxn(p); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	return nil
}

// abortTxn ends the partition producer's open transaction with an abort,
// on a context of its own: the failed attempt's may have expired (a
// transaction coordinator failing over takes longer than txnTimeout), and
// a producer left inside a transaction could never begin the next one. It
// tries a few times while the coordinator moves; a fenced producer stops.
func abortTxn(p *partition) error {
	var err error
	for i := range abortAttempts {
		ctx, cancel := context.WithTimeout(context.Background(), txnTimeout)
		_ = p.prod.AbortBufferedRecords(ctx)
		err = p.prod.EndTransaction(ctx, kgo.TryAbort)
		cancel()
		if err == nil || fenced(err) || p.ctx.Err() != nil {
			return err
		}
		if !retry.Sleep(p.ctx, time.Duration(i+1)*time.Second) {
			return err
		}
	}
	return err
}

// fenced reports whether err means the producer's epoch was bumped (see
// errFenced). Under transaction.version 2 (Kafka 4's default) franz-go cannot
// recover such a producer in place; only a new one can go on.
func fenced(err error) bool {
	return errors.Is(err, errFenced) || errors.Is(err, kerr.ProducerFenced) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.InvalidProducerEpoch)
}

func (s *Stage) sendTopic(p push.Platform) string {
	if p == push.IOS {
		return s.cfg.Topics.SendIOS
	}
	return s.cfg.Topics.SendAndroid
}
