// Package fault is owlpost's fault-injection suite: each case runs a real
// campaign against the real stack (the dev stack's Kafka broker and
// redis-server, the push simulator and the owlpost stages as SEPARATE
// processes: bin/pushsim, two bin/fanout, bin/sender ios and android, and
// bin/owlctl for GO), injects one fault, and checks the simulator's own
// delivery record (accepted, distinct tokens, duplicate deliveries, all under
// the campaign's collapse id) against the plan and the campaign report.
//
// The cases are tests behind the build tag `fault` (go test -tags fault -p 1
// ./internal/fault/...; `make fault` runs them and rewrites RELIABILITY.md).
// Two of them stop and start the dev stack's Kafka broker and Redis, so the
// suite runs its cases one after the other and must never run concurrently
// with other packages' tests on the same stack. Point it at a private stack
// with OWLPOST_STATE / OWLPOST_KAFKA_PORT / OWLPOST_KAFKA_CONTROLLER_PORT /
// OWLPOST_REDIS_PORT (scripts/devstack.sh honours them, and so do the cases
// when they stop and restart a service).
//
// Without the tag the package holds only the figures: Row, the line every
// case appends to the JSON-lines file named by OWLPOST_RELIABILITY_OUT, and
// WriteTable / UpdateDoc, which turn those lines into the table of
// RELIABILITY.md (see cmd/reliability).
package fault
