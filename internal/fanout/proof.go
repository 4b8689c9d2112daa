package fanout

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// proofBatches builds the send tasks of a proof: the campaign's proof
// audience, one batch per platform (split at the planner's batch sizes),
// generation 0, seq from 0, in key order. iOS tokens are lower-cased as the
// planner does.
func proofBatches(def *campaign.Campaign, iosSize, androidSize int) ([]heldBatch, error) {
	var out []heldBatch
	for _, plat := range []push.Platform{push.Android, push.IOS} { // key order: "<c>/android/..." < "<c>/ios/..."
		size := androidSize
		if plat == push.IOS {
			size = iosSize
		}
		size = max(size, 1)
		var devs []campaign.ProofDevice
		for _, d := range def.ProofAudience {
			if d.Platform == plat {
				devs = append(devs, d)
			}
		}
		for seq := 0; len(devs) > 0; seq++ {
			n := min(size, len(devs))
			b := &wire.Batch{Campaign: def.ID, Platform: plat, Seq: uint32(seq)}
			idx := map[string]uint16{}
			for _, d := range devs[:n] {
				li, ok := idx[d.Locale]
				if !ok {
					li = uint16(len(b.Locales))
					idx[d.Locale] = li
					b.Locales = append(b.Locales, d.Locale)
				}
				tok := d.Token
				if plat == push.IOS {
					tok = strings.ToLower(tok)
				}
				b.Tokens = append(b.Tokens, wire.Token{Token: tok, Locale: li})
			}
			devs = devs[n:]
			v, err := wire.EncodeBatch(nil, b)
			if err != nil {
				return nil, fmt.Errorf("fanout: proof batch: %w", err)
			}
			out = append(out, heldBatch{key: []byte(b.Key()), value: v, platform: plat, seq: b.Seq, tokens: uint32(len(b.Tokens))})
		}
	}
	return out, nil
}

// proofJob releases a proof on partition 0's transactional path, with kind
// proof and the proof's own fire id, so it is exactly-once like a fire and
// never counts as one.
func (s *Stage) proofJob(p *partition, id string, c wire.Control) {
	drop := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if cs := s.camps[id]; cs != nil {
			for i, q := range cs.proofs {
				if q.FireID == c.FireID {
					cs.proofs = append(cs.proofs[:i:i], cs.proofs[i+1:]...)
					break
				}
			}
		}
	}
	if mk, ok := p.markers[markerID(id, c.FireID)]; ok && mk.done() {
		drop()
		return
	}
	if s.campaignAborted(id) {
		drop()
		return
	}
	if age := time.Since(c.At); age > ProofMaxAge {
		s.m.ignored.WithLabelValues(IgnoredStaleProof).Inc()
		s.log.Warn("fanout: stale proof request dropped", "campaign", id, "proof_id", c.FireID, "age", age.Round(time.Second))
		drop()
		return
	}
	def, err := s.cat.Campaign(p.ctx, id)
	if err != nil {
		s.log.Error("fanout: proof: campaign definition", "campaign", id, "proof_id", c.FireID, "err", err)
		drop()
		return
	}
	batches, err := proofBatches(def, s.cfg.Planner.IOSBatchSize, s.cfg.Planner.AndroidBatchSize)
	if err != nil || len(batches) == 0 {
		s.m.ignored.WithLabelValues(IgnoredNoAudience).Inc()
		s.log.Error("fanout: proof not sent", "campaign", id, "proof_id", c.FireID, "devices", len(def.ProofAudience), "err", err)
		drop()
		return
	}
	deadline := c.Deadline
	if deadline.IsZero() {
		deadline = c.At.Add(def.Deadline.Std())
	}
	fire := wire.Fire{ID: c.FireID, Kind: wire.KindProof, FiredAt: c.At, Deadline: deadline}
	mk, err := s.release(p, id, fire, releaseOrder(batches), 0, nil)
	switch {
	case err == nil:
		s.log.Info("fanout: proof released", "campaign", id, "proof_id", c.FireID, "batches", mk.batches, "devices", len(def.ProofAudience))
		drop()
	case p.ctx.Err() != nil:
	case errors.Is(err, errTxnFailed):
		s.recoverProducer(p, err) // schedules the proof again if the partition is still ours
	default:
		s.log.Error("fanout: proof release failed", "campaign", id, "proof_id", c.FireID, "err", err)
		drop()
	}
}
