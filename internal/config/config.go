package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/owlpost/owlpost/internal/push"
)

// Config is everything a stage or the CLI needs. Field tags are the config keys.
type Config struct {
	// InstanceID names this process in readiness reports and audit records
	// (defaults to the host name plus the pid).
	InstanceID string        `mapstructure:"instance_id"`
	Kafka      KafkaConfig   `mapstructure:"kafka"`
	Topics     TopicsConfig  `mapstructure:"topics"`
	Redis      RedisConfig   `mapstructure:"redis"`
	APNs       APNsConfig    `mapstructure:"apns"`
	FCM        FCMConfig     `mapstructure:"fcm"`
	Planner    PlannerConfig `mapstructure:"planner"`
	Fanout     FanoutConfig  `mapstructure:"fanout"`
	Sender     SenderConfig  `mapstructure:"sender"`
	Control    ControlConfig `mapstructure:"control"`
	Metrics    MetricsConfig `mapstructure:"metrics"`
	LogLevel   string        `mapstructure:"log_level"`
}

// SlogLevel is log_level as a slog level (debug, info, warn, error).
func (c *Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("config: log_level: %w", err)
	}
	return l, nil
}

// TLSConfig is a client TLS setup shared by Kafka and Redis.
type TLSConfig struct {
	Enabled            bool   `mapstructure:"enabled"`
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	ServerName         string `mapstructure:"server_name"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// KafkaConfig connects to the cluster.
type KafkaConfig struct {
	Brokers  []string   `mapstructure:"brokers"`
	ClientID string     `mapstructure:"client_id"`
	TLS      TLSConfig  `mapstructure:"tls"`
	SASL     SASLConfig `mapstructure:"sasl"`
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
}

// SASLConfig is Kafka SASL authentication; Mechanism "" disables it.
type SASLConfig struct {
	Mechanism    string `mapstructure:"mechanism"` // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username     string `mapstructure:"username"`
	Password     string `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
}

// TopicsConfig names every topic the system uses (the roles are documented in
// package wire) and sizes them.
type TopicsConfig struct {
	Campaigns   string `mapstructure:"campaigns"`
	Plans       string `mapstructure:"plans"`
	Batches     string `mapstructure:"batches"`
	Control     string `mapstructure:"control"`
	Status      string `mapstructure:"status"`
	SendIOS     string `mapstructure:"send_ios"`
	SendAndroid string `mapstructure:"send_android"`
	Results     string `mapstructure:"results"`
	Feedback    string `mapstructure:"feedback"`
	Rejects     string `mapstructure:"rejects"`

	BatchesPartitions  int32 `mapstructure:"batches_partitions"`
	SendPartitions     int32 `mapstructure:"send_partitions"`
	ResultsPartitions  int32 `mapstructure:"results_partitions"`
	FeedbackPartitions int32 `mapstructure:"feedback_partitions"`
	RejectsPartitions  int32 `mapstructure:"rejects_partitions"`
	ReplicationFactor  int16 `mapstructure:"replication_factor"`
	// MinInsyncReplicas is every topic's min.insync.replicas: an acks=all
	// write (every owlpost producer's) succeeds only once that many replicas
	// have it. Production: replication_factor 3, min_insync_replicas 2.
	MinInsyncReplicas int16 `mapstructure:"min_insync_replicas"`
}

// Redis modes (RedisConfig.Mode).
const (
	RedisStandalone = "standalone" // one server at Addr (or Addrs[0])
	RedisSentinel   = "sentinel"   // Addrs are Sentinels watching the primary MasterName
	RedisCluster    = "cluster"    // Addrs are seed nodes of a Redis Cluster
)

