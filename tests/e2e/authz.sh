#!/usr/bin/env bash
# End to end: authorization policy on one local cluster (az1, 127.74.0.0/16, loopback only), with
# real clients through real proxies: curl gets 200 for the allowed identity and 403 (reason in
# starling-error) for another, a forged gateway header changes nothing, grpcio gets
# PERMISSION_DENIED, audit mode lets through and counts, psql over an opaque binding is refused
# before PostgreSQL sees a connection, a policy applied under load fails only what it now denies,
# `starling authz` and `starling check` show the policy. Prints "authz e2e: N passed, N failed".
#
#   tests/e2e/authz.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dp=$here/data-plane
. "$here/lib.sh"
e2e_binary "${1:-}"

cluster=az1
range=127.74.0.0/16
pg_addr=127.74.200.1
trust=identity.starling.cluster.local
e2e_home starling-authz
skipped=0
skip() { skipped=$((skipped + 1)); echo "  - $*"; }
cleanup() {
  [ -n "${load_stop:-}" ] && touch "$load_stop"
  stop_workloads
  [ -n "${pgdir:-}" ] && { (cd / && su postgres -c "$pgbin/pg_ctl -D $pgdir stop -m immediate") >/dev/null 2>&1; rm -rf "$pgdir"; }
  "$STARLING" cluster delete "$cluster" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"
S() { timeout 30 "$STARLING" "$@"; }

step "cluster $cluster ($range), mesh installed"
expect_ok "cluster create $cluster --address-range $range" S cluster create "$cluster" --address-range "$range"
S certs create "$trust" root.crt root.key --profile root-ca --no-password --insecure >/dev/null
S certs create "$trust" issuer.crt issuer.key --profile intermediate-ca --not-after 8760h \
  --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
expect_ok "install | apply" bash -c "timeout 30 '$STARLING' install --identity-trust-anchors-file root.crt \
  --identity-issuer-certificate-file issuer.crt --identity-issuer-key-file issuer.key | timeout 30 '$STARLING' apply -f -"

step "workloads"
start_workload podinfo.log -n test --service podinfo --service-account podinfo --port 9898 --log-level info -- \
  "$STARLING" demo-app podinfo --message "podinfo in az1"
start_workload frontend.log -n test --service frontend --service-account frontend --port 7001 -- sleep 100000
start_workload curl.log -n test --service curl --service-account curl --port 7003 -- sleep 100000
start_workload greeter.log -n test --service greeter --service-account greeter --port 50051 --log-level info -- \
  python3 "$dp/greeter.py" serve
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$pgbin" ] && command -v psql >/dev/null && id postgres >/dev/null 2>&1; then
  pgdir=$(mktemp -d /tmp/starling-az-pg.XXXXXX); chown postgres "$pgdir"
  if (cd / && su postgres -c "$pgbin/initdb -D $pgdir -A trust >/dev/null 2>&1") && \
     (cd / && su postgres -c "timeout 30 $pgbin/pg_ctl -D $pgdir -w -o '-p 5434 -k $pgdir -c listen_addresses=$pg_addr -c log_connections=on' -l $pgdir/log start >/dev/null"); then
    start_workload postgres.log -n db --service postgres --service-account postgres --port 5434 --address "$pg_addr" \
      --app-protocol opaque -- sleep 100000
    start_workload psql-client.log -n db --service psql-client --service-account psql-client --port 7002 \
      --outbound-tcp postgres.db:5434=127.0.0.1:15440 -- sleep 100000
  else
    bad "PostgreSQL did not start"; tail -5 "$pgdir/log" 2>/dev/null | show
  fi
fi
faddr=$(address_of frontend.log) || { bad "the frontend workload never started"; show < frontend.log; }
caddr=$(address_of curl.log) || { bad "the curl workload never started"; show < curl.log; }
paddr=$(address_of podinfo.log) || { bad "podinfo never started"; show < podinfo.log; }
gaddr=$(address_of greeter.log) || { bad "greeter never started"; show < greeter.log; }
for w in podinfo frontend curl greeter; do eventually "$w registered" 45 registered test "$w"; done
frontend_id=frontend.test.serviceaccount.$trust
curl_id=curl.test.serviceaccount.$trust
podinfo_wl=$(S get wl -n test | awk '/^podinfo-/ {print $1; exit}')

# status FROM_ADDR [CURL ARGS...]: the HTTP status of GET http://podinfo.test:9898/ through FROM's proxy
status() { local from=$1; shift; curl -s -o /dev/null -m 5 -w '%{http_code}' -x "http://$from:4140" "$@" http://podinfo.test:9898/; }

step "1. no policy: the default (all-unauthenticated) admits everyone"
eventually "frontend → podinfo 200" 20 test "$(status "$faddr")" = 200
[ "$(status "$caddr")" = 200 ] && ok "curl → podinfo 200" || bad "curl → podinfo $(status "$caddr")"

step "2. a Server for podinfo's port, admitting only frontend's service account"
podinfo_policy_yaml http frontend > podinfo-policy.yaml
expect_ok "apply Server, MeshTLSAuthentication, AuthorizationPolicy" S apply -f podinfo-policy.yaml
t0=$(date +%s.%N)
eventually "curl → podinfo now 403" 5 test "$(status "$caddr")" = 403
echo "      (in force after $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$t0" "$(date +%s.%N)") s)"
[ "$(status "$faddr")" = 200 ] && ok "frontend → podinfo still 200" || bad "frontend → podinfo $(status "$faddr")"
hdr=$(curl -s -D - -o /dev/null -m 5 -x "http://$caddr:4140" http://podinfo.test:9898/ | tr -d '\r')
matches "the 403 names the reason in starling-error" "^starling-error: forbidden: no authorization of server test/podinfo-http admits $curl_id" "$hdr"
code=$(status "$caddr" -H "starling-forwarded-client-id: $frontend_id" -H "starling-forwarded-client-cluster: $cluster" -H "starling-client-cluster: $cluster")
[ "$code" = 403 ] && ok "curl forging the gateway's caller headers is judged as itself: 403" || bad "forged gateway headers → $code"
lines=$(grep -c '"request denied"\|request denied' podinfo.log)
[ "$lines" -ge 1 ] && ok "podinfo's proxy logged the denials ($lines lines)" || { bad "no 'request denied' in podinfo's log"; show < podinfo.log; }
m=$(curl -s -m 5 "http://$paddr:4191/metrics")
matches "inbound_http_authz_allow_total counts frontend's calls by server and policy" \
  'inbound_http_authz_allow_total\{[^}]*policy="test/podinfo-from-frontend"[^}]*server="test/podinfo-http"[^}]*\} [1-9]|inbound_http_authz_allow_total\{[^}]*server="test/podinfo-http"[^}]*policy="test/podinfo-from-frontend"[^}]*\} [1-9]' "$m"
matches "inbound_http_authz_deny_total counts curl's" 'inbound_http_authz_deny_total\{[^}]*server="test/podinfo-http"[^}]*\} [1-9]' "$m"

step "3. starling get, starling authz and starling check"
out=$(S get servers -n test 2>&1)
matches "get servers: port, selector, protocol and access policy" 'podinfo-http +http +app=podinfo +HTTP/1 +deny' "$out"
out=$(S get authorizationpolicies -n test 2>&1)
matches "get authorizationpolicies: target and authentications" 'podinfo-from-frontend +Server/podinfo-http +MeshTLSAuthentication/frontend-only' "$out"
out=$(S authz "$podinfo_wl" -n test 2>&1)
matches "authz prints the server, its policy and who it admits" "test/podinfo-http +4143,9898 +\* +test/podinfo-from-frontend +$frontend_id" "$out"
matches "…what no authorization admits, and the default for other ports" 'accessPolicy: deny +denied' "$out"
out=$(S authz "$podinfo_wl" -n test -o json 2>&1)
if python3 -c 'import json,sys; p=json.loads(sys.argv[1]); assert p["servers"][0]["authorizations"][0]["policy"]=="test/podinfo-from-frontend"' "$out" 2>/dev/null; then
  ok "authz -o json is the policy document"; else bad "authz -o json"; echo "$out" | show; fi
expect_fail "authz of a workload that does not exist says so" "no workload nope in namespace test" S authz nope -n test

step "4. gRPC: a Server with no authorization denies, PERMISSION_DENIED; audit lets through"
cat > greeter-server.yaml <<YAML
apiVersion: policy.starling.io/v1beta1
kind: Server
metadata: {name: greeter-grpc, namespace: test}
spec: {podSelector: {matchLabels: {app: greeter}}, port: 50051, proxyProtocol: gRPC}
YAML
expect_ok "apply Server greeter-grpc (no AuthorizationPolicy)" S apply -f greeter-server.yaml
call() { timeout 30 python3 "$dp/greeter.py" call --target "$caddr:4140" --authority greeter.test:50051 --name authz "$@" 2>&1; }
eventually "grpcio SayHello → PERMISSION_DENIED" 10 call --expect-code PERMISSION_DENIED
out=$(call --expect-code PERMISSION_DENIED)
matches "…with the reason as the status message" "status=PERMISSION_DENIED details='no authorization of server test/greeter-grpc" "$out"
out=$(S check 2>&1)
matches "check warns that no AuthorizationPolicy reaches greeter-grpc" 'Server test/greeter-grpc: no AuthorizationPolicy reaches it' "$out"
sed -i 's/proxyProtocol: gRPC}/proxyProtocol: gRPC, accessPolicy: audit}/' greeter-server.yaml
expect_ok "set accessPolicy: audit" S apply -f greeter-server.yaml
eventually "audit: SayHello succeeds" 10 call
eventually "…the greeter's proxy logged 'audit: would deny'" 10 grep -q 'audit: would deny' greeter.log
m=$(curl -s -m 5 "http://$gaddr:4191/metrics")
matches "…and counted it in inbound_http_authz_would_deny_total" 'inbound_http_authz_would_deny_total\{[^}]*server="test/greeter-grpc"[^}]*\} [1-9]' "$m"
matches "…as an allowed call (policy server:audit)" 'inbound_http_authz_allow_total\{[^}]*policy="server:audit"[^}]*\} [1-9]' "$m"

step "5. opaque TCP: psql refused before PostgreSQL sees a connection"
if [ -z "${pgdir:-}" ]; then
  skip "skipped: PostgreSQL server not installed (apt-get install postgresql)"
else
  eventually "postgres registered" 45 registered db postgres
  psql_ok() { PGCONNECT_TIMEOUT=5 timeout 10 psql -h 127.0.0.1 -p 15440 -U postgres -At -c "select 'authz-ok'" 2>&1 | grep -q '^authz-ok$'; }
  eventually "psql through postgres.db:5434 works without a policy" 30 psql_ok
  cat > pg-server.yaml <<YAML
apiVersion: policy.starling.io/v1beta1
kind: Server
metadata: {name: postgres, namespace: db}
spec: {podSelector: {matchLabels: {app: postgres}}, port: 5434, proxyProtocol: opaque}
YAML
  expect_ok "apply Server postgres (no AuthorizationPolicy)" S apply -f pg-server.yaml
  sleep 1
  before=$(grep -c 'connection received' "$pgdir/log")
  if psql_ok; then bad "psql still connects with a Server that admits nobody"; else ok "psql is refused"; fi
  after=$(grep -c 'connection received' "$pgdir/log")
  [ "$after" = "$before" ] && ok "PostgreSQL saw no connection from the refused psql (log_connections)" \
    || bad "PostgreSQL logged $((after - before)) connection(s) from a refused client"
  cat > pg-policy.yaml <<YAML
apiVersion: policy.starling.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: postgres-clients, namespace: db}
spec:
  targetRef: {group: policy.starling.io, kind: Server, name: postgres}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: psql-client}]
