package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// Proof outcomes of one device.
const (
	ProofPending  = "pending"
	ProofAccepted = "accepted"
	ProofInvalid  = "invalid"
	ProofFailed   = "failed"
	ProofExpired  = "expired"
	ProofAborted  = "aborted"
	ProofMixed    = "mixed"
)

// ProofDeviceResult is what one proof device was sent and how the provider
// answered.
type ProofDeviceResult struct {
	Name     string        `json:"name"`
	Platform push.Platform `json:"platform"`
	Locale   string        `json:"locale"`
	// MessageLocale is the campaign locale the device's locale resolved to.
	MessageLocale string `json:"message_locale"`
	Outcome       string `json:"outcome"`
	Reason        string `json:"reason,omitempty"`
	Title         string `json:"title,omitempty"`
	Subtitle      string `json:"subtitle,omitempty"`
	Body          string `json:"body,omitempty"`
	// Silent is true for a background (APNs) or data-only (FCM) message.
	Silent bool `json:"silent,omitempty"`
	// Payload is the exact APNs JSON payload (iOS only).
	Payload string `json:"payload,omitempty"`
}

// ProofReport is the outcome of one proof run.
type ProofReport struct {
	Campaign    string              `json:"campaign"`
	ProofID     string              `json:"proof_id"`
	By          string              `json:"by"`
	RequestedAt time.Time           `json:"requested_at"`
	Complete    bool                `json:"complete"`
	Devices     []ProofDeviceResult `json:"devices"`
}

// WaitProof waits for the results of proof run proofID of campaign id and
// returns what each proof device received. It returns when every proof device
// has an outcome, or when ctx ends: then the partial report comes back with
// Complete false and ctx's error.
func (s *Service) WaitProof(ctx context.Context, id, proofID string) (*ProofReport, error) {
	return s.waitProof(ctx, id, proofID, 0)
}

// waitProof is WaitProof waiting at most wait for the results (0: until
// ctx ends); finding the proof request is bounded by ctx only.
func (s *Service) waitProof(ctx context.Context, id, proofID string, wait time.Duration) (*ProofReport, error) {
	def, _, err := s.lookup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("control: proof: %w", err)
	}
	audit, err := s.audit(ctx, id)
	if err != nil {
		return nil, err
	}
	var req *wire.Control
	for i := range audit {
		if audit[i].Type == wire.ControlProof && audit[i].FireID == proofID {
			req = &audit[i]
		}
	}
	if req == nil {
		return nil, fmt.Errorf("control: proof: %w: no proof %q for campaign %s", ErrUnknownProof, proofID, id)
	}
	rep, err := newProofReport(def, req)
	if err != nil {
		return nil, err
	}
	starts, err := s.startsAfter(ctx, s.cfg.Topics.Results, req.At)
	if err != nil {
		return nil, err
	}
	offsets := map[int32]kgo.Offset{}
	for p, o := range starts {
		offsets[p] = kgo.NewOffset().At(o)
	}
	opts := append(append([]kgo.Opt{}, s.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topics.Results: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("control: proof: %w", err)
	}
	defer cl.Close()
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	var results []wire.Result
	for {
		if rep.attribute(results) {
			return rep, nil
		}
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("control: proof %s: waiting for results: %w", proofID, err)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = errors.Join(ferr, fmt.Errorf("partition %d: %w", p, err))
			}
		})
		if ferr != nil {
			return rep, fmt.Errorf("control: proof %s: read results: %w", proofID, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var res wire.Result
			if wire.Decode(r.Value, &res) == nil && res.Campaign == id && res.FireID == proofID && res.Kind == wire.KindProof {
				results = append(results, res)
			}
		})
	}
}

