package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers *c on reg. If a collector with the same description is
// already registered (two stages, or a stage and the control API, in one
// process share a registry), it sets *c to that collector instead, so what
// the caller records is what /metrics exports. A nil reg registers nothing.
// Registering several collectors: errors.Join(Register(reg, &a), Register(reg, &b)).
func Register[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	if reg == nil {
		return nil
	}
	err := reg.Register(*c)
	if err == nil {
		return nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if ex, ok := are.ExistingCollector.(C); ok {
			*c = ex
			return nil
		}
	}
	return fmt.Errorf("metrics: register: %w", err)
}

// Replacing returns reg with a MustRegister that replaces a collector
// already registered with the same description instead of panicking: for a
// Kafka client's kprom collectors when the client is re-created under the
// same name (a fanout partition's producer after a rebalance, whose
// predecessor has not unregistered yet). Other errors are dropped: metrics
// never take a stage down, and the client works without them.
func Replacing(reg prometheus.Registerer) prometheus.Registerer { return replacing{reg} }

type replacing struct{ prometheus.Registerer }

func (r replacing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		err := r.Register(c)
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			r.Unregister(are.ExistingCollector)
			_ = r.Register(c)
		}
	}
}
