package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/kafka"
)

// TestListUnreachableKafka: with no broker to read the catalog from, the
// list fails with the reason and does not claim there are no campaigns.
func TestListUnreachableKafka(t *testing.T) {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{e2e.FreeAddr(t)} // nothing listens there
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	err = listCampaigns(ctx, &Env{Out: &out}, cat, false)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the broker's connection refused", err)
	}
	if strings.Contains(out.String(), "no campaigns") {
		t.Fatalf("an unreadable catalog listed as empty:\n%s", out.String())
	}
}
