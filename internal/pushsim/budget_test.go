package pushsim

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"

	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
)

// TestBackgroundBudget: APNs background pushes over the budget are answered
// 429 TooManyRequests, alerts are not limited by it, and the record tells
// silent pushes from shown ones on both platforms.
func TestBackgroundBudget(t *testing.T) {
	sim := startSim(t, func(c *Config) { c.Budget = Budget{APNsBackgroundPerSec: 3} })
	c := sim.apnsClient(t, testKeyID, testTeamID)
	var limited int
	for i := range 30 {
		n := &apns2.Notification{DeviceToken: apnsToken("b1", i), Topic: testTopic, CollapseID: "c-bg",
			Payload: []byte(`{"aps":{"content-available":1}}`), PushType: apns2.PushTypeBackground, Priority: apns2.PriorityLow}
		res, err := c.Push(n)
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
	if limited == 0 || limited == 30 {
		t.Fatalf("30 background pushes against a budget of 3/s: %d limited", limited)
	}
	for i := range 30 {
		res, err := c.Push(alert(apnsToken("b2", i), "c-bg"))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("alert %d: %v %+v", i, err, res)
		}
	}
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	for i := range 4 {
		silent := &messaging.Message{Token: fcmToken("bg", i), Data: map[string]string{"campaign_id": "c-bg"},
			Android: &messaging.AndroidConfig{CollapseKey: "c-bg", Priority: "normal"}}
		if _, err := mc.Send(context.Background(), silent); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.Send(context.Background(), androidMsg(fcmToken("al", i), "c-bg")); err != nil {
			t.Fatal(err)
		}
	}
	st := sim.Stats("c-bg")
	want := map[string]int64{"ios/background/5": int64(30 - limited), "ios/alert/10": 30,
		"android/data/normal": 4, "android/notification/high": 4}
	if !maps.Equal(st.ByKind, want) || st.RejectedByReason["TooManyRequests"] != int64(limited) {
		t.Errorf("by kind %v, want %v; rejected %v", st.ByKind, want, st.RejectedByReason)
	}

	// The admin API reads and replaces the budget; a bad one is refused.
	post := func(body string) (int, Budget) {
		resp, err := http.Post(sim.AdminURL()+"/budget", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b Budget
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b
	}
	if code, b := post(`{"apns_background_per_sec":0}`); code != 200 || b.APNsBackgroundPerSec != 0 {
		t.Fatalf("POST /budget: %d %+v", code, b)
	}
	for _, bad := range []string{`{"apns_background_per_sec":-1}`, `{"apns_backgrund_per_sec":1}`, `nope`} {
		if code, _ := post(bad); code != 400 {
			t.Errorf("POST /budget %s: %d, want 400", bad, code)
		}
	}
	for i := range 30 {
		n := &apns2.Notification{DeviceToken: apnsToken("b3", i), Topic: testTopic, CollapseID: "c-bg2",
			Payload: []byte(`{"aps":{"content-available":1}}`), PushType: apns2.PushTypeBackground, Priority: apns2.PriorityLow}
		if res, err := c.Push(n); err != nil || res.StatusCode != 200 {
			t.Fatalf("background push %d with no budget: %v %+v", i, err, res)
		}
	}
}
