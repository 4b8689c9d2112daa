package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/wire"
)

// Tuning. Not config keys: they follow from the design, see the package doc.
const (
	// HeartbeatEvery is how often a held campaign's status is re-published.
	HeartbeatEvery = 5 * time.Second
	// ProofMaxAge: a proof request older than this when it could be acted
	// on (e.g. replayed at start-up) is dropped, not sent.
	ProofMaxAge = 10 * time.Minute
	// ShutdownTimeout bounds the exit after SIGTERM: each partition worker
	// finishes the release transaction in flight (revokeWait), then the
	// group is left (the partitions move to the other instances, which go
	// on from the progress markers) and the producers flushed. A pod's
	// terminationGracePeriodSeconds is longer (internal/deploytest).
	ShutdownTimeout = revokeWait + closeFlush + 5*time.Second

	sessionTimeout = 10 * time.Second // how fast a killed instance's partitions move
	// heartbeatEvery: the members learn of a rebalance (an instance left or
	// joined) at their next heartbeat, so it bounds how long a stopped
	// instance's partitions wait for their next owner (franz-go's default: 3 s).
	heartbeatEvery = 500 * time.Millisecond
	txnTimeout     = 10 * time.Second // how long a dead instance's open transaction can block read_committed senders
	firstChunk     = 1                // batches in the first transaction of a partition: the smallest, for trigger latency
	maxChunk       = 256              // batches per transaction once under way (chosen by measurement, see doc)
	maxChunkBytes  = 8 << 20          // and at most this many bytes of batch values
	// initTimeout bounds each step of a partition's initialisation (the
	// InitProducerID that fences the previous owner, the markers' read):
	// either waits at most for a transaction timeout plus a leader move. A
	// step that takes longer is logged with where it stopped and retried
	// with a new producer instead of waiting on the old one for good.
	initTimeout  = 3 * txnTimeout
	revokeWait   = 10 * time.Second
	closeFlush   = 5 * time.Second
	controlWait  = 100 * time.Millisecond // FetchMaxWait of the control reader
	publishEvery = 500 * time.Millisecond // progress status throttle
	warmEvery    = 2 * time.Second        // an idle partition producer re-opens its produce connection
	producerIdle = 9 * time.Minute        // partition producers' connection idle timeout
)

// Guard is the part of the Redis guard the fanout needs. Both methods
// return an error wrapping guard.ErrUnavailable when Redis does not answer;
// the fanout then retries and never releases on an unverified trigger.
type Guard interface {
	// FireOf returns the campaign's winning fire record, if it fired.
	FireOf(ctx context.Context, campaign string) (guard.FireRecord, bool, error)
	// Aborted returns the campaign's abort record, if it was aborted.
	Aborted(ctx context.Context, campaign string) (guard.AbortRecord, bool, error)
}

// Deps are the stage's injected dependencies.
type Deps struct {
	Log      *slog.Logger
	Registry prometheus.Registerer // nil: no metrics registered
	Guard    Guard
}

// Stage is one fanout instance.
type Stage struct {
	cfg   *config.Config
	log   *slog.Logger
	reg   prometheus.Registerer
	guard Guard
	m     *stageMetrics
	opts  []kgo.Opt
	out   *kgo.Client // status records, catalog reads, admin
	adm   *kadm.Client
	cat   *catalog.Catalog

	// beforeCommit, when set (tests only), is called before each release
	// transaction is committed, on the partition's worker.
	beforeCommit func(partition int32)

	mu       sync.Mutex
	runCtx   context.Context
	group    *kgo.Client // the group member; set by Run
	live     bool        // the control topic has been read up to its end at start
	joined   bool        // the group assigned partitions at least once
	parts    map[int32]*partition
	camps    map[string]*campState
	workers  sync.WaitGroup
	closeOut sync.Once
}

