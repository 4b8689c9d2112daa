package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/testenv"
)

// TestTopicsCreatedWithSettings creates every topic and reads the configs back
// from the real broker; a second run must change nothing.
func TestTopicsCreatedWithSettings(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	adm := testenv.Admin(t, cfg)
	ctx := testenv.Context(t, time.Minute)

	got, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range kafka.Specs(cfg) {
		td, ok := got[s.Name]
		if !ok {
			t.Fatalf("topic %s missing", s.Name)
		}
		if n := int32(len(td.Partitions)); n != s.Partitions {
			t.Errorf("%s: %d partitions, want %d", s.Name, n, s.Partitions)
		}
		configs, err := kafka.TopicConfigs(ctx, adm, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range s.Configs {
			if configs[k] != v {
				t.Errorf("%s: %s = %q, want %q", s.Name, k, configs[k], v)
			}
		}
	}
	batches, _ := kafka.TopicConfigs(ctx, adm, cfg.Topics.Batches)
	if batches["cleanup.policy"] != "compact" {
		t.Fatalf("batches topic must be compacted, cleanup.policy=%q", batches["cleanup.policy"])
	}
	changes, err := kafka.EnsureTopics(ctx, adm, 1, kafka.Specs(cfg))
	if err != nil || len(changes) != 0 {
		t.Fatalf("second EnsureTopics should be a no-op: %v %v", changes, err)
	}
}

// TestProduceConsumeTransactional produces plain and transactional records
// (one committed, one aborted transaction) and reads them back with
// read_committed through ReadSnapshot, and with a consumer group.
func TestProduceConsumeTransactional(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, 2*time.Minute)
	topic := cfg.Topics.Results

	plain := testenv.Client(t, cfg, kgo.DefaultProduceTopic(topic))
	if err := plain.ProduceSync(ctx, kgo.StringRecord("plain")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn := testenv.Client(t, cfg, kgo.DefaultProduceTopic(topic), kgo.TransactionalID(cfg.Fanout.TransactionalID+"-t"))
	for i, commit := range []bool{true, false, true} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 3; j++ {
			txn.Produce(ctx, kgo.StringRecord(fmt.Sprintf("txn%d-%d-commit=%v", i, j, commit)), nil)
		}
		if err := txn.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}

	// Up to the high watermarks: EndTransaction returns before the
	// coordinator has written the markers, so the last stable offset
	// (SnapshotEnds) may not cover the last transaction yet; a
	// read_committed read up to the high watermark waits for them.
	adm := testenv.Admin(t, cfg)
	ends, err := kafka.WrittenEnds(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := kafka.Opts(cfg)
	seen := make(chan string, 100)
	if err := kafka.ReadSnapshot(ctx, opts, topic, ends, func(r *kgo.Record) error {
		seen <- string(r.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	close(seen)
	var values []string
	for v := range seen {
		values = append(values, v)
	}
	if len(values) != 7 {
		t.Fatalf("read_committed snapshot: got %d records %v, want 1 plain + 6 committed", len(values), values)
	}
	for _, v := range values {
		if v == "txn1-0-commit=false" || v == "txn1-1-commit=false" || v == "txn1-2-commit=false" {
			t.Fatalf("aborted record visible: %s", v)
		}
	}

	// A consumer group reading read_committed sees the same 7.
	grp := testenv.Client(t, cfg, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(cfg.Sender.Group),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	n := 0
	for n < 7 {
		fs := grp.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("group consumer got %d of 7 before timeout", n)
		}
		fs.EachRecord(func(r *kgo.Record) { n++ })
	}
	if err := grp.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := kafka.Lag(ctx, adm, cfg.Sender.Group)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("no lag rows for the group")
	}
	for _, r := range rows {
		// A partition whose last offset is a transaction commit marker shows
		// lag 1 after everything was consumed: the marker is never delivered,
		// so the committed offset stops just before it (see kafka.LagRow).
		if r.Lag > 1 {
			t.Errorf("lag after consuming everything: %+v", r)
		}
	}
}

// TestWaitReadable: after a transaction over every partition of a topic is
// committed and WaitReadable returned, a read_committed snapshot holds every
// record. (Kafka answers EndTxn before the markers are written; without the
// wait, the snapshot can stop short in some partitions.)
func TestWaitReadable(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, 2*time.Minute)
	topic := cfg.Topics.Batches
	adm := testenv.Admin(t, cfg)
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	parts := int32(len(tds[topic].Partitions))
	txn := testenv.Client(t, cfg, kgo.TransactionalID(cfg.Fanout.TransactionalID+"-wait"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	opts, _ := kafka.Opts(cfg)
	for round := range 5 {
		var w kafka.Written
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for p := range parts {
			v := fmt.Sprintf("wait-%s-r%d-p%d", testenv.ID(), round, p)
			want[v] = true
			txn.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte(v), Value: []byte(v)},
				func(r *kgo.Record, err error) {
					if err == nil {
						w.Note(r)
					}
				})
		}
		if err := txn.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		if err := w.WaitReadable(ctx, adm); err != nil {
			t.Fatal(err)
		}
		ends, err := kafka.SnapshotEnds(ctx, adm, topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := make(chan string, 4096)
		if err := kafka.ReadSnapshot(ctx, opts, topic, ends, func(r *kgo.Record) error {
			if want[string(r.Value)] {
				seen <- string(r.Value)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		close(seen)
		if n := len(seen); n != len(want) {
			t.Fatalf("round %d: snapshot after WaitReadable holds %d of the %d committed records", round, n, len(want))
		}
	}
}

// TestSnapshotStoppedByOpenTransaction: a read to a partition's high
// watermark (WrittenEnds) cannot pass a transaction still open on it; when
// its context ends, the error says where the read stopped, so that a log
// tells a last stable offset held by a transaction from a partition that
// answers nothing.
func TestSnapshotStoppedByOpenTransaction(t *testing.T) {
	cfg := testenv.Config(t)
	testenv.Topics(t, cfg)
	ctx := testenv.Context(t, time.Minute)
	topic := cfg.Topics.Status
	adm := testenv.Admin(t, cfg)
	plain := testenv.Client(t, cfg, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("k"), Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn := testenv.Client(t, cfg, kgo.TransactionalID(cfg.Fanout.TransactionalID+"-open"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("k"), Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txn.EndTransaction(context.Background(), kgo.TryAbort) }()
	ends, err := kafka.WrittenEnds(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	if ends[0] != 2 {
		t.Fatalf("partition 0 ends at %d, want 2 (one committed record, one in the open transaction)", ends[0])
	}
	opts, _ := kafka.Opts(cfg)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var got []string
	err = kafka.ReadSnapshot(rctx, opts, topic, map[int32]int64{0: ends[0]}, func(r *kgo.Record) error {
		got = append(got, string(r.Value))
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "partition 0 at 1 of 2") {
		t.Fatalf("read past an open transaction: %v, want a deadline error saying partition 0 at 1 of 2", err)
	}
	if len(got) != 1 || got[0] != "committed" {
		t.Fatalf("read %q before the open transaction, want [committed]", got)
	}
}

// TestRedisSetNX exercises the primitive every guard is built on.
func TestRedisSetNX(t *testing.T) {
	cfg := testenv.Config(t)
	rdb := testenv.Redis(t, cfg)
	ctx := context.Background()
	key := cfg.Redis.Prefix + ":fire:c1"
	ok, err := rdb.SetNX(ctx, key, "fire-a", time.Hour).Result()
	if err != nil || !ok {
		t.Fatalf("first SET NX: %v %v", ok, err)
	}
	ok, err = rdb.SetNX(ctx, key, "fire-b", time.Hour).Result()
	if err != nil || ok {
		t.Fatalf("second SET NX must lose: %v %v", ok, err)
	}
	v, err := rdb.Get(ctx, key).Result()
	if err != nil || v != "fire-a" {
		t.Fatalf("winner changed: %q %v", v, err)
	}
	if _, err := rdb.Get(ctx, cfg.Redis.Prefix+":absent").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("absent key: %v", err)
	}
}

// TestTopicsOnCluster creates the topics on the cluster stack with the
// production settings, then checks Weaker reports a topic created weaker
// (replication factor 1, min.insync.replicas 1): EnsureTopics raises the
// min.insync.replicas, the replication factor stays reported; and a topic
// an operator made stronger is never lowered.
func TestTopicsOnCluster(t *testing.T) {
	cfg := testenv.ClusterConfig(t)
	testenv.Topics(t, cfg)
	adm := testenv.Admin(t, cfg)
	ctx := testenv.Context(t, 2*time.Minute)
	specs := kafka.Specs(cfg)
	weak, err := kafka.Weaker(ctx, adm, 3, specs)
	if err != nil || len(weak) != 0 {
		t.Fatalf("topics created with the configured settings reported weaker: %v %v", weak, err)
	}
	tds, err := adm.ListTopics(ctx, cfg.Topics.Control)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tds[cfg.Topics.Control].Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("control partition %d has replicas %v, want 3", p.Partition, p.Replicas)
		}
	}

	weakTopic := kafka.TopicSpec{Name: cfg.Topics.Control + ".weak", Partitions: 1,
		Configs: map[string]string{"min.insync.replicas": "1"}}
	strongTopic := kafka.TopicSpec{Name: cfg.Topics.Control + ".strong", Partitions: 1,
		Configs: map[string]string{"min.insync.replicas": "3"}}
	t.Cleanup(func() { testenv.DeleteTopics(t, cfg, weakTopic.Name, strongTopic.Name) })
	if _, err := kafka.EnsureTopics(ctx, adm, 1, []kafka.TopicSpec{weakTopic}); err != nil {
		t.Fatal(err)
	}
	if _, err := kafka.EnsureTopics(ctx, adm, 3, []kafka.TopicSpec{strongTopic}); err != nil {
		t.Fatal(err)
	}
	weakTopic.Configs["min.insync.replicas"] = "2"
	strongTopic.Configs["min.insync.replicas"] = "2"
	both := []kafka.TopicSpec{weakTopic, strongTopic}
	weak, err = kafka.Weaker(ctx, adm, 3, both)
	if err != nil || len(weak) != 2 {
		t.Fatalf("want the weak topic's replication factor and min.insync.replicas reported, got %q %v", weak, err)
	}
	if _, err := kafka.EnsureTopics(ctx, adm, 3, both); err != nil {
		t.Fatal(err)
	}
	weak, err = kafka.Weaker(ctx, adm, 3, both)
	if err != nil || len(weak) != 1 {
		t.Fatalf("after EnsureTopics only the replication factor stays weaker, got %q %v", weak, err)
	}
	strong, err := kafka.TopicConfigs(ctx, adm, strongTopic.Name)
	if err != nil || strong["min.insync.replicas"] != "3" {
		t.Fatalf("EnsureTopics lowered a stronger min.insync.replicas to %q (%v)", strong["min.insync.replicas"], err)
	}
}
