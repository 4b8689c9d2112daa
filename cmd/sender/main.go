// Command sender runs one sender instance for one platform (sender.platform:
// ios or android): it consumes the platform's send topic in its consumer
// group and sends every token through APNs or FCM once (see internal/sender).
// Flags: one per config key (--help lists them); env OWLPOST_*.
package main

import (
	"github.com/owlpost/owlpost/internal/daemon"
	"github.com/owlpost/owlpost/internal/sender"
)

func main() {
	daemon.Main("sender", func(env *daemon.Env) (daemon.Stage, error) {
		g, err := env.Guard()
		if err != nil {
			return nil, err
		}
		adapter, err := sender.NewPush(env.Cfg)
		if err != nil {
			return nil, err
		}
		env.OnClose(adapter.Close)
		st, err := sender.New(env.Cfg, sender.Deps{Registry: env.Reg, Log: env.Log, Guard: g, Push: adapter})
		if err != nil {
			return nil, err
		}
		env.Name, env.Ready = "sender-"+env.Cfg.Sender.Platform, st.Ready
		return st, nil
	})
}
