package fcm_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

// Four calls of 250 tokens in flight, as the reference figures.
const (
	benchTokens = 1000
	benchChunk  = 250
	benchConns  = 4
)

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
	n := float64(b.N * benchTokens)
	b.ReportMetric(n/time.Since(start).Seconds(), "tokens/s")
	b.ReportMetric(n/(cpuTime(b)-cpu0).Seconds(), "tokens/cpu-s")
}

func tokens(b *testing.B) []string {
	t := make([]string, benchTokens)
	for i := range t {
		t[i] = regToken(b, "")
	}
	return t
}

// BenchmarkSendBatchFCM measures the adapter: 1000 tokens per SendBatch,
// i.e. four SendEach calls of 250 on four clients.
func BenchmarkSendBatchFCM(b *testing.B) {
	sm := startSim(b, nil)
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			o := sm.options(tr)
			o.Clients, o.ChunkSize = benchConns, benchChunk
			s := newSender(b, o)
			ctx := context.Background()
			if err := s.Prepare(ctx); err != nil {
				b.Fatal(err)
			}
			toks := tokens(b)
			msg := message("bench")
			b.ReportAllocs()
			cpu0, start := cpuTime(b), time.Now()
			for b.Loop() {
				if res := s.SendBatch(ctx, msg, toks); res[0].Err != nil {
					b.Fatal(res[0].Err)
				}
			}
			report(b, start, cpu0)
		})
	}
}

// BenchmarkRawFirebase is the baseline: firebase messaging used directly,
// SendEachForMulticast with 250 tokens on each of four clients at once.
func BenchmarkRawFirebase(b *testing.B) {
	sm := startSim(b, nil)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(sm.CACertPEM())
	newTransport := func() *http.Transport {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 100
		t.TLSClientConfig = &tls.Config{RootCAs: roots}
		return t
	}
	ctx := context.Background()
	tctx := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: newTransport()})
	creds, err := google.CredentialsFromJSONWithType(tctx, sm.ServiceAccount, google.ServiceAccount,
		"https://www.googleapis.com/auth/firebase.messaging")
	if err != nil {
		b.Fatal(err)
	}
	ts := oauth2.ReuseTokenSource(nil, creds.TokenSource)
	clients := make([]*messaging.Client, benchConns)
	for i := range clients {
		hc := &http.Client{Transport: &oauth2.Transport{Source: ts, Base: newTransport()}}
		app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project},
			option.WithHTTPClient(hc), option.WithEndpoint(sm.FCMURL()))
		if err != nil {
			b.Fatal(err)
		}
		if clients[i], err = app.Messaging(ctx); err != nil {
			b.Fatal(err)
		}
		_, _ = clients[i].SendDryRun(ctx, &messaging.Message{Token: "warmup"})
	}
	toks := tokens(b)
	msg := message("bench").FCM
	ttl := msg.TTL
	mm := messaging.MulticastMessage{
		Data:         msg.Data,
		Notification: &messaging.Notification{Title: msg.Title, Body: msg.Body},
		Android: &messaging.AndroidConfig{CollapseKey: "bench", Priority: msg.Priority, TTL: &ttl,
			Notification: &messaging.AndroidNotification{Tag: "bench", Sound: msg.Sound, ClickAction: msg.ClickAction}},
	}
	b.ReportAllocs()
	cpu0, start := cpuTime(b), time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		fails := make([]int, benchConns)
		for i, c := range clients {
			m := mm
			m.Tokens = toks[i*benchChunk : (i+1)*benchChunk]
			wg.Add(1)
			go func() {
				defer wg.Done()
				br, err := c.SendEachForMulticast(ctx, &m)
				if err != nil {
					fails[i] = benchChunk
					return
				}
				fails[i] = br.FailureCount
			}()
		}
		wg.Wait()
		for _, f := range fails {
			if f != 0 {
				b.Fatalf("%d failures", f)
			}
		}
	}
	report(b, start, cpu0)
}
