#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine. Idempotent; as a
# non-root user it only checks and explains.
set -euo pipefail
# Debian packages come as arguments (the Makefile's `deps` target passes the
# registry suite's: docker-registry containerd skopeo apache2-utils, and iproute2 for
# the network-namespace tests).
need=()
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
for pkg in "$@"; do installed "$pkg" || need+=("$pkg"); done
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing packages: ${need[*]} (run as root or install them)" >&2; exit 1
  fi
fi
# QUIC wants bigger UDP buffers than Debian's default (see docs/OPERATIONS.md).
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo 0)" -lt 7500000 ]; then
  sysctl -q -w net.core.rmem_max=7500000 net.core.wmem_max=7500000 2>/dev/null || true
fi
