package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRawPhase runs phase a for real, small: the pushsim binary built from
// this tree, apns2 alone, firebase alone and both at once. measureRaw fails
// the run unless the simulator counted exactly each library's share.
func TestRawPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the simulator")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/owlpost/owlpost/cmd/pushsim").CombinedOutput(); err != nil {
		t.Fatalf("go build pushsim: %v\n%s", err, out)
	}
	o := DefaultOptions()
	o.BinDir, o.RawN, o.APNsWorkers, o.IOSShare = bin, 2_001, 50, 0.6
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for round := 1; round <= 2; round++ { // both orders
		m, err := runRaw(ctx, o, t.TempDir(), round)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got := map[string]float64{}
		var keys []string
		for _, x := range m {
			got[x.Key] = x.Value
			if !strings.HasPrefix(x.Key, "raw.h2load.") { // h2load runs first where nghttp2-client is installed
				keys = append(keys, x.Key)
			}
		}
		for _, k := range []string{"raw.apns.notifications", "raw.fcm.notifications", "raw.both.notifications"} {
			if got[k] != 2_001 {
				t.Errorf("round %d: %s = %v, want 2001", round, k, got[k])
			}
		}
		for _, k := range []string{"raw.apns.rate", "raw.fcm.rate", "raw.both.rate", "raw.both.per_client_cpu_s", "raw.mixed.rate"} {
			if got[k] <= 0 {
				t.Errorf("round %d: %s = %v, want > 0", round, k, got[k])
			}
		}
		if keys[0] != "raw.apns.notifications" || keys[len(keys)-1] != "raw.mixed.per_client_cpu_s" {
			t.Errorf("round %d: metric order %v", round, keys)
		}
	}
}
