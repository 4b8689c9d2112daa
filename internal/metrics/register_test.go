package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRegisterReturnsTheRegisteredCollector: a second collector with the same
// description is replaced by the registered one, so its increments are
// exported; a conflicting one is an error; a nil registry is a no-op.
func TestRegisterReturnsTheRegisteredCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	newCounter := func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "owlpost_test_total", Help: "test"}, []string{"k"})
	}
	first, second := newCounter(), newCounter()
	if err := Register(reg, &first); err != nil {
		t.Fatal(err)
	}
	orig := second
	if err := Register(reg, &second); err != nil {
		t.Fatalf("second registration: %v", err)
	}
	if second != first || second == orig {
		t.Fatal("second registration kept its own collector, not the registered one")
	}
	second.WithLabelValues("a").Inc()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Fatalf("gathered %v (%v), want owlpost_test_total{k=a} 1", mfs, err)
	}

	// Same name, other labels: a real conflict.
	clash := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "owlpost_test_total", Help: "test"}, []string{"other"})
	if err := Register(reg, &clash); err == nil {
		t.Fatal("conflicting registration: want an error")
	}
	// Same description, another type: an error, not a silent copy.
	var asCollector prometheus.Collector = newCounter()
	if err := Register(reg, &asCollector); err != nil || asCollector != prometheus.Collector(first) {
		t.Fatalf("as a Collector: got %v, %v; want the registered collector", asCollector, err)
	}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "owlpost_test_total", Help: "test"}, []string{"k"})
	if err := Register(reg, &gauge); err == nil {
		t.Fatal("registered a gauge where a counter is: want an error")
	}

	if err := Register(nil, &orig); err != nil || orig == first {
		t.Fatalf("nil registry: got %v, collector replaced=%v", err, orig == first)
	}
}

// A collector registered again through Replacing takes the place of the
// first one: what the new one records is exported, and nothing panics.
func TestReplacingReplaces(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "owlpost_test_replaced_total", Help: "test"}
	first, second := prometheus.NewCounter(opts), prometheus.NewCounter(opts)
	r := Replacing(reg)
	r.MustRegister(first)
	r.MustRegister(second)
	first.Add(1)
	second.Add(2)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 2 {
		t.Fatalf("gathered %v, want the second counter's 2", mfs)
	}
}
