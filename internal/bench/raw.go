package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/push"
)

// RawAPNsOptions are apns2's best settings against the simulator.
type RawAPNsOptions struct {
	N       int // notifications
	Clients int // apns2 clients, each its own HTTP/2 connection
	Workers int // concurrent goroutines per client (the simulator advertises 1000 streams)
}

// RawFCMOptions are firebase messaging's best settings.
type RawFCMOptions struct {
	N        int
	PerCall  int // tokens per SendEachForMulticast (<= 500)
	InFlight int // concurrent multicast calls
}

const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// rawMessages renders the bench campaign (the one the sender and pipeline
// phases send) for en-US, so the raw libraries send exactly what the sender
// sends: the same APNs payload bytes and headers, the same FCM fields. A
// shorter hand-written payload would flatter the raw baseline.
func rawMessages(campaignID string) (ios, android *push.Message, err error) {
	def, err := campaign.Parse(fmt.Appendf(nil, campaignYAML, campaignID, "unused"))
	if err != nil {
		return nil, nil, fmt.Errorf("bench: raw: campaign: %w", err)
	}
	r, err := def.Render()
	if err != nil {
		return nil, nil, fmt.Errorf("bench: raw: render: %w", err)
	}
	r = r.WithFireTime(time.Now())
	return r.For(push.IOS, "en-US"), r.For(push.Android, "en-US"), nil
}

// rawAPNsToken is a 64-hex device token that matches none of the
// simulator's outcome patterns ("dead04..").
func rawAPNsToken(i int) string { return fmt.Sprintf("b0%062x", i) }

// rawFCMToken is a 140-character registration token of digits, so it can
// hold none of the simulator's upper-case patterns.
func rawFCMToken(i int) string { return fmt.Sprintf("bench:%0134d", i) }

// rawLoad is one library's run, prepared: clients built and warmed, tokens
// made, so that only the sending is measured.
type rawLoad struct {
	name     string // "apns2", "firebase": for errors
	campaign string // what the simulator counts it under
	n        int
	send     func(ctx context.Context) (failed int64, first error)
	close    func()
}

// RawAPNs sends o.N notifications with sideshow/apns2 alone, measuring wall
// time and this process's CPU time, and checks the simulator's count for
// campaign (the apns-collapse-id).
func RawAPNs(ctx context.Context, sim *Sim, o RawAPNsOptions, campaign string) (Metrics, error) {
	return runLoads(ctx, sim, "raw.apns", func() (*rawLoad, error) { return prepareRawAPNs(ctx, sim, o, campaign) })
}

// RawFCM sends o.N messages with firebase messaging alone
// (SendEachForMulticast), measuring like RawAPNs; campaign is the Android
// collapse key.
func RawFCM(ctx context.Context, sim *Sim, o RawFCMOptions, campaign string) (Metrics, error) {
	return runLoads(ctx, sim, "raw.fcm", func() (*rawLoad, error) { return prepareRawFCM(ctx, sim, o, campaign) })
}

// RawBoth sends n notifications, iosShare of them with apns2 and the rest
// with firebase, both libraries at the same time with their settings of
// RawAPNs and RawFCM (N fields ignored): what the raw libraries do with the
// pipeline's audience on this machine, with two clients sharing it as the
// two senders do.
func RawBoth(ctx context.Context, sim *Sim, ao RawAPNsOptions, fo RawFCMOptions, n int, iosShare float64,
	campaign string) (Metrics, error) {
	ao.N = int(float64(n)*iosShare + 0.5)
	fo.N = n - ao.N
	var prepare []func() (*rawLoad, error)
	if ao.N > 0 {
		prepare = append(prepare, func() (*rawLoad, error) { return prepareRawAPNs(ctx, sim, ao, campaign+"-apns") })
	}
	if fo.N > 0 {
		prepare = append(prepare, func() (*rawLoad, error) { return prepareRawFCM(ctx, sim, fo, campaign+"-fcm") })
	}
	return runLoads(ctx, sim, "raw.both", prepare...)
}

// runLoads prepares each load in turn, measures them all at once with
// measureRaw under prefix, and closes them.
func runLoads(ctx context.Context, sim *Sim, prefix string, prepare ...func() (*rawLoad, error)) (Metrics, error) {
	var loads []*rawLoad
	defer func() {
		for _, l := range loads {
			l.close()
		}
	}()
	for _, p := range prepare {
		l, err := p()
		if err != nil {
			return nil, err
		}
		loads = append(loads, l)
	}
	return measureRaw(ctx, sim, prefix, loads...)
}

