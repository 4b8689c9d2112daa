package apns

import (
	"sync"
	"time"
)

// workerIdle is how long an idle worker waits for the next batch before it
// exits. Batches of a campaign follow each other within milliseconds, so
// during a send the workers live on; between campaigns they go away.
const workerIdle = 10 * time.Second

// pool keeps the goroutines that push alive from one batch to the next. A
// fresh goroutine per token starts on a small stack and grows it through the
// HTTP/2, HPACK and TLS write path on every push: in a CPU profile of the
// sender under load, runtime.copystack alone was 18% of the process. A
// worker of the pool grows its stack once.
//
// The pool is elastic, not a cap: when no worker is idle, run starts a new
// one, so concurrency is what SendBatch asks for, as before.
type pool struct {
	jobs      chan *batch // unbuffered: a send succeeds only if a worker waits
	done      chan struct{}
	closeOnce sync.Once
}

func newPool() *pool {
	return &pool{jobs: make(chan *batch), done: make(chan struct{})}
}

// run has one worker call b.work: an idle one if any, else a new one.
func (p *pool) run(b *batch) {
	select {
	case p.jobs <- b:
	default:
		go p.worker(b)
	}
}

func (p *pool) worker(b *batch) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		b.work()
		idle.Reset(workerIdle) // Go >= 1.23 timers: no stale tick after Reset
		select {
		case b = <-p.jobs:
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}

// close lets idle workers exit; work handed over later still runs.
func (p *pool) close() { p.closeOnce.Do(func() { close(p.done) }) }
