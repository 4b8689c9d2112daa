package planner

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
)

// TransactionTimeout bounds one plan's Kafka transaction. It is generous
// because a plan of millions of tokens is written in one transaction; the
// broker's transaction.max.timeout.ms (15 min by default) must allow it.
const TransactionTimeout = 5 * time.Minute

// Deps are the planner's injected dependencies; both may be nil.
type Deps struct {
	Registry *prometheus.Registry
	Log      *slog.Logger
}

// Progress is a snapshot of a running plan.
type Progress struct {
	// Phase is "reading", "writing", "committing" or "done".
	Phase      string
	Records    int64 // audience records read
	Rejected   int64
	Duplicates int64 // known once reading is done
	Batches    int64 // batch records handed to the producer
	// TotalBatches is known once reading is done.
	TotalBatches int64
	Elapsed      time.Duration
}

// Stage is the planner: it turns a campaign's audience topic into the
// batches of the batches topic and a manifest. See the package doc.
type Stage struct {
	cfg *config.Config
	log *slog.Logger
	reg *prometheus.Registry
	m   *stageMetrics
	cl  *kgo.Client
	adm *kadm.Client
	cat *catalog.Catalog
	// mu serializes plans: a plan uses all cores, and its Kafka clients
	// register their metrics under fixed names.
	mu sync.Mutex
}

// New builds a planner from cfg. It connects lazily: the first Kafka request
// happens in Plan or Run.
func New(cfg *config.Config, deps Deps) (*Stage, error) {
	if cfg == nil {
		return nil, errors.New("planner: nil config")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("planner: metrics: %w", err)
	}
	cl, err := kafka.NewClient(cfg, metrics.KafkaHooks(reg, "planner"))
	if err != nil {
		return nil, fmt.Errorf("planner: %w", err)
	}
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("planner: %w", err)
	}
	adm := kadm.NewClient(cl)
	// The lag of the planner's own group on the control topic (Group),
	// computed at scrape time; a second planner in one registry reuses the first's.
	lag := metrics.NewLagCollector(adm, cfg.Topics.Control+".planner")
	if err := metrics.Register(reg, &lag); err != nil {
		cl.Close()
		return nil, fmt.Errorf("planner: lag metrics: %w", err)
	}
	return &Stage{cfg: cfg, log: log.With("stage", "planner"), reg: reg, m: m, cl: cl, adm: adm, cat: cat}, nil
}

// Close releases the Kafka client. Call it after Run and Plan have returned.
func (s *Stage) Close() error {
	s.cl.Close()
	return nil
}

// transactionalID is one per campaign (and per deployment, through the plans
// topic name): a second planner of the same campaign, in this process or
// another, fences the first, whose commit then fails, so two plans of one
// campaign never interleave; and a crashed planner's open transaction is
// aborted as soon as the campaign is planned again, instead of holding back
// read_committed readers until it times out.
func (s *Stage) transactionalID(campaign string) string {
	return "owlpost-planner/" + s.cfg.Topics.Plans + "/" + campaign
}
