#!/usr/bin/env bash
# Control-plane benchmarks: certificate signing, destination fan-out, and the store under 10,000
# Services, against a real controller started with `starling cluster create` on loopback.
# Prints each benchmark's own output, then a table: metric, value, target, pass/fail.
#
#   bench/control-plane.sh            build release, then run everything (about 1-2 minutes
#                                     after the build on 2 cores)
#   SKIP_BUILD=1 bench/control-plane.sh   reuse .build/release
#   SKIP_BUILD=1 BUILD=debug bench/control-plane.sh   try the script with debug binaries (figures meaningless)
#   SKIP_BUILD=1 BIN_DIR=DIR bench/control-plane.sh     use starling and starling-bench from DIR
#   STORES="sqlite postgres" (default)   the store benchmarks (2-4) run once per store: the
#                                     controller on SQLite, then on a throwaway PostgreSQL server
#                                     (Debian's package, scripts/postgres-test-server.sh, port 25450);
#                                     with postgres they run once more on three replicas
#                                     (`cluster create --replicas 3`), followed by 5: one replica
#                                     killed under the open destination streams
#   STORES=postgres-x3                only the three-replica run (2-5; 1 runs as always)
#
# Exit status: 0 when every target is met, 1 when one is missed, 2 when a benchmark could not run.
#
# Every benchmark is bounded in count and time and talks only to 127.0.0.0/8: the controller runs
# in a free loopback /16 (127.200-254.0.0/16) under a temporary STARLING_HOME, and is deleted on exit.
#
# Figures on a shared, noisy 2-core machine move by tens of percent between runs: read them as an
# order of magnitude against the targets, and compare runs made on the same machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

# --- knobs (the defaults are the issue's figures) ---
IDENTITY_CSRS=${IDENTITY_CSRS:-4000}        # in-process CSRs per run (3 runs, median)
IDENTITY_RPCS=${IDENTITY_RPCS:-1500}        # Identity.Certify RPCs per run (3 runs, median)
IDENTITY_CALLERS=${IDENTITY_CALLERS:-4}      # on one connection; with replicas, rounded up to a
                                            # multiple of them and dealt over one connection each
DEST_STREAMS=${DEST_STREAMS:-1000}
DEST_CHANGES=${DEST_CHANGES:-30}
# Streams per HTTP/2 connection are capped at 100 by the gRPC client while the controller
# advertises no SETTINGS_MAX_CONCURRENT_STREAMS, so the bench spreads them over streams/100
# connections unless DEST_CONNECTIONS says otherwise.
DEST_CONNECTIONS=${DEST_CONNECTIONS:-}
STORE_SERVICES=${STORE_SERVICES:-10000}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building release (starling, starling-bench)"
  release_build starling starling-bench
fi
bin=${BIN_DIR:-$root/.build/${BUILD:-release}}
STARLING=$bin/starling
BENCH=$bin/starling-bench
for b in "$STARLING" "$BENCH"; do
  [ -x "$b" ] || { echo "no binary at $b (build with swift build -c release)"; exit 2; }
done

