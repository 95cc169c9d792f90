#!/usr/bin/env bash
# reliability.sh runs the fault-injection suite (e2e TestFaults) RUNS times,
# each with its own seed, appends one result line per scenario to RESULTS,
# and regenerates the table in docs/RELIABILITY.md from every line in RESULTS.
#
#   make reliability RUNS=5              # seeds SEED, SEED+1, ... (SEED default: the time)
#   RESULTS=/tmp/r.jsonl SEED=42 RUNS=1 scripts/reliability.sh
#
# Each run's verbose log is kept in reliability-logs/seed-N.log, and with
# KEEP_LOGS=1 every process's log in reliability-logs/seed-N/ (to study a
# failing seed; reproduce one with DFP2P_FAULT_SEED=N, see docs/RELIABILITY.md).
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
SEED=${SEED:-$(date +%s)}
RESULTS=${RESULTS:-docs/reliability-results.jsonl}
GO=${GO:-go}
mkdir -p reliability-logs
fails=0
for ((i = 0; i < RUNS; i++)); do
	seed=$((SEED + i))
	echo "== run $((i + 1))/$RUNS: DFP2P_FAULT_SEED=$seed"
	keep=()
	if [[ -n "${KEEP_LOGS:-}" ]]; then keep=(DFP2P_FAULT_LOGS="$PWD/reliability-logs/seed-$seed"); fi
	start=$(date +%s)
	if env DFP2P_FAULT_SEED="$seed" DFP2P_RELIABILITY_OUT="$PWD/$RESULTS" "${keep[@]}" \
		$GO test -count=1 -timeout 20m -run 'TestFaults' -v ./e2e/ >"reliability-logs/seed-$seed.log" 2>&1; then
		echo "   pass in $(($(date +%s) - start)) s"
	else
		fails=$((fails + 1))
		echo "   FAIL in $(($(date +%s) - start)) s (reliability-logs/seed-$seed.log):"
		grep -E '^\s*--- FAIL|DATA LOST' "reliability-logs/seed-$seed.log" | head -20
	fi
done
$GO run ./e2e/cmd/reliability --results "$RESULTS" --doc docs/RELIABILITY.md
echo "$fails of $RUNS runs failed"
[[ $fails -eq 0 ]]
