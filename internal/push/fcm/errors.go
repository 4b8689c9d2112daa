package fcm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"

	"github.com/owlpost/owlpost/internal/push"
)

// sendError maps one failed firebase Send to the push error classes. It is
// the only place in owlpost that knows FCM error codes. authRefused reports
// whether the last OAuth2 token fetch was refused by the token endpoint (a
// failed fetch reaches firebase as a bare transport error, whose type it
// flattens into a string).
//
// INVALID_ARGUMENT is ambiguous in FCM: it is the answer both for a malformed
// registration token and for an invalid message field. Campaign messages are
// validated before sending, and Google adds a google.rpc.BadRequest detail
// naming the field when the message is at fault, so INVALID_ARGUMENT is read
// as ErrBadToken unless such a detail names a field other than message.token,
// in which case it is ErrRejected (the token must not be reported invalid for
// a fault of the message).
func sendError(ctx context.Context, err error, authRefused bool, now time.Time) error {
	if err == nil {
		return nil
	}
	resp := errorutils.HTTPResponse(err)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	switch {
	// FCM errorCode (google.firebase.fcm.v1.FcmError detail).
	case messaging.IsUnregistered(err):
		return &push.ReasonError{Reason: "UNREGISTERED", Status: status, Err: push.ErrUnregistered}
	case messaging.IsSenderIDMismatch(err):
		return &push.ReasonError{Reason: "SENDER_ID_MISMATCH", Status: status, Err: push.ErrFatal}
	case messaging.IsThirdPartyAuthError(err):
		return &push.ReasonError{Reason: "THIRD_PARTY_AUTH_ERROR", Status: status, Err: push.ErrFatal}
	case messaging.IsInvalidArgument(err), errorutils.IsInvalidArgument(err):
		if messageFieldViolation(resp) {
			return &push.ReasonError{Reason: "INVALID_ARGUMENT", Status: status, Err: push.ErrRejected}
		}
		return &push.ReasonError{Reason: "INVALID_ARGUMENT", Status: status, Err: push.ErrBadToken}
	case messaging.IsQuotaExceeded(err):
		return retryError("QUOTA_EXCEEDED", resp, err, now)
	case messaging.IsUnavailable(err):
		return retryError("UNAVAILABLE", resp, err, now)
	case messaging.IsInternal(err):
		return retryError("INTERNAL", resp, err, now)

	// Google platform status only (no FcmError detail).
	case errorutils.IsUnauthenticated(err):
		return &push.ReasonError{Reason: "UNAUTHENTICATED", Status: status, Err: push.ErrFatal}
	case errorutils.IsPermissionDenied(err):
		return &push.ReasonError{Reason: "PERMISSION_DENIED", Status: status, Err: push.ErrFatal}
	case errorutils.IsNotFound(err):
		// Unregistered tokens carry the UNREGISTERED detail; a bare 404 means
		// a wrong project or endpoint.
		return &push.ReasonError{Reason: "NOT_FOUND", Status: status, Err: push.ErrFatal}
	case errorutils.IsResourceExhausted(err):
		return retryError("RESOURCE_EXHAUSTED", resp, err, now)
	case errorutils.IsUnavailable(err):
		return retryError("UNAVAILABLE", resp, err, now)
	case errorutils.IsInternal(err):
		return retryError("INTERNAL", resp, err, now)
	}

	if resp == nil { // transport failure: no HTTP answer
		if cerr := ctx.Err(); cerr != nil {
			return cerr // the caller gave up (push.Sender contract)
		}
		if errorutils.IsDeadlineExceeded(err) {
			return &push.RetryAfterError{Reason: "timeout", Err: err}
		}
		if authRefused {
			return &push.ReasonError{Reason: "oauth2_refused", Err: push.ErrFatal}
		}
		return &push.RetryAfterError{Reason: "network", Err: err}
	}
	label := "http_" + strconv.Itoa(status)
	if status == http.StatusTooManyRequests || status >= 500 {
		return retryError(label, resp, err, now)
	}
	return &push.ReasonError{Reason: label, Status: status, Err: push.ErrRejected}
}

func retryError(reason string, resp *http.Response, err error, now time.Time) error {
	var wait time.Duration
	if resp != nil {
		wait = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return &push.RetryAfterError{Wait: wait, Reason: reason, Err: err}
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

// messageFieldViolation reports whether Google's error body carries a
// google.rpc.BadRequest field violation for a field other than the token.
func messageFieldViolation(resp *http.Response) bool {
	if resp == nil || resp.Body == nil {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return false
	}
	var e struct {
		Error struct {
			Details []struct {
				Type            string `json:"@type"`
				FieldViolations []struct {
					Field string `json:"field"`
				} `json:"fieldViolations"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, d := range e.Error.Details {
		if d.Type != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		for _, v := range d.FieldViolations {
			if v.Field != "" && v.Field != "message.token" {
				return true
			}
		}
	}
	return false
}
