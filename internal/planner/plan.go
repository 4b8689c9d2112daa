package planner

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// Producer settings of the plan transaction. Batches are 16-41 KB, so large
// record batches amortize the per-request cost; max.message.bytes of the
// batches topic is 4 MiB (kafka.Specs), other topics keep the broker's 1 MB.
// The buffer bounds what the encoders may run ahead of the broker: eight
// full record batches keep every request full, and more only adds to the
// planner's peak memory (a 256 MiB buffer would be most of a 4M plan's
// writing phase).
const (
	batchesRecordBatchBytes = 4_000_000
	otherRecordBatchBytes   = 1_000_000
	maxBufferedBytes        = 32 << 20
)

// Plan plans one campaign now: it reads the campaign's audience topic up to
// the end offsets taken when it starts, rejects malformed records to the
// rejects topic, drops duplicate tokens, and writes the batches, the
// tombstones of batches the previous plan had and this one has not, and the
// manifest, all in one Kafka transaction, so read_committed readers see the
// old plan or the new one, never a mix. by is recorded in the manifest.
//
// progress, if not nil, is called about once a second and once at the end,
// never concurrently. Plans of one Stage run one at a time. On error nothing
// of the plan is visible (the transaction is aborted); errors wrap
// catalog.ErrNotFound for an unknown campaign and ctx.Err() on cancellation.
func (s *Stage) Plan(ctx context.Context, campaignID, by string, progress func(Progress)) (*wire.Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	run := &planRun{s: s, id: campaignID, by: by, start: start}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	if progress != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					progress(run.snapshot())
				}
			}
		}()
	}
	m, err := run.plan(ctx)
	close(stop)
	wg.Wait()
	s.m.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.plans.WithLabelValues("error").Inc()
		s.log.Error("plan failed", "campaign", campaignID, "err", err)
		return nil, fmt.Errorf("planner: plan %s: %w", campaignID, err)
	}
	s.m.plans.WithLabelValues("ok").Inc()
	run.phase.Store("done")
	if progress != nil {
		progress(run.snapshot())
	}
	s.log.Info("planned", "campaign", campaignID, "generation", m.Generation, "ios_tokens", m.IOSTokens,
		"android_tokens", m.AndroidTokens, "batches", m.Batches(), "rejected", run.rejected.Load(),
		"duplicates", m.DuplicateTokens, "elapsed", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// planRun is the state of one plan.
type planRun struct {
	s     *Stage
	id    string
	by    string
	start time.Time
	// sample is the fraction of tokens kept (a rehearsal's); 0 or 1 = all.
	sample float64
	// defaultLocale is the campaign's, for records without a locale.
	defaultLocale string

	phase        atomic.Value // string
	parts        []*partState // sorted by partition
	rejected     atomic.Int64
	duplicates   atomic.Int64
	written      atomic.Int64
	totalBatches atomic.Int64

	errMu    sync.Mutex
	firstErr error
	offsets  kafka.Written // last offset written per partition, for WaitReadable
}

func (r *planRun) snapshot() Progress {
	p := Progress{Rejected: r.rejected.Load(), Duplicates: r.duplicates.Load(), Batches: r.written.Load(),
		TotalBatches: r.totalBatches.Load(), Elapsed: time.Since(r.start)}
	p.Phase, _ = r.phase.Load().(string)
	for _, ps := range r.parts {
		p.Records += ps.records.Load()
	}
	return p
}

// readableWait bounds Plan's wait, after the commit, for its records to be
// readable read_committed (usually milliseconds; see kafka.Written).
const readableWait = 10 * time.Second

func (r *planRun) fail(err error) {
	r.errMu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.errMu.Unlock()
}

func (r *planRun) err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.firstErr
}

func (r *planRun) promise(rec *kgo.Record, err error) {
	if err != nil {
		r.fail(err)
		return
	}
	r.offsets.Note(rec)
}

// iosEnt and andEnt are one planned token; loc indexes the partition's
// locale table while reading and the plan's table after the merge.
type iosEnt struct {
	tok [32]byte
	loc uint16
}

type andEnt struct {
	pos uint32 // in the partition's arena
	n   uint16
	loc uint16
}

