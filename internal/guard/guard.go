package guard

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/metrics"
)

// ErrUnavailable wraps every Redis failure: callers fail closed on it.
var ErrUnavailable = errors.New("guard: redis unavailable")

// Guard is the Redis idempotency store.
type Guard struct {
	rdb     redis.UniversalClient
	prefix  string
	doneTTL time.Duration
	// Fire confirms the winning record on this many replicas (WAIT).
	fireReplicas int
	fireWait     time.Duration
	lat          *prometheus.HistogramVec
	errs         *prometheus.CounterVec
}

// NewClient builds the Redis client from cfg for its redis.mode: one server
// (standalone), the primary the Sentinels name (sentinel; the client follows
// a failover), or a Redis Cluster. Credentials, TLS (to data nodes and
// Sentinels alike) and timeouts apply to every connection. Passwords never
// appear in errors.
func NewClient(cfg *config.Config) (redis.UniversalClient, error) {
	r := cfg.Redis
	var tc *tls.Config
	if r.TLS.Enabled {
		var err error
		if tc, err = r.TLS.Client(); err != nil {
			return nil, fmt.Errorf("guard: redis %w", err)
		}
	}
	switch r.Mode {
	case config.RedisSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: r.MasterName, SentinelAddrs: r.Addrs,
			SentinelUsername: r.SentinelUsername, SentinelPassword: r.SentinelPassword,
			Username: r.Username, Password: r.Password, DB: r.DB,
			DialTimeout: r.Timeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			MaxRetries: 1, TLSConfig: tc,
		}), nil
	case config.RedisCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: r.Addrs, Username: r.Username, Password: r.Password,
			DialTimeout: r.Timeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
			MaxRetries: 1, TLSConfig: tc,
			// go-redis learns of a failover from a MOVED answer or this
			// reload (default 60 s): a dead primary answers nothing, so its
			// slots stayed routed to it for up to a minute after its replica
			// took over. One CLUSTER SLOTS a second per client is cheap.
			ClusterStateReloadInterval: time.Second,
		}), nil
	}
	addr := r.Addr
	if len(r.Addrs) == 1 {
		addr = r.Addrs[0]
	}
	return redis.NewClient(&redis.Options{
		Addr: addr, Username: r.Username, Password: r.Password, DB: r.DB,
		DialTimeout: r.Timeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout,
		MaxRetries: 1, TLSConfig: tc,
	}), nil
}

// New returns a Guard on rdb with keys under prefix. reg may be nil.
func New(rdb redis.UniversalClient, prefix string, reg prometheus.Registerer) *Guard {
	g := &Guard{
		rdb: rdb, prefix: prefix, doneTTL: 7 * 24 * time.Hour,
		lat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "owlpost", Subsystem: "guard", Name: "redis_seconds",
			Help:    "Latency of guard operations against Redis, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "owlpost", Subsystem: "guard", Name: "redis_errors_total",
			Help: "Guard operations that failed because Redis did not answer; the caller failed closed.",
		}, []string{"op"}),
	}
	// Export the error counters at 0 from the start, so the Redis alert's
	// rate() has a series before the first failure.
	for _, op := range []string{"ping", "warm", "fire", "fire_get", "fire_restore", "abort", "abort_get", "claim", "renew", "ack", "acked", "done", "release", "rate"} {
		g.errs.WithLabelValues(op)
	}
	if reg != nil {
		// A second guard on the same registry (control API and a stage in
		// one process, tests) shares the first one's series.
		// Metrics never stop the guard: on a conflicting registration it
		// keeps its own, unexported collectors.
		_ = errors.Join(metrics.Register(reg, &g.lat), metrics.Register(reg, &g.errs))
	}
	return g
}

