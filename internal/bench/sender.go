package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/wire"
)

// campaignYAML is the bench campaign: four locales with messages and a
// fallback, like a real one, so rendering and locale grouping are exercised.
const campaignYAML = `id: %s
audience_topic: %s
default_locale: en-US
messages:
  en-US: {title: "You just saw us on TV!", body: "Learn a language in 5 minutes a day. 50%% off Premium for the next hour.", sound: default, deep_link: "owlapp://offer/bench"}
  es-US: {title: "¡Nos acabas de ver en la tele!", body: "Aprende un idioma en 5 minutos al día. 50%% de descuento en Premium.", sound: default}
  de-DE: {title: "Gerade im Fernsehen gesehen?", body: "Lerne eine Sprache in 5 Minuten am Tag. Premium 50 %% günstiger.", sound: default}
  pt-BR: {title: "Você acabou de nos ver na TV!", body: "Aprenda um idioma em 5 minutos por dia. 50%% de desconto no Premium.", sound: default}
fallbacks: {de-AT: de-DE}
apns: {push_type: alert, priority: 10, expiration: 15m, topic: com.example.owlapp}
fcm: {priority: high, ttl: 15m}
deadline: 1h
`

// benchLocales are the locales of generated tokens (de-AT uses the fallback).
var benchLocales = []string{"en-US", "es-US", "de-DE", "de-AT", "pt-BR"}

// putCampaign defines campaign id in the stack's catalog.
func putCampaign(ctx context.Context, s *Stack, id, audienceTopic string) error {
	def, err := campaign.Parse(fmt.Appendf(nil, campaignYAML, id, audienceTopic))
	if err != nil {
		return fmt.Errorf("bench: campaign: %w", err)
	}
	cat, err := catalog.New(s.Cfg, s.Cl)
	if err != nil {
		return err
	}
	return cat.PutCampaign(ctx, def)
}

