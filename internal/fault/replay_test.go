//go:build fault

package fault_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/testenv"
)

// TestRedisFlushAndGroupReset: a campaign completes; then Redis loses every
// key of owlpost (a failover to an empty replica, a mistaken flush: the fire
// record and every done mark) and the sender groups start over from the
// earliest offset (a renamed group, expired offsets) while every send task
// is still inside its deadline. The senders re-read every task: each one's
// fire is checked against the control log (the guard lost it) and each
// batch against the results topic (the guard lost the done marks), so
// nothing is sent again.
func TestRedisFlushAndGroupReset(t *testing.T) {
	row := newRow(t, "campaign complete, then Redis flushed and the sender groups reset to the earliest offset")
	s := newStack(t, opts{latency: 5 * time.Millisecond})
	s.row = row
	s.define(spec(17), campaignSpec{})
	s.prepare()
	s.press()
	s.waitAllBatches()
	before := s.mustSimStats(s.collapse)

	senders := map[push.Platform]string{push.IOS: "sender-ios", push.Android: "sender-android"}
	for _, name := range senders {
		s.procs[name].Stop()
	}
	testenv.FlushRedis(t, s.cfg)
	adm := kadm.NewClient(s.cl)
	var groups []string
	for p := range senders {
		groups = append(groups, s.cfg.Sender.GroupOf(string(p)))
	}
	deleted, err := adm.DeleteGroups(s.ctx, groups...)
	if err == nil {
		for _, d := range deleted {
			err = errors.Join(err, d.Err)
		}
	}
	if err != nil {
		t.Fatalf("deleting the sender groups: %v", err)
	}
	for _, name := range senders {
		s.procs[name].Restart()
	}

	// Every task read again: each one is counted skipped as done. (Group
	// lag does not reach 0 on a transactional topic: the commit marker
	// after the last task holds an offset no record is read from.)
	batches := float64(s.manifest.IOSBatches + s.manifest.AndroidBatches)
	var skipped float64
	e2e.WaitFor(t, 2*time.Minute, func() error {
		skipped = 0
		for _, name := range senders {
			n, err := scrape(s.metrics[name], "owlpost_sender_batches_total", map[string]string{"result": "skipped_done"})
			if err != nil {
				return err
			}
			skipped += n
		}
		if skipped < batches {
			return fmt.Errorf("%v of %v replayed batches skipped as done", skipped, batches)
		}
		return nil
	})
	if skipped != batches {
		t.Errorf("the senders skipped %v replayed batches as done, want %v", skipped, batches)
	}
	// Anything sent would have been sent by now; give a stray send a moment.
	time.Sleep(2 * time.Second)
	after := s.mustSimStats(s.collapse)
	if after.Accepted != before.Accepted {
		t.Errorf("the simulator accepted %d notifications after the replay (%d before): sent again",
			after.Accepted, before.Accepted)
	}
	s.result(row, outcome{})
	row.Note = fmt.Sprintf("after the campaign: every owlpost key deleted from Redis, both sender groups deleted (they restart at the earliest offset); "+
		"the senders read all %v tasks again and skipped each as done (the control log's fire, the results topic's marks); %d accepted before and after",
		batches, after.Accepted)
	t.Log(row.Note)
}
