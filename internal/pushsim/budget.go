package pushsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/time/rate"
)

// Budget is Apple's throttling of background notifications, which the
// simulator models: APNs accepts background (content-available) pushes only
// at a limited rate and answers the rest 429 TooManyRequests. Alerts are not
// affected. FCM has no separate budget for data-only messages: they count
// against the project's quota like any message (Config.RateCap).
type Budget struct {
	// APNsBackgroundPerSec is how many apns-push-type background
	// notifications per second APNs accepts over all devices (0 = no limit).
	APNsBackgroundPerSec int `json:"apns_background_per_sec"`
}

// budgetState is the compiled Budget, swapped atomically.
type budgetState struct {
	b          Budget
	background *rate.Limiter // nil = no limit
}

func newBudgetState(b Budget) *budgetState {
	st := &budgetState{b: b}
	if b.APNsBackgroundPerSec > 0 {
		st.background = rate.NewLimiter(rate.Limit(b.APNsBackgroundPerSec), b.APNsBackgroundPerSec)
	}
	return st
}

// Validate refuses a negative rate.
func (b Budget) Validate() error {
	if b.APNsBackgroundPerSec < 0 {
		return fmt.Errorf("pushsim: negative apns_background_per_sec %d", b.APNsBackgroundPerSec)
	}
	return nil
}

// SetBudget replaces the background budget (its bucket starts full).
func (s *Server) SetBudget(b Budget) { s.budget.Store(newBudgetState(b)) }

// CurrentBudget returns the budget in force.
func (s *Server) CurrentBudget() Budget { return s.budget.Load().b }

// allowBackground applies the background budget; false means answer 429.
func (s *Server) allowBackground() bool {
	l := s.budget.Load().background
	return l == nil || l.Allow()
}

func (s *Server) serveBudget(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var b Budget
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad budget JSON: " + err.Error()})
			return
		}
		if err := b.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.SetBudget(b)
	}
	writeJSON(w, http.StatusOK, s.CurrentBudget())
}

// Kinds of accepted notifications (Stats.ByKind keys): platform, what the
// user sees, priority. "ios/background/5" and "android/data/normal" are
// silent; "ios/alert/10" and "android/notification/high" are shown.
func apnsKind(pushType, priority string) string {
	if pushType == "" {
		pushType = "alert" // APNs' default when the header is absent
	}
	if priority == "" {
		priority = "10"
	}
	return "ios/" + pushType + "/" + priority
}

func fcmKind(m *fcmMessage) string {
	kind := "data"
	if m.Notification != nil || (m.Android != nil && m.Android.Notification != nil) {
		kind = "notification"
	}
	priority := "normal" // FCM's default for Android
	if m.Android != nil && m.Android.Priority != "" {
		priority = m.Android.Priority
	}
	return "android/" + kind + "/" + strings.ToLower(priority)
}
