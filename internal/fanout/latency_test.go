package fanout

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestTriggerLatency measures, for several fires, the time from the trigger
// record's timestamp to the first send task of that fire visible to a
// read_committed consumer, and logs the median. It asserts only that every
// fire was released, never a duration (run with -v to read the figures).
func TestTriggerLatency(t *testing.T) {
	const runs = 7
	e := newEnv(t)
	st := e.startStage(t, "fanout-lat")
	watch := testenv.Client(t, e.cfg, kgo.ConsumeTopics(e.cfg.Topics.SendIOS, e.cfg.Topics.SendAndroid),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	var lat []time.Duration
	for i := range runs {
		c := fmt.Sprintf("lat%d", i)
		tp := makePlan(c, 1, e.cfg.Topics.BatchesPartitions, 40, 20, 10)
		e.writePlan(t, tp)
		e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: c})
		e.waitStatus(t, time.Minute, c, "fanout-lat", ready(60))
		fire := e.fire(t, c, "F-"+c)
		ctx := testenv.Context(t, time.Minute)
		var first time.Time
		for first.IsZero() {
			fs := watch.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: no send task within a minute", c)
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if string(kafka.Header(r, wire.HeaderFireID)) == fire.FireID && first.IsZero() {
					first = now
				}
			})
		}
		// The trigger record's timestamp is the producer's create time.
		recs := e.snapshot(t, e.cfg.Topics.Control)
		ts := recs[len(recs)-1].Timestamp
		lat = append(lat, first.Sub(ts))
		e.waitStatus(t, time.Minute, c, "fanout-lat", inState(wire.StateReleased))
	}
	d := &dtoHist{}
	d.read(st)
	slices.Sort(lat)
	t.Logf("trigger record -> first send task visible (read_committed), %d fires: median %s, min %s, max %s; all %v",
		runs, lat[runs/2].Round(100*time.Microsecond), lat[0].Round(100*time.Microsecond), lat[runs-1].Round(100*time.Microsecond), lat)
	t.Logf("fanout's own trigger_seconds (record -> first commit returned): count %d, mean %s", d.count, d.mean())
}
