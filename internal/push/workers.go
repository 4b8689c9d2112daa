package push

import (
	"sync"
	"time"
)

// workerIdle is how long an idle worker waits for the next job before it
// exits. Batches of a campaign follow each other within milliseconds, so
// during a send the workers live on; between campaigns they go away.
const workerIdle = 10 * time.Second

// Job is one unit of work for Workers.
type Job interface{ Work() }

// Workers keeps the goroutines that talk to a provider alive from one batch
// to the next. A fresh goroutine per request starts on a small stack and
// grows it through the JSON, HTTP/2, HPACK and TLS write path every time, and
// that stack growth (runtime.copystack) is one of the largest items in the
// senders' CPU profiles (BENCHMARKS.md, "Sender workers"). A worker grows its
// stack once, as long as
// the GC does not shrink it while the worker waits on its shallow select:
// the senders run with GODEBUG=gcshrinkstackoff=1 for that (deploy/,
// scripts/demo.sh, the bench; BENCHMARKS.md, "runtime settings").
//
// The pool is elastic, not a cap: when no worker is idle, Run starts a new
// one, so concurrency stays what the adapter asks for. The adapters are its
// only users.
type Workers struct {
	jobs      chan Job // unbuffered: a hand-over succeeds only if a worker waits
	done      chan struct{}
	closeOnce sync.Once
}

// NewWorkers returns an empty pool.
func NewWorkers() *Workers {
	return &Workers{jobs: make(chan Job), done: make(chan struct{})}
}

// Run has one worker call j.Work: an idle one if any, else a new one.
func (p *Workers) Run(j Job) {
	select {
	case p.jobs <- j:
	default:
		go p.worker(j)
	}
}

func (p *Workers) worker(j Job) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		j.Work()
		idle.Reset(workerIdle) // Go >= 1.23 timers: no stale tick after Reset
		select {
		case j = <-p.jobs:
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}

// Close lets idle workers exit; work handed over later still runs.
func (p *Workers) Close() { p.closeOnce.Do(func() { close(p.done) }) }
