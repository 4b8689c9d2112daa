package control_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/control"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/testenv"
	"github.com/owlpost/owlpost/internal/wire"
)

func TestFiftyConcurrentPressesFireOnce(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	if err := f.svc.Prepare(f.ctx, f.def.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	st, err := f.svc.Status(f.ctx, f.def.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ReadyToFire || st.State != control.StatePrepared {
		t.Fatalf("want ready and prepared before GO, got ready=%v state=%s reasons=%v errors=%v", st.ReadyToFire, st.State, st.Reasons, st.Errors)
	}

	const presses = 50
	outs := make([]control.FireOutcome, presses)
	errs := make([]error, presses)
	var wg sync.WaitGroup
	for i := range presses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = f.svc.Fire(f.ctx, f.def.ID, fmt.Sprintf("marketer-%d", i), false)
		}()
	}
	wg.Wait()
	won := 0
	ids := map[string]int{}
	for i := range presses {
		if errs[i] != nil {
			t.Fatalf("press %d: %v", i, errs[i])
		}
		if outs[i].Won {
			won++
		} else if !strings.HasPrefix(outs[i].Message, "already fired at ") {
			t.Errorf("press %d lost without the winner's details: %q", i, outs[i].Message)
		}
		ids[outs[i].Fire.FireID]++
	}
	if won != 1 || len(ids) != 1 {
		t.Fatalf("want exactly one winner seen by all presses, got won=%d fire ids=%v", won, ids)
	}
	var fireID string
	for id := range ids {
		fireID = id
	}
	recs := f.controls(t, wire.ControlFire)
	if len(recs) != presses {
		t.Fatalf("want %d trigger records (every press re-publishes the winner), got %d", presses, len(recs))
	}
	for _, c := range recs {
		if c.FireID != fireID || c.Campaign != f.def.ID || c.Deadline.IsZero() {
			t.Fatalf("trigger record for another fire or incomplete: %+v (winner %s)", c, fireID)
		}
	}
	if won, lost := f.counter(t, "owlpost_control_fire_presses_total", map[string]string{"result": "won"}),
		f.counter(t, "owlpost_control_fire_presses_total", map[string]string{"result": "lost"}); won != 1 || lost != presses-1 {
		t.Fatalf("presses metric: won=%v lost=%v", won, lost)
	}

	// The senders finish: results cover every planned batch -> done.
	st, err = f.svc.Status(f.ctx, f.def.ID)
	if err != nil || st.State != control.StateFiring || st.ReadyToFire {
		t.Fatalf("after GO want firing and not ready to fire, got %s %v %v", st.State, st.ReadyToFire, err)
	}
	f.results(t, f.fireResults(fireID)...)
	f.results(t, wire.Result{Platform: push.IOS, Seq: 0, FireID: fireID, Kind: wire.KindFire, Tokens: 500, Skipped: true})
	f.results(t, wire.Result{Platform: push.IOS, Seq: 9, FireID: "someone-else", Kind: wire.KindFire, Tokens: 500, Accepted: 500})
	st, err = f.svc.Status(f.ctx, f.def.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := st.Progress
	if st.State != control.StateDone || p == nil || p.TokensDone != 1600 || p.Accepted != 1596 || p.Invalid != 4 || p.Skipped != 1 {
		t.Fatalf("want done with 1596 accepted and 4 invalid, got state %s progress %+v", st.State, p)
	}

	// An hour later someone presses again: refused with the winner.
	later := f.service(t, f.g, func() time.Time { return time.Now().Add(time.Hour) })
	out, err := later.Fire(f.ctx, f.def.ID, "late-larry", true)
	if err != nil || out.Won || out.Fire.FireID != fireID || !strings.Contains(out.Message, "fire id "+fireID) {
		t.Fatalf("late press: %+v %v", out, err)
	}
}

func TestFireRefusals(t *testing.T) {
	f := newFixture(t)
	unplanned := *f.def
	unplanned.ID = "unplanned-campaign"
	if err := f.cat.PutCampaign(f.ctx, &unplanned); err != nil {
		t.Fatal(err)
	}
	stale := f.fanoutReady()
	for i := range stale {
		stale[i].At = time.Now().Add(-time.Minute)
	}
	half := f.fanoutReady()[:1]

	// Each case adds reports to those of the cases before it.
	cases := []struct {
		name    string
		id      string
		reports []wire.Status
		want    error
		reason  string
	}{
		{"unknown campaign", "no-such-campaign", nil, control.ErrUnknownCampaign, ""},
		{"unplanned", unplanned.ID, nil, control.ErrNotPlanned, ""},
		{"not prepared", f.def.ID, nil, control.ErrNotReady, "no fanout instance reports"},
		{"stale reports", f.def.ID, stale, control.ErrNotReady, "stale"},
		{"half the partitions", f.def.ID, half, control.ErrNotReady, "fanout holds 2/4 partitions"},
		{"no senders", f.def.ID, f.fanoutReady(), control.ErrNotReady, "no ios sender ready"},
		{"loading", f.def.ID, append(senders(), wire.Status{Campaign: f.def.ID, Role: wire.RoleFanout, Instance: "fanout-a",
			State: wire.StateLoading, Generation: f.m.Generation}), control.ErrNotReady, "fanout fanout-a is loading"},
		{"old generation", f.def.ID, []wire.Status{func() wire.Status {
			s := f.fanoutReady()[0]
			s.Generation = 6
			return s
		}()}, control.ErrNotReady, "plan generation 6, the plan is generation 7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.report(t, tc.reports...)
			out, err := f.svc.Fire(f.ctx, tc.id, "mallory", false)
			if !errors.Is(err, tc.want) || out.Won {
				t.Fatalf("want %v, got %+v %v", tc.want, out, err)
			}
			if tc.reason != "" {
				var nr *control.NotReadyError
				if !errors.As(err, &nr) || !strings.Contains(strings.Join(nr.Reasons, "; "), tc.reason) {
					t.Fatalf("want reason %q, got %v", tc.reason, err)
				}
			}
		})
	}
	if n := len(f.controls(t, wire.ControlFire)); n != 0 {
		t.Fatalf("refused presses published %d trigger records", n)
	}
	if _, fired, _ := f.g.FireOf(f.ctx, f.def.ID); fired {
		t.Fatal("a refused press fired the guard")
	}
	if n := f.counter(t, "owlpost_control_fire_presses_total", map[string]string{"result": "refused"}); n != float64(len(cases)) {
		t.Fatalf("refused presses counted %v, want %d", n, len(cases))
	}

	// Force overrides readiness and is recorded in the guard and the trigger.
	out, err := f.svc.Fire(f.ctx, f.def.ID, "boss", true)
	if err != nil || !out.Won || !out.Fire.Force || !strings.Contains(out.Message, "(forced)") {
		t.Fatalf("forced fire: %+v %v", out, err)
	}
	rec, fired, err := f.g.FireOf(f.ctx, f.def.ID)
	if err != nil || !fired || !rec.Force || rec.By != "boss" {
		t.Fatalf("guard record: %+v %v %v", rec, fired, err)
	}
	trig := f.controls(t, wire.ControlFire)
	if len(trig) != 1 || !trig[0].Force || trig[0].FireID != out.Fire.FireID {
		t.Fatalf("trigger records: %+v", trig)
	}
	if want := out.Fire.At.Add(f.def.Deadline.Std()); !trig[0].Deadline.Equal(want) {
		t.Fatalf("deadline %v, want fire time + campaign deadline %v", trig[0].Deadline, want)
	}
}

