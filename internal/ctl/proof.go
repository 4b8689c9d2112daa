package ctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/control"
)

func proofCommand() Command {
	return Command{
		Name:    "proof",
		Usage:   "proof CAMPAIGN",
		Summary: "send the real payload to the campaign's proof devices only, and print what each received",
		Flags: func(fs *pflag.FlagSet) {
			byFlag(fs)
			fs.Duration("timeout", 2*time.Minute, "how long to wait for the proof results")
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
			who, err := actor(ctx, cfg, fs, control.ActionProof)
			if err != nil {
				return err
			}
			by := who.Name
			svc, closeFn, err := controlService(cfg, env, nil)
			if err != nil {
				return err
			}
			defer closeFn()
			timeout, _ := fs.GetDuration("timeout")
			return runProof(ctx, env, svc, id, by, timeout)
		},
	}
}

// runProof sends a proof of campaign id, prints what each device received
// and fails unless every device accepted it within timeout.
func runProof(ctx context.Context, env *Env, svc *control.Service, id, by string, timeout time.Duration) error {
	pid, err := svc.Proof(ctx, id, by)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "proof %s of %s requested by %s; waiting for results...\n", pid, id, by)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, werr := svc.WaitProof(wctx, id, pid)
	if rep != nil {
		printProof(env, rep)
	}
	if werr != nil {
		return fmt.Errorf("proof incomplete (are fanout and senders running and prepared?): %w", werr)
	}
	for _, d := range rep.Devices {
		if d.Outcome != control.ProofAccepted {
			return fmt.Errorf("proof: not every device accepted the notification")
		}
	}
	return nil
}

func printProof(env *Env, rep *control.ProofReport) {
	for _, d := range rep.Devices {
		fmt.Fprintf(env.Out, "  %-20s %-8s locale %-6s -> message %-6s %s", d.Name, d.Platform, d.Locale, d.MessageLocale, d.Outcome)
		if d.Reason != "" {
			fmt.Fprintf(env.Out, " (%s)", d.Reason)
		}
		fmt.Fprintln(env.Out)
		switch {
		case d.Silent && d.Title == "" && d.Body == "":
			fmt.Fprintln(env.Out, "      silent (background / data-only) notification")
		default:
			fmt.Fprintf(env.Out, "      title: %q\n", d.Title)
			if d.Subtitle != "" {
				fmt.Fprintf(env.Out, "      subtitle: %q\n", d.Subtitle)
			}
			fmt.Fprintf(env.Out, "      body:  %q\n", d.Body)
		}
		if d.Payload != "" {
			fmt.Fprintf(env.Out, "      payload: %s\n", d.Payload)
		}
	}
}
