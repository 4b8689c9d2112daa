package sender

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/wire"
)

// Outcomes of a token (owlpost_sender_notifications_total{outcome}).
const (
	outcomeAccepted = "accepted"
	outcomeInvalid  = "invalid"
	outcomeFailed   = "failed"
	outcomeExpired  = "expired"
	outcomeAborted  = "aborted"
)

// Results of a batch record (owlpost_sender_batches_total{result}).
const (
	batchSent              = "sent"               // finished here; result record written
	batchTakeover          = "takeover"           // finished here after taking over an expired claim
	batchSkippedDone       = "skipped_done"       // the guard (or, the guard having lost it, the results topic) says it was finished already
	batchSkippedUnverified = "skipped_unverified" // its fire id is not the campaign's verified fire
	batchSkippedHeld       = "skipped_held"       // another live sender kept renewing its claim
	batchLeaseLost         = "lease_lost"         // another sender took it over while we sent
	batchRejected          = "rejected_record"    // bad headers/batch/campaign: sent to the rejects topic
	batchInterrupted       = "interrupted"        // the stage stopped mid-batch; not committed
)

// timeBuckets are dense between 0.5 s and 10 s, where the p95/p99 of a burst
// are read (the original system: 3.9 s and 5.7 s).
var timeBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 3.5, 4,
	5, 6, 7, 8, 10, 15, 20, 30, 45, 60}

// stageMetrics holds the sender's collectors with the platform label bound,
// so the hot path does no label lookups except for provider reasons.
type stageMetrics struct {
	accepted, invalid, failed, expired, aborted prometheus.Counter

	responses *prometheus.CounterVec // curried: reason
	retries   prometheus.Counter
	batches   *prometheus.CounterVec // curried: result
	inflight  prometheus.Gauge
	fromFire  prometheus.Observer // kind fire
	fromProof prometheus.Observer // kind proof
	batchDur  prometheus.Observer
	firstSend prometheus.Observer
	fatal     prometheus.Gauge
	respOK    prometheus.Counter
}

func newStageMetrics(reg prometheus.Registerer, platform string) (*stageMetrics, error) {
	const ns, sub = metrics.Namespace, "sender"
	notif := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "notifications_total",
		Help: "Tokens by final outcome: accepted, invalid (reported to feedback), failed, expired (deadline), aborted."},
		[]string{"platform", "outcome"})
	resp := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "provider_responses_total",
		Help: "Provider answers per token attempt by reason (\"ok\" when accepted)."}, []string{"platform", "reason"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "retries_total",
		Help: "Token send attempts that were retries of a retryable answer."}, []string{"platform"})
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_total",
		Help: "Send-topic records by result: sent, takeover, skipped_done, skipped_held, lease_lost, rejected_record, interrupted."},
		[]string{"platform", "result"})
	inflight := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "inflight_requests",
		Help: "Tokens handed to the provider adapter and not answered yet."}, []string{"platform"})
	fromFire := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "time_from_fire_seconds",
		Help:    "Per accepted token: seconds from the fire (GO, kind fire) or the proof send (kind proof) to the provider's acceptance.",
		Buckets: timeBuckets}, []string{"platform", "kind"})
	batchDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "provider_batch_seconds",
		Help:    "Duration of one adapter SendBatch call (all tokens of a batch and locale, concurrently).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"platform"})
	firstSend := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "trigger_to_first_send_seconds",
		Help:    "Per fire (not proof) and instance: seconds from the fire to this instance's first accepted notification.",
		Buckets: timeBuckets}, []string{"platform"})
	fatal := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "fatal",
		Help: "1 after a fatal provider error (auth/config): the stage stopped rather than burn the audience."},
		[]string{"platform"})

	if err := errors.Join(metrics.Register(reg, &notif), metrics.Register(reg, &resp), metrics.Register(reg, &retries),
		metrics.Register(reg, &batches), metrics.Register(reg, &inflight), metrics.Register(reg, &fromFire),
		metrics.Register(reg, &batchDur), metrics.Register(reg, &firstSend), metrics.Register(reg, &fatal)); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	p := prometheus.Labels{"platform": platform}
	m := &stageMetrics{
		accepted:  notif.WithLabelValues(platform, outcomeAccepted),
		invalid:   notif.WithLabelValues(platform, outcomeInvalid),
		failed:    notif.WithLabelValues(platform, outcomeFailed),
		expired:   notif.WithLabelValues(platform, outcomeExpired),
		aborted:   notif.WithLabelValues(platform, outcomeAborted),
		responses: resp.MustCurryWith(p),
		retries:   retries.WithLabelValues(platform),
		batches:   batches.MustCurryWith(p),
		inflight:  inflight.WithLabelValues(platform),
		fromFire:  fromFire.WithLabelValues(platform, wire.KindFire),
		fromProof: fromFire.WithLabelValues(platform, wire.KindProof),
		batchDur:  batchDur.WithLabelValues(platform),
		firstSend: firstSend.WithLabelValues(platform),
		fatal:     fatal.WithLabelValues(platform),
		respOK:    resp.WithLabelValues(platform, "ok"),
	}
	for _, r := range []string{batchSent, batchTakeover, batchSkippedDone, batchSkippedUnverified, batchSkippedHeld, batchLeaseLost, batchRejected, batchInterrupted} {
		m.batches.WithLabelValues(r) // exported at 0 from the start, so rate() works
	}
	return m, nil
}