// RedisConfig connects to the guard store.
type RedisConfig struct {
	Mode string `mapstructure:"mode"`
	// Addr is the standalone server; Addrs the Sentinels or cluster seed nodes.
	Addr       string   `mapstructure:"addr"`
	Addrs      []string `mapstructure:"addrs"`
	MasterName string   `mapstructure:"master_name"`
	// Username/Password authenticate to the data nodes; the Sentinel ones
	// to the Sentinels, when they have their own (requirepass on a Sentinel).
	Username             string    `mapstructure:"username"`
	Password             string    `mapstructure:"password"`
	PasswordFile         string    `mapstructure:"password_file"`
	SentinelUsername     string    `mapstructure:"sentinel_username"`
	SentinelPassword     string    `mapstructure:"sentinel_password"`
	SentinelPasswordFile string    `mapstructure:"sentinel_password_file"`
	DB                   int       `mapstructure:"db"`
	TLS                  TLSConfig `mapstructure:"tls"`
	// Prefix namespaces every key (tests use a random one).
	Prefix string `mapstructure:"prefix"`
	// Timeout bounds each guard command; a guard that cannot answer fails closed.
	Timeout time.Duration `mapstructure:"timeout"`
	// FireReplicas is how many replicas must hold the winning fire record
	// (WAIT) before a press is told "fired"; -1 (default) is 1 in sentinel
	// and cluster mode and 0 in standalone mode (see FireReplicasWanted).
	// FireReplicaTimeout bounds that wait; a press not confirmed in time
	// fails closed.
	FireReplicas       int           `mapstructure:"fire_replicas"`
	FireReplicaTimeout time.Duration `mapstructure:"fire_replica_timeout"`
}

// FireReplicasWanted resolves FireReplicas: the number of replicas a fire
// record must reach before a press is answered "fired".
func (r RedisConfig) FireReplicasWanted() int {
	switch {
	case r.FireReplicas >= 0:
		return r.FireReplicas
	case r.Mode == RedisStandalone:
		return 0
	}
	return 1
}

// APNsConfig points the APNs adapter at Apple (default) or the simulator.
type APNsConfig struct {
	// Host is "production", "development" or a base URL (the simulator).
	Host    string `mapstructure:"host"`
	Topic   string `mapstructure:"topic"` // bundle id, default for campaigns without apns.topic
	KeyFile string `mapstructure:"key_file"`
	KeyID   string `mapstructure:"key_id"`
	TeamID  string `mapstructure:"team_id"`
	// Certificate auth instead of token auth.
	CertFile         string `mapstructure:"cert_file"`
	CertPassword     string `mapstructure:"cert_password"`
	CertPasswordFile string `mapstructure:"cert_password_file"`
	// CAFile adds roots to trust (the simulator's CA); empty = system roots.
	CAFile      string        `mapstructure:"ca_file"`
	Connections int           `mapstructure:"connections"`
	Timeout     time.Duration `mapstructure:"timeout"`
	// Transport is the HTTP/2 client under apns2: "library" (apns2's own)
	// or "fast" (push/h2).
	Transport string `mapstructure:"transport"`
}

// FCMConfig points the FCM adapter at Google (default) or the simulator.
type FCMConfig struct {
	ProjectID       string `mapstructure:"project_id"`
	CredentialsFile string `mapstructure:"credentials_file"`
	// Endpoint overrides the messaging endpoint (the simulator); empty = Google.
	Endpoint string        `mapstructure:"endpoint"`
	CAFile   string        `mapstructure:"ca_file"`
	Clients  int           `mapstructure:"clients"`
	Timeout  time.Duration `mapstructure:"timeout"`
	// Transport is the HTTP/2 client under firebase: "library" (net/http's)
	// or "fast" (push/h2).
	Transport string `mapstructure:"transport"`
}

// PlannerConfig tunes planning.
type PlannerConfig struct {
	IOSBatchSize     int `mapstructure:"ios_batch_size"`
	AndroidBatchSize int `mapstructure:"android_batch_size"`
}

// FanoutConfig tunes the fanout stage.
type FanoutConfig struct {
	Group string `mapstructure:"group"`
	// TransactionalID prefix; "-p<partition>" of the batches topic is appended
	// (one transactional producer per partition, so a new owner fences the old).
	TransactionalID string `mapstructure:"transactional_id"`
	// ReleasePace, when positive, spreads a release over time: each
	// partition's release transactions then hold one batch each and follow
	// each other at least this far apart. 0 (the default): as fast as the
	// transactions go. The fault suite uses it so a small campaign's release
	// lasts long enough to restart every fanout during it.
	ReleasePace time.Duration `mapstructure:"release_pace"`
}

// DefaultSenderGroup is the consumer group prefix when sender.group is
// empty; the platform is appended ("owlpost-sender-ios").
const DefaultSenderGroup = "owlpost-sender"

