package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SnapshotEnd is where a snapshot read stops, per partition: the last stable
// offset (read_committed end) taken when the read starts. Records produced
// after that are not part of the snapshot.
type SnapshotEnd map[int32]int64

// SnapshotEnds lists the read_committed end offsets of topic now, for the
// given partitions (nil = all).
func SnapshotEnds(ctx context.Context, adm *kadm.Client, topic string, partitions []int32) (SnapshotEnd, error) {
	lo, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	if err := lo.Error(); err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	want := map[int32]bool{}
	for _, p := range partitions {
		want[p] = true
	}
	ends := SnapshotEnd{}
	for p, o := range lo[topic] {
		if partitions == nil || want[p] {
			ends[p] = o.Offset
		}
	}
	if len(ends) == 0 && partitions == nil {
		return nil, fmt.Errorf("kafka: topic %s has no partitions (does it exist?)", topic)
	}
	return ends, nil
}

// WrittenEnds lists the high watermarks of every partition of topic now:
// the end of everything written, committed or not. A read_committed read up
// to them (ReadSnapshot) sees every transaction committed before the
// listing, and waits for the transactions open at the listing to end.
func WrittenEnds(ctx context.Context, adm *kadm.Client, topic string) (SnapshotEnd, error) {
	lo, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	ends := SnapshotEnd{}
	for p, o := range lo[topic] {
		ends[p] = o.Offset
	}
	if len(ends) == 0 {
		return nil, fmt.Errorf("kafka: topic %s has no partitions (does it exist?)", topic)
	}
	return ends, nil
}

// ReadSnapshot consumes topic from the start of each partition in ends up to
// its end offset, read_committed, and calls fn for every data record.
// Partitions are fetched in parallel; fn is called from one goroutine per
// partition, concurrently across partitions, in offset order within one.
// A partition is done when a record (data or transaction marker) at or
// beyond end-1 has been seen. It returns ctx.Err() when cancelled and the
// first error fn returns.
func ReadSnapshot(ctx context.Context, base []kgo.Opt, topic string, ends SnapshotEnd, fn func(*kgo.Record) error) error {
	return ReadRange(ctx, base, topic, nil, ends, fn)
}

// ReadRange is ReadSnapshot from the given start offsets: a partition of
// ends absent from starts is not read; nil starts reads every partition from
// its log start (a start below the log start reads from the log start).
func ReadRange(ctx context.Context, base []kgo.Opt, topic string, starts map[int32]int64, ends SnapshotEnd, fn func(*kgo.Record) error) error {
	offsets := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	for p, end := range ends {
		from := kgo.NewOffset().AtStart()
		if starts != nil {
			st, ok := starts[p]
			if !ok || st >= end {
				continue
			}
			from = kgo.NewOffset().At(st)
		}
		if end > 0 {
			offsets[p] = from
			remaining[p] = end
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers are returned so a partition ending in a commit marker
		// still reaches its end offset.
		kgo.KeepControlRecords(),
		// Small fetches and one queued chunk per partition bound memory:
		// a queued chunk pins its fetch buffer (planning 4M tokens peaked
		// ~150 MiB higher with 8 MiB x 4 per partition).
		kgo.FetchMaxPartitionBytes(2<<20),
		kgo.FetchMaxBytes(16<<20),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: snapshot %s: %w", topic, err)
	}
	defer cl.Close()

	type work struct{ recs []*kgo.Record }
	chans := map[int32]chan work{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for p := range remaining {
		ch := make(chan work, 1)
		chans[p] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range ch {
				for _, r := range w.recs {
					if r.Attrs.IsControl() {
						continue
					}
					if err := fn(r); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						cancel()
						for range ch { // drain
						}
						return
					}
				}
			}
		}()
	}
	defer func() {
		for _, ch := range chans {
			if ch != nil {
				close(ch)
			}
		}
		wg.Wait()
	}()

	reached := map[int32]int64{} // the offset after the last record fetched, per partition
	for len(remaining) > 0 {
		fs := cl.PollFetches(wctx)
		if wctx.Err() != nil {
			break
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = errors.Join(ferr, fmt.Errorf("partition %d: %w", p, err))
			}
		})
		if ferr != nil {
			return fmt.Errorf("kafka: snapshot %s: %w", topic, ferr)
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			end, ok := remaining[fp.Partition]
			if !ok || len(fp.Records) == 0 {
				return
			}
			recs := fp.Records
			reached[fp.Partition] = recs[len(recs)-1].Offset + 1
			// Drop records beyond the snapshot.
			cut := sort.Search(len(recs), func(i int) bool { return recs[i].Offset >= end })
			done := cut < len(recs) || recs[len(recs)-1].Offset >= end-1
			recs = recs[:cut]
			if len(recs) > 0 {
				select {
				case chans[fp.Partition] <- work{recs}:
				case <-wctx.Done():
				}
			}
			if done {
				close(chans[fp.Partition])
				chans[fp.Partition] = nil
				delete(remaining, fp.Partition)
			}
		})
	}
	for _, ch := range chans {
		if ch != nil {
			close(ch)
		}
	}
	chans = nil
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil && len(remaining) > 0 {
		// Where the read stopped tells a partition without a leader (nothing
		// fetched) from one whose last stable offset is held by an open
		// transaction (fetched up to it).
		parts := slices.Sorted(maps.Keys(remaining))
		where := make([]string, len(parts))
		for i, p := range parts {
			if at, ok := reached[p]; ok {
				where[i] = fmt.Sprintf("partition %d at %d of %d", p, at, remaining[p])
			} else {
				where[i] = fmt.Sprintf("partition %d: nothing fetched, end %d", p, remaining[p])
			}
		}
		return fmt.Errorf("kafka: snapshot %s: not read to its end (%s): %w", topic, strings.Join(where, ", "), err)
	}
	return ctx.Err()
}

