package catalog_test

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

func TestCatalogRoundTrip(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, time.Minute)
	cat, err := catalog.New(cfg, testenv.Client(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Campaign(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	def := testenv.ExampleCampaign(t)
	if err := cat.PutCampaign(ctx, def); err != nil {
		t.Fatal(err)
	}
	def.Deadline = campaign.Duration(7 * time.Minute)
	if err := cat.PutCampaign(ctx, def); err != nil { // update
		t.Fatal(err)
	}
	got, err := cat.Campaign(ctx, def.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Deadline != def.Deadline {
		t.Fatalf("update not seen: deadline %v", got.Deadline)
	}
	all, err := cat.Campaigns(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("list: %d %v", len(all), err)
	}
	m := &wire.Manifest{Campaign: def.ID, Generation: 2, IOSBatches: 1, IOSTokens: 3}
	if err := cat.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	gm, err := cat.Manifest(ctx, def.ID)
	if err != nil || gm.Generation != 2 || gm.Tokens() != 3 {
		t.Fatalf("manifest: %+v %v", gm, err)
	}
}

// TestCreateCampaignOnce: concurrent creates of one id against the real
// broker store exactly one definition, the one whose create succeeded; the
// others are refused (exists or fenced), never silently overwritten.
func TestCreateCampaignOnce(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, 2*time.Minute)
	cat, err := catalog.New(cfg, testenv.Client(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../campaign/testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const creators = 8
	errs := make([]error, creators)
	var wg sync.WaitGroup
	for i := range creators {
		def, err := campaign.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		def.Deadline = campaign.Duration(time.Duration(i+1) * time.Minute) // tells the creators apart
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cat.CreateCampaign(ctx, def)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("creators %d and %d both succeeded", winner, i)
			}
			winner = i
		case errors.Is(err, catalog.ErrExists), errors.Is(err, catalog.ErrConflict):
		default:
			t.Errorf("creator %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no creator succeeded: %v", errs)
	}
	def, err := campaign.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cat.Campaign(ctx, def.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := campaign.Duration(time.Duration(winner+1) * time.Minute); got.Deadline != want {
		t.Errorf("stored deadline %v, the successful creator %d wrote %v", got.Deadline, winner, want)
	}
	if err := cat.CreateCampaign(ctx, def); !errors.Is(err, catalog.ErrExists) {
		t.Errorf("create of an existing id: %v, want ErrExists", err)
	}
	t.Logf("creators: %v", errs)
}
