// Command sender runs one sender instance for one platform (sender.platform:
// ios or android): it consumes the platform's send topic in its consumer
// group and sends every token through APNs or FCM once (see internal/sender).
// Flags: one per config key (--help lists them); env OWLPOST_*.
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
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/metrics"
	"github.com/owlpost/owlpost/internal/sender"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	fs := pflag.NewFlagSet("sender", pflag.ContinueOnError)
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
	log.Info("starting sender", "config", cfg.String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := metrics.NewRegistry()
	rdb, err := guard.NewClient(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	adapter, err := sender.NewPush(cfg)
	if err != nil {
		return err
	}
	defer adapter.Close()
	stage, err := sender.New(cfg, sender.Deps{Registry: reg, Log: log, Guard: guard.New(rdb, cfg.Redis.Prefix, reg), Push: adapter})
	if err != nil {
		return err
	}
	defer stage.Close()
	go func() {
		if err := metrics.Serve(ctx, cfg.Metrics.Addr, reg, "sender-"+cfg.Sender.Platform,
			metrics.Health{Ready: stage.Ready, Pprof: cfg.Metrics.Pprof}, log); err != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return stage.Run(ctx)
}
