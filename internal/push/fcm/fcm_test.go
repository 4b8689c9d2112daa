package fcm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/push/fcm"
	"github.com/owlpost/owlpost/internal/push/pushtest"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
)

const project = testenv.SimProject

type sim struct{ *testenv.Sim }

func startSim(t testing.TB, mutate func(*pushsim.Config)) *sim {
	return &sim{testenv.StartPushSim(t, mutate)}
}

var transports = pushtest.Transports

func (s *sim) options(transport string) fcm.Options {
	return fcm.Options{Transport: transport,
		CredentialsJSON: s.ServiceAccount, Endpoint: s.FCMURL(), CAPEM: s.CACertPEM(),
		Clients: 2, Timeout: 10 * time.Second,
	}
}

func newSender(t testing.TB, opts fcm.Options) *fcm.Sender {
	t.Helper()
	s, err := fcm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// regToken is a well-formed registration token (152 chars) containing mark.
func regToken(t testing.TB, mark string) string {
	t.Helper()
	b := make([]byte, 80)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "f" + mark + ":" + hex.EncodeToString(b)[:150-len(mark)]
}

func message(campaign string) *push.Message {
	return &push.Message{
		CampaignID: campaign,
		CollapseID: campaign,
		FCM: &push.FCMMessage{
			Title: "Hi", Body: "Kick-off!", Sound: "default", ClickAction: "OPEN_GAME",
			Data:     map[string]string{"campaign_id": campaign, "deeplink": "app://game"},
			Priority: "high", TTL: 10 * time.Minute,
		},
	}
}

func TestNewValidation(t *testing.T) {
	sa, _, err := pushsim.GenerateServiceAccount(project, "https://127.0.0.1:1/token")
	if err != nil {
		t.Fatal(err)
	}
	good := fcm.Options{CredentialsJSON: sa}
	tests := []struct {
		name    string
		mutate  func(*fcm.Options)
		wantErr string
	}{
		{"service account", func(*fcm.Options) {}, ""},
		{"explicit project", func(o *fcm.Options) { o.ProjectID = "other" }, ""},
		{"no credentials", func(o *fcm.Options) { o.CredentialsJSON = nil }, "Options.CredentialsJSON"},
		{"both credentials", func(o *fcm.Options) { o.CredentialsFile = "sa.json" }, "not both"},
		{"missing file", func(o *fcm.Options) { o.CredentialsJSON = nil; o.CredentialsFile = "/nonexistent/sa.json" }, "Options.CredentialsFile"},
		{"not JSON", func(o *fcm.Options) { o.CredentialsJSON = []byte("{nope") }, "Options.CredentialsJSON"},
		{"not a service account", func(o *fcm.Options) { o.CredentialsJSON = []byte(`{"type":"authorized_user"}`) }, "Options.CredentialsJSON"},
		{"chunk too big", func(o *fcm.Options) { o.ChunkSize = 501 }, "Options.ChunkSize"},
		{"relative endpoint", func(o *fcm.Options) { o.Endpoint = "fcm/v1" }, "Options.Endpoint"},
		{"bad CA", func(o *fcm.Options) { o.CAPEM = []byte("nope") }, "Options.CAPEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mutate(&o)
			_, err := fcm.New(o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New error = %v, want it to mention %q", err, tc.wantErr)
			}
			if bytes.Contains([]byte(err.Error()), []byte("PRIVATE KEY")) {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
}

// TestSendBatchOutcomes checks the error mapping against the simulator's real
// FCM v1 answers, one token per deterministic pattern.
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
				pushtest.Want("accepted", regToken(t, "ok"), push.ClassOK, "ok", 0),
				pushtest.Want("unregistered", regToken(t, "UNREGISTERED"), push.ClassInvalidToken, "UNREGISTERED", 0),
				pushtest.Want("invalid argument", regToken(t, "INVALIDARG"), push.ClassInvalidToken, "INVALID_ARGUMENT", 0),
				pushtest.Want("malformed token", "short-token", push.ClassInvalidToken, "INVALID_ARGUMENT", 0),
				pushtest.Want("empty token", "", push.ClassInvalidToken, "empty_token", 0),
				pushtest.Want("quota exceeded", regToken(t, "QUOTA429"), push.ClassRetryable, "QUOTA_EXCEEDED", 3*time.Second),
				// firebase would retry the 503 itself; the adapter must surface it.
				pushtest.Want("unavailable", regToken(t, "UNAVAIL503"), push.ClassRetryable, "UNAVAILABLE", 3*time.Second),
				pushtest.Want("internal", regToken(t, "INTERNAL500"), push.ClassRetryable, "INTERNAL", 0),
			}
			pushtest.CheckOutcomes(t, s, message("outcomes"), tests, func(id string) bool {
				return strings.HasPrefix(id, "projects/"+project+"/messages/")
			})
			st := sm.Stats("outcomes")
			if st.Accepted != 1 || st.RejectedByReason["UNAVAILABLE"] != 1 || st.RejectedByReason["QUOTA_EXCEEDED"] != 1 {
				t.Errorf("simulator stats = %+v (one accepted, no hidden retry of UNAVAILABLE)", st)
			}
		})
	}
}

