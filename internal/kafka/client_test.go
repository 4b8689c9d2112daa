package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
)

// TestProducerDurability checks every client owlpost builds produces with
// acks=all and idempotently (no connection is made).
func TestProducerDurability(t *testing.T) {
	cl, err := kafka.NewClient(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if acks := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); acks != kgo.AllISRAcks() {
		t.Fatalf("acks = %v, want all in-sync replicas", acks)
	}
	if cl.OptValue(kgo.DisableIdempotentWrite).(bool) {
		t.Fatal("idempotent writes are disabled")
	}
}
