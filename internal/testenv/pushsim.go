package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/pushsim"
)

// Credentials of the in-process push simulator PushSim starts.
const (
	SimKeyID   = "ABC123DEFG"
	SimTeamID  = "TEAM123456"
	SimProject = "owlpost-sim"
	SimTopic   = "com.example.owlapp"
)

// Sim is a running in-process push simulator and the credentials it trusts.
type Sim struct {
	*pushsim.Server
	P8             []byte // APNs signing key (key id SimKeyID, team SimTeamID)
	ServiceAccount []byte // FCM service account JSON whose token_uri is the simulator's
}

// StartPushSim starts an in-process push simulator trusting a freshly
// generated APNs .p8 key and FCM service account. mutate may adjust the
// simulator's config (faults, latency, keys) before it starts. It is closed
// at cleanup.
func StartPushSim(t testing.TB, mutate func(*pushsim.Config)) *Sim {
	t.Helper()
	p8, pub, err := pushsim.GenerateAPNsKey()
	if err != nil {
		t.Fatal(err)
	}
	sa, saPub, err := pushsim.GenerateServiceAccount(SimProject, "")
	if err != nil {
		t.Fatal(err)
	}
	sc := pushsim.Config{APNsKeyID: SimKeyID, APNsTeamID: SimTeamID, APNsPublicKey: pub,
		APNsTopics: []string{SimTopic}, FCMProject: SimProject, FCMServiceAccountKey: saPub}
	if mutate != nil {
		mutate(&sc)
	}
	sim, err := pushsim.New(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	if sa, err = pushsim.ServiceAccountWithTokenURI(sa, sim.TokenURL()); err != nil {
		t.Fatal(err)
	}
	return &Sim{Server: sim, P8: p8, ServiceAccount: sa}
}

// PushSim starts a simulator (StartPushSim), writes its key, service
// account and CA files into a temp dir, and points cfg.APNs and cfg.FCM at
// it.
func PushSim(t testing.TB, cfg *config.Config, mutate func(*pushsim.Config)) *pushsim.Server {
	t.Helper()
	s := StartPushSim(t, mutate)
	sim, p8, sa := s.Server, s.P8, s.ServiceAccount
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.pem", sim.CACertPEM())
	cfg.APNs = config.APNsConfig{Host: sim.APNsURL(), Topic: SimTopic, KeyFile: write("AuthKey.p8", p8),
		KeyID: SimKeyID, TeamID: SimTeamID, CAFile: ca, Connections: 2, Timeout: 10 * time.Second,
		Transport: cfg.APNs.Transport}
	cfg.FCM = config.FCMConfig{ProjectID: SimProject, CredentialsFile: write("sa.json", sa), Endpoint: sim.FCMURL(),
		CAFile: ca, Clients: 2, Timeout: 10 * time.Second, Transport: cfg.FCM.Transport}
	return sim
}
