package campaign

import (
	"strings"
	"testing"
	"time"
)

func TestRehearse(t *testing.T) {
	launch, err := Parse([]byte(string(readExample(t)) + "goal: {p95: 4s, p99: 6s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{0: 10, 1: 12}
	r, err := launch.Rehearse(RehearsalID(launch.ID, 2), 0.25, 1000, ends)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "superbowl-2027.rehearsal-2" || RehearsalNumber(launch.ID, r.ID) != 2 {
		t.Errorf("id %q, number %d", r.ID, RehearsalNumber(launch.ID, r.ID))
	}
	if r.APNs.PushType != PushTypeBackground || r.APNs.Priority != 5 || !r.FCM.Silent || r.FCM.Priority != FCMPriorityNormal {
		t.Errorf("not a silent push: apns %+v fcm %+v", r.APNs, r.FCM)
	}
	if r.APNs.CollapseID != r.ID || r.FCM.CollapseKey != r.ID {
		t.Errorf("collapse id %q / key %q, want the rehearsal's own id", r.APNs.CollapseID, r.FCM.CollapseKey)
	}
	if r.Rehearsal.Of != launch.ID || r.Rehearsal.Sample != 0.25 || r.Rehearsal.AudienceEnds[1] != 12 || r.RateLimit != 1000 {
		t.Errorf("rehearsal %+v rate %d", r.Rehearsal, r.RateLimit)
	}
	if r.Goal.P95.Std() != 4*time.Second || r.AudienceTopic != launch.AudienceTopic || len(r.ProofAudience) != len(launch.ProofAudience) {
		t.Errorf("goal, audience or proof audience not kept: %+v", r)
	}
	// The launch is untouched (maps are copies).
	ends[0] = 99
	r.Labels["x"] = "y"
	if launch.APNs.PushType != PushTypeAlert || launch.Labels["x"] != "" || r.Rehearsal.AudienceEnds[0] != 10 {
		t.Errorf("deriving changed the launch or aliases its input")
	}
	// Rendered: background, no alert; its canonical form parses back.
	rend, err := r.Render()
	if err != nil {
		t.Fatal(err)
	}
	ios := rend.For("ios", "en-US")
	if ios.APNs.PushType != "background" || strings.Contains(string(ios.APNs.Payload), `"alert"`) ||
		!strings.Contains(string(ios.APNs.Payload), `"content-available":1`) || rend.RateLimit() != 1000 {
		t.Errorf("rendered rehearsal: %+v %s", ios.APNs, ios.APNs.Payload)
	}
	if and := rend.For("android", "en-US"); !and.FCM.Silent || and.FCM.Title != "" || and.FCM.Priority != "normal" {
		t.Errorf("rendered android: %+v", and.FCM)
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Errorf("canonical rehearsal does not parse back: %v\n%s", err, b)
	}
	if _, err := r.Rehearse(RehearsalID(r.ID, 1), 1, 0, ends); err == nil {
		t.Error("a rehearsal of a rehearsal was derived")
	}
	long := *launch
	long.ID = strings.Repeat("a", MaxIDLen-2)
	if _, err := long.Rehearse(RehearsalID(long.ID, 1), 1, 0, ends); err == nil || !strings.Contains(err.Error(), "id:") {
		t.Errorf("a rehearsal id over %d characters: %v", MaxIDLen, err)
	}
}

func TestGoalAndRehearsalValidation(t *testing.T) {
	example := string(readExample(t))
	tests := []struct{ name, add, want string }{
		{"goal empty", "goal: {}\n", "goal: set at least one"},
		{"goal negative", "goal: {p95: -1s}\n", "goal.p95: must be positive"},
		{"goal out of order", "goal: {p95: 6s, p99: 4s}\n", "goal.p99: 4s is less than p95 6s"},
		{"goal unknown field", "goal: {p96: 4s}\n", "p96"},
		{"rate negative", "rate_limit: -5\n", "rate_limit: must not be negative"},
		{"rehearsal sample", "rehearsal: {of: launch, sample: 1.5, audience_ends: {0: 1}}\n", "rehearsal.sample"},
		{"rehearsal without of", "rehearsal: {sample: 1, audience_ends: {0: 1}}\n", "rehearsal.of: required"},
		{"rehearsal without ends", "rehearsal: {of: launch, sample: 1}\n", "rehearsal.audience_ends: required"},
		{"rehearsal of itself", "rehearsal: {of: superbowl-2027, sample: 1, audience_ends: {0: 1}}\n", "rehearse itself"},
		{"rehearsal that alerts", "rehearsal: {of: launch, sample: 1, audience_ends: {0: 1}}\n", "apns.push_type: a rehearsal must be background"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(example + tt.add))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := Parse([]byte(example + "goal: {p95: 4s, p99: 6s}\nrate_limit: 100\n")); err != nil {
		t.Errorf("a valid goal and rate: %v", err)
	}
}
