package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDefaultsValid(t *testing.T) {
	c := Default()
	if c.Topics.Batches != "owlpost.batches" || c.Planner.IOSBatchSize != 500 || c.Planner.AndroidBatchSize != 250 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "owlpost.yaml")
	yaml := "kafka:\n  brokers: [\"10.0.0.1:9092\"]\nredis:\n  addr: 127.0.0.1:7000\nsender:\n  claim_lease: 45s\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OWLPOST_REDIS_ADDR", "127.0.0.1:7001")
	t.Setenv("OWLPOST_TOPICS_BATCHES_PARTITIONS", "24")
	t.Setenv("OWLPOST_KAFKA_BROKERS", "a:1,b:2")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--redis.addr", "127.0.0.1:7002"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.Addr != "127.0.0.1:7002" {
		t.Errorf("flag should win: redis.addr = %q", c.Redis.Addr)
	}
	if c.Topics.BatchesPartitions != 24 {
		t.Errorf("env should apply: batches_partitions = %d", c.Topics.BatchesPartitions)
	}
	if strings.Join(c.Kafka.Brokers, ",") != "a:1,b:2" {
		t.Errorf("env should beat file: brokers = %v", c.Kafka.Brokers)
	}
	if c.Sender.ClaimLease != 45*time.Second {
		t.Errorf("file should apply: claim_lease = %s", c.Sender.ClaimLease)
	}
}

func TestValidateNamesField(t *testing.T) {
	cases := []struct {
		env, val, field string
	}{
		{"OWLPOST_KAFKA_BROKERS", "nohostport", "kafka.brokers"},
		{"OWLPOST_TOPICS_BATCHES", "", "topics.batches"},
		{"OWLPOST_TOPICS_SEND_PARTITIONS", "0", "topics.send_partitions"},
		{"OWLPOST_REDIS_ADDR", "x", "redis.addr"},
		{"OWLPOST_SENDER_PLATFORM", "windows", "sender.platform"},
		{"OWLPOST_PLANNER_IOS_BATCH_SIZE", "0", "planner.ios_batch_size"},
		{"OWLPOST_KAFKA_SASL_MECHANISM", "GSSAPI", "kafka.sasl.mechanism"},
		{"OWLPOST_APNS_TRANSPORT", "quick", "apns.transport"},
		{"OWLPOST_FCM_TRANSPORT", "", "fcm.transport"},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			t.Setenv(tc.env, tc.val)
			_, err := Load(nil)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("want error naming %s, got %v", tc.field, err)
			}
		})
	}
}

func TestRedisModes(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		field string // "" = valid
	}{
		{"standalone by default", nil, ""},
		{"unknown mode", map[string]string{"OWLPOST_REDIS_MODE": "replica"}, "redis.mode"},
		{"sentinel without addrs", map[string]string{"OWLPOST_REDIS_MODE": "sentinel", "OWLPOST_REDIS_MASTER_NAME": "m"}, "redis.addrs"},
		{"sentinel without master", map[string]string{"OWLPOST_REDIS_MODE": "sentinel", "OWLPOST_REDIS_ADDRS": "10.0.0.1:26379,10.0.0.2:26379"}, "redis.master_name"},
		{"sentinel", map[string]string{"OWLPOST_REDIS_MODE": "sentinel", "OWLPOST_REDIS_ADDRS": "10.0.0.1:26379,10.0.0.2:26379", "OWLPOST_REDIS_MASTER_NAME": "m"}, ""},
		{"cluster bad addr", map[string]string{"OWLPOST_REDIS_MODE": "cluster", "OWLPOST_REDIS_ADDRS": "10.0.0.1:7000,nohost"}, "redis.addrs"},
		{"cluster db", map[string]string{"OWLPOST_REDIS_MODE": "cluster", "OWLPOST_REDIS_ADDRS": "10.0.0.1:7000", "OWLPOST_REDIS_DB": "2"}, "redis.db"},
		{"cluster", map[string]string{"OWLPOST_REDIS_MODE": "cluster", "OWLPOST_REDIS_ADDRS": "10.0.0.1:7000,10.0.0.2:7000"}, ""},
		{"standalone with several addrs", map[string]string{"OWLPOST_REDIS_ADDRS": "10.0.0.1:7000,10.0.0.2:7000"}, "redis.addrs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := Load(nil)
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
				t.Fatalf("want error naming %s, got %v", tc.field, err)
			case tc.field == "" && c.Redis.Mode == RedisSentinel && len(c.Redis.Addrs) != 2:
				t.Fatalf("addrs from env: %q", c.Redis.Addrs)
			}
		})
	}
}

func TestMalformedFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte("kafka: [unclosed"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OWLPOST_CONFIG", file)
	if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("want a clear error naming the file, got %v", err)
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(file, []byte("redis:\n  adress: x:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OWLPOST_CONFIG", file)
	if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("want the misspelled key named, got %v", err)
	}
}

func TestSecretsRedacted(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OWLPOST_CONTROL_TOKEN_FILE", tok)
	t.Setenv("OWLPOST_REDIS_PASSWORD", "hunter2")
	sp := filepath.Join(dir, "sentinel")
	if err := os.WriteFile(sp, []byte("sentinel-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OWLPOST_REDIS_SENTINEL_PASSWORD_FILE", sp)
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Control.Token != "s3cret-token" || c.Redis.Password != "hunter2" || c.Redis.SentinelPassword != "sentinel-pw" {
		t.Fatalf("secrets not loaded")
	}
	s := c.String()
	for _, secret := range []string{"s3cret-token", "hunter2", "sentinel-pw"} {
		if strings.Contains(s, secret) {
			t.Errorf("secret %q leaked into %s", secret, s)
		}
	}
	if c.Redis.Password != "hunter2" {
		t.Errorf("Redacted must not modify the original")
	}
}

func TestKeysHaveEnvNames(t *testing.T) {
	for _, k := range Keys() {
		if e := EnvName(k); !strings.HasPrefix(e, "OWLPOST_") || strings.Contains(e, ".") {
			t.Errorf("bad env name %q for %q", e, k)
		}
	}
}