// partState is what one audience partition contributed, in offset order.
// Only the partition's ReadSnapshot goroutine touches it while reading.
// Nothing of a fetched record is kept: iOS tokens as 32 bytes, Android
// tokens copied into the arena (store.go).
type partState struct {
	partition int32
	records   atomic.Int64
	ios       blocks[iosEnt]
	and       blocks[andEnt]
	arena     arena // Android tokens, back to back
	locales   []string
	locIdx    map[string]uint16
	rejects   map[string]int64
	// normalised counts records kept after DecodeAudience fixed them.
	normalised map[string]int64
}

func (ps *partState) locale(l []byte) (uint16, error) {
	if i, ok := ps.locIdx[string(l)]; ok {
		return i, nil
	}
	if len(ps.locales) >= 1<<16 {
		return 0, fmt.Errorf("partition %d has more than %d distinct locales", ps.partition, 1<<16)
	}
	i := uint16(len(ps.locales))
	s := string(l)
	ps.locales = append(ps.locales, s)
	ps.locIdx[s] = i
	return i, nil
}

// plan is one plan, in the steps of the package doc: load the campaign and
// the previous manifest (1), read the audience snapshot, routing bad records
// to the rejects topic (2, 3), merge and de-duplicate it (4), write the
// batches (5), the tombstones (6) and the manifest (7) in one transaction,
// commit, wait until readers see the plan, and count it in the metrics.
func (r *planRun) plan(ctx context.Context) (*wire.Manifest, error) {
	r.phase.Store("reading")
	def, prev, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	parts, err := r.topicPartitions(ctx)
	if err != nil {
		return nil, err
	}
	tcl, err := r.transaction()
	if err != nil {
		return nil, err
	}
	defer tcl.Close()
	committed := false
	defer func() {
		if !committed {
			r.abort(tcl)
		}
	}()
	ends, err := r.readAudience(ctx, tcl, def, parts[r.s.cfg.Topics.Rejects])
	if err != nil {
		return nil, err
	}
	pl, err := r.merge()
	if err != nil {
		return nil, err
	}
	r.duplicates.Store(int64(pl.duplicates))
	m := r.manifest(def.AudienceTopic, prev, pl, parts[r.s.cfg.Topics.Batches])
	m.AudienceEnds = ends
	if r.sample < 1 {
		m.Sample = r.sample
	}
	r.totalBatches.Store(int64(m.Batches()))
	r.phase.Store("writing")
	tombstones, err := r.write(ctx, tcl, pl, prev, m)
	if err != nil {
		return nil, err
	}
	if err := tcl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return nil, fmt.Errorf("commit plan transaction: %w", err)
	}
	committed = true
	r.waitReadable(ctx)
	r.count(m, tombstones)
	return m, nil
}

// load reads the campaign and its previous manifest (nil if none).
func (r *planRun) load(ctx context.Context) (*campaign.Campaign, *wire.Manifest, error) {
	def, err := r.s.cat.Campaign(ctx, r.id)
	if err != nil {
		return nil, nil, err
	}
	prev, err := r.s.cat.Manifest(ctx, r.id)
	if errors.Is(err, catalog.ErrNotFound) {
		return def, nil, nil
	}
	return def, prev, err
}

// topicPartitions returns the partition counts of the topics a plan writes,
// and fails if one is missing.
func (r *planRun) topicPartitions(ctx context.Context) (map[string]int32, error) {
	s, cfg := r.s, r.s.cfg
	names := []string{cfg.Topics.Batches, cfg.Topics.Rejects, cfg.Topics.Plans}
	tds, err := s.adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	nparts := map[string]int32{}
	for _, name := range names {
		td, ok := tds[name]
		if !ok || td.Err != nil || len(td.Partitions) == 0 {
			return nil, fmt.Errorf("topic %s is missing (run owlctl topics create)", name)
		}
		nparts[name] = int32(len(td.Partitions))
	}
	if n := nparts[cfg.Topics.Batches]; n != cfg.Topics.BatchesPartitions {
		s.log.Warn("batches topic partition count differs from config; planning over the topic's",
			"topic", cfg.Topics.Batches, "partitions", n, "configured", cfg.Topics.BatchesPartitions)
	}
	return nparts, nil
}