// campState is what this instance knows of one campaign.
type campState struct {
	id        string
	prepared  bool
	aborted   bool
	fire      *fireState
	firstFire string // the campaign's first fire id in the control log: the only one ever released
	verifying map[string]bool
	proofs    []wire.Control
	manifest  *wire.Manifest
	holds     map[int32]*hold
	loading   map[int32]bool
	errs      map[int32]string
	sumState  int // 0 unknown, 1 checksum ok, 2 checksum mismatch
	lastState wire.State
	lastPub   time.Time
}

const (
	sumUnknown = iota
	sumOK
	sumMismatch
)

// fireState is a verified fire.
type fireState struct {
	id        string
	firedAt   time.Time
	deadline  time.Time
	triggerTS time.Time // the live trigger record's timestamp; zero when replayed
	first     sync.Once
}

// New builds a fanout stage. It creates the Kafka clients it needs from cfg
// (the group member and the per-partition transactional producers are
// created by Run) and does no I/O.
func New(cfg *config.Config, deps Deps) (*Stage, error) {
	if deps.Guard == nil {
		return nil, errors.New("fanout: a Guard is required")
	}
	if cfg.Fanout.Group == "" || cfg.Fanout.TransactionalID == "" {
		return nil, errors.New("fanout: fanout.group and fanout.transactional_id are required")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newStageMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("fanout: metrics: %w", err)
	}
	opts, err := kafka.Opts(cfg)
	if err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	out, err := kafka.NewClient(cfg, hooks(deps.Registry, "fanout-status"))
	if err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	cat, err := catalog.New(cfg, out)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("fanout: %w", err)
	}
	return &Stage{
		cfg: cfg, log: log.With("stage", "fanout", "instance", cfg.InstanceID), reg: deps.Registry, guard: deps.Guard,
		m: m, opts: opts, out: out, adm: kadm.NewClient(out), cat: cat,
		parts: map[int32]*partition{}, camps: map[string]*campState{},
	}, nil
}

func hooks(reg prometheus.Registerer, name string) kgo.Opt {
	if reg == nil {
		return kgo.WithHooks()
	}
	return metrics.KafkaHooks(metrics.Replacing(reg), name)
}

// Run joins the fanout group, reads the control topic from its start and
// acts on it until ctx is done. It returns nil on cancellation and an error
// only if the stage cannot work at all.
func (s *Stage) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()

	topic := s.cfg.Topics.Batches
	group, err := kafka.NewClient(s.cfg,
		kgo.ConsumerGroup(s.cfg.Fanout.Group),
		kgo.ConsumeTopics(topic),
		// Membership only: nothing is consumed through the group (the
		// topic is paused) and nothing is committed. Starting at the end
		// keeps any stray fetch tiny.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(heartbeatEvery),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onRevoked),
		hooks(s.reg, "fanout-group"),
	)
	if err != nil {
		return fmt.Errorf("fanout: group client: %w", err)
	}
	group.PauseFetchTopics(topic)
	s.mu.Lock()
	s.group = group
	s.mu.Unlock()

	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); s.drainGroup(ctx, group) }()
	go func() { defer bg.Done(); s.heartbeat(ctx) }()

	err = s.readControl(ctx)
	cancel()
	group.Close() // leaves the group; onRevoked stops every partition worker
	bg.Wait()
	s.workers.Wait()
	s.publishStopped()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close releases what New created. Call it after Run returned.
func (s *Stage) Close() error {
	s.closeOut.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeFlush)
		defer cancel()
		_ = s.out.Flush(ctx)
		s.out.Close()
	})
	return nil
}

// drainGroup polls the paused group client so group errors are logged and
// any record fetched before the pause is dropped.
func (s *Stage) drainGroup(ctx context.Context, cl *kgo.Client) {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("fanout: group", "topic", t, "partition", p, "err", err)
		})
	}
}

