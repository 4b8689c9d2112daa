package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/wire"
)

// ErrNotFound is returned by Campaign and Manifest for an unknown id.
var ErrNotFound = errors.New("catalog: not found")

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

// PutCampaign validates and stores a definition (create and update alike).
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
