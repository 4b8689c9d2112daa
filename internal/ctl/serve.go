package ctl

import (
	"context"
	"fmt"
	"os"
	"os/user"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/console"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/metrics"
)

func serveCommand() Command {
	return Command{
		Name:    "serve",
		Usage:   "serve",
		Summary: "run the control HTTP API (prepare, proof, fire, abort, status) and the launch console (/console/) on control.addr; needs control.users_file or control.token",
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			if len(args) != 0 {
				return usageErr("serve takes no arguments")
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			auth, err := control.NewAuthenticator(cfg)
			if err != nil {
				return err
			}
			env.Log.Info("starting control API", "config", cfg.String())
			reg := metrics.NewRegistry()
			svc, closeFn, err := controlService(cfg, env, reg, metrics.KafkaHooks(reg, "control"))
			if err != nil {
				return err
			}
			defer closeFn()
			srv, err := control.NewServer(svc, auth, nil, reg, env.Log)
			if err != nil {
				return err
			}
			con, err := console.New(svc, srv, env.Log)
			if err != nil {
				return err
			}
			con.Register(srv)
			// /metrics, /healthz, /readyz and owlpost_stage_ready{stage="control"} on
			// metrics.addr like every stage (the API port also answers /metrics).
			go func() {
				if err := metrics.Serve(ctx, cfg.Metrics.Addr, reg, "control", metrics.Health{Pprof: cfg.Metrics.Pprof}, env.Log); err != nil {
					env.Log.Error("metrics server", "err", err)
				}
			}()
			return srv.ListenAndServe(ctx, cfg.Control.Addr)
		},
	}
}

// controlService builds the campaign operations on a Kafka client and the
// Redis guard of cfg. Call the returned func to close both.
func controlService(cfg *config.Config, env *Env, reg prometheus.Registerer, extra ...kgo.Opt) (*control.Service, func(), error) {
	cl, err := kafka.NewClient(cfg, extra...)
	if err != nil {
		return nil, nil, err
	}
	rdb, err := guard.NewClient(cfg)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	closeFn := func() { _ = rdb.Close(); cl.Close() }
	g := guard.New(rdb, cfg.Redis.Prefix, reg).ConfirmFires(cfg.Redis.FireReplicasWanted(), cfg.Redis.FireReplicaTimeout)
	svc, err := control.New(cfg, control.Deps{Kafka: cl, Guard: g, Log: env.Log, Registry: reg})
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return svc, closeFn, nil
}

// byFlag registers --by. With a users file the name comes from the token
// (see actor); without one, --by (default: the login name) is trusted.
func byFlag(fs *pflag.FlagSet) {
	fs.String("by", "", "who is acting, for the audit log: only without control.users_file (default: your login name); with one, your token names you")
}

func defaultActor() string {
	for _, k := range []string{"OWLPOST_BY", "USER", "LOGNAME"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("owlctl@%s", host)
}

// oneCampaign checks args is exactly one campaign id.
func oneCampaign(args []string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", usageErr("want exactly one CAMPAIGN id")
	}
	return args[0], nil
}
