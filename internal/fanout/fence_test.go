package fanout

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestFencedByTransactionTimeout: a release transaction of partition 0
// stays open longer than the transaction timeout, as when its coordinator
// fails over or its broker is cut off mid-transaction. The coordinator
// aborts it and bumps the producer epoch, and the instance's next request
// is refused as fenced. No other instance exists: the partition is still
// this one's, so it must renew its producer and finish the release from the
// progress marker, every batch on the send topics exactly once.
func TestFencedByTransactionTimeout(t *testing.T) {
	e := newEnv(t)
	// 15 batches per partition: chunks of 1, 2, 4, 8.
	tp := makePlan("camp", 1, e.cfg.Topics.BatchesPartitions, 10*int(e.cfg.Topics.BatchesPartitions), 5*int(e.cfg.Topics.BatchesPartitions), 3)
	e.writePlan(t, tp)
	total := uint32(len(tp.records))

	adm := testenv.Admin(t, e.cfg)
	txnID := TransactionalID(e.cfg.Fanout.TransactionalID, 0)
	var calls, stalled atomic.Int32
	stall := func(partition int32) {
		// The second transaction of partition 0, after its first chunk
		// committed: the marker then has progress to go on from.
		if partition != 0 || calls.Add(1) != 2 {
			return
		}
		ctx := testenv.Context(t, 2*time.Minute)
		var open int16 = -1
		e2e.WaitFor(t, 2*time.Minute, func() error {
			ds, err := adm.DescribeTransactions(ctx, txnID)
			if err != nil {
				return err
			}
			d := ds[txnID]
			if d.Err != nil {
				return d.Err
			}
			if open < 0 {
				if d.State != "Ongoing" {
					return fmt.Errorf("transaction %s is %s, want Ongoing", txnID, d.State)
				}
				open = d.ProducerEpoch
			}
			if d.ProducerEpoch <= open || d.State == "Ongoing" {
				return fmt.Errorf("transaction %s still %s at epoch %d", txnID, d.State, d.ProducerEpoch)
			}
			t.Logf("the coordinator aborted the stalled transaction: %s at epoch %d (was %d)", d.State, d.ProducerEpoch, open)
			return nil
		})
		stalled.Store(1)
	}
	st := e.startStageWith(t, "fanout-a", e.guard, func(s *Stage) { s.beforeCommit = stall })
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "camp"})
	e.waitStatus(t, time.Minute, "camp", "fanout-a", ready(total))
	fire := e.fire(t, "camp", "F1")

	e.waitStatus(t, 2*time.Minute, "camp", "fanout-a", func(s wire.Status) error {
		if s.State != wire.StateReleased || s.Released != total {
			return fmt.Errorf("want released %d", total)
		}
		return nil
	})
	if stalled.Load() != 1 {
		t.Fatal("the second transaction of partition 0 was never stalled")
	}
	if n := value(st.m.renewals); n != 1 {
		t.Fatalf("producers renewed %v times, want 1", n)
	}
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), fire)
}

func (s *Stage) ownedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parts)
}

// TestOwnedHere: with two instances in the group, the group coordinator's
// answer that recoverFenced acts on names exactly one owner per partition,
// the instance the assignment gave it to.
func TestOwnedHere(t *testing.T) {
	e := newEnv(t)
	stages := map[string]*Stage{"fanout-a": e.startStage(t, "fanout-a"), "fanout-b": e.startStage(t, "fanout-b")}
	n := e.cfg.Topics.BatchesPartitions
	e2e.WaitFor(t, 2*time.Minute, func() error {
		owners := map[int32][]string{}
		for name, st := range stages {
			if st.ownedCount() == 0 {
				return fmt.Errorf("%s owns no partition yet", name)
			}
			st.mu.Lock()
			held := map[int32]bool{}
			for id := range st.parts {
				held[id] = true
			}
			st.mu.Unlock()
			for id := range n {
				owned, err := st.ownedHere(testenv.Context(t, 10*time.Second), id)
				if err != nil {
					return fmt.Errorf("%s partition %d: %w", name, id, err)
				}
				if owned != held[id] {
					return fmt.Errorf("%s partition %d: the coordinator says owned=%v, the instance holds it: %v", name, id, owned, held[id])
				}
				if owned {
					owners[id] = append(owners[id], name)
				}
			}
		}
		for id := range n {
			if len(owners[id]) != 1 {
				return fmt.Errorf("partition %d owned by %v", id, owners[id])
			}
		}
		return nil
	})
}
