//go:build fault

package fault_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/fanout"
	"github.com/owlpost/owlpost/internal/fault"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// The production-topology cases run on the cluster stack (scripts/devstack.sh
// up --cluster): three brokers, every topic with replication factor 3 and
// min.insync.replicas 2, producers with acks=all. Smaller campaigns than the
// single-node cases: three JVMs share the two cores.
const (
	clusterIOS     = 6000
	clusterAndroid = 4000
)

func clusterSpec(seed int64) audience.Spec {
	sp := spec(seed)
	sp.IOS, sp.Android = clusterIOS, clusterAndroid
	return sp
}

// newClusterRow starts a row of the production-topology table.
func newClusterRow(t *testing.T, name string) *fault.Row {
	row := newRow(t, name)
	row.Topology = fault.TopologyProduction
	return row
}

// brokerNode is the cluster node a broker runs on (node.id n is kafka-n).
func brokerNode(id int32) string { return fmt.Sprintf("kafka-%d", id) }

// node runs a node verb of the cluster stack (kill, start, partition, heal).
func (s *stack) node(verb, node string) {
	s.t.Helper()
	if _, err := testenv.Devstack(s.t, verb, node); err != nil {
		s.t.Fatal(err)
	}
}

// waitInSync waits until every partition of the cluster, internal topics
// included, has a leader and all its replicas in sync: a broker an earlier
// case killed and restarted may still be catching up, and a kill landing
// then would leave some partitions one in-sync replica, below
// min.insync.replicas, which is two faults, not the one a case injects.
func (s *stack) waitInSync() {
	s.t.Helper()
	adm := kadm.NewClient(s.cl)
	start := time.Now()
	e2e.WaitFor(s.t, 2*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx)
		if err != nil {
			return err
		}
		var behind []string
		for _, td := range md.Topics.Sorted() {
			for _, pd := range td.Partitions.Sorted() {
				if pd.Leader < 0 || len(pd.ISR) < len(pd.Replicas) {
					behind = append(behind, fmt.Sprintf("%s/%d (leader %d, in sync %v of %v)", td.Topic, pd.Partition, pd.Leader, pd.ISR, pd.Replicas))
				}
			}
		}
		if len(behind) > 0 {
			return fmt.Errorf("%d partitions not fully in sync, first %s", len(behind), behind[0])
		}
		return nil
	})
	if d := time.Since(start); d > time.Second {
		s.t.Logf("the cluster was fully in sync after %.1f s", d.Seconds())
	}
}

// restoreNodeOnCleanup heals and starts node when the case ends, pass or
// fail (both verbs are no-ops on a node that is up).
func restoreNodeOnCleanup(t *testing.T, node string) {
	t.Cleanup(func() {
		for _, verb := range []string{"heal", "start"} {
			if _, err := testenv.Devstack(t, verb, node); err != nil {
				t.Errorf("restoring %s: %v", node, err)
			}
		}
	})
}

// busiestSendLeader returns the send partition with the most send tasks and
// its leader.
func (s *stack) busiestSendLeader() (string, int32, int32) {
	t := s.t
	t.Helper()
	adm := kadm.NewClient(s.cl)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	topics := []string{s.cfg.Topics.SendIOS, s.cfg.Topics.SendAndroid}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	var best kadm.ListedOffset
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > best.Offset {
			best = o
		}
	})
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := md.Topics[best.Topic].Partitions[best.Partition]
	if !ok || p.Leader < 0 {
		t.Fatalf("no leader for %s/%d", best.Topic, best.Partition)
	}
	return best.Topic, best.Partition, p.Leader
}

// txnCoordinator returns the broker that coordinates most of the fanout's
// transactional ids (one per batches partition) and how many it has.
func (s *stack) txnCoordinator() (int32, int) {
	count := s.txnCoordinators()
	var best int32 = -1
	for id, n := range count {
		if best < 0 || n > count[best] || (n == count[best] && id < best) {
			best = id
		}
	}
	return best, count[best]
}

