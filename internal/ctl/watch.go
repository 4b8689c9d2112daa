package ctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/retry"
	"github.com/owlpost/owlpost/internal/wire"
)

// watch is `owlctl status CAMPAIGN --watch`: a live one-screen view during
// the send, refreshed about once a second, until every planned token has an
// outcome or ctx ends. On a terminal it redraws in place; otherwise it prints
// one plain line per refresh (log- and CI-friendly).
func watch(ctx context.Context, env *Env, cfg *config.Config, svc *control.Service, id string) error {
	tty := isTTY(env.Out)
	var st *control.CampaignStatus
	for { // wait for the fire
		var err error
		if st, err = svc.Status(ctx, id); err != nil {
			return err
		}
		if st.Fire != nil {
			break
		}
		if tty {
			fmt.Fprint(env.Out, "\033[H\033[2J")
			printStatus(env.Out, st)
			fmt.Fprintln(env.Out, "\nwaiting for GO...")
		} else {
			fmt.Fprintf(env.Out, "%s %s: not fired yet (state %s)\n", time.Now().Format("15:04:05"), id, st.State)
		}
		if !retry.Sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
	var planned uint64
	if st.Plan != nil {
		planned = st.Plan.Tokens
	}
	fire := st.Fire
	cl, err := kafka.NewClient(cfg,
		kgo.ConsumeTopics(cfg.Topics.Results),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(fire.At.Add(-time.Minute).UnixMilli())),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	groups := []string{cfg.Sender.GroupOf(string(push.IOS)), cfg.Sender.GroupOf(string(push.Android))}
	live := report.NewLive(id, fire.FireID)
	next := time.Now().Add(time.Second)
	for {
		pctx, cancel := context.WithDeadline(ctx, next)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var res wire.Result
			if wire.Decode(r.Value, &res) == nil {
				live.Add(string(r.Key), &res)
			}
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().Before(next) {
			continue
		}
		next = time.Now().Add(time.Second)
		s := live.Snapshot()
		rate := float64(live.PerSecond(time.Since(fire.At)))
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		lag, lagErr := kafka.Lag(lctx, adm, groups...)
		lcancel()
		done := s.Total.Done() >= planned && planned > 0
		if tty {
			fmt.Fprint(env.Out, "\033[H\033[2J")
			drawWatch(env.Out, id, fire, planned, s, rate, lag, lagErr)
		} else {
			fmt.Fprintf(env.Out, "%s %s: %d/%d accepted (%.1f%%) %.0f/s p95 %s invalid %d expired %d aborted %d lag %d\n",
				time.Now().Format("15:04:05"), id, s.Total.Accepted, planned, pct(s.Total.Accepted, planned), rate,
				msText(s.P95), s.Total.Invalid, s.Total.Expired, s.Total.Aborted, sumLag(lag))
		}
		if done {
			fmt.Fprintf(env.Out, "\nall %d planned tokens have an outcome; `owlctl report %s` for the final account\n", planned, id)
			return nil
		}
	}
}

func drawWatch(w io.Writer, id string, fire *control.FireInfo, planned uint64, s report.LiveSnapshot, rate float64, lag []kafka.LagRow, lagErr error) {
	since := time.Since(fire.At).Truncate(100 * time.Millisecond)
	fmt.Fprintf(w, "owlpost  %s  fire %s by %s  T+%s\n\n", id, fire.FireID, fire.By, since)
	const width = 50
	frac := pct(s.Total.Accepted, planned) / 100
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	fmt.Fprintf(w, "accepted [%s] %d / %d  %.1f%%\n", bar, s.Total.Accepted, planned, frac*100)
	fmt.Fprintf(w, "rate     %.0f notifications/s (accepted in the last second)\n", rate)
	fmt.Fprintf(w, "from fire p50 %s  p95 %s  p99 %s  max %s (so far, 10 ms resolution)\n", msText(s.P50), msText(s.P95), msText(s.P99), msText(s.MaxMS))
	fmt.Fprintf(w, "outcomes invalid %d  failed %d  expired %d  aborted %d  retries %d  batches reported %d\n",
		s.Total.Invalid, s.Total.Failed, s.Total.Expired, s.Total.Aborted, s.Total.Retries, s.Total.Batches)
	if len(s.Reasons) > 0 {
		fmt.Fprint(w, "reasons ")
		for i, r := range s.Reasons {
			if i == 8 {
				break
			}
			fmt.Fprintf(w, " %s=%d", r.Reason, r.N)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nsender lag")
	if lagErr != nil {
		fmt.Fprintf(w, "  unavailable: %v\n", lagErr)
	}
	per := map[string]int64{}
	for _, r := range lag {
		per[r.Group+" "+r.Topic] += r.Lag
	}
	for k, v := range per {
		fmt.Fprintf(w, "  %-60s %d\n", k, v)
	}
}

func sumLag(rows []kafka.LagRow) int64 {
	var n int64
	for _, r := range rows {
		n += r.Lag
	}
	return n
}

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func msText(ms uint32) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2fs", float64(ms)/1000)
	}
	return fmt.Sprintf("%dms", ms)
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
