package pushsim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
)

func TestAPNsResponses(t *testing.T) {
	sim := startSim(t, nil)
	c := sim.apnsClient(t, testKeyID, testTeamID)

	big := &apns2.Notification{DeviceToken: apnsToken("aa", 1), Topic: testTopic,
		Payload: []byte(`{"aps":{"alert":"` + strings.Repeat("x", 4100) + `"}}`)}
	bg := &apns2.Notification{DeviceToken: apnsToken("aa", 2), Topic: testTopic, PushType: apns2.PushTypeBackground,
		Priority: apns2.PriorityHigh, Payload: []byte(`{"aps":{"content-available":1}}`)}
	wrongTopic := alert(apnsToken("aa", 3), "c-apns")
	wrongTopic.Topic = "com.other.app"
	noTopic := alert(apnsToken("aa", 4), "c-apns")
	noTopic.Topic = ""
	longCollapse := alert(apnsToken("aa", 5), strings.Repeat("c", 65))
	voip := alert(apnsToken("aa", 6), "c-apns")
	voip.Topic = testTopic + ".voip"
	voip.PushType = apns2.PushTypeVOIP
	withID := alert(apnsToken("aa", 7), "c-apns")
	withID.ApnsID = "123e4567-e89b-12d3-a456-426614174000"

	tests := []struct {
		name       string
		n          *apns2.Notification
		wantStatus int
		wantReason string
	}{
		{"accepted", alert(apnsToken("ab", 1), "c-apns"), 200, ""},
		{"accepted uppercase hex", alert(strings.ToUpper(apnsToken("ab", 2)), "c-apns"), 200, ""},
		{"accepted voip suffix topic", voip, 200, ""},
		{"apns-id echoed", withID, 200, ""},
		{"unregistered", alert(apnsToken("dead0410", 1), "c-apns"), 410, apns2.ReasonUnregistered},
		{"bad device token pattern", alert(apnsToken("dead0400", 1), "c-apns"), 400, apns2.ReasonBadDeviceToken},
		{"short token", alert("abcdef", "c-apns"), 400, apns2.ReasonBadDeviceToken},
		{"non-hex token", alert(strings.Repeat("z", 64), "c-apns"), 400, apns2.ReasonBadDeviceToken},
		{"payload too large", big, 413, apns2.ReasonPayloadTooLarge},
		{"background at priority 10", bg, 400, apns2.ReasonBadPriority},
		{"topic disallowed", wrongTopic, 400, apns2.ReasonTopicDisallowed},
		{"missing topic", noTopic, 400, apns2.ReasonMissingTopic},
		{"collapse id too long", longCollapse, 400, apns2.ReasonBadCollapseID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.Push(tc.n)
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			if res.StatusCode != tc.wantStatus || res.Reason != tc.wantReason {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, res.Reason, tc.wantStatus, tc.wantReason)
			}
			if res.ApnsID == "" {
				t.Error("no apns-id in response")
			}
			if tc.n.ApnsID != "" && res.ApnsID != tc.n.ApnsID {
				t.Errorf("apns-id %q, want echo of %q", res.ApnsID, tc.n.ApnsID)
			}
			if tc.wantStatus == 410 && time.Since(res.Timestamp.Time) > time.Minute {
				t.Errorf("410 timestamp %v is not recent", res.Timestamp.Time)
			}
		})
	}
	st := sim.Stats("c-apns")
	if st.Accepted != 4 || st.ByPlatform["ios"] != 4 {
		t.Errorf("stats accepted=%d ios=%d, want 4", st.Accepted, st.ByPlatform["ios"])
	}
	if st.RejectedByReason[apns2.ReasonUnregistered] != 1 || st.RejectedByReason[apns2.ReasonBadDeviceToken] != 3 {
		t.Errorf("rejections %v", st.RejectedByReason)
	}
}

