//go:build fault

package fault_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/wire"
)

// releasePace spreads the release of the fanout rolling restart (560
// batches on 4 batches-topic partitions, 140 each) over about 40 s, so all
// three restarts land in it.
const releasePace = 250 * time.Millisecond

// TestFleetRollingRestartFanouts: three fanouts release a campaign slowly
// (fanout.release_pace); during the release each gets SIGTERM in turn. It
// finishes its transaction in flight, leaves the group and exits; its
// partitions move to the others, which go on after the progress markers;
// once they have committed on every moved partition it is started again,
// and partitions move back to it when it joins. Graceful: every batch on
// the send topics exactly once, duplicates 0.
func TestFleetRollingRestartFanouts(t *testing.T) {
	row := newRow(t, "fleet: rolling restart of every fanout mid-release (3 fanouts), one at a time")
	// The stages' processes inherit the test's environment; only the
	// fanouts read this key.
	t.Setenv(config.EnvName("fanout.release_pace"), releasePace.String())
	s := newStack(t, opts{fanouts: 3})
	s.row = row
	s.define(spec(16), campaignSpec{})
	s.prepare()
	s.press()
	total := int(s.manifest.Batches())
	e2e.WaitFor(t, time.Minute, func() error {
		if n := s.releasedSoFar(); n < total/20 {
			return fmt.Errorf("%d of %d batches released", n, total)
		}
		return nil
	})

	var evs []event
	var steps []string
	for i := 1; i <= s.o.fanouts; i++ {
		name := fmt.Sprintf("fanout-%d", i)
		p := s.procs[name]
		// The partitions it is releasing: their last marker is its own and not final.
		var mine []int32
		for part, ms := range s.releaseMarkers() {
			if last := ms[len(ms)-1]; last.Instance == name && last.Released < last.Batches {
				mine = append(mine, part)
			}
		}
		slices.Sort(mine)
		if len(mine) == 0 {
			t.Fatalf("%s releases no partition at its turn (%d of %d batches released): not mid-release", name, s.releasedSoFar(), total)
		}
		leave := event{name: "SIGTERM " + name, start: time.Now()}
		p.Stop()
		exited := time.Since(leave.start)
		if err := p.Err(); err != nil {
			t.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", name, err, p.Tail(20))
		}
		// Taken over: another instance committed on each of its partitions
		// (or it had finished one with its last transaction).
		e2e.WaitFor(t, time.Minute, func() error {
			ms := s.releaseMarkers()
			for _, part := range mine {
				if last := ms[part][len(ms[part])-1]; last.Instance == name && last.Released < last.Batches {
					return fmt.Errorf("partition %d not taken over from %s yet", part, name)
				}
			}
			return nil
		})
		leave.end = time.Now()
		join := event{name: name + " restarted, joins", start: time.Now()}
		p.Restart() // it has exited: this starts it again
		s.waitReady(name)
		join.end = time.Now().Add(settle)
		evs = append(evs, leave, join)
		steps = append(steps, fmt.Sprintf("%s (partitions %v) exited %.2f s after SIGTERM, taken over after %.2f s",
			name, mine, exited.Seconds(), leave.end.Sub(leave.start).Seconds()))
		time.Sleep(settle) // the join's rebalance settles before the next SIGTERM
	}
	atEnd := s.releasedSoFar()
	s.waitAllBatches()
	released := s.onceOnSendTopics()
	s.result(row, outcome{})

	// Each hand-over of a partition, from the marker history: the pause in
	// its release between the last commit of the old owner and the first of
	// the new one (a normal step is the pace plus one transaction).
	hand, step := s.handOvers()
	for _, h := range hand {
		t.Logf("partition %d: %s -> %s at %s, its release paused %s", h.partition, h.from, h.to,
			h.at.Format("15:04:05.000"), h.pause.Round(time.Millisecond))
	}
	for i := range evs {
		ev := &evs[i]
		var worst time.Duration
		var parts []int32
		for _, h := range hand {
			if h.at.Before(ev.start) || h.at.After(ev.end) {
				continue
			}
			parts = append(parts, h.partition)
			worst = max(worst, h.pause)
		}
		slices.Sort(parts)
		ev.name += fmt.Sprintf(": partitions %v moved, their release paused up to %.2f s", parts, worst.Seconds())
	}
	worst := s.stalls(row, evs)
	// The largest gap between acceptances away from every event: what the
	// paced release gives without a rebalance.
	arr := s.platformArrivals("")
	var quiet time.Duration
	for i := 1; i < len(arr); i++ {
		if !slices.ContainsFunc(evs, func(ev event) bool { return arr[i] >= ev.start.UnixNano() && arr[i-1] <= ev.end.UnixNano() }) {
			quiet = max(quiet, time.Duration(arr[i]-arr[i-1]))
		}
	}
	row.Note = fmt.Sprintf("%s; restarts done at %d of %d batches released; every batch on the send topics once (%d); "+
		"release pace %s (a partition's median step %.2f s without a move); largest acceptance stall %.2f s (%.2f s away from the events)",
		strings.Join(steps, "; "), atEnd, total, released, releasePace, step.Seconds(), worst.Seconds(), quiet.Seconds())
	if atEnd >= total {
		t.Errorf("the restarts ended after the release (%d of %d batches released): not mid-release", atEnd, total)
	}
}

// releaseMarkers reads the campaign's release progress markers of the
// winning fire (read_committed), per batches-topic partition in commit
// order.
func (s *stack) releaseMarkers() map[int32][]wire.Status {
	s.t.Helper()
	out := map[int32][]wire.Status{}
	for _, c := range s.markerHistory() {
		out[c.part] = append(out[c.part], c.marker)
	}
	return out
}

// handOver is one move of a partition's release between instances.
type handOver struct {
	partition int32
	from, to  string
	at        time.Time     // the new owner's first commit
	pause     time.Duration // since the old owner's last commit
}

// handOvers lists every move of a partition's release, and the median
// step between two commits of one owner.
func (s *stack) handOvers() ([]handOver, time.Duration) {
	var out []handOver
	var steps []time.Duration
	for part, ms := range s.releaseMarkers() {
		for i := 1; i < len(ms); i++ {
			d := ms[i].At.Sub(ms[i-1].At)
			if ms[i].Instance == ms[i-1].Instance {
				steps = append(steps, d)
				continue
			}
			out = append(out, handOver{partition: part, from: ms[i-1].Instance, to: ms[i].Instance, at: ms[i].At, pause: d})
		}
	}
	slices.Sort(steps)
	var median time.Duration
	if len(steps) > 0 {
		median = steps[len(steps)/2]
	}
	return out, median
}
