#!/usr/bin/env bash
# Certificate signing under a flood (issue #16, item 4): one join-token holder sends CSRs as fast
# as it can; do the other workloads still get their certificates, and how much slower? Against a
# real controller (`starling cluster create` on 127.74.0.0/16, a mesh installed), starling-bench
# certify-flood measures victim Identity.Certify latency alone, then under the flood, and the
# flooder's granted and refused rates against the per-identity limit (controller defaults:
# 10/s, burst 100), then — for comparison — the same flood with the admin token, which the limit
# exempts (every CSR signed: what a victim would see without the limit). Prints the benchmark's output, then a table: metric, value, target, result.
#
#   bench/certify-flood.sh                       build release, then run (about 45 s after the build)
#   SKIP_BUILD=1 bench/certify-flood.sh          reuse .build/release
#   SKIP_BUILD=1 BUILD=debug bench/certify-flood.sh   a smoke run with debug binaries (figures meaningless)
#   BUILD=debug bench/certify-flood.sh           build debug (swift build), then the smoke run
#   SKIP_BUILD=1 BIN_DIR=DIR bench/certify-flood.sh   use starling and starling-bench from DIR
#
# Knobs: DURATION (s per phase, 10), CALLERS (flooding callers, 32), FLOOD_CONNECTIONS (1),
# VICTIM_INTERVAL_MS (50), VICTIMS (victim identities the paced calls cycle over, 4: 5/s each,
# under the limit, so a victim refusal can only come from the flood).
#
# Exit status: 0 when every target is met, 1 when one is missed, 2 when the benchmark could not run.
# Everything talks to 127.74.0.0/16 only, under a temporary STARLING_HOME; the cluster is deleted
# on exit. On a shared 2-core machine the client (32 callers) and the controller share the CPUs:
# read the latency ratio as an upper bound on what the flood costs a victim.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

DURATION=${DURATION:-10}
CALLERS=${CALLERS:-32}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-1}
VICTIM_INTERVAL_MS=${VICTIM_INTERVAL_MS:-50}
VICTIMS=${VICTIMS:-4}
RANGE=127.74.0.0/16
API=127.74.0.1

BUILD=${BUILD:-release}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  if [ "$BUILD" = release ]; then
    echo "== building release (starling, starling-bench)"
    release_build starling starling-bench
  else
    echo "== building $BUILD (starling, starling-bench)"
    for p in starling starling-bench; do (cd "$root" && swift build -c "$BUILD" --product "$p") || fail "building $p"; done
  fi
fi
bin=${BIN_DIR:-$root/.build/$BUILD}
STARLING=$bin/starling
BENCH=$bin/starling-bench
for b in "$STARLING" "$BENCH"; do
  [ -x "$b" ] || { echo "no binary at $b (build with scripts/release-build.sh starling starling-bench)"; exit 2; }
done

free_address "$API" 8086 && free_address "$API" 9990 || fail "$RANGE is in use (a controller answers on $API); delete that cluster first"

