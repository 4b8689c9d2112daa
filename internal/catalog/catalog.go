package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/wire"
)

// ErrNotFound is returned by Campaign and Manifest for an unknown id.
var ErrNotFound = errors.New("catalog: not found")

// ErrExists is returned by CreateCampaign when the id is taken.
var ErrExists = errors.New("catalog: campaign already exists")

// ErrConflict is returned by CreateCampaign when another create of the same
// id ran at the same moment and this one was fenced: nothing was written by
// it; running it again reports whether the other one stored its definition.
var ErrConflict = errors.New("catalog: a concurrent create of the same campaign id won")

// Catalog is a handle on the campaigns and plans topics.
type Catalog struct {
	cfg  *config.Config
	cl   *kgo.Client
	adm  *kadm.Client
	opts []kgo.Opt
}

// New returns a Catalog using cl for writes and admin requests.
func New(cfg *config.Config, cl *kgo.Client) (*Catalog, error) {
	opts, err := kafka.Opts(cfg)
	if err != nil {
		return nil, err
	}
	return &Catalog{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), opts: opts}, nil
}

// PutCampaign stores a definition whether or not the id exists (update).
func (c *Catalog) PutCampaign(ctx context.Context, def *campaign.Campaign) error {
	b, err := def.Encode()
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: c.cfg.Topics.Campaigns, Key: []byte(def.ID), Value: b}
	if err := c.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("catalog: store campaign %s: %w", def.ID, err)
	}
	return nil
}

// CreateCampaign stores def only if no campaign with its id exists, atomic
// against concurrent creators of the same id. Kafka has no compare-and-set,
// so it uses transactional fencing: every create of an id uses the same
// transactional id (<campaigns topic>/create/<id>). Initialising it fences
// any earlier creator (whose open transaction the broker aborts and whose
// later writes are refused) and waits for its transactions to end, so the
// read_committed existence check that follows sees everything an earlier
// creator committed; the write then commits only if no later creator fenced
// this one in between (else ErrConflict). An existing id is ErrExists.
//
// A commit whose outcome is unknown (Kafka 4.1 answers UNKNOWN_SERVER_ERROR
// when EndTxn races another creator's fencing) is settled by the next
// attempt: its fencing ends the transaction one way or the other, and a
// stored definition byte-identical to def then counts as this create's.
func (c *Catalog) CreateCampaign(ctx context.Context, def *campaign.Campaign) error {
	b, err := def.Encode()
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := c.createOnce(ctx, def.ID, b, attempt > 0)
		if errors.Is(err, errUnknownOutcome) && attempt < 3 {
			continue
		}
		return err
	}
}

var errUnknownOutcome = errors.New("catalog: create: commit outcome unknown")

func (c *Catalog) createOnce(ctx context.Context, id string, value []byte, retry bool) error {
	txn, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.opts...),
		kgo.TransactionalID(c.cfg.Topics.Campaigns+"/create/"+id),
		kgo.TransactionTimeout(10*time.Second))...)
	if err != nil {
		return fmt.Errorf("catalog: create %s: %w", id, err)
	}
	defer txn.Close()
	if _, _, err := txn.ProducerID(ctx); err != nil {
		return fmt.Errorf("catalog: create %s: initialising its transactional id: %w", id, err)
	}
	all, err := c.latest(ctx, c.cfg.Topics.Campaigns)
	if err != nil {
		return err
	}
	if stored, ok := all[id]; ok {
		if retry && bytes.Equal(stored, value) {
			return nil // the previous attempt's commit landed
		}
		return fmt.Errorf("%w: %s", ErrExists, id)
	}
	if err := txn.BeginTransaction(); err != nil {
		return fmt.Errorf("catalog: create %s: %w", id, err)
	}
	rec := &kgo.Record{Topic: c.cfg.Topics.Campaigns, Key: []byte(id), Value: value}
	perr := txn.ProduceSync(ctx, rec).FirstErr()
	var written kafka.Written
	if perr == nil {
		written.Note(rec)
	}
	commit := kgo.TryCommit
	if perr != nil {
		commit = kgo.TryAbort
	}
	eerr := txn.EndTransaction(ctx, commit)
	switch {
	case fencedErr(perr) || fencedErr(eerr):
		return fmt.Errorf("%w: %s", ErrConflict, id)
	case perr != nil:
		return fmt.Errorf("catalog: create %s: %w", id, perr)
	case eerr != nil:
		return fmt.Errorf("%w: %s: %w", errUnknownOutcome, id, eerr)
	}
	// EndTxn answers before the broker has written the commit markers; until
	// then read_committed readers (the planner, the control service, the
	// stages) would not find the campaign just created.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := written.WaitReadable(wctx, c.adm); err != nil {
		return fmt.Errorf("catalog: create %s: committed, but not readable yet: %w", id, err)
	}
	return nil
}