// txnCoordinators counts the fanout's transactional ids per coordinating
// broker.
func (s *stack) txnCoordinators() map[int32]int {
	t := s.t
	t.Helper()
	ids := make([]string, s.cfg.Topics.BatchesPartitions)
	for p := range ids {
		ids[p] = fanout.TransactionalID(s.cfg.Fanout.TransactionalID, int32(p))
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	resps := kadm.NewClient(s.cl).FindTxnCoordinators(ctx, ids...)
	if err := resps.Error(); err != nil {
		t.Fatal(err)
	}
	count := map[int32]int{}
	for _, r := range resps {
		count[r.NodeID]++
	}
	return count
}

// groupCoordinator returns the broker coordinating group.
func (s *stack) groupCoordinator(group string) int32 {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	r, ok := kadm.NewClient(s.cl).FindGroupCoordinators(ctx, group)[group]
	if !ok || r.Err != nil {
		t.Fatalf("coordinator of group %s: %v", group, r.Err)
	}
	return r.NodeID
}

// activeController returns the leader of the KRaft metadata quorum (the
// brokers forward DescribeQuorum to the controllers).
func (s *stack) activeController() int32 {
	t := s.t
	t.Helper()
	req := kmsg.NewPtrDescribeQuorumRequest()
	tp := kmsg.NewDescribeQuorumRequestTopic()
	tp.Topic = "__cluster_metadata"
	pp := kmsg.NewDescribeQuorumRequestTopicPartition()
	tp.Partitions = append(tp.Partitions, pp)
	req.Topics = append(req.Topics, tp)
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		t.Fatalf("describe quorum: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("describe quorum: unexpected answer %+v", resp)
	}
	return resp.Topics[0].Partitions[0].LeaderID
}

// pressWhenReleasing presses GO and returns once the first send task of the
// fire is visible (read_committed): the release is under way. The press
// itself is finished by the returned function.
func (s *stack) pressWhenReleasing() (wait func(), seen int) {
	t := s.t
	t.Helper()
	watch := testenv.Client(t, s.cfg, kgo.ConsumeTopics(s.cfg.Topics.SendIOS, s.cfg.Topics.SendAndroid),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(20*time.Millisecond))
	// Make sure the watcher is positioned before GO (its first fetch).
	pctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	watch.PollFetches(pctx)
	cancel()

	pressed := make(chan struct{})
	go func() { defer close(pressed); s.press() }()
	deadline := time.Now().Add(time.Minute)
	for seen == 0 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(s.ctx, time.Second)
		fs := watch.PollFetches(ctx)
		cancel()
		seen += fs.NumRecords()
	}
	if seen == 0 {
		t.Fatal("no send task within a minute of GO")
	}
	return func() { <-pressed }, seen
}

// onceOnSendTopics checks every planned batch is on the send topics exactly
// once (read_committed) and returns how many are there.
func (s *stack) onceOnSendTopics() int {
	s.t.Helper()
	counts := s.sendTopicCounts()
	var twice []string
	for k, n := range counts {
		if n != 1 {
			twice = append(twice, fmt.Sprintf("%s x%d", k, n))
		}
	}
	slices.Sort(twice)
	if len(twice) > 0 {
		s.provenance(counts)
	}
	if len(counts) != int(s.manifest.Batches()) || len(twice) > 0 {
		s.t.Errorf("send topics hold %d distinct batches of %d planned; released more than once: %v", len(counts), s.manifest.Batches(), twice)
	}
	return len(counts)
}

// committed is one record on a topic, with the producer id and epoch of
// the transaction that committed it.
type committed struct {
	rec    *kgo.Record
	marker wire.Status // a progress marker's value
	part   int32       // a progress marker's batches partition
}

func (c committed) String() string {
	r := c.rec
	what := string(r.Key)
	if c.marker.Role != "" {
		what = fmt.Sprintf("marker p%d released %d/%d by %s", c.part, c.marker.Released, c.marker.Batches, c.marker.Instance)
	}
	return fmt.Sprintf("%s %s/%d@%d producer %d epoch %d: %s", r.Timestamp.UTC().Format("15:04:05.000"),
		shortTopic(r.Topic), r.Partition, r.Offset, r.ProducerID, r.ProducerEpoch, what)
}

// readCommitted returns the records of topic (read_committed, up to now)
// that keep selects, oldest first by timestamp.
func (s *stack) readCommitted(topic string, keep func(*committed) bool) []committed {
	s.t.Helper()
	var mu sync.Mutex
	var out []committed
	s.readTopic(topic, func(r *kgo.Record) error {
		c := committed{rec: r}
		if keep(&c) {
			mu.Lock()
			out = append(out, c)
			mu.Unlock()
		}
		return nil
	})
	slices.SortFunc(out, func(a, b committed) int { return a.rec.Timestamp.Compare(b.rec.Timestamp) })
	return out
}

