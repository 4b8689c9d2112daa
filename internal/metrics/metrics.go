package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/owlpost/owlpost/internal/kafka"
)

// Namespace prefixes every owlpost metric.
const Namespace = "owlpost"

// NewRegistry returns a private registry with the Go and process collectors.
// Stages register their own collectors on it; nothing uses the global one.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// KafkaHooks returns the franz-go client option that exports the client's
// metrics through kprom as owlpost_kafka_* with a constant label
// client=<name>, so several clients of one process share the registry.
func KafkaHooks(reg prometheus.Registerer, client string) kgo.Opt {
	m := kprom.NewMetrics(Namespace+"_kafka",
		kprom.Registerer(reg),
		kprom.WithStaticLabel(prometheus.Labels{"client": client}),
	)
	return kgo.WithHooks(m)
}

// Health answers /healthz (the process works) and /readyz (ready for its job:
// prepared and connected). A nil func is always healthy/ready.
type Health struct {
	Live  func() error
	Ready func() error
	// Pprof mounts net/http/pprof's handlers under /debug/pprof/ on the same
	// listener (config metrics.pprof; off by default).
	Pprof bool
}

// Serve serves /metrics, /healthz and /readyz on addr until ctx is done. The
// stage's ready gauge (owlpost_stage_ready{stage}) follows Ready.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, stage string, h Health, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, reg, stage, h, log)
}

// ServeListener is Serve on an existing listener (tests use port 0).
func ServeListener(ctx context.Context, ln net.Listener, reg *prometheus.Registry, stage string, h Health, log *slog.Logger) error {
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "stage_ready",
		Help:        "1 when the stage answers /readyz with 200 (prepared and connected), else 0.",
		ConstLabels: prometheus.Labels{"stage": stage},
	}, func() float64 {
		if h.Ready == nil || h.Ready() == nil {
			return 1
		}
		return 0
	})
	if err := Register(reg, &ready); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	check := func(f func() error) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			if f != nil {
				if err := f(); err != nil {
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
			}
			_, _ = w.Write([]byte("ok\n"))
		}
	}
	mux.Handle("/healthz", check(h.Live))
	mux.Handle("/readyz", check(h.Ready))
	if h.Pprof {
		// Registered on this private mux only: importing net/http/pprof also
		// registers on http.DefaultServeMux, which nothing here serves.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String(), "stage", stage, "pprof", h.Pprof)
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		return fmt.Errorf("metrics: serve: %w", err)
	}
}

// LagCollector exports consumer lag per group, topic and partition, computed
// with kadm at scrape time, as owlpost_kafka_consumergroup_lag (same labels
// as the conventional kafka_consumergroup_lag of kafka-exporter, so existing
// dashboards map 1:1) and owlpost_kafka_consumergroup_lag_sum per group and
// topic.
type LagCollector struct {
	adm     *kadm.Client
	groups  []string
	timeout time.Duration
	lag     *prometheus.Desc
	sum     *prometheus.Desc
	errs    prometheus.Counter
	mu      sync.Mutex
}

// NewLagCollector returns a collector for groups; register it on the stage's registry.
func NewLagCollector(adm *kadm.Client, groups ...string) *LagCollector {
	return &LagCollector{
		adm: adm, groups: groups, timeout: 3 * time.Second,
		lag: prometheus.NewDesc(Namespace+"_kafka_consumergroup_lag",
			"Messages the group has not committed yet, per partition (end offset minus committed offset).",
			[]string{"group", "topic", "partition"}, nil),
		sum: prometheus.NewDesc(Namespace+"_kafka_consumergroup_lag_sum",
			"Lag summed over the partitions of a topic.", []string{"group", "topic"}, nil),
		errs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "kafka_lag_errors_total",
			Help: "Lag scrapes that failed (the broker was unreachable or slow)."}),
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.sum
	c.errs.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	rows, err := kafka.Lag(ctx, c.adm, c.groups...)
	if err != nil {
		c.errs.Inc()
	}
	sums := map[[2]string]int64{}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(r.Lag), r.Group, r.Topic, fmt.Sprint(r.Partition))
		sums[[2]string{r.Group, r.Topic}] += r.Lag
	}
	for k, v := range sums {
		ch <- prometheus.MustNewConstMetric(c.sum, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
	c.errs.Collect(ch)
}
