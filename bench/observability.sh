#!/usr/bin/env bash
# Observability benchmarks (#17's figures), against a real cluster on loopback (127.62.0.0/16):
#
#   /metrics     a real proxy's /metrics with at least METRICS_SERIES sample lines (made by real
#                traffic: requests through the caller's outbound to podinfo's /status/{code} for
#                many codes, each adding a counter and a latency histogram). Timed with curl,
#                REQUESTS times each, median and p99 of curl's total time; the baseline, measured
#                in the same run on the same admin server, is /live (no rendering): the render
#                cost is the difference.
#   viz stat     with WORKLOADS workloads registered: the two running workloads plus Workload
#                records applied for the rest, each naming podinfo's proxy admin port as its own,
#                so that Prometheus (Debian's, `viz install`, 5 s scrapes) scrapes WORKLOADS targets
#                of real proxy series, one set per workload label. `viz stat workload` and
#                `viz stat svc` are timed RUNS times (median, worst); the baseline is the same
#                request-rate query sent straight to Prometheus with curl.
#
# Targets: /metrics with 1,000 series renders in under 5 ms; viz stat answers in under 1 s with
# 200 workloads. Exit status: 0 when both are met, 1 when one is missed, 2 when it could not run.
#
#   bench/observability.sh               build release (starling), then measure (~2 minutes)
#   SKIP_BUILD=1 bench/observability.sh  reuse .build/release/starling
#   SKIP_BUILD=1 BIN_DIR=DIR ...         use DIR/starling
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

METRICS_SERIES=${METRICS_SERIES:-1000}
REQUESTS=${REQUESTS:-200}
WORKLOADS=${WORKLOADS:-200}
RUNS=${RUNS:-9}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building release (starling)"
  release_build starling
fi
STARLING=${BIN_DIR:-$root/.build/release}/starling
[ -x "$STARLING" ] || { echo "no binary at $STARLING"; exit 2; }
for tool in curl prometheus python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y curl prometheus python3"; exit 2; }
done

cluster=obsbench
range=127.62.0.0/16
ctl=127.62.0.1
work=$(mktemp -d /tmp/starling-obs-bench.XXXXXX)
export STARLING_HOME=$work/home
unset STARLING_CONFIG http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
pids=()
cluster_created=0
cleanup() {
  set +e
  local kids
  kids=$(grep -h 'workload started' "$work"/*.log 2>/dev/null | sed -n 's/.* pid=\([0-9][0-9]*\).*/\1/p')
  pids+=($kids)
  stop_pids
  if [ "$cluster_created" = 1 ]; then "$STARLING" cluster delete "$cluster" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

echo "== cluster $cluster ($range), $("$STARLING" --version 2>/dev/null || echo starling)"
"$STARLING" cluster create "$cluster" --address-range "$range" >/dev/null || fail "cluster create"
cluster_created=1
"$STARLING" certs create identity.starling.cluster.local root.crt root.key --profile root-ca --no-password --insecure >/dev/null
"$STARLING" certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca --not-after 8760h \
  --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
"$STARLING" install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
  --identity-issuer-key-file issuer.key > install.yaml || fail "install"
"$STARLING" apply -f install.yaml >/dev/null || fail "apply of the install manifest"
"$STARLING" run -n bench --service podinfo --port 9898 -- "$STARLING" demo-app podinfo > podinfo.log 2>&1 & pids+=($!)
"$STARLING" run -n bench --service caller --service-account caller --port 7001 -- \
  "$STARLING" demo-app podinfo --port 7001 > caller.log 2>&1 & pids+=($!)
address_of() { sed -n 's/.*address=\([0-9.]*\).*/\1/p' "$1" | head -1; }
wait_for "the workloads started" 60 bash -c "grep -q address= podinfo.log && grep -q address= caller.log"
paddr=$(address_of podinfo.log) caddr=$(address_of caller.log)
wait_for "podinfo answers through the caller's outbound" 60 curl -sf -m 2 -x "http://$caddr:4140" http://podinfo.bench:9898/
echo "podinfo at $paddr, caller at $caddr"

# --- /metrics with METRICS_SERIES series ---
series() { curl -s -m 5 "http://$caddr:4191/metrics" | grep -cv '^#' || true; }
code=200
while [ "$(series)" -lt "$METRICS_SERIES" ] && [ $code -le 599 ]; do
  for c in $(seq $code $((code + 9))); do
    [ $c -le 599 ] && curl -s -m 5 -o /dev/null -x "http://$caddr:4140" "http://podinfo.bench:9898/status/$c"
  done
  code=$((code + 10))
done
n=$(series)
bytes=$(curl -s -m 5 "http://$caddr:4191/metrics" | wc -c)
[ "$n" -ge "$METRICS_SERIES" ] || fail "the caller's /metrics has only $n series after status codes 200-$((code - 1))"
echo "== /metrics of the caller's proxy: $n series ($bytes bytes), $REQUESTS requests each for /metrics and /live"
timed() { for _ in $(seq "$REQUESTS"); do curl -s -m 5 -o /dev/null -w '%{time_total}\n' "$1"; done; }
timed "http://$caddr:4191/live" > live.txt      # warm-up
timed "http://$caddr:4191/metrics" > metrics.txt
timed "http://$caddr:4191/live" > live.txt
ms() { awk '{ printf "%.3f\n", $1 * 1000 }' "$1"; }
pct() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100); if (i < 1) i = 1; print v[i] }'; }
m50=$(median $(ms metrics.txt)) m99=$(ms metrics.txt | pct 99)
l50=$(median $(ms live.txt)) l99=$(ms live.txt | pct 99)
render=$(awk -v a="$m50" -v b="$l50" 'BEGIN { printf "%.3f", a - b }')
echo "GET /metrics  median $m50 ms  p99 $m99 ms"
echo "GET /live     median $l50 ms  p99 $l99 ms   (baseline: same server, no rendering)"
echo "render cost (median difference): $render ms for $n series"

