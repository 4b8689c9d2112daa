package ctl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/bench"
)

func benchCommand() Command {
	d := bench.DefaultOptions()
	return Command{
		Name:    "bench",
		Usage:   "bench [--phases raw,sender,pipeline,trigger] [--rounds 3] [--tokens N] [--raw-n N] [--sender-n N] [--fires N]",
		Summary: "measure the raw client libraries, the sender alone, the whole pipeline and the trigger path (N fires) against the simulator",
		Flags: func(fs *pflag.FlagSet) {
			fs.StringSlice("phases", d.Phases, "phases to run each round, in order: raw, sender, pipeline, trigger")
			fs.Int("rounds", d.Rounds, "rounds (phases interleaved); medians are reported")
			fs.Int("raw-n", d.RawN, "notifications per raw library run")
			fs.Int("apns-clients", d.APNsClients, "raw apns2 clients (HTTP/2 connections)")
			fs.Int("apns-workers", d.APNsWorkers, "raw apns2 goroutines per client")
			fs.Int("fcm-per-call", d.FCMPerCall, "raw firebase tokens per SendEachForMulticast")
			fs.Int("fcm-in-flight", d.FCMInFlight, "raw firebase multicast calls in flight")
			fs.Int("sender-n", d.SenderN, "tokens per platform pre-filled for the sender phase")
			fs.Int("tokens", d.Tokens, "pipeline audience size")
			fs.Float64("ios-share", d.IOSShare, "share of iOS tokens in the pipeline audience")
			fs.Int("fanouts", d.Fanouts, "fanout processes in the pipeline phase")
			fs.Int("sender-procs", d.SenderProcs, "GOMAXPROCS of each sender in the pipeline phase (0 = Go's default, every core)")
			fs.Int("fires", d.Fires, "campaigns fired one after another in the trigger phase (the first after start included)")
			fs.Int("trigger-tokens", d.TriggerTokens, "audience of each trigger-phase campaign")
			fs.String("bin", d.BinDir, "directory holding pushsim, planner, fanout, sender and owlctl")
			fs.String("out", "", "directory for logs and configs (default bench-out/<time>)")
			fs.Duration("phase-timeout", d.PhaseTimeout, "bound on one phase run")
			fs.String("log", "docs/bench-log.md", "Markdown log to append a dated entry to (\"\" = none)")
			fs.StringArray("note", nil, "a sentence to add to the entry (repeatable)")
			fs.String("cpuprofile", "", "write CPU profiles of the in-process raw library runs to this directory")
		},
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			if len(args) != 0 {
				return usageErr("bench takes no arguments")
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			o := bench.DefaultOptions()
			o.Phases, _ = fs.GetStringSlice("phases")
			o.Rounds, _ = fs.GetInt("rounds")
			o.RawN, _ = fs.GetInt("raw-n")
			o.APNsClients, _ = fs.GetInt("apns-clients")
			o.APNsWorkers, _ = fs.GetInt("apns-workers")
			o.FCMPerCall, _ = fs.GetInt("fcm-per-call")
			o.FCMInFlight, _ = fs.GetInt("fcm-in-flight")
			o.SenderN, _ = fs.GetInt("sender-n")
			o.Tokens, _ = fs.GetInt("tokens")
			o.IOSShare, _ = fs.GetFloat64("ios-share")
			o.Fanouts, _ = fs.GetInt("fanouts")
			o.SenderProcs, _ = fs.GetInt("sender-procs")
			o.Fires, _ = fs.GetInt("fires")
			o.TriggerTokens, _ = fs.GetInt("trigger-tokens")
			o.BinDir, _ = fs.GetString("bin")
			o.PhaseTimeout, _ = fs.GetDuration("phase-timeout")
			o.OutDir, _ = fs.GetString("out")
			o.CPUProfileDir, _ = fs.GetString("cpuprofile")
			start := time.Now()
			if o.OutDir == "" {
				o.OutDir = filepath.Join("bench-out", start.Format("20060102-150405"))
			}
			if err := o.Validate(); err != nil {
				return usageErr("%v", err)
			}
			// Before anything starts: the runtime reads GODEBUG only then.
			if err := bench.ReexecWithStackShrinkOff(); err != nil {
				return err
			}
			m := bench.ReadMachine()
			res, runErr := bench.Run(ctx, cfg, o, env.Err)
			fmt.Fprintln(env.Out)
			if err := res.WriteTable(env.Out, bench.Ratios()); err != nil {
				return err
			}
			path, _ := fs.GetString("log")
			if path != "" && len(res.Keys()) > 0 {
				e := &bench.Entry{When: start, Command: "owlctl " + strings.Join(os.Args[1:], " "),
					Machine: m, Versions: bench.Versions("scripts/devstack.sh"), Options: o, Results: res}
				if os.Getenv("MAKELEVEL") != "" { // run by `make bench`, which passes BENCH_ARGS through
					e.Command = strings.TrimSpace("make bench " + benchArgs(os.Args[2:]))
				}
				if j, ok := runErr.(interface{ Unwrap() []error }); ok {
					for _, err := range j.Unwrap() {
						first, _, _ := strings.Cut(err.Error(), "\n")
						e.Failures = append(e.Failures, first)
					}
				} else if runErr != nil {
					first, _, _ := strings.Cut(runErr.Error(), "\n")
					e.Failures = []string{first}
				}
				e.Notes, _ = fs.GetStringArray("note")
				if err := bench.AppendEntry(path, e); err != nil {
					return err
				}
				fmt.Fprintf(env.Err, "bench: appended an entry to %s (logs in %s); BENCHMARKS.md's current "+
					"figures change only by hand\n", path, o.OutDir)
			}
			return runErr
		},
	}
}

// benchArgs renders the flags as a BENCH_ARGS assignment ("" when none).
func benchArgs(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return fmt.Sprintf("BENCH_ARGS=%q", strings.Join(args, " "))
}
