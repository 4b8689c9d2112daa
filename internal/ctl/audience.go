package ctl

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/kafka"
)

func audienceCommand() Command {
	return Command{
		Name:    "audience",
		Usage:   "audience generate --topic T --ios N --android M [--locales ...] [--bad-fraction f] [--seed s]",
		Summary: "write a synthetic audience (realistic tokens, malformed and duplicate records) and print its ground truth",
		Flags: func(fs *pflag.FlagSet) {
			fs.String("topic", "", "audience topic (created if missing)")
			fs.Int("ios", 0, "distinct valid iOS tokens")
			fs.Int("android", 0, "distinct valid Android tokens")
			fs.StringSlice("locales", []string{"en-US", "es-US", "de-DE", "pt-BR"}, "device locales, assigned at random")
			fs.Float64("bad-fraction", 0.01, "malformed records, as a fraction of the valid tokens")
			fs.Float64("invalid-fraction", 0.005, "tokens the push simulator refuses as unregistered (a fraction of the valid tokens)")
			fs.Float64("duplicate-fraction", 0.01, "duplicate records, as a fraction of the valid tokens")
			fs.Int64("seed", 1, "random seed (same seed, same audience)")
			fs.Int32("partitions", 12, "partitions of the audience topic when it is created")
			fs.Bool("json", false, "print the counts as JSON")
		},
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			if _, _, err := subcommand(args, "generate"); err != nil {
				return err
			}
			topic, _ := fs.GetString("topic")
			if topic == "" {
				return usageErr("--topic is required")
			}
			var spec audience.Spec
			spec.IOS, _ = fs.GetInt("ios")
			spec.Android, _ = fs.GetInt("android")
			spec.Locales, _ = fs.GetStringSlice("locales")
			spec.BadFraction, _ = fs.GetFloat64("bad-fraction")
			spec.InvalidFraction, _ = fs.GetFloat64("invalid-fraction")
			spec.DuplicateFraction, _ = fs.GetFloat64("duplicate-fraction")
			spec.Seed, _ = fs.GetInt64("seed")
			partitions, _ := fs.GetInt32("partitions")
			asJSON, _ := fs.GetBool("json")
			if err := spec.Validate(); err != nil {
				return usageErr("%v", err)
			}
			if partitions < 1 {
				return usageErr("--partitions must be >= 1")
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			cl, err := kafka.NewClient(cfg, audience.ProducerOpts()...)
			if err != nil {
				return err
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			if err := ensureAudienceTopic(ctx, env, adm, topic, partitions, cfg.Topics.ReplicationFactor); err != nil {
				return err
			}
			counts, err := audience.Generate(ctx, cl, topic, spec, func(p audience.Progress) {
				fmt.Fprintf(env.Err, "%6.1fs  %d/%d records (%.0f/s)\n", p.Elapsed.Seconds(), p.Records, p.Total,
					float64(p.Records)/max(p.Elapsed.Seconds(), 1e-3))
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(env.Out, counts)
			}
			reasons := make([]string, 0, len(counts.Bad))
			for r := range counts.Bad {
				reasons = append(reasons, fmt.Sprintf("%s=%d", r, counts.Bad[r]))
			}
			sort.Strings(reasons)
			fmt.Fprintf(env.Out, "audience %s: %d records (%d MB)\n", topic, counts.Records, counts.Bytes>>20)
			fmt.Fprintf(env.Out, "  valid distinct tokens  ios %d, android %d (%d users)\n", counts.IOS, counts.Android, counts.Users)
			fmt.Fprintf(env.Out, "  simulator-invalid      ios %d (dead0410...), android %d (...UNREGISTERED...)\n",
				counts.InvalidIOS, counts.InvalidAndroid)
			fmt.Fprintf(env.Out, "  duplicates             %d\n", counts.Duplicates)
			fmt.Fprintf(env.Out, "  malformed              %d  %s\n", counts.BadTotal(), strings.Join(reasons, " "))
			return nil
		},
	}
}

// ensureAudienceTopic creates topic if it is missing and warns when it
// already holds records (a plan reads them too).
func ensureAudienceTopic(ctx context.Context, env *Env, adm *kadm.Client, topic string, partitions int32, rf int16) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("list topic %s: %w", topic, err)
	}
	if td, ok := tds[topic]; !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		changes, err := kafka.EnsureTopics(ctx, adm, rf, []kafka.TopicSpec{{Name: topic, Partitions: partitions}})
		for _, c := range changes {
			fmt.Fprintln(env.Err, c)
		}
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	if n > 0 {
		fmt.Fprintf(env.Err, "note: %s already holds %d records; a plan reads them as well as the new ones\n", topic, n)
	}
	return nil
}
