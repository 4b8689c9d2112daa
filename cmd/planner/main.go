// Command planner runs the planning stage as a service (see internal/planner):
// it plans a campaign's audience into batches on every plan request of the
// control topic. Configuration: --config FILE, OWLPOST_* environment
// variables or one flag per key (--help lists them).
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
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/planner"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "planner:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := pflag.NewFlagSet("planner", pflag.ContinueOnError)
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
	log.Info("planner starting", "config", cfg.String())
	reg := metrics.NewRegistry()
	st, err := planner.New(cfg, planner.Deps{Registry: reg, Log: log})
	if err != nil {
		return err
	}
	defer st.Close()
	go func() {
		if err := metrics.Serve(ctx, cfg.Metrics.Addr, reg, "planner", metrics.Health{Pprof: cfg.Metrics.Pprof}, log); err != nil {
			log.Error("metrics server", "err", err)
		}
	}()
	return st.Run(ctx)
}
