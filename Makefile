# owlpost: two commands do all the set-up on a fresh machine:
#   make demo   runs a whole campaign end to end
#   make test   runs the unit and integration tests against a real Kafka and Redis
# Both start the dev stack (scripts/devstack.sh) if it is not running.

SHELL := /bin/bash
GO    ?= go
BIN   := bin
export OWLPOST_TEST_KAFKA ?= 127.0.0.1:$(or $(OWLPOST_KAFKA_PORT),9092)
export OWLPOST_TEST_REDIS ?= 127.0.0.1:$(or $(OWLPOST_REDIS_PORT),6379)

.PHONY: build test unit demo bench up down status lint fmt tools cluster-up cluster-down

build:
	$(GO) build -o $(BIN)/ ./cmd/...

up:
	scripts/devstack.sh up

down:
	scripts/devstack.sh down

status:
	scripts/devstack.sh status

cluster-up:
	scripts/devstack.sh up --cluster

cluster-down:
	scripts/devstack.sh down --cluster

lint:
	$(GO) vet ./...
	@out="$$(gofmt -l cmd internal)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Unit tests only (no services needed for most packages; integration tests fail
# with a message saying how to start the stack).
unit:
	$(GO) test ./...

# The cluster stack (scripts/devstack.sh up --cluster) runs beside the single node one; its addresses reach
# the tests through the OWLPOST_TEST_*_CLUSTER / _SENTINEL variables that `up --cluster` prints.
# Test tools besides the stack (schemathesis in a venv under ~/.cache/owlpost), idempotent.
tools:
	scripts/testtools.sh >/dev/null

test: lint up tools
	cl="$$(scripts/devstack.sh up --cluster)" && eval "$$cl" && \
	$(GO) test -count=1 -timeout 20m ./... && \
	$(MAKE) fault

# Screenshots of the console's key screens (login, campaign page, progress, report, rehearsal) into docs/screenshots,
# taken by the browser test (TestBrowser) in headless Chromium against the real stack.
.PHONY: screenshots
screenshots: up tools
	OWLPOST_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestBrowser$$' ./internal/console/

# Variables: DEMO_TOKENS, DEMO_IOS_SHARE, DEMO_BAD_FRACTION, DEMO_INVALID_FRACTION,
# DEMO_PRESSES, DEMO_JSON=1, DEMO_TOPOLOGY=cluster (the production-topology stack; see scripts/demo.sh),
# DEMO_FLEET=FxSxC (F fanouts, S senders per platform, C control API replicas, each a process; default
# 2x1x1; e.g. make demo DEMO_FLEET=3x4x2), DEMO_PORT_BASE (default 9100: every port of the demo is
# derived from it, see scripts/demo.sh).
demo:
	scripts/demo.sh

# Benchmark (issue 8): raw apns2/firebase baselines, the sender alone and the
# whole pipeline against the push simulator, interleaved, medians of 3 rounds;
# prints a table and appends a dated entry to docs/bench-log.md (BENCHMARKS.md
# holds the current figures, edited by hand). Pass flags with
# BENCH_ARGS, e.g. make bench BENCH_ARGS="--phases raw --rounds 5" (see
# bin/owlctl bench --help).
BENCH_ARGS ?=
bench:
	scripts/devstack.sh up >/dev/null
	scripts/devstack.sh bench-tools
	$(GO) build -o $(BIN)/ ./cmd/... && $(BIN)/owlctl bench $(BENCH_ARGS)

# Fault-injection suite (issue 6): each case runs a real campaign against the
# dev stack with separate processes (pushsim, fanout x2, senders, owlctl),
# injects one fault and checks the simulator's delivery record; then the table
# in RELIABILITY.md is rewritten from the figures (exit status: the tests'). Every process's whole log is kept
# under fault-out/logs/<test>/ (fault-out/logs/library/ for the library-transport re-runs).
# The cases stop and restart the stack's Kafka and Redis, so never run this
# next to other tests on the same stack; for a private stack set OWLPOST_STATE,
# OWLPOST_KAFKA_PORT, OWLPOST_KAFKA_CONTROLLER_PORT and OWLPOST_REDIS_PORT. OWLPOST_FAULT_TRANSPORT=library|fast
# sets the senders' apns.transport and fcm.transport (default: the config default) for a run by hand.
FAULT_OUT ?= $(CURDIR)/fault-out/figures.jsonl
# The cases run a second time with the libraries' own HTTP/2 transports (apns.transport and fcm.transport
# library, the switch kept beside the default fast one): those where the provider connections matter.
FAULT_LIBRARY_CASES ?= ^(TestSenderKilled|TestProviderStorm|TestDeadlineShorterThanStorm|TestRedisDown)$$
.PHONY: fault
fault:
	scripts/devstack.sh up >/dev/null
	$(GO) build -o $(BIN)/ ./cmd/...
	@mkdir -p $(dir $(FAULT_OUT)) && rm -rf $(FAULT_OUT) $(dir $(FAULT_OUT))logs
	@cl="$$(scripts/devstack.sh up --cluster)" && eval "$$cl" || exit 1; rc=0; export OWLPOST_E2E_LOGS=$(dir $(FAULT_OUT))logs; \
	OWLPOST_RELIABILITY_OUT=$(FAULT_OUT) $(GO) test -tags fault -p 1 -count=1 -timeout 60m -v \
		./internal/fault/... 2>&1 | tee $(dir $(FAULT_OUT))test.log; rc=$${PIPESTATUS[0]}; \
	OWLPOST_FAULT_TRANSPORT=library OWLPOST_E2E_LOGS=$(dir $(FAULT_OUT))logs/library OWLPOST_RELIABILITY_OUT=$(FAULT_OUT) $(GO) test -tags fault -p 1 -count=1 -timeout 20m -v \
		-run '$(FAULT_LIBRARY_CASES)' ./internal/fault/ 2>&1 | tee $(dir $(FAULT_OUT))test-library.log; [ $${PIPESTATUS[0]} = 0 ] || rc=1; \
	$(GO) run ./internal/fault/cmd/reliability -in $(FAULT_OUT) -doc RELIABILITY.md -cmd "make fault" || rc=1; \
	exit $$rc
