package bench

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/wire"
)

// ResultsWatcher follows the results topic in the background and sums the
// result records per campaign, so a phase knows when a stage has reported
// every token (the simulator's count says when they were sent).
type ResultsWatcher struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	sums map[string]*ResultSum
}

// ResultSum totals the result records of one campaign.
type ResultSum struct {
	Batches, Tokens, Accepted, Invalid, Failed, Expired, Aborted, Retries int
}

// Done is the number of tokens with a final outcome.
func (s ResultSum) Done() int { return s.Accepted + s.Invalid + s.Failed + s.Expired + s.Aborted }

// WatchResults starts following the stack's results topic from its start.
func WatchResults(s *Stack) (*ResultsWatcher, error) {
	opts, err := kafka.Opts(s.Cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(s.Cfg.Topics.Results),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &ResultsWatcher{cl: cl, cancel: cancel, done: make(chan struct{}), sums: map[string]*ResultSum{}}
	go w.run(ctx)
	return w, nil
}

func (w *ResultsWatcher) run(ctx context.Context) {
	defer close(w.done)
	for ctx.Err() == nil {
		fs := w.cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			var res wire.Result
			if wire.Decode(r.Value, &res) != nil || res.Kind != wire.KindFire {
				return
			}
			w.mu.Lock()
			s := w.sums[res.Campaign]
			if s == nil {
				s = &ResultSum{}
				w.sums[res.Campaign] = s
			}
			s.Batches++
			s.Tokens += res.Tokens
			s.Accepted += res.Accepted
			s.Invalid += res.Invalid
			s.Failed += res.Failed
			s.Expired += res.Expired
			s.Aborted += res.Aborted
			s.Retries += res.Retries
			w.mu.Unlock()
		})
	}
}

// Sum returns the totals of campaign so far.
func (w *ResultsWatcher) Sum(campaign string) ResultSum {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.sums[campaign]; s != nil {
		return *s
	}
	return ResultSum{}
}

// Close stops following.
func (w *ResultsWatcher) Close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}
