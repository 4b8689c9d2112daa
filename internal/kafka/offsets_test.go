package kafka_test

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/testenv"
)

// writeDuringListing produces one record the moment the first ListOffsets
// response reaches the listing client, before the client sees it: the
// record lands between the requests of one listing, as a result written
// milliseconds after a proof request can.
type writeDuringListing struct {
	once  sync.Once
	write func()
}

func (h *writeDuringListing) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	const listOffsets = 2 // Kafka API key
	if key == listOffsets && err == nil {
		h.once.Do(h.write)
	}
}

// TestOffsetsSinceSeesRecordWrittenDuringListing: on a partition whose last
// record is older than since, a record written within milliseconds of since,
// while the offsets are being listed, must be read from the listed start.
// (Listing by timestamp first and falling back to the end offset listed
// afterwards, as `owlctl proof` did, starts after it.)
func TestOffsetsSinceSeesRecordWrittenDuringListing(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, time.Minute)
	topic := cfg.Topics.Results
	prod := testenv.Client(t, cfg, kgo.RecordPartitioner(kgo.ManualPartitioner()))

	since := time.Now()
	old := &kgo.Record{Topic: topic, Partition: 1, Timestamp: since.Add(-10 * time.Minute), Value: []byte("old")}
	if err := prod.ProduceSync(ctx, old).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var fresh *kgo.Record
	hook := &writeDuringListing{write: func() {
		r, err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("result")}).First()
		if err != nil {
			t.Errorf("produce during listing: %v", err)
			return
		}
		fresh = r
	}}
	adm := kadm.NewClient(testenv.Client(t, cfg, kgo.WithHooks(hook)))

	starts, err := kafka.OffsetsSince(ctx, adm, topic, since)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == nil {
		t.Fatal("the hook wrote no record: the listing sent no ListOffsets request")
	}
	if len(starts) != int(cfg.Topics.ResultsPartitions) {
		t.Errorf("starts for %d partitions, want every one of %d: %v", len(starts), cfg.Topics.ResultsPartitions, starts)
	}
	if st, ok := starts[1]; !ok || st > fresh.Offset || st <= old.Offset {
		t.Fatalf("partition 1 starts at %d (listed: %v), want after the old record (%d) and at or before the result (%d)",
			st, ok, old.Offset, fresh.Offset)
	}

	opts, err := kafka.Opts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	err = kafka.Read(ctx, adm, opts, topic, starts, func(r *kgo.Record) { seen = append(seen, string(r.Value)) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "result" {
		t.Fatalf("read from the listed starts %v: got %q, want just the result", starts, seen)
	}
}

var _ kgo.HookBrokerRead = (*writeDuringListing)(nil)
