package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/wire"
)

// Opts returns the connection options for cfg: seeds, client id, dial
// timeout, TLS and SASL, no producer linger, and franz-go's own log lines
// into slog at cfg.LogLevel (see clientLogger). Stages add their own
// producer/consumer options.
//
// franz-go lingers 10 ms by default before sending a record that is not
// flushed. Most of owlpost's records are few and on a critical path (the
// trigger record, status, results), where that is 10 ms added to the time
// from GO to the first notification; the clients that write in bulk (the
// planner, the audience generator) set their own linger.
func Opts(cfg *config.Config) ([]kgo.Opt, error) {
	k := cfg.Kafka
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.ClientID(k.ClientID),
		kgo.DialTimeout(k.DialTimeout),
		kgo.ProducerLinger(0),
		// franz-go's defaults, stated because the guarantees rest on them: a
		// write is acknowledged once every in-sync replica has it (at least
		// topics.min_insync_replicas, or the broker refuses it), and the
		// producer is idempotent (a retry after a leader change is not a
		// second copy). Transactional producers require both.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.WithLogger(newClientLogger(cfg)),
	}
	if k.TLS.Enabled {
		tc, err := k.TLS.Client()
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch k.SASL.Mechanism {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("kafka: unsupported SASL mechanism %q", k.SASL.Mechanism)
	}
	return opts, nil
}

// NewClient builds a client from cfg plus extra options.
func NewClient(cfg *config.Config, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := Opts(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client: %w", err)
	}
	return cl, nil
}

// Headers converts wire headers to record headers.
func Headers(hs []wire.Header) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
	}
	return out
}

// WireHeaders converts record headers to wire headers.
func WireHeaders(r *kgo.Record) []wire.Header {
	out := make([]wire.Header, len(r.Headers))
	for i, h := range r.Headers {
		out[i] = wire.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

// Header returns the value of the first header named key, or nil.
func Header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}
