package control_test

import (
	"strings"
	"testing"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/wire"
)

// TestAPIRehearsal: POST /v1/campaigns/{id}/rehearsals defines the launch's
// next rehearsal as the operator who asked and requests its plan from the
// planner service; a viewer is refused and writes nothing, bad input is
// refused naming the field, an unplanned launch and a rehearsal of a
// rehearsal are refused, and the launch's definition is untouched.
func TestAPIRehearsal(t *testing.T) {
	f := newFixture(t)
	f.m.AudienceEnds = map[int32]int64{0: 1600}
	if err := f.cat.PutManifest(f.ctx, f.m); err != nil {
		t.Fatal(err)
	}
	unplanned := *f.def
	unplanned.ID = f.def.ID + "-unplanned"
	if err := f.cat.PutCampaign(f.ctx, &unplanned); err != nil {
		t.Fatal(err)
	}
	ts, tok := f.usersServer(t, nil)
	url := func(id string) string { return ts.URL + "/v1/campaigns/" + id + "/rehearsals" }

	for _, tc := range []struct {
		name, id, token, body string
		code                  int
		errCode, mention      string
	}{
		{"viewer", f.def.ID, tok["vera"], `{"sample":0.5}`, 403, control.CodeForbidden, "operator"},
		{"sample zero", f.def.ID, tok["oscar"], `{"sample":0}`, 400, control.CodeBadRequest, "sample"},
		{"sample over one", f.def.ID, tok["oscar"], `{"sample":1.5}`, 400, control.CodeBadRequest, "sample"},
		{"negative rate", f.def.ID, tok["oscar"], `{"rate":-1}`, 400, control.CodeBadRequest, "rate"},
		{"fractional rate", f.def.ID, tok["oscar"], `{"rate":1.5}`, 400, control.CodeBadRequest, "rate"},
		{"unknown field", f.def.ID, tok["oscar"], `{"samples":1}`, 400, control.CodeBadRequest, "samples"},
		{"unknown launch", "nope", tok["oscar"], "", 404, control.CodeUnknownCampaign, "nope"},
		{"unplanned launch", unplanned.ID, tok["oscar"], "", 412, control.CodeNotPlanned, "plan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := call(t, "POST", url(tc.id), tc.token, tc.body)
			if code != tc.code || m["code"] != tc.errCode || !strings.Contains(m["error"].(string), tc.mention) {
				t.Fatalf("want %d %s naming %q, got %d %v", tc.code, tc.errCode, tc.mention, code, m)
			}
		})
	}
	for _, typ := range []string{wire.ControlDefine, wire.ControlPlan} {
		if cs := f.controls(t, typ); len(cs) != 0 {
			t.Fatalf("refused requests wrote %s records: %+v", typ, cs)
		}
	}

	// An operator rehearses twice: .rehearsal-1 (sampled, capped), then
	// .rehearsal-2 (the defaults), each defined and its plan requested.
	code, m := call(t, "POST", url(f.def.ID), tok["oscar"], `{"sample":0.25,"rate":100}`)
	r1 := campaign.RehearsalID(f.def.ID, 1)
	if code != 202 || m["campaign"] != r1 || m["of"] != f.def.ID || m["sample"] != 0.25 || len(m["next"].([]any)) == 0 {
		t.Fatalf("first rehearsal: %d %v", code, m)
	}
	code, m = call(t, "POST", url(f.def.ID), tok["alice"], "")
	r2 := campaign.RehearsalID(f.def.ID, 2)
	if code != 202 || m["campaign"] != r2 || m["sample"] != 1.0 || m["rate"] != 0.0 {
		t.Fatalf("second rehearsal: %d %v", code, m)
	}
	def, err := f.cat.Campaign(f.ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	if def.Rehearsal == nil || def.Rehearsal.Of != f.def.ID || def.Rehearsal.Sample != 0.25 || def.RateLimit != 100 ||
		def.Rehearsal.AudienceEnds[0] != 1600 || !def.Background() {
		t.Fatalf("rehearsal definition: %+v (rehearsal %+v)", def, def.Rehearsal)
	}
	if launch, err := f.cat.Campaign(f.ctx, f.def.ID); err != nil || launch.Rehearsal != nil || launch.Background() {
		t.Fatalf("the launch changed: %+v (%v)", launch, err)
	}
	for typ, want := range map[string][]string{wire.ControlDefine: {r1 + " oscar", r2 + " alice"}, wire.ControlPlan: {r1 + " oscar", r2 + " alice"}} {
		var got []string
		for _, c := range f.controls(t, typ) {
			got = append(got, c.Campaign+" "+c.By)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s records: got %v, want %v", typ, got, want)
		}
	}

	// Its status says it is a rehearsal waiting for the planner service
	// (none runs here).
	code, m = call(t, "GET", ts.URL+"/v1/campaigns/"+r1+"/status", tok["vera"], "")
	pl, _ := m["planning"].(map[string]any)
	rh, _ := m["definition"].(map[string]any)["rehearsal"].(map[string]any)
	if code != 200 || m["state"] != control.StateDefined || pl["state"] != "requested" || pl["requested_by"] != "oscar" ||
		rh["of"] != f.def.ID || !strings.Contains(strings.Join(toStrings(m["reasons"]), ";"), "waiting for the planner service") {
		t.Fatalf("rehearsal status: %d %v", code, m)
	}

	// A rehearsal is not rehearsed.
	if code, m := call(t, "POST", url(r1), tok["oscar"], ""); code != 409 || m["code"] != control.CodeIsRehearsal {
		t.Fatalf("rehearsal of a rehearsal: want 409 %s, got %d %v", control.CodeIsRehearsal, code, m)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
