package planner_test

import (
	"maps"
	"testing"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestPlanRehearsal: a rehearsal plans the launch's audience snapshot (not
// what arrived since), all of it or a deterministic sample by token.
func TestPlanRehearsal(t *testing.T) {
	e := newEnv(t)
	spec := audience.Spec{IOS: 600, Android: 400, Locales: []string{"en-US", "de-DE"}, Seed: 3}
	topic, _ := e.audienceTopic("audience-r", 3, spec)
	const id = "launch-r"
	e.putCampaign(id, topic)
	m1, err := e.st.Plan(e.ctx, id, "tester", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m1.AudienceEnds) != 3 {
		t.Fatalf("manifest audience_ends %v, want 3 partitions", m1.AudienceEnds)
	}
	want, _ := expected(t, spec)

	// The data team produces more afterwards; the rehearsal must not see it.
	more := audience.Spec{IOS: 50, Android: 50, Locales: []string{"en-US"}, Seed: 99}
	cl := testenv.Client(t, e.cfg, audience.ProducerOpts()...)
	if _, err := audience.Generate(e.ctx, cl, topic, more, nil); err != nil {
		t.Fatal(err)
	}

	launch, err := e.cat.Campaign(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	plan := func(n int, sample float64) *wire.Manifest {
		r, err := launch.Rehearse(campaign.RehearsalID(id, n), sample, 0, m1.AudienceEnds)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.cat.PutCampaign(e.ctx, r); err != nil {
			t.Fatal(err)
		}
		m, err := e.st.Plan(e.ctx, r.ID, "tester", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(m.AudienceEnds, m1.AudienceEnds) || m.AudienceRecords != m1.AudienceRecords {
			t.Fatalf("rehearsal read ends %v (%d records), the launch %v (%d)", m.AudienceEnds, m.AudienceRecords,
				m1.AudienceEnds, m1.AudienceRecords)
		}
		return m
	}
	full := plan(1, 1)
	if full.IOSTokens != m1.IOSTokens || full.AndroidTokens != m1.AndroidTokens || full.Sample != 0 {
		t.Fatalf("full rehearsal plans %d+%d tokens (sample %v), the launch %d+%d", full.IOSTokens,
			full.AndroidTokens, full.Sample, m1.IOSTokens, m1.AndroidTokens)
	}

	sampled := func(m *wire.Manifest) map[string]bool {
		live, _ := e.liveBatches()
		got := map[string]bool{}
		for _, r := range live {
			b, err := wire.DecodeBatch(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if b.Campaign != m.Campaign {
				continue
			}
			for _, tok := range b.Tokens {
				if !want[b.Platform][tok.Token] {
					t.Fatalf("sampled token %s is not in the launch's snapshot", tok.Token)
				}
				got[tok.Token] = true
			}
		}
		if uint64(len(got)) != m.Tokens() {
			t.Fatalf("batches hold %d tokens, manifest %d", len(got), m.Tokens())
		}
		return got
	}
	s1 := plan(2, 0.3)
	got1 := sampled(s1)
	if s1.Sample != 0.3 || s1.Tokens() == 0 || s1.Tokens() >= m1.Tokens()/2 {
		t.Fatalf("sample 0.3 planned %d of %d tokens (sample %v)", s1.Tokens(), m1.Tokens(), s1.Sample)
	}
	s2 := plan(3, 0.3)
	if got2 := sampled(s2); !maps.Equal(got1, got2) {
		t.Fatalf("the same sample fraction chose different tokens (%d and %d)", len(got1), len(got2))
	}
}
