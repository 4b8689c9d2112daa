// Command owlctl operates owlpost campaigns: topics, campaigns, audiences,
// plan, prepare, proof, fire, abort, status, report, the control API (serve)
// and the benchmark. See `owlctl help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/owlpost/owlpost/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.NewEnv())
	stop()
	os.Exit(code)
}
