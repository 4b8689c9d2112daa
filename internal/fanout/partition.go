package fanout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

type jobKind int

const (
	jobLoad jobKind = iota
	jobRelease
	jobProof
	jobWarm // no queued job for warmEvery: keep the produce connection open
)

type job struct {
	kind     jobKind
	campaign string
	proof    wire.Control
}

// partition is one owned batches-topic partition: its transactional
// producer (transactional id <fanout.transactional_id>-p<partition>), its
// progress markers, and a worker that runs its jobs one at a time (one
// transaction at a time per producer).
type partition struct {
	id     int32
	ctx    context.Context
	cancel context.CancelFunc
	prod   *kgo.Client // replaced by renewProducer; guarded by Stage.mu for others than the worker
	closed bool        // closeProducer ran: no new producer; guarded by Stage.mu
	done   chan struct{}
	ready  bool // producer initialised and markers read; guarded by Stage.mu

	qmu   sync.Mutex
	queue []job
	wake  chan struct{}

	// markers is touched only by the worker goroutine.
	markers map[string]marker
}

func (p *partition) enqueue(j job) {
	p.qmu.Lock()
	p.queue = append(p.queue, j)
	p.qmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *partition) next() (job, bool) {
	for {
		p.qmu.Lock()
		if len(p.queue) > 0 {
			j := p.queue[0]
			p.queue = p.queue[1:]
			p.qmu.Unlock()
			return j, true
		}
		p.qmu.Unlock()
		select {
		case <-p.ctx.Done():
			return job{}, false
		case <-p.wake:
		case <-time.After(warmEvery):
			return job{kind: jobWarm}, true
		}
	}
}

// TransactionalID is the transactional id of a batches-topic partition's
// releases. Whoever owns the partition uses it, so a new owner fences the
// previous one and aborts its open transaction.
func TransactionalID(prefix string, partition int32) string {
	return prefix + "-p" + strconv.FormatInt(int64(partition), 10)
}

// onAssigned starts a worker per newly owned partition.
func (s *Stage) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ids := assigned[s.cfg.Topics.Batches]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joined = true
	ctx := s.runCtx
	for _, id := range ids {
		if _, ok := s.parts[id]; ok {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		p := &partition{id: id, ctx: pctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
		s.parts[id] = p
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			defer close(p.done)
			s.runPartition(p)
		}()
	}
	s.log.Info("fanout: partitions assigned", "partitions", ids)
}

// onRevoked stops the workers of partitions this instance no longer owns and
// forgets what it held for them. A release in progress stops at its chunk
// boundary; if it does not stop in time the producer is closed under it,
// and the next owner's fencing aborts whatever it left open.
func (s *Stage) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ids := revoked[s.cfg.Topics.Batches]
	var stop []*partition
	s.mu.Lock()
	for _, id := range ids {
		p, ok := s.parts[id]
		if !ok {
			continue
		}
		delete(s.parts, id)
		stop = append(stop, p)
		for _, cs := range s.camps {
			delete(cs.holds, id)
			delete(cs.loading, id)
			delete(cs.errs, id)
			cs.sumState = sumUnknown
		}
	}
	s.updateHeldLocked()
	s.mu.Unlock()
	for _, p := range stop {
		p.cancel()
	}
	deadline := time.After(revokeWait)
	for _, p := range stop {
		select {
		case <-p.done:
		case <-deadline:
			s.log.Warn("fanout: partition worker did not stop in time; closing its producer", "partition", p.id)
		}
		s.closeProducer(p)
	}
	if len(ids) > 0 {
		s.log.Info("fanout: partitions revoked", "partitions", ids)
		s.mu.Lock()
		for _, cs := range s.camps {
			if cs.prepared || cs.fire != nil {
				s.publishLocked(cs, true)
			}
		}
		s.mu.Unlock()
	}
}

