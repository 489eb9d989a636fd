# failoverd — see README.md. Every target works on a fresh machine with Go.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DATA_DIR ?= ./data
FUZZTIME ?= 30s

.PHONY: all build run demo test test-unit lint bench fuzz sim soak tools rules clean

all: build

## build: bin/failoverd
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/failoverd ./cmd/failoverd

## run: failoverd on the embedded default (bbolt store in ./data, simulated cloud) at 127.0.0.1:9097
run: build
	@scripts/tokens.sh $(DATA_DIR)
	@echo "API token for the CLI: export FAILOVERD_API_TOKEN=\$$(cat $(DATA_DIR)/api.token)"
	FAILOVERD_WEBHOOK_TOKEN=$$(cat $(DATA_DIR)/webhook.token) FAILOVERD_API_TOKEN=$$(cat $(DATA_DIR)/api.token) \
		bin/failoverd serve --config examples/local.yaml --data-dir $(DATA_DIR)

## demo: a guided walk through one outage, from the real Alertmanager sample to a closed incident
demo: build
	scripts/demo.sh

## tools: build the pinned Alertmanager, kube-apiserver, helm and promtool (tools/, tools/kube/, tools/helm/, tools/promtool/) into ~/.cache/failoverd/tools
tools:
	tools/build.sh >/dev/null

## test: everything — formatting, vet, unit, contract, fuzz seeds, and end-to-end with a real Alertmanager
test: build tools lint
	FAILOVERD_TOOLS_BIN=$$(tools/build.sh) FAILOVERD_BIN=$(CURDIR)/bin/failoverd FAILOVERD_E2E_REQUIRED=1 \
		$(GO) test -race -count=1 -timeout 15m ./...

## test-unit: the fast tests only (no real Alertmanager)
test-unit:
	$(GO) test -count=1 ./...

## lint: gofmt, go vet, and go.mod tidiness
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@cp go.mod /tmp/failoverd-go.mod.bak && cp go.sum /tmp/failoverd-go.sum.bak && $(GO) mod tidy && \
		if ! diff -q go.mod /tmp/failoverd-go.mod.bak >/dev/null || ! diff -q go.sum /tmp/failoverd-go.sum.bak >/dev/null; then \
			echo "go.mod/go.sum were not tidy (now fixed: commit them)"; exit 1; fi

## bench: the same alert storm against failoverd, webhook (a generic receiver) and a decode-only baseline, plus alert-to-provision latency on the GCP wire fake; writes docs/benchmarks.md
bench:
	bench/run.sh

## sim: the deterministic fault simulation over SEEDS seeds (default 2000; make test runs 300)
SEEDS ?= 2000
sim:
	FAILOVERD_SIM_SEEDS=$(SEEDS) $(GO) test -count=1 -timeout 60m -run 'TestSimulation$$' -v ./failover/simulation/

## soak: new simulation seeds on every core for DURATION (default 30m)
DURATION ?= 30m
soak:
	FAILOVERD_SIM_DURATION=$(DURATION) $(GO) test -count=1 -timeout 24h -run 'TestSimulation$$' -v ./failover/simulation/

## fuzz: every fuzz target in the repository (found by name) for FUZZTIME each (default 30s)
fuzz:
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' failover cloud cmd | sort); do \
		pkg=./$$(dirname $$file); \
		for target in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$file | cut -d' ' -f2); do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x $$pkg; \
		done; \
	done

## rules: copy alerts/*.rules.yaml into the chart and refresh its golden files
rules: tools
	alerts/sync-chart.sh
	FAILOVERD_TOOLS_BIN=$$(tools/build.sh) $(GO) test ./charts/ -run Golden -update

clean:
	rm -rf bin