// transaction returns the campaign's transactional producer with its
// transaction begun.
func (r *planRun) transaction() (*kgo.Client, error) {
	s, cfg := r.s, r.s.cfg
	tcl, err := kafka.NewClient(cfg,
		kgo.TransactionalID(s.transactionalID(r.id)),
		kgo.TransactionTimeout(TransactionTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytesFn(func(topic string) int32 {
			if topic == cfg.Topics.Batches {
				return batchesRecordBatchBytes
			}
			return otherRecordBatchBytes
		}),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedBytes(maxBufferedBytes),
		metrics.KafkaHooks(s.reg, "planner-txn"),
	)
	if err != nil {
		return nil, err
	}
	if err := tcl.BeginTransaction(); err != nil {
		tcl.Close()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	return tcl, nil
}

// abort ends an uncommitted plan transaction: nothing of it becomes visible.
func (r *planRun) abort(tcl *kgo.Client) {
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = tcl.AbortBufferedRecords(actx)
	if err := tcl.EndTransaction(actx, kgo.TryAbort); err != nil {
		r.s.log.Warn("abort plan transaction", "campaign", r.id, "err", err)
	}
}

// readAudience reads the audience snapshot, in parallel per partition (for a
// rehearsal, its sample), sending bad records to the rejects topic inside
// the transaction. It returns the end offsets read up to.
func (r *planRun) readAudience(ctx context.Context, tcl *kgo.Client, def *campaign.Campaign, rejectParts int32) (kafka.SnapshotEnd, error) {
	s := r.s
	ends, err := kafka.SnapshotEnds(ctx, s.adm, def.AudienceTopic, nil)
	if err != nil {
		return nil, err
	}
	if def.Rehearsal != nil {
		if ends, err = rehearsalEnds(def.Rehearsal, def.AudienceTopic, ends); err != nil {
			return nil, err
		}
		r.sample = def.Rehearsal.Sample
	}
	r.defaultLocale = def.DefaultLocale
	byPart := map[int32]*partState{}
	for p := range ends {
		ps := &partState{partition: p, locIdx: map[string]uint16{}, rejects: map[string]int64{}, normalised: map[string]int64{}}
		byPart[p] = ps
		r.parts = append(r.parts, ps)
	}
	slices.SortFunc(r.parts, func(a, b *partState) int { return int(a.partition - b.partition) })
	opts, err := kafka.Opts(s.cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, metrics.KafkaHooks(s.reg, "planner-audience"))
	err = kafka.ReadSnapshot(ctx, opts, def.AudienceTopic, ends, func(rec *kgo.Record) error {
		return r.add(ctx, tcl, byPart[rec.Partition], rec, def.AudienceTopic, rejectParts)
	})
	if err != nil {
		return nil, fmt.Errorf("read audience %s: %w", def.AudienceTopic, err)
	}
	if err := r.err(); err != nil {
		return nil, fmt.Errorf("write rejects: %w", err)
	}
	return ends, nil
}

// write produces the batches, the tombstones and, last, the manifest with
// its checksum into the transaction and flushes them. It returns the number
// of tombstones.
func (r *planRun) write(ctx context.Context, tcl *kgo.Client, pl *planned, prev, m *wire.Manifest) (int, error) {
	hash := wire.NewPlanHash(m.IOSBatches, m.AndroidBatches)
	if err := r.writeBatches(ctx, tcl, pl, m, hash); err != nil {
		return 0, err
	}
	tombstones := r.writeTombstones(ctx, tcl, prev, m)
	if err := tcl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flush batches: %w", err)
	}
	if err := r.err(); err != nil {
		return 0, fmt.Errorf("write batches: %w", err)
	}
	m.Checksum = hash.Sum()
	val, err := wire.Encode(m)
	if err != nil {
		return 0, err
	}
	tcl.Produce(ctx, &kgo.Record{Topic: r.s.cfg.Topics.Plans, Key: []byte(r.id), Value: val, Partition: 0}, r.promise)
	r.phase.Store("committing")
	if err := tcl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flush manifest: %w", err)
	}
	if err := r.err(); err != nil {
		return 0, fmt.Errorf("write manifest: %w", err)
	}
	return tombstones, nil
}

