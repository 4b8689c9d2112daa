package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/planner"
	"github.com/owlpost/owlpost/internal/wire"
)

func planCommand() Command {
	return Command{
		Name:    "plan",
		Usage:   "plan CAMPAIGN [--via-service] [--json]",
		Summary: "plan a campaign's audience into batches now (progress each second, then a summary)",
		Flags: func(fs *pflag.FlagSet) {
			fs.Bool("via-service", false, "publish a plan request for the planner service and wait for its manifest")
			fs.Duration("timeout", 15*time.Minute, "give up after this long")
			fs.Bool("json", false, "print the manifest as JSON instead of the summary")
			byFlag(fs)
		},
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			id, err := oneCampaign(args)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			timeout, _ := fs.GetDuration("timeout")
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			who, err := actor(ctx, cfg, fs, control.ActionPlan)
			if err != nil {
				return err
			}
			by := who.Name
			via, _ := fs.GetBool("via-service")
			asJSON, _ := fs.GetBool("json")
			var m *wire.Manifest
			start := time.Now()
			if via {
				m, err = planViaService(ctx, env, cfg, id, by)
			} else {
				m, err = planInProcess(ctx, env, cfg, id, by)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(env.Out, m)
			}
			printPlanSummary(env.Out, m, time.Since(start))
			return nil
		},
	}
}

func planInProcess(ctx context.Context, env *Env, cfg *config.Config, id, by string) (*wire.Manifest, error) {
	st, err := planner.New(cfg, planner.Deps{Log: env.Log})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var last int64
	return st.Plan(ctx, id, by, func(p planner.Progress) {
		rate := float64(p.Records-last) / 1.0
		if p.Phase == "done" {
			rate = float64(p.Records) / max(p.Elapsed.Seconds(), 1e-3)
		}
		last = p.Records
		line := fmt.Sprintf("%-10s %6.1fs  read %d records (%.0f/s)  rejected %d", p.Phase,
			p.Elapsed.Seconds(), p.Records, rate, p.Rejected)
		if p.TotalBatches > 0 {
			line += fmt.Sprintf("  duplicates %d  batches %d/%d", p.Duplicates, p.Batches, p.TotalBatches)
		}
		fmt.Fprintln(env.Err, line)
	})
}

// planViaService publishes a plan request and waits until the manifest's
// generation moves past the current one, or the planner reports an error.
func planViaService(ctx context.Context, env *Env, cfg *config.Config, id, by string) (*wire.Manifest, error) {
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	cat, err := catalog.New(cfg, cl)
	if err != nil {
		return nil, err
	}
	if _, err := cat.Campaign(ctx, id); err != nil {
		return nil, err
	}
	var prevGen uint64
	if prev, err := cat.Manifest(ctx, id); err == nil {
		prevGen = prev.Generation
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return nil, err
	}
	at := time.Now().UTC()
	if err := audit(ctx, cl, cfg, &wire.Control{Type: wire.ControlPlan, Campaign: id, By: by, At: at}); err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Err, "plan request for %s published (current generation %d); waiting for the planner service...\n", id, prevGen)
	opts, err := kafka.Opts(cfg)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	var lastState wire.State
	for {
		if m, err := cat.Manifest(ctx, id); err == nil && m.Generation > prevGen {
			return m, nil
		} else if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return nil, err
		}
		st, err := plannerStatus(ctx, adm, opts, cfg.Topics.Status, id)
		if err != nil {
			return nil, err
		}
		if st != nil && !st.At.Before(at) {
			if st.State == wire.StateError {
				return nil, fmt.Errorf("planner %s: %s", st.Instance, st.Error)
			}
			if st.State != lastState {
				fmt.Fprintf(env.Err, "planner %s: %s\n", st.Instance, st.State)
				lastState = st.State
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no new plan of %s yet (is the planner service running? it consumes %s): %w",
				id, cfg.Topics.Control, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// plannerStatus returns the newest planner status of campaign id, or nil.
func plannerStatus(ctx context.Context, adm *kadm.Client, opts []kgo.Opt, topic, id string) (*wire.Status, error) {
	ends, err := kafka.SnapshotEnds(ctx, adm, topic, nil)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var newest *wire.Status
	err = kafka.ReadSnapshot(ctx, opts, topic, ends, func(r *kgo.Record) error {
		var st wire.Status
		if r.Value == nil || wire.Decode(r.Value, &st) != nil || st.Campaign != id || st.Role != wire.RolePlanner {
			return nil
		}
		mu.Lock()
		if newest == nil || st.At.After(newest.At) {
			newest = &st
		}
		mu.Unlock()
		return nil
	})
	return newest, err
}

func printPlanSummary(w io.Writer, m *wire.Manifest, elapsed time.Duration) {
	var rejected int64
	reasons := make([]string, 0, len(m.Rejected))
	for r, n := range m.Rejected {
		rejected += n
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "planned campaign %s: generation %d\n", m.Campaign, m.Generation)
	fmt.Fprintf(w, "  audience    %s: %d records in %s (%.0f records/s)\n", m.AudienceTopic, m.AudienceRecords,
		elapsed.Round(time.Millisecond), float64(m.AudienceRecords)/max(elapsed.Seconds(), 1e-3))
	fmt.Fprintf(w, "  rejected    %d", rejected)
	for _, r := range reasons {
		fmt.Fprintf(w, "  %s=%d", r, m.Rejected[r])
	}
	if len(m.Normalised) > 0 {
		fmt.Fprintf(w, "\n  normalised ")
		for _, k := range []string{wire.NormalisedLocale, wire.NormalisedToken} {
			fmt.Fprintf(w, "  %s=%d", k, m.Normalised[k])
		}
	}
	fmt.Fprintf(w, "\n  duplicates  %d tokens planned once\n", m.DuplicateTokens)
	fmt.Fprintf(w, "  ios         %d tokens in %d batches (of at most %d)\n", m.IOSTokens, m.IOSBatches, m.BatchSizeIOS)
	fmt.Fprintf(w, "  android     %d tokens in %d batches (of at most %d)\n", m.AndroidTokens, m.AndroidBatches, m.BatchSizeAndroid)
	fmt.Fprintf(w, "  partitions  %d:", m.Partitions)
	for i, pc := range m.PerPartition {
		fmt.Fprintf(w, " p%d=%d/%d", i, pc.Batches, pc.Tokens)
	}
	fmt.Fprintf(w, " (batches/tokens)\n  checksum    %s\n", m.Checksum)
}
