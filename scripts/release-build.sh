#!/usr/bin/env bash
# The build users deploy: release, with the Swift runtime and Foundation linked into the binary
# (--static-swift-stdlib; calls into the runtime skip the PLT and dynamic TLS, docs/data-plane.md).
# The demo, the end-to-end tests and the benchmarks all run this build; binaries land in
# .build/release.
#
#   scripts/release-build.sh [PRODUCT...]      (default: starling)
#   STARLING_RELEASE_SCRATCH=DIR ...           build in DIR instead of .build (binaries in
#                                              DIR/release): a build directory of its own, so it
#                                              can run beside a debug build (SwiftPM locks each)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- starling
scratch=${STARLING_RELEASE_SCRATCH:-.build}
for product in "$@"; do
  swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product "$product"
done
