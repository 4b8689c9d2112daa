package ctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/control"
)

func abortCommand() Command {
	return Command{
		Name:    "abort",
		Usage:   "abort CAMPAIGN [--yes] [--by NAME] [--via-api]",
		Summary: "kill switch: stop CAMPAIGN (unsent notifications are dropped; a later fire is refused)",
		Flags: func(fs *pflag.FlagSet) {
			byFlag(fs)
			fs.Bool("yes", false, "do not ask for confirmation")
			fs.Bool("via-api", false, "abort through the control API (control.url, control.token)")
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
			via, who, err := actorOrAPI(ctx, cfg, fs, control.ActionAbort)
			if err != nil {
				return err
			}
			if yes, _ := fs.GetBool("yes"); !yes {
				if err := confirm(env, "ABORT campaign "+id, id); err != nil {
					fmt.Fprintln(env.Out, "not aborted")
					return err
				}
			}
			if via {
				rep, err := (&control.Client{URL: cfg.Control.URL, Token: cfg.Control.Token}).Abort(ctx, id)
				if err != nil {
					return err
				}
				fmt.Fprintln(env.Out, rep.Message)
				return nil
			}
			svc, closeFn, err := controlService(cfg, env, nil)
			if err != nil {
				return err
			}
			defer closeFn()
			rec, err := svc.Abort(ctx, id, who.Name)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "aborted by %s at %s: no fire from now on; unsent notifications are dropped\n",
				rec.By, rec.At.UTC().Format(time.RFC3339))
			return nil
		},
	}
}
