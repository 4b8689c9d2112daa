package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/owlpost/owlpost/internal/config"
)

// Env is what a command runs with.
type Env struct {
	Out, Err io.Writer
	In       io.Reader
	Log      *slog.Logger
}

// Command is one owlctl command. Run gets the flag set already parsed (with
// the config flags registered) and the remaining positional arguments.
type Command struct {
	Name    string // "campaign", "plan", ...
	Usage   string // "campaign create|update|show|list [FILE|ID]"
	Summary string
	// Flags registers the command's own flags (optional).
	Flags func(fs *pflag.FlagSet)
	Run   func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error
}

// commands is the command table; each command group adds itself here.
func commands() []Command {
	return []Command{
		topicsCommand(),
		reportCommand(),
		benchCommand(),
		prepareCommand(),
		statusCommand(),
		proofCommand(),
		fireCommand(),
		abortCommand(),
		serveCommand(),
		userCommand(),
		campaignCommand(),
		planCommand(),
		audienceCommand(),
		rehearseCommand(),
	}
}

// ErrUsage marks a usage error (exit code 2).
var ErrUsage = errors.New("usage")

// Main runs owlctl with args (without the program name) and returns the
// process exit code.
func Main(ctx context.Context, args []string, env *Env) int {
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Err, cmds)
		return 2
	}
	var cmd *Command
	for i := range cmds {
		if cmds[i].Name == args[0] {
			cmd = &cmds[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(env.Err, "owlctl: unknown command %q\n\n", args[0])
		usage(env.Err, cmds)
		return 2
	}
	fs := pflag.NewFlagSet("owlctl "+cmd.Name, pflag.ContinueOnError)
	fs.SetOutput(env.Err)
	fs.SortFlags = false
	config.RegisterFlags(fs)
	if cmd.Flags != nil {
		cmd.Flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(env.Err, "usage: owlctl %s\n  %s\n\nflags (config keys are flags too, see --config):\n", cmd.Usage, cmd.Summary)
		own := pflag.NewFlagSet("", pflag.ContinueOnError)
		if cmd.Flags != nil {
			cmd.Flags(own)
		}
		fmt.Fprint(env.Err, own.FlagUsages())
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := cmd.Run(ctx, env, fs, fs.Args()); err != nil {
		var code exitCode // the command printed the outcome; only the exit code is left
		if errors.As(err, &code) {
			return int(code)
		}
		if errors.Is(err, ErrUsage) {
			fmt.Fprintf(env.Err, "owlctl %s: %v\n", cmd.Name, err)
			fs.Usage()
			return 2
		}
		fmt.Fprintf(env.Err, "owlctl %s: %v\n", cmd.Name, err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds []Command) {
	fmt.Fprintln(w, "owlctl: operate owlpost campaigns\n\nusage: owlctl COMMAND [ARGS] [FLAGS]\n\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-60s %s\n", c.Usage, c.Summary)
	}
	fmt.Fprintln(w, "\nRun `owlctl COMMAND --help` for a command's flags.")
}

// loadConfig loads the Config from the parsed flags, env and file.
func loadConfig(fs *pflag.FlagSet) (*config.Config, error) {
	return config.Load(fs)
}

// usageErr builds a usage error.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// NewEnv returns the process environment for owlctl.
func NewEnv() *Env {
	return &Env{Out: os.Stdout, Err: os.Stderr, In: os.Stdin,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
}

// subcommand splits "verb rest..." and checks the verb is one of allowed.
func subcommand(args []string, allowed ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usageErr("missing subcommand (%s)", strings.Join(allowed, "|"))
	}
	for _, a := range allowed {
		if args[0] == a {
			return a, args[1:], nil
		}
	}
	return "", nil, usageErr("unknown subcommand %q (want %s)", args[0], strings.Join(allowed, "|"))
}

// writeJSON prints v as indented JSON (every --json output).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
