package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/wire"
)

func statusCommand() Command {
	return Command{
		Name:    "status",
		Usage:   "status CAMPAIGN [--json] [--watch]",
		Summary: "one screen: plan, readiness of fanout and senders, fire, progress, state, ready to fire or why not",
		Flags: func(fs *pflag.FlagSet) {
			fs.Bool("json", false, "print the status as JSON")
			fs.Bool("via-api", false, "ask the control API (control.url, control.token) instead of Kafka and Redis")
			fs.Bool("watch", false, "live view during the send, refreshed every second, until every token has an outcome")
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
			var st *control.CampaignStatus
			if via, _ := fs.GetBool("via-api"); via {
				st, err = (&control.Client{URL: cfg.Control.URL, Token: cfg.Control.Token}).Status(ctx, id)
			} else {
				if _, err := actor(ctx, cfg, fs, control.ActionRead); err != nil {
					return err
				}
				svc, closeFn, err2 := controlService(cfg, env, nil)
				if err2 != nil {
					return err2
				}
				defer closeFn()
				if w, _ := fs.GetBool("watch"); w {
					return watch(ctx, env, cfg, svc, id)
				}
				st, err = svc.Status(ctx, id)
			}
			if err != nil {
				return err
			}
			if asJSON, _ := fs.GetBool("json"); asJSON {
				return writeJSON(env.Out, st)
			}
			printStatus(env.Out, st)
			return nil
		},
	}
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}

func printStatus(w io.Writer, st *control.CampaignStatus) {
	d := st.Definition
	fmt.Fprintf(w, "campaign %s: %s\n", st.Campaign, strings.ToUpper(st.State))
	fmt.Fprintf(w, "  definition  locales %s (default %s), deadline %s, push type %s, %d proof devices\n",
		strings.Join(d.Locales, ", "), d.DefaultLocale, d.Deadline, d.PushType, d.ProofDevices)
	if p := st.Plan; p != nil {
		fmt.Fprintf(w, "  plan        planned %d tokens in %d batches (ios %d in %d, android %d in %d) over %d partitions;"+
			" generation %d at %s by %s\n", p.Tokens, p.Batches, p.IOSTokens, p.IOSBatches, p.AndroidTokens, p.AndroidBatches,
			p.Partitions, p.Generation, ts(p.PlannedAt), p.PlannedBy)
	} else {
		fmt.Fprintln(w, "  plan        not planned (owlctl plan)")
	}
	r := st.Readiness
	if st.Plan != nil && st.Fire != nil {
		// After the fire the fanout has released its batches: gates no longer apply.
		fmt.Fprintf(w, "  fanout      released at %s (fire id %s); readiness is not checked after the fire\n", ts(st.Fire.At), st.Fire.FireID)
	} else if st.Plan != nil {
		match := "manifest match"
		if !r.ManifestMatch {
			match = "MANIFEST MISMATCH"
		}
		ready := 0
		for _, f := range r.Fanout {
			if f.State == wire.StateReady {
				ready++
			}
		}
		fmt.Fprintf(w, "  fanout      %d/%d instances ready, %d/%d partitions, %d/%d batches, %d/%d tokens, %s\n",
			ready, len(r.Fanout), r.PartitionsHeld, r.PartitionsPlanned, r.BatchesHeld, st.Plan.Batches,
			r.TokensHeld, st.Plan.Tokens, match)
		for _, f := range r.Fanout {
			extra := ""
			if f.Released > 0 {
				extra = fmt.Sprintf(", %d released", f.Released)
			}
			if f.Error != "" {
				extra += ", error: " + f.Error
			}
			fmt.Fprintf(w, "              %-24s %-9s partitions %v, %d batches, %d tokens, generation %d%s\n",
				f.Instance, f.State, f.Partitions, f.Batches, f.Tokens, f.Generation, extra)
		}
	}
	fmt.Fprintf(w, "  senders     ios %d ready, android %d ready\n", r.SendersReady["ios"], r.SendersReady["android"])
	for _, s := range r.Senders {
		conn := "connected"
		if !s.Connected {
			conn = "NOT connected"
		}
		fmt.Fprintf(w, "              %-24s %-8s %s %s\n", s.Instance, s.Platform, conn, s.Error)
	}
	if f := st.Fire; f != nil {
		force := ""
		if f.Force {
			force = " (FORCED)"
		}
		fmt.Fprintf(w, "  fired       at %s by %s, fire id %s%s, deadline %s\n", ts(f.At), f.By, f.FireID, force, ts(f.Deadline))
	} else {
		fmt.Fprintln(w, "  fired       no")
	}
	if a := st.Abort; a != nil {
		fmt.Fprintf(w, "  aborted     at %s by %s\n", ts(a.At), a.By)
	}
	if p := st.Progress; p != nil {
		fmt.Fprintf(w, "  progress    %d/%d tokens in %d/%d batches: %d accepted, %d invalid, %d failed, %d expired, %d aborted (%d retries)\n",
			p.TokensDone, p.TokensPlanned, p.BatchesDone, p.BatchesPlanned, p.Accepted, p.Invalid, p.Failed, p.Expired, p.Aborted, p.Retries)
	}
	if pr := st.LastProof; pr != nil {
		fmt.Fprintf(w, "  last proof  %s at %s by %s\n", pr.ProofID, ts(pr.At), pr.By)
	}
	fmt.Fprintln(w, "  history")
	for _, h := range st.History {
		line := fmt.Sprintf("    %-9s %s", h.State, ts(h.At))
		if h.By != "" {
			line += " by " + h.By
		}
		if h.Note != "" {
			line += " (" + h.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "  ERROR       %s\n", e)
	}
	if st.ReadyToFire {
		fmt.Fprintf(w, "READY TO FIRE (owlctl fire %s)\n", st.Campaign)
		return
	}
	if st.Fire != nil || st.Abort != nil {
		return // released or aborted: no gate verdicts, the lines above say what happened
	}
	fmt.Fprintln(w, "NOT READY TO FIRE:")
	for _, r := range st.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
}
