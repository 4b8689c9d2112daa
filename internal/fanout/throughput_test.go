package fanout

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/wire"
)

// TestReleaseThroughput releases one big plan with no sender running and
// logs the release rate: tokens from the trigger's fire time to the last
// progress marker of the fire (the moment the last send task became visible
// to read_committed readers). It asserts exactly-once release, never a
// duration (run with -v to read the figure). The size defaults to a small
// plan so the suite stays quick on a shared machine; OWLPOST_RELEASE_TOKENS
// sets it (60% of the tokens iOS in batches of 500, the rest Android in
// batches of 250, like the planner's).
func TestReleaseThroughput(t *testing.T) {
	tokens := 200_000
	if v := os.Getenv("OWLPOST_RELEASE_TOKENS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			t.Fatalf("OWLPOST_RELEASE_TOKENS=%q: want an integer >= 1000", v)
		}
		tokens = n
	}
	nIOS := tokens * 6 / 10 / 500
	nAndroid := (tokens - nIOS*500) / 250
	e := newEnv(t)
	tp := makeSizedPlan("rel", 1, e.cfg.Topics.BatchesPartitions, nIOS, nAndroid, 500, 250, true)
	e.writePlan(t, tp)
	e.startStage(t, "fanout-rel")
	e.control(t, wire.Control{Type: wire.ControlPrepare, Campaign: "rel"})
	e.waitStatus(t, 5*time.Minute, "rel", "fanout-rel", ready(uint32(nIOS+nAndroid)))

	fire := e.fire(t, "rel", "F-rel")
	e.waitStatus(t, 5*time.Minute, "rel", "fanout-rel", inState(wire.StateReleased))

	var last time.Time
	for _, r := range e.statusLog(t) {
		c, f, _, ok := ParseMarkerKey(string(r.Key))
		if !ok || c != "rel" || f != fire.FireID {
			continue
		}
		var st wire.Status
		if err := wire.Decode(r.Value, &st); err == nil && st.At.After(last) {
			last = st.At
		}
	}
	checkExactlyOnce(t, e.cfg, tp, e.sends(t), fire)
	total := nIOS*500 + nAndroid*250
	d := last.Sub(fire.At)
	t.Logf("released %d tokens in %d batches (%d iOS, %d Android) over %d partitions, one instance, no senders: fire to last marker %s = %.0f tokens/s",
		total, nIOS+nAndroid, nIOS, nAndroid, e.cfg.Topics.BatchesPartitions, d.Round(time.Millisecond), float64(total)/d.Seconds())
}
