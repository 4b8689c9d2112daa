//go:build fault

package fault_test

import (
	"fmt"
	"testing"
)

// TestClusterTxnCoordinatorKilled: kill -9 the broker that coordinates the
// fanout's transactions as soon as the release is under way. The
// transaction state log (replication factor 3) has in-sync copies on the
// other brokers, which take over as coordinators: open transactions are
// aborted or completed as their state says, the fanout re-reads its progress
// markers and goes on, and every batch is on the send topics exactly once.
func TestClusterTxnCoordinatorKilled(t *testing.T) {
	row := newClusterRow(t, "kill -9 the broker coordinating the fanout's transactions mid-release")
	s := newStack(t, opts{cluster: true})
	s.row = row
	s.define(clusterSpec(102), campaignSpec{})
	s.prepare()
	coord, n := s.txnCoordinator()
	node := brokerNode(coord)
	restoreNodeOnCleanup(t, node)
	wait, seen := s.pressWhenReleasing()
	s.node("kill", node)
	wait()
	atKill := s.releasedSoFar()
	t.Logf("killed %s (coordinator of %d of %d fanout transactional ids) after the first %d send tasks; %d of %d batches released by then",
		node, n, s.cfg.Topics.BatchesPartitions, seen, atKill, s.manifest.Batches())
	s.waitAllBatches()
	released := s.onceOnSendTopics()
	s.node("start", node)
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("killed %s (coordinator of %d of %d transactional ids) when %d of %d batches were released; every batch on the send topics exactly once (%d)",
		node, n, s.cfg.Topics.BatchesPartitions, atKill, s.manifest.Batches(), released)
	if atKill >= int(s.manifest.Batches()) {
		row.Note += "; the release had already finished when the kill landed"
	}
}
