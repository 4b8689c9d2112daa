// Command planner runs the planning service (see internal/planner): it plans
// campaigns on request (a plan record on the control topic, e.g. from
// `owlctl plan --via-service`) into pre-partitioned batches. Configuration:
// --config FILE, OWLPOST_* environment variables or one flag per key.
package main

import (
	"github.com/owlpost/owlpost/internal/daemon"
	"github.com/owlpost/owlpost/internal/planner"
)

func main() {
	daemon.Main("planner", func(env *daemon.Env) (daemon.Stage, error) {
		return planner.New(env.Cfg, planner.Deps{Registry: env.Reg, Log: env.Log})
	})
}
