package pushsim

import (
	"testing"
	"time"
)

func TestFaultsValidateAndCompile(t *testing.T) {
	tests := []struct {
		name    string
		f       Faults
		wantErr bool
		apns    []string // keys kept, in draw order
	}{
		{"empty", Faults{}, false, nil},
		{"known", Faults{APNsRates: map[string]float64{"TooManyRequests": 0.1, "ServiceUnavailable": 0.2}}, false,
			[]string{"ServiceUnavailable", "TooManyRequests"}},
		{"unknown reason dropped", Faults{APNsRates: map[string]float64{"Bogus": 0.5, "Shutdown": 0.5}}, true, []string{"Shutdown"}},
		{"rate above one", Faults{APNsRates: map[string]float64{"Shutdown": 1.5}}, true, nil},
		{"unknown fcm code", Faults{FCMRates: map[string]float64{"NOPE": 0.1}}, true, nil},
		{"negative retry-after", Faults{RetryAfter: -time.Second}, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.Validate(); (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
			fs := compileFaults(tc.f)
			var got []string
			for _, e := range fs.apns {
				got = append(got, e.key)
			}
			if len(got) != len(tc.apns) {
				t.Fatalf("compiled %v, want %v", got, tc.apns)
			}
			for i := range got {
				if got[i] != tc.apns[i] {
					t.Fatalf("compiled %v, want %v", got, tc.apns)
				}
			}
			if len(fs.fcm) != 0 && tc.f.FCMRates["NOPE"] > 0 {
				t.Fatal("unknown FCM code compiled")
			}
		})
	}
	// One uniform draw picks by cumulative probability.
	fs := compileFaults(Faults{APNsRates: map[string]float64{"ServiceUnavailable": 0.2, "TooManyRequests": 0.1}})
	for _, c := range []struct {
		u    float64
		want string
	}{{0.0, "ServiceUnavailable"}, {0.19, "ServiceUnavailable"}, {0.25, "TooManyRequests"}, {0.31, ""}} {
		if got := pick(fs.apns, c.u); got != c.want {
			t.Errorf("pick(%v) = %q, want %q", c.u, got, c.want)
		}
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New accepted a config without credentials")
	}
}
