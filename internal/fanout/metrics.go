package fanout

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/owlpost/owlpost/internal/metrics"
)

// Reasons a trigger (Control fire record) is ignored: the label of
// owlpost_fanout_triggers_ignored_total.
const (
	IgnoredNotWinner  = "not_winner"     // fire id is not the winner recorded in Redis
	IgnoredNoFire     = "no_fire_record" // Redis has no fire for the campaign
	IgnoredAborted    = "aborted"        // the campaign was aborted
	IgnoredDuplicate  = "duplicate"      // a re-publication of the fire already acted on
	IgnoredStaleProof = "stale_proof"    // a proof request older than ProofMaxAge
	IgnoredNoAudience = "no_proof_audience"
	IgnoredBadRecord  = "bad_record" // a control record that does not decode
)

// stageMetrics are the fanout's collectors (listed in internal/metrics/doc.go).
type stageMetrics struct {
	batchesHeld    *prometheus.GaugeVec
	tokensHeld     *prometheus.GaugeVec
	heldBytes      prometheus.Gauge
	bytesPerToken  prometheus.Gauge
	batchesRel     *prometheus.CounterVec
	tokensRel      *prometheus.CounterVec
	releaseSeconds prometheus.Histogram
	triggerSeconds prometheus.Histogram
	ignored        *prometheus.CounterVec
	mismatch       prometheus.Counter
	txnRetries     prometheus.Counter
	renewals       prometheus.Counter
}

func newStageMetrics(reg prometheus.Registerer) (*stageMetrics, error) {
	ns, sub := metrics.Namespace, "fanout"
	m := &stageMetrics{
		batchesHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "batches_held",
			Help: "Batch records of a campaign held in memory by this instance, ready to release."}, []string{"campaign"}),
		tokensHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "tokens_held",
			Help: "Device tokens in the held batches of a campaign."}, []string{"campaign"}),
		heldBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "held_bytes",
			Help: "Bytes of batch keys and values held in memory, all campaigns."}),
		bytesPerToken: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "held_bytes_per_token",
			Help: "held_bytes divided by the tokens held: the memory cost of one device token (0 when nothing is held)."}),
		batchesRel: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_released_total",
			Help: "Send tasks committed to the send topics, by platform and kind (fire or proof)."}, []string{"platform", "kind"}),
		tokensRel: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "tokens_released_total",
			Help: "Tokens in the committed send tasks, by platform and kind."}, []string{"platform", "kind"}),
		releaseSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "release_seconds",
			Help:    "From the fire time to one batches-topic partition fully released by this instance.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		triggerSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "trigger_seconds",
			Help:    "From the trigger record's timestamp to this instance's first committed send task of the fire.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "triggers_ignored_total",
			Help: "Fire or proof requests not acted on, by reason."}, []string{"reason"}),
		mismatch: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "manifest_mismatch_total",
			Help: "Partition loads whose batches did not match the plan manifest (generation, placement, counts or checksum)."}),
		txnRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "txn_retries_total",
			Help: "Release transactions that failed (a produce or commit error, or a fenced producer); the release goes on with a new producer."}),
		renewals: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "producers_renewed_total",
			Help: "Partition producers replaced after a failed release transaction, the partition still owned by this instance."}),
	}
	if err := errors.Join(metrics.Register(reg, &m.batchesHeld), metrics.Register(reg, &m.tokensHeld),
		metrics.Register(reg, &m.heldBytes), metrics.Register(reg, &m.bytesPerToken), metrics.Register(reg, &m.batchesRel),
		metrics.Register(reg, &m.tokensRel), metrics.Register(reg, &m.releaseSeconds), metrics.Register(reg, &m.triggerSeconds),
		metrics.Register(reg, &m.ignored), metrics.Register(reg, &m.mismatch), metrics.Register(reg, &m.txnRetries),
		metrics.Register(reg, &m.renewals)); err != nil {
		return nil, err
	}
	return m, nil
}
