# owlpost: two commands do all the set-up on a fresh machine:
#   make demo   runs a whole campaign end to end
#   make test   runs the unit and integration tests against a real Kafka and Redis
# Both start the dev stack (scripts/devstack.sh) if it is not running.

SHELL := /bin/bash
GO    ?= go
BIN   := bin
export OWLPOST_TEST_KAFKA ?= 127.0.0.1:$(or $(OWLPOST_KAFKA_PORT),9092)
export OWLPOST_TEST_REDIS ?= 127.0.0.1:$(or $(OWLPOST_REDIS_PORT),6379)

.PHONY: build test unit demo bench up down status lint fmt

build:
	$(GO) build -o $(BIN)/ ./cmd/...

up:
	scripts/devstack.sh up

down:
	scripts/devstack.sh down

status:
	scripts/devstack.sh status

lint:
	$(GO) vet ./...
	@out="$$(gofmt -l cmd internal)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Unit tests only (no services needed for most packages; integration tests fail
# with a message saying how to start the stack).
unit:
	$(GO) test ./...

test: lint up
	$(GO) test -count=1 -timeout 20m ./...

# Variables: DEMO_TOKENS, DEMO_IOS_SHARE, DEMO_BAD_FRACTION, DEMO_INVALID_FRACTION,
# DEMO_PRESSES, DEMO_JSON=1 (see scripts/demo.sh).
demo:
	scripts/demo.sh

bench:
	@echo "make bench: not implemented yet (issue 8); see README 'Status'"; exit 1
