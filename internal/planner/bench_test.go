package planner_test

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/owlpost/owlpost/internal/audience"
	"github.com/owlpost/owlpost/internal/planner"
)

// TestPlannerBenchmark measures planning against the real broker. It only
// runs when OWLPOST_PLANNER_BENCH lists sizes with run counts, e.g.
//
//	OWLPOST_PLANNER_BENCH=1000000:3,4000000:1 go test -run PlannerBenchmark -v -timeout 30m ./internal/planner
//
// Audiences are 60% iOS, 40% Android, plus 1% malformed and 1% duplicate
// records. It prints one Markdown table row per run and the median.
func TestPlannerBenchmark(t *testing.T) {
	sizes := os.Getenv("OWLPOST_PLANNER_BENCH")
	if sizes == "" {
		t.Skip("set OWLPOST_PLANNER_BENCH=1000000:3,4000000:1 to run the planner benchmark")
	}
	for _, item := range strings.Split(sizes, ",") {
		n, runs := item, "1"
		if i := strings.IndexByte(item, ':'); i >= 0 {
			n, runs = item[:i], item[i+1:]
		}
		tokens, err1 := strconv.Atoi(n)
		nruns, err2 := strconv.Atoi(runs)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad OWLPOST_PLANNER_BENCH item %q", item)
		}
		t.Run(n, func(t *testing.T) { benchPlan(t, tokens, nruns) })
	}
}

func benchPlan(t *testing.T, tokens, runs int) {
	e := newEnv(t)
	spec := audience.Spec{IOS: tokens * 6 / 10, Android: tokens - tokens*6/10,
		Locales: []string{"en-US", "es-US", "de-DE", "pt-BR"}, BadFraction: 0.01, DuplicateFraction: 0.01,
		InvalidFraction: 0.005, Seed: 1}
	start := time.Now()
	topic, counts := e.audienceTopic("audience", 12, spec)
	genTime := time.Since(start)
	t.Logf("generated %d records (%d MB) in %s (%.0f records/s)", counts.Records, counts.Bytes>>20,
		genTime.Round(time.Millisecond), float64(counts.Records)/genTime.Seconds())
	e.putCampaign("bench", topic)
	var secs []float64
	for i := 0; i < runs; i++ {
		runtime.GC()
		resetPeakRSS()
		var peakHeap atomic.Uint64
		// Peak heap per phase as the progress callback (about once a
		// second) last reported it: "reading" includes the de-duplication.
		var phase atomic.Value
		phase.Store("reading")
		phasePeak := map[string]uint64{}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peakHeap.Load() {
					peakHeap.Store(ms.HeapInuse)
				}
				if ph := phase.Load().(string); ms.HeapInuse > phasePeak[ph] {
					phasePeak[ph] = ms.HeapInuse
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		t0 := time.Now()
		m, err := e.st.Plan(e.ctx, "bench", "bench", func(p planner.Progress) { phase.Store(p.Phase) })
		el := time.Since(t0)
		close(stop)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		if m.Tokens() != uint64(counts.IOS+counts.Android) {
			t.Fatalf("planned %d tokens, want %d", m.Tokens(), counts.IOS+counts.Android)
		}
		secs = append(secs, el.Seconds())
		t.Logf("| %d | %d | %d | %.2f s | %.0f | %d MiB | %d MiB | reading %d MiB, writing %d MiB, committing %d MiB |",
			tokens, m.AudienceRecords, m.Batches(), el.Seconds(),
			float64(m.AudienceRecords)/el.Seconds(), peakRSS()>>20, peakHeap.Load()>>20,
			phasePeak["reading"]>>20, phasePeak["writing"]>>20, phasePeak["committing"]>>20)
	}
	sort.Float64s(secs)
	med := secs[len(secs)/2]
	t.Logf("median of %d: %.2f s, %.0f records/s", len(secs), med, float64(counts.Records)/med)
}

// resetPeakRSS clears the kernel's peak RSS (VmHWM) of this process.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is VmHWM in bytes.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb uint64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
