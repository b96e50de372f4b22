#!/usr/bin/env bash
# End to end: a cluster across hosts, linked with a second cluster on a host of its own. Every
# host is a network namespace on one LAN (a bridge in a namespace of its own; nothing is added to
# the host's network namespace):
#
#   sl-db  10.203.0.10   PostgreSQL (Debian's server, password authentication)
#   sl-c1  10.203.0.1    prod: controller replica 1 and its gateway
#   sl-c2  10.203.0.2    prod: controller replica 2 and its gateway
#   sl-c3  10.203.0.3    prod: controller replica 3 and its gateway
#   sl-h1  10.203.0.21   prod: a caller workload      sl-h2  10.203.0.22   prod: podinfo (exported)
#   sl-w   10.203.0.30   west: its controller (SQLite); .31 a caller of podinfo-prod (wcaller)
#   sl-g   10.203.0.40   west: its gateway, `starling gateway` in a process of its own
#
# The replicas share the database and one set of credentials (replica 1 makes them; the others get
# copies), the operator's context is written by `config add-cluster` with every replica, and the
# workloads run `starling run` on their own hosts. West links to prod and calls its podinfo through
# prod's three gateways; prod links to west and calls its exported wcaller through west's gateway,
# which runs on its own host (its controller started with --gateway external). While calls go from
# sl-h1 to podinfo on sl-h2, and from west through the
# gateways:
# replica 1 is killed (-9) and replica 2 is cut off from the database host with nftables inside
# its namespace. No call may fail; the duties move; check reports it; a workload joins while one
# replica is dead and another cut off. Needs root, iproute2, nftables and PostgreSQL; otherwise
# prints a "skipped" line.
#
#   tests/e2e/hosts-netns.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
e2e_binary "${1:-}"

echo; echo "== one cluster on six hosts (network namespaces)"
skip() { echo "  - skipped: $*"; echo "hosts-netns e2e: 0 passed, 0 failed"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces); tests/e2e/replicas.sh runs the replicated control plane on loopback without it"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
command -v nft >/dev/null || skip "nft (nftables) not installed"
e2e_needs_postgres hosts-netns
e2e_home starling-hosts
lan=sl-lan
hosts="sl-db sl-c1 sl-c2 sl-c3 sl-h1 sl-h2 sl-w sl-g"
declare -A addr=([sl-db]=10.203.0.10 [sl-c1]=10.203.0.1 [sl-c2]=10.203.0.2 [sl-c3]=10.203.0.3 [sl-h1]=10.203.0.21 [sl-h2]=10.203.0.22 [sl-w]=10.203.0.30 [sl-g]=10.203.0.40)
pgport=5432
netns_down() { for ns in $hosts $lan; do ip netns del "$ns" 2>/dev/null; done; }
cleanup() {
  local ns left
  stop_workloads
  for ns in $hosts; do
    left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -n "$left" ] && kill -9 $left 2>/dev/null
  done
  netns_down
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"
# on HOST CMD...: a command on that host.
on() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# S CMD...: the operator's starling, on sl-h1 with the context that lists every replica.
S() { on sl-h1 env STARLING_CONFIG="$work/config" STARLING_HOME="$work/home" timeout 60 "$STARLING" "$@"; }
# W CMD...: west's starling, on sl-w.
W() { on sl-w env STARLING_CONFIG="$work/config-west" STARLING_HOME="$work/home-w" timeout 60 "$STARLING" "$@"; }

step "hosts: eight namespaces on one bridge"
netns_down
set -e
ip netns add $lan
ip -n $lan link add br0 type bridge
ip -n $lan link set br0 up
for ns in $hosts; do
  ip netns add "$ns"
  ip -n $lan link add "v-$ns" type veth peer name eth0 netns "$ns"
  ip -n $lan link set "v-$ns" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "${addr[$ns]}/24" dev eth0
  ip -n "$ns" link set eth0 up
done
set +e
ip -n sl-w addr add 10.203.0.31/24 dev eth0
ok "sl-db, sl-c1..3, sl-h1..2, sl-w, sl-g on 10.203.0.0/24"

step "PostgreSQL on sl-db"
if ! base=$(on sl-db env PG_LISTEN=127.0.0.1,10.203.0.10 PG_CLIENTS=10.203.0.0/24 \
  "$root/scripts/postgres-test-server.sh" start "$work/pg" $pgport 2>&1); then
  bad "PostgreSQL starts on sl-db"; echo "$base" | show
  echo; echo "hosts-netns e2e: $passed passed, $failed failed"; exit 1
