package pushsim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options are the command-line settings of cmd/pushsim.
type Options struct {
	Config Config
	// APNsPublicKeyFile is a PEM public key or the .p8 itself.
	APNsPublicKeyFile string
	// FCMServiceAccountFile is a service-account JSON; its public key is derived.
	FCMServiceAccountFile string
	// FaultsFor bounds the fault flags in time (0 = no end).
	FaultsFor time.Duration
	// WriteCA is a file to write the CA PEM to.
	WriteCA string
	// GenCredsDir, when set, holds AuthKey.p8 and service-account.json: they are
	// reused if both exist, generated otherwise, and token_uri is rewritten to
	// point at this simulator.
	GenCredsDir string
}

// Generated credential file names in Options.GenCredsDir.
const (
	GenAPNsKeyFile        = "AuthKey.p8"
	GenServiceAccountFile = "service-account.json"
)

// ParseArgs reads the flags of cmd/pushsim. A flag not given on the command
// line falls back to the environment variable OWLPOST_PUSHSIM_<NAME> (upper
// case, '-' as '_'), e.g. OWLPOST_PUSHSIM_APNS_ADDR.
func ParseArgs(args []string, getenv func(string) string, usageOut io.Writer) (Options, error) {
	var o Options
	c := &o.Config
	fs := flag.NewFlagSet("pushsim", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.StringVar(&c.APNsAddr, "apns-addr", "127.0.0.1:2197", "APNs (TLS, HTTP/2) listen address")
	fs.StringVar(&c.FCMAddr, "fcm-addr", "127.0.0.1:2198", "FCM v1 and OAuth2 token endpoint (TLS) listen address")
	fs.StringVar(&c.AdminAddr, "admin-addr", "127.0.0.1:2199", "admin API (plain HTTP) listen address")
	streams := fs.Uint("max-streams", DefaultMaxConcurrentStreams, "APNs HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS")
	fs.DurationVar(&c.Latency, "latency", 0, "latency added to every provider request")
	fs.DurationVar(&c.Jitter, "jitter", 0, "random extra latency in [0,jitter)")
	fs.IntVar(&c.RateCap, "rate-cap", 0, "max accepted notifications per second over both providers (0 = off)")
	fs.IntVar(&c.Budget.APNsBackgroundPerHour, "apns-background-per-hour", DefaultBudget.APNsBackgroundPerHour, "APNs background notifications per device token per hour; over it 429 TooManyRequests (0 = no budget)")
	fs.IntVar(&c.Budget.APNsBackgroundBurst, "apns-background-burst", DefaultBudget.APNsBackgroundBurst, "APNs background notifications one device token may get at once (0 = the per-hour figure)")
	apnsFaults := fs.String("apns-faults", "", "APNs fault rates, e.g. ServiceUnavailable=0.2,TooManyRequests=0.1")
	fcmFaults := fs.String("fcm-faults", "", "FCM fault rates, e.g. UNAVAILABLE=0.2,QUOTA_EXCEEDED=0.1")
	fs.DurationVar(&c.Faults.RetryAfter, "retry-after", 0, "Retry-After sent with 429/503")
	fs.DurationVar(&o.FaultsFor, "faults-for", 0, "stop the faults after this long (0 = never)")
	fs.StringVar(&c.APNsKeyID, "apns-key-id", "SIMKEY0001", "APNs key id (JWT kid)")
	fs.StringVar(&c.APNsTeamID, "apns-team-id", "SIMTEAM001", "APNs team id (JWT iss)")
	topics := fs.String("apns-topics", "", "accepted apns-topic bundle ids, comma separated (empty = any)")
	fs.StringVar(&c.FCMProject, "fcm-project", "", "FCM project id (default: the service account's, else owlpost-sim)")
	fs.StringVar(&o.APNsPublicKeyFile, "apns-public-key", "", "PEM public key or .p8 file of the APNs key")
	fs.StringVar(&o.FCMServiceAccountFile, "fcm-service-account", "", "service-account JSON file")
	fs.StringVar(&o.WriteCA, "write-ca", "", "write the TLS CA certificate (PEM) to this file")
	fs.StringVar(&o.GenCredsDir, "gen-creds", "", "write (or reuse) AuthKey.p8 and service-account.json in this directory and serve with them")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("pushsim: unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "OWLPOST_PUSHSIM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && !set[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("pushsim: %s: %w", env, err))
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	c.MaxConcurrentStreams = uint32(*streams)
	if *topics != "" {
		c.APNsTopics = strings.Split(*topics, ",")
	}
	var err error
	if c.Faults.APNsRates, err = parseRates(*apnsFaults); err != nil {
		return o, err
	}
	if c.Faults.FCMRates, err = parseRates(*fcmFaults); err != nil {
		return o, err
	}
	if o.GenCredsDir == "" && (o.APNsPublicKeyFile == "" || o.FCMServiceAccountFile == "") {
		return o, errors.New("pushsim: give --apns-public-key and --fcm-service-account, or --gen-creds DIR")
	}
	return o, nil
}

// parseRates reads "Key=0.1,Other=0.2".
func parseRates(s string) (map[string]float64, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("pushsim: fault %q is not NAME=RATE", kv)
		}
		p, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("pushsim: fault %q: %w", kv, err)
		}
		out[k] = p
	}
	return out, nil
}

