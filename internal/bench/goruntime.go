package bench

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// StackShrinkOff is the GODEBUG setting the senders are deployed with
// (deploy/, scripts/demo.sh): the garbage collector does not halve the
// stacks of parked goroutines. A sender's provider workers (push.Workers)
// park on a shallow stack between requests, so every GC shrank them and
// the next request grew them again through the HTTP/2 and TLS path
// (runtime.copystack). Paired runs: 4-12% less sender CPU per notification
// (BENCHMARKS.md, "runtime settings").
//
// The bench runs every Go process with it, the raw library runs included,
// so that both sides of each ratio use the same runtime.
const StackShrinkOff = "gcshrinkstackoff=1"

// DefaultSenderProcs is GOMAXPROCS for each sender in the pipeline phase:
// half the cores, at least one. The two senders share the machine with the
// simulator, Kafka and the fanouts there; with Go's default each of them
// runs a thread per core and they preempt each other. A deployment gives
// each sender a CPU limit, which Go (>= 1.25) turns into GOMAXPROCS by
// itself; this is the same for one machine. The raw and sender phases run
// one client process next to the simulator and keep Go's default, which is
// the faster setting there (measured: BENCHMARKS.md, "runtime settings").
func DefaultSenderProcs() int { return max(1, runtime.NumCPU()/2) }

// senderProcsEnv is the environment entry for o.SenderProcs (none for 0).
func (o Options) senderProcsEnv() []string {
	if o.SenderProcs <= 0 {
		return nil
	}
	return []string{fmt.Sprintf("GOMAXPROCS=%d", o.SenderProcs)}
}

// withStackShrinkOff returns env with StackShrinkOff added to GODEBUG, and
// whether it had to be added.
func withStackShrinkOff(env []string) ([]string, bool) {
	out := make([]string, 0, len(env)+1)
	var cur string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			cur = v
			continue
		}
		out = append(out, kv)
	}
	if slices.Contains(strings.Split(cur, ","), StackShrinkOff) {
		return env, false
	}
	if cur != "" {
		cur += ","
	}
	return append(out, "GODEBUG="+cur+StackShrinkOff), true
}

// ReexecWithStackShrinkOff replaces this process with itself, same
// arguments, with StackShrinkOff in GODEBUG, unless it is set already: the
// runtime reads it only at start. The raw library runs happen in this
// process and the stages inherit its environment, so after this every Go
// process of the run has it. It returns only when nothing needed doing
// (nil) or the exec failed.
func ReexecWithStackShrinkOff() error {
	env, changed := withStackShrinkOff(os.Environ())
	if !changed {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: re-exec with GODEBUG=%s: %w", StackShrinkOff, err)
	}
	if err := syscall.Exec(exe, os.Args, env); err != nil {
		return fmt.Errorf("bench: re-exec with GODEBUG=%s: %w", StackShrinkOff, err)
	}
	return nil
}
