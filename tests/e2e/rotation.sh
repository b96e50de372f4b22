#!/usr/bin/env bash
# End to end: the credentials that expire in production, replaced under steady load, in one
# cluster and across two linked clusters, with no failed request:
#   1. workload certificates of 60 s lifetime renew continuously (ROTATION_SECONDS, default 60;
#      600 for the published figure);
#   2. the issuer is replaced (same root);
#   3. the trust anchor rolls over in both clusters: old + new root bundled → an issuer signed by
#      the new root → every proxy renewed → the old root removed; `check` names each phase;
#   4. the link credentials (90 s) are renewed by the controllers at two thirds of their lifetime.
# At each step a workload started then reaches podinfo in both clusters (new handshakes with the
# new chain). Prints "N passed, N failed"; exits non-zero on any failure.
#
#   tests/e2e/rotation.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
e2e_binary "${1:-}"
e2e_home starling-rotation
soak=${ROTATION_SECONDS:-60}
trust=identity.starling.cluster.local
cleanup() {
  [ -n "${loadpid:-}" ] && kill "$loadpid" 2>/dev/null
  stop_workloads
  for c in rot1 rot2; do
    [ -f "$STARLING_HOME/clusters/$c/controller.log" ] && cp "$STARLING_HOME/clusters/$c/controller.log" "$work/$c-controller.log"
    "$STARLING" cluster delete "$c" >/dev/null 2>&1
  done
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"
S() { timeout 60 "$STARLING" "$@"; }
R1() { STARLING_CONFIG=$work/rot1.conf timeout 60 "$STARLING" "$@"; }
R2() { STARLING_CONFIG=$work/rot2.conf timeout 60 "$STARLING" "$@"; }
both() { R1 "$@" && R2 "$@"; }

# install_identity ANCHORS ISSUER: installs the identity in both clusters (60 s certificates).
install_identity() {
  local c
  for c in R1 R2; do
    $c install --identity-trust-anchors-file "$1" --identity-issuer-certificate-file "$2.crt" \
      --identity-issuer-key-file "$2.key" --identity-issuance-lifetime 60s | $c apply -f - >/dev/null || return 1
  done
}
# new_issuer NAME ROOT: an intermediate CA signed by ROOT (NAME.crt, NAME.key)
new_issuer() {
  S certs create "$trust" "$1.crt" "$1.key" --profile intermediate-ca --not-after 8760h \
    --no-password --insecure --ca "$2.crt" --ca-key "$2.key" >/dev/null
}
new_root() { S certs create "$trust" "$1.crt" "$1.key" --profile root-ca --no-password --insecure >/dev/null; }

step "two clusters with one root, 60 s workload certificates, linked both ways with 90 s credentials"
expect_ok "cluster create rot1" S cluster create rot1 --address-range 127.72.0.0/16
expect_ok "cluster create rot2" S cluster create rot2 --address-range 127.73.0.0/16
S cluster credentials rot1 --export-file rot1.conf >/dev/null
S cluster credentials rot2 --export-file rot2.conf >/dev/null
new_root root-a
new_issuer issuer-a root-a
expect_ok "install both (root A, issuer A, 60 s certificates)" install_identity root-a.crt issuer-a
for c in R1 R2; do $c multicluster install | $c apply -f - >/dev/null; done
expect_ok "link rot1 -> rot2 (credential 90 s)" bash -c "STARLING_CONFIG=$work/rot1.conf '$STARLING' multicluster link --cluster-name rot2 --config $work/rot2.conf --credential-ttl 90s | STARLING_CONFIG=$work/rot1.conf '$STARLING' apply -f -"
expect_ok "link rot2 -> rot1 (credential 90 s)" bash -c "STARLING_CONFIG=$work/rot2.conf '$STARLING' multicluster link --cluster-name rot1 --config $work/rot1.conf --credential-ttl 90s | STARLING_CONFIG=$work/rot2.conf '$STARLING' apply -f -"
token_of() { STARLING_CONFIG=$work/$1.conf timeout 30 "$STARLING" get secret -n starling-multicluster "cluster-credentials-$2" -o json |
  python3 -c 'import json,sys,base64; print(base64.b64decode(json.load(sys.stdin)["data"]["token"]).decode())'; }
link_token_1=$(token_of rot1 rot2)
link_token_2=$(token_of rot2 rot1)
linked_at=$SECONDS
step "podinfo in both clusters (exported), a caller in each"
for c in rot1 rot2; do
  STARLING_CONFIG=$work/$c.conf start_workload podinfo-$c.log --log-level info -n test --service podinfo --port 9898 -- \
    "$STARLING" demo-app podinfo --message "from $c"
  STARLING_CONFIG=$work/$c.conf start_workload caller-$c.log --log-level info -n test --service caller --port 7001 -- \
    "$STARLING" demo-app podinfo --port 7001 --message caller
done
a1=$(address_of caller-rot1.log) || { bad "rot1's caller never started"; show < caller-rot1.log; }
a2=$(address_of caller-rot2.log) || { bad "rot2's caller never started"; show < caller-rot2.log; }
registered_in() { STARLING_CONFIG=$work/$1.conf timeout 30 "$STARLING" get wl -n test | grep -q "^$2-"; }
for c in rot1 rot2; do eventually "podinfo registered in $c" 45 registered_in $c podinfo; done
expect_ok "export podinfo from both" both label svc -n test podinfo mirror.starling.io/exported=true
# call PROXY_ADDRESS SERVICE CLUSTER: one request through that proxy, answered by CLUSTER's podinfo
call() { curl -s -m 3 -x "http://$1:4140" "http://$2.test:9898/" | grep -q "from $3"; }
eventually "rot1's caller reaches podinfo-rot2 through rot2's gateway" 30 call "$a1" podinfo-rot2 rot2
eventually "rot2's caller reaches podinfo-rot1 through rot1's gateway" 30 call "$a2" podinfo-rot1 rot1

# Steady load for the whole test: each caller calls its own cluster's podinfo and the other's,
# a new client connection each time; one line per call.
load() {
  while true; do
    for spec in "$a1 podinfo rot1" "$a1 podinfo-rot2 rot2" "$a2 podinfo rot2" "$a2 podinfo-rot1 rot1"; do
      set -- $spec
      if call "$1" "$2" "$3"; then echo "$SECONDS ok $2@$1"; else echo "$SECONDS fail $2@$1"; fi
    done
    sleep 0.05
  done
}
: > load.log   # before the background job opens it: `mark` may run first
load >> load.log 2>&1 &
loadpid=$!
# load_report FROM_LINE: calls and failures logged since line FROM_LINE
load_report() { tail -n +"$1" load.log | awk '{n++} $2 == "fail" {f++; w[$3]++} END {printf "%d calls, %d failed", n, f; for (k in w) printf " (%s: %d)", k, w[k]}'; }
load_ok() { tail -n +"$1" load.log | awk '$2 == "fail" {f++} END {exit f > 0}'; }
mark() { wc -l < load.log; }

# newcomer NAME CLUSTER: a workload started now (certificate from the current chain) reaches
# podinfo in both clusters: new connections, new handshakes.
newcomer() {
  local name=$1 c=$2 other a
  other=$([ "$c" = rot1 ] && echo rot2 || echo rot1)
  STARLING_CONFIG=$work/$c.conf start_workload "$name.log" -n test --service "$name" --port 7002 -- \
    "$STARLING" demo-app podinfo --port 7002 --message "$name"
  a=$(address_of "$name.log") || { bad "$name never started"; show < "$name.log"; return 1; }
  eventually "a workload started now ($name in $c) reaches podinfo in $c" 30 call "$a" podinfo "$c"
  eventually "…and podinfo-$other through $other's gateway" 30 call "$a" "podinfo-$other" "$other"
}

# check_says CONTEXT PATTERN: `check` of that cluster prints PATTERN
check_says() { STARLING_CONFIG=$work/$1.conf timeout 30 "$STARLING" check 2>&1 | grep -qE -- "$2"; }
# check_lacks CLUSTER PATTERN: check ran (it reports the trust anchors) and says nothing matching
check_lacks() {
  local out; out=$(STARLING_CONFIG=$work/$1.conf timeout 30 "$STARLING" check 2>&1)
  grep -q "trust anchor" <<<"$out" && ! grep -qE -- "$2" <<<"$out"
}
# renewals LOG: how many times the proxy of that workload renewed its certificate
renewals() { grep -c 'workload certificate renewed' "$1"; }

step "1. 60 s workload certificates renew under load for ${soak} s"
m=$(mark)
r0=$(renewals caller-rot1.log)
sleep "$soak"
r1=$(renewals caller-rot1.log)
echo "      load: $(load_report "$m"); rot1's caller renewed $((r1 - r0)) times"
# A 60 s certificate (notBefore 60 s back) renews at 70 % of its 120 s span: every ~24 s.
want=$(( soak / 30 )); [ $want -ge 1 ] || want=1
[ $((r1 - r0)) -ge $want ] && ok "certificates renewed $((r1 - r0)) times in ${soak} s (every ~24 s)" || bad "only $((r1 - r0)) renewals in ${soak} s (expected $want)"
load_ok "$m" && ok "no call failed while certificates renewed" || bad "calls failed while certificates renewed"

step "2. the issuer replaced (same root) in both clusters"
m=$(mark)
new_issuer issuer-b root-a
expect_ok "install issuer B in both" install_identity root-a.crt issuer-b
eventually "rot1's check warns while proxies hold issuer A's certificates" 10 check_says rot1 "from a previous issuer"
# A gateway sends no heartbeat: check counts the certificate its controller issued it
# (RolloverCheckTests), so "every proxy" below includes the gateways.
eventually "every proxy and gateway of rot1 holds issuer B's certificate" 60 check_lacks rot1 'previous issuer'
eventually "every proxy and gateway of rot2 holds issuer B's certificate" 60 check_lacks rot2 'previous issuer'
newcomer new-b rot1
echo "      load: $(load_report "$m")"
load_ok "$m" && ok "no call failed while the issuer was replaced" || bad "calls failed while the issuer was replaced"

step "3a. trust anchor rollover, phase 1: roots A and C trusted, issuer B (root A) still signs"
m=$(mark)
new_root root-c
cat root-a.crt root-c.crt > bundle.crt
expect_ok "install the bundle A+C with issuer B in both" install_identity bundle.crt issuer-b
for c in rot1 rot2; do
  eventually "$c's check: rollover phase 1 of 3" 10 check_says $c "phase 1 of 3"
  eventually "$c's check: every proxy trusts both roots" 60 check_says $c "trusts all 2 roots"
done
newcomer new-c1 rot2
echo "      load: $(load_report "$m")"
load_ok "$m" && ok "no call failed in phase 1" || bad "calls failed in phase 1"

step "3b. phase 2: an issuer signed by root C"
m=$(mark)
new_issuer issuer-c root-c
expect_ok "install the bundle A+C with issuer C in both" install_identity bundle.crt issuer-c
for c in rot1 rot2; do
  eventually "$c's check: rollover phase 2 of 3" 10 check_says $c "phase 2 of 3"
  eventually "$c's check: every proxy holds a certificate from issuer C" 60 check_says $c "holds a certificate from the new issuer"
done
newcomer new-c2 rot1
echo "      load: $(load_report "$m")"
load_ok "$m" && ok "no call failed in phase 2" || bad "calls failed in phase 2"

step "3c. phase 3: root A removed"
m=$(mark)
expect_ok "install root C alone with issuer C in both" install_identity root-c.crt issuer-c
for c in rot1 rot2; do
  eventually "$c's check: one root, no rollover in progress" 10 check_says $c "one root, no rollover in progress"
  eventually "$c's check: no proxy trusts other roots" 60 check_lacks $c 'trust other roots'
done
newcomer new-c3 rot2
# A certificate from the old chain is refused now: the old root is gone everywhere.
out=$(R1 check 2>&1)
matches "rot1's check passes after the rollover" "identity is configured" "$out"
echo "      load: $(load_report "$m")"
load_ok "$m" && ok "no call failed in phase 3" || bad "calls failed in phase 3"

step "4. link credentials (90 s) renewed by the controllers at two thirds of their lifetime"
left=$((65 - (SECONDS - linked_at)))
[ $left -gt 0 ] && sleep $left
renewed() { [ "$(token_of "$1" "$2")" != "$3" ]; }
eventually "rot1 renewed its credential for rot2" 20 renewed rot1 rot2 "$link_token_1"
eventually "rot2 renewed its credential for rot1" 20 renewed rot2 rot1 "$link_token_2"
grep -h "link credential renewed" "$work"/home/clusters/rot*/controller.log 2>/dev/null | head -2 | show 2
out=$(R1 check --multicluster 2>&1)
matches "rot1's check --multicluster: the credential is valid and renews" "link credential valid for" "$out"
if grep -q "renewal failed" <<<"$out"; then bad "check reports a failed renewal"; echo "$out" | show; else ok "check reports no failed renewal"; fi
eventually "the mirror still follows rot2 with the renewed credential" 20 bash -c "STARLING_CONFIG=$work/rot1.conf timeout 30 '$STARLING' multicluster gateways | grep -qE '^rot2 +True'"

step "the whole run"
kill "$loadpid" 2>/dev/null; loadpid=""
echo "      load over the whole test: $(load_report 1)"
load_ok 1 && ok "no call failed over the whole test" || bad "calls failed"
calls=$(wc -l < load.log)
[ "$calls" -gt 200 ] && ok "the load ran all along ($calls calls)" || bad "only $calls calls were made"

echo
echo "rotation e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
