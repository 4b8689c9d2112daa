// Command fanout runs the fanout stage (see internal/fanout): it holds
// prepared campaigns' batches in memory and releases them to the send topics
// on a verified trigger, exactly once. Configuration: --config FILE, OWLPOST_*
// environment variables or one flag per key (--help lists them).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/fanout"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/metrics"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := pflag.NewFlagSet("fanout", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load(fs)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	log.Info("fanout starting", "config", cfg.String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg := metrics.NewRegistry()
	rdb, err := guard.NewClient(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st, err := fanout.New(cfg, fanout.Deps{Log: log, Registry: reg, Guard: guard.New(rdb, cfg.Redis.Prefix, reg)})
	if err != nil {
		return err
	}
	defer st.Close()
	go func() {
		if err := metrics.Serve(ctx, cfg.Metrics.Addr, reg, "fanout", metrics.Health{Ready: st.Ready, Pprof: cfg.Metrics.Pprof}, log); err != nil {
			log.Error("metrics server", "err", err)
			stop()
		}
	}()
	return st.Run(ctx)
}
