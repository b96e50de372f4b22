#!/usr/bin/env bash
# The whole test suite: every fuzz target for 30 s and the Swift Testing unit and integration
# tests on the debug build, then the end-to-end scripts, a 3-minute soak and `starling demo
# --check` against the build users deploy (release, Swift runtime linked in:
# scripts/release-build.sh, built meanwhile).
# Needs: swift, openssl, curl, python3 with grpcio + grpcio-tools + PyYAML + cryptography +
# matplotlib + h2, PostgreSQL, chromium, prometheus, iproute2 + nftables, faketime, systemd (its
# analyzer checks the unit files); .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
home=$(mktemp -d /tmp/starling-demo.XXXXXX)
release_log=$(mktemp)
pgtest=$(mktemp -d /tmp/starling-pgtest.XXXXXX)
release_pid=
# list_artifacts: what the end-to-end scripts and the soak kept (artifacts/, not in git), listed
# when the run ends, passed or failed.
list_artifacts() {
  [ -d artifacts ] || return 0
  echo "artifacts:"
  { find artifacts -type f \( -name '*.png' -o -name '*.md' -o -name '*.csv' \) 2>/dev/null || true; } | sort | while read -r f; do
    echo "  $f ($(stat -c %s "$f") bytes)"
  done
}
trap 'list_artifacts; [ -z "$release_pid" ] || { pkill -TERM -P "$release_pid"; kill "$release_pid"; } 2>/dev/null; rm -f "$log" "$release_log"; rm -rf "$home";
  scripts/postgres-test-server.sh stop "$pgtest/server"; rm -rf "$pgtest"' EXIT
swift package resolve
# The release build runs beside the debug build and the fuzzing: whole-module optimization keeps
# it on one core for long stretches, so the two share the machine well (about 5 minutes saved).
# It has a build directory of its own (SwiftPM locks each). The unit tests wait for it: their
# real-socket time bounds hold on an otherwise idle machine.
STARLING_RELEASE_SCRATCH=.build-release scripts/release-build.sh starling > "$release_log" 2>&1 &
release_pid=$!
swift build --build-tests
# Every libFuzzer target for 30 s, two at a time. Short form: Starling's own modules instrumented
# in .build, reusing the debug build's dependencies (docs/fuzzing.md has the full-instrumentation
# runs of the published figures). The unit tests' binary is already linked.
STARLING_FUZZ_SCOPE=starling STARLING_FUZZ_SCRATCH=.build STARLING_FUZZ_JOBS=2 STARLING_FUZZ_SEED=1 tests/fuzz/run.sh all 30 | tee -a "$log"
if ! wait "$release_pid"; then
  release_pid=
  tail -40 "$release_log"
  echo "the release build failed (scripts/release-build.sh)" >&2
  exit 1
fi
release_pid=
tail -1 "$release_log"
starling=.build-release/release/starling
# The PostgreSQL store's tests run against a real server (Debian's package), started here.
STARLING_TEST_POSTGRES_URL=$(scripts/postgres-test-server.sh start "$pgtest/server" 25432)
export STARLING_TEST_POSTGRES_URL
# Serially: the suite is fast (under two minutes) and its real-socket tests keep their time
# bounds on a loaded 2-core machine.
swift test --skip-build --no-parallel
# Screenshots of the dashboard and the demo frontend, and the soak's samples, plot and figures,
# are kept in the checkout (artifacts/, not in git) and listed when the run ends (list_artifacts).
export STARLING_ARTIFACTS=$PWD/artifacts/e2e SOAK_OUT=$PWD/artifacts/soak
rm -rf artifacts
# The end-to-end scripts, the soak (its short form: two linked clusters under mixed load and
# faults for 3 minutes, every Starling process's RSS, fds and connections sampled;
# tests/soak/run.sh 30 for the figures) and README's main command (`demo --check`, unattended, as
# a new user runs it, with its own STARLING_HOME), in two lanes at once. Most of their time is
# waiting (certificates expiring, a database down for 30 s, failovers, the soak's fixed load), so
# two lanes share two cores well (about 8 minutes saved). What shares addresses, ports or
# network-namespace names stays in one lane: control-plane, multicluster and the demo (127.1/16
# and 127.2/16), multicluster and viz (Prometheus, dashboards), multicluster-netns and
# hosts-netns (sl-w1, sl-w2). Each one's output is printed whole when it ends; a failure fails its
# lane, and the run once both lanes are done.
lane_logs=$(mktemp -d)
run_one() {
  case $1 in
    soak) tests/soak/run.sh 3 "$starling" ;;
    demo) if STARLING_HOME=$home "$starling" demo --check; then echo "demo: 1 passed, 0 failed"; else echo "demo: 0 passed, 1 failed"; return 1; fi ;;
    *) tests/e2e/$1.sh "$starling" ;;
  esac
}
lane() {
  local one rc=0
  for one in "$@"; do
    run_one "$one" > "$lane_logs/$one.log" 2>&1 || rc=1
    flock "$lane_logs" bash -c 'cat "$1" | tee -a "$2"' _ "$lane_logs/$one.log" "$log"
  done
  return $rc
}
lane control-plane multicluster data-plane authz mtls-refusal viz rotation demo & lane_a=$!
lane postgres-store replicas multicluster-netns hosts-netns soak & lane_b=$!
lanes_ok=true
wait "$lane_a" || lanes_ok=false
wait "$lane_b" || lanes_ok=false
rm -rf "$lane_logs"
# One closing line for all checks after the unit tests.
closing=$(grep -E '^[a-z0-9 -]+: [0-9]+ passed, [0-9]+ failed' "$log")
passed=$(grep -oE '[0-9]+ passed' <<<"$closing" | awk '{s += $1} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed' <<<"$closing" | awk '{s += $1} END {print s + 0}')
echo "e2e: $passed passed, $failed failed"
$lanes_ok || { echo "a script in the lanes above failed or ended early (its output says where)" >&2; exit 1; }
[ "$failed" = 0 ]