// prefill records fire as the campaign's winner in the guard (senders send
// only a verified fire) and writes n tokens of platform p as send tasks
// (batches of size tokens with fire headers) to the platform's send topic.
func prefill(ctx context.Context, s *Stack, p push.Platform, campaignID string, n, size int, fire wire.Fire) error {
	rec := guard.FireRecord{FireID: fire.ID, By: "bench", At: fire.FiredAt, Deadline: fire.Deadline}
	if _, _, err := guard.New(s.RDB, s.Cfg.Redis.Prefix, nil).Fire(ctx, campaignID, rec); err != nil {
		return fmt.Errorf("bench: fire record: %w", err)
	}
	topic := s.Cfg.Topics.SendIOS
	if p == push.Android {
		topic = s.Cfg.Topics.SendAndroid
	}
	hdrs := kafka.Headers(wire.FireHeaders(fire))
	var recs []*kgo.Record
	flush := func() error {
		if err := s.Cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("bench: prefill %s: %w", topic, err)
		}
		recs = recs[:0]
		return nil
	}
	for seq := 0; seq*size < n; seq++ {
		b := &wire.Batch{Campaign: campaignID, Platform: p, Generation: 1, Seq: uint32(seq), Locales: benchLocales}
		for i := seq * size; i < min(n, (seq+1)*size); i++ {
			tok := rawAPNsToken(i)
			if p == push.Android {
				tok = rawFCMToken(i)
			}
			b.Tokens = append(b.Tokens, wire.Token{Token: tok, Locale: uint16(i % len(benchLocales))})
		}
		v, err := wire.EncodeBatch(nil, b)
		if err != nil {
			return fmt.Errorf("bench: prefill: %w", err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(b.Key()), Value: v, Headers: hdrs})
		if len(recs) == 200 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// runSender is phase b: the send topics are pre-filled with o.SenderN
// tokens per platform (one campaign per platform, so the simulator counts
// them apart), then one sender process per platform drains its topic, one
// platform after the other so each has the machine to itself like the raw
// libraries. CPU time is counted from the moment the sender answers /readyz
// (connections open, group joined) to the moment its result records account
// for every token.
func runSender(ctx context.Context, cfg *config.Config, o Options, dir string, round int) (Metrics, error) {
	id := fmt.Sprintf("%s-s%d", o.RunID, round)
	s, w, closeAll, err := openStack(ctx, cfg, o, dir, id)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	now := time.Now()
	fire := wire.Fire{ID: "bench-fire-" + id, Kind: wire.KindFire, FiredAt: now, Deadline: now.Add(time.Hour)}
	plats := []push.Platform{push.IOS, push.Android}
	transports := []string{push.TransportLibrary, push.TransportFast}
	if round%2 == 0 {
		plats = []push.Platform{push.Android, push.IOS}
		transports = []string{push.TransportFast, push.TransportLibrary}
	}
	// Each transport drains its own campaigns, pre-filled just before, so
	// one sender process never sees the other's records.
	var all Metrics
	for _, tr := range transports {
		for _, p := range plats {
			cid := fmt.Sprintf("bench-sender-%s-%s-%s", id, tr, p)
			if err := putCampaign(ctx, s, cid, "owlbench.unused"); err != nil {
				return nil, err
			}
			size := s.Cfg.Planner.IOSBatchSize
			if p == push.Android {
				size = s.Cfg.Planner.AndroidBatchSize
			}
			if err := prefill(ctx, s, p, cid, o.SenderN, size, fire); err != nil {
				return nil, err
			}
		}
		for _, p := range plats {
			m, err := drainOne(ctx, s, w, p, tr, fmt.Sprintf("bench-sender-%s-%s-%s", id, tr, p), o.SenderN)
			if err != nil {
				return nil, err
			}
			all = append(all, m...)
		}
	}
	return all, nil
}

// drainOne starts the sender of platform p with the provider transport tr
// and measures it until its results account for n tokens of campaignID;
// then it stops it. Its metrics are sender.<platform>.* for the library
// transport and sender.fast.<platform>.* for the fast one.
func drainOne(ctx context.Context, s *Stack, w *ResultsWatcher, p push.Platform, tr, campaignID string, n int) (Metrics, error) {
	st, err := s.StartStage("sender-"+string(p)+"-"+tr, "sender", []string{"OWLPOST_SENDER_PLATFORM=" + string(p),
		"OWLPOST_APNS_TRANSPORT=" + tr, "OWLPOST_FCM_TRANSPORT=" + tr})
	if err != nil {
		return nil, err
	}
	defer st.Stop(10 * time.Second)
	simU0, _ := ReadUsage(s.Sim.Pid())
	u0, err := st.WaitReady(ctx, 20*time.Millisecond)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	sim, err := s.Sim.WaitAccepted(ctx, campaignID, int64(n), 50*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("%w (sender results so far %+v)", err, w.Sum(campaignID))
	}
	for w.Sum(campaignID).Done() < n {
		if err := st.Exited(); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bench: waiting for %s results: %w (have %+v)", campaignID, ctx.Err(), w.Sum(campaignID))
		case <-time.After(20 * time.Millisecond):
		}
	}
	u1, err := ReadUsage(st.Pid())
	if err != nil {
		return nil, err
	}
	drain := time.Since(t0)
	simU1, _ := ReadUsage(s.Sim.Pid())
	sum := w.Sum(campaignID)
	if sum.Accepted != n || sim.DuplicateDeliveries != 0 {
		return nil, fmt.Errorf("bench: %s: results accepted %d of %d, simulator duplicates %d",
			campaignID, sum.Accepted, n, sim.DuplicateDeliveries)
	}
	window := sim.Last.Sub(sim.First)
	cpu := u1.CPU - u0.CPU
	pre := "sender." + string(p)
	if tr == push.TransportFast {
		pre = "sender.fast." + string(p)
	}
	var m Metrics
	m.Add(pre+".notifications", "count", float64(n))
	m.Add(pre+".send_window", "s", window.Seconds())
	m.Add(pre+".rate", "notif/s", float64(n)/window.Seconds())
	m.Add(pre+".drain", "s", drain.Seconds())
	m.Add(pre+".sender_cpu", "cpu-s", cpu.Seconds())
	m.Add(pre+".per_sender_cpu_s", "notif/cpu-s", perCPU(n, cpu))
	m.Add(pre+".peak_rss", "MiB", float64(u1.PeakRSS)/(1<<20))
	m.Add(pre+".sim_cpu", "cpu-s", (simU1.CPU - simU0.CPU).Seconds())
	return m, nil
}