// GroupOf is the consumer group of the senders of platform (ios, android).
func (c SenderConfig) GroupOf(platform string) string {
	g := c.Group
	if g == "" {
		g = DefaultSenderGroup
	}
	return g + "-" + platform
}

// SenderConfig tunes the sender stage.
type SenderConfig struct {
	// Platform this sender serves: ios or android.
	Platform string `mapstructure:"platform"`
	Group    string `mapstructure:"group"`
	// BatchesInFlight is how many batches one instance sends concurrently.
	BatchesInFlight int `mapstructure:"batches_in_flight"`
	// ClaimLease is how long a batch claim holds before another sender may take it over.
	ClaimLease time.Duration `mapstructure:"claim_lease"`
	// RateLimit caps notifications/s per campaign and platform across all
	// instances (0 = off).
	RateLimit int `mapstructure:"rate_limit"`
	// RetryBase and RetryMax bound exponential backoff with jitter.
	RetryBase time.Duration `mapstructure:"retry_base"`
	RetryMax  time.Duration `mapstructure:"retry_max"`
	// GroupProtocol is how the group moves partitions between instances:
	// cooperative-sticky (classic protocol, incremental: only the moved
	// partitions pause), eager (classic, every member revokes everything
	// at each rebalance) or consumer (KIP-848: the broker assigns,
	// incrementally, without a group-wide barrier).
	GroupProtocol string `mapstructure:"group_protocol"`
	// StaticMembership joins with instance_id as the group instance id, so
	// a restart under the same id (a StatefulSet pod) gets its partitions
	// back without a rebalance; a stopped member's partitions then wait for
	// it up to the session timeout.
	StaticMembership bool `mapstructure:"static_membership"`
}

// Sender group protocols (sender.group_protocol).
const (
	GroupCooperativeSticky = "cooperative-sticky"
	GroupEager             = "eager"
	GroupConsumer          = "consumer"
)

// ControlConfig is the control HTTP API (prepare, proof, fire, abort, status).
type ControlConfig struct {
	Addr string `mapstructure:"addr"`
	// Token is the caller's own bearer token (owlctl, --via-api). Without a
	// users file, the server also accepts it as the one identity TokenName
	// with role launcher (the shared token of earlier versions).
	Token     string `mapstructure:"token"`
	TokenFile string `mapstructure:"token_file"`
	// TokenName names the shared token's identity in the audit log.
	TokenName string `mapstructure:"token_name"`
	// UsersFile lists people, their roles and token hashes (package identity).
	UsersFile string `mapstructure:"users_file"`
	// URL is where owlctl reaches the control API.
	URL string `mapstructure:"url"`
}

// MetricsConfig is the /metrics, /healthz, /readyz listener.
type MetricsConfig struct {
	Addr string `mapstructure:"addr"`
	// Pprof also mounts net/http/pprof under /debug/pprof/ on the same
	// listener (off by default: profiles expose memory contents and cost CPU).
	Pprof bool `mapstructure:"pprof"`
}

