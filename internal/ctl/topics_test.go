package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/e2e"
	"github.com/owlpost/owlpost/internal/testenv"
)

// TestTopicsCreateReportsWeaker runs `owlctl topics create` on the cluster
// stack with replication factor 3 and min.insync.replicas 2 after the
// control topic was created with replication factor 1: the command fails
// and names it; the other topics are created with the configured settings.
func TestTopicsCreateReportsWeaker(t *testing.T) {
	cfg := testenv.ClusterConfig(t)
	ctx := testenv.Context(t, 2*time.Minute)
	adm := testenv.Admin(t, cfg)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, cfg.Topics.Control); err != nil {
		t.Fatal(err)
	}
	tp := cfg.Topics
	names := []string{tp.Campaigns, tp.Plans, tp.Batches, tp.Control, tp.Status, tp.SendIOS, tp.SendAndroid, tp.Results, tp.Feedback, tp.Rejects}
	t.Cleanup(func() { testenv.DeleteTopics(t, cfg, names...) })
	file := e2e.ConfigFile(t, cfg)
	var out, errb bytes.Buffer
	env := &Env{Out: &out, Err: &errb, In: strings.NewReader(""), Log: NewEnv().Log}
	if code := Main(context.Background(), []string{"topics", "create", "--config", file}, env); code == 0 {
		t.Fatalf("topics create succeeded with a replication factor 1 control topic:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "WEAKER THAN CONFIGURED: "+tp.Control+": 1 of 1 partitions have replication factor 1, configured 3") {
		t.Fatalf("the weaker control topic is not reported:\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	if strings.Count(out.String(), "WEAKER") != 1 {
		t.Fatalf("only the control topic's replication factor is weaker (its min.insync.replicas is raised):\n%s", out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"topics", "list", "--config", file}, env); code != 0 {
		t.Fatalf("topics list: %s", errb.String())
	}
	if !strings.Contains(out.String(), "replicas=3 min.insync.replicas=2") {
		t.Fatalf("topics list does not show the created topics with 3 replicas and min.insync.replicas 2:\n%s", out.String())
	}
}
