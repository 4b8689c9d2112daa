package fcm

import (
	"sync"
	"time"
)

// workerIdle is how long an idle worker waits for the next chunk before it
// exits. Chunks of a campaign follow each other within milliseconds, so
// during a send the workers live on; between campaigns they go away.
const workerIdle = 10 * time.Second

// pool keeps the goroutines that send alive from one chunk to the next.
// firebase's SendEach starts 50 new goroutines per call, and each grows its
// stack through JSON encoding, HTTP/2 and TLS on its first message: in a CPU
// profile of the Android sender under load, runtime.copystack was 14% of the
// process. A worker of the pool grows its stack once.
//
// The pool is elastic, not a cap: when no worker is idle, run starts a new
// one, so concurrency is what SendBatch asks for.
type pool struct {
	jobs      chan *chunk // unbuffered: a send succeeds only if a worker waits
	done      chan struct{}
	closeOnce sync.Once
}

func newPool() *pool {
	return &pool{jobs: make(chan *chunk), done: make(chan struct{})}
}

// run has one worker call c.work: an idle one if any, else a new one.
func (p *pool) run(c *chunk) {
	select {
	case p.jobs <- c:
	default:
		go p.worker(c)
	}
}

func (p *pool) worker(c *chunk) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.work()
		idle.Reset(workerIdle) // Go >= 1.23 timers: no stale tick after Reset
		select {
		case c = <-p.jobs:
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}

// close lets idle workers exit; work handed over later still runs.
func (p *pool) close() { p.closeOnce.Do(func() { close(p.done) }) }