// defaults lists every key with its default. Every key must be here: viper
// only sees env overrides for keys it knows.
func defaults() map[string]any {
	host, _ := os.Hostname()
	return map[string]any{
		"instance_id": fmt.Sprintf("%s-%d", host, os.Getpid()),
		"log_level":   "info",

		"kafka.brokers":                  []string{"127.0.0.1:9092"},
		"kafka.client_id":                "owlpost",
		"kafka.dial_timeout":             10 * time.Second,
		"kafka.tls.enabled":              false,
		"kafka.tls.ca_file":              "",
		"kafka.tls.cert_file":            "",
		"kafka.tls.key_file":             "",
		"kafka.tls.server_name":          "",
		"kafka.tls.insecure_skip_verify": false,
		"kafka.sasl.mechanism":           "",
		"kafka.sasl.username":            "",
		"kafka.sasl.password":            "",
		"kafka.sasl.password_file":       "",

		"topics.campaigns":           "owlpost.campaigns",
		"topics.plans":               "owlpost.plans",
		"topics.batches":             "owlpost.batches",
		"topics.control":             "owlpost.control",
		"topics.status":              "owlpost.status",
		"topics.send_ios":            "owlpost.send.ios",
		"topics.send_android":        "owlpost.send.android",
		"topics.results":             "owlpost.results",
		"topics.feedback":            "owlpost.feedback",
		"topics.rejects":             "owlpost.rejects",
		"topics.batches_partitions":  12,
		"topics.send_partitions":     12,
		"topics.results_partitions":  6,
		"topics.feedback_partitions": 6,
		"topics.rejects_partitions":  3,
		"topics.replication_factor":  1,
		"topics.min_insync_replicas": 1,

		"redis.mode":                     RedisStandalone,
		"redis.addr":                     "127.0.0.1:6379",
		"redis.addrs":                    []string{},
		"redis.master_name":              "",
		"redis.sentinel_username":        "",
		"redis.sentinel_password":        "",
		"redis.sentinel_password_file":   "",
		"redis.username":                 "",
		"redis.password":                 "",
		"redis.password_file":            "",
		"redis.db":                       0,
		"redis.tls.enabled":              false,
		"redis.tls.ca_file":              "",
		"redis.tls.cert_file":            "",
		"redis.tls.key_file":             "",
		"redis.tls.server_name":          "",
		"redis.tls.insecure_skip_verify": false,
		"redis.prefix":                   "owlpost",
		"redis.timeout":                  2 * time.Second,
		"redis.fire_replicas":            -1,
		"redis.fire_replica_timeout":     time.Second,

		"apns.host":               "production",
		"apns.topic":              "",
		"apns.key_file":           "",
		"apns.key_id":             "",
		"apns.team_id":            "",
		"apns.cert_file":          "",
		"apns.cert_password":      "",
		"apns.cert_password_file": "",
		"apns.ca_file":            "",
		"apns.connections":        4,
		"apns.timeout":            10 * time.Second,
		"apns.transport":          DefaultTransport,

		"fcm.project_id":       "",
		"fcm.credentials_file": "",
		"fcm.endpoint":         "",
		"fcm.ca_file":          "",
		"fcm.clients":          4,
		"fcm.timeout":          10 * time.Second,
		"fcm.transport":        DefaultTransport,

		"planner.ios_batch_size":     500,
		"planner.android_batch_size": 250,

		"fanout.group":            "owlpost-fanout",
		"fanout.transactional_id": "owlpost-fanout",
		"fanout.release_pace":     time.Duration(0),

		"sender.platform":          "",
		"sender.group":             "",
		"sender.batches_in_flight": 8,
		"sender.claim_lease":       30 * time.Second,
		"sender.rate_limit":        0,
		"sender.retry_base":        100 * time.Millisecond,
		"sender.retry_max":         10 * time.Second,
		"sender.group_protocol":    GroupCooperativeSticky,
		"sender.static_membership": false,

		"control.addr":       "127.0.0.1:8080",
		"control.token":      "",
		"control.token_file": "",
		"control.token_name": "control-token",
		"control.users_file": "",
		"control.url":        "http://127.0.0.1:8080",

		"metrics.addr":  "127.0.0.1:9100",
		"metrics.pprof": false,
	}
}