STORES=${STORES:-sqlite postgres}
work=$(mktemp -d /tmp/starling-bench.XXXXXX)
chmod 755 "$work"
export STARLING_HOME=$work/home
unset STARLING_CONFIG
cluster=bench1
cluster_created=0
pg_started=0
cleanup() {
  if [ "$cluster_created" = 1 ]; then "$STARLING" cluster delete "$cluster" >/dev/null 2>&1 || true; fi
  if [ "$pg_started" = 1 ]; then "$root/scripts/postgres-test-server.sh" stop "$work/pg" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

# rows: metric|value|unit|target (text)|op|threshold ; op is le, ge, or info
rows=()
row() { rows+=("$1|$2|$3|$4|$5|$6"); }
# result NAME FILE: the value of `result NAME VALUE UNIT` printed by starling-bench
result() { awk -v n="$1" '$1 == "result" && $2 == n { print $3 }' "$2" | tail -1; }
now_ns() { date +%s%N; }

# --- 1. identity, in-process, one core ---
echo
echo "== identity: Issuer.certify in-process, pinned to CPU 0 (release)"
pin=()
if command -v taskset >/dev/null 2>&1; then pin=(taskset -c 0); else echo "(taskset not found: running unpinned)"; fi
"${pin[@]}" "$BENCH" identity --count "$IDENTITY_CSRS" --runs 3 | tee identity-local.out || fail "identity (in-process)"
row "identity: CSRs signed/s, 1 core (median of 3)" "$(result identity.local.csrs_per_second identity-local.out)" "/s" ">= 2000" ge 2000

# store_benchmarks STORE [REPLICAS]: a controller (or REPLICAS replicas) on STORE (sqlite |
# postgres) in a free loopback range, then benchmarks 2-4 against it (5 with replicas); the
# cluster is deleted afterwards.
store_benchmarks() {
store=$1
replicas=${2:-1}
label=$store; [ "$replicas" -gt 1 ] && label="$store x$replicas"
store_url=""
rm -f root.crt root.key issuer.crt issuer.key install.yaml
if [ "$store" = postgres ]; then
  if [ "$pg_started" != 1 ]; then
    echo
    echo "== a PostgreSQL server for the store (Debian's package, 127.0.0.1:25450)"
    "$root/scripts/postgres-test-server.sh" start "$work/pg" 25450 > pg.url || fail "PostgreSQL did not start (apt-get install postgresql)"
    pg_started=1
  fi
  # A fresh database per cluster: a database belongs to the cluster that first used it.
  db=starling_bench_$replicas
  PGPASSWORD=starling-test psql -h 127.0.0.1 -p 25450 -U starling -d postgres -qc "CREATE DATABASE $db" >/dev/null \
    || fail "cannot create database $db"
  store_url=$(sed "s|/starling_test\$|/$db|" pg.url)
fi
# --- a real controller on a free loopback range ---
echo
echo "== cluster"
range=""
for n in $(seq 200 254); do
  # A range is free when nothing answers on its controller's API or admin port (another
  # STARLING_HOME's cluster may hold it; this home's registry cannot know).
  if ! (exec 3<>"/dev/tcp/127.$n.0.1/8086") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.$n.0.1/9990") 2>/dev/null; then
    range=127.$n.0.0/16; break
  fi
done
[ -n "$range" ] || fail "no free loopback range in 127.200-254.0.0/16"
cluster_created=1
"$STARLING" cluster create "$cluster" --address-range "$range" ${store_url:+--store "$store_url"} --replicas "$replicas" \
  || fail "cluster create $cluster"
"$STARLING" cluster credentials "$cluster" --export-file "$work/config-$store" >/dev/null || fail "cluster credentials"
export STARLING_CONFIG=$work/config-$store
pid=$(cat "$STARLING_HOME/clusters/$cluster/controller.pid")
[ -r "/proc/$pid/status" ] || fail "controller pid $pid is not running"
echo "controller pid $pid on $range, store $label"

# --- 2. store: 10,000 Services through `starling apply -f` ---
echo
echo "== [$label] store: $STORE_SERVICES Services through starling apply -f"
sleep 1
idle=$(rss_mb "$pid")
awk -v n="$STORE_SERVICES" 'BEGIN {
  for (i = 0; i < n; i++) {
    printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%05d\n  namespace: store-bench\n  labels: {app: svc-%05d, tier: bench}\nspec:\n  ports:\n  - port: 8080\n    targetPort: 9898\n", i, i
  }
}' > services.yaml
echo "generated services.yaml: $(grep -c '^kind: Service' services.yaml) Services, $(du -k services.yaml | cut -f1) KB"
start=$(now_ns)
"$STARLING" apply -f services.yaml > apply.out 2> apply.err || { cat apply.err; fail "apply of $STORE_SERVICES Services"; }
end=$(now_ns)
apply_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
tail -1 apply.out
count=$("$STARLING" get svc -n store-bench 2>/dev/null | grep -c '^svc-' || true)
echo "apply took $apply_s s; controller lists $count Services in store-bench"
[ "$count" = "$STORE_SERVICES" ] || fail "expected $STORE_SERVICES Services in store-bench, the controller lists $count"
sleep 2  # let the destination index and watchers take the changes in
held=$(rss_mb "$pid")
echo "controller RSS: idle $idle MB, holding $STORE_SERVICES Services $held MB (peak so far $(hwm_mb "$pid") MB)"
row "[$label] store: RSS idle (before apply)" "$idle" "MB" "info" info 0
if [ "$store" = postgres ]; then apply_target=20; else apply_target=10; fi
dest_target=100; [ "$replicas" -gt 1 ] && dest_target=150
row "[$label] store: apply -f $STORE_SERVICES Services, wall" "$apply_s" "s" "< $apply_target" le "$apply_target"
row "[$label] store: RSS holding $STORE_SERVICES Services" "$held" "MB" "< 150" le 150

# --- 3. identity over the API: a mesh (root, issuer) installed, then Identity.Certify ---
# With replicas the bench gives each replica a connection of its own and deals the callers over
# them in turn; as many callers on each (IDENTITY_CALLERS rounded up), so that no replica's part
# of the aggregate comes from having more callers than another.
callers=$IDENTITY_CALLERS
connections="one connection"
if [ "$replicas" -gt 1 ]; then
  callers=$(( (IDENTITY_CALLERS + replicas - 1) / replicas * replicas ))
  connections="one connection per replica"
fi
echo
echo "== [$label] identity: Identity.Certify over TLS ($callers callers, $connections)"
"$STARLING" certs create identity.starling.cluster.local root.crt root.key --profile root-ca \
  --no-password --insecure >/dev/null || fail "certs create root"
"$STARLING" certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca \
  --not-after 8760h --no-password --insecure --ca root.crt --ca-key root.key >/dev/null || fail "certs create issuer"
"$STARLING" install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
  --identity-issuer-key-file issuer.key > install.yaml || fail "install"
"$STARLING" apply -f install.yaml >/dev/null || fail "apply of the install manifest"
# The controller loads the issuer from a watch; give it a moment.
sleep 1
"$BENCH" identity --rpc --config "$work/config-$store" --count "$IDENTITY_RPCS" --callers "$callers" --runs 3 \
  | tee identity-rpc.out || fail "identity (RPC)"
if [ "$replicas" -gt 1 ]; then
  row "[$label] identity: Certify RPCs/s across $replicas replicas, $callers callers (median of 3)" \
    "$(result identity.rpc.certify_per_second identity-rpc.out)" "/s" "info" info 0
  for k in $(seq "$replicas"); do
    row "[$label] identity:   of which replica $k (run nearest the median)" \
      "$(result "identity.rpc.replica$k.certify_per_second" identity-rpc.out)" "/s" "info" info 0
  done
else
  row "[$label] identity: Certify RPCs/s, $callers callers (median of 3)" \
    "$(result identity.rpc.certify_per_second identity-rpc.out)" "/s" "info" info 0
fi

# --- 4. destination: N open streams, time from a change to the last stream ---
echo
echo "== [$label] destination: $DEST_STREAMS Destination.Get streams, $DEST_CHANGES changes"
"$BENCH" destination --config "$work/config-$store" --streams "$DEST_STREAMS" --changes "$DEST_CHANGES" \
  ${DEST_CONNECTIONS:+--connections "$DEST_CONNECTIONS"} | tee destination.out || fail "destination"
row "[$label] destination: change -> last of $DEST_STREAMS streams, p50" "$(result destination.latency.p50 destination.out)" "ms" "info" info 0
row "[$label] destination: change -> last of $DEST_STREAMS streams, p99" "$(result destination.latency.p99 destination.out)" "ms" "< $dest_target" le "$dest_target"
row "[$label] destination: change -> last of $DEST_STREAMS streams, max" "$(result destination.latency.max destination.out)" "ms" "info" info 0
row "[$label] controller: RSS at the end (peak)" "$(rss_mb "$pid") ($(hwm_mb "$pid"))" "MB" "info" info 0

# --- 5. failover: one replica killed under the open streams ---
if [ "$replicas" -gt 1 ]; then
  victim=$(cat "$STARLING_HOME/clusters/$cluster/replica-2/controller.pid")
  echo
  echo "== [$label] failover: $DEST_STREAMS Destination.Get streams, replica 2 (pid $victim) killed"
  "$BENCH" failover --config "$work/config-$store" --streams "$DEST_STREAMS" --kill-pid "$victim" | tee failover.out \
    || fail "failover"
  row "[$label] failover: streams on the killed replica" "$(result failover.streams_moved failover.out)" "" "info" info 0
  row "[$label] failover: kill -> stream open again, p50" "$(result failover.resume.p50 failover.out)" "ms" "info" info 0
  row "[$label] failover: kill -> stream open again, p99" "$(result failover.resume.p99 failover.out)" "ms" "< 3000" le 3000
  row "[$label] failover: streams resumed, state resent" "$(result failover.resent failover.out)" "" "info" info 0
fi

"$STARLING" cluster delete "$cluster" >/dev/null 2>&1 || true
cluster_created=0
unset STARLING_CONFIG
}

