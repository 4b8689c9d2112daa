package pushsim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

const (
	testKeyID   = "ABC123DEFG"
	testTeamID  = "TEAM123456"
	testProject = "owlpost-sim"
	testTopic   = "com.example.owlpost"
	fcmScope    = "https://www.googleapis.com/auth/firebase.messaging"
)

// testSim is a started simulator plus the credentials the real clients need.
type testSim struct {
	*Server
	p8     []byte
	apnsPK *ecdsa.PrivateKey
	saJSON []byte
}

// startSim starts a simulator with fresh credentials; mutate may adjust the
// config before New.
func startSim(t testing.TB, mutate func(*Config)) *testSim {
	t.Helper()
	p8, pub, err := GenerateAPNsKey()
	if err != nil {
		t.Fatal(err)
	}
	sa, saPub, err := GenerateServiceAccount(testProject, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		APNsKeyID: testKeyID, APNsTeamID: testTeamID, APNsPublicKey: pub,
		APNsTopics: []string{testTopic},
		FCMProject: testProject, FCMServiceAccountKey: saPub,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	sa, err = ServiceAccountWithTokenURI(sa, s.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	pk, err := token.AuthKeyFromBytes(p8)
	if err != nil {
		t.Fatal(err)
	}
	return &testSim{Server: s, p8: p8, apnsPK: pk, saJSON: sa}
}

// apnsClient is a real apns2 token client pointed at the simulator, its
// http2 transport trusting the simulator's CA.
func (ts *testSim) apnsClient(t testing.TB, keyID, teamID string) *apns2.Client {
	t.Helper()
	c := apns2.NewTokenClient(&token.Token{AuthKey: ts.apnsPK, KeyID: keyID, TeamID: teamID})
	c.Host = ts.APNsURL()
	tr, ok := c.HTTPClient.Transport.(*http2.Transport)
	if !ok {
		t.Fatalf("apns2 transport is %T, want *http2.Transport", c.HTTPClient.Transport)
	}
	tr.TLSClientConfig = ts.ClientTLSConfig()
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// fcmClient is a real firebase messaging client: the OAuth2 token source
// from the service-account JSON fetches its token from the simulator's
// token_uri through a transport trusting the CA (oauth2.HTTPClient context
// value), and the API calls go through oauth2.Transport over the same base.
func (ts *testSim) fcmClient(t testing.TB, saJSON []byte, project string) *messaging.Client {
	t.Helper()
	base := &http.Transport{TLSClientConfig: ts.ClientTLSConfig(), ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 100}
	t.Cleanup(base.CloseIdleConnections)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	creds, err := google.CredentialsFromJSONWithType(ctx, saJSON, google.ServiceAccount, fcmScope)
	if err != nil {
		t.Fatal(err)
	}
	hc := oauth2.NewClient(ctx, creds.TokenSource)
	return ts.fcmClientWithHTTP(t, hc, project)
}

func (ts *testSim) fcmClientWithHTTP(t testing.TB, hc *http.Client, project string) *messaging.Client {
	t.Helper()
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project},
		option.WithHTTPClient(hc), option.WithEndpoint(ts.FCMURL()))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := app.Messaging(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// apnsRaw sends one request over HTTP/2 with the given headers, for cases
// apns2 cannot express (wrong method, duplicate headers, response headers).
func (ts *testSim) apnsRaw(t testing.TB, method, path string, hdr http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	tr := &http2.Transport{TLSClientConfig: ts.ClientTLSConfig()}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, ts.APNsURL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// bearerFor signs a provider token the way apns2 does.
func (ts *testSim) bearerFor(t testing.TB, keyID, teamID string) string {
	t.Helper()
	tok := &token.Token{AuthKey: ts.apnsPK, KeyID: keyID, TeamID: teamID}
	if _, err := tok.Generate(); err != nil {
		t.Fatal(err)
	}
	return tok.Bearer
}

// apnsToken makes a 64-hex token with the given prefix and a unique tail.
func apnsToken(prefix string, n int) string {
	s := prefix + strings.Repeat("0", 64-len(prefix)-8)
	return s + fmt.Sprintf("%08x", n)
}

// fcmToken makes an FCM-shaped token (about 150 chars) containing marker.
func fcmToken(marker string, n int) string {
	s := fmt.Sprintf("sim%08d%s:APA91b", n, marker)
	return s + strings.Repeat("x", 150-len(s))
}

func alert(tok, campaign string) *apns2.Notification {
	return &apns2.Notification{
		DeviceToken: tok, Topic: testTopic, CollapseID: campaign,
		Payload:    []byte(`{"aps":{"alert":{"title":"Hi","body":"Game on"}}}`),
		Expiration: time.Now().Add(time.Hour), Priority: apns2.PriorityHigh,
	}
}

func androidMsg(tok, campaign string) *messaging.Message {
	ttl := 30 * time.Second
	return &messaging.Message{
		Token:        tok,
		Notification: &messaging.Notification{Title: "Hi", Body: "Game on"},
		Android:      &messaging.AndroidConfig{CollapseKey: campaign, Priority: "high", TTL: &ttl},
	}
}