// waitReadable returns once readers see the whole plan: a prepare (or
// anything reading the batches and the manifest read_committed) right after
// Plan must not find it half there. The commit stands either way.
func (r *planRun) waitReadable(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, readableWait)
	defer cancel()
	if err := r.offsets.WaitReadable(wctx, r.s.adm); err != nil {
		r.s.log.Warn("plan committed but not readable everywhere yet", "campaign", r.id, "err", err)
	}
}

// count adds the committed plan to the planner's metrics.
func (r *planRun) count(m *wire.Manifest, tombstones int) {
	mt := r.s.m
	mt.records.WithLabelValues("planned").Add(float64(m.Tokens()))
	mt.records.WithLabelValues("duplicate").Add(float64(m.DuplicateTokens))
	for reason, n := range m.Rejected {
		mt.records.WithLabelValues("rejected").Add(float64(n))
		mt.rejects.WithLabelValues(reason).Add(float64(n))
	}
	mt.batches.WithLabelValues(string(push.IOS)).Add(float64(m.IOSBatches))
	mt.batches.WithLabelValues(string(push.Android)).Add(float64(m.AndroidBatches))
	mt.tokens.WithLabelValues(string(push.IOS)).Add(float64(m.IOSTokens))
	mt.tokens.WithLabelValues(string(push.Android)).Add(float64(m.AndroidTokens))
	mt.tombstone.Add(float64(tombstones))
}

// add decodes one audience record into its partition's state, or rejects it.
func (r *planRun) add(ctx context.Context, tcl *kgo.Client, ps *partState, rec *kgo.Record, topic string, rejectParts int32) error {
	ps.records.Add(1)
	var fr fastRecord
	if !fastAudience(rec.Value, &fr) {
		ar, err := wire.DecodeAudience(rec.Value)
		if err != nil {
			var ae *wire.AudienceError
			if !errors.As(err, &ae) {
				ae = &wire.AudienceError{Reason: wire.RejectBadJSON, Detail: err.Error()}
			}
			ps.rejects[ae.Reason]++
			r.rejected.Add(1)
			// Copies: the record's bytes alias its whole fetch response,
			// which the producer would otherwise keep alive.
			tcl.Produce(ctx, &kgo.Record{
				Topic: r.s.cfg.Topics.Rejects, Key: bytes.Clone(rec.Key), Value: bytes.Clone(rec.Value),
				Partition: rec.Partition % rejectParts,
				Headers:   kafka.Headers(wire.RejectHeaders(ae.Reason, ae.Detail, r.id, topic, rec.Partition, rec.Offset)),
			}, r.promise)
			return nil
		}
		for _, n := range ar.Normalised {
			ps.normalised[n]++
		}
		if ar.Locale == "" {
			ar.Locale = r.defaultLocale
		}
		fr.platform, fr.locale = ar.Platform, []byte(ar.Locale)
		if ar.Platform == push.IOS {
			if _, err := hex.Decode(fr.ios[:], []byte(ar.Token)); err != nil {
				return fmt.Errorf("ios token at %d/%d: %w", rec.Partition, rec.Offset, err) // DecodeAudience checked it
			}
		} else {
			fr.token = []byte(ar.Token)
		}
	}
	if r.sample > 0 && r.sample < 1 {
		tok := fr.token
		if fr.platform == push.IOS {
			tok = fr.ios[:]
		}
		if !inSample(tok, r.sample) {
			return nil
		}
	}
	loc, err := ps.locale(fr.locale)
	if err != nil {
		return err
	}
	if fr.platform == push.IOS {
		ps.ios.add(iosEnt{tok: fr.ios, loc: loc})
		return nil
	}
	pos, err := ps.arena.add(fr.token)
	if err != nil {
		return fmt.Errorf("partition %d: %w", ps.partition, err)
	}
	ps.and.add(andEnt{pos: pos, n: uint16(len(fr.token)), loc: loc})
	return nil
}

// planned is the de-duplicated audience: per platform, the surviving
// entries in (partition, offset) order, in segments (each a block of one
// partition); andArena[i] are the arena blocks of and[i]'s partition.
type planned struct {
	locales        []string
	ios            [][]iosEnt
	and            [][]andEnt
	andArena       [][]string
	nIOS, nAndroid int
	duplicates     int
	records        int64
	rejected       map[string]int64
	normalised     map[string]int64
}

