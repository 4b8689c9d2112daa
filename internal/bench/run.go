package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/owlpost/owlpost/internal/config"
)

// Phase names.
const (
	PhaseRaw      = "raw"
	PhaseSender   = "sender"
	PhasePipeline = "pipeline"
	PhaseTrigger  = "trigger"
)

// Options configure one bench invocation.
type Options struct {
	Phases []string // subset of raw, sender, pipeline, trigger, in this order each round
	Rounds int      // each phase runs this many times, interleaved; medians are reported

	RawN        int // notifications per raw library run
	APNsClients int
	APNsWorkers int
	FCMPerCall  int
	FCMInFlight int

	SenderN int // tokens per platform pre-filled for the sender phase

	Tokens   int     // pipeline audience size
	IOSShare float64 // share of iOS tokens in the pipeline audience
	Fanouts  int     // fanout processes in the pipeline
	// SenderProcs is GOMAXPROCS of each sender in the pipeline phase (0:
	// Go's default, every core). The two senders share the machine there,
	// as two pods with a CPU limit each would share a node; see
	// DefaultSenderProcs.
	SenderProcs int

	Fires         int // campaigns fired one after another in the trigger phase
	TriggerTokens int // audience of each of them

	RunID        string        // names this invocation's topics, groups and campaigns (default: the time)
	BinDir       string        // where pushsim, planner, fanout, sender, owlctl are
	StateDir     string        // the dev stack's state dir (pid files of Kafka and Redis)
	OutDir       string        // logs, configs, credentials (a fresh directory per run)
	PhaseTimeout time.Duration // bound on one phase run
	// CPUProfileDir, when set, receives a CPU profile of each in-process
	// library run (raw phase); profiling costs a few percent of CPU, so such
	// runs are for finding where the time goes, not for the figures.
	CPUProfileDir string
	// Log receives progress and warnings (Run sets it to its log writer).
	Log io.Writer
}

