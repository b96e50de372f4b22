#!/usr/bin/env bash
# Soak: the two-cluster demo under mixed load for MINUTES while faults are injected, with every
# Starling process sampled (RSS, open fds, established connections) every 10 s.
#
#   tests/soak/run.sh MINUTES [path/to/starling]        (CI: 3; the published figures: 30)
#
# Two clusters, soak1 (127.70.0.0/16) and soak2 (127.71.0.0/16), share one root; each installs
# with workload certificates of 60 s (`--identity-issuance-lifetime 60s`: every proxy renews about
# every 40 s), has the gateway installed, and is linked to the other. soak2 exports podinfo, a
# gRPC greeter and PostgreSQL (an opaque TCP service); soak1 exports its podinfo and splits its
# podinfo 50/50 between its own and soak2's. Load, through the mesh only (the client workloads'
# outbound listeners and an opaque TCP binding):
#   http1-keepalive  10/s  soak1 → podinfo.soak (the split), one keep-alive connection
#   http1-new         5/s  soak1 → podinfo.soak, a new connection per request
#   h2c               3/s  soak1 → podinfo.soak, curl --http2-prior-knowledge, a new connection each
#   grpc              5/s  soak1 → greeter-soak2 (across soak2's gateway), grpcio, one channel
#   psql              2/s  soak1 → postgres-soak2 (opaque TCP across the gateway), a new psql each
#   http1-remote      5/s  soak2 → podinfo-soak1 (across soak1's gateway), keep-alive
# Every request times out after 5 s and is logged with its start and latency.
#
# Faults, every 30 s (runs shorter than 10 minutes) or 120 s, in turn: soak1's controller
# restarted (SIGTERM, then started again), soak2's gateway killed (`multicluster uninstall`, 10 s
# down, installed again), soak2's controller killed (SIGKILL — its gateway with it — and started
# again), soak1's gateway killed. Once, half-way, the issuer of both clusters is replaced by a new
# one signed by the same root (`starling certs create` + `install … | apply`). A fault window runs
# from a fault's start to 10 s after it ended (controller ready again; the peer sees the gateway
# alive — after a SIGKILL possibly before its probe noticed the gateway had gone): failures inside
# are counted and reported, failures outside fail the soak.
#
# Pass: every process's RSS and fd count flat after warm-up (tests/soak/report.py: the median of
# the last window at most 10 % above the first's — only growth is a leak; warm-up min(5 min, max(1 min, MINUTES/3)), windows
# min(10 min, 40 % of what follows the warm-up): 30 min → warm-up 5, windows 5–15 and 20–30;
# 3 min → warm-up 1, windows 1:00–1:48 and 2:12–3:00); 0 failed requests outside the fault windows;
# no request took longer than its timeout; every workload still running; certificates renewed
# and issued by the new issuer at the end; `starling check` passes in both clusters.
#
# Writes soak.csv (the samples), soak.png (the plot), soak-summary.md (the figures) and the logs
# to $SOAK_OUT (default /tmp/starling-soak). Needs python3 with grpcio, grpcio-tools and
# matplotlib (python3 -m pip install matplotlib), curl, openssl, psql and Debian's PostgreSQL
# server. Prints "soak: N passed, M failed"; exits non-zero on any failure; removes the clusters,
# processes and data it made, also when interrupted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tests/e2e/lib.sh"

minutes=${1:-}
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -lt 2 ]; then
  echo "usage: tests/soak/run.sh MINUTES [path/to/starling]   (MINUTES ≥ 2; CI runs 3)"; exit 2
fi
e2e_binary "${2:-}"
missing=""
python3 -c 'import matplotlib' 2>/dev/null || missing+="  - matplotlib (python3 -m pip install matplotlib)"$'\n'
python3 -c 'import grpc, grpc_tools' 2>/dev/null || missing+="  - grpcio and grpcio-tools (python3 -m pip install grpcio grpcio-tools)"$'\n'
for tool in curl openssl psql; do command -v $tool >/dev/null || missing+="  - $tool"$'\n'; done
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing+="  - PostgreSQL server (apt-get install postgresql)"$'\n'
if [ -n "$missing" ]; then
  printf 'soak: missing prerequisites:\n%s' "$missing"
  echo "soak: 0 passed, 1 failed"; exit 2