func TestFireFailsClosedWithoutRedis(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	svc := f.service(t, deadGuard(t), nil)
	for _, force := range []bool{false, true} {
		out, err := svc.Fire(f.ctx, f.def.ID, "alice", force)
		if !errors.Is(err, control.ErrGuardUnavailable) || out.Won {
			t.Fatalf("force=%v: want ErrGuardUnavailable, got %+v %v", force, out, err)
		}
		if !strings.Contains(err.Error(), "fail closed: no fire") {
			t.Fatalf("message does not say it failed closed: %v", err)
		}
	}
	if n := len(f.controls(t, wire.ControlFire)); n != 0 {
		t.Fatalf("%d trigger records published without the guard", n)
	}
	st, err := svc.Status(f.ctx, f.def.ID)
	if err != nil || st.ReadyToFire || len(st.Errors) == 0 {
		t.Fatalf("status with Redis down must not say ready: %+v %v", st, err)
	}
}

func TestAbortThenFireRefused(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	if _, err := f.svc.Abort(f.ctx, "no-such-campaign", "alice"); !errors.Is(err, control.ErrUnknownCampaign) {
		t.Fatalf("abort of an unknown campaign: %v", err)
	}
	ab, err := f.svc.Abort(f.ctx, f.def.ID, "alice")
	if err != nil || ab.By != "alice" {
		t.Fatalf("abort: %+v %v", ab, err)
	}
	if ab2, err := f.svc.Abort(f.ctx, f.def.ID, "bob"); err != nil || ab2.By != "alice" {
		t.Fatalf("second abort must keep the first: %+v %v", ab2, err)
	}
	for _, force := range []bool{false, true} {
		if out, err := f.svc.Fire(f.ctx, f.def.ID, "bob", force); !errors.Is(err, control.ErrAborted) || out.Won {
			t.Fatalf("fire after abort (force=%v): %+v %v", force, out, err)
		}
	}
	if n := len(f.controls(t, wire.ControlAbort)); n != 2 {
		t.Fatalf("want 2 abort records, got %d", n)
	}
	if n := len(f.controls(t, wire.ControlFire)); n != 0 {
		t.Fatalf("fire after abort published %d triggers", n)
	}
	st, err := f.svc.Status(f.ctx, f.def.ID)
	if err != nil || st.State != control.StateAborted || st.Abort == nil || st.Abort.By != "alice" || st.ReadyToFire {
		t.Fatalf("status after abort: %+v %v", st, err)
	}
}