func TestPrepareFatal(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			otherSA, _, err := pushsim.GenerateServiceAccount(project, "")
			if err != nil {
				t.Fatal(err)
			}
			sm := startSim(t, nil)
			if otherSA, err = pushsim.ServiceAccountWithTokenURI(otherSA, sm.TokenURL()); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name   string
				mutate func(*fcm.Options)
				reason string // "" = only check the class
			}{
				{"service account not trusted", func(o *fcm.Options) { o.CredentialsJSON = otherSA }, "oauth2_refused"},
				{"wrong project", func(o *fcm.Options) { o.ProjectID = "someone-else" }, "PERMISSION_DENIED"},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					o := sm.options(tr)
					tc.mutate(&o)
					s := newSender(t, o)
					err := s.Prepare(context.Background())
					if !errors.Is(err, push.ErrFatal) || push.Classify(err) != push.ClassFatal {
						t.Fatalf("Prepare = %v, want fatal", err)
					}
					if tc.reason != "" && push.Reason(err) != tc.reason {
						t.Errorf("reason = %q, want %q", push.Reason(err), tc.reason)
					}
					res := s.SendBatch(context.Background(), message("fatal"), []string{regToken(t, "x")})
					if push.Classify(res[0].Err) != push.ClassFatal {
						t.Errorf("SendBatch after refused credentials: %v, want fatal", res[0].Err)
					}
				})
			}
			if st := sm.Stats("fatal"); st.Accepted != 0 {
				t.Errorf("accepted %d notifications with bad credentials", st.Accepted)
			}
		})
	}
}

// TestBatchExactlyOnce sends 500 tokens (two SendEach chunks on two clients)
// and checks the simulator saw each exactly once.
func TestBatchExactlyOnce(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			if err := s.Prepare(context.Background()); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			tokens := make([]string, 500)
			for i := range tokens {
				tokens[i] = regToken(t, "")
			}
			msg := message("once")
			msg.FCM.Silent = true
			pushtest.CheckExactlyOnce(t, s, sm.Server, msg, tokens)
		})
	}
}

func TestSendBatchCanceled(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			if err := s.Prepare(context.Background()); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			pushtest.CheckCanceled(t, s, sm.Server, message("canceled"), []string{regToken(t, "a"), regToken(t, "b")})
		})
	}
}