func TestAPNsTransientPatterns(t *testing.T) {
	sim := startSim(t, nil)
	c := sim.apnsClient(t, testKeyID, testTeamID)
	tests := []struct {
		prefix string
		want   []int
	}{
		{"dead0429", []int{429, 200, 200}},
		{"dead0503", []int{503, 503, 200}},
		{"dead0500", []int{500, 200}},
		{"dead0410", []int{410, 410, 410}},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			tok := apnsToken(tc.prefix, 7)
			for i, want := range tc.want {
				res, err := c.Push(alert(tok, "c-transient"))
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != want {
					t.Fatalf("attempt %d: status %d (%s), want %d", i+1, res.StatusCode, res.Reason, want)
				}
			}
		})
	}
	sim.Reset()
	res, err := c.Push(alert(apnsToken("dead0429", 7), "c-transient"))
	if err != nil || res.StatusCode != 429 {
		t.Fatalf("after Reset the pattern starts over: %v %+v", err, res)
	}
}

func TestAPNsProviderToken(t *testing.T) {
	sim := startSim(t, nil)
	otherP8, _, err := GenerateAPNsKey()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := token.AuthKeyFromBytes(otherP8)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key any, kid, iss string, iat time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": iss, "iat": iat.Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	tests := []struct {
		name       string
		bearer     string // "" = no Token on the client
		wantReason string
	}{
		{"valid", sign(sim.apnsPK, testKeyID, testTeamID, now), ""},
		{"wrong kid", sign(sim.apnsPK, "OTHERKEY01", testTeamID, now), apns2.ReasonInvalidProviderToken},
		{"wrong team", sign(sim.apnsPK, testKeyID, "OTHERTEAM1", now), apns2.ReasonInvalidProviderToken},
		{"wrong key", sign(otherKey, testKeyID, testTeamID, now), apns2.ReasonInvalidProviderToken},
		{"expired iat", sign(sim.apnsPK, testKeyID, testTeamID, now.Add(-61*time.Minute)), apns2.ReasonExpiredProviderToken},
		{"iat in the future", sign(sim.apnsPK, testKeyID, testTeamID, now.Add(time.Hour)), apns2.ReasonInvalidProviderToken},
		{"garbage", "not.a.jwt", apns2.ReasonInvalidProviderToken},
		{"missing", "", apns2.ReasonMissingProviderToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := apns2.NewClient(tls.Certificate{})
			c.Host = sim.APNsURL()
			c.HTTPClient.Transport = sim.apnsClient(t, testKeyID, testTeamID).HTTPClient.Transport
			if tc.bearer != "" {
				// IssuedAt = now keeps apns2 from regenerating the bearer.
				c.Token = &token.Token{AuthKey: sim.apnsPK, KeyID: testKeyID, TeamID: testTeamID,
					IssuedAt: time.Now().Unix(), Bearer: tc.bearer}
			}
			for range 2 { // the second time exercises the verified-token cache
				res, err := c.Push(alert(apnsToken("ac", 1), "c-auth"))
				if err != nil {
					t.Fatal(err)
				}
				wantStatus := 200
				if tc.wantReason != "" {
					wantStatus = 403
				}
				if res.StatusCode != wantStatus || res.Reason != tc.wantReason {
					t.Fatalf("got %d %q, want %d %q", res.StatusCode, res.Reason, wantStatus, tc.wantReason)
				}
			}
		})
	}
}

