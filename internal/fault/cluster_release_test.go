//go:build fault

package fault_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
)

// killPace is the release pace of the cases that kill a broker
// mid-release: one batch per transaction, at least 20 ms apart (175
// transactions per partition of a 700-batch plan), so the release lasts
// seconds and the kill lands inside it. The fanouts inherit the setting.
const killPace = 20 * time.Millisecond

// producedAfter counts the campaign's send tasks produced (record
// timestamp) after at and returns the latest one's time: send tasks after a
// kill show that the release was under way when it landed.
func (s *stack) producedAfter(at time.Time) (n int, last time.Time) {
	s.t.Helper()
	for _, topic := range []string{s.cfg.Topics.SendIOS, s.cfg.Topics.SendAndroid} {
		for _, c := range s.readCommitted(topic, func(*committed) bool { return true }) {
			if c.rec.Timestamp.After(at) {
				n++
			}
			if c.rec.Timestamp.After(last) {
				last = c.rec.Timestamp
			}
		}
	}
	if n == 0 {
		s.t.Error("the release had finished before the kill landed")
	}
	return n, last
}

// killMidRelease is a case that kills -9 one broker as soon as a paced
// release (700 batches) is under way: pick chooses the broker once the
// campaign is prepared and says what it is; after, if not nil, runs once
// the press has returned and says what followed. Every batch must be on the
// send topics exactly once, and some must have been produced after the kill.
func killMidRelease(t *testing.T, name string, seed int64, pick func(*stack) (int32, string), after func(s *stack, killed int32) string) {
	row := newClusterRow(t, name)
	t.Setenv(config.EnvName("fanout.release_pace"), killPace.String())
	s := newStack(t, opts{cluster: true, iosBatch: 20, androidBatch: 10})
	s.row = row
	s.define(clusterSpec(seed), campaignSpec{})
	s.prepare()
	id, role := pick(s)
	node := brokerNode(id)
	restoreNodeOnCleanup(t, node)
	wait, seen := s.pressWhenReleasing()
	s.node("kill", node)
	killed := time.Now()
	wait()
	then := ""
	if after != nil {
		then = "; " + after(s, id)
	}
	s.waitAllBatches()
	released := s.onceOnSendTopics()
	n, last := s.producedAfter(killed)
	t.Logf("killed %s (%s) after the first %d send tasks%s; %d of %d send tasks produced after the kill, the last %.1f s after it",
		node, role, seen, then, n, released, last.Sub(killed).Seconds())
	s.node("start", node)
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("killed %s (%s) mid-release (%d of %d batches produced after the kill, the last %.1f s after it)%s; every batch on the send topics exactly once (%d)",
		node, role, n, s.manifest.Batches(), last.Sub(killed).Seconds(), then, released)
}

// TestClusterTxnCoordinatorKilled: kill -9 the broker that coordinates the
// fanout's transactions as soon as the release is under way. The
// transaction state log (replication factor 3) has in-sync copies on the
// other brokers, which take over as coordinators: open transactions are
// aborted or completed as their state says, the fanout goes on from its
// progress markers, and every batch is on the send topics exactly once.
func TestClusterTxnCoordinatorKilled(t *testing.T) {
	killMidRelease(t, "kill -9 the broker coordinating the fanout's transactions mid-release", 102, func(s *stack) (int32, string) {
		coord, n := s.txnCoordinator()
		return coord, fmt.Sprintf("coordinator of %d of %d transactional ids", n, s.cfg.Topics.BatchesPartitions)
	}, nil)
}

// TestClusterGroupCoordinatorKilled: kill -9 the broker that coordinates
// the fanout group as soon as the release is under way. The group moves to
// another coordinator (the members rejoin, the partitions may move), and a
// fanout whose release transaction failed asks the group's current
// coordinator, not the dead one, who owns its partition: every batch is on
// the send topics exactly once. (A cached coordinator that was never
// dropped once held two partitions' release until the broker came back.)
func TestClusterGroupCoordinatorKilled(t *testing.T) {
	killMidRelease(t, "kill -9 the broker coordinating the fanout group mid-release", 105, func(s *stack) (int32, string) {
		coord := s.groupCoordinator(s.cfg.Fanout.Group)
		return coord, fmt.Sprintf("the fanout group's coordinator, and coordinator of %d of %d transactional ids",
			s.txnCoordinators()[coord], s.cfg.Topics.BatchesPartitions)
	}, nil)
}

// TestClusterControllerKilled: kill -9 the active KRaft controller (with
// combined roles, a broker too) as soon as the release is under way. The
// remaining two voters elect a new controller, which fences the dead broker
// and moves its leaderships; the release and the sends complete.
func TestClusterControllerKilled(t *testing.T) {
	killMidRelease(t, "kill -9 the active KRaft controller mid-release", 103, func(s *stack) (int32, string) {
		return s.activeController(), "the active controller"
	}, func(s *stack, ctrl int32) string {
		var next int32
		e2e.WaitFor(s.t, time.Minute, func() error {
			if next = s.activeController(); next == ctrl || next < 0 {
				return fmt.Errorf("the quorum still names %d as controller", next)
			}
			return nil
		})
		return fmt.Sprintf("kafka-%d took over", next)
	})
}

