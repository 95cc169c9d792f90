#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md: Go benchmarks (exchange vs raw quic-go vs
# HTTPS; the scheduler on one core) and an end-to-end run with real processes,
# all in one run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
bytes=${DFP2P_BENCH_BYTES:-1073741824}
echo "exchange benchmarks..."
DFP2P_BENCH_BYTES=$bytes go test -run '^$' -bench 'RawQUIC|HTTPS|Exchange' -benchtime 3x ./exchange/ | tee "$tmp/exchange.txt"
echo "scheduler benchmarks..."
go test -run '^$' -bench . -cpu 1 -benchtime 2s ./tracker/scheduler/ | tee "$tmp/scheduler.txt"
echo "dht benchmark..."
go test -run '^$' -bench ProviderLookup30 -benchtime 1x ./dht/ | tee "$tmp/dht.txt"
echo "end to end..."
go run ./e2e/cmd/bench -size "$bytes" -gobench "$tmp/exchange.txt,$tmp/scheduler.txt,$tmp/dht.txt" -out docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md"