// Keys returns every config key (for docs and for checking deploy files).
func Keys() []string {
	d := defaults()
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// EnvName is the environment variable for a key.
func EnvName(key string) string {
	return "OWLPOST_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// RegisterFlags adds --config and one flag per key to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "config file (YAML, JSON or TOML); also OWLPOST_CONFIG")
	d := defaults()
	for _, k := range Keys() {
		switch v := d[k].(type) {
		case string:
			fs.String(k, v, "config "+k)
		case int:
			fs.Int(k, v, "config "+k)
		case bool:
			fs.Bool(k, v, "config "+k)
		case time.Duration:
			fs.Duration(k, v, "config "+k)
		case []string:
			fs.StringSlice(k, v, "config "+k)
		}
	}
}

// Load builds the Config from defaults, file, env and the flags of fs that
// were set (fs may be nil; it must have been set up with RegisterFlags).
func Load(fs *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	for k, val := range defaults() {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("OWLPOST")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	v.AllowEmptyEnv(true)

	file := os.Getenv("OWLPOST_CONFIG")
	if fs != nil {
		if f := fs.Lookup("config"); f != nil && f.Changed {
			file = f.Value.String()
		}
		var bindErr error
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "config" || !f.Changed {
				return
			}
			if _, known := defaults()[f.Name]; known {
				if err := v.BindPFlag(f.Name, f); err != nil && bindErr == nil {
					bindErr = err
				}
			}
		})
		if bindErr != nil {
			return nil, fmt.Errorf("config: flags: %w", bindErr)
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: read %s: %w", file, err)
		}
	}
	var c Config
	err := v.Unmarshal(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)), func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = true })
	if err != nil {
		return nil, fmt.Errorf("config: decode: %w", err)
	}
	if err := c.loadSecretFiles(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Default returns the defaults, validated (handy in tests).
func Default() *Config {
	c, err := Load(nil)
	if err != nil {
		panic("config: defaults invalid: " + err.Error()) // programming error, not data
	}
	return c
}

func (c *Config) loadSecretFiles() error {
	read := func(field, path string, dst *string) error {
		if path == "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			// The path is not secret; the content never appears.
			return fmt.Errorf("config: %s: %w", field, err)
		}
		*dst = strings.TrimSpace(string(b))
		return nil
	}
	if err := read("kafka.sasl.password_file", c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password); err != nil {
		return err
	}
	if err := read("redis.password_file", c.Redis.PasswordFile, &c.Redis.Password); err != nil {
		return err
	}
	if err := read("redis.sentinel_password_file", c.Redis.SentinelPasswordFile, &c.Redis.SentinelPassword); err != nil {
		return err
	}
	if err := read("apns.cert_password_file", c.APNs.CertPasswordFile, &c.APNs.CertPassword); err != nil {
		return err
	}
	return read("control.token_file", c.Control.TokenFile, &c.Control.Token)
}

