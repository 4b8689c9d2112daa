package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
)

// The production-topology stack of scripts/devstack.sh (`up --cluster`),
// named by the variables `scripts/devstack.sh env --cluster` prints.
const (
	EnvKafkaCluster  = "OWLPOST_TEST_KAFKA_CLUSTER"  // the three brokers, host:port,...
	EnvRedisSentinel = "OWLPOST_TEST_REDIS_SENTINEL" // the three Sentinels
	EnvRedisMaster   = "OWLPOST_TEST_REDIS_MASTER"   // the master name the Sentinels watch
	EnvRedisCluster  = "OWLPOST_TEST_REDIS_CLUSTER"  // the six Redis Cluster nodes
)

const howToStartCluster = "start the cluster stack with `scripts/devstack.sh up --cluster` and export what `scripts/devstack.sh env --cluster` prints (make test does both)"

// KafkaClusterAddrs returns the cluster stack's three brokers; the test fails
// when they are not configured or none answers.
func KafkaClusterAddrs(t testing.TB) []string {
	return clusterAddrs(t, "Kafka cluster", EnvKafkaCluster)
}

// RedisSentinelAddrs returns the cluster stack's three Sentinels.
func RedisSentinelAddrs(t testing.TB) []string {
	return clusterAddrs(t, "Redis Sentinel", EnvRedisSentinel)
}

// RedisMaster returns the master name the Sentinels watch.
func RedisMaster(t testing.TB) string {
	t.Helper()
	m := os.Getenv(EnvRedisMaster)
	if m == "" {
		t.Fatalf("%s is not set: %s", EnvRedisMaster, howToStartCluster)
	}
	return m
}

// RedisClusterAddrs returns the six nodes of the cluster stack's Redis Cluster.
func RedisClusterAddrs(t testing.TB) []string {
	return clusterAddrs(t, "Redis Cluster", EnvRedisCluster)
}

func clusterAddrs(t testing.TB, what, env string) []string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s: %s is not set: %s", what, env, howToStartCluster)
	}
	addrs := strings.Split(v, ",")
	var errs []error
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 3*time.Second)
		if err == nil {
			_ = c.Close()
			return addrs
		}
		errs = append(errs, err)
	}
	t.Fatalf("%s at %s: no node answers (%v): %s", what, v, errors.Join(errs...), howToStartCluster)
	return nil
}

// RedisSentinelPrimary returns the address of the current primary the
// Sentinels agree on (it moves on a failover).
func RedisSentinelPrimary(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, a := range RedisSentinelAddrs(t) {
		s := redis.NewSentinelClient(&redis.Options{Addr: a})
		hp, err := s.GetMasterAddrByName(ctx, RedisMaster(t)).Result()
		_ = s.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1])
		}
		errs = append(errs, fmt.Errorf("%s: %v", a, err))
	}
	t.Fatalf("no Sentinel names the primary of %s: %v", RedisMaster(t), errors.Join(errs...))
	return ""
}

// Devstack runs `scripts/devstack.sh ARGS...` (the test's environment, e.g.
// OWLPOST_STATE and OWLPOST_CLUSTER_ID, passes through) and returns its
// standard output. The node verbs of the cluster stack: Devstack(t, "kill",
// "kafka-2"), "start", "stop", "partition", "heal", "netns".
func Devstack(t testing.TB, args ...string) (string, error) {
	t.Helper()
	root, err := e2e.ModuleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "devstack.sh"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("devstack %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// NodeNetns returns the network namespace of a cluster node's host, for
// running a process on that host (ip netns exec NS ...), so that a partition
// of the node cuts the process off with it. The test fails when the cluster
// runs without namespaces.
func NodeNetns(t testing.TB, node string) string {
	t.Helper()
	ns, err := Devstack(t, "netns", node)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// ClusterConfig is Config on the cluster stack's Kafka: the three brokers,
// replication factor 3 and min.insync.replicas 2 (the production settings).
// Redis stays the single-node stack's.
func ClusterConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg := Config(t)
	cfg.Kafka.Brokers = KafkaClusterAddrs(t)
	cfg.Topics.ReplicationFactor, cfg.Topics.MinInsyncReplicas = 3, 2
	return cfg
}
