package push

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Platform names a push provider family.
type Platform string

const (
	IOS     Platform = "ios"
	Android Platform = "android"
)

// Valid reports whether p is a known platform.
func (p Platform) Valid() bool { return p == IOS || p == Android }

// The HTTP/2 client under a provider library (the adapters' Options.Transport,
// config apns.transport and fcm.transport).
const (
	// TransportLibrary: the library's own (golang.org/x/net/http2 for apns2,
	// net/http's for firebase).
	TransportLibrary = "library"
	// TransportFast: push/h2, one writer and one reader per connection.
	TransportFast = "fast"
)

// Message is what every token of one campaign locale receives. It is rendered
// once per campaign and locale (campaign.Render) and shared read-only by all
// goroutines sending it.
type Message struct {
	CampaignID string
	// CollapseID is set on every notification (APNs apns-collapse-id, FCM
	// collapse key and notification tag) so a rare re-send shows as one
	// notification on the phone.
	CollapseID string
	APNs       *APNsMessage
	FCM        *FCMMessage
}

// APNsMessage is the APNs part of a rendered message.
type APNsMessage struct {
	// Payload is the complete JSON body ({"aps":{...}, custom keys}), <= 4096 bytes.
	Payload []byte
	// PushType is "alert" or "background".
	PushType string
	// Priority is 10 (immediate) or 5 (power considerations); background must be 5.
	Priority int
	// Expiration is when APNs may stop trying to deliver. Zero means "now or
	// never": adapters must send a past expiration, since apns2 omits the
	// header for a zero time and APNs would then store the notification.
	Expiration time.Time
	// Topic is the bundle id; "" means the adapter's configured default.
	Topic string
}

// FCMMessage is the FCM HTTP v1 part of a rendered message.
type FCMMessage struct {
	Title    string
	Body     string
	ImageURL string
	Sound    string
	// ClickAction / deep link travels in Data as well for apps that read it.
	ClickAction string
	Data        map[string]string
	// Priority is "high" or "normal".
	Priority string
	TTL      time.Duration
	// Silent sends a data-only message (no notification block).
	Silent bool
}

// Result is the outcome of one token's send attempt.
type Result struct {
	Token string
	// ID is the provider's message id (apns-id or FCM message name) when accepted.
	ID  string
	Err error // nil when accepted; classify with Classify
	// At is when the provider's answer for this token arrived (zero =
	// unknown; callers then use the time SendBatch returned). It makes
	// time-from-fire per token, not per batch.
	At time.Time
}

// Sender is implemented by each provider adapter.
type Sender interface {
	// Platform is the platform this sender serves.
	Platform() Platform
	// Prepare opens and warms provider connections and mints the first
	// credential (APNs JWT, FCM OAuth token) so nothing of that happens at GO.
	// It returns an error classified as ClassFatal when credentials are refused.
	Prepare(ctx context.Context) error
	// SendBatch sends msg to every token concurrently and returns one Result
	// per token, in the order of tokens. It returns when every token has an
	// answer or ctx is done (then the remaining results carry ctx.Err(),
	// which Classify reports as retryable). It never retries by itself.
	SendBatch(ctx context.Context, msg *Message, tokens []string) []Result
	// Close releases connections.
	Close() error
}

// Errors every adapter maps provider answers to.
var (
	// ErrUnregistered: the token is no longer valid (APNs 410 Unregistered,
	// FCM UNREGISTERED). Never retried; reported to the feedback topic.
	ErrUnregistered = errors.New("push: token unregistered")
	// ErrBadToken: the token is malformed or for another app/environment
	// (APNs 400 BadDeviceToken/DeviceTokenNotForTopic, FCM INVALID_ARGUMENT on
	// the token). Never retried; reported to the feedback topic.
	ErrBadToken = errors.New("push: bad device token")
	// ErrFatal wraps auth and configuration failures (bad key, wrong topic,
	// payload refused for every token): stop and alert rather than burn the
	// audience.
	ErrFatal = errors.New("push: fatal provider error")
	// ErrRejected is a per-notification refusal that retrying cannot fix and
	// that says nothing about the token (e.g. payload too large).
	ErrRejected = errors.New("push: notification rejected")
)

