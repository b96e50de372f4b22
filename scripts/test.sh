#!/usr/bin/env bash
# The whole test suite: Swift Testing unit and integration tests, then the end-to-end scripts
# against the real binary. Needs: swift, openssl, curl, python3 with grpcio + grpcio-tools +
# PyYAML + cryptography, PostgreSQL (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
# Serially: the suite is fast (under a minute) and its real-socket tests keep their time bounds
# on a loaded 2-core machine.
swift test --skip-build --no-parallel
tests/e2e/control-plane.sh .build/debug/starling
tests/e2e/multicluster.sh .build/debug/starling
tests/e2e/multicluster-netns.sh .build/debug/starling
tests/e2e/data-plane.sh .build/debug/starling
