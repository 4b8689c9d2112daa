package pushsim

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// Platform codes of a record; the names are the keys of Stats.ByPlatform.
const (
	platformIOS     uint8 = 1
	platformAndroid uint8 = 2
)

func platformName(p uint8) string {
	if p == platformIOS {
		return "ios"
	}
	return "android"
}

// Stats summarise what the simulator accepted and rejected.
type Stats struct {
	// Accepted counts accepted notifications.
	Accepted int64 `json:"accepted"`
	// RejectedByReason counts rejections by APNs reason or FCM errorCode
	// (Google status when there is no errorCode, e.g. UNAUTHENTICATED).
	RejectedByReason map[string]int64 `json:"rejected_by_reason"`
	// DuplicateTokens counts tokens accepted more than once.
	DuplicateTokens int64 `json:"duplicate_tokens"`
	// DuplicateDeliveries is Accepted minus DistinctTokens.
	DuplicateDeliveries int64 `json:"duplicate_deliveries"`
	// DistinctTokens counts distinct accepted tokens (per campaign, summed
	// over campaigns for campaign "").
	DistinctTokens int64 `json:"distinct_tokens"`
	// First and Last are the first and last arrival of an accepted
	// notification (zero when none).
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// ByPlatform counts accepted notifications by "ios" / "android".
	ByPlatform map[string]int64 `json:"by_platform"`
	// ByKind counts accepted notifications by platform/kind/priority:
	// "ios/alert/10", "ios/background/5" (apns-push-type and apns-priority),
	// "android/notification/high", "android/data/normal" (data = data-only,
	// nothing shown; the android priority).
	ByKind map[string]int64 `json:"by_kind"`
}

// record is one accepted notification: 32 bytes, no strings.
type record struct {
	token   uint64
	payload uint64
	at      int64 // unix nanoseconds
	plat    uint8
}

// campaignRec holds one campaign's records behind its own mutex, so
// concurrent campaigns do not contend.
type campaignRec struct {
	mu       sync.Mutex
	recs     []record
	counts   map[uint64]uint32
	dupTok   int64
	rejected map[string]int64
	byPlat   [3]int64
	byKind   map[string]int64
	first    int64
	last     int64
}

// recorder maps campaigns to their records.
type recorder struct {
	seed maphash.Seed
	mu   sync.RWMutex
	byC  map[string]*campaignRec
}

func newRecorder() *recorder {
	return &recorder{seed: maphash.MakeSeed(), byC: make(map[string]*campaignRec)}
}

func (r *recorder) hashString(s string) uint64 { return maphash.String(r.seed, s) }
func (r *recorder) hashBytes(b []byte) uint64  { return maphash.Bytes(r.seed, b) }

func (r *recorder) campaign(name string) *campaignRec {
	r.mu.RLock()
	c := r.byC[name]
	r.mu.RUnlock()
	if c != nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c = r.byC[name]; c == nil {
		c = &campaignRec{counts: make(map[uint64]uint32), rejected: make(map[string]int64), byKind: make(map[string]int64)}
		r.byC[name] = c
	}
	return c
}

// accept records an accepted notification.
func (r *recorder) accept(campaign string, tokenHash, payloadHash uint64, at time.Time, plat uint8, kind string) {
	c := r.campaign(campaign)
	c.mu.Lock()
	ns := at.UnixNano()
	c.recs = append(c.recs, record{token: tokenHash, payload: payloadHash, at: ns, plat: plat})
	if c.first == 0 || ns < c.first {
		c.first = ns
	}
	if ns > c.last {
		c.last = ns
	}
	n := c.counts[tokenHash]
	c.counts[tokenHash] = n + 1
	if n == 1 {
		c.dupTok++
	}
	c.byPlat[plat]++
	c.byKind[kind]++
	c.mu.Unlock()
}

// reject counts a rejection.
func (r *recorder) reject(campaign, reason string) {
	c := r.campaign(campaign)
	c.mu.Lock()
	c.rejected[reason]++
	c.mu.Unlock()
}

func (r *recorder) selected(campaign string) []*campaignRec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if campaign != "" {
		if c := r.byC[campaign]; c != nil {
			return []*campaignRec{c}
		}
		return nil
	}
	out := make([]*campaignRec, 0, len(r.byC))
	for _, c := range r.byC {
		out = append(out, c)
	}
	return out
}

// stats aggregates the selected campaigns ("" = all).
func (r *recorder) stats(campaign string) Stats {
	st := Stats{RejectedByReason: map[string]int64{}, ByPlatform: map[string]int64{}, ByKind: map[string]int64{}}
	var first, last int64
	for _, c := range r.selected(campaign) {
		c.mu.Lock()
		st.Accepted += int64(len(c.recs))
		st.DistinctTokens += int64(len(c.counts))
		st.DuplicateTokens += c.dupTok
		for k, v := range c.rejected {
			st.RejectedByReason[k] += v
		}
		for k, v := range c.byKind {
			st.ByKind[k] += v
		}
		for p := platformIOS; p <= platformAndroid; p++ {
			if c.byPlat[p] > 0 {
				st.ByPlatform[platformName(p)] += c.byPlat[p]
			}
		}
		if c.first != 0 && (first == 0 || c.first < first) {
			first = c.first
		}
		if c.last > last {
			last = c.last
		}
		c.mu.Unlock()
	}
	st.DuplicateDeliveries = st.Accepted - st.DistinctTokens
	if first != 0 {
		st.First = time.Unix(0, first)
		st.Last = time.Unix(0, last)
	}
	return st
}

// arrivalsNanos returns the sorted arrival times (unix ns) of the selected
// campaigns' accepted notifications, of one platform ("ios", "android") or
// of both ("").
func (r *recorder) arrivalsNanos(campaign, platform string) []int64 {
	var out []int64
	for _, c := range r.selected(campaign) {
		c.mu.Lock()
		for i := range c.recs {
			if platform == "" || platformName(c.recs[i].plat) == platform {
				out = append(out, c.recs[i].at)
			}
		}
		c.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.byC = make(map[string]*campaignRec)
	r.mu.Unlock()
}