// markerHistory returns every progress marker of the fire, per
// batches-topic partition in commit order (one key per partition, so one
// status partition: offsets order them).
func (s *stack) markerHistory() []committed {
	ms := s.readCommitted(s.cfg.Topics.Status, func(c *committed) bool {
		camp, f, p, ok := fanout.ParseMarkerKey(string(c.rec.Key))
		if !ok || camp != s.id || f != s.fire.FireID || wire.Decode(c.rec.Value, &c.marker) != nil {
			return false
		}
		c.part = p
		return true
	})
	slices.SortFunc(ms, func(a, b committed) int {
		if a.part != b.part {
			return int(a.part - b.part)
		}
		return int(a.rec.Offset - b.rec.Offset)
	})
	return ms
}

// provenance logs, for the batches released more than once, every copy on
// the send topics and the fire's progress-marker history, with the producer
// id and epoch that committed each: which owner released what.
func (s *stack) provenance(counts map[string]int) {
	s.t.Helper()
	var all []committed
	for _, topic := range []string{s.cfg.Topics.SendIOS, s.cfg.Topics.SendAndroid} {
		all = append(all, s.readCommitted(topic, func(c *committed) bool { return counts[string(c.rec.Key)] > 1 })...)
	}
	all = append(all, s.markerHistory()...)
	slices.SortFunc(all, func(a, b committed) int { return a.rec.Timestamp.Compare(b.rec.Timestamp) })
	for _, c := range all {
		s.t.Logf("provenance: %s", c)
	}
}