func fencedErr(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionAbortable)
}

// PutManifest stores a plan manifest.
func (c *Catalog) PutManifest(ctx context.Context, m *wire.Manifest) error {
	b, err := wire.Encode(m)
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: c.cfg.Topics.Plans, Key: []byte(m.Campaign), Value: b}
	if err := c.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("catalog: store manifest %s: %w", m.Campaign, err)
	}
	return nil
}

// latest reads topic and returns the newest value per key (tombstones remove).
func (c *Catalog) latest(ctx context.Context, topic string) (map[string][]byte, error) {
	ends, err := kafka.SnapshotEnds(ctx, c.adm, topic, nil)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	out := map[string][]byte{}
	err = kafka.ReadSnapshot(ctx, c.opts, topic, ends, func(r *kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if r.Value == nil {
			delete(out, string(r.Key))
		} else {
			out[string(r.Key)] = r.Value
		}
		return nil
	})
	return out, err
}

// Campaign returns the stored definition of id, or ErrNotFound.
func (c *Catalog) Campaign(ctx context.Context, id string) (*campaign.Campaign, error) {
	all, err := c.latest(ctx, c.cfg.Topics.Campaigns)
	if err != nil {
		return nil, err
	}
	b, ok := all[id]
	if !ok {
		return nil, fmt.Errorf("%w: campaign %q", ErrNotFound, id)
	}
	def, err := campaign.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("catalog: stored campaign %s: %w", id, err)
	}
	return def, nil
}

// Campaigns returns every stored definition, sorted by id. Definitions that
// no longer parse are reported in the error but do not hide the others.
func (c *Catalog) Campaigns(ctx context.Context) ([]*campaign.Campaign, error) {
	all, err := c.latest(ctx, c.cfg.Topics.Campaigns)
	if err != nil {
		return nil, err
	}
	var out []*campaign.Campaign
	var errs []error
	for id, b := range all {
		def, err := campaign.Parse(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("campaign %s: %w", id, err))
			continue
		}
		out = append(out, def)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(errs...)
}

// Manifest returns the current plan manifest of a campaign, or ErrNotFound.
func (c *Catalog) Manifest(ctx context.Context, id string) (*wire.Manifest, error) {
	all, err := c.latest(ctx, c.cfg.Topics.Plans)
	if err != nil {
		return nil, err
	}
	b, ok := all[id]
	if !ok {
		return nil, fmt.Errorf("%w: no plan for campaign %q", ErrNotFound, id)
	}
	var m wire.Manifest
	if err := wire.Decode(b, &m); err != nil {
		return nil, fmt.Errorf("catalog: manifest %s: %w", id, err)
	}
	return &m, nil
}

// FirstFire returns the first verified fire record of campaign id in the
// control topic (nil if none): the durable winner of GO. A press publishes
// a verified record only after the guard confirmed its winner, so the first
// one stays the fire when Redis loses the guard's copy (a failover, a
// flush). Unverified fire records (written by hand, or by an owlpost that
// did not mark them) are not considered. The control topic is read whole,
// up to its end offsets at the call.
func (c *Catalog) FirstFire(ctx context.Context, id string) (*wire.Control, error) {
	topic := c.cfg.Topics.Control
	ends, err := kafka.SnapshotEnds(ctx, c.adm, topic, nil)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var first *wire.Control
	var firstAt time.Time
	var firstPart int32
	var firstOff int64
	err = kafka.ReadSnapshot(ctx, c.opts, topic, ends, func(r *kgo.Record) error {
		if string(r.Key) != id {
			return nil
		}
		var ctl wire.Control
		if wire.Decode(r.Value, &ctl) != nil || ctl.Type != wire.ControlFire || !ctl.Verified || ctl.Campaign != id || ctl.FireID == "" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		// One campaign's records share a partition (keyed by id), so
		// offset order is log order; the timestamp only orders records
		// of one id in different partitions (after a partition change).
		earlier := first == nil || r.Timestamp.Before(firstAt)
		if first != nil && r.Partition == firstPart {
			earlier = r.Offset < firstOff
		}
		if earlier {
			first, firstAt, firstPart, firstOff = &ctl, r.Timestamp, r.Partition, r.Offset
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: control log of %s: %w", id, err)
	}
	return first, nil
}
