package pushsim

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics live on a private registry, served by the admin API's /metrics.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	accepted *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "owlpost_pushsim_requests_total",
			Help: "Requests answered by the push simulator, by provider (apns, fcm, oauth2), HTTP status and reason (APNs reason or FCM errorCode, empty on success).",
		}, []string{"provider", "status", "reason"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "owlpost_pushsim_accepted_total",
			Help: "Notifications accepted (and recorded) by the push simulator, by provider.",
		}, []string{"provider"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "owlpost_pushsim_request_duration_seconds",
			Help:    "Time the push simulator took to answer a request, injected latency included, by provider.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"provider"}),
	}
	m.reg.MustRegister(m.requests, m.accepted, m.duration)
	return m
}

// observe records one answered request.
func (m *metrics) observe(provider string, status int, reason string, start time.Time) {
	m.requests.WithLabelValues(provider, strconv.Itoa(status), reason).Inc()
	m.duration.WithLabelValues(provider).Observe(time.Since(start).Seconds())
}
