package guard_test

import (
	"testing"

	"github.com/owlpost/owlpost/internal/guard"
)

// TestClaimStateString covers every value, including ones no call returns:
// printing a ClaimState never panics.
func TestClaimStateString(t *testing.T) {
	for _, tc := range []struct {
		s    guard.ClaimState
		want string
	}{
		{guard.ClaimOK, "claimed"}, {guard.ClaimTakeover, "takeover"}, {guard.ClaimDone, "done"},
		{guard.ClaimHeld, "held"}, {guard.ClaimState(-1), "ClaimState(-1)"}, {guard.ClaimState(4), "ClaimState(4)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.s.String(); got != tc.want {
				t.Errorf("ClaimState(%d).String() = %q, want %q", int(tc.s), got, tc.want)
			}
		})
	}
}
