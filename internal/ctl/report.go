package ctl

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/report"
)

func reportCommand() Command {
	return Command{
		Name:    "report",
		Usage:   "report CAMPAIGN [--json] [--svg FILE] [--fire ID]",
		Summary: "final counts by outcome and time-from-fire percentiles, computed from the results topic",
		Flags: func(fs *pflag.FlagSet) {
			fs.Bool("json", false, "print JSON")
			fs.String("svg", "", "also write a picture of accepted notifications over time since fire to FILE")
			fs.String("fire", "", "fire id (default: the campaign's fire)")
			fs.Duration("wait", 0, "wait up to this long until every planned token has an outcome")
			fs.String("check-sim", "", "compare with the push simulator's delivery record at this admin URL; exit 1 on a mismatch")
		},
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usageErr("want one CAMPAIGN")
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			cl, err := kafka.NewClient(cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			wait, _ := fs.GetDuration("wait")
			fire, _ := fs.GetString("fire")
			r, err := waitReport(ctx, env, cfg, cl, args[0], fire, wait)
			if err != nil {
				return err
			}
			var check *report.SimCheck
			if u, _ := fs.GetString("check-sim"); u != "" {
				if check, err = r.CheckSimulator(ctx, u); err != nil {
					return err
				}
			}
			if path, _ := fs.GetString("svg"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				if err := r.WriteSVG(f); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				fmt.Fprintf(env.Err, "wrote %s\n", path)
			}
			if j, _ := fs.GetBool("json"); j {
				out := struct {
					*report.Report
					Simulator *report.SimCheck `json:"simulator_check,omitempty"`
				}{r, check}
				if err := writeJSON(env.Out, out); err != nil {
					return err
				}
			} else {
				if err := r.WriteText(env.Out); err != nil {
					return err
				}
				if check != nil {
					check.WriteText(env.Out)
				}
			}
			if check != nil && !check.OK {
				return fmt.Errorf("the simulator's record disagrees with the report")
			}
			if !r.Complete {
				return fmt.Errorf("campaign not complete: %d of %d planned tokens have an outcome", r.Total.Done(), r.Total.Planned)
			}
			return nil
		},
	}
}

// waitReport builds the report of campaign id's fire, waiting up to wait
// for it to be complete (printing progress); an incomplete report is
// returned once wait has passed.
func waitReport(ctx context.Context, env *Env, cfg *config.Config, cl *kgo.Client, id, fire string, wait time.Duration) (*report.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute+wait)
	defer cancel()
	deadline := time.Now().Add(wait)
	for {
		r, err := report.Build(ctx, cfg, cl, id, fire)
		if err == nil && (r.Complete || time.Now().After(deadline)) {
			if wait > 0 {
				fmt.Fprintln(env.Err)
			}
			return r, nil
		}
		if err != nil && (wait == 0 || time.Now().After(deadline)) {
			return nil, err
		}
		if r != nil && wait > 0 {
			fmt.Fprintf(env.Err, "\r%d/%d tokens have an outcome", r.Total.Done(), r.Total.Planned)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
