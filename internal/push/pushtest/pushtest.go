// Package pushtest holds the checks both provider adapters' tests run
// against the simulator: the contract of push.Sender, stated once.
package pushtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
)

// Transports are the adapters' two HTTP/2 clients; the tests that talk to
// the simulator (testenv.StartPushSim) run with each.
var Transports = []string{push.TransportLibrary, push.TransportFast}

// Outcome is what sending to one token must come to.
type Outcome struct {
	Name   string
	Token  string
	Class  push.Class
	Reason string
	Wait   time.Duration // push.RetryWait
}

// Want is the Outcome of sending to token, for tables.
func Want(name, token string, class push.Class, reason string, wait time.Duration) Outcome {
	return Outcome{Name: name, Token: token, Class: class, Reason: reason, Wait: wait}
}

// CheckOutcomes sends msg to every outcome's token in one batch and checks
// each result, in order: class, reason, retry wait, and for an accepted
// token the provider's id (acceptedID reports whether it is well formed).
func CheckOutcomes(t *testing.T, s push.Sender, msg *push.Message, want []Outcome, acceptedID func(id string) bool) []push.Result {
	t.Helper()
	tokens := make([]string, len(want))
	for i, o := range want {
		tokens[i] = o.Token
	}
	res := s.SendBatch(context.Background(), msg, tokens)
	if len(res) != len(want) {
		t.Fatalf("got %d results, want %d", len(res), len(want))
	}
	for i, o := range want {
		t.Run(o.Name, func(t *testing.T) {
			r := res[i]
			if r.Token != o.Token {
				t.Fatalf("result %d is for token %q, want %q (order)", i, r.Token, o.Token)
			}
			if got := push.Classify(r.Err); got != o.Class {
				t.Fatalf("class = %v (err %v), want %v", got, r.Err, o.Class)
			}
			if got := push.Reason(r.Err); got != o.Reason {
				t.Errorf("reason = %q, want %q", got, o.Reason)
			}
			if got := push.RetryWait(r.Err); got != o.Wait {
				t.Errorf("retry wait = %v, want %v", got, o.Wait)
			}
			if o.Class == push.ClassOK && !acceptedID(r.ID) {
				t.Errorf("accepted with id %q", r.ID)
			}
		})
	}
	return res
}

// CheckExactlyOnce sends msg (campaign msg.CampaignID) to tokens, all
// distinct and valid, and checks that each was answered in order without
// error and that the simulator accepted each exactly once.
func CheckExactlyOnce(t *testing.T, s push.Sender, sim *pushsim.Server, msg *push.Message, tokens []string) {
	t.Helper()
	res := s.SendBatch(context.Background(), msg, tokens)
	for i, r := range res {
		if r.Token != tokens[i] || r.Err != nil || r.ID == "" {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	n := int64(len(tokens))
	if st := sim.Stats(msg.CampaignID); st.Accepted != n || st.DistinctTokens != n || st.DuplicateTokens != 0 {
		t.Fatalf("simulator stats = %+v, want %d accepted exactly once", st, n)
	}
}

// CheckCanceled sends with a context already canceled: every token must
// come back with context.Canceled, classified retryable, and nothing may
// reach the simulator.
func CheckCanceled(t *testing.T, s push.Sender, sim *pushsim.Server, msg *push.Message, tokens []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, r := range s.SendBatch(ctx, msg, tokens) {
		if !errors.Is(r.Err, context.Canceled) || !push.IsRetryable(r.Err) {
			t.Errorf("token %s: %v, want context.Canceled (retryable)", r.Token, r.Err)
		}
	}
	if st := sim.Stats(msg.CampaignID); st.Accepted != 0 {
		t.Errorf("accepted %d after cancel", st.Accepted)
	}
}
