SHELL := /bin/bash
# dfp2p — the two set-up commands are `make demo` and `make test`.
GO        ?= go
BIN       := bin/dfp2p
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Unit tests run with the race detector; end-to-end tests run real processes.
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v -e /e2e -e /sim)

.PHONY: all build test unit simtier e2e vet demo bench fuzz clean deps sim deploy-check deploy-manifests reliability soak soaksmoke

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dfp2p

# deps installs what the tests need on a fresh Debian machine (CI runs as root).
deps:
	@./scripts/deps.sh docker-registry containerd skopeo apache2-utils iproute2 systemd prometheus chromium

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# deploy-check (mostly compiling Helm and Kubernetes types, cold) runs beside
# the soak smoke, which mostly waits: the whole suite stays under 20 minutes
# on 2 cores with an empty build cache.
test: deps vet unit simtier e2e
	$(MAKE) -j2 -Otarget deploy-check soaksmoke

unit:
	$(GO) test -race -timeout 10m $(UNIT_PKGS)

# simtier: the in-process simulation (50 daemons on go-libp2p's simulated
# network, virtual time). Without -race: the race detector makes each
# simulated packet ~7x dearer, and the full scenarios (8 MiB, churn) then
# take minutes; the packages it drives are race-tested in unit.
simtier:
	$(GO) test -count=1 -timeout 10m ./sim/...

e2e:
	$(GO) test -timeout 15m -v -count=1 ./e2e/... 2>&1 | tee e2e.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go' ; exit $${PIPESTATUS[0]}

# deploy-check validates deploy/ offline (its own module: Helm and the
# Kubernetes libraries stay out of go.mod): the chart rendered by Helm's engine
# and decoded strictly, the committed manifests, the Dockerfile, the systemd units.
deploy-check:
	cd deploy/validate && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

# deploy-manifests rewrites deploy/kubernetes/dfp2p.yaml from the chart.
deploy-manifests:
	cd deploy/validate && $(GO) test -count=1 -run TestPlainManifests ./... -update

demo: build
	$(GO) run ./e2e/cmd/demo -bin $(BIN)

# sim runs the testground plan locally (root: network namespaces, tc): 20 leechers,
# 1 seed, 64 MiB, 20 Mbit/s, 20 ms; dfp2p vs HTTP vs BitTorrent. Results in
# testground/results/latest/ (summary.json, summary.csv, plots). docs/SIMULATIONS.md
sim:
	@./scripts/deps.sh aria2 mktorrent opentracker iproute2
	cd testground && $(GO) run ./cmd/sim $(SIMFLAGS)

# soak: random gets, SIGKILLs and restarts against a tracker and 3 daemons
# for DURATION; checks every get's sha256 and that RSS, goroutines and open
# FDs stay bounded. CSV, plots and summary.txt in SOAK_OUT. `make test` runs
# a 2-minute smoke (soaksmoke).
DURATION ?= 30m
SOAK_OUT ?= soak-results/$(shell date +%Y%m%d-%H%M%S)-$(DURATION)
soak:
	DFP2P_SOAK_DURATION=$(DURATION) DFP2P_SOAK_OUT=$(abspath $(SOAK_OUT)) $(GO) test -count=1 -timeout 24h -run '^TestSoak$$' -v ./e2e/

soaksmoke:
	$(MAKE) soak DURATION=2m

bench:
	./scripts/bench.sh

# reliability runs the fault-injection suite RUNS times with different seeds
# (root: tmpfs mounts) and regenerates the table in docs/RELIABILITY.md.
reliability:
	RUNS=$(RUNS) ./scripts/reliability.sh

fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin e2e.log reliability-logs