// Serve loads or generates the credentials, runs the simulator until ctx
// ends, then closes it.
func Serve(ctx context.Context, o Options, log *slog.Logger) error {
	cfg := o.Config
	if o.FaultsFor > 0 {
		cfg.Faults.Until = time.Now().Add(o.FaultsFor)
	}
	var saJSON []byte
	if o.GenCredsDir != "" {
		sa, err := loadOrGenerateCreds(o.GenCredsDir, cfg.FCMProject)
		if err != nil {
			return err
		}
		if o.APNsPublicKeyFile == "" {
			o.APNsPublicKeyFile = filepath.Join(o.GenCredsDir, GenAPNsKeyFile)
		}
		saJSON = sa
	}
	if o.APNsPublicKeyFile != "" {
		b, err := os.ReadFile(o.APNsPublicKeyFile)
		if err != nil {
			return fmt.Errorf("pushsim: read APNs key: %w", err)
		}
		if cfg.APNsPublicKey, err = ParseAPNsPublicKey(b); err != nil {
			return err
		}
	}
	if o.FCMServiceAccountFile != "" {
		b, err := os.ReadFile(o.FCMServiceAccountFile)
		if err != nil {
			return fmt.Errorf("pushsim: read service account: %w", err)
		}
		saJSON = b
	}
	pub, project, err := ServiceAccountPublicKey(saJSON)
	if err != nil {
		return err
	}
	cfg.FCMServiceAccountKey = pub
	if cfg.FCMProject == "" {
		cfg.FCMProject = project
	}
	if cfg.FCMProject == "" {
		cfg.FCMProject = "owlpost-sim"
	}

	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return err
	}
	if o.GenCredsDir != "" {
		sa, err := ServiceAccountWithTokenURI(saJSON, s.TokenURL())
		if err == nil {
			err = os.WriteFile(filepath.Join(o.GenCredsDir, GenServiceAccountFile), sa, 0o600)
		}
		if err != nil {
			_ = s.Close()
			return fmt.Errorf("pushsim: write service account: %w", err)
		}
	}
	if o.WriteCA != "" {
		if err := os.WriteFile(o.WriteCA, s.CACertPEM(), 0o644); err != nil {
			_ = s.Close()
			return fmt.Errorf("pushsim: write CA: %w", err)
		}
	}
	log.Info("pushsim serving",
		"apns", s.APNsURL(), "fcm_endpoint", s.FCMURL(), "token_uri", s.TokenURL(), "admin", s.AdminURL(),
		"fcm_project", cfg.FCMProject, "apns_key_id", cfg.APNsKeyID, "apns_team_id", cfg.APNsTeamID,
		"max_streams", cfg.MaxConcurrentStreams, "latency", cfg.Latency, "jitter", cfg.Jitter, "rate_cap", cfg.RateCap, "apns_background_per_hour", cfg.Budget.APNsBackgroundPerHour, "apns_background_burst", cfg.Budget.APNsBackgroundBurst,
		"creds_dir", o.GenCredsDir, "ca_file", o.WriteCA)
	<-ctx.Done()
	log.Info("pushsim shutting down", "accepted", s.Stats("").Accepted)
	return s.Close()
}

// loadOrGenerateCreds reuses dir/AuthKey.p8 and dir/service-account.json if
// both exist, else writes new ones (token_uri is fixed up after Start).
func loadOrGenerateCreds(dir, project string) ([]byte, error) {
	keyPath, saPath := filepath.Join(dir, GenAPNsKeyFile), filepath.Join(dir, GenServiceAccountFile)
	_, err1 := os.Stat(keyPath)
	saJSON, err2 := os.ReadFile(saPath)
	if err1 == nil && err2 == nil {
		return saJSON, nil
	}
	if project == "" {
		project = "owlpost-sim"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pushsim: creds dir: %w", err)
	}
	p8, _, err := GenerateAPNsKey()
	if err != nil {
		return nil, err
	}
	if saJSON, _, err = GenerateServiceAccount(project, ""); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, p8, 0o600); err != nil {
		return nil, fmt.Errorf("pushsim: write APNs key: %w", err)
	}
	if err := os.WriteFile(saPath, saJSON, 0o600); err != nil {
		return nil, fmt.Errorf("pushsim: write service account: %w", err)
	}
	return saJSON, nil
}