// maxSegments bounds the segments of one platform so that a reference
// (segment << blockBits | index) plus one fits in 32 bits (refSet).
const maxSegments = 1<<(32-blockBits) - 1

// merge de-duplicates in (partition, offset) order, compacting the entries
// in place and mapping locales to one plan-wide table. The two platforms are
// independent, so they are de-duplicated in parallel.
func (r *planRun) merge() (*planned, error) {
	pl := &planned{rejected: map[string]int64{}, normalised: map[string]int64{}}
	locIdx := map[string]uint16{}
	for _, ps := range r.parts {
		pl.records += ps.records.Load()
		for k, v := range ps.rejects {
			pl.rejected[k] += v
		}
		for k, v := range ps.normalised {
			pl.normalised[k] += v
		}
		remap := make([]uint16, len(ps.locales))
		for i, l := range ps.locales {
			g, ok := locIdx[l]
			if !ok {
				if len(pl.locales) >= 1<<16 {
					return nil, fmt.Errorf("the audience has more than %d distinct locales", 1<<16)
				}
				g = uint16(len(pl.locales))
				pl.locales = append(pl.locales, l)
				locIdx[l] = g
			}
			remap[i] = g
		}
		// Locales are remapped here, so the parallel part needs no table.
		for _, seg := range ps.ios.segs {
			for i := range seg {
				seg[i].loc = remap[seg[i].loc]
			}
			pl.ios = append(pl.ios, seg)
		}
		text := ps.arena.strings()
		for _, seg := range ps.and.segs {
			for i := range seg {
				seg[i].loc = remap[seg[i].loc]
			}
			pl.and = append(pl.and, seg)
			pl.andArena = append(pl.andArena, text)
		}
		ps.ios, ps.and, ps.arena = blocks[iosEnt]{}, blocks[andEnt]{}, arena{}
	}
	if len(pl.ios) > maxSegments || len(pl.and) > maxSegments {
		return nil, fmt.Errorf("the audience has more than %d tokens of one platform", maxSegments<<blockBits)
	}
	var iosDups, andDups int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		iosDups = dedupeIOS(pl.ios)
	}()
	andDups = dedupeAndroid(pl.and, pl.andArena)
	wg.Wait()
	pl.duplicates = iosDups + andDups
	for _, seg := range pl.ios {
		pl.nIOS += len(seg)
	}
	for _, seg := range pl.and {
		pl.nAndroid += len(seg)
	}
	return pl, nil
}

// refMask is the index part of a reference (segment << blockBits | index).
const refMask = 1<<blockBits - 1

// dedupeIOS compacts segs in place, keeping the first entry of each token
// in segment order, and returns how many it dropped.
func dedupeIOS(segs [][]iosEnt) int {
	total := 0
	for _, seg := range segs {
		total += len(seg)
	}
	seed := maphash.MakeSeed()
	set := newRefSet(total)
	dups := 0
	for g, seg := range segs {
		kept := seg[:0]
		for _, e := range seg {
			// Kept entries only move down within their segment, so a
			// reference to a kept position stays valid.
			ref := uint32(g)<<blockBits | uint32(len(kept))
			if !set.insert(maphash.Bytes(seed, e.tok[:]), ref, func(r uint32) bool {
				return segs[r>>blockBits][r&refMask].tok == e.tok
			}) {
				dups++
				continue
			}
			kept = append(kept, e)
		}
		segs[g] = kept
	}
	return dups
}

// dedupeAndroid is dedupeIOS for Android entries, whose tokens are in
// arenas[segment].
func dedupeAndroid(segs [][]andEnt, arenas [][]string) int {
	total := 0
	for _, seg := range segs {
		total += len(seg)
	}
	seed := maphash.MakeSeed()
	set := newRefSet(total)
	dups := 0
	for g, seg := range segs {
		kept := seg[:0]
		for _, e := range seg {
			tok := tokenAt(arenas[g], e.pos, e.n)
			ref := uint32(g)<<blockBits | uint32(len(kept))
			if !set.insert(maphash.String(seed, tok), ref, func(r uint32) bool {
				o := segs[r>>blockBits][r&refMask]
				return tokenAt(arenas[r>>blockBits], o.pos, o.n) == tok
			}) {
				dups++
				continue
			}
			kept = append(kept, e)
		}
		segs[g] = kept
	}
	return dups
}

