// Package retry holds what waiting between attempts needs everywhere: a
// sleep that ends early when its context does, so a stage shutting down
// never waits out a backoff.
package retry

import (
	"context"
	"time"
)

// Sleep waits d or until ctx is done, and reports whether d passed (false:
// ctx is done; the caller returns ctx.Err()). d <= 0 does not wait.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