fi
url=${base/127.0.0.1/10.203.0.10}
for h in sl-c1 sl-c2 sl-c3; do
  on $h timeout 2 bash -c "exec 3<>/dev/tcp/10.203.0.10/$pgport" 2>/dev/null && ok "$h reaches PostgreSQL on sl-db" \
    || bad "$h cannot reach 10.203.0.10:$pgport"
done

step "three controller replicas, each on its own host"
replica() {
  local k=$1
  on "sl-c$k" "$STARLING" controller --cluster-name prod --data-dir "$work/c$k" \
    --api-address "10.203.0.$k:8086" --admin-address "10.203.0.$k:9990" --store "$url" \
    $(for o in 1 2 3; do [ $o = "$k" ] || echo "--api-certificate-name 10.203.0.$o"; done) > "c$k.log" 2>&1 &
  pids+=($!); disown $!
}
mkdir -p c1 && chmod 700 c1
replica 1
eventually "replica 1 ready on sl-c1" 60 on sl-c1 curl -sf -m 2 http://10.203.0.1:9990/ready
for k in 2 3; do
  mkdir -p "c$k" && chmod 700 "c$k"
  for f in admin-token token-key api.crt api.key secrets.key; do cp -p "c1/$f" "c$k/$f"; done
  replica $k
done
for k in 2 3; do eventually "replica $k ready on sl-c$k" 60 on "sl-c$k" curl -sf -m 2 "http://10.203.0.$k:9990/ready"; done
expect_ok "config add-cluster prod --server (three replicas)" \
  on sl-h1 env STARLING_CONFIG="$work/config" STARLING_HOME="$work/home" "$STARLING" config add-cluster prod \
  --server 10.203.0.1:8086,10.203.0.2:8086,10.203.0.3:8086 --ca-file c1/api.crt --token-file c1/admin-token --use
"$STARLING" certs create identity.starling.cluster.local root.crt root.key --profile root-ca --no-password --insecure >/dev/null
"$STARLING" certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca --not-after 8760h \
  --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
S install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
  --identity-issuer-key-file issuer.key --identity-issuance-lifetime 60s > install.yaml
expect_ok "install | apply, from sl-h1 (60 s workload certificates)" S apply -f install.yaml
out=$(S check 2>&1)
matches "check: 3/3 controller replicas are alive" "3/3 controller replicas are alive" "$out"

step "west: a controller on sl-w (its gateway external), linked to prod through prod's three gateways"
mkdir -p w && chmod 700 w
on sl-w "$STARLING" controller --cluster-name west --data-dir "$work/w" --api-address 10.203.0.30:8086 \
  --admin-address 10.203.0.30:9990 --gateway external > west.log 2>&1 &
pids+=($!); disown $!
eventually "west's controller ready on sl-w" 60 on sl-w curl -sf -m 2 http://10.203.0.30:9990/ready
expect_ok "config add-cluster west" on sl-w env STARLING_CONFIG="$work/config-west" STARLING_HOME="$work/home-w" \
  "$STARLING" config add-cluster west --server 10.203.0.30:8086 --ca-file w/api.crt --token-file w/admin-token --use
W install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
  --identity-issuer-key-file issuer.key > install-west.yaml
expect_ok "install | apply (west, the same trust anchors)" W apply -f install-west.yaml
S multicluster install > mc-prod.yaml && W multicluster install --gateway-address 10.203.0.40 > mc-west.yaml
matches "prod's gateway Service lists its three replicas" "gateway-address: '?10.203.0.1,10.203.0.2,10.203.0.3" "$(cat mc-prod.yaml)"
expect_ok "multicluster install (prod)" S apply -f mc-prod.yaml
expect_ok "multicluster install (west)" W apply -f mc-west.yaml
for k in 1 2 3; do eventually "replica $k serves prod's gateway on sl-c$k" 30 on sl-w curl -sf -m 2 "http://10.203.0.$k:4191/ready"; done
cp config config-prod-for-west
expect_ok "link west -> prod (from sl-w)" bash -c "ip netns exec sl-w env STARLING_CONFIG=$work/config-west '$STARLING' \
  multicluster link --cluster-name prod --config $work/config-prod-for-west > link-prod.yaml"
expect_ok "apply the Link (west)" W apply -f link-prod.yaml
matches "the Link names prod's three gateways" "10.203.0.3" "$(sed -n '/gatewayAddresses/,/gatewayIdentity/p' link-prod.yaml)"
prod_gateways_alive() { [ "$(W multicluster gateways | grep -cE '^prod +True')" = 3 ]; }
eventually "west sees prod's three gateways alive" 30 prod_gateways_alive

