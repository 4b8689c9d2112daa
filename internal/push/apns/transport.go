package apns

import (
	"context"
	"net/http"

	"github.com/owlpost/owlpost/internal/push/h2"
)

// reqContext is the per-request context handed to apns2.Client.PushWithContext.
// apns2's Response does not expose response headers, and its Notification
// cannot say "apns-expiration: 0"; the transport below reads and writes these
// through the request's context. A reqContext serves one push; it is not
// reused, because http2's stream goroutine may read the request context
// after the response has been returned.
type reqContext struct {
	context.Context
	// expireNow asks the transport to send apns-expiration: 0 (deliver once,
	// do not store) when apns2 left the header out (it only sends times after
	// the Unix epoch).
	expireNow bool
	// fields are the fast transport's header fields of the push
	// (Sender.headerFields), answered for h2.FieldsKey.
	fields []h2.Field
	// retryAfter is the Retry-After header of a 429/5xx answer, set by the
	// transport in the worker's own goroutine before PushWithContext returns.
	retryAfter string
}

type reqContextKey struct{}

func (c *reqContext) Value(key any) any {
	switch key {
	case reqContextKey{}:
		return c
	case h2.FieldsKey{}:
		if c.fields != nil {
			return c.fields
		}
	}
	return c.Context.Value(key)
}

// transport wraps apns2's HTTP/2 transport; see reqContext.
type transport struct {
	base http.RoundTripper
	zero []string // {"0"}, shared read-only by every request
}

// hdrExpiration is apns-expiration in canonical form (direct map access
// avoids canonicalising, and allocating, per request).
const hdrExpiration = "Apns-Expiration"

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	rc, _ := req.Context().Value(reqContextKey{}).(*reqContext)
	if rc != nil && rc.expireNow {
		if _, ok := req.Header[hdrExpiration]; !ok {
			// RoundTrip must not modify the caller's request: shallow copy
			// with a new header map sharing the (unmodified) value slices.
			h := make(http.Header, len(req.Header)+1)
			for k, v := range req.Header {
				h[k] = v
			}
			h[hdrExpiration] = t.zero
			r2 := *req
			r2.Header = h
			req = &r2
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil && rc != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) {
		rc.retryAfter = resp.Header.Get("Retry-After")
	}
	return resp, err
}

// CloseIdleConnections lets apns2.Client.CloseIdleConnections reach the
// HTTP/2 transport.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
