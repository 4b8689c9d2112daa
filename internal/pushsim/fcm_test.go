package pushsim

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

func isQuotaExceeded(err error) bool { return messaging.IsQuotaExceeded(err) }

func TestFCMResponses(t *testing.T) {
	sim := startSim(t, nil)
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	ctx := context.Background()

	bigData := androidMsg(fcmToken("big", 1), "c-fcm")
	bigData.Data = map[string]string{"blob": strings.Repeat("x", 4100)}
	byData := &messaging.Message{Token: fcmToken("bydata", 1), Data: map[string]string{"campaign_id": "c-fcm"}}

	tests := []struct {
		name  string
		msg   *messaging.Message
		check func(error) bool // nil = success expected
	}{
		{"accepted", androidMsg(fcmToken("ok", 1), "c-fcm"), nil},
		{"accepted, campaign from data", byData, nil},
		{"unregistered", androidMsg(fcmToken("UNREGISTERED", 1), "c-fcm"), messaging.IsUnregistered},
		{"invalid argument pattern", androidMsg(fcmToken("INVALIDARG", 1), "c-fcm"), messaging.IsInvalidArgument},
		{"token not FCM-shaped", androidMsg("short-token", "c-fcm"), messaging.IsInvalidArgument},
		{"token with bad chars", androidMsg(strings.Repeat("a", 120)+"!", "c-fcm"), messaging.IsInvalidArgument},
		{"message too big", bigData, messaging.IsInvalidArgument},
		{"internal once", androidMsg(fcmToken("INTERNAL500", 1), "c-fcm"), messaging.IsInternal},
		{"internal then accepted", androidMsg(fcmToken("INTERNAL500", 1), "c-fcm"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, err := mc.Send(ctx, tc.msg)
			if tc.check == nil {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				if !strings.HasPrefix(name, "projects/"+testProject+"/messages/") {
					t.Errorf("name %q", name)
				}
				return
			}
			if err == nil || !tc.check(err) {
				t.Fatalf("got error %v, not of the expected class", err)
			}
		})
	}
	st := sim.Stats("c-fcm")
	if st.Accepted != 3 || st.ByPlatform["android"] != 3 || st.RejectedByReason["UNREGISTERED"] != 1 ||
		st.RejectedByReason["INVALID_ARGUMENT"] != 4 || st.RejectedByReason["INTERNAL"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFCMQuotaRetryAfter(t *testing.T) {
	sim := startSim(t, nil)
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	ctx := context.Background()
	tok := fcmToken("QUOTA429", 1)
	_, err := mc.Send(ctx, androidMsg(tok, "c-quota"))
	if !messaging.IsQuotaExceeded(err) {
		t.Fatalf("first send: %v, want QUOTA_EXCEEDED", err)
	}
	if resp := errorutils.HTTPResponse(err); resp == nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("response %+v, want 429 with Retry-After: 1", resp)
	}
	if _, err := mc.Send(ctx, androidMsg(tok, "c-quota")); err != nil {
		t.Fatalf("second send: %v", err)
	}
}

func TestFCMUnavailableRetriedByFirebase(t *testing.T) {
	sim := startSim(t, nil)
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	// firebase retries 503 by itself: two hidden 503s, then accepted.
	if _, err := mc.Send(context.Background(), androidMsg(fcmToken("UNAVAIL503", 1), "c-unavail")); err != nil {
		t.Fatalf("send: %v", err)
	}
	st := sim.Stats("c-unavail")
	if st.Accepted != 1 || st.RejectedByReason["UNAVAILABLE"] != 2 {
		t.Fatalf("stats %+v, want 1 accepted after 2 UNAVAILABLE", st)
	}
}

func TestFCMAuthAndProject(t *testing.T) {
	sim := startSim(t, nil)
	ctx := context.Background()

	t.Run("wrong project", func(t *testing.T) {
		mc := sim.fcmClient(t, sim.saJSON, "someone-elses-project")
		_, err := mc.Send(ctx, androidMsg(fcmToken("p", 1), "c-auth"))
		if !errorutils.IsPermissionDenied(err) {
			t.Fatalf("got %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("no access token", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: sim.ClientTLSConfig()}}
		mc := sim.fcmClientWithHTTP(t, hc, testProject)
		_, err := mc.Send(ctx, androidMsg(fcmToken("p", 2), "c-auth"))
		if !errorutils.IsUnauthenticated(err) {
			t.Fatalf("got %v, want UNAUTHENTICATED", err)
		}
	})
	t.Run("topic target refused", func(t *testing.T) {
		mc := sim.fcmClient(t, sim.saJSON, testProject)
		_, err := mc.Send(ctx, &messaging.Message{Topic: "news", Data: map[string]string{"campaign_id": "c-auth"}})
		if !messaging.IsInvalidArgument(err) {
			t.Fatalf("got %v, want INVALID_ARGUMENT", err)
		}
	})
	t.Run("dry run not recorded", func(t *testing.T) {
		mc := sim.fcmClient(t, sim.saJSON, testProject)
		if _, err := mc.SendDryRun(ctx, androidMsg(fcmToken("dry", 1), "c-dry")); err != nil {
			t.Fatal(err)
		}
		if st := sim.Stats("c-dry"); st.Accepted != 0 {
			t.Fatalf("dry run recorded: %+v", st)
		}
	})
	if st := sim.Stats("c-auth"); st.Accepted != 0 || st.RejectedByReason["UNAUTHENTICATED"] != 1 ||
		st.RejectedByReason["PERMISSION_DENIED"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestFCMSendEachForMulticast(t *testing.T) {
	sim := startSim(t, nil)
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	toks := make([]string, 0, 250)
	for i := range 248 {
		toks = append(toks, fcmToken("mc", i))
	}
	toks = append(toks, fcmToken("UNREGISTERED", 1), fcmToken("INVALIDARG", 1))
	ttl := time.Minute
	br, err := mc.SendEachForMulticast(context.Background(), &messaging.MulticastMessage{
		Tokens:  toks,
		Data:    map[string]string{"k": "v"},
		Android: &messaging.AndroidConfig{CollapseKey: "c-multi", TTL: &ttl},
	})
	if err != nil {
		t.Fatal(err)
	}
	if br.SuccessCount != 248 || br.FailureCount != 2 {
		t.Fatalf("success %d failure %d", br.SuccessCount, br.FailureCount)
	}
	if !messaging.IsUnregistered(br.Responses[248].Error) || !messaging.IsInvalidArgument(br.Responses[249].Error) {
		t.Errorf("errors %v / %v", br.Responses[248].Error, br.Responses[249].Error)
	}
	if st := sim.Stats("c-multi"); st.Accepted != 248 || st.DistinctTokens != 248 {
		t.Errorf("stats %+v", st)
	}
}

func TestTokenEndpoint(t *testing.T) {
	sim := startSim(t, nil)
	other, _, err := GenerateServiceAccount(testProject, sim.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{TLSClientConfig: sim.ClientTLSConfig()}
	defer base.CloseIdleConnections()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	tests := []struct {
		name    string
		saJSON  []byte
		wantErr string
	}{
		{"own service account", sim.saJSON, ""},
		{"another key", other, "invalid_grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := google.CredentialsFromJSONWithType(ctx, tc.saJSON, google.ServiceAccount, fcmScope)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := creds.TokenSource.Token()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 50*time.Minute {
				t.Fatalf("token %+v, err %v", tok, err)
			}
		})
	}
}