// TestInjectedCodes maps the FCM error codes the patterns do not cover
// (injected as a fault with probability 1) through the adapter.
func TestInjectedCodes(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			tests := []struct {
				code   string
				class  push.Class
				reason string
			}{
				{"SENDER_ID_MISMATCH", push.ClassFatal, "SENDER_ID_MISMATCH"},
				{"THIRD_PARTY_AUTH_ERROR", push.ClassFatal, "THIRD_PARTY_AUTH_ERROR"},
				{"UNSPECIFIED_ERROR", push.ClassRetryable, "INTERNAL"},
			}
			for _, tc := range tests {
				t.Run(tc.code, func(t *testing.T) {
					sm.SetFaults(pushsim.Faults{FCMRates: map[string]float64{tc.code: 1}})
					res := s.SendBatch(context.Background(), message("injected"), []string{regToken(t, "e")})
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

// TestSendBatchInvalidMessage: a message firebase refuses before sending
// (here an Android priority other than normal/high) fails every token with
// push.ErrFatal "invalid_message", whatever the context, and nothing is sent.
func TestSendBatchInvalidMessage(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			sm := startSim(t, nil)
			s := newSender(t, sm.options(tr))
			if err := s.Prepare(context.Background()); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			canceled, cancel := context.WithCancel(context.Background())
			cancel()
			tests := []struct {
				name string
				ctx  context.Context
				n    int
			}{
				{"one token", context.Background(), 1},
				{"several chunks", context.Background(), 600},
				{"canceled context", canceled, 3},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					msg := message("invalid")
					msg.FCM.Priority = "urgent"
					tokens := make([]string, tc.n)
					for i := range tokens {
						tokens[i] = regToken(t, "x")
					}
					for i, r := range s.SendBatch(tc.ctx, msg, tokens) {
						if r.Token != tokens[i] || push.Classify(r.Err) != push.ClassFatal || push.Reason(r.Err) != "invalid_message" {
							t.Fatalf("result %d = %+v (reason %q), want fatal invalid_message", i, r, push.Reason(r.Err))
						}
					}
				})
			}
			if st := sm.Stats("invalid"); st.Accepted != 0 {
				t.Errorf("accepted %d invalid messages", st.Accepted)
			}
		})
	}
}

// TestTransportErrorNotRetriedByLibrary: a Send whose connection fails
// without an HTTP answer is answered once, retryable ("network"), for the
// sender's own retry rounds; firebase would otherwise retry it 4 more times
// by itself (new connections, backing off), out of sight of the sender's
// metrics and deadline.
func TestTransportErrorNotRetriedByLibrary(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ln, accepted := closingListener(t)
			s := newSender(t, closingOptions(t, ln, tr))
			res := s.SendBatch(context.Background(), message("transport"), []string{regToken(t, "a")})
			if r := res[0]; !push.IsRetryable(r.Err) || push.Reason(r.Err) != "network" {
				t.Errorf("result %v (reason %q), want a retryable network error", r.Err, push.Reason(r.Err))
			}
			if n := accepted.Load(); n != 1 {
				t.Errorf("%d connections for one Send, want 1 (no retries inside firebase)", n)
			}
		})
	}
}

// Prepare's warm-up send is not retried inside firebase either: a silent or
// refusing endpoint costs one attempt per Prepare, and the stage's own retry
// loop (with its log line per attempt) takes over.
func TestPrepareTransportErrorNotRetriedByLibrary(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ln, accepted := closingListener(t)
			s := newSender(t, closingOptions(t, ln, tr))
			err := s.Prepare(context.Background())
			if !push.IsRetryable(err) || push.Reason(err) != "network" {
				t.Errorf("Prepare = %v (reason %q), want a retryable network error", err, push.Reason(err))
			}
			if n := accepted.Load(); n != 1 {
				t.Errorf("%d connections for one Prepare, want 1 (no retries inside firebase)", n)
			}
		})
	}
}

// closingOptions are the simulator's options (its OAuth2 token endpoint) with
// the messaging endpoint at ln and one client.
func closingOptions(t *testing.T, ln net.Listener, transport string) fcm.Options {
	o := startSim(t, nil).options(transport)
	o.Clients = 1
	o.Endpoint = "https://" + ln.Addr().String() + "/v1"
	return o
}

// closingListener accepts connections and closes them at once (no TLS, no
// HTTP answer), counting them.
func closingListener(t *testing.T) (net.Listener, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	return ln, &accepted
}
