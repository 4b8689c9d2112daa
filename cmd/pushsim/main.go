// Command pushsim runs the APNs/FCM push-provider simulator (see
// internal/pushsim): TLS endpoints speaking the real wire protocols, fault
// injection and an admin API for stats. Flags fall back to
// OWLPOST_PUSHSIM_* environment variables; --help lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/owlpost/owlpost/internal/pushsim"
)

func main() {
	opts, err := pushsim.ParseArgs(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := pushsim.Serve(ctx, opts, log); err != nil {
		log.Error("pushsim failed", "err", err)
		os.Exit(1)
	}
}