func TestAbortMidFireCountsAborted(t *testing.T) {
	f := newFixture(t)
	f.ready(t)
	out, err := f.svc.Fire(f.ctx, f.def.ID, "alice", false)
	if err != nil || !out.Won {
		t.Fatal(out, err)
	}
	rs := f.fireResults(out.Fire.FireID)
	f.results(t, rs[0], rs[1]) // two batches sent, then abort
	if _, err := f.svc.Abort(f.ctx, f.def.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	aborts := f.controls(t, wire.ControlAbort)
	if len(aborts) != 1 || aborts[0].FireID != out.Fire.FireID {
		t.Fatalf("abort record should name the fire it stops: %+v", aborts)
	}
	for _, r := range rs[2:] {
		r.Accepted, r.Invalid, r.Reasons, r.Aborted = 0, 0, nil, r.Tokens
		f.results(t, r)
	}
	st, err := f.svc.Status(f.ctx, f.def.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != control.StateAborted || st.Progress.Accepted != 1000 || st.Progress.Aborted != 600 {
		t.Fatalf("want aborted with 1000 accepted and 600 aborted, got %s %+v", st.State, st.Progress)
	}
	var states []string
	for _, s := range st.History {
		states = append(states, s.State)
	}
	if got := strings.Join(states, ">"); got != "defined>planned>firing>done>aborted" {
		t.Fatalf("history %s", got)
	}
}

func TestProofReportPerDevice(t *testing.T) {
	f := newFixture(t)
	pid, err := f.svc.Proof(f.ctx, f.def.ID, "alice")
	if err != nil || !strings.HasPrefix(pid, "proof-") {
		t.Fatal(pid, err)
	}
	reqs := f.controls(t, wire.ControlProof)
	if len(reqs) != 1 || reqs[0].FireID != pid || reqs[0].By != "alice" {
		t.Fatalf("proof request: %+v", reqs)
	}
	// Proof results: the two iOS devices in one batch, the Android one refused.
	f.results(t,
		wire.Result{Platform: push.IOS, Seq: 0, FireID: pid, Kind: wire.KindProof, Tokens: 2, Accepted: 2},
		wire.Result{Platform: push.Android, Seq: 0, FireID: pid, Kind: wire.KindProof, Tokens: 1, Invalid: 1,
			Reasons: map[string]int{"UNREGISTERED": 1}},
		wire.Result{Platform: push.Android, Seq: 0, FireID: "proof-other", Kind: wire.KindProof, Tokens: 1, Accepted: 1},
	)
	rep, err := f.svc.WaitProof(f.ctx, f.def.ID, pid)
	if err != nil || !rep.Complete {
		t.Fatalf("proof report: %+v %v", rep, err)
	}
	rend, err := f.def.Render()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ outcome, locale, title string }{
		"alice iphone": {control.ProofAccepted, "en-US", "You just saw us on TV!"},
		"bob pixel":    {control.ProofInvalid, "de-DE", "Gerade im Fernsehen gesehen?"},
		"carol ipad":   {control.ProofAccepted, "es-MX", "¡Nos acabas de ver en la tele!"},
	}
	for _, d := range rep.Devices {
		w := want[d.Name]
		if d.Outcome != w.outcome || d.MessageLocale != w.locale || d.Title != w.title || d.Body == "" {
			t.Errorf("%s: got %+v, want %+v", d.Name, d, w)
		}
		if d.Platform == push.IOS && d.Payload != string(rend.For(push.IOS, d.Locale).APNs.Payload) {
			t.Errorf("%s: payload is not the rendered one", d.Name)
		}
	}
	if n := len(f.controls(t, wire.ControlFire)); n != 0 {
		t.Fatal("a proof published a fire")
	}
	if _, fired, _ := f.g.FireOf(f.ctx, f.def.ID); fired {
		t.Fatal("a proof counted as the fire")
	}
	noProof := *f.def
	noProof.ID, noProof.ProofAudience = "no-proof", nil
	if err := f.cat.PutCampaign(f.ctx, &noProof); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Proof(f.ctx, noProof.ID, "alice"); !errors.Is(err, control.ErrBadRequest) {
		t.Fatalf("proof without proof audience: %v", err)
	}
}

func TestPrepareRefusesUnplanned(t *testing.T) {
	f := newFixture(t)
	other := campaign.Campaign(*f.def)
	other.ID = "not-planned-yet"
	if err := f.cat.PutCampaign(f.ctx, &other); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id, by string
		want   error
	}{
		{"nope", "alice", control.ErrUnknownCampaign},
		{other.ID, "alice", control.ErrNotPlanned},
		{f.def.ID, "", control.ErrBadRequest},
		{f.def.ID, "alice", nil},
	}
	for _, tc := range cases {
		if err := f.svc.Prepare(f.ctx, tc.id, tc.by); !errors.Is(err, tc.want) {
			t.Errorf("prepare %s by %q: want %v, got %v", tc.id, tc.by, tc.want, err)
		}
	}
	reqs := f.controls(t, wire.ControlPrepare)
	if len(reqs) != 1 || reqs[0].Campaign != f.def.ID || reqs[0].By != "alice" {
		t.Fatalf("prepare records: %+v", reqs)
	}
}

