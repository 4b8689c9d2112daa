package pushsim

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
)

// TestBackgroundBudget: APNs budgets background pushes per device token.
// With one per hour, a second background push to the same device is
// answered 429 TooManyRequests, while every other device still gets its
// first and alerts to the throttled device go through; the record tells
// silent pushes from shown ones on both platforms.
func TestBackgroundBudget(t *testing.T) {
	sim := startSim(t, func(c *Config) { c.Budget = Budget{APNsBackgroundPerHour: 1, APNsBackgroundBurst: 1} })
	c := sim.apnsClient(t, testKeyID, testTeamID)
	silent := func(token, campaign string) *apns2.Notification {
		return &apns2.Notification{DeviceToken: token, Topic: testTopic, CollapseID: campaign,
			Payload: []byte(`{"aps":{"content-available":1}}`), PushType: apns2.PushTypeBackground, Priority: apns2.PriorityLow}
	}
	push := func(n *apns2.Notification) *apns2.Response {
		t.Helper()
		res, err := c.Push(n)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Each of 30 devices gets one background push: none is throttled.
	for i := range 30 {
		if res := push(silent(apnsToken("b1", i), "c-bg")); res.StatusCode != 200 {
			t.Fatalf("first background push to device %d: %d %s", i, res.StatusCode, res.Reason)
		}
	}
	// A second one to device 0 is over its budget.
	res := push(silent(apnsToken("b1", 0), "c-bg"))
	if res.StatusCode != 429 || res.Reason != apns2.ReasonTooManyRequests {
		t.Fatalf("second background push to the same device: %d %q, want 429 %s", res.StatusCode, res.Reason, apns2.ReasonTooManyRequests)
	}
	// Like Apple's, the answer carries no Retry-After: it is about one device,
	// and a sender would hold the rest of its batch's retries for it.
	hdr := http.Header{"Authorization": {"bearer " + sim.bearerFor(t, testKeyID, testTeamID)}, "Apns-Topic": {testTopic},
		"Apns-Push-Type": {"background"}, "Apns-Priority": {"5"}, "Apns-Collapse-Id": {"c-bg"}}
	raw, body := sim.apnsRaw(t, http.MethodPost, "/3/device/"+apnsToken("b1", 0), hdr, []byte(`{"aps":{"content-available":1}}`))
	if raw.StatusCode != 429 || !strings.Contains(string(body), "TooManyRequests") || raw.Header.Get("Retry-After") != "" {
		t.Fatalf("raw second push: %d %s, Retry-After %q; want 429 TooManyRequests without Retry-After", raw.StatusCode, body, raw.Header.Get("Retry-After"))
	}
	// Other devices are not affected, nor are alerts to the throttled one.
	if res := push(silent(apnsToken("b1", 30), "c-bg")); res.StatusCode != 200 {
		t.Fatalf("a device not yet pushed to: %d %s", res.StatusCode, res.Reason)
	}
	for i := range 3 {
		if res := push(alert(apnsToken("b1", 0), "c-bg")); res.StatusCode != 200 {
			t.Fatalf("alert %d to the throttled device: %d %s", i, res.StatusCode, res.Reason)
		}
	}
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	for i := range 4 {
		silent := &messaging.Message{Token: fcmToken("bg", 0), Data: map[string]string{"campaign_id": "c-bg"},
			Android: &messaging.AndroidConfig{CollapseKey: "c-bg", Priority: "normal"}}
		if _, err := mc.Send(context.Background(), silent); err != nil {
			t.Fatalf("FCM data message %d to one device: %v", i, err)
		}
		if _, err := mc.Send(context.Background(), androidMsg(fcmToken("al", i), "c-bg")); err != nil {
			t.Fatal(err)
		}
	}
	st := sim.Stats("c-bg")
	want := map[string]int64{"ios/background/5": 31, "ios/alert/10": 3,
		"android/data/normal": 4, "android/notification/high": 4}
	if !maps.Equal(st.ByKind, want) || st.RejectedByReason["TooManyRequests"] != 2 {
		t.Errorf("by kind %v, want %v; rejected %v, want 2 TooManyRequests", st.ByKind, want, st.RejectedByReason)
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
	if code, b := post(`{"apns_background_per_hour":3,"apns_background_burst":3}`); code != 200 || b != DefaultBudget {
		t.Fatalf("POST /budget: %d %+v", code, b)
	}
	for _, bad := range []string{`{"apns_background_per_hour":-1}`, `{"apns_background_burst":-1}`, `{"apns_background_per_sec":1}`, `nope`} {
		if code, _ := post(bad); code != 400 {
			t.Errorf("POST /budget %s: %d, want 400", bad, code)
		}
	}
	// The default budget: a fresh bucket for device 0 (the budget was
	// replaced), three at once, the fourth refused.
	for i := range 4 {
		res := push(silent(apnsToken("b1", 0), "c-bg2"))
		if want := map[bool]int{true: 200, false: 429}[i < 3]; res.StatusCode != want {
			t.Fatalf("background push %d to one device under the default budget: %d, want %d", i, res.StatusCode, want)
		}
	}
	if code, b := post(`{"apns_background_per_hour":0}`); code != 200 || b.APNsBackgroundPerHour != 0 {
		t.Fatalf("POST /budget: %d %+v", code, b)
	}
	for i := range 10 {
		if res := push(silent(apnsToken("b1", 0), "c-bg2")); res.StatusCode != 200 {
			t.Fatalf("background push %d with no budget: %d %s", i, res.StatusCode, res.Reason)
		}
	}
}

// TestBudgetRefillsAndStaysBounded: a token's bucket refills at the hourly
// rate (clock moved by hand), and the table of tokens never outgrows
// Budget.Devices, dropping refilled tokens first.
func TestBudgetRefillsAndStaysBounded(t *testing.T) {
	st := newBudgetState(Budget{APNsBackgroundPerHour: 3, APNsBackgroundBurst: 2, Devices: 4 * budgetShards})
	at := func(d time.Duration) int64 { return int64(d) }
	for i, want := range []bool{true, true, false} {
		if ok := st.take(7, at(0)); ok != want {
			t.Fatalf("push %d at 0: allowed %v, want %v", i, ok, want)
		}
	}
	if st.take(7, at(10*time.Minute)) {
		t.Fatal("after 10 min (3/h, two spent): allowed, want refused")
	}
	if !st.take(7, at(20*time.Minute)) {
		t.Fatal("after 20 min (3/h) one more is not allowed")
	}
	if !st.take(8, at(20*time.Minute)) {
		t.Fatal("another token is refused")
	}
	for tok := range uint64(10_000) {
		st.take(1000+tok, at(time.Hour))
	}
	if n := st.tracked(); n > st.b.Devices {
		t.Fatalf("%d tokens tracked, bound %d", n, st.b.Devices)
	}
	// Two hours later every bucket has refilled: token 7's full shard drops
	// those before it would forget a token with spent budget.
	st.take(7, at(3*time.Hour))
	st.take(7, at(3*time.Hour))
	for tok := range uint64(st.perCap - 1) {
		st.take(7+(tok+1)*budgetShards, at(3*time.Hour)) // token 7's shard
	}
	if st.take(7, at(3*time.Hour)) {
		t.Fatal("token 7's spent budget was forgotten while refilled tokens could be dropped")
	}
}