// runPartition initialises the partition's transactional producer (which
// fences any previous owner and completes its open transaction), reads the
// partition's progress markers, then runs jobs until the partition is
// revoked.
func (s *Stage) runPartition(p *partition) {
	defer s.closeProducer(p)
	if p.ctx.Err() != nil {
		return
	}
	prod, err := s.newProducer(p)
	if err != nil {
		s.log.Error("fanout: producer", "partition", p.id, "err", err)
		return
	}
	s.mu.Lock()
	p.prod = prod
	s.mu.Unlock()
	// A retry starts over with a new producer (same transactional id): a
	// client left waiting on a coordinator or leader that went away is not
	// asked again.
	err = s.initPartition(p)
	for backoff := 100 * time.Millisecond; err != nil; backoff = min(2*backoff, 5*time.Second) {
		s.log.Warn("fanout: partition init failed; retrying with a new producer", "partition", p.id, "err", err)
		if !retry.Sleep(p.ctx, backoff) {
			return
		}
		err = s.renewProducer(p)
	}
	s.mu.Lock()
	p.ready = true
	if s.live {
		for _, cs := range s.camps {
			s.scheduleLocked(cs, p)
		}
	}
	s.mu.Unlock()
	s.warmProducer(p)
	for {
		j, ok := p.next()
		if !ok {
			return
		}
		switch j.kind {
		case jobWarm:
			s.warmProducer(p)
		case jobLoad:
			s.loadJob(p, j.campaign)
		case jobRelease:
			s.releaseJob(p, j.campaign)
		case jobProof:
			s.proofJob(p, j.campaign, j.proof)
		}
	}
}

// newProducer builds the transactional producer of partition p. It does no
// I/O: its InitProducerID runs at initPartition.
func (s *Stage) newProducer(p *partition) (*kgo.Client, error) {
	return kafka.NewClient(s.cfg,
		kgo.TransactionalID(TransactionalID(s.cfg.Fanout.TransactionalID, p.id)),
		kgo.TransactionTimeout(txnTimeout),
		kgo.RecordRetries(10),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		// A metadata refresh the producer needs (a topic primeProducer could
		// not load, a leader moved) should not wait the default 5 s minimum
		// between metadata requests.
		kgo.MetadataMinAge(100*time.Millisecond),
		// Records go out at the chunk's Flush only, so that primeProducer
		// can produce without sending.
		kgo.ManualFlushing(),
		// The produce connection is kept open while idle (see warmProducer);
		// below the broker's default connections.max.idle.ms (10 min).
		kgo.ConnIdleTimeout(producerIdle),
		kgo.RecordPartitioner(s.sendPartitioner(p.id)),
		hooks(s.reg, "fanout-txn-p"+strconv.FormatInt(int64(p.id), 10)),
	)
}

// warmProducer opens the producer's produce connection if it is not open.
// franz-go opens it at the first produce, which at GO would put a dial and
// an ApiVersions round trip on the trigger's critical path. Idle connections are reaped after
// producerIdle, so the worker repeats this every warmEvery while idle.
func (s *Stage) warmProducer(p *partition) {
	ctx, cancel := context.WithTimeout(p.ctx, warmEvery)
	defer cancel()
	if err := p.prod.EnsureProduceConnectionIsOpen(ctx); err != nil && p.ctx.Err() == nil {
		s.log.Debug("fanout: produce connection warm-up failed", "partition", p.id, "err", err)
	}
}

// closeProducer closes the partition's producer once (the worker on exit,
// or onRevoked when the worker did not stop in time).
func (s *Stage) closeProducer(p *partition) {
	s.mu.Lock()
	prod := p.prod
	if p.closed || prod == nil {
		s.mu.Unlock()
		return
	}
	p.closed = true
	s.mu.Unlock()
	prod.Close()
}

// recoverProducer goes on after a failed release transaction (errTxnFailed)
// while the partition's worker still runs. The producer is not used again;
// whether a new one may take over, only the group coordinator can tell:
//   - the partition moved: another instance owns it in the group's current
//     generation, and its InitProducerID fenced this producer. This instance
//     hears of the move at its next heartbeat (onRevoked / onLost cancel
//     p.ctx); until then it must not write, so it waits.
//   - the partition is still this instance's: the group's stable generation
//     assigns it to this member. The transaction failed for another reason
//     (a broker or the coordinator unreachable, or the coordinator aborted
//     it after txnTimeout and bumped the epoch). A new producer with the
//     same transactional id takes over (renewProducer): its InitProducerID
//     aborts or completes whatever the old one left, the markers are read
//     again and the partition's jobs scheduled again, so the release goes on
//     after the last committed chunk.
//
// Both can race: between the check and the InitProducerID the partition may
// move, and this instance then fences the new owner, which recovers the same
// way while this instance, fenced in turn, finds itself no longer the owner.
// That costs a chunk's transaction, never a second release: whichever epoch
// commits read the markers after every earlier epoch was settled.
func (s *Stage) recoverProducer(p *partition, cause error) {
	s.log.Warn("fanout: release transaction failed; asking the group who owns the partition", "partition", p.id, "err", cause)
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		owned, err := s.ownedHere(p.ctx, p.id)
		switch {
		case p.ctx.Err() != nil:
			return
		case err != nil:
			s.log.Info("fanout: partition ownership unknown, asking again", "partition", p.id, "err", err)
		case !owned:
			s.log.Info("fanout: partition moved to another instance; waiting for the revocation", "partition", p.id)
		default:
			if err = s.renewProducer(p); err == nil {
				s.m.renewals.Inc()
				s.log.Warn("fanout: partition still owned here; new producer, going on from the progress markers", "partition", p.id)
				s.mu.Lock()
				for _, cs := range s.camps {
					s.scheduleLocked(cs, p)
				}
				s.mu.Unlock()
				return
			}
			s.log.Warn("fanout: new producer failed, retrying", "partition", p.id, "err", err)
		}
		if !retry.Sleep(p.ctx, backoff) {
			return
		}
	}
}

