package pushsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Budget is Apple's throttling of background notifications, which the
// simulator models per device token, as Apple does: each token has a small
// bucket of APNsBackgroundBurst background (content-available) pushes that
// refills at APNsBackgroundPerHour; a push to a token whose bucket is empty
// is answered 429 TooManyRequests ("too many requests for the same device
// token"), without Retry-After as Apple's, until the bucket has room again. Other tokens
// and alerts are not affected. FCM has no separate budget for data-only
// messages: they count against the project's quota like any message
// (Config.RateCap). The zero Budget is off; cmd/pushsim turns it on with
// DefaultBudget.
type Budget struct {
	// APNsBackgroundPerHour is how many background pushes per hour one
	// device token gets (0 = no budget).
	APNsBackgroundPerHour int `json:"apns_background_per_hour"`
	// APNsBackgroundBurst is how many of them one token may get at once
	// (its bucket's size; 0 = APNsBackgroundPerHour).
	APNsBackgroundBurst int `json:"apns_background_burst,omitempty"`
	// Devices bounds the tokens tracked at once (0 = DefaultBudgetDevices).
	// A token whose bucket has refilled needs no entry; when the table is
	// full anyway, the simulator forgets some tokens' spent budget (they
	// get a full bucket again, the lenient side).
	Devices int `json:"devices,omitempty"`
}

// DefaultBudget is cmd/pushsim's budget: three background pushes per device
// per hour, all three at once if need be (Apple advises not sending more
// than two or three an hour). A rehearsal sends each token one, so it never
// meets the budget; a third rehearsal (or proof) to the same device within
// the hour does, and the fourth is refused.
var DefaultBudget = Budget{APNsBackgroundPerHour: 3, APNsBackgroundBurst: 3}

// DefaultBudgetDevices is how many device tokens the budget tracks at most
// by default: 2^20 tokens, about 80 MB when full.
const DefaultBudgetDevices = 1 << 20

// budgetShards spreads the device table over locks.
const budgetShards = 64

// budgetState is the compiled Budget, swapped atomically.
type budgetState struct {
	b      Budget
	perSec float64 // refill rate of one token's bucket
	burst  float64
	perCap int // entries per shard at most
	shards [budgetShards]budgetShard
}

type budgetShard struct {
	mu sync.Mutex
	m  map[uint64]deviceBucket
}

// deviceBucket is one token's bucket: tokens left at time at (unix ns).
type deviceBucket struct {
	tokens float64
	at     int64
}

func newBudgetState(b Budget) *budgetState {
	st := &budgetState{b: b}
	if b.APNsBackgroundPerHour == 0 {
		return st
	}
	st.perSec = float64(b.APNsBackgroundPerHour) / 3600
	st.burst = float64(b.APNsBackgroundBurst)
	if b.APNsBackgroundBurst == 0 {
		st.burst = float64(b.APNsBackgroundPerHour)
	}
	devices := b.Devices
	if devices == 0 {
		devices = DefaultBudgetDevices
	}
	st.perCap = max(1, devices/budgetShards)
	for i := range st.shards {
		st.shards[i].m = make(map[uint64]deviceBucket)
	}
	return st
}

// Validate refuses negative figures.
func (b Budget) Validate() error {
	if b.APNsBackgroundPerHour < 0 || b.APNsBackgroundBurst < 0 || b.Devices < 0 {
		return fmt.Errorf("pushsim: negative background budget %+v", b)
	}
	return nil
}

// SetBudget replaces the background budget; every token's bucket starts
// full.
func (s *Server) SetBudget(b Budget) { s.budget.Store(newBudgetState(b)) }

// CurrentBudget returns the budget in force.
func (s *Server) CurrentBudget() Budget { return s.budget.Load().b }

// allowBackground spends one of the token's background budget at now;
// false means answer 429.
func (s *Server) allowBackground(token uint64, now time.Time) bool {
	return s.budget.Load().take(token, now.UnixNano())
}

func (st *budgetState) take(token uint64, now int64) bool {
	if st.perSec == 0 {
		return true
	}
	sh := &st.shards[token%budgetShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.m[token]
	if !ok {
		b = deviceBucket{tokens: st.burst, at: now}
	}
	b.tokens = st.level(b, now)
	b.at = max(b.at, now)
	if b.tokens < 1 {
		sh.m[token] = b
		return false
	}
	b.tokens--
	if !ok && len(sh.m) >= st.perCap {
		st.shrink(sh, now)
	}
	sh.m[token] = b
	return true
}

// level is b's tokens at now, refilled since b.at.
func (st *budgetState) level(b deviceBucket, now int64) float64 {
	return min(st.burst, b.tokens+float64(max(0, now-b.at))/1e9*st.perSec)
}

// shrink makes room in a full shard: it drops the tokens whose bucket has
// refilled (as good as untracked), then, if that was not a quarter of the
// shard, arbitrary ones (map order) down to three quarters.
func (st *budgetState) shrink(sh *budgetShard, now int64) {
	for k, b := range sh.m {
		if st.level(b, now) >= st.burst {
			delete(sh.m, k)
		}
	}
	for k := range sh.m {
		if len(sh.m) <= st.perCap*3/4 {
			break
		}
		delete(sh.m, k)
	}
}

// tracked is how many tokens the budget holds an entry for.
func (st *budgetState) tracked() int {
	n := 0
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
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
