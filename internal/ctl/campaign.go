package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/catalog"
	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/identity"
	"github.com/owlpost/owlpost/internal/kafka"
	"github.com/owlpost/owlpost/internal/wire"
)

func campaignCommand() Command {
	return Command{
		Name:    "campaign",
		Usage:   "campaign create|update|validate FILE | show ID [--json] | list [--json]",
		Summary: "define campaigns from YAML/JSON files (validated: every problem is printed), show and list them",
		Flags: func(fs *pflag.FlagSet) {
			fs.Bool("json", false, "show/list: print JSON (show: the canonical definition)")
			byFlag(fs)
		},
		Run: func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error {
			verb, rest, err := subcommand(args, "create", "update", "validate", "show", "list")
			if err != nil {
				return err
			}
			asJSON, _ := fs.GetBool("json")
			switch verb {
			case "validate":
				if len(rest) != 1 {
					return usageErr("campaign validate FILE")
				}
				def, err := readCampaignFile(env, rest[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Out, "%s: campaign %s is valid\n", rest[0], def.ID)
				return nil
			case "create", "update":
				if len(rest) != 1 {
					return usageErr("campaign %s FILE", verb)
				}
			case "show":
				if len(rest) != 1 {
					return usageErr("campaign show ID")
				}
			case "list":
				if len(rest) != 0 {
					return usageErr("campaign list takes no arguments")
				}
			}
			cfg, err := loadConfig(fs)
			if err != nil {
				return err
			}
			cl, err := kafka.NewClient(cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			cat, err := catalog.New(cfg, cl)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			switch verb {
			case "create", "update":
				who, err := actor(ctx, cfg, fs, control.ActionDefine)
				if err != nil {
					return err
				}
				return putCampaign(ctx, env, cfg, cl, cat, verb, rest[0], who.Name)
			case "show":
				return showCampaign(ctx, env, cat, rest[0], asJSON)
			default:
				return listCampaigns(ctx, env, cat, asJSON)
			}
		},
	}
}

// readCampaignFile parses and validates a definition file, printing every
// validation problem (one per line, field first) to env.Err.
func readCampaignFile(env *Env, path string) (*campaign.Campaign, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	def, err := campaign.Parse(raw)
	var ve *campaign.ValidationError
	if errors.As(err, &ve) {
		fmt.Fprintf(env.Err, "%s: %d problem(s):\n", path, len(ve.Problems))
		for _, p := range ve.Problems {
			fmt.Fprintf(env.Err, "  %s: %s\n", p.Field, p.Msg)
		}
		return nil, fmt.Errorf("%s: invalid campaign (%d problems)", path, len(ve.Problems))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return def, nil
}

func putCampaign(ctx context.Context, env *Env, cfg *config.Config, cl *kgo.Client, cat *catalog.Catalog, verb, path, by string) error {
	def, err := readCampaignFile(env, path)
	if err != nil {
		return err
	}
	if err := checkLaunchers(cfg, def); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if verb == "create" {
		err := cat.CreateCampaign(ctx, def)
		switch {
		case errors.Is(err, catalog.ErrExists):
			return fmt.Errorf("campaign %s already exists; use `owlctl campaign update %s` to change it", def.ID, path)
		case errors.Is(err, catalog.ErrConflict):
			return fmt.Errorf("campaign %s: another create of the same id ran at the same time and this one was not stored; run `owlctl campaign show %s` to see which definition was", def.ID, def.ID)
		case err != nil:
			return err
		}
	} else {
		switch _, err := cat.Campaign(ctx, def.ID); {
		case errors.Is(err, catalog.ErrNotFound):
			return fmt.Errorf("campaign %s does not exist; use `owlctl campaign create %s`", def.ID, path)
		case err != nil:
			return err
		}
		if err := refuseFired(ctx, cfg, def.ID); err != nil {
			return err
		}
		if err := cat.PutCampaign(ctx, def); err != nil {
			return err
		}
	}
	past := map[string]string{"create": "created", "update": "updated"}[verb]
	if err := audit(ctx, cl, cfg, &wire.Control{Type: wire.ControlDefine, Campaign: def.ID, By: by, Note: past}); err != nil {
		return fmt.Errorf("campaign %s %s, but not recorded in the audit log: %w", def.ID, past, err)
	}
	fmt.Fprintf(env.Out, "campaign %s %s (audience topic %s, %d locales)\n", def.ID, past, def.AudienceTopic, len(def.Messages))
	if verb == "update" {
		fmt.Fprintf(env.Out, "re-plan it if the audience or batch settings changed: owlctl plan %s\n", def.ID)
	}
	return nil
}

// refuseFired refuses to change a campaign that has fired: a sender that
// restarts mid-send would render the new definition for the rest of the
// audience, and a fired campaign cannot fire again anyway. Redis trouble
// refuses too (it cannot be checked).
func refuseFired(ctx context.Context, cfg *config.Config, id string) error {
	rdb, err := guard.NewClient(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	rec, fired, err := guard.New(rdb, cfg.Redis.Prefix, nil).FireOf(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("campaign %s not updated: cannot check whether it has fired: %w", id, err)
	case fired:
		return fmt.Errorf("campaign %s not updated: it fired at %s (by %s, fire id %s); define a new campaign instead",
			id, rec.At.UTC().Format(time.RFC3339), rec.By, rec.FireID)
	}
	return nil
}

func showCampaign(ctx context.Context, env *Env, cat *catalog.Catalog, id string, asJSON bool) error {
	def, err := cat.Campaign(ctx, id)
	if err != nil {
		return err
	}
	if asJSON {
		b, err := def.Encode()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Out, "%s\n", b)
		return err
	}
	y, err := yaml.Marshal(def)
	if err != nil {
		return fmt.Errorf("campaign %s: %w", id, err)
	}
	fmt.Fprintf(env.Out, "%s", y)
	m, err := cat.Manifest(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		fmt.Fprintf(env.Out, "# plan: none yet (owlctl plan %s)\n", id)
	case err != nil:
		return err
	default:
		printManifestLine(env.Out, "# plan: ", m)
	}
	return nil
}

func printManifestLine(w io.Writer, prefix string, m *wire.Manifest) {
	fmt.Fprintf(w, "%sgeneration %d, %d tokens in %d batches (ios %d in %d, android %d in %d) over %d partitions, planned %s by %s\n",
		prefix, m.Generation, m.Tokens(), m.Batches(), m.IOSTokens, m.IOSBatches, m.AndroidTokens, m.AndroidBatches,
		m.Partitions, m.PlannedAt.Local().Format(time.DateTime), m.PlannedBy)
}

type campaignRow struct {
	ID            string   `json:"id"`
	AudienceTopic string   `json:"audience_topic"`
	Locales       []string `json:"locales"`
	Deadline      string   `json:"deadline"`
	PushType      string   `json:"push_type"`
	Generation    uint64   `json:"generation,omitempty"`
	Tokens        uint64   `json:"tokens,omitempty"`
	Batches       uint32   `json:"batches,omitempty"`
}

func listCampaigns(ctx context.Context, env *Env, cat *catalog.Catalog, asJSON bool) error {
	defs, listErr := cat.Campaigns(ctx)
	rows := []campaignRow{}
	for _, d := range defs {
		locales := make([]string, 0, len(d.Messages))
		for l := range d.Messages {
			locales = append(locales, l)
		}
		sort.Strings(locales)
		row := campaignRow{ID: d.ID, AudienceTopic: d.AudienceTopic, Locales: locales, Deadline: d.Deadline.String(),
			PushType: d.APNs.PushType}
		if m, err := cat.Manifest(ctx, d.ID); err == nil {
			row.Generation, row.Tokens, row.Batches = m.Generation, m.Tokens(), m.Batches()
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		rows = append(rows, row)
	}
	if asJSON {
		if err := writeJSON(env.Out, rows); err != nil {
			return err
		}
		return listErr
	}
	tw := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAUDIENCE TOPIC\tLOCALES\tDEADLINE\tTYPE\tPLAN")
	for _, r := range rows {
		plan := "-"
		if r.Generation > 0 {
			plan = fmt.Sprintf("gen %d: %d tokens, %d batches", r.Generation, r.Tokens, r.Batches)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.AudienceTopic, strings.Join(r.Locales, ","), r.Deadline, r.PushType, plan)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rows) == 0 && listErr == nil { // an unreadable catalog is not an empty one
		fmt.Fprintln(env.Out, "no campaigns (owlctl campaign create FILE)")
	}
	return listErr
}

// checkLaunchers checks, when a users file is configured, that every named
// launcher is a user with role launcher: a typo would leave nobody able to
// fire on the day.
func checkLaunchers(cfg *config.Config, def *campaign.Campaign) error {
	if cfg.Control.UsersFile == "" || len(def.Launch.Launchers) == 0 {
		return nil
	}
	users, err := identity.LoadUsers(cfg.Control.UsersFile)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range def.Launch.Launchers {
		switch u, ok := users.Lookup(n); {
		case !ok:
			errs = append(errs, fmt.Errorf("launch.launchers: %s is not in the users file %s", n, cfg.Control.UsersFile))
		case !u.Role.Allows(identity.Launcher):
			errs = append(errs, fmt.Errorf("launch.launchers: %s is a %s, not a launcher", n, u.Role))
		}
	}
	return errors.Join(errs...)
}