// DefaultOptions are the defaults.
func DefaultOptions() Options {
	return Options{
		Phases: []string{PhaseRaw, PhaseSender, PhasePipeline, PhaseTrigger}, Rounds: 3,
		RawN: 200_000, APNsClients: 4, APNsWorkers: 1000, FCMPerCall: 250, FCMInFlight: 4,
		SenderN: 200_000, Tokens: 1_000_000, IOSShare: 0.6, Fanouts: 2, SenderProcs: DefaultSenderProcs(),
		Fires: 10, TriggerTokens: 2000,
		BinDir: "bin", StateDir: stateDir(), PhaseTimeout: 15 * time.Minute,
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	for _, p := range o.Phases {
		if !slices.Contains([]string{PhaseRaw, PhaseSender, PhasePipeline, PhaseTrigger}, p) {
			errs = append(errs, fmt.Errorf("bench: unknown phase %q (want raw, sender, pipeline, trigger)", p))
		}
	}
	if len(o.Phases) == 0 {
		errs = append(errs, errors.New("bench: no phase selected"))
	}
	if o.Rounds < 1 {
		errs = append(errs, errors.New("bench: rounds must be >= 1"))
	}
	if o.RawN < 1 || o.SenderN < 1 || o.Tokens < 1 || o.Fires < 1 || o.TriggerTokens < 1 {
		errs = append(errs, errors.New("bench: notification counts must be >= 1"))
	}
	if o.APNsClients < 1 || o.APNsWorkers < 1 || o.FCMInFlight < 1 {
		errs = append(errs, errors.New("bench: clients, workers and in-flight calls must be >= 1"))
	}
	if o.FCMPerCall < 1 || o.FCMPerCall > 500 {
		errs = append(errs, errors.New("bench: FCM tokens per call must be 1..500"))
	}
	if o.IOSShare < 0 || o.IOSShare > 1 {
		errs = append(errs, errors.New("bench: iOS share must be within 0..1"))
	}
	if o.Fanouts < 1 {
		errs = append(errs, errors.New("bench: fanouts must be >= 1"))
	}
	if o.SenderProcs < 0 {
		errs = append(errs, errors.New("bench: sender GOMAXPROCS must be >= 0"))
	}
	return errors.Join(errs...)
}

// Ratios compares the stages with the raw libraries (medians of the run).
func Ratios() []Ratio {
	return []Ratio{
		{"sender/raw apns, per CPU-second", "sender.ios.per_sender_cpu_s", "raw.apns.per_client_cpu_s"},
		{"sender/raw fcm, per CPU-second", "sender.android.per_sender_cpu_s", "raw.fcm.per_client_cpu_s"},
		{"sender fast/raw apns, per CPU-second", "sender.fast.ios.per_sender_cpu_s", "raw.apns.per_client_cpu_s"},
		{"sender fast/raw fcm, per CPU-second", "sender.fast.android.per_sender_cpu_s", "raw.fcm.per_client_cpu_s"},
		{"sender fast/sender library ios, per CPU-second", "sender.fast.ios.per_sender_cpu_s", "sender.ios.per_sender_cpu_s"},
		{"sender fast/sender library android, per CPU-second", "sender.fast.android.per_sender_cpu_s", "sender.android.per_sender_cpu_s"},
		{"h2load/raw apns, per CPU-second (the lean C client)", "raw.h2load.per_client_cpu_s", "raw.apns.per_client_cpu_s"},
		{"sender fast ios/h2load, per CPU-second", "sender.fast.ios.per_sender_cpu_s", "raw.h2load.per_client_cpu_s"},
		{"sender/raw apns, wall", "sender.ios.rate", "raw.apns.rate"},
		{"sender/raw fcm, wall", "sender.android.rate", "raw.fcm.rate"},
		{"pipeline/raw apns, wall", "pipeline.rate", "raw.apns.rate"},
		{"pipeline/raw mixed (60/40 apns/fcm harmonic), wall", "pipeline.rate", "raw.mixed.rate"},
		{"pipeline/raw both (60/40, both libraries at once), wall", "pipeline.rate", "raw.both.rate"},
		// The most pipeline/raw apns can reach on this machine: the
		// pipeline's audience sent by the libraries alone, nothing of owlpost.
		{"raw both/raw apns, wall (the ceiling of pipeline/raw apns)", "raw.both.rate", "raw.apns.rate"},
		{"pipeline/raw, per owlpost CPU-second vs client CPU-second", "pipeline.per_owlpost_cpu_s", "raw.mixed.per_client_cpu_s"},
	}
}

// Run runs the selected phases o.Rounds times, interleaved (raw, sender,
// pipeline, raw, ...), logging progress to log, and returns every round's
// metrics. cfg gives the Kafka and Redis addresses of the dev stack. A phase
// run that fails is reported and the others go on; the error joins them.
func Run(ctx context.Context, cfg *config.Config, o Options, log io.Writer) (*Results, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.Log = log
	if o.RunID == "" {
		o.RunID = time.Now().Format("0102-150405")
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: out dir: %w", err)
	}
	res := NewResults()
	var errs []error
	for round := 1; round <= o.Rounds; round++ {
		for _, ph := range o.Phases {
			if ctx.Err() != nil {
				return res, errors.Join(append(errs, ctx.Err())...)
			}
			dir := filepath.Join(o.OutDir, fmt.Sprintf("r%d-%s", round, ph))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return res, fmt.Errorf("bench: %w", err)
			}
			fmt.Fprintf(log, "bench: round %d/%d: %s (logs in %s)\n", round, o.Rounds, ph, dir)
			pctx, cancel := context.WithTimeout(ctx, o.PhaseTimeout)
			t0 := time.Now()
			var m Metrics
			var err error
			switch ph {
			case PhaseRaw:
				m, err = runRaw(pctx, o, dir, round)
			case PhaseSender:
				m, err = runSender(pctx, cfg, o, dir, round)
			case PhasePipeline:
				m, err = runPipeline(pctx, cfg, o, dir, round)
			case PhaseTrigger:
				m, err = runTrigger(pctx, cfg, o, dir, round)
			}
			cancel()
			if err != nil {
				fmt.Fprintf(log, "bench: round %d: %s failed after %s: %v\n", round, ph, time.Since(t0).Round(time.Millisecond), err)
				errs = append(errs, fmt.Errorf("round %d %s: %w", round, ph, err))
				continue
			}
			res.Add(m)
			fmt.Fprintf(log, "bench: round %d: %s done in %s: %s\n", round, ph, time.Since(t0).Round(time.Millisecond), brief(m))
		}
	}
	return res, errors.Join(errs...)
}

// brief is a one-line summary of the rates in m.
func brief(m Metrics) string {
	var parts []string
	for _, x := range m {
		if strings.HasSuffix(x.Key, ".rate") || strings.HasSuffix(x.Key, "per_client_cpu_s") ||
			strings.HasSuffix(x.Key, "per_sender_cpu_s") {
			parts = append(parts, fmt.Sprintf("%s=%s", x.Key, fmtNum(x.Value)))
		}
	}
	return strings.Join(parts, " ")
}

