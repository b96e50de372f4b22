#!/usr/bin/env bash
# The whole test suite: Swift Testing unit and integration tests, then the end-to-end scripts
# against the real binary. Needs: swift, openssl, curl, python3 with grpcio + grpcio-tools +
# PyYAML + cryptography, PostgreSQL, chromium, prometheus, iproute2 + nftables (.ci/run
# installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
# Serially: the suite is fast (under a minute) and its real-socket tests keep their time bounds
# on a loaded 2-core machine.
swift test --skip-build --no-parallel
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for script in control-plane multicluster multicluster-netns data-plane; do
  tests/e2e/$script.sh .build/debug/starling | tee -a "$log"
done
# One closing line for all end-to-end checks (each script exits non-zero on a failure).
closing=$(grep -E '^[a-z0-9 -]+: [0-9]+ passed, [0-9]+ failed' "$log")
passed=$(grep -oE '[0-9]+ passed' <<<"$closing" | awk '{s += $1} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed' <<<"$closing" | awk '{s += $1} END {print s + 0}')
echo "e2e: $passed passed, $failed failed"
