// Command fanout runs the fanout stage (see internal/fanout): it holds
// prepared campaigns' batches in memory and releases them to the send topics
// on a verified trigger, exactly once. Configuration: --config FILE, OWLPOST_*
// environment variables or one flag per key (--help lists them).
package main

import (
	"github.com/owlpost/owlpost/internal/daemon"
	"github.com/owlpost/owlpost/internal/fanout"
)

func main() {
	daemon.Main("fanout", func(env *daemon.Env) (daemon.Stage, error) {
		g, err := env.Guard()
		if err != nil {
			return nil, err
		}
		st, err := fanout.New(env.Cfg, fanout.Deps{Log: env.Log, Registry: env.Reg, Guard: g})
		if err != nil {
			return nil, err
		}
		env.Ready = st.Ready
		return st, nil
	})
}
