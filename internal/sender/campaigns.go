package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
)

// catchUpWait bounds how long a lookup waits for the campaigns tail to reach
// the end offsets it listed before falling back to a snapshot read.
const catchUpWait = time.Second

// campaigns keeps every campaign of the campaigns topic parsed and rendered
// (without a fire time) in memory, tailing the compacted topic from its
// start, read_committed, for as long as the stage runs. A definition is
// rendered when its record arrives (days or minutes before GO), so the
// first batch of a fire needs only one ListOffsets round trip (see lookup)
// instead of a snapshot read of the topic with a new Kafka client.
type campaigns struct {
	topic string
	adm   *kadm.Client
	base  []kgo.Opt
	log   *slog.Logger

	mu      sync.Mutex
	defs    map[string]campaignEntry
	pos     map[int32]int64 // next offset to read per partition
	started bool            // the tail's client exists
	advance chan struct{}   // closed (and replaced) whenever pos moves
}

// campaignEntry is one campaign's latest record, parsed and rendered.
type campaignEntry struct {
	rend *campaign.Rendered
	// parseErr: the stored record does not parse (a later put may fix it:
	// retried, as a catalog read error is). renderErr: the definition
	// cannot be rendered (permanent).
	parseErr, renderErr error
}

func newCampaigns(cfg *config.Config, adm *kadm.Client, log *slog.Logger) (*campaigns, error) {
	base, err := kafka.Opts(cfg)
	if err != nil {
		return nil, fmt.Errorf("sender: campaigns tail: %w", err)
	}
	return &campaigns{topic: cfg.Topics.Campaigns, adm: adm, base: base, log: log,
		defs: map[string]campaignEntry{}, pos: map[int32]int64{}, advance: make(chan struct{})}, nil
}

// run tails the campaigns topic until ctx is done.
func (c *campaigns) run(ctx context.Context) {
	opts := append(append([]kgo.Opt{}, c.base...),
		kgo.ConsumeTopics(c.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers advance the position too, so a partition
		// ending in one still reaches its end offset.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.log.Warn("campaigns tail not started; campaigns are read from the catalog per fire", "err", err)
		return
	}
	defer cl.Close()
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(_ string, p int32, err error) {
			c.log.Warn("campaigns tail: fetch", "partition", p, "err", err)
		})
		c.apply(fs)
	}
}

// apply takes in one poll's records: definitions are parsed and rendered
// outside the lock, then installed with the new positions.
func (c *campaigns) apply(fs kgo.Fetches) {
	type update struct {
		id    string
		entry campaignEntry
		del   bool
	}
	var ups []update
	next := map[int32]int64{}
	fs.EachRecord(func(r *kgo.Record) {
		next[r.Partition] = r.Offset + 1
		if r.Attrs.IsControl() {
			return
		}
		id := string(r.Key)
		if r.Value == nil {
			ups = append(ups, update{id: id, del: true})
			return
		}
		var e campaignEntry
		def, err := campaign.Parse(r.Value)
		if err != nil {
			e.parseErr = fmt.Errorf("catalog: stored campaign %s: %w", id, err)
		} else if e.rend, err = def.Render(); err != nil {
			e.renderErr = err
		}
		ups = append(ups, update{id: id, entry: e})
	})
	if len(next) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range ups {
		if u.del {
			delete(c.defs, u.id)
		} else {
			c.defs[u.id] = u.entry
		}
	}
	for p, o := range next {
		c.pos[p] = max(c.pos[p], o)
	}
	close(c.advance)
	c.advance = make(chan struct{})
}

// errBehind: the tail did not reach the listed end offsets in time.
var errBehind = errors.New("sender: campaigns tail behind")

// lookup returns the campaign's definition rendered, as of now: it lists
// the topic's read_committed end offsets (one round trip) and waits until
// the tail has read up to them, so the answer is what a snapshot read
// started now would give. Errors: catalog.ErrNotFound for an unknown id,
// a parse error (retryable), a render error (wrapped in errPermanent by the
// caller), errBehind when the tail is not there within catchUpWait, or
// the ListOffsets error.
func (c *campaigns) lookup(ctx context.Context, id string) (*campaign.Rendered, error) {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return nil, errBehind
	}
	ends, err := kafka.SnapshotEnds(ctx, c.adm, c.topic, nil)
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(catchUpWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		behind := false
		for p, end := range ends {
			if end > 0 && c.pos[p] < end {
				behind = true
				break
			}
		}
		e, ok := c.defs[id]
		wake := c.advance
		c.mu.Unlock()
		if !behind {
			switch {
			case !ok:
				return nil, fmt.Errorf("%w: campaign %q", catalog.ErrNotFound, id)
			case e.parseErr != nil:
				return nil, e.parseErr
			case e.renderErr != nil:
				return nil, fmt.Errorf("%w: %w", errPermanent, e.renderErr)
			}
			return e.rend, nil
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, errBehind
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
