package testenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/owlpost/owlpost/internal/testenv"
)

// TestClusterStack checks the cluster stack's Redis topologies answer as
// the env contract says: the Sentinels name a primary that takes writes, and
// the Redis Cluster serves every slot.
func TestClusterStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	primary := testenv.RedisSentinelPrimary(t)
	rdb := redis.NewClient(&redis.Options{Addr: primary})
	defer rdb.Close()
	key := "testenv-" + testenv.ID()
	if err := rdb.Set(ctx, key, "1", time.Minute).Err(); err != nil {
		t.Fatalf("the primary %s the Sentinels name refuses a write: %v", primary, err)
	}
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t)})
	defer rc.Close()
	info, err := rc.ClusterInfo(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !contains(info, "cluster_state:ok") || !contains(info, "cluster_slots_assigned:16384") {
		t.Fatalf("redis cluster not serving every slot:\n%s", info)
	}
	if len(testenv.KafkaClusterAddrs(t)) != 3 {
		t.Fatalf("%s: want three brokers", testenv.EnvKafkaCluster)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
