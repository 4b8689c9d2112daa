package ctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/owlpost/owlpost/internal/kafka"
)

func topicsCommand() Command {
	return Command{
		Name:    "topics",
		Usage:   "topics create|list",
		Summary: "create every topic owlpost uses (idempotent), or list them with their settings",
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			verb, _, err := subcommand(args, "create", "list")
			if err != nil {
				return err
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
			adm := kadm.NewClient(cl)
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			specs := kafka.Specs(cfg)
			if verb == "create" {
				changes, err := kafka.EnsureTopics(ctx, adm, cfg.Topics.ReplicationFactor, specs)
				for _, c := range changes {
					fmt.Fprintln(env.Out, c)
				}
				if err != nil {
					return err
				}
				if len(changes) == 0 {
					fmt.Fprintln(env.Out, "all topics exist with the right settings")
				}
				return nil
			}
			names := make([]string, len(specs))
			for i, s := range specs {
				names[i] = s.Name
			}
			tds, err := adm.ListTopics(ctx, names...)
			if err != nil {
				return err
			}
			for _, s := range specs {
				td, ok := tds[s.Name]
				if !ok || td.Err != nil {
					fmt.Fprintf(env.Out, "%-28s MISSING (run owlctl topics create)\n", s.Name)
					continue
				}
				c, _ := kafka.TopicConfigs(ctx, adm, s.Name)
				fmt.Fprintf(env.Out, "%-28s partitions=%-3d cleanup.policy=%s\n", s.Name, len(td.Partitions), c["cleanup.policy"])
			}
			return nil
		},
	}
}
