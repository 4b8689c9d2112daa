package apns_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/push/apns"
	"github.com/owlpost/owlpost/internal/push/pushtest"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
)

const (
	keyID  = testenv.SimKeyID
	teamID = testenv.SimTeamID
	topic  = testenv.SimTopic
)

type sim struct{ *testenv.Sim }

func startSim(t testing.TB, mutate func(*pushsim.Config)) *sim {
	return &sim{testenv.StartPushSim(t, mutate)}
}

var transports = pushtest.Transports

func (s *sim) options(transport string) apns.Options {
	return apns.Options{Transport: transport,
		Host: s.APNsURL(), KeyPEM: s.P8, KeyID: keyID, TeamID: teamID,
		Topic: topic, CAPEM: s.CACertPEM(), Connections: 2, Timeout: 10 * time.Second,
	}
}

func newSender(t testing.TB, opts apns.Options) *apns.Sender {
	t.Helper()
	s, err := apns.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// hexToken is a well-formed device token: prefix followed by random hex.
func hexToken(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)[len(prefix):]
}

func message(campaign string) *push.Message {
	return &push.Message{
		CampaignID: campaign,
		CollapseID: campaign,
		APNs: &push.APNsMessage{
			Payload:  []byte(`{"aps":{"alert":{"title":"Hi","body":"Kick-off!"},"sound":"default"}}`),
			PushType: "alert",
			Priority: 10,
		},
	}
}

func TestNewValidation(t *testing.T) {
	p8, _, err := pushsim.GenerateAPNsKey()
	if err != nil {
		t.Fatal(err)
	}
	good := apns.Options{KeyPEM: p8, KeyID: keyID, TeamID: teamID, Topic: topic}
	tests := []struct {
		name    string
		mutate  func(*apns.Options)
		wantErr string // substring; "" means success
	}{
		{"token auth", func(*apns.Options) {}, ""},
		{"development host", func(o *apns.Options) { o.Host = "development" }, ""},
		{"missing topic", func(o *apns.Options) { o.Topic = "" }, "Options.Topic"},
		{"no credentials", func(o *apns.Options) { o.KeyPEM = nil }, "no credentials"},
		{"both auths", func(o *apns.Options) { o.CertFile = "x.p12" }, "not both"},
		{"missing key id", func(o *apns.Options) { o.KeyID = "" }, "Options.KeyID"},
		{"garbage key", func(o *apns.Options) { o.KeyPEM = []byte("not a key") }, "Options.KeyPEM"},
		{"missing key file", func(o *apns.Options) { o.KeyPEM = nil; o.KeyFile = "/nonexistent/AuthKey.p8" }, "Options.KeyFile"},
		{"missing cert file", func(o *apns.Options) { o.KeyPEM = nil; o.CertFile = "/nonexistent/cert.p12" }, "Options.CertFile"},
		{"http host", func(o *apns.Options) { o.Host = "http://127.0.0.1:1" }, "Options.Host"},
		{"bad CA", func(o *apns.Options) { o.CAPEM = []byte("nope") }, "Options.CAPEM"},
		{"negative connections", func(o *apns.Options) { o.Connections = -1 }, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mutate(&o)
			_, err := apns.New(o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want it to mention %q", err, tc.wantErr)
			}
			if bytes.Contains([]byte(err.Error()), p8[30:60]) {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
}

// TestSendBatchOutcomes checks the error mapping against the simulator's real
// HTTP/2 answers, one token per deterministic pattern.
func TestSendBatchOutcomes(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, func(c *pushsim.Config) { c.Faults.RetryAfter = 3 * time.Second })
			s := newSender(t, sm.options(tr))
			ctx := context.Background()
			if err := s.Prepare(ctx); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			tests := []pushtest.Outcome{
				pushtest.Want("accepted", hexToken(t, "a0"), push.ClassOK, "ok", 0),
				pushtest.Want("unregistered", hexToken(t, "dead0410"), push.ClassInvalidToken, "Unregistered", 0),
				pushtest.Want("bad token pattern", hexToken(t, "dead0400"), push.ClassInvalidToken, "BadDeviceToken", 0),
				pushtest.Want("malformed token", "not-a-device-token", push.ClassInvalidToken, "BadDeviceToken", 0),
				pushtest.Want("too many requests", hexToken(t, "dead0429"), push.ClassRetryable, "TooManyRequests", 3*time.Second),
				pushtest.Want("unavailable", hexToken(t, "dead0503"), push.ClassRetryable, "ServiceUnavailable", 3*time.Second),
				pushtest.Want("internal error", hexToken(t, "dead0500"), push.ClassRetryable, "InternalServerError", 0),
			}
			pushtest.CheckOutcomes(t, s, message("outcomes"), tests, func(id string) bool { return id != "" })
			// The 429 pattern answers once: a second send (the sender's retry) goes through.
			again := s.SendBatch(ctx, message("outcomes"), []string{tests[4].Token})
			if again[0].Err != nil {
				t.Errorf("second send of 429 token: %v", again[0].Err)
			}
			st := sm.Stats("outcomes")
			if st.Accepted != 2 || st.RejectedByReason["Unregistered"] != 1 || st.RejectedByReason["TooManyRequests"] != 1 {
				t.Errorf("simulator stats = %+v", st)
			}
		})
	}
}

