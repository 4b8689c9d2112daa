package report

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/campaign"
	"github.com/owlpost/owlpost/internal/wire"
)

// sendOf builds n batches of 10 iOS tokens: batch i is released at
// i*releaseEvery after fire, waits wait(i) in the send topic and takes send.
func sendOf(n int, releaseEvery time.Duration, wait func(i int) time.Duration, send time.Duration) (map[string]*wire.Result, []uint32) {
	fired := time.Date(2027, 2, 7, 23, 30, 0, 0, time.UTC)
	best := map[string]*wire.Result{}
	var ms []uint32
	for i := range n {
		rel := fired.Add(time.Duration(i) * releaseEvery)
		start := rel.Add(wait(i))
		fin := start.Add(send)
		res := &wire.Result{Platform: "ios", Tokens: 10, Accepted: 10, FiredAt: fired, ReleasedAt: rel, StartedAt: start, FinishedAt: fin}
		for range 10 {
			ms = append(ms, uint32(fin.Sub(fired).Milliseconds()))
		}
		best[fmt.Sprint(i)] = res
	}
	slices.Sort(ms)
	return best, ms
}

func reportOf(ms []uint32, reasons map[string]int) *Report {
	r := &Report{Complete: true, Reasons: reasons, LatencyPlatform: map[string]Latency{"ios": latency(ms)}}
	r.Total = Counts{Planned: uint64(len(ms)), Accepted: uint64(len(ms))}
	return r
}

func def(t *testing.T, extra string) *campaign.Campaign {
	t.Helper()
	c, err := campaign.Parse([]byte("id: launch\naudience_topic: a\ndefault_locale: en\nmessages: {en: {title: Hi}}\ndeadline: 10m\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerdict(t *testing.T) {
	goal := "goal: {p95: 4s, p99: 6s}\n"
	rehearsal := func(sample string) string {
		return "apns: {push_type: background}\nrehearsal: {of: launch0, sample: " + sample + ", audience_ends: {0: 100}}\n"
	}
	noWait := func(int) time.Duration { return 0 }
	tests := []struct {
		name      string
		def       string
		best      func() (map[string]*wire.Result, []uint32)
		reasons   map[string]int
		state     string
		wantText  []string
		wantNoTxt []string
	}{
		{"full rehearsal on track", goal + rehearsal("1"),
			func() (map[string]*wire.Result, []uint32) {
				return sendOf(100, 10*time.Millisecond, noWait, 50*time.Millisecond)
			},
			nil, OnTrack, []string{"no change needed", "dress rehearsal of launch0"}, []string{"projected figures"}},
		{"sample projected over the goal, senders short", goal + rehearsal("0.1"),
			func() (map[string]*wire.Result, []uint32) {
				return sendOf(100, 5*time.Millisecond, func(i int) time.Duration { return time.Duration(i) * 5 * time.Millisecond }, 20*time.Millisecond)
			},
			nil, NotOnTrack, []string{"ios p95", "more senders", "still growing", "sample of 10%", "waiting in the send topics"}, nil},
		{"slow release", goal,
			func() (map[string]*wire.Result, []uint32) {
				return sendOf(100, 70*time.Millisecond, noWait, 20*time.Millisecond)
			},
			nil, NotOnTrack, []string{"more partitions", "release (fanout)"}, []string{"more senders"}},
		{"throttled", goal + rehearsal("1"),
			func() (map[string]*wire.Result, []uint32) {
				return sendOf(100, 10*time.Millisecond, noWait, 50*time.Millisecond)
			},
			map[string]int{"TooManyRequests": 40}, OnTrack, []string{"quota:", "silent-push budget"}, nil},
		{"capped", goal + rehearsal("1") + "rate_limit: 100\n",
			func() (map[string]*wire.Result, []uint32) {
				return sendOf(100, 10*time.Millisecond, noWait, 50*time.Millisecond)
			},
			nil, NotJudged, []string{"capped at 100/s", "rate cap decided"}, nil},
		{"no goal", rehearsal("1"),
			func() (map[string]*wire.Result, []uint32) {
				return sendOf(10, 10*time.Millisecond, noWait, 50*time.Millisecond)
			},
			nil, NotJudged, []string{"has no goal"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			best, ms := tt.best()
			r := reportOf(ms, tt.reasons)
			r.Verdict = r.verdict(def(t, tt.def), 0, best, map[string][]uint32{"ios": ms})
			var b strings.Builder
			if err := r.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if r.Verdict.State != tt.state {
				t.Errorf("state %q (%s), want %q\n%s", r.Verdict.State, r.Verdict.Why, tt.state, b.String())
			}
			for _, w := range tt.wantText {
				if !strings.Contains(b.String(), w) {
					t.Errorf("text lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tt.wantNoTxt {
				if strings.Contains(b.String(), w) {
					t.Errorf("text has %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestProject(t *testing.T) {
	if got := project(500, 100, 0.1); got != 4100 {
		t.Errorf("project(500, 100, 0.1) = %d, want 4100", got)
	}
	if got := project(500, 100, 1); got != 500 {
		t.Errorf("a full send is not projected: %d", got)
	}
}
