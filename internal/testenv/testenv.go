package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
)

const howToStart = "start the dev stack with `make up` (scripts/devstack.sh up), or point OWLPOST_TEST_KAFKA / OWLPOST_TEST_REDIS at running services"

// KafkaAddr returns the broker address for tests.
func KafkaAddr() string { return envOr("OWLPOST_TEST_KAFKA", "127.0.0.1:9092") }

// RedisAddr returns the redis-server address for tests.
func RedisAddr() string { return envOr("OWLPOST_TEST_REDIS", "127.0.0.1:6379") }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ID returns a short random id for names.
func ID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func reachable(t testing.TB, what, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s at %s is unreachable (%v): %s", what, addr, err, howToStart)
	}
	_ = c.Close()
}

// Config returns a Config pointing at the test services, with every topic
// name, group and Redis prefix unique to this test, and small partition
// counts. Topics are not created: call Topics.
func Config(t testing.TB) *config.Config {
	t.Helper()
	reachable(t, "Kafka", KafkaAddr())
	reachable(t, "Redis", RedisAddr())
	cfg := config.Default()
	id := ID()
	cfg.InstanceID = "test-" + id
	cfg.Kafka.Brokers = []string{KafkaAddr()}
	cfg.Redis.Addr = RedisAddr()
	cfg.Redis.Prefix = "t-" + id
	p := "t-" + id + "."
	tp := &cfg.Topics
	for _, s := range []*string{&tp.Campaigns, &tp.Plans, &tp.Batches, &tp.Control, &tp.Status, &tp.SendIOS,
		&tp.SendAndroid, &tp.Results, &tp.Feedback, &tp.Rejects} {
		*s = p + strings.TrimPrefix(*s, "owlpost.")
	}
	tp.BatchesPartitions, tp.SendPartitions, tp.ResultsPartitions = 4, 4, 2
	tp.FeedbackPartitions, tp.RejectsPartitions = 2, 1
	cfg.Fanout.Group = p + "fanout"
	cfg.Fanout.TransactionalID = p + "fanout"
	cfg.Sender.Group = p + "sender"
	return cfg
}

// Topics creates every topic of cfg and deletes them when the test ends.
func Topics(t testing.TB, cfg *config.Config) {
	t.Helper()
	adm := Admin(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	specs := kafka.Specs(cfg)
	if _, err := kafka.EnsureTopics(ctx, adm, cfg.Topics.ReplicationFactor, specs); err != nil {
		t.Fatalf("create topics: %v (%s)", err, howToStart)
	}
	t.Cleanup(func() {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		DeleteTopics(t, cfg, names...)
	})
}

// DeleteTopics removes topics (best effort, for cleanup).
func DeleteTopics(t testing.TB, cfg *config.Config, names ...string) {
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = kadm.NewClient(cl).DeleteTopics(ctx, names...)
}

// Client returns a Kafka client for cfg, closed at cleanup.
func Client(t testing.TB, cfg *config.Config, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(cfg, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client for cfg, closed at cleanup.
func Admin(t testing.TB, cfg *config.Config) *kadm.Client {
	t.Helper()
	return kadm.NewClient(Client(t, cfg))
}

// Redis returns a client for the test redis-server; keys under the test's
// prefix are deleted at cleanup.
func Redis(t testing.TB, cfg *config.Config) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v: %s", cfg.Redis.Addr, err, howToStart)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, cfg.Redis.Prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb
}

// Context returns a context cancelled at cleanup or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ExampleCampaign parses internal/campaign/testdata/example.yaml, the
// campaign the tests define (a fresh copy each call, to change freely).
func ExampleCampaign(t testing.TB) *campaign.Campaign {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	src, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "campaign", "testdata", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def, err := campaign.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	return def
}