// Ready reports whether this instance can take a fire now: it has read the
// control topic, owns its partitions, and holds every prepared, un-fired
// campaign verified against its manifest. The error says why not.
func (s *Stage) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live {
		return errors.New("fanout: still reading the control topic")
	}
	if !s.joined {
		return errors.New("fanout: no partition assignment from the group yet")
	}
	for id, p := range s.parts {
		if !p.ready {
			return fmt.Errorf("fanout: partition %d: transactional producer not initialised", id)
		}
	}
	ids := make([]string, 0, len(s.camps))
	for id := range s.camps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		cs := s.camps[id]
		if !cs.prepared || cs.aborted || cs.fire != nil {
			continue
		}
		st := s.statusLocked(cs)
		if st.State != wire.StateReady && st.State != wire.StateIdle {
			msg := string(st.State)
			if st.Error != "" {
				msg += ": " + st.Error
			}
			return fmt.Errorf("fanout: campaign %s: %s", id, msg)
		}
	}
	return nil
}

// campaign returns (creating) the state of a campaign. Caller holds s.mu.
func (s *Stage) campaignLocked(id string) *campState {
	cs, ok := s.camps[id]
	if !ok {
		cs = &campState{id: id, verifying: map[string]bool{}, holds: map[int32]*hold{},
			loading: map[int32]bool{}, errs: map[int32]string{}}
		s.camps[id] = cs
	}
	return cs
}

// readyPartsLocked lists owned partitions whose producer is initialised.
func (s *Stage) readyPartsLocked() []*partition {
	out := make([]*partition, 0, len(s.parts))
	for _, p := range s.parts {
		if p.ready {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// scheduleLocked queues what partition p must do for campaign cs given what
// is known now. Jobs are idempotent: a release consults the partition's
// progress markers, a load replaces the hold.
func (s *Stage) scheduleLocked(cs *campState, p *partition) {
	if cs.aborted {
		return
	}
	switch {
	case cs.fire != nil:
		p.enqueue(job{kind: jobRelease, campaign: cs.id})
	case cs.prepared:
		cs.loading[p.id] = true
		p.enqueue(job{kind: jobLoad, campaign: cs.id})
	}
	if p.id == 0 {
		for _, c := range cs.proofs {
			p.enqueue(job{kind: jobProof, campaign: cs.id, proof: c})
		}
	}
}

// goLive is called once the control topic was read to its end: from now on
// state changes schedule work.
func (s *Stage) goLive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = true
	n := 0
	for _, cs := range s.camps {
		for _, p := range s.readyPartsLocked() {
			s.scheduleLocked(cs, p)
		}
		if cs.prepared || cs.fire != nil {
			n++
			s.publishLocked(cs, true)
		}
	}
	s.log.Info("fanout: control topic replayed", "campaigns", len(s.camps), "active", n)
}

// abortLocked applies an abort: releases stop at the next chunk boundary and
// the held batches are dropped.
func (s *Stage) abortLocked(cs *campState, by string) {
	if cs.aborted {
		return
	}
	cs.aborted = true
	cs.holds = map[int32]*hold{}
	cs.loading = map[int32]bool{}
	cs.proofs = nil
	s.updateHeldLocked()
	s.log.Info("fanout: campaign aborted", "campaign", cs.id, "by", by)
	s.publishLocked(cs, true)
}

// updateHeldLocked refreshes the held-data gauges.
func (s *Stage) updateHeldLocked() {
	var bytes int64
	var tokens uint64
	for id, cs := range s.camps {
		var b, t uint64
		for _, h := range cs.holds {
			if h.batches != nil {
				b += uint64(len(h.batches))
				t += h.tokens
				bytes += h.bytes
			}
		}
		tokens += t
		if b == 0 {
			s.m.batchesHeld.DeleteLabelValues(id)
			s.m.tokensHeld.DeleteLabelValues(id)
			continue
		}
		s.m.batchesHeld.WithLabelValues(id).Set(float64(b))
		s.m.tokensHeld.WithLabelValues(id).Set(float64(t))
	}
	s.m.heldBytes.Set(float64(bytes))
	if tokens > 0 {
		s.m.bytesPerToken.Set(float64(bytes) / float64(tokens))
	} else {
		s.m.bytesPerToken.Set(0)
	}
}

// campaignAborted is checked by releases at every chunk boundary.
func (s *Stage) campaignAborted(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.camps[id]
	return cs != nil && cs.aborted
}

func joinProblems(ps []string) string { return strings.Join(ps, "; ") }
