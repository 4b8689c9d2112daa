package ctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/wire"
)

// actor returns who runs this command and checks they may do action.
//
// With control.users_file set, the identity is the one control.token
// belongs to, and --by may only repeat its name. Without a users file
// (a single operator's machine, the demo, the test suites) owlctl acting on
// Kafka and Redis directly trusts --by (default: the login name) as a
// launcher: whoever can reach the broker and Redis can fire anyway, so the
// users file is what makes identities binding (see README, "People and
// roles").
func actor(ctx context.Context, cfg *config.Config, fs *pflag.FlagSet, action string) (identity.Identity, error) {
	by, _ := fs.GetString("by")
	if cfg.Control.UsersFile == "" {
		if by == "" {
			by = defaultActor()
		}
		return identity.Identity{Name: by, Role: identity.Launcher, Source: "local"}, nil
	}
	users, err := identity.LoadUsers(cfg.Control.UsersFile)
	if err != nil {
		return identity.Identity{}, err
	}
	if cfg.Control.Token == "" {
		return identity.Identity{}, fmt.Errorf("%w: control.users_file is set, so owlctl needs your own token (control.token, control.token_file or OWLPOST_CONTROL_TOKEN)", control.ErrUnauthorized)
	}
	who, err := users.Authenticate(ctx, cfg.Control.Token)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: your token (control.token) matches no user of %s", control.ErrUnauthorized, cfg.Control.UsersFile)
	}
	if fs.Changed("by") && by != who.Name {
		return identity.Identity{}, usageErr("--by %s: your token is %s's; the audit log takes the name from the token", by, who.Name)
	}
	return who, control.Allow(who, action)
}

// actorOrAPI is actor for a command with --via-api: through the API the
// server names the actor from the token, so --by is refused and no identity
// is resolved here (via true).
func actorOrAPI(ctx context.Context, cfg *config.Config, fs *pflag.FlagSet, action string) (bool, identity.Identity, error) {
	if via, _ := fs.GetBool("via-api"); via {
		if fs.Changed("by") {
			return true, identity.Identity{}, usageErr("--by cannot be used with --via-api: the API takes the identity from your token (control.token)")
		}
		return true, identity.Identity{}, nil
	}
	who, err := actor(ctx, cfg, fs, action)
	return false, who, err
}

// audit publishes one audit record (a Control record the stages ignore or
// act on, by type) on the control topic.
func audit(ctx context.Context, cl *kgo.Client, cfg *config.Config, c *wire.Control) error {
	if c.At.IsZero() {
		c.At = time.Now().UTC()
	}
	val, err := wire.Encode(c)
	if err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topics.Control, Key: []byte(c.Campaign), Value: val}).FirstErr(); err != nil {
		return fmt.Errorf("publish %s record of %s: %w", c.Type, c.Campaign, err)
	}
	return nil
}

func userCommand() Command {
	return Command{
		Name:    "user",
		Usage:   "user new NAME ROLE | whoami [--via-api]",
		Summary: "new: print a fresh token and its users-file line (role viewer|operator|launcher); whoami: the identity of control.token",
		Flags: func(fs *pflag.FlagSet) {
			fs.Bool("via-api", false, "whoami: ask the control API (control.url)")
		},
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			verb, rest, err := subcommand(args, "new", "whoami")
			if err != nil {
				return err
			}
			if verb == "new" {
				if len(rest) != 2 {
					return usageErr("user new NAME ROLE")
				}
				if !identity.ValidName(rest[0]) {
					return usageErr("name %q: want [a-z0-9][a-z0-9._-]{0,62}", rest[0])
				}
				if _, err := identity.ParseRole(rest[1]); err != nil {
					return usageErr("%v", err)
				}
				tok, hash, err := identity.NewToken()
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Err, "Give %s this token (shown once; only its hash is stored):\n", rest[0])
				fmt.Fprintln(env.Out, tok)
				fmt.Fprintf(env.Err, "Add this line under users: in the users file (control.users_file):\n")
				fmt.Fprintf(env.Out, "  - {name: %s, role: %s, token_hash: %q}\n", rest[0], rest[1], hash)
				return nil
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			var who identity.Identity
			if via, _ := fs.GetBool("via-api"); via {
				who, err = (&control.Client{URL: cfg.Control.URL, Token: cfg.Control.Token}).Whoami(ctx)
			} else {
				who, err = actor(ctx, cfg, fs, control.ActionRead)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "%s (%s, from %s)\n", who.Name, who.Role, who.Source)
			return nil
		},
	}
}
