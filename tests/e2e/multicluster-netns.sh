#!/usr/bin/env bash
# End to end: DESIGN.md's multicluster walkthrough (like tests/e2e/multicluster.sh) with each
# cluster in its own network namespace, joined by a router namespace whose firewall lets only the
# API port (8086) and the gateway ports (4143, 4191) of the other cluster's controller address
# through (tests/e2e/netns/topology.sh draws the topology). Every starling command runs inside its
# cluster's namespace (`ip netns exec`); nothing is added to the host's network namespace.
#
# Asserts: check passes in both clusters; links both ways; gateways alive; a workload in
# workload1 cannot reach podinfo in workload2 directly (app port, proxy port) but reaches it
# through the gateway via the mirror; the SMI 50/50 split across clusters lands within 99 %
# binomial bounds; a network partition of workload2's gateway is seen (`multicluster gateways`:
# False) and every call then lands locally without a failed request; recovery after the partition
# heals; the same after `multicluster uninstall` / install; the gateway refuses callers without a
# mesh certificate; unexport removes the mirror.
#
# Needs root, iproute2 and nftables; otherwise prints a "skipped" line. Prints
# "multicluster-netns: N passed, N failed"; exits non-zero on any failure.
#
#   tests/e2e/multicluster-netns.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
STARLING=${1:-$root/.build/debug/starling}
[ -x "$STARLING" ] || { echo "no starling binary at $STARLING (swift build first)"; exit 2; }
STARLING=$(cd "$(dirname "$STARLING")" && pwd)/$(basename "$STARLING")
# shellcheck source=netns/topology.sh
. "$here/netns/topology.sh"

skip() {
  echo "multicluster-netns: skipped: needs root and network namespaces ($*)"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
}
[ "$(id -u)" = 0 ] || skip "not root"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
command -v nft >/dev/null || skip "nft (nftables) not installed"
command -v curl >/dev/null || skip "curl not installed"
probe_ns=sl-probe-$$
err=$(ip netns add "$probe_ns" 2>&1) || skip "ip netns add failed: ${err%%$'\n'*}"
if ! err=$(ip netns exec "$probe_ns" nft add table inet probe 2>&1); then
  ip netns del "$probe_ns"; skip "nftables unusable in a network namespace: ${err%%$'\n'*}"
fi
ip netns del "$probe_ns"