// key is <prefix>:<kind>:{<id>}: the braces are a Redis Cluster hash tag,
// so every key of one id (a campaign's fire and abort; a batch-and-fire's
// claim, tried, acked and done) hashes to the same slot and one script may
// touch them all (a cluster refuses a script over several slots with
// CROSSSLOT). The prefix is validated free of braces.
func (g *Guard) key(kind string, id ...string) string {
	k := g.prefix + ":" + kind + ":{"
	for i, p := range id {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k + "}"
}

func (g *Guard) observe(op string, start time.Time, err error) error {
	g.lat.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		g.errs.WithLabelValues(op).Inc()
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
	return nil
}

// ConfirmFires makes Fire confirm the winning fire record on n replicas,
// waiting at most timeout (Redis WAIT), before it answers; n = 0 (the
// default) answers as soon as the primary has it. It returns g.
func (g *Guard) ConfirmFires(n int, timeout time.Duration) *Guard {
	g.fireReplicas, g.fireWait = n, timeout
	return g
}

// Ping checks Redis answers.
func (g *Guard) Ping(ctx context.Context) error {
	start := time.Now()
	return g.observe("ping", start, g.rdb.Ping(ctx).Err())
}

// FireRecord is the winning press of GO.
type FireRecord struct {
	FireID   string    `json:"fire_id"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Force    bool      `json:"force,omitempty"`
	Deadline time.Time `json:"deadline"`
	// Restored: the guard had lost this campaign's record (a failover to a
	// replica without it, a flush) and it was written back from the
	// control log, where the first fire is durable. The batch marks of the
	// campaign may be lost with it.
	Restored bool `json:"restored,omitempty"`
}

// AbortRecord is the first abort of a campaign.
type AbortRecord struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// ErrAborted is returned by Fire for an aborted campaign.
var ErrAborted = errors.New("guard: campaign aborted")

// fireScript: a losing press writes the winner back unchanged, so that its
// own WAIT confirms the winner's record on the replicas too (WAIT waits for
// the connection's own writes).
var fireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return {'aborted', redis.call('GET', KEYS[2])} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return {'won', ARGV[1]} end
local cur = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], cur)
return {'lost', cur}
`)

// ErrNotConfirmed is returned by Fire when the winning record did not reach
// the replicas ConfirmFires asks for in time. It wraps ErrUnavailable:
// callers fail closed (no trigger); the record stays, so a later press
// confirms and announces the same winner.
var ErrNotConfirmed = fmt.Errorf("%w: fire record not confirmed on the replicas", ErrUnavailable)

// Fire records rec as the campaign's fire if no fire happened yet. It returns
// the winning record and whether rec won, once the winner is confirmed on
// the replicas ConfirmFires asks for (ErrNotConfirmed otherwise). An aborted
// campaign returns ErrAborted (with the abort record in the error text);
// Redis trouble returns ErrUnavailable: no fire.
func (g *Guard) Fire(ctx context.Context, campaign string, rec FireRecord) (FireRecord, bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return FireRecord{}, false, err
	}
	start := time.Now()
	keys := []string{g.key("fire", campaign), g.key("abort", campaign)}
	var res []string
	if g.fireReplicas <= 0 {
		res, err = fireScript.Run(ctx, g.rdb, keys, b).StringSlice()
	} else {
		res, err = g.fireConfirmed(ctx, keys, b)
	}
	if errors.Is(err, ErrNotConfirmed) {
		g.errs.WithLabelValues("fire").Inc()
		return FireRecord{}, false, err
	}
	if err := g.observe("fire", start, err); err != nil {
		return FireRecord{}, false, err
	}
	if len(res) != 2 {
		return FireRecord{}, false, fmt.Errorf("guard: fire: unexpected reply %v", res)
	}
	if res[0] == "aborted" {
		var ab AbortRecord
		_ = json.Unmarshal([]byte(res[1]), &ab)
		return FireRecord{}, false, fmt.Errorf("%w by %s at %s", ErrAborted, ab.By, ab.At.Format(time.RFC3339))
	}
	var win FireRecord
	if err := json.Unmarshal([]byte(res[1]), &win); err != nil {
		return FireRecord{}, false, fmt.Errorf("guard: corrupt fire record of %s: %w", campaign, err)
	}
	return win, res[0] == "won", nil
}

// fireConfirmed runs the fire script and WAIT on one connection to the
// primary of the campaign's slot: WAIT counts the replicas that have this
// connection's writes.
func (g *Guard) fireConfirmed(ctx context.Context, keys []string, rec []byte) ([]string, error) {
	var c *redis.Client
	switch cl := g.rdb.(type) {
	case *redis.Client:
		c = cl
	case *redis.ClusterClient:
		var err error
		if c, err = cl.MasterForKey(ctx, keys[0]); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("guard: fire: cannot confirm on replicas with a %T", g.rdb)
	}
	conn := c.Conn()
	defer conn.Close()
	res, err := fireScript.Run(ctx, conn, keys, rec).StringSlice()
	if err != nil || len(res) == 0 || res[0] == "aborted" {
		return res, err
	}
	n, err := conn.Wait(ctx, g.fireReplicas, g.fireWait).Result()
	if err != nil {
		return nil, err
	}
	if int(n) < g.fireReplicas {
		return nil, fmt.Errorf("%w: %d of %d replicas within %s; a failover now could lose it: nothing was released, press again once a replica is back (or set redis.fire_replicas=0 to accept the risk)",
			ErrNotConfirmed, n, g.fireReplicas, g.fireWait)
	}
	return res, nil
}

