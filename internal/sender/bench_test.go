package sender_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/pushsim"
	"github.com/owlpost/owlpost/internal/testenv"
)

// The benchmarks compare the whole sender (Kafka consumer, Redis guard,
// adapter, results) with raw apns2 against the same in-process simulator,
// with the same shape: 500-token batches, 8 batches in flight, every token of
// a batch concurrently, 4 HTTP/2 connections. One op is one batch.
//
//	go test -run '^$' -bench . -benchtime 400x ./internal/sender
//
// CPU is getrusage(RUSAGE_SELF): this process, so the in-process simulator's
// share is included in both figures alike; Kafka and Redis run in their own
// processes (not counted) on the same cores.
const (
	benchBatch    = 500
	benchInFlight = 8
	benchConns    = 4
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRate(b *testing.B, n int, wall, cpu time.Duration, st pushsim.Stats) {
	b.ReportMetric(float64(n)/wall.Seconds(), "tokens/s")
	// First to last acceptance: the rate once sending runs (no start-up).
	b.ReportMetric(float64(n)/st.Last.Sub(st.First).Seconds(), "drain-tokens/s")
	b.ReportMetric(float64(n)/cpu.Seconds(), "tokens/cpu-s")
	b.ReportMetric(0, "ns/op") // the wall time per batch is tokens/s / 500
}

// BenchmarkSender drains a pre-filled iOS send topic: from starting the stage
// (prepare, group join) to the simulator having accepted every token.
func BenchmarkSender(b *testing.B) {
	e := newEnv(b, nil)
	e.cfg.APNs.Connections = benchConns
	e.cfg.Sender.BatchesInFlight = benchInFlight
	e.cfg.Sender.ClaimLease = 30 * time.Second // the default
	id := "bench-" + testenv.ID()
	e.putCampaign(b, id)
	fire := newFire(time.Hour)
	batches := makeBatches(id, push.IOS, b.N, benchBatch, nil)
	for off := 0; off < len(batches); off += 100 {
		e.produceBatches(b, fire, batches[off:min(off+100, len(batches))])
	}
	want := int64(b.N * benchBatch)

	b.ResetTimer()
	cpu0, start := cpuTime(b), time.Now()
	e.startStage(b, push.IOS, nil)
	waitFor(b, 10*time.Minute, "all tokens accepted", func() bool { return e.sim.Stats(id).Accepted >= want })
	wall, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	if st := e.sim.Stats(id); st.DuplicateDeliveries != 0 || st.Accepted != want {
		b.Fatalf("simulator: %s", describe(st))
	}
	reportRate(b, int(want), wall, cpu, e.sim.Stats(id))
}

// BenchmarkRawAPNs is apns2 alone with the same concurrency and payload.
func BenchmarkRawAPNs(b *testing.B) {
	e := newEnv(b, nil)
	pem, err := os.ReadFile(e.cfg.APNs.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	key, err := token.AuthKeyFromBytes(pem)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.sim.CACertPEM())
	jwt := &token.Token{AuthKey: key, KeyID: simKeyID, TeamID: simTeamID}
	clients := make([]*apns2.Client, benchConns)
	for i := range clients {
		c := apns2.NewTokenClient(jwt)
		c.Host = e.sim.APNsURL()
		c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
		clients[i] = c
		b.Cleanup(c.CloseIdleConnections)
	}
	id := "raw-" + testenv.ID()
	msg := renderedMessage(b, id)
	batches := makeBatches(id, push.IOS, b.N, benchBatch, nil)
	want := int64(b.N * benchBatch)
	// Warm every connection, as the adapter's Prepare does.
	for _, c := range clients {
		_, _ = c.Push(&apns2.Notification{DeviceToken: "warmup", Topic: simTopic, Payload: msg.APNs.Payload})
	}

	b.ResetTimer()
	cpu0, start := cpuTime(b), time.Now()
	var next atomic.Int64
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for range benchInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				bi := int(next.Add(1) - 1)
				if bi >= len(batches) {
					return
				}
				var bw sync.WaitGroup
				for i, tk := range batches[bi].Tokens {
					bw.Add(1)
					go func() {
						defer bw.Done()
						n := &apns2.Notification{DeviceToken: tk.Token, Topic: simTopic, CollapseID: msg.CollapseID,
							Payload: msg.APNs.Payload, Priority: msg.APNs.Priority, Expiration: msg.APNs.Expiration,
							PushType: apns2.EPushType(msg.APNs.PushType)}
						resp, err := clients[(bi+i)%len(clients)].PushWithContext(context.Background(), n)
						if err == nil && resp.Sent() {
							accepted.Add(1)
						}
					}()
				}
				bw.Wait()
			}
		}()
	}
	wg.Wait()
	wall, cpu := time.Since(start), cpuTime(b)-cpu0
	b.StopTimer()
	if accepted.Load() != want {
		b.Fatalf("accepted %d of %d", accepted.Load(), want)
	}
	reportRate(b, int(want), wall, cpu, e.sim.Stats(id))
}

// renderedMessage is the campaign's iOS message as the sender sends it.
func renderedMessage(b *testing.B, id string) *push.Message {
	c := &campaign.Campaign{
		ID: id, AudienceTopic: "audience.test", DefaultLocale: "en",
		Messages: map[string]campaign.Message{"en": {Title: "Game on", Body: "The ad is on now"}},
		Deadline: campaign.Duration(10 * time.Minute),
	}
	c.ApplyDefaults()
	r, err := c.Render()
	if err != nil {
		b.Fatal(err)
	}
	return r.WithFireTime(time.Now()).For(push.IOS, "en")
}
