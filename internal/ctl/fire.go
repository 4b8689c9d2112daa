package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/control"
)

// ExitAlreadyFired is the exit code of a press that lost: the campaign had
// already fired (the outcome names the winner).
const ExitAlreadyFired = 3

// exitCode is an error that only sets the process exit code; the command has
// already printed what happened.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func fireCommand() Command {
	return Command{
		Name:    "fire",
		Usage:   "fire CAMPAIGN [--force] [--yes] [--by NAME] [--via-api]",
		Summary: "press GO: fire CAMPAIGN once (asks you to type the id; exit 0 fired, 3 already fired, 1 refused)",
		Flags: func(fs *pflag.FlagSet) {
			byFlag(fs)
			fs.Bool("force", false, "fire even if fanout/senders are not fully prepared (recorded in the fire record)")
			fs.Bool("yes", false, "do not ask for confirmation (scripted use by a marketing tool)")
			fs.Bool("via-api", false, "press through the control API (control.url, control.token) instead of acting directly")
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
			force, _ := fs.GetBool("force")
			via, who, err := actorOrAPI(ctx, cfg, fs, control.ActionFire)
			if err != nil {
				return err
			}
			if yes, _ := fs.GetBool("yes"); !yes {
				what := "FIRE campaign " + id + " now"
				if force {
					what += " WITHOUT full readiness (--force)"
				}
				if err := confirm(env, what, id); err != nil {
					fmt.Fprintln(env.Out, "not fired")
					return err
				}
			}
			var out control.FireOutcome
			if via {
				out, err = (&control.Client{URL: cfg.Control.URL, Token: cfg.Control.Token}).Fire(ctx, id, force)
			} else {
				svc, closeFn, err2 := controlService(cfg, env, nil)
				if err2 != nil {
					return err2
				}
				defer closeFn()
				out, err = svc.Fire(ctx, id, who.Name, force)
			}
			if out.Fire.FireID != "" {
				fmt.Fprintln(env.Out, out.Message)
			}
			if err != nil {
				if out.Fire.FireID == "" {
					return fmt.Errorf("not fired: %w", err)
				}
				return err
			}
			if !out.Won {
				return exitCode(ExitAlreadyFired)
			}
			return nil
		},
	}
}

// confirm asks the operator to type want; anything else cancels. It is the
// "square button": hard to press by accident, impossible to press by a
// stray click or Enter.
func confirm(env *Env, what, want string) error {
	fmt.Fprintf(env.Out, "About to %s.\nType the campaign id (%s) to confirm, anything else cancels: ", what, want)
	line, err := bufio.NewReader(env.In).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(env.Out)
		return errors.New("no confirmation typed: cancelled")
	}
	if strings.TrimSpace(line) != want {
		return fmt.Errorf("confirmation %q does not match %q: cancelled", strings.TrimSpace(line), want)
	}
	return nil
}