work=$(mktemp -d /tmp/starling-mcns.XXXXXX)
unset STARLING_CONFIG STARLING_HOME
passed=0; failed=0; pids=()
t0=$SECONDS
ok()   { passed=$((passed + 1)); echo "  ✓ $*"; }
bad()  { failed=$((failed + 1)); echo "  × $*"; }
step() { echo; echo "== $* [$((SECONDS - t0))s]"; }
expect_ok() { local d=$1; shift; if out=$("$@" 2>&1); then ok "$d"; else bad "$d"; echo "$out" | sed 's/^/      /' | tail -15; fi; }
# eventually DESC SECONDS CMD...: the command succeeds within SECONDS
eventually() {
  local d=$1 t=$2; shift 2; local end=$((SECONDS + t))
  while [ $SECONDS -lt $end ]; do if "$@" >/dev/null 2>&1; then ok "$d"; return 0; fi; sleep 0.5; done
  bad "$d (not within ${t}s)"; "$@" 2>&1 | sed 's/^/      /' | tail -5; return 1
}
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.3
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # anything still running inside the namespaces (e.g. an app whose runner was SIGKILLed)
  local ns left
  for ns in "$NETNS_W1" "$NETNS_W2" "$NETNS_RT"; do
    left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -n "$left" ] && { echo "  (cleanup: killing leftover pids in $ns: $left)"; kill -9 $left 2>/dev/null; }
  done
  netns_down
  if [ "$failed" != 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- tail $f"; tail -20 "$f"; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

ns_of() { [ "$1" = 1 ] && echo "$NETNS_W1" || echo "$NETNS_W2"; }
# W1/W2 CMD...: starling in that cluster's namespace, with that cluster's config and home.
W() { local n=$1; shift; ip netns exec "$(ns_of "$n")" env STARLING_HOME="$work/home$n" STARLING_CONFIG="$work/configs/workload$n" "$STARLING" "$@"; }
# Wexec N CMD...: like W, replacing the calling (background) subshell, so that $! is starling's pid.
Wexec() { local n=$1; shift; exec ip netns exec "$(ns_of "$n")" env STARLING_HOME="$work/home$n" STARLING_CONFIG="$work/configs/workload$n" "$STARLING" "$@"; }
W1() { W 1 "$@"; }
W2() { W 2 "$@"; }
# IN1/IN2 CMD...: any command in that cluster's namespace.
IN1() { ip netns exec "$NETNS_W1" "$@"; }
IN2() { ip netns exec "$NETNS_W2" "$@"; }
# can_connect NS HOST PORT: a TCP connection from NS to HOST:PORT is accepted within 2 s.
can_connect() { ip netns exec "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; }
proxy1=http://10.201.1.10:4140

step "topology: $NETNS_W1 (10.201.1.0/24) ↔ $NETNS_RT ↔ $NETNS_W2 (10.201.2.0/24)"
if out=$(netns_up 2>&1); then ok "namespaces, veths, routes and the router's nftables filter"; else
  bad "topology"; echo "$out" | sed 's/^/      /'; echo; echo "multicluster-netns: $passed passed, $failed failed"; exit 1; fi

step "controllers, one per namespace"
for n in 1 2; do
  mkdir -p "data$n" "home$n"
  ip netns exec "$(ns_of $n)" "$STARLING" controller --cluster-name "workload$n" --data-dir "$work/data$n" \
    --api-address "10.201.$n.1:8086" --admin-address "10.201.$n.1:9990" > "controller$n.log" 2>&1 & pids+=($!)
done
for n in 1 2; do
  eventually "controller workload$n ready on 10.201.$n.1:9990" 60 \
    ip netns exec "$(ns_of $n)" curl -sf -m 2 "http://10.201.$n.1:9990/ready"
done
mkdir -p configs
for n in 1 2; do
  cat > "configs/workload$n" <<YAML
apiVersion: starling.io/v1alpha1
kind: Config
current-context: workload$n
contexts:
- name: workload$n
  cluster-name: workload$n
  server: 10.201.$n.1:8086
  admin-server: 10.201.$n.1:9990
  certificate-authority-data: $(base64 -w0 "data$n/api.crt")
  token: $(tr -d '[:space:]' < "data$n/admin-token")
YAML
  chmod 600 "configs/workload$n"
done

step "certificates, install, check"
"$STARLING" certs create identity.starling.cluster.local root.crt root.key --profile root-ca --no-password --insecure >/dev/null
"$STARLING" certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca --not-after 8760h \
  --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
install_mesh() { W "$1" install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
  --identity-issuer-key-file issuer.key | W "$1" apply -f -; }
install_mc() { W "$1" multicluster install --gateway-address "10.201.$1.1" | W "$1" apply -f -; }
for n in 1 2; do
  expect_ok "install (workload$n)" install_mesh $n
  eventually "check (workload$n)" 30 W $n check
  expect_ok "multicluster install --gateway-address 10.201.$n.1 (workload$n)" install_mc $n
done

step "the router lets only the API and gateway ports through"
if can_connect "$NETNS_W1" 10.201.2.1 8086 && can_connect "$NETNS_W2" 10.201.1.1 8086; then
  ok "each namespace reaches the other's API (8086)"; else bad "the API port does not cross the router"; fi
if ! can_connect "$NETNS_W1" 10.201.2.1 9990; then ok "workload1 cannot reach workload2's admin port (9990)"
else bad "workload1 reaches workload2's admin port 9990 directly"; fi

step "link both ways"
link() { W "$1" multicluster link --cluster-name "workload$2" --config "$work/configs/workload$2" | W "$1" apply -f -; }
expect_ok "link workload1 -> workload2" link 1 2
expect_ok "link workload2 -> workload1" link 2 1
gw_state() { W "$1" multicluster gateways | grep -E "^workload$2 +$3"; }
eventually "workload1 sees workload2's gateway alive" 30 gw_state 1 2 True
eventually "workload2 sees workload1's gateway alive" 30 gw_state 2 1 True
W1 multicluster gateways | sed 's/^/      /'

step "podinfo in both namespaces (10.201.N.10)"
for n in 1 2; do
  Wexec $n run -n test --service podinfo --port 9898 --address "10.201.$n.10" -- \
    "$STARLING" demo-app podinfo --message "greetings from workload$n" > "podinfo$n.log" 2>&1 & pids+=($!)
done
registered() { W "$1" get wl -n test | grep -q podinfo; }
for n in 1 2; do
  eventually "podinfo registered in workload$n" 60 registered $n
done
eventually "podinfo of workload2 answers inside $NETNS_W2" 30 IN2 curl -sf -m 2 http://10.201.2.10:9898/
eventually "workload1's proxy listens on 10.201.1.10:4140" 30 can_connect "$NETNS_W1" 10.201.1.10 4140

step "no direct path from workload1 to workload2's workloads"
direct_blocked() {  # curl from inside w1 must fail within its 2 s timeout
  local s=$SECONDS
  if IN1 curl -s -m 2 -o /dev/null "$@"; then return 1; fi
  [ $((SECONDS - s)) -le 4 ]
}
if direct_blocked http://10.201.2.10:9898/; then ok "curl 10.201.2.10:9898 (podinfo) from $NETNS_W1 fails fast"
else bad "podinfo of workload2 is reachable directly from $NETNS_W1"; fi
if ! can_connect "$NETNS_W1" 10.201.2.10 4143; then ok "10.201.2.10:4143 (its proxy) is unreachable from $NETNS_W1"
else bad "the proxy of podinfo in workload2 is reachable directly from $NETNS_W1"; fi
if direct_blocked -x http://10.201.2.10:4140 http://podinfo.test:9898/; then ok "workload2's outbound proxy is unreachable from $NETNS_W1"
else bad "workload2's outbound proxy is reachable from $NETNS_W1"; fi
dropped=$(netns_counter dropped)
if [ "${dropped:-0}" -gt 0 ]; then ok "the router's filter dropped them ($dropped packets)"
else bad "nothing was dropped by the router's filter: are the direct attempts blocked for another reason?"; fi

step "export, mirror, reach workload2 through the gateway"
expect_ok "label svc podinfo exported (workload2)" W2 label svc -n test podinfo mirror.starling.io/exported=true
mirror_present() { W1 get svc -n test | grep -q podinfo-workload2; }
start=$(date +%s%N)
if eventually "mirror podinfo-workload2 appears in workload1" 15 mirror_present; then
  echo "      export → mirror visible in $(( ($(date +%s%N) - start) / 1000000 )) ms (polled every 500 ms)"
fi
via_mesh() { IN1 curl -sf -m 5 -x "$proxy1" http://podinfo-workload2.test:9898/ | grep -q 'greetings from workload2'; }
gw_before=$(netns_counter "w1 to w2 gateway")
eventually "curl -x $proxy1 podinfo-workload2.test:9898 (in $NETNS_W1) answers from workload2" 30 via_mesh
gwaddr=$(W1 get link -n starling-multicluster workload2 -o json | python3 -c 'import json,sys; s=json.load(sys.stdin)["spec"]; print("%s:%s" % (s["gatewayAddress"], s["gatewayPort"]))')
[ "$gwaddr" = 10.201.2.1:4143 ] && ok "workload1's link names workload2's gateway 10.201.2.1:4143" || bad "workload1's link names gateway '$gwaddr', expected 10.201.2.1:4143"
gw_after=$(netns_counter "w1 to w2 gateway")
[ "${gw_after:-0}" -gt "${gw_before:-0}" ] && ok "the call crossed the router to workload2's gateway port" \
  || bad "no new connection from workload1 to workload2's gateway crossed the router ($gw_before → $gw_after)"

step "SMI split 50/50 across the clusters"
cat > split.yaml <<'YAML'
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata:
  name: podinfo
  namespace: test
spec:
  service: podinfo
  backends:
  - service: podinfo
    weight: 50
  - service: podinfo-workload2
    weight: 50
YAML
expect_ok "apply split.yaml (verbatim SMI v1alpha1)" W1 apply -f split.yaml
# calls N: N calls from inside w1 through its proxy; prints "local remote errors slow"
# (slow = failed or answered after more than 5 s).
calls() {
  IN1 bash -c '
    l=0; r=0; e=0; slow=0
    for i in $(seq '"$1"'); do
      s=$(date +%s%N)
      if body=$(curl -s -m 5 -x '"$proxy1"' http://podinfo.test:9898/); then
        case "$body" in *workload2*) r=$((r + 1));; *workload1*) l=$((l + 1));; *) e=$((e + 1));; esac
      else e=$((e + 1)); fi
      [ $(( ($(date +%s%N) - s) / 1000000 )) -gt 5000 ] && slow=$((slow + 1))
    done
    echo "$l $r $e $slow"'
}
split_live() { [ "$(calls 10 | awk '{print ($1 > 0 && $2 > 0 && $3 == 0)}')" = 1 ]; }
eventually "the split sends calls to both clusters" 15 split_live
n=400
read -r l r e slow < <(calls $n)
# 99 % two-sided binomial bounds for p = 0.5: n/2 ± 2.576·√(n/4)
read -r lo hi < <(awk -v n=$n 'BEGIN { d = 2.576 * sqrt(n / 4); printf "%d %d\n", int(n / 2 - d + 0.999), int(n / 2 + d) }')
echo "      $n calls: workload1=$l workload2=$r errors=$e (99 % bounds for workload1: [$lo, $hi])"
if [ "$e" = 0 ] && [ "$l" -ge "$lo" ] && [ "$l" -le "$hi" ]; then ok "the split lands 50/50 within 99 % binomial bounds"
else bad "the split is off: $l/$r ($e errors)"; fi

# failover DESC BREAK REPAIR: break workload2's gateway, expect it dead and every call local with
# no failed or slow request, repair it, expect recovery.
failover() {
  local what=$1 break=$2 repair_what=$3 repair=$4
  step "gateway failover: $what"
  expect_ok "$what" $break
  local s=$SECONDS
  calls 20 > transition.out &  # informational: calls while the probe has not yet seen the failure
  local caller=$!
  eventually "workload1 sees workload2's gateway dead" 25 gw_state 1 2 False && echo "      dead after $((SECONDS - s)) s"
  wait $caller; read -r l r e slow < transition.out
  echo "      (info) 20 calls during detection: local=$l workload2=$r failed=$e slow=$slow"
  W1 multicluster gateways | sed 's/^/      /'
  read -r l r e slow < <(calls 50)
  if [ "$e" = 0 ] && [ "$r" = 0 ] && [ "$slow" = 0 ]; then ok "all 50 calls land locally, none failed or slower than 5 s"
  else bad "while the gateway is dead: $r calls went to workload2, $e failed, $slow slow (local: $l)"; fi
  expect_ok "$repair_what" $repair
  eventually "workload1 sees workload2's gateway alive again" 30 gw_state 1 2 True
  remote_again() { [ "$(calls 10 | awk '{print $2}')" -gt 0 ]; }
  eventually "calls reach workload2 again" 30 remote_again
}
partition() { netns_partition; }
heal() { netns_heal; }
uninstall2() { W2 multicluster uninstall >/dev/null; }
reinstall2() { install_mc 2 >/dev/null; }
failover "partition: the router drops 4143/4191 of workload2's gateway" partition "heal the partition" heal
failover "multicluster uninstall (workload2)" uninstall2 "multicluster install (workload2)" reinstall2

step "the gateway forwards only callers with a mesh certificate"
if command -v curl >/dev/null; then
  # curl sends a request once the handshake is done and reads the answer, so it usually sees the
  # alert the gateway sends (in TLS 1.3, after the client's Finished), or the reset when the
  # gateway's close comes first (curl's request still unread). Either way nothing is served.
  out=$(IN1 curl -sS -k --http2 -m 10 "https://10.201.2.1:4143/" 2>&1); rc=$?
  if [ $rc != 0 ] && grep -qiE "alert (certificate required|handshake failure|bad certificate)|errno 107|reset by peer" <<<"$out"; then
    ok "the gateway refuses a caller from $NETNS_W1 without a mesh certificate"
  else bad "the gateway accepted a caller without a mesh certificate"; echo "$out" | sed 's/^/      /' | tail -12; fi
fi

step "unexport"
expect_ok "unlabel (workload2)" W2 label svc -n test podinfo mirror.starling.io/exported-
mirror_absent() { W1 get svc -n test >/dev/null && ! mirror_present; }
eventually "mirror podinfo-workload2 is gone from workload1 within 3 s" 3 mirror_absent

echo
echo "multicluster-netns: $passed passed, $failed failed [$((SECONDS - t0))s]"
[ "$failed" = 0 ]
