package pushsim

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr bool
		check   func(*testing.T, Options)
	}{
		{"needs credentials", nil, nil, true, nil},
		{"flags", []string{"--gen-creds", "/tmp/x", "--rate-cap", "7", "--apns-faults", "ServiceUnavailable=0.2,TooManyRequests=0.1",
			"--apns-topics", "a.b,c.d", "--latency", "2ms"}, nil, false, func(t *testing.T, o Options) {
			c := o.Config
			if c.RateCap != 7 || c.Faults.APNsRates["TooManyRequests"] != 0.1 || len(c.APNsTopics) != 2 || c.Latency != 2*time.Millisecond ||
				c.APNsAddr != "127.0.0.1:2197" || c.FCMAddr != "127.0.0.1:2198" || c.AdminAddr != "127.0.0.1:2199" {
				t.Fatalf("options %+v", o)
			}
		}},
		{"env fallback, flag wins", []string{"--gen-creds", "/tmp/x", "--fcm-addr", "127.0.0.1:1"},
			map[string]string{"OWLPOST_PUSHSIM_FCM_ADDR": "127.0.0.1:2", "OWLPOST_PUSHSIM_ADMIN_ADDR": "127.0.0.1:3",
				"OWLPOST_PUSHSIM_FCM_FAULTS": "UNAVAILABLE=0.5"}, false, func(t *testing.T, o Options) {
				if o.Config.FCMAddr != "127.0.0.1:1" || o.Config.AdminAddr != "127.0.0.1:3" || o.Config.Faults.FCMRates["UNAVAILABLE"] != 0.5 {
					t.Fatalf("options %+v", o.Config)
				}
			}},
		{"bad env value", []string{"--gen-creds", "/tmp/x"}, map[string]string{"OWLPOST_PUSHSIM_RATE_CAP": "many"}, true, nil},
		{"bad rate", []string{"--gen-creds", "/tmp/x", "--fcm-faults", "UNAVAILABLE"}, nil, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseArgs(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func TestServeGenCreds(t *testing.T) {
	dir := t.TempDir()
	o, err := ParseArgs([]string{"--gen-creds", dir, "--write-ca", filepath.Join(dir, "ca.pem"),
		"--apns-addr", "127.0.0.1:0", "--fcm-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	saPath := filepath.Join(dir, GenServiceAccountFile)
	var sa []byte
	for range 200 { // wait until token_uri has been rewritten and the CA written
		if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil { // written after token_uri
			if sa, err = os.ReadFile(saPath); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sa), `"token_uri": "https://127.0.0.1:`) {
		t.Fatalf("token_uri not rewritten: %s", sa)
	}
	pub, project, err := ServiceAccountPublicKey(sa)
	if err != nil || pub == nil || project != "owlpost-sim" {
		t.Fatalf("service account: %v %v %q", err, pub, project)
	}
	p8, err := os.ReadFile(filepath.Join(dir, GenAPNsKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseAPNsPublicKey(p8); err != nil {
		t.Fatal(err)
	}
}
