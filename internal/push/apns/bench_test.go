package apns_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
)

// batchSize is the planner's iOS batch.
const batchSize = 500

// cpuTime is the process's user+system CPU time (the in-process simulator
// included, equally for both benchmarks).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, start time.Time, cpu0 time.Duration) {
	n := float64(b.N * batchSize)
	b.ReportMetric(n/time.Since(start).Seconds(), "tokens/s")
	b.ReportMetric(n/(cpuTime(b)-cpu0).Seconds(), "tokens/cpu-s")
}

func benchTokens(b *testing.B) []string {
	tokens := make([]string, batchSize)
	for i := range tokens {
		tokens[i] = hexToken(b, "")
	}
	return tokens
}

// BenchmarkSendBatchAPNs measures the adapter: 500-token batches over 4
// connections to the simulator on loopback.
func BenchmarkSendBatchAPNs(b *testing.B) {
	sm := startSim(b, nil)
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			o := sm.options(tr)
			o.Connections = 4
			s := newSender(b, o)
			ctx := context.Background()
			if err := s.Prepare(ctx); err != nil {
				b.Fatal(err)
			}
			tokens := benchTokens(b)
			msg := message("bench")
			// A set expiration in both benchmarks: a zero one makes the adapter add
			// "apns-expiration: 0", which raw apns2 cannot send (compare like with like).
			msg.APNs.Expiration = time.Now().Add(time.Hour)
			b.ReportAllocs()
			cpu0, start := cpuTime(b), time.Now()
			for b.Loop() {
				if res := s.SendBatch(ctx, msg, tokens); res[0].Err != nil {
					b.Fatal(res[0].Err)
				}
			}
			report(b, start, cpu0)
		})
	}
}

// BenchmarkRawAPNs2 is the baseline: the same work with apns2 clients used
// directly (one goroutine and one Notification per token).
func BenchmarkRawAPNs2(b *testing.B) {
	sm := startSim(b, nil)
	key, err := token.AuthKeyFromBytes(sm.P8)
	if err != nil {
		b.Fatal(err)
	}
	jwt := &token.Token{AuthKey: key, KeyID: keyID, TeamID: teamID}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(sm.CACertPEM())
	clients := make([]*apns2.Client, 4)
	for i := range clients {
		c := apns2.NewTokenClient(jwt)
		c.HTTPClient.Transport.(*http2.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}
		c.Host = sm.APNsURL()
		if _, err := c.Push(&apns2.Notification{DeviceToken: "warmup", Topic: topic, Payload: []byte(`{}`)}); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	tokens := benchTokens(b)
	payload := message("bench").APNs.Payload
	expiration := time.Now().Add(time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	cpu0, start := cpuTime(b), time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make([]error, len(tokens))
		for i, tok := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := clients[i%len(clients)].PushWithContext(ctx, &apns2.Notification{
					DeviceToken: tok, Topic: topic, CollapseID: "bench", Priority: 10,
					PushType: apns2.PushTypeAlert, Payload: payload, Expiration: expiration,
				})
				if err == nil && !resp.Sent() {
					err = &net2Err{resp.Reason}
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
	report(b, start, cpu0)
}

type net2Err struct{ reason string }

func (e *net2Err) Error() string { return "apns: " + e.reason }
