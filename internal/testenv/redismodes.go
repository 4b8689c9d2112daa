package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/owlpost/owlpost/internal/config"
)

// RedisModes are the Redis deployments the guard runs on; a test that must
// hold on each is a table over them.
func RedisModes() []string {
	return []string{config.RedisStandalone, config.RedisSentinel, config.RedisCluster}
}

// RedisMode points cfg.Redis at the test deployment of mode: standalone is
// OWLPOST_TEST_REDIS; sentinel and cluster are the cluster stack's (see
// RedisSentinelAddrs, RedisClusterAddrs): a missing variable fails the test
// with how to start it.
func RedisMode(t testing.TB, cfg *config.Config, mode string) {
	t.Helper()
	cfg.Redis.Mode = mode
	switch mode {
	case config.RedisStandalone:
		cfg.Redis.Addr, cfg.Redis.Addrs = RedisAddr(), nil
	case config.RedisSentinel:
		cfg.Redis.Addrs = RedisSentinelAddrs(t)
		cfg.Redis.MasterName = RedisMaster(t)
	case config.RedisCluster:
		cfg.Redis.Addrs = RedisClusterAddrs(t)
	default:
		t.Fatalf("unknown redis mode %q", mode)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// CleanRedis checks rdb answers (failing the test with how to start the
// stack otherwise) and deletes the keys under prefix at cleanup, on every
// primary of a cluster.
func CleanRedis(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("redis: %v: %s; %s", err, howToStart, howToStartCluster)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		del := func(ctx context.Context, c *redis.Client) error {
			iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			return iter.Err()
		}
		switch c := rdb.(type) {
		case *redis.ClusterClient:
			_ = c.ForEachMaster(ctx, del)
		case *redis.Client:
			_ = del(ctx, c)
		}
		_ = rdb.Close()
	})
}

// FlushRedis deletes every key under cfg's Redis prefix now, as a failover to
// a replica without them or a mistaken FLUSHALL would (standalone Redis).
func FlushRedis(t testing.TB, cfg *config.Config) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, cfg.Redis.Prefix+":*", 1000).Iterator()
	n := 0
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatalf("flush redis: %v", err)
		}
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
	t.Logf("flushed %d Redis keys under %s", n, cfg.Redis.Prefix)
}
