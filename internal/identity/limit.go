package identity

import (
	"sync"
	"time"
)

// Limiter slows down token guessing: each key (a client address) may fail
// Burst times, and earns one more try every Every. While a key has no tries
// left, Allow is false and the caller refuses without checking the token.
type Limiter struct {
	Burst int
	Every time.Duration
	Now   func() time.Time // nil: time.Now

	mu   sync.Mutex
	keys map[string]*bucket
}

type bucket struct {
	tries float64
	at    time.Time
}

// NewLimiter returns a Limiter of burst failures refilled one per every.
func NewLimiter(burst int, every time.Duration) *Limiter {
	return &Limiter{Burst: burst, Every: every}
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// refill brings key's bucket up to date; l.mu is held.
func (l *Limiter) refill(key string) *bucket {
	if l.keys == nil {
		l.keys = map[string]*bucket{}
	}
	now := l.now()
	b, ok := l.keys[key]
	if !ok {
		b = &bucket{tries: float64(l.Burst), at: now}
		if len(l.keys) > 10000 { // forget full buckets rather than grow without end
			for k, o := range l.keys {
				if o.tries+now.Sub(o.at).Seconds()/l.Every.Seconds() >= float64(l.Burst) {
					delete(l.keys, k)
				}
			}
		}
		l.keys[key] = b
	}
	b.tries = min(float64(l.Burst), b.tries+now.Sub(b.at).Seconds()/l.Every.Seconds())
	b.at = now
	return b
}

// Allow reports whether key may try a token now.
func (l *Limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refill(key).tries >= 1
}

// Fail records a failed try by key.
func (l *Limiter) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key)
	b.tries = max(0, b.tries-1)
}
