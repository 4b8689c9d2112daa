package fanout

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/wire"
)

// statusLocked computes this instance's status for a campaign.
func (s *Stage) statusLocked(cs *campState) *wire.Status {
	st := &wire.Status{Campaign: cs.id, Role: wire.RoleFanout, Instance: s.cfg.InstanceID, At: time.Now().UTC()}
	if cs.manifest != nil {
		st.Generation = cs.manifest.Generation
	}
	parts := s.readyPartsLocked()
	var problems []string
	loading, done, match := false, true, true
	for _, p := range parts {
		st.Partitions = append(st.Partitions, p.id)
		if e, ok := cs.errs[p.id]; ok {
			problems = append(problems, e)
		}
		h, ok := cs.holds[p.id]
		if !ok || cs.loading[p.id] {
			loading, done, match = true, false, false
			continue
		}
		st.Batches += h.nBatches
		st.Tokens += h.tokens
		st.Released += h.released
		if !h.done {
			done = false
		}
		if !h.match {
			match = false
			problems = append(problems, h.problems...)
		}
	}
	if cs.sumState == sumMismatch {
		match = false
		problems = append(problems, "plan checksum does not match the manifest")
	}
	st.ManifestMatch = match && len(parts) > 0
	switch {
	case cs.aborted:
		st.State = wire.StateAborted
	case len(parts) == 0:
		st.State = wire.StateIdle
		st.ManifestMatch = true // nothing held, nothing wrong
	case len(problems) > 0 && (cs.fire == nil || len(cs.errs) > 0):
		st.State = wire.StateError
	case cs.fire != nil && done:
		st.State = wire.StateReleased
	case cs.fire != nil:
		st.State = wire.StateReleasing
	case loading:
		st.State = wire.StateLoading
	default:
		st.State = wire.StateReady
	}
	if len(problems) > 0 {
		if len(problems) > maxProblems {
			problems = append(problems[:maxProblems], "...")
		}
		st.Error = strings.Join(problems, "; ")
	}
	return st
}

// publishLocked sends the campaign's status to the status topic
// (asynchronously). Without force, a status whose state did not change is
// sent at most every publishEvery.
func (s *Stage) publishLocked(cs *campState, force bool) {
	st := s.statusLocked(cs)
	if !force && st.State == cs.lastState && time.Since(cs.lastPub) < publishEvery {
		return
	}
	cs.lastState, cs.lastPub = st.State, time.Now()
	s.produceStatus(st)
}

func (s *Stage) produceStatus(st *wire.Status) {
	b, err := wire.Encode(st)
	if err != nil {
		s.log.Error("fanout: encode status", "err", err)
		return
	}
	rec := &kgo.Record{Topic: s.cfg.Topics.Status, Key: []byte(wire.StatusKey(st.Campaign, st.Role, st.Instance)), Value: b}
	s.out.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			s.log.Warn("fanout: publish status", "campaign", st.Campaign, "err", err)
		}
	})
}

// heartbeatLocked reports whether a campaign's status is re-published
// periodically: while it is prepared or being released, not once final.
func heartbeatState(state wire.State) bool {
	switch state {
	case wire.StateReleased, wire.StateAborted, wire.StateStopped:
		return false
	}
	return true
}

// heartbeat re-publishes the status of every held campaign, and the
// instance's own status (campaign ""), every HeartbeatEvery, so readers can
// tell a live instance from a stale record (At older than a few heartbeats).
func (s *Stage) heartbeat(ctx context.Context) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	for {
		s.mu.Lock()
		if s.live {
			ids := make([]string, 0, len(s.camps))
			for id := range s.camps {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				cs := s.camps[id]
				if (cs.prepared || cs.fire != nil) && !cs.aborted && heartbeatState(cs.lastState) {
					s.publishLocked(cs, true)
				}
			}
		}
		s.produceStatus(s.instanceStatusLocked(""))
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// instanceStatusLocked is the instance-level status (campaign "").
func (s *Stage) instanceStatusLocked(state wire.State) *wire.Status {
	st := &wire.Status{Role: wire.RoleFanout, Instance: s.cfg.InstanceID, At: time.Now().UTC(), State: state}
	for _, p := range s.readyPartsLocked() {
		st.Partitions = append(st.Partitions, p.id)
	}
	if state == "" {
		switch {
		case !s.live:
			st.State = wire.StateLoading
		case len(st.Partitions) == 0:
			st.State = wire.StateIdle
		default:
			st.State = wire.StateReady
		}
	}
	return st
}

// publishStopped marks this instance's statuses stopped on a clean exit, so
// readers do not wait for its heartbeats to go stale.
func (s *Stage) publishStopped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cs := range s.camps {
		if (cs.prepared || cs.fire != nil) && heartbeatState(cs.lastState) {
			st := s.statusLocked(cs)
			st.State, st.Partitions = wire.StateStopped, nil
			s.produceStatus(st)
		}
	}
	s.produceStatus(s.instanceStatusLocked(wire.StateStopped))
}