func TestRejectedNotification(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			msg := message("too-large")
			msg.APNs.Payload = []byte(`{"aps":{"alert":"` + strings.Repeat("x", 5000) + `"}}`)
			res := s.SendBatch(context.Background(), msg, []string{hexToken(t, "b1")})
			if c := push.Classify(res[0].Err); c != push.ClassRejected || push.Reason(res[0].Err) != "PayloadTooLarge" {
				t.Fatalf("got %v %q (%v), want rejected PayloadTooLarge", c, push.Reason(res[0].Err), res[0].Err)
			}
		})
	}
}

func TestPrepareFatal(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			otherP8, _, err := pushsim.GenerateAPNsKey()
			if err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name   string
				mutate func(*apns.Options)
				reason string
			}{
				{"wrong JWT key", func(o *apns.Options) { o.KeyPEM = otherP8 }, "InvalidProviderToken"},
				{"wrong key id", func(o *apns.Options) { o.KeyID = "ZZZ999ZZZZ" }, "InvalidProviderToken"},
				{"wrong topic", func(o *apns.Options) { o.Topic = "com.example.other" }, "TopicDisallowed"},
			}
			sm := startSim(t, nil)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					o := sm.options(tr)
					tc.mutate(&o)
					s := newSender(t, o)
					err := s.Prepare(context.Background())
					if !errors.Is(err, push.ErrFatal) || push.Classify(err) != push.ClassFatal {
						t.Fatalf("Prepare = %v, want fatal", err)
					}
					if got := push.Reason(err); got != tc.reason {
						t.Errorf("reason = %q, want %q", got, tc.reason)
					}
					// A batch sent anyway is refused as fatal for every token.
					res := s.SendBatch(context.Background(), message("fatal"), []string{hexToken(t, "c1"), hexToken(t, "c2")})
					for _, r := range res {
						if push.Classify(r.Err) != push.ClassFatal {
							t.Errorf("token %s: %v, want fatal", r.Token, r.Err)
						}
					}
				})
			}
			if st := sm.Stats("fatal"); st.Accepted != 0 {
				t.Errorf("accepted %d notifications with bad credentials", st.Accepted)
			}
		})
	}
}

// TestBatchExactlyOnce sends 1000 tokens over 4 connections with bounded
// concurrency and checks the simulator saw each exactly once.
func TestBatchExactlyOnce(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			o := sm.options(tr)
			o.Connections = 4
			o.Concurrency = 200
			s := newSender(t, o)
			if err := s.Prepare(context.Background()); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			tokens := make([]string, 1000)
			for i := range tokens {
				tokens[i] = hexToken(t, "")
			}
			msg := message("once")
			msg.APNs.Payload = []byte(`{"aps":{"content-available":1}}`)
			msg.APNs.PushType = "background"
			msg.APNs.Priority = 5
			pushtest.CheckExactlyOnce(t, s, sm.Server, msg, tokens)
		})
	}
}

func TestSendBatchCanceled(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			pushtest.CheckCanceled(t, s, sm.Server, message("canceled"), []string{hexToken(t, "d1"), hexToken(t, "d2")})
		})
	}
}