// measureRaw runs loads at the same time and measures them as one: wall
// time from the first request to the last answer, this process's CPU time,
// the simulator's CPU time. The simulator must have accepted exactly each
// load's n for its campaign, with no duplicates.
func measureRaw(ctx context.Context, sim *Sim, prefix string, loads ...*rawLoad) (Metrics, error) {
	simBefore, _ := ReadUsage(sim.Pid())
	failed := make([]int64, len(loads))
	first := make([]error, len(loads))
	var wg sync.WaitGroup
	cpu0, t0 := SelfCPU(), time.Now()
	for i, l := range loads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed[i], first[i] = l.send(ctx)
		}()
	}
	wg.Wait()
	wall, cpu := time.Since(t0), SelfCPU()-cpu0
	simAfter, _ := ReadUsage(sim.Pid())
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", prefix, err)
	}
	n := 0
	for i, l := range loads {
		if failed[i] > 0 {
			return nil, fmt.Errorf("bench: %s: %s: %d of %d notifications failed, first: %v",
				prefix, l.name, failed[i], l.n, first[i])
		}
		st, err := sim.Stats(ctx, l.campaign)
		if err != nil {
			return nil, err
		}
		if st.Accepted != int64(l.n) || st.DuplicateDeliveries != 0 {
			return nil, fmt.Errorf("bench: %s: %s: simulator accepted %d (%d duplicates), want %d",
				prefix, l.name, st.Accepted, st.DuplicateDeliveries, l.n)
		}
		n += l.n
	}
	var m Metrics
	m.Add(prefix+".notifications", "count", float64(n))
	m.Add(prefix+".wall", "s", wall.Seconds())
	m.Add(prefix+".rate", "notif/s", float64(n)/wall.Seconds())
	m.Add(prefix+".client_cpu", "cpu-s", cpu.Seconds())
	m.Add(prefix+".per_client_cpu_s", "notif/cpu-s", perCPU(n, cpu))
	m.Add(prefix+".sim_cpu", "cpu-s", (simAfter.CPU - simBefore.CPU).Seconds())
	return m, nil
}

// prepareRawAPNs builds o.Clients apns2 clients (4 independent HTTP/2
// connections by default), warms each with one push, and makes the tokens;
// its send runs o.Workers goroutines per client.
func prepareRawAPNs(ctx context.Context, sim *Sim, o RawAPNsOptions, campaign string) (*rawLoad, error) {
	key, err := token.AuthKeyFromFile(sim.KeyFile())
	if err != nil {
		return nil, fmt.Errorf("bench: raw apns: key: %w", err)
	}
	tlsCfg, err := sim.TLSConfig()
	if err != nil {
		return nil, err
	}
	clients := make([]*apns2.Client, o.Clients)
	closeAll := func() {
		for _, c := range clients {
			if c != nil {
				c.CloseIdleConnections()
			}
		}
	}
	for i := range clients {
		c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: sim.KeyID, TeamID: sim.TeamID})
		c.Host = sim.APNsURL
		tr, ok := c.HTTPClient.Transport.(*http2.Transport)
		if !ok {
			return nil, fmt.Errorf("bench: raw apns: transport is %T, want *http2.Transport", c.HTTPClient.Transport)
		}
		tr.TLSClientConfig = tlsCfg.Clone()
		clients[i] = c
	}
	ios, _, err := rawMessages(campaign)
	if err != nil {
		closeAll()
		return nil, err
	}
	note := func(tok string) *apns2.Notification {
		return &apns2.Notification{DeviceToken: tok, Topic: sim.Topic, CollapseID: ios.CollapseID,
			PushType: apns2.EPushType(ios.APNs.PushType), Priority: ios.APNs.Priority,
			Expiration: ios.APNs.Expiration, Payload: ios.APNs.Payload}
	}
	// Warm: one push per client opens its connection and signs its JWT.
	for i, c := range clients {
		n := note(rawAPNsToken(1_000_000_000 + i))
		n.CollapseID = campaign + "-warm"
		if res, err := c.PushWithContext(ctx, n); err != nil || res.StatusCode != http.StatusOK {
			closeAll()
			return nil, fmt.Errorf("bench: raw apns: warm-up push: %v %+v", err, res)
		}
	}
	toks := make([]string, o.N)
	for i := range toks {
		toks[i] = rawAPNsToken(i)
	}
	send := func(ctx context.Context) (int64, error) {
		var next, failed atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for _, c := range clients {
			for range o.Workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						i := next.Add(1) - 1
						if i >= int64(o.N) {
							return
						}
						res, err := c.PushWithContext(ctx, note(toks[i]))
						if err != nil || res.StatusCode != http.StatusOK {
							failed.Add(1)
							if err == nil {
								err = fmt.Errorf("status %d %s", res.StatusCode, res.Reason)
							}
							firstErr.CompareAndSwap(nil, err)
						}
					}
				}()
			}
		}
		wg.Wait()
		err, _ := firstErr.Load().(error)
		return failed.Load(), err
	}
	return &rawLoad{name: "apns2", campaign: campaign, n: o.N, send: send, close: closeAll}, nil
}

