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
		Summary: "create every topic owlpost uses (idempotent) and report any weaker than configured, or list them",
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
				weak, err := kafka.Weaker(ctx, adm, cfg.Topics.ReplicationFactor, specs)
				for _, w := range weak {
					fmt.Fprintln(env.Out, "WEAKER THAN CONFIGURED: "+w)
				}
				if err != nil {
					return err
				}
				if len(weak) > 0 {
					return fmt.Errorf("topics: %d weaker than configured (replication_factor %d, min_insync_replicas %d)",
						len(weak), cfg.Topics.ReplicationFactor, cfg.Topics.MinInsyncReplicas)
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
				rf := 0
				if len(td.Partitions) > 0 {
					rf = len(td.Partitions.Sorted()[0].Replicas)
				}
				fmt.Fprintf(env.Out, "%-28s partitions=%-3d replicas=%d min.insync.replicas=%s cleanup.policy=%s\n",
					s.Name, len(td.Partitions), rf, c["min.insync.replicas"], c["cleanup.policy"])
			}
			return nil
		},
	}
}
