package h2_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/owlpost/owlpost/internal/bench"
	"github.com/owlpost/owlpost/internal/push/h2"
)

// Client CPU per push, with the simulator (cmd/pushsim) in a process of its
// own, so that this process's CPU time (getrusage) is the client's alone and
// allocs/op counts the client's allocations per push. Run it with:
//
//	go test -run '^$' -bench ClientCPU -benchtime 100000x -count 3 ./internal/push/h2
//
// Sub-benchmarks, one op = one push, all over 4 connections with cpuWorkers
// goroutines sending:
//   - apns2: sideshow/apns2 with this transport as Client.HTTPClient's (what
//     the apns adapter does, without the adapter's own work);
//   - direct: a ready request per push (a shallow copy of a template with its
//     own URL and body), straight to RoundTrip: the transport's own cost.
//
// The figures are pushes/cpu-s (client CPU only) and allocs/op.
const (
	cpuConns   = 4
	cpuWorkers = 1000 // 250 streams per connection, as h2load's reference runs
	cpuTopic   = "com.example.owlapp"
)

// cpuPayload is an alert of about the size of the bench campaign's (190 bytes).
var cpuPayload = []byte(`{"aps":{"alert":{"title":"The owls are flying","body":"Tonight's lesson is ready: ` +
	`five minutes of Spanish before the game ends."},"sound":"default","mutable-content":1},"c":"bench-cpu"}`)

func BenchmarkClientCPU(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "pushsim")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/owlpost/owlpost/cmd/pushsim").CombinedOutput(); err != nil {
		b.Fatalf("build pushsim: %v\n%s", err, out)
	}
	ctx := context.Background()
	sim, err := bench.StartSim(ctx, bin, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Stop(5 * time.Second)
	tlsConf, err := sim.TLSConfig()
	if err != nil {
		b.Fatal(err)
	}
	key, err := token.AuthKeyFromFile(sim.KeyFile())
	if err != nil {
		b.Fatal(err)
	}
	jwt := &token.Token{AuthKey: key, KeyID: sim.KeyID, TeamID: sim.TeamID}
	expiration := time.Now().Add(time.Hour)

	b.Run("apns2", func(b *testing.B) {
		tr := h2.New(h2.Options{TLSConfig: tlsConf, Conns: cpuConns})
		defer tr.Close()
		c := apns2.NewTokenClient(jwt)
		c.HTTPClient = &http.Client{Transport: tr}
		c.Host = sim.APNsURL
		runCPU(b, func(tok string) error {
			res, err := c.PushWithContext(ctx, &apns2.Notification{DeviceToken: tok, Topic: cpuTopic,
				CollapseID: "bench-cpu", Priority: 10, PushType: apns2.PushTypeAlert, Payload: cpuPayload,
				Expiration: expiration})
			if err == nil && res.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d %s", res.StatusCode, res.Reason)
			}
			return err
		})
	})

	b.Run("direct", func(b *testing.B) {
		tr := h2.New(h2.Options{TLSConfig: tlsConf, Conns: cpuConns})
		defer tr.Close()
		tmpl, err := http.NewRequestWithContext(ctx, http.MethodPost, sim.APNsURL, nil)
		if err != nil {
			b.Fatal(err)
		}
		tmpl.Header = http.Header{
			"Authorization":    {"bearer " + jwt.GenerateIfExpired()},
			"Content-Type":     {"application/json; charset=utf-8"},
			"Apns-Topic":       {cpuTopic},
			"Apns-Collapse-Id": {"bench-cpu"},
			"Apns-Priority":    {"10"},
			"Apns-Expiration":  {strconv.FormatInt(expiration.Unix(), 10)},
			"Apns-Push-Type":   {"alert"},
		}
		tmpl.ContentLength = int64(len(cpuPayload))
		runCPU(b, func(tok string) error {
			req := *tmpl
			u := *tmpl.URL
			u.Path = "/3/device/" + tok
			req.URL = &u
			req.Body = io.NopCloser(bytes.NewReader(cpuPayload))
			resp, err := tr.RoundTrip(&req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	})
}

// runCPU warms the connections with one push per connection, then sends b.N
// pushes from cpuWorkers goroutines and reports pushes per client
// CPU-second.
func runCPU(b *testing.B, push func(tok string) error) {
	toks := make([]string, b.N)
	for i := range toks {
		toks[i] = fmt.Sprintf("c0%062x", i)
	}
	for i := range cpuConns {
		if err := push(fmt.Sprintf("c1%062x", i)); err != nil {
			b.Fatalf("warm-up push: %v", err)
		}
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := bench.SelfCPU()
	for range min(cpuWorkers, b.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(toks)) {
					return
				}
				if err := push(toks[i]); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	cpu := bench.SelfCPU() - cpu0
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "pushes/cpu-s")
}
