#!/usr/bin/env bash
# Runs every go test -fuzz target in the module for a set time each
# (default 30s): make fuzz FUZZTIME=2m. `make test` runs their seed corpora
# as ordinary tests; this explores beyond them. New crashers are written to
# the package's testdata/fuzz/ and fail the run.
set -euo pipefail
fuzztime="${1:-30s}"
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $target ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
      status=1
    fi
  done
done
exit $status
