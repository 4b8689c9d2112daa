package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/report"
	"github.com/owlpost/owlpost/internal/retry"
)

// runTrigger is phase d, the trigger path alone: the pipeline's processes
// started once, then o.Fires small campaigns (o.TriggerTokens each) planned,
// prepared, held and fired one after another. Each fire's trigger latency
// is the simulator's first arrival minus the fire record's time; the press
// latency is the same arrival minus the moment the bench called the control
// API's fire. The first fire after the start is reported on its own too,
// since launch day's fire is the first one of its processes.
func runTrigger(ctx context.Context, cfg *config.Config, o Options, dir string, round int) (Metrics, error) {
	id := fmt.Sprintf("%s-t%d", o.RunID, round)
	s, w, closeAll, err := openStack(ctx, cfg, o, dir, id)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	r := &pipelineRun{s: s, o: o}
	r.o.Tokens = o.TriggerTokens
	if err := r.startStages(ctx); err != nil {
		return nil, err
	}
	lat := make([]float64, 0, o.Fires)
	press := make([]float64, 0, o.Fires) // from the API call, the launcher's view
	for i := 1; i <= o.Fires; i++ {
		r.cid = fmt.Sprintf("bench-trigger-%s-%02d", id, i)
		if err := r.plan(ctx, fmt.Sprintf("owlbench.%s.audience-%02d", id, i), round*100+i); err != nil {
			return nil, err
		}
		if err := r.prepare(ctx); err != nil {
			return nil, err
		}
		if !retry.Sleep(ctx, holdBeforeFire) {
			return nil, ctx.Err()
		}
		sim, _, err := r.fireAndWait(ctx, w)
		if err != nil {
			return nil, fmt.Errorf("fire %d: %w", i, err)
		}
		rep, err := report.Build(ctx, s.Cfg, s.Cl, r.cid, "")
		if err != nil {
			return nil, err
		}
		lat = append(lat, ms(sim.First.Sub(rep.FiredAt)))
		press = append(press, ms(sim.First.Sub(r.pressed)))
		if o.Log != nil {
			fmt.Fprintf(o.Log, "bench: trigger fire %d/%d: %.1f ms from the fire record, %.1f ms from the press\n",
				i, o.Fires, lat[i-1], press[i-1])
		}
	}
	var m Metrics
	m.Add("trigger.fires", "count", float64(len(lat)))
	m.Add("trigger.first_fire_ms", "ms", lat[0])
	m.Add("trigger.median_ms", "ms", median(lat))
	m.Add("trigger.min_ms", "ms", slices.Min(lat))
	m.Add("trigger.max_ms", "ms", slices.Max(lat))
	m.Add("trigger.press_median_ms", "ms", median(press))
	m.Add("trigger.press_first_fire_ms", "ms", press[0])
	return m, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
