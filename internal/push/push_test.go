package push

import (
	"strings"
	"testing"
)

const (
	iosTok     = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	androidTok = "cV1a2B3c4D5e6F7g8H9i0J:APA91bH_kLmNoPqRsTuVwXyZ0123456789-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-abcdefghij"
)

func TestValidToken(t *testing.T) {
	tests := []struct {
		name string
		p    Platform
		tok  string
		ok   bool
	}{
		{"ios lower hex", IOS, iosTok, true},
		{"ios upper hex", IOS, strings.ToUpper(iosTok), true},
		{"ios 65 chars", IOS, iosTok + "a", false},
		{"ios empty", IOS, "", false},
		{"android fcm token", Android, androidTok, true},
		{"android 100 chars", Android, strings.Repeat("a", 100), true},
		{"android 4096 chars", Android, strings.Repeat("a", 4096), true},
		{"android 4097 chars", Android, strings.Repeat("a", 4097), false},
		{"android space", Android, strings.Repeat("a", 100) + " ", false},
		{"unknown platform", Platform("web"), iosTok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidToken(tt.p, tt.tok)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidToken = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && len(tt.tok) > 0 && strings.Contains(err.Error(), tt.tok) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{ClassOK: "ok", ClassRetryable: "retryable", ClassInvalidToken: "invalid_token",
		ClassRejected: "rejected", ClassFatal: "fatal", Class(-1): "unknown", ClassFatal + 1: "unknown"} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}