fi

total=$((minutes * 60))
interval=$([ "$minutes" -ge 10 ] && echo 120 || echo 30)
warmup=$(( total / 3 )); [ $warmup -lt 60 ] && warmup=60; [ $warmup -gt 300 ] && warmup=300
window=$(( (total - warmup) * 4 / 10 )); [ $window -gt 600 ] && window=600
gateway_down=10
fault_after=10     # a fault window ends this many seconds after the fault ended

c1=soak1; range1=127.70.0.0/16; ctl1=127.70.0.1
c2=soak2; range2=127.71.0.0/16; ctl2=127.71.0.1
pg_addr=127.71.200.1; pg_port=25470        # PostgreSQL, soak2's workload
psql_bind=127.70.250.1; psql_port=25471    # the opaque TCP binding in soak1's client
trust=identity.starling.cluster.local
artifacts=${SOAK_OUT:-/tmp/starling-soak}
mkdir -p "$artifacts"
rm -f "$artifacts"/soak.csv "$artifacts"/soak.png "$artifacts"/soak-summary.md "$artifacts"/*.log

e2e_home starling-soak
stop=$work/stop
loaders=()          # sampler and load generators
ctl_pids=()    # controllers this script restarted
pgdir=""
cleanup() {
  trap - EXIT INT TERM
  touch "$stop" 2>/dev/null
  for p in "${loaders[@]}"; do kill "$p" 2>/dev/null; done
  stop_workloads
  for p in "${ctl_pids[@]}"; do kill "$p" 2>/dev/null; done
  # The logs first: `cluster delete` removes the controllers' directories, their logs with them.
  for f in "$work"/*.log "$STARLING_HOME"/clusters/*/controller.log; do
    [ -f "$f" ] || continue
    case $f in */clusters/*) cp "$f" "$artifacts/controller-$(basename "$(dirname "$f")").log";; *) cp "$f" "$artifacts/";; esac
  done 2>/dev/null
  "$STARLING" cluster delete $c1 >/dev/null 2>&1
  "$STARLING" cluster delete $c2 >/dev/null 2>&1
  for p in "${ctl_pids[@]}" "${loaders[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "$pgdir" ] && "$root/scripts/postgres-test-server.sh" stop "$pgdir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; bad "interrupted"; echo "soak: $passed passed, $failed failed"; exit 130' INT TERM
cd "$work"
S() { timeout 60 "$STARLING" "$@"; }
W1() { STARLING_CONFIG=$work/configs/$c1 timeout 60 "$STARLING" "$@"; }
W2() { STARLING_CONFIG=$work/configs/$c2 timeout 60 "$STARLING" "$@"; }
on() { local c=$1; shift; STARLING_CONFIG=$work/configs/$c "$@"; }
now() { date +%s.%N | cut -c1-14; }

step "soak: $minutes min; faults every ${interval}s; warm-up ${warmup}s; compared windows ${window}s; binary $STARLING"
step "clusters $c1 ($range1) and $c2 ($range2), one root, 60 s workload certificates, linked both ways"
expect_ok "cluster create $c1" S cluster create $c1 --address-range $range1
expect_ok "cluster create $c2" S cluster create $c2 --address-range $range2
mkdir -p configs
S cluster credentials $c1 --export-file configs/$c1 >/dev/null
S cluster credentials $c2 --export-file configs/$c2 >/dev/null
S certs create $trust root.crt root.key --profile root-ca --no-password --insecure >/dev/null
for c in $c1 $c2; do
  S certs create $trust issuer-$c.crt issuer-$c.key --profile intermediate-ca --not-after 8760h \
    --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
done
install_mesh() {  # CLUSTER ISSUER_NAME
  on "$1" timeout 60 "$STARLING" install --identity-trust-anchors-file root.crt \
    --identity-issuer-certificate-file "$2.crt" --identity-issuer-key-file "$2.key" \
    --identity-issuance-lifetime 60s | on "$1" timeout 60 "$STARLING" apply -f -
}
gateway_install() { on "$1" timeout 60 "$STARLING" multicluster install | on "$1" timeout 60 "$STARLING" apply -f -; }
for c in $c1 $c2; do
  expect_ok "install --identity-issuance-lifetime 60s | apply ($c)" install_mesh $c issuer-$c
  expect_ok "multicluster install | apply ($c)" gateway_install $c
done
link() { on "$1" timeout 60 "$STARLING" multicluster link --cluster-name "$2" --config "$work/configs/$2" | on "$1" timeout 60 "$STARLING" apply -f -; }
expect_ok "link $c1 -> $c2" link $c1 $c2
expect_ok "link $c2 -> $c1" link $c2 $c1
gateway_alive() { on "$1" timeout 20 "$STARLING" multicluster gateways | grep -qE "^$2 +True"; }
eventually "$c1 sees $c2's gateway alive" 40 gateway_alive $c1 $c2
eventually "$c2 sees $c1's gateway alive" 40 gateway_alive $c2 $c1

step "workloads"
pgdir=$work/pg
if PG_LISTEN=127.0.0.1,$pg_addr PG_CLIENTS=127.0.0.0/8 "$root/scripts/postgres-test-server.sh" start "$pgdir" $pg_port > pg.log 2>&1; then
  ok "PostgreSQL on $pg_addr:$pg_port"
else bad "PostgreSQL did not start"; show < pg.log; fi
run_in() { local c=$1 log=$2; shift 2; STARLING_CONFIG=$work/configs/$c start_workload "$log" "$@"; }
run_in $c1 podinfo1.log -n soak --service podinfo --port 9898 -- "$STARLING" demo-app podinfo --message "podinfo in $c1"
run_in $c1 echo1.log -n soak --service echo --port 9898 -- "$STARLING" demo-app podinfo --message "echo in $c1"
run_in $c2 podinfo2.log -n soak --service podinfo --port 9898 -- "$STARLING" demo-app podinfo --message "podinfo in $c2"
run_in $c2 greeter2.log -n soak --service greeter --port 25051 -- python3 "$root/tests/e2e/data-plane/greeter.py" serve
run_in $c2 postgres2.log -n db --service postgres --port $pg_port --address $pg_addr --app-protocol opaque -- sleep 1000000
run_in $c1 loadgen1.log -n soak --service-account loadgen \
  --outbound-tcp postgres-$c2.db:$pg_port=$psql_bind:$psql_port -- sleep 1000000
run_in $c2 loadgen2.log -n soak --service-account loadgen -- sleep 1000000
registered_in() { on "$1" timeout 20 "$STARLING" get wl -n "$2" | grep -q "^$3-"; }
for w in "$c1 soak podinfo" "$c1 soak echo" "$c2 soak podinfo" "$c2 soak greeter" "$c2 db postgres"; do
  set -- $w; eventually "$3 registered in $1" 60 registered_in "$@"
done
caddr1=$(address_of loadgen1.log) || { bad "soak1's load client never started"; show < loadgen1.log; }
caddr2=$(address_of loadgen2.log) || { bad "soak2's load client never started"; show < loadgen2.log; }
paddr2=$(address_of podinfo2.log)
expect_ok "export podinfo, greeter, postgres ($c2) and echo ($c1)" bash -c "
  STARLING_CONFIG=$work/configs/$c2 '$STARLING' label svc -n soak podinfo mirror.starling.io/exported=true &&
  STARLING_CONFIG=$work/configs/$c2 '$STARLING' label svc -n soak greeter mirror.starling.io/exported=true &&
  STARLING_CONFIG=$work/configs/$c2 '$STARLING' label svc -n db postgres mirror.starling.io/exported=true &&
  STARLING_CONFIG=$work/configs/$c1 '$STARLING' label svc -n soak echo mirror.starling.io/exported=true"
cat > split.yaml <<YAML
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: podinfo, namespace: soak}
spec:
  service: podinfo
  backends:
  - {service: podinfo, weight: 50}
  - {service: podinfo-$c2, weight: 50}
YAML
expect_ok "TrafficSplit podinfo 50/50 $c1/$c2 ($c1)" W1 apply -f split.yaml
answers() { curl -sf -m 5 -x "http://$1:4140" "$2" | grep -q "$3"; }
eventually "podinfo-$c2 answers in $c1" 40 answers "$caddr1" "http://podinfo-$c2.soak:9898/" "podinfo in $c2"
eventually "echo-$c1 answers in $c2" 40 answers "$caddr2" "http://echo-$c1.soak:9898/" "echo in $c1"
eventually "greeter-$c2 answers in $c1" 40 timeout 20 python3 "$root/tests/e2e/data-plane/greeter.py" call \
  --target "$caddr1:4140" --authority greeter-$c2.soak:25051 --name soak
psql_ok() { PGPASSWORD=starling-test PGCONNECT_TIMEOUT=5 timeout 10 psql -h $psql_bind -p $psql_port -U starling -d starling_test -Atc 'select 1' | grep -qx 1; }
eventually "psql reaches postgres-$c2 through $c1's binding" 40 psql_ok

if [ "$failed" -gt 0 ]; then
  echo; echo "soak: setup failed, not starting the load"
  echo "soak: $passed passed, $failed failed"; exit 1
fi

step "load and faults for $minutes min"
t0=$(now)
python3 "$here/sample.py" --home "$STARLING_HOME" --out "$artifacts/soak.csv" --start "$t0" --stop-file "$stop" \
  > sampler.log 2>&1 & loaders+=($!)
L() { local name=$1; shift; python3 "$here/load.py" "$@" --timeout 5 --stop-file "$stop" --log "$work/load-$name.log" \
  > "load-$name.out" 2>&1 & loaders+=($!); }
L http1-keepalive http1 --proxy "$caddr1:4140" --url http://podinfo.soak:9898/ --keepalive --rate 10 --clusters $c1,$c2
L http1-new http1 --proxy "$caddr1:4140" --url http://podinfo.soak:9898/ --rate 5 --clusters $c1,$c2
L h2c h2c --proxy "$caddr1:4140" --authority podinfo.soak:9898 --rate 3
L grpc grpc --proxy "$caddr1:4140" --authority greeter-$c2.soak:25051 --rate 5
L psql psql --host $psql_bind --port $psql_port --rate 2
L http1-remote http1 --proxy "$caddr2:4140" --url http://echo-$c1.soak:9898/ --keepalive --rate 5 --clusters $c1,$c2

elapsed() { echo $(( $(date +%s) - ${t0%.*} )); }
# fault KIND DESCRIPTION CMD...: runs CMD, logs the fault's span to faults.log
fault() {
  local kind=$1 desc=$2; shift 2; local s e
  s=$(now)
  if "$@" > fault.out 2>&1; then echo "      $(elapsed)s: $kind $desc"
  else bad "fault $kind $desc did not complete"; show < fault.out; fi
  e=$(now)
  echo "$s $e $kind $desc" >> faults.log
}
ready() { curl -sf -m 2 "http://$1:9990/ready" >/dev/null; }
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.5; done; }
# restart_controller CLUSTER SIGNAL ADDRESS PEER: stops the controller with SIGNAL, starts it again
# with the same command line, waits until it is ready and the peer sees its gateway alive.
restart_controller() {
  local c=$1 sig=$2 addr=$3 peer=$4 pidf="$STARLING_HOME/clusters/$1/controller.pid" pid args
  pid=$(cat "$pidf")
  mapfile -d '' args < "/proc/$pid/cmdline" || return 1
  kill -"$sig" "$pid" || return 1
  wait_for 15 bash -c "! kill -0 $pid 2>/dev/null" || { kill -9 "$pid"; sleep 1; }
  "${args[@]}" >> "$STARLING_HOME/clusters/$c/controller.log" 2>&1 &
  echo $! > "$pidf"; ctl_pids+=($!); disown $!
  wait_for 30 ready "$addr" || { echo "controller $c not ready"; return 1; }
  wait_for 30 gateway_alive "$peer" "$c" || { echo "$peer does not see $c's gateway alive"; return 1; }
}
# kill_gateway CLUSTER PEER: the gateway stopped (multicluster uninstall), down for a while, installed again
kill_gateway() {
  on "$1" timeout 60 "$STARLING" multicluster uninstall || return 1
  sleep $gateway_down
  gateway_install "$1" || return 1
  wait_for 40 gateway_alive "$2" "$1" || { echo "$2 does not see $1's gateway alive"; return 1; }
}
replace_issuers() {
  local c
  for c in $c1 $c2; do
    S certs create $trust issuer2-$c.crt issuer2-$c.key --profile intermediate-ca --not-after 8760h \
      --no-password --insecure --ca root.crt --ca-key root.key || return 1
    install_mesh $c issuer2-$c || return 1
  done
}
issuer_at=$(( total / 2 + interval / 4 )); issuer_done=0
k=1
while [ "$(elapsed)" -lt "$total" ]; do
  t=$(elapsed)
  if [ $issuer_done = 0 ] && [ "$t" -ge $issuer_at ]; then
    fault issuer "replaced in $c1 and $c2 (same root)" replace_issuers; issuer_done=1
  elif [ "$t" -ge $((k * interval)) ] && [ $((k * interval)) -lt $((total - 20)) ]; then
    case $(( (k - 1) % 4 )) in
      0) fault controller-restart "$c1 (SIGTERM)" restart_controller $c1 TERM $ctl1 $c2;;
      1) fault gateway-kill "$c2 (${gateway_down}s down)" kill_gateway $c2 $c1;;
      2) fault controller-kill "$c2 (SIGKILL, its gateway with it)" restart_controller $c2 KILL $ctl2 $c1;;
      3) fault gateway-kill "$c1 (${gateway_down}s down)" kill_gateway $c1 $c2;;
    esac
    k=$((k + 1))
  else
    sleep 1
  fi
done
t_end=$(now)

step "after the load"
alive=0; dead=""
for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then alive=$((alive + 1)); else dead+=" $p"; fi; done
[ -z "$dead" ] && ok "all ${#pids[@]} workloads (starling run) still running" || bad "starling run processes ended:$dead"
for c in $c1 $c2; do expect_ok "check ($c)" on $c timeout 60 "$STARLING" check; done
# The certificate podinfo's inbound (soak2) serves now: issued less than 60 s ago (renewed), by the
# replacement issuer.
leaf=$(timeout 10 openssl s_client -connect "$paddr2:4143" -showcerts </dev/null 2>/dev/null |
  sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' | awk '/BEGIN/{n++} n==1')
if [ -n "$leaf" ]; then
  echo "$leaf" > leaf.pem
  left=$(( $(date -d "$(openssl x509 -in leaf.pem -noout -enddate | cut -d= -f2)" +%s) - $(date +%s) ))
  # A certificate of 60 s that is still valid after minutes of load was renewed during them.
  [ $left -gt 0 ] && [ $left -le 70 ] && ok "podinfo ($c2) serves a valid certificate expiring in ${left}s (60 s certificates renewed)" \
    || bad "podinfo ($c2) serves a certificate expiring in ${left}s"
  if [ $issuer_done = 1 ]; then
    if openssl verify -partial_chain -CAfile issuer2-$c2.crt leaf.pem >/dev/null 2>&1; then
      ok "it is signed by the replacement issuer"
    else bad "it is not signed by the replacement issuer"; openssl x509 -in leaf.pem -noout -issuer -dates | show; fi
  fi
else bad "no certificate from podinfo's inbound at $paddr2:4143"; fi

touch "$stop"
for p in "${loaders[@]}"; do wait "$p" 2>/dev/null; done
for f in load-*.out; do [ -s "$f" ] && { echo "      $f:"; show 5 < "$f"; }; done
cp "$work"/load-*.log faults.log "$artifacts/" 2>/dev/null

step "figures"
report=$(python3 "$here/report.py" --csv "$artifacts/soak.csv" --loads "$work" --faults faults.log --start "$t0" --end "$t_end" \
  --warmup $warmup --window $window --window-after $fault_after --timeout 5 --grace 1 \
  --png "$artifacts/soak.png" --summary "$artifacts/soak-summary.md" 2>&1); rc=$?
echo "$report"
passed=$((passed + $(grep -c '^  ✓' <<<"$report")))
failed=$((failed + $(grep -c '^  ×' <<<"$report")))
[ $rc = 0 ] || bad "report.py failed (exit $rc)"
echo
cat "$artifacts/soak-summary.md" 2>/dev/null | sed 's/^/    /'
echo "    artifacts: $artifacts (soak.csv, soak.png, soak-summary.md, logs)"
echo
echo "soak: $passed passed, $failed failed"
[ "$failed" = 0 ]
