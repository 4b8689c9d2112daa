package bench

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing should be NaN")
	}
}

func TestResultsAndRatios(t *testing.T) {
	r := NewResults()
	for _, v := range []float64{10, 30, 20} {
		var m Metrics
		m.Add("raw.apns.rate", "notif/s", v)
		m.Add("sender.ios.rate", "notif/s", v/2)
		r.Add(m)
	}
	if got := r.Median("raw.apns.rate"); got != 20 {
		t.Fatalf("median = %v, want 20", got)
	}
	q := Ratio{"s/r", "sender.ios.rate", "raw.apns.rate"}
	if got := q.Value(r); got != 0.5 {
		t.Fatalf("ratio = %v, want 0.5", got)
	}
	if got := (Ratio{"x", "missing", "raw.apns.rate"}).Value(r); !math.IsNaN(got) {
		t.Fatalf("ratio of a missing metric = %v, want NaN", got)
	}
	var b strings.Builder
	if err := r.WriteTable(&b, []Ratio{q}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"raw.apns.rate", "10.0 30.0 20.0", "s/r", "50.0%"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestMixed(t *testing.T) {
	var m Metrics
	m.Add("raw.apns.rate", "", 100)
	m.Add("raw.fcm.rate", "", 50)
	m.Add("raw.apns.per_client_cpu_s", "", 100)
	m.Add("raw.fcm.per_client_cpu_s", "", 100)
	got := mixed(m, 0.5)
	// Half at 100/s and half at 50/s: 1 token takes 0.005+0.01 s per 2 → 66.7/s.
	if len(got) != 2 || math.Abs(got[0].Value-200.0/3) > 1e-9 || got[1].Value != 100 {
		t.Fatalf("mixed = %+v", got)
	}
}

func TestAppendEntry(t *testing.T) {
	r := NewResults()
	var m Metrics
	m.Add("raw.apns.rate", "notif/s", 1234)
	r.Add(m)
	entry := func(when string) *Entry {
		ts, _ := time.Parse(time.RFC3339, when)
		return &Entry{When: ts, Command: "owlctl bench", Machine: Machine{CPUs: 2}, Options: DefaultOptions(), Results: r}
	}
	for _, tc := range []struct {
		name, before string
		// wantOrder lists substrings that must appear in this order.
		wantOrder []string
	}{
		{"new file", "", []string{logHeader, "\n### 2026-01-02", "\n### 2026-01-03"}},
		{"earlier entries stay before", "# log\n\n### old\n\ntext\n", []string{"# log\n\n### old\n\ntext\n",
			"\n### 2026-01-02", "\n### 2026-01-03"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "B.md")
			if tc.before != "" {
				if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, when := range []string{"2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z"} {
				if err := AppendEntry(path, entry(when)); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := os.ReadFile(path)
			doc, at := string(b), 0
			for _, w := range tc.wantOrder {
				i := strings.Index(doc[at:], w)
				if i < 0 {
					t.Fatalf("%q missing after offset %d in:\n%s", w, at, doc)
				}
				at += i + len(w)
			}
			if strings.Count(doc, "# owlpost bench log") > 1 {
				t.Fatalf("header repeated:\n%s", doc)
			}
		})
	}
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# HELP x y\n# TYPE a gauge\na{c=\"1\"} 2\na{c=\"2\"} 3.5\nb_sum 0.25\nb_count 1\n")
	}))
	defer srv.Close()
	got, err := Scrape(t.Context(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if got["a"] != 5.5 || got["b_sum"] != 0.25 || got["b_count"] != 1 {
		t.Fatalf("scrape = %v", got)
	}
}

func TestReadUsageSelf(t *testing.T) {
	u, err := ReadUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSS <= 0 || u.RSS <= 0 || u.PeakRSS < u.RSS {
		t.Fatalf("usage = %+v", u)
	}
	if _, err := ReadUsage(-1); err == nil {
		t.Fatal("want an error for a missing pid")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		ok   bool
	}{
		{"defaults", func(*Options) {}, true},
		{"unknown phase", func(o *Options) { o.Phases = []string{"raw", "nope"} }, false},
		{"no rounds", func(o *Options) { o.Rounds = 0 }, false},
		{"too many per call", func(o *Options) { o.FCMPerCall = 501 }, false},
		{"share", func(o *Options) { o.IOSShare = 1.5 }, false},
		{"sender GOMAXPROCS left to Go", func(o *Options) { o.SenderProcs = 0 }, true},
		{"negative sender GOMAXPROCS", func(o *Options) { o.SenderProcs = -1 }, false},
		{"trigger phase only", func(o *Options) { o.Phases = []string{PhaseTrigger} }, true},
		{"no fires", func(o *Options) { o.Fires = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mod(&o)
			if err := o.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestTokensMatchNoSimulatorPattern(t *testing.T) {
	for _, i := range []int{0, 1, 199_999, 1_000_000_000} {
		a, f := rawAPNsToken(i), rawFCMToken(i)
		if len(a) != 64 || strings.HasPrefix(a, "dead") {
			t.Errorf("apns token %q", a)
		}
		if len(f) < 100 || strings.ToLower(f) != f {
			t.Errorf("fcm token %q", f)
		}
	}
}

func TestWithStackShrinkOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want string // the GODEBUG entry of the result
		add  bool
	}{
		{"absent", []string{"A=1"}, "GODEBUG=" + StackShrinkOff, true},
		{"other settings kept", []string{"GODEBUG=madvdontneed=1", "A=1"}, "GODEBUG=madvdontneed=1," + StackShrinkOff, true},
		{"already set", []string{"GODEBUG=x=1," + StackShrinkOff}, "GODEBUG=x=1," + StackShrinkOff, false},
		{"set to something else", []string{"GODEBUG=gcshrinkstackoff=0"}, "GODEBUG=gcshrinkstackoff=0," + StackShrinkOff, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, added := withStackShrinkOff(tc.in)
			if added != tc.add {
				t.Errorf("added = %v, want %v", added, tc.add)
			}
			split := func(env []string) (debug, rest []string) {
				for _, kv := range env {
					if strings.HasPrefix(kv, "GODEBUG=") {
						debug = append(debug, kv)
					} else {
						rest = append(rest, kv)
					}
				}
				return debug, rest
			}
			got, rest := split(out)
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("GODEBUG entries %q, want [%q]", got, tc.want)
			}
			if _, want := split(tc.in); !slices.Equal(rest, want) {
				t.Errorf("other entries %q, want %q", rest, want)
			}
		})
	}
	o := DefaultOptions()
	if o.SenderProcs < 1 {
		t.Fatalf("default sender GOMAXPROCS %d", o.SenderProcs)
	}
	if env := o.senderProcsEnv(); len(env) != 1 || env[0] != fmt.Sprintf("GOMAXPROCS=%d", o.SenderProcs) {
		t.Errorf("senderProcsEnv() = %q", env)
	}
	o.SenderProcs = 0
	if env := o.senderProcsEnv(); len(env) != 0 {
		t.Errorf("SenderProcs 0: senderProcsEnv() = %q, want none", env)
	}
}