// TestClusterBrokerPartitioned: fanout-1 runs on kafka-3's host. When the
// release is under way the host's link goes down for longer than the
// session timeouts (the broker's 9 s with the controller, the fanout
// group's 10 s), then comes back. The controller fences the broker and
// moves its leaderships; fanout-2 takes over fanout-1's partitions, and its
// InitProducerID with the same transactional ids fences fanout-1's
// producers: nothing fanout-1 had open commits (it either gives up when it
// learns its group session is lost, or its late writes are refused), and
// every batch is on the send topics exactly once. fanout-2's own
// transactions whose coordinator or partition leaders were on kafka-3 fail
// or are aborted by the coordinator's timeout; it goes on with new
// producers from the progress markers.
func TestClusterBrokerPartitioned(t *testing.T) {
	const node = "kafka-3"
	row := newClusterRow(t, "partition a broker (link down) with a fanout mid-release for 25 s, then heal")
	s := newStack(t, opts{cluster: true, fanoutHost: node, iosBatch: 20, androidBatch: 10})
	s.row = row
	s.define(clusterSpec(104), campaignSpec{})
	s.prepare()
	restoreNodeOnCleanup(t, node)
	wait, seen := s.pressWhenReleasing()
	s.node("partition", node)
	cut := time.Now()
	wait()
	// Longer than both session timeouts, and until the survivor has
	// released everything (at most two minutes).
	e2e.WaitFor(t, 2*time.Minute, func() error {
		if d := time.Since(cut); d < 25*time.Second {
			return fmt.Errorf("partitioned for %s", d)
		}
		counts, err := s.trySendTopicCounts()
		if err != nil {
			return err
		}
		if n := len(counts); n < int(s.manifest.Batches()) {
			return fmt.Errorf("%d of %d batches released", n, s.manifest.Batches())
		}
		return nil
	})
	s.node("heal", node)
	held := time.Since(cut)
	t.Logf("partitioned %s with fanout-1 after the first %d send tasks, healed after %s", node, seen, held.Round(time.Second))
	s.waitAllBatches()
	released := s.onceOnSendTopics()
	fenced := s.fencedTakeovers("fanout-1", "fanout-2")
	refused := refusedLines(s.procs["fanout-1"].Output())
	for _, l := range refused {
		t.Logf("fanout-1: %s", l)
	}
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("%s and fanout-1 cut off after the first %d send tasks for %.0f s; fanout-2 took over %d partitions fanout-1 had begun, under the same transactional ids at a higher epoch (fanout-1 logged %d refused writes); every batch on the send topics exactly once (%d)",
		node, seen, held.Seconds(), fenced, len(refused), released)
}

// fencedTakeovers checks, from the progress-marker history, that every
// partition victim had begun but not finished was finished by survivor
// under the same transactional id (producer id) at a higher epoch: the
// survivor's InitProducerID fenced the victim, so nothing the victim still
// had open could commit. It returns how many partitions were taken over.
func (s *stack) fencedTakeovers(victim, survivor string) int {
	s.t.Helper()
	last := map[int32]committed{}  // victim's last marker per partition
	final := map[int32]committed{} // the marker that finished the partition
	for _, c := range s.markerHistory() {
		if c.marker.Instance == victim {
			last[c.part] = c
		}
		if c.marker.Released == c.marker.Batches {
			final[c.part] = c
		}
	}
	n := 0
	for p, v := range last {
		if v.marker.Released == v.marker.Batches {
			continue // the victim finished it before the cut
		}
		f, ok := final[p]
		switch {
		case !ok:
			s.t.Errorf("partition %d: never finished (%s had released %d/%d)", p, victim, v.marker.Released, v.marker.Batches)
		case f.marker.Instance != survivor || f.rec.ProducerID != v.rec.ProducerID || f.rec.ProducerEpoch <= v.rec.ProducerEpoch:
			s.t.Errorf("partition %d: %s's last marker %s, final marker %s: want %s, same producer id, higher epoch", p, victim, v, f, survivor)
		default:
			s.t.Logf("partition %d: %s stopped at %d/%d at epoch %d; %s finished it at epoch %d", p, victim,
				v.marker.Released, v.marker.Batches, v.rec.ProducerEpoch, survivor, f.rec.ProducerEpoch)
			n++
		}
	}
	return n
}

// refusedLines returns the log lines in which the broker refused a fanout's
// transaction because its producer was fenced.
func refusedLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "PRODUCER_FENCED") || strings.Contains(l, "INVALID_PRODUCER_EPOCH") || strings.Contains(l, "producer fenced") {
			out = append(out, l)
		}
	}
	return out
}