// ownedHere asks the group coordinator whether this member owns batches-topic
// partition id in the group's current, stable generation. An error means it
// cannot tell now (no answer, a rebalance under way). It reads the classic
// group protocol's DescribeGroups, the protocol the fanout group uses.
//
// The coordinator is looked up afresh on every call (FindCoordinator, which
// any broker answers) and asked directly. franz-go caches a group's
// coordinator for its sharded requests (kadm's DescribeGroups) and does not
// drop the entry when the broker cannot be dialed: after the coordinator's
// broker died, every later ask went to it until it came back, and the
// partition's release waited that long.
func (s *Stage) ownedHere(ctx context.Context, id int32) (bool, error) {
	s.mu.Lock()
	g := s.group
	s.mu.Unlock()
	if g == nil {
		return false, errors.New("no group member")
	}
	member, _ := g.GroupMetadata()
	if member == "" {
		return false, errors.New("not joined to the group")
	}
	group := s.cfg.Fanout.Group
	coord, ok := s.adm.FindGroupCoordinators(ctx, group)[group]
	if !ok {
		return false, errors.New("no coordinator found for the group")
	}
	if coord.Err != nil {
		return false, fmt.Errorf("find the group's coordinator: %w", coord.Err)
	}
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, s.out.Broker(int(coord.NodeID)))
	if err != nil {
		return false, fmt.Errorf("describe the group at its coordinator %d: %w", coord.NodeID, err)
	}
	if len(resp.Groups) != 1 {
		return false, fmt.Errorf("the coordinator described %d groups, asked for 1", len(resp.Groups))
	}
	d := resp.Groups[0]
	if err := kerr.ErrorForCode(d.ErrorCode); err != nil {
		return false, fmt.Errorf("describe the group at its coordinator %d: %w", coord.NodeID, err)
	}
	if d.State != "Stable" {
		return false, fmt.Errorf("group %s is %s", d.Group, d.State)
	}
	for _, m := range d.Members {
		if m.MemberID != member {
			continue
		}
		var a kmsg.ConsumerMemberAssignment
		if err := a.ReadFrom(m.MemberAssignment); err != nil {
			return false, fmt.Errorf("member assignment does not decode: %w", err)
		}
		for _, t := range a.Topics {
			if t.Topic == s.cfg.Topics.Batches && slices.Contains(t.Partitions, id) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, nil // not a member of the current generation any more
}

// renewProducer replaces the partition's failed producer by a new one with
// the same transactional id and initialises it (initPartition: a fresh
// InitProducerID, then the markers).
func (s *Stage) renewProducer(p *partition) error {
	prod, err := s.newProducer(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if p.closed {
		s.mu.Unlock()
		prod.Close()
		return errors.New("partition revoked")
	}
	old := p.prod
	p.prod = prod
	s.mu.Unlock()
	old.Close()
	return s.initPartition(p)
}

// initPartition fences the previous owner (InitProducerID bumps the epoch
// of the partition's transactional id; the broker aborts or completes its
// open transaction before answering), then reads the markers, which from now
// on only this producer can change.
func (s *Stage) initPartition(p *partition) error {
	ctx, cancel := context.WithTimeout(p.ctx, initTimeout)
	defer cancel()
	if _, _, err := p.prod.ProducerID(ctx); err != nil {
		return fmt.Errorf("init producer id: %w", err)
	}
	// Before GO, not on the fire path. A failure only costs the fire that
	// round trip; a producer it left in a transaction fails its first
	// release transaction, and is renewed (recoverProducer).
	if err := s.primeProducer(p.ctx, p.prod); err != nil && p.ctx.Err() == nil {
		s.log.Warn("fanout: loading the send topics' metadata before GO failed", "partition", p.id, "err", err)
	}
	ctx, cancel = context.WithTimeout(p.ctx, initTimeout)
	defer cancel()
	ms, err := s.readMarkers(ctx, p.id)
	if err != nil {
		return err
	}
	p.markers = ms
	return nil
}

// primeProducer loads the producer's metadata of the topics a release
// writes to. franz-go loads a topic's metadata at the first produce to it,
// which put a metadata round trip (and up to the client's minimum metadata
// age) into the fire's first transaction of every partition whose producer
// had not released before. The records produced here are only buffered
// (manual flushing), then failed by AbortBufferedRecords, and the
// transaction, to which nothing was added, ends without a request.
func (s *Stage) primeProducer(ctx context.Context, prod *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, txnTimeout)
	defer cancel()
	topics := []string{s.cfg.Topics.SendIOS, s.cfg.Topics.SendAndroid, s.cfg.Topics.Status}
	if err := prod.BeginTransaction(); err != nil {
		return err
	}
	for _, t := range topics {
		prod.Produce(ctx, &kgo.Record{Topic: t}, nil)
	}
	var lerr error
	for loaded := false; !loaded; {
		loaded = true
		for _, t := range topics {
			if leader, _, err := prod.PartitionLeader(t, 0); leader < 0 {
				loaded, lerr = false, err
			}
		}
		if !loaded && !retry.Sleep(ctx, 5*time.Millisecond) {
			break
		}
	}
	err := prod.AbortBufferedRecords(ctx)
	if err == nil {
		err = prod.EndTransaction(ctx, kgo.TryAbort)
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("topics %v not loaded: %w", topics, errors.Join(ctx.Err(), lerr))
	}
	return err
}

// readMarkers reads, read_committed, the progress markers of one partition
// from the status topic, up to its high watermarks rather than its last
// stable offsets: another partition's transaction open on a status
// partition holds the last stable offset below markers this partition's
// earlier epochs committed after it opened, and a read stopping there would
// release those chunks again. The read waits for the transactions open now
// to end (at most the transaction timeout).
func (s *Stage) readMarkers(ctx context.Context, partition int32) (map[string]marker, error) {
	topic := s.cfg.Topics.Status
	ends, err := kafka.WrittenEnds(ctx, s.adm, topic)
	if err != nil {
		return nil, fmt.Errorf("fanout: read markers: %w", err)
	}
	var mu sync.Mutex
	out := map[string]marker{}
	err = kafka.ReadSnapshot(ctx, s.opts, topic, ends, func(r *kgo.Record) error {
		c, f, p, ok := ParseMarkerKey(string(r.Key))
		if !ok || p != partition {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Value == nil {
			delete(out, markerID(c, f))
			return nil
		}
		m, err := parseMarker(r.Value)
		if err != nil {
			s.log.Warn("fanout: undecodable progress marker", "key", string(r.Key), "err", err)
			return nil
		}
		out[markerID(c, f)] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fanout: read markers of partition %d: %w", partition, err)
	}
	return out, nil
}

// loadJob (re)loads a prepared campaign's batches of this partition.
func (s *Stage) loadJob(p *partition, campaign string) {
	s.mu.Lock()
	cs := s.camps[campaign]
	if cs == nil || cs.aborted || cs.fire != nil {
		if cs != nil {
			delete(cs.loading, p.id)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	h, m, err := s.loadHold(p, campaign)
	s.installHold(p, campaign, h, m, err)
}

// loadHold reads one campaign's batches of one partition (a read_committed
// snapshot up to the partition's end now) and verifies them.
func (s *Stage) loadHold(p *partition, campaign string) (*hold, *wire.Manifest, error) {
	start := time.Now()
	m, err := s.cat.Manifest(p.ctx, campaign)
	if err != nil {
		return nil, nil, fmt.Errorf("fanout: load %s partition %d: %w", campaign, p.id, err)
	}
	topic := s.cfg.Topics.Batches
	ends, err := kafka.SnapshotEnds(p.ctx, s.adm, topic, []int32{p.id})
	if err != nil {
		return nil, nil, fmt.Errorf("fanout: load %s partition %d: %w", campaign, p.id, err)
	}
	prefix := []byte(wire.CampaignPrefix(campaign))
	values := map[string][]byte{}
	err = kafka.ReadSnapshot(p.ctx, s.opts, topic, ends, func(r *kgo.Record) error {
		if !bytes.HasPrefix(r.Key, prefix) {
			return nil
		}
		if r.Value == nil {
			delete(values, string(r.Key))
		} else {
			// A copy: the record's value points into the fetch buffer,
			// which holds other campaigns' records too.
			values[string(r.Key)] = bytes.Clone(r.Value)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("fanout: load %s partition %d: %w", campaign, p.id, err)
	}
	h := buildHold(m, p.id, values)
	if !h.match {
		s.m.mismatch.Inc()
		s.log.Warn("fanout: partition does not match the manifest", "campaign", campaign, "partition", p.id,
			"generation", m.Generation, "problems", joinProblems(h.problems))
	}
	s.log.Info("fanout: partition loaded", "campaign", campaign, "partition", p.id, "batches", h.nBatches,
		"tokens", h.tokens, "bytes", h.bytes, "match", h.match, "took", time.Since(start).Round(time.Millisecond))
	return h, m, nil
}

// installHold records a load's outcome and, when this instance now holds
// every partition of the plan, verifies the full checksum.
func (s *Stage) installHold(p *partition, campaign string, h *hold, m *wire.Manifest, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.camps[campaign]
	if cs == nil || s.parts[p.id] != p {
		return
	}
	delete(cs.loading, p.id)
	if err != nil {
		if p.ctx.Err() == nil {
			cs.errs[p.id] = err.Error()
			s.log.Error("fanout: load failed", "campaign", campaign, "partition", p.id, "err", err)
		}
		s.publishLocked(cs, true)
		return
	}
	if cs.aborted {
		return
	}
	delete(cs.errs, p.id)
	cs.holds[p.id] = h
	cs.manifest = m
	cs.sumState = sumUnknown
	s.updateHeldLocked()
	if all := s.fullHoldsLocked(cs); all != nil {
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			sum := planChecksum(m, all)
			s.mu.Lock()
			defer s.mu.Unlock()
			if cs.manifest != m || !sameHolds(cs, all) {
				return // something changed meanwhile; a later load re-checks
			}
			if sum == m.Checksum {
				cs.sumState = sumOK
			} else {
				cs.sumState = sumMismatch
				s.m.mismatch.Inc()
				s.log.Warn("fanout: plan checksum mismatch", "campaign", campaign, "want", m.Checksum, "got", sum)
			}
			s.publishLocked(cs, true)
		}()
	}
	s.publishLocked(cs, true)
}

// fullHoldsLocked returns the holds of every partition of the plan if this
// instance holds all of them (with their batches) and the manifest has a
// checksum; nil otherwise.
func (s *Stage) fullHoldsLocked(cs *campState) []*hold {
	m := cs.manifest
	if m == nil || m.Checksum == "" || m.Partitions <= 0 {
		return nil
	}
	out := make([]*hold, 0, m.Partitions)
	for i := int32(0); i < m.Partitions; i++ {
		h, ok := cs.holds[i]
		if !ok || h.batches == nil || h.generation != m.Generation {
			return nil
		}
		out = append(out, h)
	}
	return out
}

func sameHolds(cs *campState, hs []*hold) bool {
	for _, h := range hs {
		if cs.holds[h.partition] != h {
			return false
		}
	}
	return true
}

// releaseJob releases this partition's batches of a fired campaign,
// continuing after the partition's progress marker.
func (s *Stage) releaseJob(p *partition, campaign string) {
	s.mu.Lock()
	cs := s.camps[campaign]
	if cs == nil || cs.aborted || cs.fire == nil {
		s.mu.Unlock()
		return
	}
	f := cs.fire
	h := cs.holds[p.id]
	s.mu.Unlock()

	mk, have := p.markers[markerID(campaign, f.id)]
	if have && mk.done() {
		s.partitionReleased(p, cs, f, h, mk, false)
		return
	}
	if h == nil || h.batches == nil || h.done {
		var m *wire.Manifest
		var err error
		h, m, err = s.loadHold(p, campaign)
		if err != nil {
			s.installHold(p, campaign, nil, nil, err)
			return
		}
		s.installHold(p, campaign, h, m, nil)
	}
	if have && mk.generation != h.generation {
		s.releaseFailed(p, cs, fmt.Errorf("fanout: %s partition %d: progress marker is for plan generation %d, held plan is generation %d: not releasing",
			campaign, p.id, mk.generation, h.generation))
		return
	}
	if have && mk.batches != h.nBatches {
		s.releaseFailed(p, cs, fmt.Errorf("fanout: %s partition %d: progress marker counts %d batches, %d are held: not releasing",
			campaign, p.id, mk.batches, h.nBatches))
		return
	}
	fire := wire.Fire{ID: f.id, Kind: wire.KindFire, FiredAt: f.firedAt, Deadline: f.deadline}
	onCommit := func(released uint32) {
		f.first.Do(func() {
			if !f.triggerTS.IsZero() {
				s.m.triggerSeconds.Observe(time.Since(f.triggerTS).Seconds())
			}
		})
		s.mu.Lock()
		h.released = released
		if cs.holds[p.id] == h {
			s.publishLocked(cs, false)
		}
		s.mu.Unlock()
	}
	final, err := s.release(p, campaign, fire, releaseOrder(h.batches), h.generation, onCommit)
	switch {
	case err == nil:
		s.partitionReleased(p, cs, f, h, final, true)
	case errors.Is(err, errAborted):
		s.mu.Lock()
		s.publishLocked(cs, true)
		s.mu.Unlock()
	case p.ctx.Err() != nil:
		// Revoked: the next owner continues from the marker.
	case errors.Is(err, errTxnFailed):
		s.recoverProducer(p, err)
	default:
		s.releaseFailed(p, cs, err)
	}
}

// partitionReleased records a fully released partition and drops its batches.
func (s *Stage) partitionReleased(p *partition, cs *campState, f *fireState, h *hold, mk marker, observe bool) {
	if observe {
		s.m.releaseSeconds.Observe(time.Since(f.firedAt).Seconds())
		s.log.Info("fanout: partition released", "campaign", cs.id, "fire_id", f.id, "partition", p.id,
			"batches", mk.batches, "since_fire", time.Since(f.firedAt).Round(time.Millisecond))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil || cs.holds[p.id] != h {
		h = &hold{partition: p.id, generation: mk.generation, nBatches: mk.batches, match: true}
		if s.parts[p.id] == p && !cs.aborted {
			cs.holds[p.id] = h
		}
	}
	h.released = mk.released
	h.done = true
	h.batches = nil
	s.updateHeldLocked()
	s.publishLocked(cs, true)
}

func (s *Stage) releaseFailed(p *partition, cs *campState, err error) {
	s.log.Error("fanout: release failed", "campaign", cs.id, "partition", p.id, "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parts[p.id] == p {
		cs.errs[p.id] = err.Error()
	}
	s.publishLocked(cs, true)
}

// sendPartitioner routes the send tasks of batches-topic partition pid to
// send partitions of their own: pid, pid+B, pid+2B, ... (B = batches-topic
// partitions), by key among those, or pid mod n when the send topic has fewer
// partitions. Every send partition then has one transactional producer (or
// few) instead of all of them, so a read_committed reader of a send partition
// (tests, tools; the senders read uncommitted) waits for one transaction,
// not for the slowest of all that touched it: read_committed cannot read
// past the first offset of ANY open transaction on a partition. Other topics
// (the status markers) keep Kafka's key hashing. Balance follows the
// planner's: batches are already spread evenly over the batches partitions.
func (s *Stage) sendPartitioner(pid int32) kgo.Partitioner {
	keyed := kgo.StickyKeyPartitioner(nil)
	b := int(s.cfg.Topics.BatchesPartitions)
	return kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		if topic != s.cfg.Topics.SendIOS && topic != s.cfg.Topics.SendAndroid {
			return keyed.ForTopic(topic).Partition
		}
		return func(r *kgo.Record, n int) int { return sendPartition(pid, r.Key, n, b) }
	})
}

// sendPartition picks the send partition of a send task; see sendPartitioner.
func sendPartition(pid int32, key []byte, n, b int) int {
	id := int(pid)
	if b <= 0 || n <= b || id >= b {
		return id % n
	}
	m := (n - id + b - 1) / b // send partitions j < n with j % b == id
	h := fnv.New32a()
	_, _ = h.Write(key)
	return id + b*int(h.Sum32()%uint32(m))
}
