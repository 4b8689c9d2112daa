// Package bench is `owlctl bench` (`make bench`): it measures, in one
// invocation, interleaved and repeated (medians reported), the raw client
// libraries against the push simulator (phase raw: sideshow/apns2 alone,
// firebase messaging alone, and both at once with the pipeline's iOS share,
// in this process; and h2load, nghttp2's C client, sending the same APNs
// requests as the lean-client reference), the sender stage alone on
// pre-filled send topics with each provider transport, library and fast
// (phase sender), and the whole pipeline as separate
// processes, audience to last accepted notification (phase pipeline), then
// prints a table with the ratios stage/raw and appends a dated entry to the
// bench log, docs/bench-log.md (--log). BENCHMARKS.md "Method" says exactly
// what each figure is; its current figures are taken from that log by hand.
//
// Every phase run is self-contained: it starts its own simulator process
// (Sim) on free loopback ports with generated credentials, creates its own
// topics, consumer groups and Redis key prefix (Stack), starts the stage
// processes with one shared YAML config file the way scripts/demo.sh does,
// and stops, deletes and unlinks all of that when it ends, successful or not.
// Nothing else of the dev stack is touched. Each phase run is bounded by
// Options.PhaseTimeout.
//
// Measurements come from outside the measured processes: CPU time from
// getrusage (this process, raw phase only, when nothing else runs in it;
// h2load's as its child) or /proc/<pid>/stat, peak memory from /proc/<pid>/status VmHWM, arrival
// times and counts from the simulator's admin API, outcomes and time-from-fire
// from the results topic (internal/report), stage timings from the stages'
// /metrics and release markers. A run whose counts do not match (the
// simulator must have accepted every token exactly once) fails instead of
// reporting a rate.
package bench
