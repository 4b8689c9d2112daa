package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sideshow/apns2/token"
)

// H2loadOptions shapes the h2load run: Conns connections with Streams
// requests in flight on each (h2load's -c and -m), one client thread.
type H2loadOptions struct {
	N, Conns, Streams int
}

// RawH2load sends o.N APNs requests with h2load, nghttp2's C load generator
// (Debian's nghttp2-client, installed by scripts/devstack.sh), to the
// simulator: the headers and payload raw apns2 sends (a signed JWT, topic,
// collapse id, push type, priority, expiration) to device paths from a URI
// list. It is the lean-client reference for CPU per request: h2load's own
// CPU time (user + system) against the simulator's count of campaign, which
// must be exactly o.N.
func RawH2load(ctx context.Context, sim *Sim, o H2loadOptions, dir, campaign string) (Metrics, error) {
	bin, err := exec.LookPath("h2load")
	if err != nil {
		return nil, fmt.Errorf("bench: h2load not found (scripts/devstack.sh up installs Debian's nghttp2-client): %w", err)
	}
	key, err := token.AuthKeyFromFile(sim.KeyFile())
	if err != nil {
		return nil, fmt.Errorf("bench: h2load: key: %w", err)
	}
	jwt := &token.Token{AuthKey: key, KeyID: sim.KeyID, TeamID: sim.TeamID}
	if _, err := jwt.Generate(); err != nil {
		return nil, fmt.Errorf("bench: h2load: sign JWT: %w", err)
	}
	bearer := jwt.Bearer
	ios, _, err := rawMessages(campaign)
	if err != nil {
		return nil, err
	}
	payload := filepath.Join(dir, "h2load-payload.json")
	if err := os.WriteFile(payload, ios.APNs.Payload, 0o600); err != nil {
		return nil, fmt.Errorf("bench: h2load: %w", err)
	}
	uris := filepath.Join(dir, "h2load-uris.txt")
	if err := writeURIs(uris, sim.APNsURL, o.N); err != nil {
		return nil, err
	}
	args := []string{"-n", strconv.Itoa(o.N), "-c", strconv.Itoa(o.Conns), "-m", strconv.Itoa(o.Streams), "-t", "1",
		"-d", payload, "-i", uris,
		"-H", "authorization: bearer " + bearer,
		"-H", "apns-topic: " + sim.Topic,
		"-H", "apns-collapse-id: " + ios.CollapseID,
		"-H", "apns-push-type: " + ios.APNs.PushType,
		"-H", "apns-priority: " + strconv.Itoa(ios.APNs.Priority),
		"-H", "apns-expiration: " + strconv.FormatInt(ios.APNs.Expiration.Unix(), 10),
		"-H", "content-type: application/json",
	}
	simBefore, _ := ReadUsage(sim.Pid())
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := os.Create(filepath.Join(dir, "h2load.log"))
	if err != nil {
		return nil, fmt.Errorf("bench: h2load: %w", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: h2load: %w (see %s)", err, out.Name())
	}
	wall := time.Since(t0)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	simAfter, _ := ReadUsage(sim.Pid())
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Each h2load client walks the URI list from its start, so tokens repeat
	// across connections: the count is checked, not the distinctness.
	st, err := sim.WaitAccepted(wctx, campaign, int64(o.N), 50*time.Millisecond)
	if err != nil || st.Accepted != int64(o.N) {
		return nil, fmt.Errorf("bench: h2load: simulator accepted %d of %d: %v (see %s)", st.Accepted, o.N, err, out.Name())
	}
	var m Metrics
	m.Add("raw.h2load.notifications", "count", float64(o.N))
	m.Add("raw.h2load.wall", "s", wall.Seconds())
	m.Add("raw.h2load.rate", "notif/s", float64(o.N)/wall.Seconds())
	m.Add("raw.h2load.client_cpu", "cpu-s", cpu.Seconds())
	m.Add("raw.h2load.per_client_cpu_s", "notif/cpu-s", perCPU(o.N, cpu))
	m.Add("raw.h2load.sim_cpu", "cpu-s", (simAfter.CPU - simBefore.CPU).Seconds())
	return m, nil
}

// writeURIs writes n request URIs, one device token each, for h2load -i.
func writeURIs(path, base string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: h2load: %w", err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, "%s/3/device/%s\n", base, rawAPNsToken(i))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("bench: h2load: %w", err)
	}
	return f.Close()
}