// TestClusterSendLeaderKilled: kill -9 the leader of the busiest send
// partition while the senders work through it; bring it back later. The
// partition's leadership moves to an in-sync follower (no acknowledged send
// task is lost: acks=all with min.insync.replicas 2), the sender group
// re-fetches from the new leader and the batch guard keeps a re-delivered
// batch from being sent again.
func TestClusterSendLeaderKilled(t *testing.T) {
	row := newClusterRow(t, "kill -9 the leader broker of the busiest send partition mid-send, restart it")
	s := newStack(t, opts{cluster: true, latency: 20 * time.Millisecond, inFlight: 2})
	s.row = row
	s.define(clusterSpec(101), campaignSpec{})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	s.waitSim(2*time.Minute, "20% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total/5 })
	topic, part, leader := s.busiestSendLeader()
	node := brokerNode(leader)
	restoreNodeOnCleanup(t, node)
	s.node("kill", node)
	atKill := s.mustSimStats(s.collapse).Accepted
	down := time.Now()
	s.waitSim(2*time.Minute, "60% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total*3/5 })
	s.node("start", node)
	outage := time.Since(down)
	t.Logf("killed %s (leader of %s/%d) at %d/%d accepted; back after %s", node, topic, part, atKill, total, outage.Round(time.Second))
	s.waitAllBatches()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("killed %s, leader of the busiest send partition %s/%d, at %d/%d accepted; restarted %.0f s later at 60%%; leaders moved to in-sync followers",
		node, shortTopic(topic), part, atKill, total, outage.Seconds())
}

func shortTopic(t string) string {
	if i := strings.LastIndex(t, "."); i > 0 {
		if j := strings.LastIndex(t[:i], "."); j > 0 {
			return t[j+1:]
		}
	}
	return t
}

// redisNode is the cluster node of the Redis server at addr (redis-n is
// 10.250.<id>.2n, scripts/cluster.sh).
func redisNode(t *testing.T, addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	last := host[strings.LastIndex(host, ".")+1:]
	if len(last) != 2 || last[0] != '2' || last[1] < '1' || last[1] > '3' {
		t.Fatalf("%s is not a redis-n host of the cluster stack", addr)
	}
	return "redis-" + last[1:]
}

// TestClusterRedisPrimaryKilled: kill -9 the Redis primary mid-send; the
// Sentinels promote a replica and every process (redis.mode sentinel)
// follows. The fire record was confirmed on a replica before GO was
// answered, so it survives; claims, acked bitmaps and done marks written in
// the last moment before the kill may not (asynchronous replication): a
// batch whose claim vanished is claimed again by its own sender, which
// re-sends at most what the lost bitmap covered. Duplicates are bounded by
// the batches in flight and carry the collapse id.
func TestClusterRedisPrimaryKilled(t *testing.T) {
	row := newClusterRow(t, "kill -9 the Redis primary mid-send (Sentinel failover, redis.mode sentinel)")
	o := opts{cluster: true, redisMode: config.RedisSentinel, latency: 20 * time.Millisecond, inFlight: 2}
	s := newStack(t, o)
	s.row = row
	s.define(clusterSpec(111), campaignSpec{})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	s.waitSim(2*time.Minute, "20% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total/5 })
	old := testenv.RedisSentinelPrimary(t)
	node := redisNode(t, old)
	restoreNodeOnCleanup(t, node)
	s.node("kill", node)
	atKill := s.mustSimStats(s.collapse).Accepted
	killed := time.Now()
	var now string
	for now = old; now == old && time.Since(killed) < time.Minute; now = testenv.RedisSentinelPrimary(t) {
		time.Sleep(200 * time.Millisecond)
	}
	if now == old {
		t.Fatalf("no failover within a minute of killing %s", node)
	}
	failover := time.Since(killed)
	s.waitAllBatches()
	// Per platform, a sender holds at most inFlight batches whose progress
	// the failover can have lost.
	bound := int64(o.inFlight * (50 + 25))
	s.result(row, outcome{maxDuplicates: bound})
	row.Note = fmt.Sprintf("killed %s (primary %s) at %d/%d accepted; Sentinels promoted %s after %.1f s; duplicates allowed up to %d (the batches in flight), collapse-tagged",
		node, old, atKill, total, now, failover.Seconds(), bound)
	t.Log(row.Note)
}

// TestClusterPressesDuringRedisFailover: 50 owlctl processes press GO while
// the Redis primary is killed and the Sentinels fail over. A press either
// fails closed (Redis unavailable, or the fire record not confirmed on a
// replica) or names a fire id; every press that names one names the same,
// and only that fire is released. If every press failed, one more press
// after the failover fires the campaign. Every token is sent once.
func TestClusterPressesDuringRedisFailover(t *testing.T) {
	row := newClusterRow(t, "50 concurrent GO presses while the Redis primary is killed (Sentinel failover)")
	s := newStack(t, opts{cluster: true, redisMode: config.RedisSentinel, latency: 20 * time.Millisecond, inFlight: 2})
	s.row = row
	s.define(clusterSpec(121), campaignSpec{})
	s.prepare()
	old := testenv.RedisSentinelPrimary(t)
	node := redisNode(t, old)
	restoreNodeOnCleanup(t, node)

	const presses = 50
	ids := map[string]int{}
	failed := 0
	for i, p := range s.pressAtOnce(presses, nil, nil, func() { s.node("kill", node) }) {
		if p.fireID != "" && (p.code == 0 || p.code == 3) {
			ids[p.fireID]++
		} else {
			failed++
			last := strings.TrimSpace(p.out)
			last = last[strings.LastIndex(last, "\n")+1:]
			t.Logf("press %d failed closed: exit %d: %s", i, p.code, last)
		}
	}
	if len(ids) > 1 {
		t.Fatalf("presses name %d fire ids: %v", len(ids), ids)
	}
	if len(ids) == 0 {
		// Every press failed closed. Do what the refusal tells the operator:
		// press again until the promoted primary has a replica to confirm the
		// fire on (Sentinel re-points the surviving replicas a few seconds
		// after the promotion).
		s.pressUntilFired(time.Minute)
	}
	s.loadFire()
	for id := range ids {
		if id != s.fire.FireID {
			t.Errorf("presses named %s, the campaign's fire is %s", id, s.fire.FireID)
		}
	}
	s.waitAllBatches()
	s.onceOnSendTopics()
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("killed %s (the primary) as 50 processes pressed: %d named fire id %s, %d failed closed; released once",
		node, presses-failed, s.fire.FireID, failed)
	t.Log(row.Note)
}

// TestClusterRedisClusterPrimaryKilled: kill -9 a Redis Cluster primary
// mid-send (every process with redis.mode cluster); its replica takes over
// the slots. As with Sentinel, the fire record was confirmed on the replica;
// batch marks of the last moment may be lost, bounded by the batches in
// flight.
func TestClusterRedisClusterPrimaryKilled(t *testing.T) {
	row := newClusterRow(t, "kill -9 a Redis Cluster primary mid-send (redis.mode cluster)")
	o := opts{cluster: true, redisMode: config.RedisCluster, latency: 20 * time.Millisecond, inFlight: 2}
	s := newStack(t, o)
	s.row = row
	s.define(clusterSpec(131), campaignSpec{})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	s.waitSim(2*time.Minute, "20% accepted", func(st pushsim.Stats) bool { return st.Accepted >= total/5 })
	addrs := testenv.RedisClusterAddrs(t)
	rc := redis.NewClient(&redis.Options{Addr: addrs[0]})
	nodes, err := rc.ClusterNodes(s.ctx).Result()
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var primary string
	for _, l := range strings.Split(nodes, "\n") {
		if f := strings.Fields(l); len(f) > 2 && strings.Contains(f[2], "master") && !strings.Contains(f[2], "fail") {
			primary = strings.Split(f[1], "@")[0]
			break
		}
	}
	host, _, err := net.SplitHostPort(primary)
	if err != nil {
		t.Fatalf("no primary in CLUSTER NODES: %q", nodes)
	}
	node := "rc-" + host[strings.LastIndex(host, ".")+2:] // rc-n is 10.250.<id>.3n
	restoreNodeOnCleanup(t, node)
	s.node("kill", node)
	atKill := s.mustSimStats(s.collapse).Accepted
	s.waitAllBatches()
	bound := int64(o.inFlight * (50 + 25))
	s.result(row, outcome{maxDuplicates: bound})
	row.Note = fmt.Sprintf("killed %s (primary %s) at %d/%d accepted; its replica took the slots; duplicates allowed up to %d (the batches in flight), collapse-tagged",
		node, primary, atKill, total, bound)
	t.Log(row.Note)
}

// TestClusterSenderCutFromRedis: the iOS sender runs on kafka-3's host. At
// a fifth of the iOS tokens accepted the host's route to the Redis hosts (the primary, its
// replicas and the Sentinels) is blackholed for 10 s, five times the claim
// lease (2 s), then restored; Kafka and the simulator stay reachable. The
// sender therefore keeps its partitions and nobody else is handed its
// batches: it stops sending at its next round, as it cannot renew the claim
// (a round starts only on a lease renewed within half a lease), and when
// Redis answers again it claims its own expired lease again and goes on.
// Lost 0; duplicates at most its in-flight batches, collapse-tagged.
func TestClusterSenderCutFromRedis(t *testing.T) {
	const node = "kafka-3"
	row := newClusterRow(t, "cut the iOS sender's host from Redis (route blackholed) mid-send for 10 s (5x its 2 s claim lease)")
	o := opts{cluster: true, redisMode: config.RedisSentinel, senderHost: node, latency: 20 * time.Millisecond, inFlight: 2,
		claimLease: 2 * time.Second}
	s := newStack(t, o)
	s.row = row
	s.define(clusterSpec(112), campaignSpec{})
	s.prepare()
	s.press()
	total := int64(s.manifest.Tokens())
	// Mid-send for the iOS sender: a fifth of the iOS tokens accepted.
	e2e.WaitFor(t, 2*time.Minute, func() error {
		if n := len(s.platformArrivals(push.IOS)); n < clusterIOS/5 {
			return fmt.Errorf("%d iOS tokens accepted", n)
		}
		return nil
	})
	ns := testenv.NodeNetns(t, node)
	ip := net.ParseIP(clusterBridge(t)).To4()
	ip[3] = 20 // the Redis hosts are .21-.23
	route := []string{"netns", "exec", ns, "ip", "route", "%s", "blackhole", ip.String() + "/30"}
	ipRoute := func(verb string) error {
		args := slices.Clone(route)
		args[5] = verb
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ipRoute("add"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	t.Cleanup(func() { _ = ipRoute("del") })
	atCut := s.mustSimStats(s.collapse).Accepted
	iosAtCut := len(s.platformArrivals(push.IOS))
	time.Sleep(10 * time.Second)
	beforeHeal := s.mustSimStats(s.collapse).Accepted
	if err := ipRoute("del"); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	held := healed.Sub(cut)
	s.waitAllBatches()
	// iOS acceptances while cut off: the rounds in flight finish, then
	// nothing is sent on the unrenewed claims. Once the claims are older
	// than the lease (the last half of the cut), no iOS token may arrive.
	var during, late int
	for _, at := range s.platformArrivals(push.IOS) {
		if at >= cut.UnixNano() && at < healed.UnixNano() {
			during++
			if at >= cut.Add(held/2).UnixNano() {
				late++
			}
		}
	}
	if late > 0 {
		t.Errorf("%d iOS tokens accepted in the last half of the cut (more than a claim lease after it): the sender sent on a lease it could not renew", late)
	}
	bound := int64(o.inFlight * s.o.iosBatch)
	s.result(row, outcome{maxDuplicates: bound})
	out := s.procs[senderName(push.IOS, 1)].Output()
	reclaimed := strings.Count(out, "batch lease had expired unrenewed; claimed it again")
	lost := strings.Count(out, "batch lease lost")
	row.Note = fmt.Sprintf("cut at %d/%d accepted (%d iOS) for %.1f s; %d accepted meanwhile, %d of them iOS; the iOS sender then claimed its own expired lease again %d time(s) and lost %d to another sender; duplicates allowed up to %d (its in-flight batches), collapse-tagged",
		atCut, total, iosAtCut, held.Seconds(), beforeHeal-atCut, during, reclaimed, lost, bound)
	t.Log(row.Note)
}