// TestInjectedReasons maps every other reason the simulator can answer with
// (injected as a fault with probability 1) through the adapter.
func TestInjectedReasons(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			tests := []struct {
				reason string
				class  push.Class
			}{
				{"ExpiredToken", push.ClassInvalidToken},
				{"DeviceTokenNotForTopic", push.ClassInvalidToken},
				{"Shutdown", push.ClassRetryable},
				{"IdleTimeout", push.ClassRetryable},
				{"TooManyProviderTokenUpdates", push.ClassRetryable},
				{"ExpiredProviderToken", push.ClassFatal},
				{"BadCertificateEnvironment", push.ClassFatal},
				{"Forbidden", push.ClassFatal},
				{"BadTopic", push.ClassFatal},
				{"BadPath", push.ClassFatal},
				{"BadCollapseId", push.ClassRejected},
				{"BadExpirationDate", push.ClassRejected},
				{"BadPriority", push.ClassRejected},
				{"InvalidPushType", push.ClassRejected},
			}
			for _, tc := range tests {
				t.Run(tc.reason, func(t *testing.T) {
					sm.SetFaults(pushsim.Faults{APNsRates: map[string]float64{tc.reason: 1}})
					res := s.SendBatch(context.Background(), message("injected"), []string{hexToken(t, "e1")})
					if got := push.Classify(res[0].Err); got != tc.class {
						t.Fatalf("class = %v (err %v), want %v", got, res[0].Err, tc.class)
					}
					if got := push.Reason(res[0].Err); got != tc.reason {
						t.Errorf("reason = %q, want %q", got, tc.reason)
					}
				})
			}
		})
	}
}

// TestSendBatchTimeout checks where Options.Timeout applies: a slow answer
// is a retryable "timeout", and with bounded concurrency each request gets
// its own deadline (four 700 ms requests one after the other all succeed
// under a 2 s timeout, which a single deadline for the batch would not allow).
func TestSendBatchTimeout(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			tests := []struct {
				name        string
				latency     time.Duration
				timeout     time.Duration
				concurrency int
				tokens      int
				wantOK      bool
			}{
				{"all at once, slow answers time out", 3 * time.Second, 200 * time.Millisecond, 0, 3, false},
				{"one at a time, a deadline per request", 700 * time.Millisecond, 2 * time.Second, 1, 4, true},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					sm := startSim(t, func(c *pushsim.Config) { c.Latency = tc.latency })
					o := sm.options(tr)
					o.Timeout, o.Concurrency = tc.timeout, tc.concurrency
					s := newSender(t, o)
					tokens := make([]string, tc.tokens)
					for i := range tokens {
						tokens[i] = hexToken(t, "")
					}
					for i, r := range s.SendBatch(context.Background(), message("timeout"), tokens) {
						switch {
						case r.Token != tokens[i]:
							t.Errorf("result %d is for token %s", i, r.Token)
						case tc.wantOK && (r.Err != nil || r.ID == ""):
							t.Errorf("result %d = %+v, want accepted", i, r)
						case !tc.wantOK && (push.Classify(r.Err) != push.ClassRetryable || push.Reason(r.Err) != "timeout"):
							t.Errorf("result %d: %v (reason %q), want a retryable timeout", i, r.Err, push.Reason(r.Err))
						}
					}
				})
			}
		})
	}
}

// TestSendBatchReusesWorkers sends many batches one after the other and
// concurrently through one Sender (its workers are reused between batches)
// and checks every token arrived exactly once with its own result.
func TestSendBatchReusesWorkers(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			const batches, size = 20, 50
			errc := make(chan error, batches)
			for g := range 2 {
				go func() {
					for range batches / 2 {
						tokens := make([]string, size)
						for i := range tokens {
							tokens[i] = hexToken(t, "")
						}
						var err error
						for i, r := range s.SendBatch(context.Background(), message("reuse"), tokens) {
							if err == nil && (r.Token != tokens[i] || r.Err != nil || r.ID == "") {
								err = fmt.Errorf("goroutine %d: result %d = %+v", g, i, r)
							}
						}
						errc <- err
					}
				}()
			}
			for range batches {
				if err := <-errc; err != nil {
					t.Error(err)
				}
			}
			st := sm.Stats("reuse")
			if st.Accepted != batches*size || st.DistinctTokens != batches*size || st.DuplicateTokens != 0 {
				t.Fatalf("simulator stats = %+v, want %d accepted exactly once", st, batches*size)
			}
		})
	}
}