// Validate checks the whole Config and names every wrong field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "at least one broker is required")
	}
	for _, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("kafka.brokers", "%q is not host:port", b)
		}
	}
	switch c.Kafka.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		bad("kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Kafka.SASL.Mechanism)
	}
	if c.Kafka.SASL.Mechanism != "" && c.Kafka.SASL.Username == "" {
		bad("kafka.sasl.username", "required when kafka.sasl.mechanism is set")
	}
	t := reflect.ValueOf(c.Topics)
	for i := 0; i < t.NumField(); i++ {
		f := t.Type().Field(i)
		key := "topics." + f.Tag.Get("mapstructure")
		switch val := t.Field(i).Interface().(type) {
		case string:
			if val == "" {
				bad(key, "topic name is required")
			}
		case int32:
			if val < 1 {
				bad(key, "must be >= 1, got %d", val)
			}
		case int16:
			if val < 1 {
				bad(key, "must be >= 1, got %d", val)
			}
		}
	}
	if c.Topics.MinInsyncReplicas > c.Topics.ReplicationFactor {
		bad("topics.min_insync_replicas", "%d is above topics.replication_factor %d: no write could succeed",
			c.Topics.MinInsyncReplicas, c.Topics.ReplicationFactor)
	}
	switch c.Redis.Mode {
	case RedisStandalone:
		if _, _, err := net.SplitHostPort(c.Redis.Addr); err != nil {
			bad("redis.addr", "%q is not host:port", c.Redis.Addr)
		}
		if len(c.Redis.Addrs) > 1 {
			bad("redis.addrs", "standalone mode takes one address (redis.addr); set redis.mode to sentinel or cluster for %d", len(c.Redis.Addrs))
		}
	case RedisSentinel, RedisCluster:
		if len(c.Redis.Addrs) == 0 {
			bad("redis.addrs", "%s mode needs at least one host:port (the %s)", c.Redis.Mode,
				map[string]string{RedisSentinel: "Sentinels", RedisCluster: "cluster's seed nodes"}[c.Redis.Mode])
		}
		if c.Redis.Mode == RedisSentinel && c.Redis.MasterName == "" {
			bad("redis.master_name", "sentinel mode needs the name the Sentinels monitor the primary under")
		}
		if c.Redis.Mode == RedisCluster && c.Redis.DB != 0 {
			bad("redis.db", "a Redis Cluster has only database 0, got %d", c.Redis.DB)
		}
	default:
		bad("redis.mode", "%q is not standalone, sentinel or cluster", c.Redis.Mode)
	}
	for _, a := range c.Redis.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("redis.addrs", "%q is not host:port", a)
		}
	}
	if strings.ContainsAny(c.Redis.Prefix, "{}") {
		bad("redis.prefix", "%q must not contain braces (the guard's keys use them as Redis Cluster hash tags)", c.Redis.Prefix)
	}
	if c.Redis.FireReplicas < -1 {
		bad("redis.fire_replicas", "must be -1 (1 in sentinel and cluster mode, 0 standalone) or >= 0, got %d", c.Redis.FireReplicas)
	}
	if c.Redis.FireReplicaTimeout <= 0 {
		bad("redis.fire_replica_timeout", "must be positive, got %s", c.Redis.FireReplicaTimeout)
	}
	if c.Redis.Timeout <= 0 {
		bad("redis.timeout", "must be positive")
	}
	if c.APNs.Connections < 1 {
		bad("apns.connections", "must be >= 1")
	}
	if c.FCM.Clients < 1 {
		bad("fcm.clients", "must be >= 1")
	}
	for _, kv := range [][2]string{{"apns.transport", c.APNs.Transport}, {"fcm.transport", c.FCM.Transport}} {
		if kv[1] != push.TransportLibrary && kv[1] != push.TransportFast {
			bad(kv[0], "%q is not %s or %s", kv[1], push.TransportLibrary, push.TransportFast)
		}
	}
	if c.Planner.IOSBatchSize < 1 || c.Planner.IOSBatchSize > 10000 {
		bad("planner.ios_batch_size", "must be 1..10000, got %d", c.Planner.IOSBatchSize)
	}
	if c.Planner.AndroidBatchSize < 1 || c.Planner.AndroidBatchSize > 10000 {
		bad("planner.android_batch_size", "must be 1..10000, got %d", c.Planner.AndroidBatchSize)
	}
	switch c.Sender.Platform {
	case "", "ios", "android":
	default:
		bad("sender.platform", "%q is not ios or android", c.Sender.Platform)
	}
	if c.Fanout.ReleasePace < 0 {
		bad("fanout.release_pace", "must be >= 0")
	}
	if c.Sender.BatchesInFlight < 1 {
		bad("sender.batches_in_flight", "must be >= 1")
	}
	if c.Sender.ClaimLease < time.Second {
		bad("sender.claim_lease", "must be at least 1s")
	}
	switch c.Sender.GroupProtocol {
	case GroupCooperativeSticky, GroupEager, GroupConsumer:
	default:
		bad("sender.group_protocol", "%q is not %s, %s or %s", c.Sender.GroupProtocol, GroupCooperativeSticky, GroupEager, GroupConsumer)
	}
	if c.Sender.RateLimit < 0 {
		bad("sender.rate_limit", "must be >= 0")
	}
	if c.Sender.RetryBase <= 0 || c.Sender.RetryMax < c.Sender.RetryBase {
		bad("sender.retry_base", "need 0 < retry_base <= retry_max")
	}
	for key, addr := range map[string]string{"metrics.addr": c.Metrics.Addr, "control.addr": c.Control.Addr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port", addr)
		}
	}
	return errors.Join(errs...)
}

const redactedMark = "[redacted]"

// DefaultTransport is the default of apns.transport and fcm.transport: the
// lean push/h2 client, which the fault suite runs with (OWLPOST_FAULT_TRANSPORT
// runs it with either).
const DefaultTransport = push.TransportFast

// Redacted returns a copy safe to log: every secret that is set is replaced.
func (c *Config) Redacted() Config {
	r := *c
	r.Kafka.Brokers = append([]string(nil), c.Kafka.Brokers...)
	r.Redis.Addrs = append([]string(nil), c.Redis.Addrs...)
	for _, s := range []*string{&r.Kafka.SASL.Password, &r.Redis.Password, &r.Redis.SentinelPassword, &r.APNs.CertPassword, &r.Control.Token} {
		if *s != "" {
			*s = redactedMark
		}
	}
	return r
}

// String is the redacted form, so a Config printed by accident leaks nothing.
func (c *Config) String() string { return fmt.Sprintf("%+v", c.Redacted()) }