// TestLostFireRecordRestoredFromControlLog: a failover can drop the fire
// record (simulated by deleting the test's keys). A later press, even
// forced, wins the emptied guard but is answered with the truth: the
// campaign fired already (the first verified fire in the control log),
// nothing of this press is released, and the guard holds the first fire
// again.
func TestLostFireRecordRestoredFromControlLog(t *testing.T) {
	f := newFixture(t)
	first, err := f.svc.Fire(f.ctx, f.def.ID, "alice", true)
	if err != nil || !first.Won {
		t.Fatalf("first press: %+v %v", first, err)
	}
	testenv.FlushRedis(t, f.cfg)
	if _, fired, err := f.g.FireOf(f.ctx, f.def.ID); err != nil || fired {
		t.Fatalf("the fire record should be gone: %v %v", fired, err)
	}
	for _, by := range []string{"bob", "carol"} {
		out, err := f.svc.Fire(f.ctx, f.def.ID, by, true)
		if err != nil || out.Won || out.Fire.FireID != first.Fire.FireID || !strings.HasPrefix(out.Message, "already fired at ") {
			t.Fatalf("press by %s after the loss: want already fired with %s, got %+v %v", by, first.Fire.FireID, out, err)
		}
		if by == "bob" && !strings.Contains(out.Message, "restored from the control log") {
			t.Errorf("the answer should say the record was restored: %q", out.Message)
		}
	}
	rec, fired, err := f.g.FireOf(f.ctx, f.def.ID)
	if err != nil || !fired || rec.FireID != first.Fire.FireID || !rec.Restored {
		t.Fatalf("guard after the presses: %+v %v %v, want %s restored", rec, fired, err, first.Fire.FireID)
	}
	got, err := f.cat.FirstFire(f.ctx, f.def.ID)
	if err != nil || got == nil || got.FireID != first.Fire.FireID {
		t.Fatalf("first verified fire in the control log: %+v %v", got, err)
	}
	if n := f.counter(t, "owlpost_control_fire_presses_total", map[string]string{"result": "won"}); n != 1 {
		t.Errorf("presses won %v, want 1", n)
	}
}
