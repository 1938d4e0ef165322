# gregor: build, run, test and benchmark. `make help` lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO        ?= go
FUZZTIME  ?= 5m
# Unit tests, and the broker binary the e2e tests start, are built with the
# race detector unless RACE=0.
RACE      ?= 1
UNIT_TIMEOUT ?= 10m
E2E_TIMEOUT  ?= 12m

# Every package except the end-to-end tests (their test process only drives
# clients; the broker they start gets -race instead, see test-e2e).
UNIT_PKGS = $(shell $(GO) list -e ./... | grep -v '/e2e$$')
RACE_FLAG = $(if $(filter 1,$(RACE)),-race,)

.PHONY: all help build run deps vet test test-unit test-e2e fuzz bench bench-long bench-appender bench-agent bench-go clean

all: build

help:
	@echo "make build       build bin/gregor"
	@echo "make run         build and run a standalone broker on 127.0.0.1:9092 (topic 'events')"
	@echo "make test        install test deps, vet, unit tests (-race), fuzz corpus replay, e2e tests (race-built broker)"
	@echo "make test-unit   unit tests only; make test-e2e: e2e tests only"
	@echo "make fuzz        fuzz every Fuzz target for FUZZTIME (default 5m) each"
	@echo "make bench       gregor vs kfake comparison table (bench-results/latest.txt)"
	@echo "make bench-long  20 GB through one partition, then kill -9 restart time"
	@echo "make bench-go    go test -bench for storage, record validation, cleaner, group commits, produce round trips"
	@echo "make bench-appender  appender per-call cost vs zap/slog io.Discard, throughput, kafka-go peer"
	@echo "make bench-agent agent vs rsyslog (imfile -> omkafka) on a 2 GB file"
	@echo "make clean       remove bin/ and bench-results/ (keeps gregor-data/)"

build:
	$(GO) build -o bin/gregor ./cmd/gregor

run: build
	scripts/run.sh

deps:
	scripts/install-deps.sh

vet:
	$(GO) vet ./...

# Fuzz seed corpora under testdata/fuzz/ are replayed by plain `go test`.
test: deps vet test-unit test-e2e

test-unit:
	$(GO) test $(RACE_FLAG) -timeout $(UNIT_TIMEOUT) $(UNIT_PKGS)

test-e2e: deps
	GREGOR_E2E_RACE=$(RACE) $(GO) test -count=1 -timeout $(E2E_TIMEOUT) ./e2e/

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench:
	scripts/bench.sh

bench-long:
	scripts/bench-long.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 1s ./broker/storage ./broker/record
	$(GO) test -run '^$$' -bench 'OffsetCommit100' -benchtime 20000x ./broker
	$(GO) test -run '^$$' -bench 'ProduceRoundTrip' -benchtime 2s ./broker

bench-appender:
	appender/benchpeer/run.sh

bench-agent:
	scripts/bench-agent.sh

clean:
	rm -rf bin bench-results