work=$(mktemp -d /tmp/starling-certify-flood.XXXXXX)
chmod 755 "$work"
export STARLING_HOME=$work/home
unset STARLING_CONFIG
cluster=flood1
cluster_created=0
pids=()
cleanup() {
  if [ "$cluster_created" = 1 ]; then "$STARLING" cluster delete "$cluster" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

# result NAME FILE: the value of `result NAME VALUE UNIT` printed by starling-bench
result() { awk -v n="$1" '$1 == "result" && $2 == n { print $3 }' "$2" | tail -1; }
# metric NAME: the controller's counter NAME from its admin /metrics (0 when absent)
metric() {
  curl -sf "http://$API:9990/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}

echo
echo "== cluster $cluster on $RANGE ($BUILD binaries)"
cluster_created=1
"$STARLING" cluster create "$cluster" --address-range "$RANGE" || fail "cluster create $cluster"
"$STARLING" cluster credentials "$cluster" --export-file "$work/config" >/dev/null || fail "cluster credentials"
export STARLING_CONFIG=$work/config
pid=$(cat "$STARLING_HOME/clusters/$cluster/controller.pid")
[ -r "/proc/$pid/status" ] || fail "controller pid $pid is not running"
echo "controller pid $pid"

echo
echo "== mesh: root, issuer, install | apply"
"$STARLING" certs create identity.starling.cluster.local root.crt root.key --profile root-ca \
  --no-password --insecure >/dev/null || fail "certs create root"
"$STARLING" certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca \
  --not-after 8760h --no-password --insecure --ca root.crt --ca-key root.key >/dev/null || fail "certs create issuer"
"$STARLING" install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
  --identity-issuer-key-file issuer.key > install.yaml || fail "install"
"$STARLING" apply -f install.yaml >/dev/null || fail "apply of the install manifest"

limited_before=$(metric starling_certify_rate_limited_total)
echo
echo "== certify-flood: ${DURATION}s baseline, ${DURATION}s flood ($CALLERS callers), ${DURATION}s admin flood"
"$BENCH" certify-flood --config "$work/config" --controller-pid "$pid" --duration "$DURATION" --callers "$CALLERS" \
  --flood-connections "$FLOOD_CONNECTIONS" --victim-interval-ms "$VICTIM_INTERVAL_MS" --victims "$VICTIMS" \
  | tee flood.out || fail "certify-flood"
limited=$(( $(metric starling_certify_rate_limited_total) - limited_before ))
echo "controller: starling_certify_rate_limited_total went up by $limited (the bench counted $(result certify_flood.flood.refused flood.out) refusals)"
echo "controller: RSS $(rss_mb "$pid") MB, peak $(hwm_mb "$pid") MB"

# --- table ---
# rows: metric|value|unit|target (text)|op|threshold ; op is le, ge, eq or info
rows=()
row() { rows+=("$1|$2|$3|$4|$5|$6"); }
r() { result "$1" flood.out; }
row "victim p50, baseline" "$(r certify_flood.victim.baseline.p50)" "ms" "info" info 0
row "victim p50, under flood" "$(r certify_flood.victim.flood.p50)" "ms" "info" info 0
row "victim p50 ratio (flood / baseline)" "$(r certify_flood.victim.p50_ratio)" "x" "info" info 0
row "victim p99, baseline" "$(r certify_flood.victim.baseline.p99)" "ms" "info" info 0
row "victim p99, under flood" "$(r certify_flood.victim.flood.p99)" "ms" "info" info 0
row "victim p99 ratio (flood / baseline)" "$(r certify_flood.victim.p99_ratio)" "x" "info" info 0
row "victim p50 ratio, admin flood (no limit)" "$(r certify_flood.victim.unlimited_p50_ratio)" "x" "info" info 0
row "victim p99 ratio, admin flood (no limit)" "$(r certify_flood.victim.unlimited_p99_ratio)" "x" "info" info 0
row "victim failures, baseline" "$(r certify_flood.victim.baseline.failures)" "" "= 0" eq 0
row "victim failures, under flood" "$(r certify_flood.victim.flood.failures)" "" "= 0" eq 0
row "flooder requests/s" "$(r certify_flood.flood.requests_per_second)" "/s" "info" info 0
row "flooder granted/s (whole phase, burst included)" "$(r certify_flood.flood.granted_per_second)" "/s" "info" info 0
row "flooder refused/s" "$(r certify_flood.flood.refused_per_second)" "/s" "info" info 0
row "flooder granted/s after its burst" "$(r certify_flood.flood.granted_after_burst_per_second)" "/s" "~10" info 0
row "flooder granted rate at the configured rate (1 = yes)" "$(r certify_flood.flood.at_configured_rate)" "" "= 1" eq 1
row "admin flood (no limit): requests/s = granted/s" "$(r certify_flood.unlimited.granted_per_second)" "/s" "info" info 0
row "flooder failures (not RESOURCE_EXHAUSTED)" "$(r certify_flood.flood.failed)" "" "info" info 0
row "controller CPU, baseline" "$(r certify_flood.controller_cpu.baseline)" "cores" "info" info 0
row "controller CPU, under flood" "$(r certify_flood.controller_cpu.flood)" "cores" "info" info 0
row "controller CPU, admin flood (no limit)" "$(r certify_flood.controller_cpu.unlimited)" "cores" "info" info 0
row "controller: certify_rate_limited_total increase" "$limited" "" "info" info 0

echo
printf '%-56s %14s  %-8s %-7s\n' "metric" "value" "target" "result"
printf '%-56s %14s  %-8s %-7s\n' "------" "-----" "------" "------"
missed=0
for x in "${rows[@]}"; do
  IFS='|' read -r name value unit target op threshold <<<"$x"
  verdict=info
  if [ "$op" != info ]; then
    if [ -z "$value" ]; then verdict=FAIL
    elif awk -v v="$value" -v t="$threshold" -v op="$op" 'BEGIN { exit !((op == "le" && v < t) || (op == "ge" && v >= t) || (op == "eq" && v == t)) }'
    then verdict=pass
    else verdict=FAIL
    fi
    [ "$verdict" = pass ] || missed=1
  fi
  printf '%-56s %14s  %-8s %-7s\n' "$name" "$value $unit" "$target" "$verdict"
done
echo
echo "($BUILD binaries; machine: $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg); figures on a shared machine vary between runs)"
exit $missed