func TestAPNsRawProtocol(t *testing.T) {
	sim := startSim(t, nil)
	auth := "bearer " + sim.bearerFor(t, testKeyID, testTeamID)
	path := "/3/device/" + apnsToken("ad", 1)
	payload := []byte(`{"aps":{"alert":"x"}}`)
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        http.Header
		body       []byte
		wantStatus int
		wantReason string
	}{
		{"GET not allowed", http.MethodGet, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}}, nil, 405, "MethodNotAllowed"},
		{"bad path", http.MethodPost, "/3/other/x", http.Header{"Authorization": {auth}}, payload, 404, "BadPath"},
		{"missing device token", http.MethodPost, "/3/device/", http.Header{"Authorization": {auth}}, payload, 400, "MissingDeviceToken"},
		{"duplicate topic", http.MethodPost, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic, testTopic}}, payload, 400, "DuplicateHeaders"},
		{"bad apns-id", http.MethodPost, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}, "Apns-Id": {"nope"}}, payload, 400, "BadMessageId"},
		{"bad push type", http.MethodPost, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}, "Apns-Push-Type": {"shout"}}, payload, 400, "InvalidPushType"},
		{"bad priority", http.MethodPost, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}, "Apns-Priority": {"7"}}, payload, 400, "BadPriority"},
		{"bad expiration", http.MethodPost, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}, "Apns-Expiration": {"soon"}}, payload, 400, "BadExpirationDate"},
		{"empty payload", http.MethodPost, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}}, nil, 400, "PayloadEmpty"},
		{"accepted", http.MethodPost, path, http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}}, payload, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := sim.apnsRaw(t, tc.method, tc.path, tc.hdr, tc.body)
			if resp.ProtoMajor != 2 {
				t.Errorf("protocol %s, want HTTP/2", resp.Proto)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if tc.wantReason == "" {
				if len(body) != 0 {
					t.Errorf("success body %q, want empty", body)
				}
				return
			}
			var e struct{ Reason string }
			if err := json.Unmarshal(body, &e); err != nil || e.Reason != tc.wantReason {
				t.Errorf("body %s, want reason %s", body, tc.wantReason)
			}
		})
	}
}

func TestAPNsRejectsHTTP1(t *testing.T) {
	sim := startSim(t, nil)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: sim.ClientTLSConfig()}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, sim.APNsURL()+"/3/device/"+apnsToken("ae", 1), strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.ProtoMajor == 1 {
			t.Fatalf("APNs endpoint answered over %s; it must be HTTP/2 only", resp.Proto)
		}
	}
}

func TestAPNsFaultsAndRetryAfter(t *testing.T) {
	sim := startSim(t, func(c *Config) {
		c.Faults = Faults{APNsRates: map[string]float64{"ServiceUnavailable": 1}, RetryAfter: 1500 * time.Millisecond,
			Until: time.Now().Add(time.Hour)}
	})
	auth := "bearer " + sim.bearerFor(t, testKeyID, testTeamID)
	hdr := http.Header{"Authorization": {auth}, "Apns-Topic": {testTopic}, "Apns-Collapse-Id": {"c-fault"}}
	resp, body := sim.apnsRaw(t, http.MethodPost, "/3/device/"+apnsToken("af", 1), hdr, []byte(`{"aps":{}}`))
	if resp.StatusCode != 503 || !strings.Contains(string(body), "ServiceUnavailable") {
		t.Fatalf("storm: %d %s", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", ra)
	}
	// The storm is over once Until has passed.
	sim.SetFaults(Faults{APNsRates: map[string]float64{"ServiceUnavailable": 1}, Until: time.Now().Add(-time.Second)})
	resp, body = sim.apnsRaw(t, http.MethodPost, "/3/device/"+apnsToken("af", 1), hdr, []byte(`{"aps":{}}`))
	if resp.StatusCode != 200 {
		t.Fatalf("after Until: %d %s", resp.StatusCode, body)
	}
	st := sim.Stats("c-fault")
	if st.Accepted != 1 || st.RejectedByReason["ServiceUnavailable"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestRateCap(t *testing.T) {
	sim := startSim(t, func(c *Config) { c.RateCap = 5 })
	c := sim.apnsClient(t, testKeyID, testTeamID)
	var limited int
	for i := range 40 {
		res, err := c.Push(alert(apnsToken("b0", i), "c-cap"))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == 429 {
			if res.Reason != apns2.ReasonTooManyRequests {
				t.Fatalf("429 reason %q", res.Reason)
			}
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("40 requests against a cap of 5/s were never limited")
	}
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	var quota int
	for i := range 20 {
		if _, err := mc.Send(context.Background(), androidMsg(fcmToken("cap", i), "c-cap")); err != nil {
			if !isQuotaExceeded(err) {
				t.Fatalf("send: %v", err)
			}
			quota++
		}
	}
	if quota == 0 {
		t.Fatal("FCM was never limited")
	}
	if st := sim.Stats("c-cap"); st.Accepted+int64(limited+quota) != 60 {
		t.Errorf("accepted %d + limited %d != 60", st.Accepted, limited+quota)
	}
}