YAML
  expect_ok "apply an AuthorizationPolicy admitting psql-client's service account" S apply -f pg-policy.yaml
  eventually "psql works again" 10 psql_ok
fi

step "6. a policy applied under load fails only what it now denies"
cat > both.yaml <<YAML
apiVersion: policy.starling.io/v1beta1
kind: MeshTLSAuthentication
metadata: {name: frontend-only, namespace: test}
spec:
  identities: [$frontend_id, $curl_id]
YAML
expect_ok "admit curl too" S apply -f both.yaml
eventually "curl → podinfo 200 again" 10 test "$(status "$caddr")" = 200
load_stop=$work/load.stop
python3 "$dp/traffic.py" load --proxy "$faddr:4140" --url http://podinfo.test:9898/ --rate 50 --stop-file "$load_stop" > load-frontend.out 2>&1 &
lf=$!
python3 "$dp/traffic.py" load --proxy "$caddr:4140" --url http://podinfo.test:9898/ --rate 50 --stop-file "$load_stop" > load-curl.out 2>&1 &
lc=$!
sleep 3
expect_ok "under load: apply the frontend-only authentication again" S apply -f podinfo-policy.yaml
sleep 3
touch "$load_stop"; wait $lf $lc
fo=$(cat load-frontend.out); co=$(cat load-curl.out)
echo "$fo" | show 4; echo "$co" | show 4
matches "frontend's load: no request failed" '^requests [0-9]+ failed 0$' "$fo"
total=$(sed -n 's/^requests \([0-9]*\) failed.*/\1/p' <<<"$co"); refused=$(sed -n 's/.* failed \([0-9]*\)$/\1/p' <<<"$co")
others=$(grep -E '^ +[0-9]+ x ' <<<"$co" | grep -v ' x 403 forbidden' | grep -v 'slower than')
if [ -n "$refused" ] && [ "$refused" -gt 0 ] && [ "$refused" -lt "$total" ] && [ -z "$others" ]; then
  ok "curl's load: $((total - refused)) answered before the change, $refused refused with 403 after, nothing else failed"
else bad "curl's load under the change: $co"; fi
load_stop=""

step "7. the default inbound policy of a workload (starling run --default-inbound-policy deny)"
start_workload locked.log -n test --service locked --service-account locked --port 9898 --default-inbound-policy deny -- \
  "$STARLING" demo-app podinfo --message locked
eventually "locked registered" 45 registered test locked
eventually "a call to a workload whose default is deny → 403" 10 \
  test "$(curl -s -o /dev/null -m 5 -w '%{http_code}' -x "http://$faddr:4140" http://locked.test:9898/)" = 403
out=$(S authz "$(S get wl -n test | awk '/^locked-/ {print $1; exit}')" -n test 2>&1)
matches "authz shows the workload's own default" 'default +other ports +\* +deny \(workload\)' "$out"

echo
echo "authz e2e: $passed passed, $failed failed${skipped:+, $skipped skipped}"
[ "$failed" = 0 ]
