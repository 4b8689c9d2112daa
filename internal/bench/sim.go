package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/owlpost/owlpost/internal/pushsim"
)

// Sim is a pushsim process on free loopback ports, with credentials it
// generated into its own directory.
type Sim struct {
	*Proc
	APNsURL  string // https://127.0.0.1:port (apns2 Client.Host)
	FCMURL   string // https://127.0.0.1:port/v1 (option.WithEndpoint)
	AdminURL string // http://127.0.0.1:port
	CredsDir string // AuthKey.p8, service-account.json
	CAFile   string

	KeyID, TeamID, Project, Topic string

	admin *http.Client
}

// StartSim starts bin (cmd/pushsim) with extra flags and waits until it
// serves. dir holds its log, credentials and CA.
func StartSim(ctx context.Context, bin, dir string, extra ...string) (*Sim, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := FreePort()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	s := &Sim{
		APNsURL:  "https://" + addrs[0],
		FCMURL:   "https://" + addrs[1] + "/v1",
		AdminURL: "http://" + addrs[2],
		CredsDir: filepath.Join(dir, "creds"),
		CAFile:   filepath.Join(dir, "ca.pem"),
		KeyID:    "SIMKEY0001",
		TeamID:   "SIMTEAM001",
		Project:  "owlpost-sim",
		Topic:    "com.example.owlapp",
		admin:    &http.Client{Timeout: 30 * time.Second},
	}
	args := append([]string{"--apns-addr", addrs[0], "--fcm-addr", addrs[1], "--admin-addr", addrs[2],
		"--gen-creds", s.CredsDir, "--write-ca", s.CAFile,
		"--apns-key-id", s.KeyID, "--apns-team-id", s.TeamID, "--fcm-project", s.Project}, extra...)
	_ = os.Remove(s.CAFile)
	p, err := StartProc("pushsim", dir, nil, bin, args...)
	if err != nil {
		return nil, err
	}
	s.Proc = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(s.CAFile); err == nil && st.Size() > 0 {
			if _, err := s.Stats(ctx, ""); err == nil {
				return s, nil
			}
		}
		if err := p.Exited(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop(2 * time.Second)
			return nil, fmt.Errorf("bench: pushsim did not start within 20s (log %s)", p.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TLSConfig trusts the simulator's CA.
func (s *Sim) TLSConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("bench: simulator CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("bench: simulator CA: no certificate in PEM")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// KeyFile and ServiceAccountFile are the generated credentials.
func (s *Sim) KeyFile() string { return filepath.Join(s.CredsDir, pushsim.GenAPNsKeyFile) }

// ServiceAccountFile is the generated service-account JSON (token_uri points
// at the simulator).
func (s *Sim) ServiceAccountFile() string {
	return filepath.Join(s.CredsDir, pushsim.GenServiceAccountFile)
}

// Stats fetches the simulator's record for campaign ("" = all).
func (s *Sim) Stats(ctx context.Context, campaign string) (pushsim.Stats, error) {
	var st pushsim.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		s.AdminURL+"/stats?campaign="+url.QueryEscape(campaign), nil)
	if err != nil {
		return st, err
	}
	resp, err := s.admin.Do(req)
	if err != nil {
		return st, fmt.Errorf("bench: simulator stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("bench: simulator stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("bench: simulator stats: %w", err)
	}
	return st, nil
}

// WaitAccepted polls the simulator until campaign has at least n accepted
// notifications or ctx ends; it returns the last stats.
func (s *Sim) WaitAccepted(ctx context.Context, campaign string, n int64, poll time.Duration) (pushsim.Stats, error) {
	for {
		st, err := s.Stats(ctx, campaign)
		if err == nil && st.Accepted >= n {
			return st, nil
		}
		if e := s.Exited(); e != nil {
			return st, e
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("bench: waiting for %d accepted notifications of %s (have %d): %w",
				n, campaign, st.Accepted, ctx.Err())
		case <-time.After(poll):
		}
	}
}