// split cuts n tokens into the fewest batches of at most size tokens, of
// sizes that differ by at most one (the first n%count batches hold one
// more). Even sizes, rather than full batches and a short last one, keep
// partition token counts within one batch of each other (wire.Assign
// balances batch counts, not tokens).
type split struct{ n, count, base, extra int }

func newSplit(n, size int) split {
	s := split{n: n}
	if n == 0 {
		return s
	}
	s.count = (n + size - 1) / size
	s.base, s.extra = n/s.count, n%s.count
	return s
}

// start and size of batch j.
func (s split) start(j int) int { return j*s.base + min(j, s.extra) }
func (s split) size(j int) int {
	if j < s.extra {
		return s.base + 1
	}
	return s.base
}

// manifest computes everything but the checksum.
func (r *planRun) manifest(topic string, prev *wire.Manifest, pl *planned, parts int32) *wire.Manifest {
	cfg := r.s.cfg.Planner
	ios, and := newSplit(pl.nIOS, cfg.IOSBatchSize), newSplit(pl.nAndroid, cfg.AndroidBatchSize)
	m := &wire.Manifest{
		Campaign: r.id, Generation: 1, PlannedAt: time.Now().UTC(), PlannedBy: r.by, Partitions: parts,
		IOSBatches: uint32(ios.count), AndroidBatches: uint32(and.count),
		IOSTokens: uint64(pl.nIOS), AndroidTokens: uint64(pl.nAndroid),
		PerPartition:  perPartition(ios, and, parts),
		AudienceTopic: topic, AudienceRecords: uint64(pl.records), DuplicateTokens: uint64(pl.duplicates),
		BatchSizeIOS: cfg.IOSBatchSize, BatchSizeAndroid: cfg.AndroidBatchSize,
	}
	if prev != nil {
		m.Generation = prev.Generation + 1
	}
	if len(pl.rejected) > 0 {
		m.Rejected = pl.rejected
	}
	if len(pl.normalised) > 0 {
		m.Normalised = pl.normalised
	}
	return m
}

func perPartition(ios, and split, parts int32) []wire.PartitionCount {
	pp := make([]wire.PartitionCount, parts)
	for seq := 0; seq < ios.count; seq++ {
		pc := &pp[wire.Assign(push.IOS, uint32(seq), uint32(ios.count), parts)]
		pc.Batches++
		pc.Tokens += uint64(ios.size(seq))
	}
	for seq := 0; seq < and.count; seq++ {
		pc := &pp[wire.Assign(push.Android, uint32(seq), uint32(ios.count), parts)]
		pc.Batches++
		pc.Tokens += uint64(and.size(seq))
	}
	return pp
}

// cursor walks the concatenation of per-partition segments.
type cursor struct {
	seg, i int
}

