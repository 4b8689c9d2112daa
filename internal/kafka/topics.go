package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/owlpost/owlpost/internal/config"
)

// TopicSpec is one topic the system needs.
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]string
}

const day = 24 * 60 * 60 * 1000

// maxBatchBytes bounds a batch record: 250 Android tokens of up to 4096
// characters are about 1 MB, over Kafka's default limit.
const maxBatchBytes = "4194304" // 4 MiB

func withMaxBytes(m map[string]string) map[string]string {
	m["max.message.bytes"] = maxBatchBytes
	return m
}

// minISR is the topic config EnsureTopics only ever raises (a topic an
// operator made stronger stays so).
const minISR = "min.insync.replicas"

// Specs lists every topic of the system with its settings; every one gets
// min.insync.replicas from topics.min_insync_replicas.
func Specs(cfg *config.Config) []TopicSpec {
	specs := specs(cfg)
	for _, s := range specs {
		s.Configs[minISR] = strconv.Itoa(int(cfg.Topics.MinInsyncReplicas))
	}
	return specs
}

func specs(cfg *config.Config) []TopicSpec {
	t := cfg.Topics
	compact := func(extra map[string]string) map[string]string {
		m := map[string]string{
			"cleanup.policy": "compact",
			// Keep tombstones a day so every reader that re-reads a plan
			// sees the removals before compaction drops them.
			"delete.retention.ms": strconv.Itoa(day),
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	retention := func(days int) map[string]string {
		return map[string]string{"cleanup.policy": "delete", "retention.ms": strconv.Itoa(days * day)}
	}
	return []TopicSpec{
		// Every map is its own: Specs adds to each.
		{t.Campaigns, 1, compact(nil)},
		{t.Plans, 1, compact(nil)},
		// Batches may be planned days ahead: compacted, never expired.
		// min.compaction.lag keeps a fresh plan's records un-compacted while a
		// re-plan is being written.
		{t.Batches, t.BatchesPartitions, compact(map[string]string{
			"min.compaction.lag.ms": strconv.Itoa(60 * 60 * 1000),
			"max.message.bytes":     maxBatchBytes,
		})},
		// One partition: every reader sees control records in order.
		{t.Control, 1, retention(90)},
		{t.Status, 1, compact(nil)},
		// Send tasks are batch records: same size limit as the batches topic.
		{t.SendIOS, t.SendPartitions, withMaxBytes(retention(7))},
		{t.SendAndroid, t.SendPartitions, withMaxBytes(retention(7))},
		{t.Results, t.ResultsPartitions, retention(90)},
		{t.Feedback, t.FeedbackPartitions, compact(nil)},
		{t.Rejects, t.RejectsPartitions, retention(30)},
	}
}

// EnsureTopics creates missing topics, sets the managed configs of existing
// ones and grows partition counts that are below the configured count. It
// never deletes or shrinks anything, so it is safe to run repeatedly (a
// topic-init job, every `make test`). It returns what it changed.
func EnsureTopics(ctx context.Context, adm *kadm.Client, rf int16, specs []TopicSpec) ([]string, error) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w", err)
	}
	var changes []string
	var errs []error
	altered := map[string][]kadm.AlterConfig{}
	for _, s := range specs {
		cfgs := make(map[string]*string, len(s.Configs))
		for k, v := range s.Configs {
			cfgs[k] = kadm.StringPtr(v)
		}
		td, ok := existing[s.Name]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			resp, err := adm.CreateTopic(ctx, s.Partitions, rf, cfgs, s.Name)
			switch {
			case errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(resp.Err, kerr.TopicAlreadyExists):
				// A concurrent creator won; configs are checked next run.
			case err != nil:
				errs = append(errs, fmt.Errorf("kafka: create topic %s: %w", s.Name, err))
			default:
				changes = append(changes, fmt.Sprintf("created %s (%d partitions)", s.Name, s.Partitions))
			}
			continue
		}
		if td.Err != nil {
			errs = append(errs, fmt.Errorf("kafka: describe topic %s: %w", s.Name, td.Err))
			continue
		}
		if have := int32(len(td.Partitions)); have < s.Partitions {
			if _, err := adm.UpdatePartitions(ctx, int(s.Partitions), s.Name); err != nil {
				errs = append(errs, fmt.Errorf("kafka: grow %s to %d partitions: %w", s.Name, s.Partitions, err))
			} else {
				changes = append(changes, fmt.Sprintf("grew %s from %d to %d partitions", s.Name, have, s.Partitions))
			}
		}
		current, err := TopicConfigs(ctx, adm, s.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var alter []kadm.AlterConfig
		for k, v := range s.Configs {
			if k == minISR && atLeast(current[k], v) {
				continue
			}
			if current[k] != v {
				alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
			}
		}
		if len(alter) > 0 {
			resps, err := adm.AlterTopicConfigs(ctx, alter, s.Name)
			if err == nil {
				for _, r := range resps {
					err = errors.Join(err, r.Err)
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("kafka: alter configs of %s: %w", s.Name, err))
			} else {
				altered[s.Name] = alter
				changes = append(changes, fmt.Sprintf("updated %d configs of %s", len(alter), s.Name))
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, waitForTopics(ctx, adm, names), waitForConfigs(ctx, adm, altered))
	}
	return changes, errors.Join(errs...)
}

// waitForConfigs returns once a describe shows every altered config. The
// controller applies an alter before the brokers do, and a describe is
// answered by any broker from its own copy of the metadata, so without the
// wait a check right after EnsureTopics can still see the old values.
func waitForConfigs(ctx context.Context, adm *kadm.Client, altered map[string][]kadm.AlterConfig) error {
	for topic, alter := range altered {
		for {
			current, err := TopicConfigs(ctx, adm, topic)
			applied := err == nil
			for _, a := range alter {
				if applied && current[a.Name] != *a.Value {
					applied = false
				}
			}
			if applied {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kafka: altered configs of %s not applied: %w", topic, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// atLeast reports whether the integer setting have is >= want.
func atLeast(have, want string) bool {
	h, err1 := strconv.Atoi(have)
	w, err2 := strconv.Atoi(want)
	return err1 == nil && err2 == nil && h >= w
}

// Weaker returns, for every topic of specs that exists, each way it is
// weaker than configured: fewer replicas than rf on a partition (Kafka
// cannot raise a replication factor in place: that takes a partition
// reassignment), min.insync.replicas below the spec's, unclean leader
// election enabled (a leader elected from outside the ISR drops acknowledged
// writes), or fewer partitions than configured. Missing topics are
// EnsureTopics' business and are not reported.
func Weaker(ctx context.Context, adm *kadm.Client, rf int16, specs []TopicSpec) ([]string, error) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	tds, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w", err)
	}
	var out []string
	var errs []error
	for _, s := range specs {
		td, ok := tds[s.Name]
		if !ok || td.Err != nil {
			continue
		}
		if have := int32(len(td.Partitions)); have < s.Partitions {
			out = append(out, fmt.Sprintf("%s: %d partitions, configured %d", s.Name, have, s.Partitions))
		}
		low, least := 0, int(rf)
		for _, p := range td.Partitions {
			if len(p.Replicas) < int(rf) {
				low++
				least = min(least, len(p.Replicas))
			}
		}
		if low > 0 {
			out = append(out, fmt.Sprintf("%s: %d of %d partitions have replication factor %d, configured %d (raise it with a partition reassignment)",
				s.Name, low, len(td.Partitions), least, rf))
		}
		current, err := TopicConfigs(ctx, adm, s.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want, ok := s.Configs[minISR]; ok && !atLeast(current[minISR], want) {
			out = append(out, fmt.Sprintf("%s: %s=%s, configured %s", s.Name, minISR, current[minISR], want))
		}
		if current["unclean.leader.election.enable"] == "true" {
			out = append(out, fmt.Sprintf("%s: unclean.leader.election.enable=true (an unclean leader drops acknowledged writes)", s.Name))
		}
	}
	return out, errors.Join(errs...)
}

// waitForTopics returns once metadata lists every topic with leaders, so
// callers can produce right after EnsureTopics.
func waitForTopics(ctx context.Context, adm *kadm.Client, names []string) error {
	for {
		tds, err := adm.ListTopics(ctx, names...)
		ready := err == nil
		for _, n := range names {
			td, ok := tds[n]
			if !ok || td.Err != nil || len(td.Partitions) == 0 {
				ready = false
				break
			}
			for _, p := range td.Partitions {
				if p.Leader < 0 || p.Err != nil {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: topics not ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TopicConfigs returns a topic's effective configs.
func TopicConfigs(ctx context.Context, adm *kadm.Client, topic string) (map[string]string, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: describe configs of %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return nil, fmt.Errorf("kafka: describe configs of %s: %w", topic, err)
	}
	out := make(map[string]string, len(rc.Configs))
	for _, c := range rc.Configs {
		out[c.Key] = c.MaybeValue()
	}
	return out, nil
}
