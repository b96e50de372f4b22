#!/usr/bin/env bash
# The build users deploy: release, with the Swift runtime and Foundation linked into the binary
# (--static-swift-stdlib; calls into the runtime skip the PLT and dynamic TLS, docs/data-plane.md).
# The demo, the end-to-end tests and the benchmarks all run this build; binaries land in
# .build/release.
#
#   scripts/release-build.sh [PRODUCT...]      (default: starling)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- starling
for product in "$@"; do
  swift build -c release --static-swift-stdlib --product "$product"
done
