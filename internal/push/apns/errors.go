package apns

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sideshow/apns2"

	"github.com/owlpost/owlpost/internal/push"
)

// statusError is the provider answer carried inside a *push.RetryAfterError.
type statusError struct {
	status int
	reason string
}

func (e *statusError) Error() string {
	return "apns: status " + strconv.Itoa(e.status) + " " + e.reason
}

// responseError maps one APNs answer (HTTP status, JSON "reason", Retry-After
// header value) to the push error classes. It is the only place in owlpost
// that knows APNs reason strings. A nil error means accepted (200).
//
// Reasons outside Apple's documented list are reported as "http_<status>" so
// a misbehaving server cannot blow up metric label cardinality.
func responseError(status int, reason, retryAfter string, now time.Time) error {
	if status == http.StatusOK {
		return nil
	}
	switch reason {
	case apns2.ReasonUnregistered, apns2.ReasonExpiredToken:
		return &push.ReasonError{Reason: reason, Status: status, Err: push.ErrUnregistered}

	case apns2.ReasonBadDeviceToken, apns2.ReasonDeviceTokenNotForTopic, apns2.ReasonMissingDeviceToken:
		return &push.ReasonError{Reason: reason, Status: status, Err: push.ErrBadToken}

	case apns2.ReasonTooManyRequests, apns2.ReasonTooManyProviderTokenUpdates,
		apns2.ReasonInternalServerError, apns2.ReasonServiceUnavailable,
		apns2.ReasonShutdown, apns2.ReasonIdleTimeout:
		return retryError(status, reason, retryAfter, now)

	// Auth and configuration: the same answer would come for every token.
	case apns2.ReasonInvalidProviderToken, apns2.ReasonExpiredProviderToken,
		apns2.ReasonMissingProviderToken, apns2.ReasonBadCertificate,
		apns2.ReasonBadCertificateEnvironment, apns2.ReasonForbidden,
		apns2.ReasonTopicDisallowed, apns2.ReasonBadTopic, apns2.ReasonMissingTopic,
		apns2.ReasonBadPath, apns2.ReasonMethodNotAllowed:
		return &push.ReasonError{Reason: reason, Status: status, Err: push.ErrFatal}

	// The notification itself is refused; the token is not at fault.
	case apns2.ReasonPayloadTooLarge, apns2.ReasonBadCollapseID,
		apns2.ReasonBadExpirationDate, apns2.ReasonBadMessageID,
		apns2.ReasonBadPriority, apns2.ReasonDuplicateHeaders,
		apns2.ReasonInvalidPushType, apns2.ReasonPayloadEmpty:
		return &push.ReasonError{Reason: reason, Status: status, Err: push.ErrRejected}
	}

	// Unknown reason: decide by status.
	label := "http_" + strconv.Itoa(status)
	switch {
	case status == http.StatusGone:
		return &push.ReasonError{Reason: label, Status: status, Err: push.ErrUnregistered}
	case status == http.StatusTooManyRequests || status >= 500:
		return retryError(status, label, retryAfter, now)
	case status == http.StatusUnauthorized || status == http.StatusForbidden ||
		status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return &push.ReasonError{Reason: label, Status: status, Err: push.ErrFatal}
	}
	return &push.ReasonError{Reason: label, Status: status, Err: push.ErrRejected}
}

func retryError(status int, reason, retryAfter string, now time.Time) error {
	return &push.RetryAfterError{
		Wait:   parseRetryAfter(retryAfter, now),
		Reason: reason,
		Err:    &statusError{status: status, reason: reason},
	}
}

// parseRetryAfter reads an HTTP Retry-After value: delay-seconds or an
// HTTP-date. Anything else, or a date in the past, is 0 (use backoff).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
