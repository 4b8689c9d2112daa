package planner

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/push"
)

// stageMetrics are the planner's collectors (listed in package metrics'
// doc). Counters move when a plan commits, so they count what was written.
type stageMetrics struct {
	records   *prometheus.CounterVec // outcome
	rejects   *prometheus.CounterVec // reason
	batches   *prometheus.CounterVec // platform
	tokens    *prometheus.CounterVec // platform
	tombstone prometheus.Counter
	duration  prometheus.Histogram
	plans     *prometheus.CounterVec // result
}

func newMetrics(reg prometheus.Registerer) (*stageMetrics, error) {
	ns, sub := metrics.Namespace, "planner"
	m := &stageMetrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_total",
			Help: "Audience records of committed plans by outcome: planned, rejected or duplicate."}, []string{"outcome"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rejects_total",
			Help: "Audience records sent to the rejects topic by committed plans, by reason."}, []string{"reason"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_written_total",
			Help: "Batch records written by committed plans, by platform."}, []string{"platform"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "tokens_planned_total",
			Help: "Device tokens planned by committed plans, by platform."}, []string{"platform"}),
		tombstone: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "tombstones_total",
			Help: "Tombstones written for batches of a previous plan that a re-plan no longer has."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "plan_duration_seconds",
			Help:    "Time to plan one campaign, from reading the catalog to the committed transaction.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320}}),
		plans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "plans_total",
			Help: "Plans finished, by result: ok or error."}, []string{"result"}),
	}
	if err := errors.Join(metrics.Register(reg, &m.records), metrics.Register(reg, &m.rejects), metrics.Register(reg, &m.batches),
		metrics.Register(reg, &m.tokens), metrics.Register(reg, &m.tombstone), metrics.Register(reg, &m.duration),
		metrics.Register(reg, &m.plans)); err != nil {
		return nil, err
	}
	for _, o := range []string{"planned", "rejected", "duplicate"} {
		m.records.WithLabelValues(o)
	}
	for _, p := range []push.Platform{push.IOS, push.Android} {
		m.batches.WithLabelValues(string(p))
		m.tokens.WithLabelValues(string(p))
	}
	m.plans.WithLabelValues("ok")
	m.plans.WithLabelValues("error")
	return m, nil
}