// prepareRawFCM builds one firebase messaging client, warms it with a
// single Send (it fetches the OAuth2 token and opens the HTTP/2 connection,
// so the first multicast's 50 workers share it) and makes the tokens; its
// send runs o.InFlight SendEachForMulticast calls of o.PerCall tokens at once.
func prepareRawFCM(ctx context.Context, sim *Sim, o RawFCMOptions, campaign string) (*rawLoad, error) {
	saJSON, err := os.ReadFile(sim.ServiceAccountFile())
	if err != nil {
		return nil, fmt.Errorf("bench: raw fcm: %w", err)
	}
	tlsCfg, err := sim.TLSConfig()
	if err != nil {
		return nil, err
	}
	mc, closeIdle, err := newFCMClient(ctx, sim, saJSON, tlsCfg)
	if err != nil {
		return nil, err
	}
	_, am, err := rawMessages(campaign)
	if err != nil {
		closeIdle()
		return nil, err
	}
	f := am.FCM
	ttl := f.TTL
	notif := &messaging.Notification{Title: f.Title, Body: f.Body, ImageURL: f.ImageURL}
	android := func(collapse string) *messaging.AndroidConfig {
		return &messaging.AndroidConfig{CollapseKey: collapse, Priority: f.Priority, TTL: &ttl,
			Notification: &messaging.AndroidNotification{Tag: collapse, Sound: f.Sound, ClickAction: f.ClickAction}}
	}
	if _, err := mc.Send(ctx, &messaging.Message{Token: rawFCMToken(1_000_000_000), Notification: notif, Data: f.Data,
		Android: android(campaign + "-warm")}); err != nil {
		closeIdle()
		return nil, fmt.Errorf("bench: raw fcm: warm-up send: %w", err)
	}
	toks := make([]string, o.N)
	for i := range toks {
		toks[i] = rawFCMToken(i)
	}
	chunks := (o.N + o.PerCall - 1) / o.PerCall
	send := func(ctx context.Context) (int64, error) {
		var next, failed atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for range o.InFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					c := int(next.Add(1) - 1)
					if c >= chunks {
						return
					}
					lo, hi := c*o.PerCall, min((c+1)*o.PerCall, o.N)
					br, err := mc.SendEachForMulticast(ctx, &messaging.MulticastMessage{Tokens: toks[lo:hi],
						Notification: notif, Data: f.Data, Android: android(am.CollapseID)})
					if err == nil && br.FailureCount > 0 {
						for _, r := range br.Responses {
							if r.Error != nil {
								err = r.Error
								break
							}
						}
						failed.Add(int64(br.FailureCount))
					} else if err != nil {
						failed.Add(int64(hi - lo))
					}
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		wg.Wait()
		err, _ := firstErr.Load().(error)
		return failed.Load(), err
	}
	return &rawLoad{name: "firebase", campaign: campaign, n: o.N, send: send, close: closeIdle}, nil
}

// newFCMClient builds a real firebase messaging client whose OAuth2 token
// fetch and API calls trust the simulator's CA (see package pushsim).
func newFCMClient(ctx context.Context, sim *Sim, saJSON []byte, tlsCfg *tls.Config) (*messaging.Client, func(), error) {
	base := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 100}
	hctx := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: base})
	creds, err := google.CredentialsFromJSONWithType(hctx, saJSON, google.ServiceAccount, fcmScope)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: fcm credentials: %w", err)
	}
	hc := oauth2.NewClient(hctx, creds.TokenSource)
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: sim.Project},
		option.WithHTTPClient(hc), option.WithEndpoint(sim.FCMURL))
	if err != nil {
		return nil, nil, fmt.Errorf("bench: firebase app: %w", err)
	}
	mc, err := app.Messaging(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: firebase messaging: %w", err)
	}
	return mc, base.CloseIdleConnections, nil
}

func perCPU(n int, cpu time.Duration) float64 {
	if cpu <= 0 {
		return 0
	}
	return float64(n) / cpu.Seconds()
}
