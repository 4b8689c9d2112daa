package catalog_test

import (
	"errors"
	"os"
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
	src, err := os.ReadFile("../campaign/testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := campaign.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
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
