package pushsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/messaging"
)

func TestStatsDuplicates(t *testing.T) {
	sim := startSim(t, nil)
	c := sim.apnsClient(t, testKeyID, testTeamID)
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	a, b, d := apnsToken("c1", 1), apnsToken("c1", 2), apnsToken("c1", 3)
	for _, tok := range []string{a, b, a, d, a, b} {
		res, err := c.Push(alert(tok, "c-dup"))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("push: %v %+v", err, res)
		}
	}
	for _, tok := range []string{fcmToken("d", 1), fcmToken("d", 1)} {
		if _, err := mc.Send(context.Background(), androidMsg(tok, "c-dup")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Push(alert(apnsToken("c1", 9), "c-other"))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("push: %v %+v", err, res)
	}

	tests := []struct {
		campaign                                     string
		accepted, distinct, dupTokens, dupDeliveries int64
		ios, android                                 int64
	}{
		{"c-dup", 8, 4, 3, 4, 6, 2},
		{"c-other", 1, 1, 0, 0, 1, 0},
		{"", 9, 5, 3, 4, 7, 2},
		{"c-none", 0, 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run("campaign="+tc.campaign, func(t *testing.T) {
			st := sim.Stats(tc.campaign)
			if st.Accepted != tc.accepted || st.DistinctTokens != tc.distinct || st.DuplicateTokens != tc.dupTokens ||
				st.DuplicateDeliveries != tc.dupDeliveries || st.ByPlatform["ios"] != tc.ios || st.ByPlatform["android"] != tc.android {
				t.Fatalf("stats %+v", st)
			}
			arr := sim.Arrivals(tc.campaign)
			if int64(len(arr)) != tc.accepted {
				t.Fatalf("%d arrivals, want %d", len(arr), tc.accepted)
			}
			if !slices.IsSortedFunc(arr, func(x, y time.Time) int { return x.Compare(y) }) {
				t.Error("arrivals not sorted")
			}
			if tc.accepted > 0 && (!st.First.Equal(arr[0]) || !st.Last.Equal(arr[len(arr)-1])) {
				t.Errorf("First/Last %v/%v vs arrivals %v/%v", st.First, st.Last, arr[0], arr[len(arr)-1])
			}
		})
	}
	sim.Reset()
	if st := sim.Stats(""); st.Accepted != 0 || len(sim.Arrivals("")) != 0 {
		t.Fatalf("after Reset: %+v", st)
	}
}

func TestAdminAPI(t *testing.T) {
	sim := startSim(t, nil)
	c := sim.apnsClient(t, testKeyID, testTeamID)
	base := sim.AdminURL()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	if st, body := do("GET", "/healthz", ""); st != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", st, body)
	}
	if st, body := do("GET", "/cacert", ""); st != 200 || body != string(sim.CACertPEM()) {
		t.Fatalf("cacert %d", st)
	}
	if st, body := do("POST", "/faults", `{"apns_rates":{"Nonsense":1}}`); st != 400 {
		t.Fatalf("invalid faults accepted: %d %s", st, body)
	}
	if st, body := do("POST", "/faults", `{"apns_rates":{"InternalServerError":1},"retry_after_seconds":3,"until_seconds":3600}`); st != 200 {
		t.Fatalf("faults %d %s", st, body)
	}
	f := sim.CurrentFaults()
	if f.APNsRates["InternalServerError"] != 1 || f.RetryAfter != 3*time.Second || time.Until(f.Until) < 59*time.Minute {
		t.Fatalf("faults not applied: %+v", f)
	}
	res, err := c.Push(alert(apnsToken("e1", 1), "c-admin"))
	if err != nil || res.StatusCode != 500 {
		t.Fatalf("push during storm: %v %+v", err, res)
	}
	if st, _ := do("POST", "/faults", `{}`); st != 200 {
		t.Fatal("clearing faults failed")
	}
	for i := range 3 {
		res, err := c.Push(alert(apnsToken("e1", i), "c-admin"))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("push: %v %+v", err, res)
		}
	}

	st, body := do("GET", "/stats?campaign=c-admin", "")
	var stats Stats
	if err := json.Unmarshal([]byte(body), &stats); err != nil || st != 200 {
		t.Fatalf("stats %d %s: %v", st, body, err)
	}
	if stats.Accepted != 3 || stats.DistinctTokens != 3 || stats.RejectedByReason["InternalServerError"] != 1 {
		t.Fatalf("stats %+v", stats)
	}
	_, body = do("GET", "/arrivals?campaign=c-admin", "")
	var ns []int64
	if err := json.Unmarshal([]byte(body), &ns); err != nil || len(ns) != 3 {
		t.Fatalf("arrivals %s: %v", body, err)
	}
	_, body = do("GET", "/arrivals?campaign=c-admin&format=binary", "")
	if len(body) != 24 {
		t.Fatalf("binary arrivals: %d bytes, want 24", len(body))
	}
	_, body = do("GET", "/metrics", "")
	for _, want := range []string{
		`owlpost_pushsim_requests_total{provider="apns",reason="InternalServerError",status="500"} 1`,
		`owlpost_pushsim_accepted_total{provider="apns"} 3`,
		`owlpost_pushsim_request_duration_seconds_count{provider="apns"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("metrics come from the global registry")
	}
	if st, _ := do("POST", "/reset", ""); st != 204 {
		t.Fatalf("reset %d", st)
	}
	if sim.Stats("").Accepted != 0 {
		t.Fatal("reset did not clear")
	}
}

// TestConcurrentLoad pushes a few thousand notifications through both real
// clients at once; run it with -race.
func TestConcurrentLoad(t *testing.T) {
	sim := startSim(t, func(c *Config) { c.Jitter = time.Millisecond })
	c := sim.apnsClient(t, testKeyID, testTeamID)
	mc := sim.fcmClient(t, sim.saJSON, testProject)
	const workers, perWorker = 16, 100 // 1600 APNs
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				tok := apnsToken(fmt.Sprintf("f%02x", w), i)
				res, err := c.Push(alert(tok, fmt.Sprintf("load-%d", w%4)))
				if err != nil {
					errs <- err
					return
				}
				if res.StatusCode != 200 {
					errs <- fmt.Errorf("status %d %s", res.StatusCode, res.Reason)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // 2 x 250 FCM via SendEach (50 workers each inside firebase)
		defer wg.Done()
		for batch := range 2 {
			toks := make([]string, 250)
			for i := range toks {
				toks[i] = fcmToken(fmt.Sprintf("L%d", batch), i)
			}
			br, err := mc.SendEachForMulticast(context.Background(), &messaging.MulticastMessage{
				Tokens: toks, Data: map[string]string{"campaign_id": "load-fcm"},
			})
			if err != nil {
				errs <- err
				return
			}
			if br.FailureCount != 0 {
				errs <- fmt.Errorf("%d FCM failures", br.FailureCount)
				return
			}
		}
	}()
	go func() { // readers race the writers
		for range 20 {
			_ = sim.Stats("")
			_ = sim.Arrivals("load-1")
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := sim.Stats("")
	if st.Accepted != workers*perWorker+500 || st.DistinctTokens != workers*perWorker+500 || st.DuplicateDeliveries != 0 {
		t.Fatalf("stats %+v", st)
	}
	if got := sim.Stats("load-1").Accepted; got != 4*perWorker {
		t.Fatalf("load-1 accepted %d", got)
	}
}