# --- viz stat with WORKLOADS workloads ---
echo "== viz stat with $WORKLOADS workloads registered"
extra=$((WORKLOADS - 2))
python3 - "$extra" "$paddr" > workloads.yaml <<'PY'
import sys
count, address = int(sys.argv[1]), sys.argv[2]
for i in range(count):
    print(f"""---
apiVersion: starling.io/v1alpha1
kind: Workload
metadata:
  name: bench-w{i:03d}
  namespace: bench
  labels:
    app: bench-w{i:03d}
  annotations:
    observability.starling.io/admin-port: "4191"
spec:
  address: {address}
  serviceAccount: default
  identity: default.bench.serviceaccount.identity.starling.cluster.local
  ports:
  - port: 9898""")
PY
"$STARLING" apply -f workloads.yaml >/dev/null || fail "apply of $extra workloads"
registered=$("$STARLING" get wl -n bench | tail -n +2 | wc -l)
echo "workloads registered in namespace bench: $registered"
"$STARLING" viz install --scrape-interval 5s >/dev/null || fail "viz install"
targets_up() {
  curl -s -m 5 "http://$ctl:9090/api/v1/query" --data-urlencode 'query=count(up{component="proxy"} == 1)' |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)'
}
enough_up() { [ "$(targets_up)" -ge "$WORKLOADS" ]; }
wait_for "Prometheus scrapes $WORKLOADS proxy targets (up: \$(targets_up))" 90 enough_up
# Traffic for the rates, then two scrapes.
for i in $(seq 100); do curl -s -m 5 -o /dev/null -x "http://$caddr:4140" http://podinfo.bench:9898/; done
sleep 11
total=$(curl -s -m 5 "http://$ctl:9090/api/v1/query" --data-urlencode 'query=count({__name__=~"starling_.+"})' |
  python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
echo "Prometheus holds $total starling series"
clock() { local s e; s=$(date +%s%N); "$@" > /dev/null 2>&1 || echo "failed: $*" >&2; e=$(date +%s%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }'; }
declare -A med worst
for what in "viz stat workload" "viz stat svc" "direct query"; do
  times=()
  for _ in $(seq "$RUNS"); do
    case $what in
      "viz stat workload") t=$(clock "$STARLING" viz stat workload -n bench -t 1m);;
      "viz stat svc") t=$(clock "$STARLING" viz stat svc -n bench -t 1m);;
      "direct query") t=$(clock curl -sf -m 5 "http://$ctl:9090/api/v1/query" --data-urlencode \
        'query=sum by (workload) (rate(starling_proxy_requests_total{direction="inbound",namespace="bench"}[1m]))');;
    esac
    times+=("$t")
  done
  med[$what]=$(median "${times[@]}")
  worst[$what]=$(printf '%s\n' "${times[@]}" | sort -g | tail -1)
  printf '%-18s median %7s ms  worst %7s ms  (%s runs)\n' "$what" "${med[$what]}" "${worst[$what]}" "$RUNS"
done
rows=$("$STARLING" viz stat workload -n bench -t 1m | tail -n +2 | wc -l)
echo "viz stat workload printed $rows rows"

echo
printf '%-52s %-18s %s\n' "target" "value" "result"
missed=0
ok=$(awk -v r="$render" 'BEGIN { print (r < 5) }'); [ "$ok" = 1 ] || missed=1
printf '%-52s %-18s %s\n' "/metrics with $n series renders in < 5 ms" "$render ms" "$([ "$ok" = 1 ] && echo pass || echo FAIL)"
for what in "viz stat workload" "viz stat svc"; do
  ok=$(awk -v r="${med[$what]}" 'BEGIN { print (r < 1000) }'); [ "$ok" = 1 ] || missed=1
  printf '%-52s %-18s %s\n' "$what < 1 s with $registered workloads" "${med[$what]} ms" "$([ "$ok" = 1 ] && echo pass || echo FAIL)"
done
echo "(viz stat / direct Prometheus query: $(awk -v a="${med[viz stat workload]}" -v b="${med[direct query]}" 'BEGIN { printf "%.1f", a / b }')x; machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
exit $missed