step "workloads on sl-h1 and sl-h2, joined with the context's replicas"
on sl-h2 env STARLING_CONFIG="$work/config" STARLING_HOME="$work/home-h2" "$STARLING" run -n test --service podinfo \
  --port 9898 --address 10.203.0.22 -- "$STARLING" demo-app podinfo --message "podinfo on sl-h2" > podinfo.log 2>&1 &
pids+=($!); disown $!
on sl-h1 env STARLING_CONFIG="$work/config" STARLING_HOME="$work/home-h1" "$STARLING" run -n test --service caller \
  --port 7001 --address 10.203.0.21 -- "$STARLING" demo-app podinfo --port 7001 --message caller > caller.log 2>&1 &
pids+=($!); disown $!
registered_on() { S get wl -n test | grep -q "^$1-"; }
eventually "podinfo (sl-h2) registered" 60 registered_on podinfo
eventually "caller (sl-h1) registered" 60 registered_on caller
call() { on sl-h1 curl -s -m 3 -x http://10.203.0.21:4140 http://podinfo.test:9898/ | grep -q "podinfo on sl-h2"; }
eventually "sl-h1 calls podinfo on sl-h2 through both proxies" 30 call
on sl-w env STARLING_CONFIG="$work/config-west" STARLING_HOME="$work/home-w" "$STARLING" run -n test --service wcaller \
  --port 7003 --address 10.203.0.31 -- "$STARLING" demo-app podinfo --port 7003 --message wcaller > wcaller.log 2>&1 &
pids+=($!); disown $!
expect_ok "export podinfo from prod" S label svc -n test podinfo mirror.starling.io/exported=true
eventually "west has the mirror podinfo-prod" 20 bash -c "ip netns exec sl-w env STARLING_CONFIG=$work/config-west '$STARLING' get svc -n test | grep -q '^podinfo-prod '"
across() { on sl-w curl -s -m 3 -x http://10.203.0.31:4140 http://podinfo-prod.test:9898/ | grep -q "podinfo on sl-h2"; }
eventually "west (sl-w) calls podinfo on sl-h2 through prod's gateways" 45 across

step "west's gateway in a process of its own on sl-g; prod calls west's wcaller through it"
W token create -n starling-multicluster --service-account starling-gateway > gateway.token
chmod 600 gateway.token
on sl-g "$STARLING" gateway --controller 10.203.0.30:8086 --controller-ca-file w/api.crt --token-file gateway.token \
  --cluster-name west --listen-address 10.203.0.40 > west-gateway.log 2>&1 &
pids+=($!); disown $!
eventually "starling gateway ready on sl-g (its own identity from west's controller)" 30 \
  on sl-h1 curl -sf -m 2 http://10.203.0.40:4191/ready
grep -qE '"?gateway (started|failed)' west.log && bad "west's controller runs a gateway although it is external" \
  || ok "west's controller serves no gateway of its own (--gateway external)"
cp config-west config-west-for-prod
expect_ok "link prod -> west (from sl-h1)" bash -c "ip netns exec sl-h1 env STARLING_CONFIG=$work/config STARLING_HOME=$work/home \
  '$STARLING' multicluster link --cluster-name west --config $work/config-west-for-prod > link-west.yaml"
matches "the Link names west's gateway on sl-g" "10.203.0.40" "$(cat link-west.yaml)"
expect_ok "apply the Link (prod)" S apply -f link-west.yaml
west_gateway_alive() { S multicluster gateways | grep -qE '^west +True'; }
eventually "prod sees west's gateway (sl-g) alive" 30 west_gateway_alive
expect_ok "export wcaller from west" W label svc -n test wcaller mirror.starling.io/exported=true
eventually "prod has the mirror wcaller-west" 30 bash -c "ip netns exec sl-h1 env STARLING_CONFIG=$work/config STARLING_HOME=$work/home '$STARLING' get svc -n test | grep -q '^wcaller-west '"
to_west() { on sl-h1 curl -sf -m 3 -x http://10.203.0.21:4140 http://wcaller-west.test:7003/ | grep -qE '"message": *"wcaller"'; }
eventually "prod (sl-h1) calls wcaller in west through the gateway on sl-g" 45 to_west
gateway_counted() { to_west; on sl-h1 curl -s -m 2 http://10.203.0.40:4191/metrics | grep -E '^starling_gateway_requests_total\{' | grep -q 'client_cluster="prod"'; }
eventually "the gateway on sl-g counts prod's requests (its /metrics)" 20 gateway_counted
sd=$(on sl-w curl -s -m 3 http://10.203.0.30:9990/prometheus/targets)
python3 -c '
import json, sys
gateways = [g["targets"] for g in json.loads(sys.argv[1]) if g["labels"].get("component") == "gateway"]
assert gateways == [["10.203.0.40:4191"]], gateways
' "$sd" && ok "west's Prometheus discovery lists the gateway on sl-g (component gateway, its probe port)" \
  || { bad "west's discovery document lists no gateway on sl-g"; echo "$sd" | show 12; }

duties() { on sl-db env PGPASSWORD=starling-test psql -h 127.0.0.1 -p $pgport -U starling -d starling_test -Atc \
  "SELECT duty || '=' || holder FROM starling_duties WHERE expires_at > now() ORDER BY duty" 2>/dev/null; }
# load SECONDS: calls from sl-h1, and from west through the gateways, for that long; sets
# ok_calls and failed_calls (both kinds together).
load() {
  ok_calls=0; failed_calls=0; local end=$((SECONDS + $1))
  while [ $SECONDS -lt $end ]; do
    if call; then ok_calls=$((ok_calls + 1)); else failed_calls=$((failed_calls + 1)); fi
    if across; then ok_calls=$((ok_calls + 1)); else failed_calls=$((failed_calls + 1)); fi
    sleep 0.1
  done
}

step "kill -9 replica 1 (sl-c1) under load, in prod and from west"
echo "      duties before: $(duties | tr '\n' ' ')"
pkill -9 -f -- "--data-dir $work/c1 "
load 12
echo "      $ok_calls calls, $failed_calls failed; duties after: $(duties | tr '\n' ' ')"
[ "$failed_calls" = 0 ] && [ "$ok_calls" -gt 0 ] && ok "no call failed after replica 1 died" || bad "$failed_calls calls failed after replica 1 died"
duties | grep -q '10.203.0.1:' && bad "a duty is still held by the dead replica" || ok "no duty is held by the dead replica"
out=$(S check 2>&1)
matches "check: 2/3 replicas alive, naming sl-c1's" "2/3 controller replicas are alive; not seen: 10.203.0.1:8086" "$out"
dead_gateway() { W multicluster gateways | grep -qE '^prod +False .*10.203.0.1:4143'; }
eventually "west sees the gateway on sl-c1 dead, the others alive" 20 dead_gateway

step "replica 2 (sl-c2) cut off from sl-db with nftables, on its own host"
on sl-c2 nft add table inet cut
on sl-c2 nft add chain inet cut out '{ type filter hook output priority 0; }'
on sl-c2 nft add rule inet cut out ip daddr 10.203.0.10 drop
load 12
echo "      $ok_calls calls, $failed_calls failed; duties: $(duties | tr '\n' ' ')"
[ "$failed_calls" = 0 ] && [ "$ok_calls" -gt 0 ] && ok "no call failed while replica 2 is cut off" || bad "$failed_calls calls failed during the cut"
all_on_3() { [ "$(duties | grep -c '=10.203.0.3:8086')" = 3 ]; }
eventually "replica 3 holds every duty" 10 all_on_3
expect_ok "apply through the context while one replica is dead and one cut off" S label svc -n test podinfo tier=web
ip -n sl-h1 addr add 10.203.0.23/24 dev eth0
# The way docs/operations.md joins a host (the systemd unit's command): a join token bound to
# the service, `starling proxy --service` with every replica, the application beside it.
printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: late, namespace: test}' \
  'spec: {selector: {app: late}, ports: [{name: http, port: 7002}]}' > late-svc.yaml
expect_ok "apply Service late (through replica 3)" S apply -f late-svc.yaml
S token create -n test --service-account late --service late > late.token && chmod 600 late.token
on sl-h1 "$STARLING" demo-app podinfo --host 127.0.0.1 --port 7002 --message late > late-app.log 2>&1 &
pids+=($!); disown $!
# (ip netns exec itself, not the `on` function: $! is then the proxy's pid, for the SIGTERM below)
ip netns exec sl-h1 "$STARLING" proxy --controller 10.203.0.1:8086,10.203.0.2:8086,10.203.0.3:8086 --controller-ca-file c1/api.crt \
  --token-file late.token -n test --service-account late --listen-address 10.203.0.23 --app-port 7002 --service late \
  --cluster-name prod > late.log 2>&1 &
late_proxy=$!; pids+=($late_proxy); disown $late_proxy
eventually "a new host joins with starling proxy --service (certificate and registration through replica 3)" 60 registered_on late
late_call() { on sl-h1 curl -s -m 3 -x http://10.203.0.21:4140 http://late.test:7002/ | grep -q late; }
eventually "the new workload answers over mTLS" 30 late_call
kill -TERM "$late_proxy"
late_gone() { ! registered_on late; }
eventually "SIGTERM deregisters it while its proxy drains" 5 late_gone || show < late.log
on sl-c2 nft delete table inet cut

echo
echo "hosts-netns e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
