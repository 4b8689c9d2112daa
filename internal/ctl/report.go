package ctl

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

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
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			fire, _ := fs.GetString("fire")
			r, err := report.Build(ctx, cfg, cl, args[0], fire)
			if err != nil {
				return err
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
				return r.WriteJSON(env.Out)
			}
			return r.WriteText(env.Out)
		},
	}
}