// runRaw is phase a: a fresh simulator process, apns2 alone, firebase
// alone, then both at once with the pipeline's iOS share (the order is
// reversed every other round), then the simulator is stopped.
func runRaw(ctx context.Context, o Options, dir string, round int) (Metrics, error) {
	sim, err := StartSim(ctx, filepath.Join(o.BinDir, "pushsim"), dir)
	if err != nil {
		return nil, err
	}
	defer sim.Stop(5 * time.Second)
	apns := func() (Metrics, error) {
		return RawAPNs(ctx, sim, RawAPNsOptions{N: o.RawN, Clients: o.APNsClients, Workers: o.APNsWorkers},
			fmt.Sprintf("bench-raw-apns-r%d", round))
	}
	fcm := func() (Metrics, error) {
		return RawFCM(ctx, sim, RawFCMOptions{N: o.RawN, PerCall: o.FCMPerCall, InFlight: o.FCMInFlight},
			fmt.Sprintf("bench-raw-fcm-r%d", round))
	}
	both := func() (Metrics, error) {
		return RawBoth(ctx, sim, RawAPNsOptions{Clients: o.APNsClients, Workers: o.APNsWorkers},
			RawFCMOptions{PerCall: o.FCMPerCall, InFlight: o.FCMInFlight}, o.RawN, o.IOSShare,
			fmt.Sprintf("bench-raw-both-r%d", round))
	}
	h2l := func() (Metrics, error) {
		return RawH2load(ctx, sim, H2loadOptions{N: o.RawN, Conns: o.APNsClients, Streams: 250}, dir,
			fmt.Sprintf("bench-raw-h2load-r%d", round))
	}
	order := []func() (Metrics, error){apns, fcm, both, h2l}
	if round%2 == 0 {
		order = []func() (Metrics, error){h2l, both, fcm, apns}
	}
	var all Metrics
	for i, f := range order {
		stop := func() {}
		if o.CPUProfileDir != "" {
			var err error
			if stop, err = startProfile(filepath.Join(o.CPUProfileDir, fmt.Sprintf("raw-r%d-%d.prof", round, i))); err != nil {
				return nil, err
			}
		}
		m, err := f()
		stop()
		if err != nil {
			return nil, err
		}
		all = append(all, m...)
	}
	// apns, fcm, then both, whatever the order of the round, so the table
	// order is stable across rounds.
	rank := func(m Metric) int {
		return slices.IndexFunc([]string{"raw.apns.", "raw.fcm.", "raw.both."},
			func(p string) bool { return strings.HasPrefix(m.Key, p) })
	}
	slices.SortStableFunc(all, func(a, b Metric) int { return rank(a) - rank(b) })
	all = append(all, mixed(all, o.IOSShare)...)
	return all, nil
}

// mixed derives the raw rate for an audience with iosShare iOS tokens: the
// time to send both shares one after the other with each library at its own
// rate (a harmonic mean), which is what a single machine could do.
func mixed(m Metrics, iosShare float64) Metrics {
	get := func(k string) float64 {
		for _, x := range m {
			if x.Key == k {
				return x.Value
			}
		}
		return 0
	}
	ra, rf := get("raw.apns.rate"), get("raw.fcm.rate")
	ca, cf := get("raw.apns.per_client_cpu_s"), get("raw.fcm.per_client_cpu_s")
	if ra == 0 || rf == 0 || ca == 0 || cf == 0 {
		return nil
	}
	var out Metrics
	out.Add("raw.mixed.rate", "notif/s", 1/(iosShare/ra+(1-iosShare)/rf))
	out.Add("raw.mixed.per_client_cpu_s", "notif/cpu-s", 1/(iosShare/ca+(1-iosShare)/cf))
	return out
}

// stateDir is where scripts/devstack.sh keeps its pid files.
func stateDir() string {
	if d := os.Getenv("OWLPOST_STATE"); d != "" {
		return d
	}
	return ".devstack"
}

// startProfile starts a CPU profile of this process into path.
func startProfile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("bench: profile: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// closeStack stops and removes what a phase started; a failure to clean up
// is reported, not hidden, but does not void the measurement.
// openStack opens the stack of one phase run (id names its topics, groups
// and prefix) and a watcher of its results; closeAll closes both.
func openStack(ctx context.Context, cfg *config.Config, o Options, dir, id string) (s *Stack, w *ResultsWatcher, closeAll func(), err error) {
	if s, err = NewStack(ctx, cfg, o.BinDir, dir, id); err != nil {
		return nil, nil, nil, err
	}
	if w, err = WatchResults(s); err != nil {
		closeStack(o, s)
		return nil, nil, nil, err
	}
	return s, w, func() { w.Close(); closeStack(o, s) }, nil
}

func closeStack(o Options, s *Stack) {
	if err := s.Close(); err != nil && o.Log != nil {
		fmt.Fprintf(o.Log, "bench: warning: cleaning up %s: %v\n", s.ID, err)
	}
}