for store in $STORES; do
  case $store in
    postgres-x3) ;;  # below
    *) store_benchmarks "$store" ;;
  esac
done
case " $STORES " in *" postgres "* | *" postgres-x3 "*) store_benchmarks postgres 3 ;; esac

# --- table ---
echo
# The metric column is as wide as the longest metric (at least 62).
width=62
for r in "${rows[@]}"; do metric=${r%%|*}; [ ${#metric} -le $width ] || width=${#metric}; done
printf '%-*s %14s  %-8s %-7s\n' "$width" "metric" "value" "target" "result"
printf '%-*s %14s  %-8s %-7s\n' "$width" "------" "-----" "------" "------"
missed=0
for r in "${rows[@]}"; do
  IFS='|' read -r metric value unit target op threshold <<<"$r"
  verdict=info
  if [ "$op" != info ]; then
    if [ -z "$value" ]; then verdict=FAIL
    elif awk -v v="$value" -v t="$threshold" -v op="$op" 'BEGIN { exit !((op == "le" && v < t) || (op == "ge" && v >= t)) }'
    then verdict=pass
    else verdict=FAIL
    fi
    [ "$verdict" = pass ] || missed=1
  fi
  printf '%-*s %14s  %-8s %-7s\n' "$width" "$metric" "$value $unit" "$target" "$verdict"
done
echo
echo "(machine: $(nproc) CPUs, $(uname -r); figures on a shared machine vary between runs)"
exit $missed