// Restore writes rec, the first fire of the campaign in the control log, as
// its fire record (marked Restored), replacing whatever the guard holds:
// the guard lost the record and a later press may have won in its place,
// but the control log is what every stage follows.
func (g *Guard) Restore(ctx context.Context, campaign string, rec FireRecord) error {
	rec.Restored = true
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	start := time.Now()
	return g.observe("fire_restore", start, g.rdb.Set(ctx, g.key("fire", campaign), b, 0).Err())
}

// FireOf returns the campaign's fire record, if it fired.
func (g *Guard) FireOf(ctx context.Context, campaign string) (FireRecord, bool, error) {
	start := time.Now()
	s, err := g.rdb.Get(ctx, g.key("fire", campaign)).Result()
	if err := g.observe("fire_get", start, err); err != nil {
		return FireRecord{}, false, err
	}
	if errors.Is(err, redis.Nil) {
		return FireRecord{}, false, nil
	}
	var rec FireRecord
	if err := json.Unmarshal([]byte(s), &rec); err != nil {
		return FireRecord{}, false, fmt.Errorf("guard: corrupt fire record of %s: %w", campaign, err)
	}
	return rec, true, nil
}

// Abort records the campaign's abort (the first one is kept) and returns it.
func (g *Guard) Abort(ctx context.Context, campaign string, rec AbortRecord) (AbortRecord, error) {
	b, _ := json.Marshal(rec)
	start := time.Now()
	k := g.key("abort", campaign)
	_, err := g.rdb.SetNX(ctx, k, b, 0).Result()
	if err := g.observe("abort", start, err); err != nil {
		return AbortRecord{}, err
	}
	got, ok, err := g.Aborted(ctx, campaign)
	if err != nil || !ok {
		return rec, err
	}
	return got, nil
}

// Aborted returns the abort record, if the campaign was aborted.
func (g *Guard) Aborted(ctx context.Context, campaign string) (AbortRecord, bool, error) {
	start := time.Now()
	s, err := g.rdb.Get(ctx, g.key("abort", campaign)).Result()
	if err := g.observe("abort_get", start, err); err != nil {
		return AbortRecord{}, false, err
	}
	if errors.Is(err, redis.Nil) {
		return AbortRecord{}, false, nil
	}
	var rec AbortRecord
	_ = json.Unmarshal([]byte(s), &rec)
	return rec, true, nil
}

// scripts are every Lua script the guard runs, for Warm.
var scripts = []*redis.Script{fireScript, claimScript, renewScript, ackScript, doneScript, releaseScript, takeScript}

// Warm gets the guard ready for a burst: it loads every script into Redis's
// script cache (a script run otherwise costs an extra round trip, EVALSHA
// refused then EVAL, the first time after a Redis start or failover) and
// opens up to conns pooled connections, at most half the pool (the first
// operations of a burst would otherwise each dial, on the path of the first
// claims at GO). It is cheap when everything is warm already, so callers repeat it while idle:
// go-redis closes connections idle for 30 minutes.
func (g *Guard) Warm(ctx context.Context, conns int) error {
	start := time.Now()
	for _, s := range scripts {
		if err := s.Load(ctx, g.rdb).Err(); err != nil {
			return g.observe("warm", start, err)
		}
	}
	if cc, ok := g.rdb.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return warmConns(ctx, c, conns)
		})
		return g.observe("warm", start, err)
	}
	c, ok := g.rdb.(*redis.Client)
	if !ok {
		return g.observe("warm", start, nil)
	}
	return g.observe("warm", start, warmConns(ctx, c, conns))
}

// warmConns opens up to conns pooled connections of one server's client.
func warmConns(ctx context.Context, c *redis.Client, conns int) error {
	// Never hold more than half the pool: the warm-up runs while the caller
	// is idle, but GO may come during it and its claims need connections.
	conns = min(conns, c.Options().PoolSize/2)
	if conns < 1 {
		return nil
	}
	// Holding the connections at once makes the pool open distinct ones.
	held := make([]*redis.Conn, 0, conns)
	defer func() {
		for _, h := range held {
			_ = h.Close() // back to the pool
		}
	}()
	for range conns {
		h := c.Conn()
		held = append(held, h)
		if err := h.Ping(ctx).Err(); err != nil {
			return err
		}
	}
	return nil
}
