package ctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/kafka"
)

// rehearseCommand is the dress rehearsal: it derives ID.rehearsal-N from the
// launch and drives it through the launch's own path (plan, prepare, proof,
// fire, report), as an operator would with the single commands, so what is
// measured is what GO will do. --define-only stops after the plan, for
// running the steps by hand. The launch's definition, plan, fire guard and
// audit trail are only read.
func rehearseCommand() Command {
	return Command{
		Name:    "rehearse",
		Usage:   "rehearse LAUNCH [--sample F] [--rate N] [--define-only] [--yes] [--json]",
		Summary: "dress rehearsal: a silent copy LAUNCH.rehearsal-N of a planned launch, planned, prepared, proofed, fired and judged against its goal",
		Flags: func(fs *pflag.FlagSet) {
			byFlag(fs)
			fs.Float64("sample", 1, "fraction of the audience to send to (0 < F <= 1, the same tokens every time); the report projects the result to the full audience")
			fs.Int("rate", 0, "cap the rehearsal at N notifications/s per platform (0 = no cap of its own)")
			fs.Bool("define-only", false, "define and plan the rehearsal, then stop (run prepare, proof, fire and report by hand)")
			fs.Bool("yes", false, "do not ask for confirmation before firing the rehearsal")
			fs.Bool("json", false, "print the report as JSON")
			fs.Duration("timeout", 30*time.Minute, "give up after this long")
			fs.Duration("every", 2*time.Second, "how often to check readiness while preparing")
		},
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			launch, err := oneCampaign(args)
			if err != nil {
				return err
			}
			sample, _ := fs.GetFloat64("sample")
			rate, _ := fs.GetInt("rate")
			if !(sample > 0 && sample <= 1) || rate < 0 {
				return usageErr("--sample must be in (0, 1] and --rate >= 0")
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			timeout, _ := fs.GetDuration("timeout")
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			// It fires, so it needs a launcher's rights (and the launch's
			// launchers, which the rehearsal inherits: checked by Fire).
			who, err := actor(ctx, cfg, fs, control.ActionFire)
			if err != nil {
				return err
			}
			by := who.Name
			asJSON, _ := fs.GetBool("json")
			report := env
			if asJSON { // stdout is the JSON report only; the steps go to stderr
				env = &Env{Out: env.Err, Err: env.Err, In: env.In, Log: env.Log}
			}
			svc, closeFn, err := controlService(cfg, env, nil)
			if err != nil {
				return err
			}
			defer closeFn()
			def, lm, err := svc.DefineRehearsal(ctx, launch, sample, rate, by)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "defined %s: rehearsal of %s (plan generation %d), background push, sample %.4g, rate cap %s\n",
				def.ID, launch, lm.Generation, sample, control.RateText(rate))
			id := def.ID
			m, err := planInProcess(ctx, env, cfg, id, by)
			if err != nil {
				return fmt.Errorf("plan %s: %w", id, err)
			}
			fmt.Fprintf(env.Out, "planned %s: %d iOS + %d Android tokens in %d batches (the launch's audience snapshot", id, m.IOSTokens, m.AndroidTokens, m.Batches())
			if sample < 1 {
				fmt.Fprintf(env.Out, ", sample %.4g%%", sample*100)
			}
			fmt.Fprintln(env.Out, ")")
			if only, _ := fs.GetBool("define-only"); only {
				fmt.Fprintf(env.Out, "next: owlctl prepare %[1]s --wait; owlctl proof %[1]s; owlctl fire %[1]s; owlctl report %[1]s --wait 10m\n", id)
				return nil
			}

			if err := svc.Prepare(ctx, id, by); err != nil {
				return err
			}
			every, _ := fs.GetDuration("every")
			if err := waitReady(ctx, env, svc, id, every, timeout); err != nil {
				return fmt.Errorf("prepare %s: %w", id, err)
			}
			if len(def.ProofAudience) > 0 {
				if err := runProof(ctx, env, svc, id, by, 2*time.Minute); err != nil {
					return err
				}
			}
			if yes, _ := fs.GetBool("yes"); !yes {
				what := fmt.Sprintf("FIRE the rehearsal %s now: a silent push to %d devices (the launch %s is not touched)", id, m.Tokens(), launch)
				if err := confirm(env, what, id); err != nil {
					fmt.Fprintln(env.Out, "not fired; the rehearsal stays prepared: owlctl fire "+id)
					return err
				}
			}
			out, err := svc.Fire(ctx, id, by, false)
			if out.Fire.FireID != "" {
				fmt.Fprintln(env.Out, out.Message)
			}
			if err != nil {
				return fmt.Errorf("fire %s: %w", id, err)
			}

			cl, err := kafka.NewClient(cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			r, err := waitReport(ctx, env, cfg, cl, id, out.Fire.FireID, time.Until(out.Fire.Deadline)+time.Minute)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(report.Out, r)
			}
			return r.WriteText(report.Out)
		},
	}
}