// RetryAfterError is a provider back-pressure answer (APNs 429, FCM
// QUOTA_EXCEEDED, 5xx with Retry-After): retry after Wait (0 = use backoff).
type RetryAfterError struct {
	Wait   time.Duration
	Reason string // provider reason, for metrics labels
	Err    error
}

func (e *RetryAfterError) Error() string {
	if e.Wait > 0 {
		return fmt.Sprintf("push: retry after %s: %s: %v", e.Wait, e.Reason, e.Err)
	}
	return fmt.Sprintf("push: retryable: %s: %v", e.Reason, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// ReasonError carries the provider's reason string (for metrics and the
// feedback topic) around one of the sentinel errors above.
type ReasonError struct {
	Reason string
	Status int
	Err    error
}

func (e *ReasonError) Error() string {
	return fmt.Sprintf("%v (%d %s)", e.Err, e.Status, e.Reason)
}
func (e *ReasonError) Unwrap() error { return e.Err }

// Class is the single retry decision for an error.
type Class int

const (
	ClassOK           Class = iota // accepted
	ClassRetryable                 // 429/5xx/network/timeouts: retry with backoff until the deadline
	ClassInvalidToken              // never retry; report to feedback
	ClassRejected                  // never retry; count as failed
	ClassFatal                     // stop the sender and alert
)

func (c Class) String() string {
	switch c {
	case ClassOK:
		return "ok"
	case ClassRetryable:
		return "retryable"
	case ClassInvalidToken:
		return "invalid_token"
	case ClassRejected:
		return "rejected"
	case ClassFatal:
		return "fatal"
	}
	return "unknown"
}

// Classify is the one place that decides what to do with an error.
// Unknown errors (network, timeouts, context cancellation) are retryable.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ClassOK
	case errors.Is(err, ErrUnregistered), errors.Is(err, ErrBadToken):
		return ClassInvalidToken
	case errors.Is(err, ErrFatal):
		return ClassFatal
	case errors.Is(err, ErrRejected):
		return ClassRejected
	}
	return ClassRetryable
}

// IsRetryable reports whether err should be retried (until the deadline).
func IsRetryable(err error) bool { return Classify(err) == ClassRetryable }

// RetryWait returns the provider-requested wait for err, or 0.
func RetryWait(err error) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.Wait
	}
	return 0
}

// Reason returns the provider reason carried by err, or a class name.
func Reason(err error) string {
	var re *ReasonError
	if errors.As(err, &re) && re.Reason != "" {
		return re.Reason
	}
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.Reason != "" {
		return ra.Reason
	}
	if err == nil {
		return "ok"
	}
	return Classify(err).String()
}

// ValidToken checks a device token's shape for its platform: iOS (APNs) tokens
// are 64 hexadecimal characters; Android (FCM) registration tokens are 100 to
// 4096 characters of [A-Za-z0-9_:-]. Providers are the final judges; this only
// keeps obvious garbage out of plans.
func ValidToken(p Platform, token string) error {
	switch p {
	case IOS:
		if len(token) != 64 {
			return fmt.Errorf("ios token must be 64 hex characters, got %d characters", len(token))
		}
		for i := 0; i < len(token); i++ {
			c := token[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return fmt.Errorf("ios token has non-hex character at %d", i)
			}
		}
		return nil
	case Android:
		if len(token) < 100 || len(token) > 4096 {
			return fmt.Errorf("android token must be 100..4096 characters, got %d", len(token))
		}
		for i := 0; i < len(token); i++ {
			c := token[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-' || c == ':') {
				return fmt.Errorf("android token has invalid character at %d", i)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown platform %q", p)
}