// Read reads topic's snapshot (SnapshotEnds now) from starts (as ReadRange;
// nil = from the log start) and calls fn for every data record, one call at
// a time, in offset order within a partition.
func Read(ctx context.Context, adm *kadm.Client, base []kgo.Opt, topic string, starts map[int32]int64, fn func(*kgo.Record)) error {
	ends, err := SnapshotEnds(ctx, adm, topic, nil)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	return ReadRange(ctx, base, topic, starts, ends, func(r *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		fn(r)
		return nil
	})
}

// OffsetsSince lists, for every partition of topic, the offset from which a
// read sees every record with a timestamp at or after since, and every
// record produced after the listing whatever its timestamp.
//
// Listing by timestamp alone misses records. For a partition with no record
// at or after since, the broker answers -1, and kadm then lists the end
// offset in a second request: a record appended between the two requests
// (a result written milliseconds after a proof request, on a partition
// quiet for a minute) lies below that end offset and is never read. So the
// end offsets are listed first, and a partition starts at the earlier of
// its end offset and its first offset at or after since.
func OffsetsSince(ctx context.Context, adm *kadm.Client, topic string, since time.Time) (map[int32]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	after, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	if err == nil {
		err = after.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: offsets of %s after %s: %w", topic, since.UTC().Format(time.RFC3339Nano), err)
	}
	starts := map[int32]int64{}
	for p, e := range ends[topic] {
		starts[p] = e.Offset
		if a, ok := after[topic][p]; ok && a.Offset >= 0 && a.Offset < e.Offset {
			starts[p] = a.Offset
		}
	}
	if len(starts) == 0 {
		return nil, fmt.Errorf("kafka: topic %s has no partitions (does it exist?)", topic)
	}
	return starts, nil
}

// Written records the last offset a producer wrote per topic and partition
// (Note from the produce promises); WaitReadable uses it after a commit.
type Written struct {
	mu   sync.Mutex
	last map[string]map[int32]int64
}

// Note records r's offset; call it from a produce promise on success.
func (w *Written) Note(r *kgo.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[string]map[int32]int64{}
	}
	ps := w.last[r.Topic]
	if ps == nil {
		ps = map[int32]int64{}
		w.last[r.Topic] = ps
	}
	if o, ok := ps[r.Partition]; !ok || r.Offset > o {
		ps[r.Partition] = r.Offset
	}
}

// WaitReadable waits until a read_committed reader can read every offset
// noted in w: each partition's last stable offset is past the last record
// written there. Kafka answers EndTxn before the commit markers are written,
// so right after a commit a read_committed reader can still miss some
// partitions of the transaction. It polls every 10 ms until ctx is done.
func (w *Written) WaitReadable(ctx context.Context, adm *kadm.Client) error {
	w.mu.Lock()
	topics := make([]string, 0, len(w.last))
	for t := range w.last {
		topics = append(topics, t)
	}
	w.mu.Unlock()
	if len(topics) == 0 {
		return nil
	}
	for {
		lo, err := adm.ListCommittedOffsets(ctx, topics...)
		if err == nil {
			err = lo.Error()
		}
		if err == nil && w.readable(lo) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("kafka: waiting for committed records to be readable: %w (last error: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("kafka: waiting for committed records to be readable: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (w *Written) readable(lo kadm.ListedOffsets) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t, ps := range w.last {
		for p, last := range ps {
			if o, ok := lo.Lookup(t, p); !ok || o.Offset <= last {
				return false
			}
		}
	}
	return true
}
