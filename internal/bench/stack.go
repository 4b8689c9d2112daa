package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/guard"
	"github.com/owlpost/owlpost/internal/kafka"
)

// Stack is what a stage phase runs against: a simulator process, topics,
// consumer groups and Redis keys private to this phase run (so the bench
// never touches a demo's or a test's data), one YAML config file shared by
// every process it starts (like scripts/demo.sh), and those processes.
// Close stops and removes all of it.
type Stack struct {
	ID         string // run-scoped name part
	Dir        string
	BinDir     string
	Cfg        *config.Config // as the stages see it
	ConfigFile string
	Sim        *Sim
	Cl         *kgo.Client
	Adm        *kadm.Client
	RDB        redis.UniversalClient

	procs  []*Proc
	topics []string
}

// NewStack starts the simulator, writes the config file and creates the
// run's topics. base gives the Kafka brokers and the Redis address.
func NewStack(ctx context.Context, base *config.Config, binDir, dir, id string) (_ *Stack, err error) {
	s := &Stack{ID: id, Dir: dir, BinDir: binDir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Sim, err = StartSim(ctx, filepath.Join(binDir, "pushsim"), dir); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, s.Sim.Proc)
	controlAddr, err := FreePort()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	tokenFile := filepath.Join(dir, "control-token")
	if err := os.WriteFile(tokenFile, []byte(hex.EncodeToString(tok)), 0o600); err != nil {
		return nil, fmt.Errorf("bench: control token: %w", err)
	}
	prefix := "owlbench." + id + "."
	topics := map[string]any{}
	for _, role := range []string{"campaigns", "plans", "batches", "control", "status", "send_ios",
		"send_android", "results", "feedback", "rejects"} {
		topics[role] = prefix + strings.ReplaceAll(role, "_", ".")
	}
	doc := map[string]any{
		"kafka":  map[string]any{"brokers": base.Kafka.Brokers},
		"redis":  map[string]any{"addr": base.Redis.Addr, "prefix": "owlbench-" + id},
		"topics": topics,
		"apns": map[string]any{"host": s.Sim.APNsURL, "key_file": s.Sim.KeyFile(), "key_id": s.Sim.KeyID,
			"team_id": s.Sim.TeamID, "topic": s.Sim.Topic, "ca_file": s.Sim.CAFile},
		"fcm": map[string]any{"project_id": s.Sim.Project, "credentials_file": s.Sim.ServiceAccountFile(),
			"endpoint": s.Sim.FCMURL, "ca_file": s.Sim.CAFile},
		"control": map[string]any{"addr": controlAddr, "url": "http://" + controlAddr, "token_file": tokenFile},
		"sender":  map[string]any{"group": "owlbench-" + id + "-sender"},
		"fanout":  map[string]any{"group": "owlbench-" + id + "-fanout", "transactional_id": "owlbench-" + id + "-fanout"},
	}
	y, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("bench: config: %w", err)
	}
	s.ConfigFile = filepath.Join(dir, "owlpost.yaml")
	if err := os.WriteFile(s.ConfigFile, y, 0o600); err != nil {
		return nil, fmt.Errorf("bench: config: %w", err)
	}
	// Load it the way the stages will, so both sides agree.
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Set("config", s.ConfigFile); err != nil {
		return nil, fmt.Errorf("bench: config: %w", err)
	}
	if s.Cfg, err = config.Load(fs); err != nil {
		return nil, err
	}
	if s.Cl, err = kafka.NewClient(s.Cfg, kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedBytes(256<<20)); err != nil {
		return nil, err
	}
	s.Adm = kadm.NewClient(s.Cl)
	specs := kafka.Specs(s.Cfg)
	for _, sp := range specs {
		s.topics = append(s.topics, sp.Name)
	}
	if _, err := kafka.EnsureTopics(ctx, s.Adm, s.Cfg.Topics.ReplicationFactor, specs); err != nil {
		return nil, err
	}
	if s.RDB, err = guard.NewClient(s.Cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// AddTopic adds a topic created by a command to what Close deletes.
func (s *Stack) AddTopic(name string) { s.topics = append(s.topics, name) }

// Env is the environment of a stage process: the shared config file plus
// the instance id and a free metrics address.
func (s *Stack) Env(instance string, extra ...string) (env []string, metricsAddr string, err error) {
	if metricsAddr, err = FreePort(); err != nil {
		return nil, "", err
	}
	return append([]string{"OWLPOST_CONFIG=" + s.ConfigFile, "OWLPOST_INSTANCE_ID=" + instance,
		"OWLPOST_METRICS_ADDR=" + metricsAddr}, extra...), metricsAddr, nil
}

// Stage is a long-running stage process with its metrics address.
type Stage struct {
	*Proc
	MetricsAddr string
}

// StartStage starts bin/<bin> as instance name, with extra env.
func (s *Stack) StartStage(name, bin string, extra []string, args ...string) (*Stage, error) {
	env, addr, err := s.Env(name, extra...)
	if err != nil {
		return nil, err
	}
	p, err := StartProc(name, s.Dir, env, filepath.Join(s.BinDir, bin), args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return &Stage{Proc: p, MetricsAddr: addr}, nil
}

// Owlctl runs one owlctl command to completion with the stack's config.
func (s *Stack) Owlctl(ctx context.Context, name string, args ...string) (string, error) {
	env := []string{"OWLPOST_CONFIG=" + s.ConfigFile, "OWLPOST_INSTANCE_ID=bench-" + name}
	p, err := StartProc(name, s.Dir, env, filepath.Join(s.BinDir, "owlctl"), args...)
	if err != nil {
		return "", err
	}
	defer p.Stop(2 * time.Second)
	err = p.Wait(ctx)
	out, _ := os.ReadFile(p.Log)
	if err != nil {
		return string(out), fmt.Errorf("bench: owlctl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// WaitReady polls the stage's /readyz until 200, the process exits or ctx
// ends; it returns the stage's usage read right after it turned ready.
func (st *Stage) WaitReady(ctx context.Context, poll time.Duration) (Usage, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get("http://" + st.MetricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ReadUsage(st.Pid())
			}
		}
		if e := st.Exited(); e != nil {
			return Usage{}, e
		}
		select {
		case <-ctx.Done():
			return Usage{}, fmt.Errorf("bench: %s not ready: %w (log %s)", st.Name, ctx.Err(), st.Log)
		case <-time.After(poll):
		}
	}
}

// CheckAlive returns an error naming the first started process that exited.
func (s *Stack) CheckAlive() error {
	for _, p := range s.procs {
		if err := p.Exited(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every process (last started first), deletes the run's topics,
// consumer groups and Redis keys and closes the clients. The fanouts'
// transactional ids cannot be deleted through the Kafka API; the broker
// expires them (transactional.id.expiration.ms, 7 days by default).
func (s *Stack) Close() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop(10 * time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if s.Adm != nil && len(s.topics) > 0 {
		resp, err := s.Adm.DeleteTopics(ctx, s.topics...)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bench: delete topics: %w", err))
		}
		// Every group whose name holds the run id (senders, fanouts, and
		// whatever groups stages derive from the run's topic names).
		if groups, err := s.Adm.ListGroups(ctx); err == nil {
			for _, g := range groups.Groups() {
				if strings.Contains(g, s.ID) {
					_, _ = s.Adm.DeleteGroup(ctx, g)
				}
			}
		}
	}
	if s.RDB != nil {
		iter := s.RDB.Scan(ctx, 0, s.Cfg.Redis.Prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 1000 {
				errs = append(errs, s.RDB.Unlink(ctx, keys...).Err())
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			errs = append(errs, s.RDB.Unlink(ctx, keys...).Err())
		}
		errs = append(errs, iter.Err(), s.RDB.Close())
	}
	if s.Cl != nil {
		s.Cl.Close()
	}
	return errors.Join(errs...)
}