func newProofReport(def *campaign.Campaign, req *wire.Control) (*ProofReport, error) {
	rend, err := def.Render()
	if err != nil {
		return nil, fmt.Errorf("control: proof: render %s: %w", def.ID, err)
	}
	rep := &ProofReport{Campaign: def.ID, ProofID: req.FireID, By: req.By, RequestedAt: req.At}
	for _, d := range def.ProofAudience {
		dr := ProofDeviceResult{Name: d.Name, Platform: d.Platform, Locale: d.Locale,
			MessageLocale: rend.Resolve(d.Locale), Outcome: ProofPending}
		fillMessage(&dr, rend.For(d.Platform, d.Locale))
		rep.Devices = append(rep.Devices, dr)
	}
	return rep, nil
}

// fillMessage copies the human-visible parts of the rendered message.
func fillMessage(dr *ProofDeviceResult, m *push.Message) {
	switch {
	case m == nil:
	case m.APNs != nil:
		dr.Payload = string(m.APNs.Payload)
		var p struct {
			APS struct {
				Alert json.RawMessage `json:"alert"`
			} `json:"aps"`
		}
		_ = json.Unmarshal(m.APNs.Payload, &p)
		var alert struct{ Title, Subtitle, Body string }
		if json.Unmarshal(p.APS.Alert, &alert) != nil {
			var body string
			if json.Unmarshal(p.APS.Alert, &body) == nil {
				alert.Body = body
			}
		}
		dr.Title, dr.Subtitle, dr.Body = alert.Title, alert.Subtitle, alert.Body
		dr.Silent = m.APNs.PushType == campaign.PushTypeBackground
	case m.FCM != nil:
		dr.Title, dr.Body, dr.Silent = m.FCM.Title, m.FCM.Body, m.FCM.Silent
	}
}

// attribute assigns results to devices (see the package doc) and reports
// whether every device has an outcome.
func (rep *ProofReport) attribute(results []wire.Result) bool {
	byPlat := map[push.Platform][]int{} // device indexes per platform, campaign order
	for i := range rep.Devices {
		rep.Devices[i].Outcome, rep.Devices[i].Reason = ProofPending, ""
		byPlat[rep.Devices[i].Platform] = append(byPlat[rep.Devices[i].Platform], i)
	}
	latest := map[push.Platform]map[uint32]wire.Result{}
	for _, r := range results {
		if r.Skipped {
			continue
		}
		if latest[r.Platform] == nil {
			latest[r.Platform] = map[uint32]wire.Result{}
		}
		latest[r.Platform][r.Seq] = r
	}
	complete := true
	for p, devs := range byPlat {
		seqs := make([]uint32, 0, len(latest[p]))
		for s := range latest[p] {
			seqs = append(seqs, s)
		}
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		next := 0
		for _, seq := range seqs {
			r := latest[p][seq]
			outcome, reason := batchOutcome(r)
			for j := 0; j < r.Tokens && next < len(devs); j++ {
				rep.Devices[devs[next]].Outcome, rep.Devices[devs[next]].Reason = outcome, reason
				next++
			}
		}
		if next < len(devs) {
			complete = false
		}
	}
	rep.Complete = complete
	return complete
}

func batchOutcome(r wire.Result) (string, string) {
	reasons := make([]string, 0, len(r.Reasons))
	for k, n := range r.Reasons {
		reasons = append(reasons, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(reasons)
	reason := strings.Join(reasons, ", ")
	switch r.Tokens {
	case r.Accepted:
		return ProofAccepted, ""
	case r.Invalid:
		return ProofInvalid, reason
	case r.Failed:
		return ProofFailed, reason
	case r.Expired:
		return ProofExpired, reason
	case r.Aborted:
		return ProofAborted, reason
	}
	mixed := fmt.Sprintf("batch of %d: %d accepted, %d invalid, %d failed, %d expired, %d aborted",
		r.Tokens, r.Accepted, r.Invalid, r.Failed, r.Expired, r.Aborted)
	if reason != "" {
		mixed += " (" + reason + ")"
	}
	return ProofMixed, mixed
}
