package ctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/control"
)

func prepareCommand() Command {
	return Command{
		Name:    "prepare",
		Usage:   "prepare CAMPAIGN [--wait]",
		Summary: "ask fanout and senders to load and warm up for CAMPAIGN; --wait until it is ready to fire",
		Flags: func(fs *pflag.FlagSet) {
			byFlag(fs)
			fs.Bool("wait", false, "wait until the campaign is ready to fire, printing readiness")
			fs.Duration("timeout", 15*time.Minute, "give up waiting after this long")
			fs.Duration("every", 2*time.Second, "how often to check readiness while waiting")
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
			who, err := actor(ctx, cfg, fs, control.ActionPrepare)
			if err != nil {
				return err
			}
			by := who.Name
			svc, closeFn, err := controlService(cfg, env, nil)
			if err != nil {
				return err
			}
			defer closeFn()
			if err := svc.Prepare(ctx, id, by); err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "prepare requested for %s by %s\n", id, by)
			if wait, _ := fs.GetBool("wait"); !wait {
				fmt.Fprintf(env.Out, "follow it with: owlctl status %s (or prepare --wait)\n", id)
				return nil
			}
			timeout, _ := fs.GetDuration("timeout")
			every, _ := fs.GetDuration("every")
			if err := waitReady(ctx, env, svc, id, every, timeout); err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "READY TO FIRE: owlctl fire %s\n", id)
			return nil
		},
	}
}

// waitReady prints readiness when it changes until campaign id is ready to
// fire, or timeout.
func waitReady(ctx context.Context, env *Env, svc *control.Service, id string, every, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		st, err := svc.Status(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("not ready after %s (last: %s)", timeout, last)
			}
			return err
		}
		line := readinessLine(st)
		if line != last {
			fmt.Fprintf(env.Out, "%s  %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
		if st.ReadyToFire {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %s", timeout, strings.Join(st.Reasons, "; "))
		case <-time.After(every):
		}
	}
}

// readinessLine is one line about fanout and senders.
func readinessLine(st *control.CampaignStatus) string {
	r := st.Readiness
	line := fmt.Sprintf("fanout: %d instance(s), %d/%d partitions, %d/%d batches; senders: ios %d, android %d",
		len(r.Fanout), r.PartitionsHeld, r.PartitionsPlanned, r.BatchesHeld, planBatches(st),
		r.SendersReady["ios"], r.SendersReady["android"])
	if st.ReadyToFire {
		return line + "; ready"
	}
	return line + "; waiting: " + strings.Join(st.Reasons, "; ")
}

func planBatches(st *control.CampaignStatus) uint32 {
	if st.Plan == nil {
		return 0
	}
	return st.Plan.Batches
}
