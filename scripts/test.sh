#!/usr/bin/env bash
# The whole test suite: Swift Testing unit and integration tests, then the end-to-end scripts
# against the real binary. Needs: swift, openssl, curl, python3 with grpcio + grpcio-tools +
# PyYAML + cryptography, PostgreSQL (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build
tests/e2e/control-plane.sh .build/debug/starling
tests/e2e/multicluster.sh .build/debug/starling