// writeBatches encodes and produces every batch with one worker per core.
func (r *planRun) writeBatches(ctx context.Context, tcl *kgo.Client, pl *planned, m *wire.Manifest, hash *wire.PlanHash) error {
	cfg := r.s.cfg
	total := int(m.Batches())
	var next atomic.Int64
	workers := min(runtime.GOMAXPROCS(0), max(total, 1))
	// Segment starts, so a worker can seek to any batch.
	iosStarts := segStarts(len(pl.ios), func(i int) int { return len(pl.ios[i]) })
	andStarts := segStarts(len(pl.and), func(i int) int { return len(pl.and[i]) })
	iosSplit, andSplit := newSplit(pl.nIOS, cfg.Planner.IOSBatchSize), newSplit(pl.nAndroid, cfg.Planner.AndroidBatchSize)
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &wire.Batch{Campaign: r.id, Generation: m.Generation}
			scratch := make([]int32, len(pl.locales))
			for i := range scratch {
				scratch[i] = -1
			}
			var hexbuf []byte
			var used []uint16
			for {
				j := int(next.Add(1) - 1)
				if j >= total || ctx.Err() != nil || r.err() != nil {
					return
				}
				b.Locales, b.Tokens = b.Locales[:0], b.Tokens[:0]
				used = used[:0]
				localLoc := func(g uint16) uint16 {
					if scratch[g] < 0 {
						scratch[g] = int32(len(b.Locales))
						b.Locales = append(b.Locales, pl.locales[g])
						used = append(used, g)
					}
					return uint16(scratch[g])
				}
				if j < int(m.IOSBatches) {
					b.Platform, b.Seq = push.IOS, uint32(j)
					first, n := iosSplit.start(j), iosSplit.size(j)
					hexbuf = slices.Grow(hexbuf[:0], 64*n)[:64*n]
					c := seek(iosStarts, first)
					for k := 0; k < n; k++ {
						for c.i >= len(pl.ios[c.seg]) {
							c.seg, c.i = c.seg+1, 0
						}
						e := &pl.ios[c.seg][c.i]
						c.i++
						hex.Encode(hexbuf[64*k:], e.tok[:])
						b.Tokens = append(b.Tokens, wire.Token{Locale: localLoc(e.loc)})
					}
					hs := string(hexbuf) // one allocation for the batch's tokens
					for k := range b.Tokens {
						b.Tokens[k].Token = hs[64*k : 64*k+64]
					}
				} else {
					b.Platform, b.Seq = push.Android, uint32(j-int(m.IOSBatches))
					first, n := andSplit.start(int(b.Seq)), andSplit.size(int(b.Seq))
					c := seek(andStarts, first)
					for k := 0; k < n; k++ {
						for c.i >= len(pl.and[c.seg]) {
							c.seg, c.i = c.seg+1, 0
						}
						e := pl.and[c.seg][c.i]
						c.i++
						b.Tokens = append(b.Tokens, wire.Token{Token: tokenAt(pl.andArena[c.seg], e.pos, e.n),
							Locale: localLoc(e.loc)})
					}
				}
				for _, g := range used {
					scratch[g] = -1
				}
				val, err := wire.EncodeBatch(make([]byte, 0, wire.EncodedSize(b)), b)
				if err != nil {
					errc <- err
					r.fail(err)
					return
				}
				hash.Add(b.Platform == push.IOS, b.Seq, val)
				tcl.Produce(ctx, &kgo.Record{
					Topic: cfg.Topics.Batches, Key: []byte(b.Key()), Value: val,
					Partition: wire.Assign(b.Platform, b.Seq, m.IOSBatches, m.Partitions),
				}, r.promise)
				r.written.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return fmt.Errorf("encode batch: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

func segStarts(n int, size func(int) int) []int {
	starts := make([]int, n)
	total := 0
	for i := 0; i < n; i++ {
		starts[i] = total
		total += size(i)
	}
	return starts
}

// seek returns the cursor of the global index idx: the last segment that
// starts at or before it (empty segments are skipped by the caller's loop).
func seek(starts []int, idx int) cursor {
	seg := max(sort.Search(len(starts), func(i int) bool { return starts[i] > idx })-1, 0)
	return cursor{seg: seg, i: idx - starts[seg]}
}

// writeTombstones removes every batch of the previous plan that this plan
// does not overwrite at the same key and partition; it returns how many.
func (r *planRun) writeTombstones(ctx context.Context, tcl *kgo.Client, prev, m *wire.Manifest) int {
	if prev == nil {
		return 0
	}
	n := 0
	for _, p := range []push.Platform{push.IOS, push.Android} {
		oldCount, newCount := prev.IOSBatches, m.IOSBatches
		if p == push.Android {
			oldCount, newCount = prev.AndroidBatches, m.AndroidBatches
		}
		for seq := uint32(0); seq < oldCount; seq++ {
			oldPart := wire.Assign(p, seq, prev.IOSBatches, prev.Partitions)
			if seq < newCount && wire.Assign(p, seq, m.IOSBatches, m.Partitions) == oldPart {
				continue
			}
			tcl.Produce(ctx, &kgo.Record{Topic: r.s.cfg.Topics.Batches, Key: []byte(wire.BatchKey(r.id, p, seq)),
				Value: nil, Partition: oldPart}, r.promise)
			n++
		}
	}
	return n
}
