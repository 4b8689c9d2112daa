// Package daemon is the start-up and shutdown every stage binary shares:
// flags and config, the logger, signals (a second Ctrl-C exits at once), the
// private metrics registry and the /metrics /healthz /readyz server. A
// binary's main only says how to build its stage.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/metrics"
)

// Stage is what a daemon runs: Run until ctx ends (nil on a clean stop),
// then Close.
type Stage interface {
	Run(ctx context.Context) error
	Close() error
}

// Env is what a stage is built from.
type Env struct {
	Cfg *config.Config
	Log *slog.Logger
	Reg *prometheus.Registry
	// Name labels the metrics server (owlpost_stage_ready{stage}); build may
	// refine it (e.g. "sender-ios").
	Name string
	// Ready answers /readyz; nil = always ready.
	Ready   func() error
	closers []func() error
}

// OnClose registers f to run after the stage is closed (last in, first out).
func (e *Env) OnClose(f func() error) { e.closers = append(e.closers, f) }

// Guard connects the Redis guard; the client is closed at exit.
func (e *Env) Guard() (*guard.Guard, error) {
	rdb, err := guard.NewClient(e.Cfg)
	if err != nil {
		return nil, err
	}
	e.OnClose(rdb.Close)
	return guard.New(rdb, e.Cfg.Redis.Prefix, e.Reg), nil
}

// Main runs the binary called name and exits the process.
func Main(name string, build func(env *Env) (Stage, error)) {
	if err := run(name, build); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, name+":") {
			msg = name + ": " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

func run(name string, build func(env *Env) (Stage, error)) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
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
	level, err := cfg.SlogLevel()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log) // the Kafka clients' own log lines go here too (internal/kafka)
	log.Info(name+" starting", "config", cfg.String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // a second signal exits at once
		<-ctx.Done()
		hard := make(chan os.Signal, 1)
		signal.Notify(hard, os.Interrupt, syscall.SIGTERM)
		<-hard
		log.Error("second signal: exiting without a clean shutdown")
		os.Exit(2)
	}()

	env := &Env{Cfg: cfg, Log: log, Reg: metrics.NewRegistry(), Name: name}
	defer func() {
		for i := len(env.closers) - 1; i >= 0; i-- {
			_ = env.closers[i]()
		}
	}()
	st, err := build(env)
	if err != nil {
		return err
	}
	defer st.Close()
	go func() {
		h := metrics.Health{Ready: env.Ready, Pprof: cfg.Metrics.Pprof}
		if err := metrics.Serve(ctx, cfg.Metrics.Addr, env.Reg, env.Name, h, log); err != nil {
			log.Error("metrics server stopped: stopping", "err", err)
			stop()
		}
	}()
	return st.Run(ctx)
}
