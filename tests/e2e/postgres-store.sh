#!/usr/bin/env bash
# End to end: a cluster whose controller keeps its resources in PostgreSQL (Debian's server,
# started here with password authentication) — the mesh works on it, a second controller replica
# on the same database serves the same resources, the data plane rides out a database outage
# while apply says plainly why it fails, and bad settings (a wrong password, another cluster's
# database) are refused at start. Prints "N passed, N failed"; exits non-zero on any failure.
#
#   tests/e2e/postgres-store.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
e2e_binary "${1:-}"

echo; echo "== PostgreSQL store"
e2e_needs_postgres postgres-store
e2e_home starling-pge2e
cluster=pgc
range=127.63.0.0/16
ctl=127.63.0.1
pgport=25433
trust=identity.starling.cluster.local
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_as_owner() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "cd /tmp && $*"; else sh -c "$*"; fi; }
pg_stop() { pg_as_owner "$pgbin/pg_ctl -D '$work/pg/data' -m fast stop" >/dev/null 2>&1; }
pg_start() {
  pg_as_owner "$pgbin/pg_ctl -D '$work/pg/data' -w -o \"-p $pgport -k '$work/pg' -c listen_addresses=127.0.0.1 -c fsync=off\" -l '$work/pg/server.log' start" >/dev/null
}
cleanup() {
  stop_workloads
  cp "$STARLING_HOME/clusters/$cluster/controller.log" "$work/" 2>/dev/null
  "$STARLING" cluster delete "$cluster" >/dev/null 2>&1
  "$root/scripts/postgres-test-server.sh" stop "$work/pg" >/dev/null 2>&1
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"
S() { timeout 60 "$STARLING" "$@"; }

step "a PostgreSQL server with password authentication"
if ! base=$("$root/scripts/postgres-test-server.sh" start "$work/pg" $pgport 2>&1); then
  bad "PostgreSQL starts"; echo "$base" | show
  echo; echo "postgres-store e2e: $passed passed, $failed failed"; exit 1
fi
ok "PostgreSQL listens on 127.0.0.1:$pgport"
url=${base%/*}/starling_e2e
PGPASSWORD=starling-test psql -h 127.0.0.1 -p $pgport -U starling -d postgres -qc "CREATE DATABASE starling_e2e" >/dev/null

step "cluster $cluster on PostgreSQL, mesh installed, workloads"
expect_ok "cluster create $cluster --store postgres://…" S cluster create "$cluster" --address-range "$range" --store "$url"
grep -q "store=postgres://starling@127.0.0.1:$pgport/starling_e2e" "$STARLING_HOME/clusters/$cluster/controller.log" \
  && ok "the controller logs its store without the password" || bad "the controller log does not name the PostgreSQL store"
grep -q "starling-test" "$STARLING_HOME/clusters/$cluster/controller.log" && bad "the password is in the controller log" \
  || ok "the password is not in the controller log"
S certs create "$trust" root.crt root.key --profile root-ca --no-password --insecure >/dev/null
S certs create "$trust" issuer.crt issuer.key --profile intermediate-ca --not-after 8760h \
  --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
expect_ok "install | apply" bash -c "timeout 30 '$STARLING' install --identity-trust-anchors-file root.crt \
  --identity-issuer-certificate-file issuer.crt --identity-issuer-key-file issuer.key | timeout 30 '$STARLING' apply -f -"
tables=$(PGPASSWORD=starling-test psql -h 127.0.0.1 -p $pgport -U starling -d starling_e2e -Atc \
  "SELECT count(*) FROM starling_resources" 2>&1)
[ "${tables:-0}" -gt 0 ] 2>/dev/null && ok "the resources are rows in PostgreSQL ($tables)" || bad "no resources in PostgreSQL: $tables"
# The issuer's key went in as a Secret: a dump of the database must not hold it, in PEM or base64.
dump=$(PGPASSWORD=starling-test pg_dump -h 127.0.0.1 -p $pgport -U starling starling_e2e 2>&1)
pem_line=$(sed -n 2p issuer.key); b64_head=$(base64 -w0 issuer.key | cut -c1-40)
if grep -q "sealed:v1:" <<<"$dump" && ! grep -qF -- "$pem_line" <<<"$dump" && ! grep -qF -- "$b64_head" <<<"$dump" \
  && ! grep -q "PRIVATE KEY" <<<"$dump"; then
  ok "pg_dump holds the issuer's key only sealed (AES-GCM), never in PEM or base64"
else bad "the issuer's key is readable in pg_dump"; grep -n "PRIVATE KEY\|$b64_head" <<<"$dump" | show 3; fi
[ "$(stat -c %a "$STARLING_HOME/clusters/$cluster/data/secrets.key")" = 600 ] && ok "the secrets key file is 0600" \
  || bad "secrets.key mode is $(stat -c %a "$STARLING_HOME/clusters/$cluster/data/secrets.key" 2>&1)"
step "a second controller replica on the same database; contexts and proxies list both"
cp -r "$STARLING_HOME/clusters/$cluster/data" replica-data
"$STARLING" controller --cluster-name "$cluster" --data-dir "$work/replica-data" --api-address $ctl:8087 \
  --admin-address $ctl:9991 --store "$url" > replica.log 2>&1 & pids+=($!); disown $!
eventually "replica 2 is ready" 30 curl -sf http://$ctl:9991/ready
S cluster credentials "$cluster" --export-file config1 >/dev/null
sed "s/$ctl:8086/$ctl:8087/" config1 > config2
sed "s/server: $ctl:8086/server: $ctl:8086,$ctl:8087/" config1 > both
grep -q "$ctl:8086,$ctl:8087" both && ok "a context that lists both replicas" || { bad "no context with both replicas"; show < both; }
export STARLING_CONFIG=$work/both
R2() { STARLING_CONFIG=$work/config2 timeout 30 "$STARLING" "$@"; }
out=$(R2 get meshconfig 2>&1)
grep -q mesh <<<"$out" && ok "replica 2 serves what replica 1 applied" || { bad "replica 2 does not serve the mesh config"; echo "$out" | show; }
printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: written-on-replica-2, namespace: test}' \
  'spec: {selector: {app: nothing}, ports: [{name: http, port: 80}]}' > extra.yaml
expect_ok "apply through replica 2" R2 apply -f extra.yaml
out=$(STARLING_CONFIG=$work/config1 timeout 30 "$STARLING" get svc -n test 2>&1)
grep -q written-on-replica-2 <<<"$out" && ok "replica 1 serves what replica 2 wrote" || { bad "replica 1 misses written-on-replica-2"; echo "$out" | show; }
duties() { PGPASSWORD=starling-test psql -h 127.0.0.1 -p $pgport -U starling -d starling_e2e -Atc \
  "SELECT duty || '=' || holder FROM starling_duties WHERE expires_at > now() ORDER BY duty" 2>/dev/null; }
three_duties_held() { [ "$(duties | wc -l)" = 3 ]; }
eventually "each duty (lease expiry, service mirror, history compaction) has one live holder" 15 three_duties_held
duties | sed 's/^/      /'
out=$(S check 2>&1)
grep -q "2/2 controller replicas are alive" <<<"$out" && ok "check: 2/2 controller replicas are alive" || { bad "check does not show 2/2 replicas"; echo "$out" | show 12; }
grep -q "service-mirror is held by $ctl:808[67]" <<<"$out" && ok "check names the holder of each duty" || { bad "check does not name the duty holders"; echo "$out" | show 12; }
grep -qE "store: PostgreSQL at 127.0.0.1:$pgport, database starling_e2e, schema v[0-9]+, answering in" <<<"$out" \
  && ok "check names the database, its schema version and that it answers" || { bad "check does not describe the database"; echo "$out" | show 12; }

start_workload podinfo.log -n test --service podinfo --port 9898 -- "$STARLING" demo-app podinfo --message "from postgres"
start_workload curl.log -n test --service curl --port 7001 -- "$STARLING" demo-app podinfo --port 7001 --message caller
caddr=$(address_of curl.log) || { bad "the curl workload never started"; show < curl.log; }
proxy=http://$caddr:4140
for w in podinfo curl; do eventually "$w registered" 45 registered test "$w"; done
call() { curl -s -m 3 -x "$proxy" http://podinfo.test:9898/ | grep -q "from postgres"; }
eventually "a call through the mesh reaches podinfo" 30 call

step "kill -9 replica 1 under load: calls go on, duties and heartbeats move to replica 2"
r1pid=$(cat "$STARLING_HOME/clusters/$cluster/controller.pid")
before=$(duties | tr '\n' ' ')
kill -9 "$r1pid"
ok_calls=0; failed_calls=0; end=$((SECONDS + 25)); moved=""
while [ $SECONDS -lt $end ]; do
  if call; then ok_calls=$((ok_calls + 1)); else failed_calls=$((failed_calls + 1)); fi
  [ -z "$moved" ] && [ "$(duties | grep -c ':8087')" = 3 ] && moved=$((25 - (end - SECONDS)))
  sleep 0.2
done
echo "      duties before: $before"
echo "      25 s after the kill: $ok_calls calls, $failed_calls failed"
[ "$failed_calls" = 0 ] && [ "$ok_calls" -gt 0 ] && ok "no call failed after replica 1 died" || bad "$failed_calls calls failed after replica 1 died"
[ -n "$moved" ] && ok "replica 2 holds every duty (within ${moved}s of the kill)" || { bad "the duties did not move to replica 2"; duties | show; }
# 25 s is more than the 15 s workload lease: only heartbeats that reached replica 2 kept them.
for w in podinfo curl; do registered test "$w" && ok "$w is still registered (its heartbeats moved to replica 2)" || bad "$w expired after replica 1 died"; done
out=$(S check 2>&1)
grep -q "1/2 controller replicas are alive; not seen: $ctl:8086" <<<"$out" && ok "check: 1/2 replicas alive, naming the dead one" \
  || { bad "check does not report the dead replica"; echo "$out" | show 12; }
if grep -q "workload expired" replica.log; then bad "replica 2 expired a live workload"; grep "workload expired" replica.log | show 3
else ok "no live workload was expired"; fi

step "PostgreSQL down for 30 s: the data plane keeps serving, apply says why it fails"
# Applies go on before, through and after the outage, each with a short timeout: whatever was
# acknowledged must be in the store afterwards, whatever was not must not be half there.
apply_acker timeout 5 "$STARLING"
sleep 3
pg_stop
# A replica started while the database is down waits for it (up to 60 s), then serves.
cp -r replica-data replica3-data
"$STARLING" controller --cluster-name "$cluster" --data-dir "$work/replica3-data" --api-address $ctl:8088 \
  --admin-address $ctl:9992 --store "$url" > replica3.log 2>&1 & replica3=$!; pids+=($replica3); disown $replica3
ok_calls=0; failed_calls=0; end=$((SECONDS + 30))
while [ $SECONDS -lt $end ]; do
  if call; then ok_calls=$((ok_calls + 1)); else failed_calls=$((failed_calls + 1)); fi
  sleep 0.2
done
echo "      $ok_calls calls during the outage, $failed_calls failed"
[ "$failed_calls" = 0 ] && [ "$ok_calls" -gt 0 ] && ok "no call failed while PostgreSQL was down" || bad "$failed_calls calls failed while PostgreSQL was down"
sed 's/written-on-replica-2/written-during-outage/' extra.yaml > outage.yaml
expect_fail "apply during the outage fails naming the database" "PostgreSQL at 127.0.0.1:$pgport|cannot connect|no answer" \
  timeout 40 "$STARLING" apply -f outage.yaml
pg_start
eventually "apply succeeds once PostgreSQL is back" 40 S apply -f outage.yaml
out=$(R2 get svc -n test 2>&1)
grep -q written-during-outage <<<"$out" && ok "replica 2 has the apply acknowledged after the restart" || { bad "replica 2 misses written-during-outage"; echo "$out" | show; }
eventually "calls still reach podinfo after the outage" 15 call
grep -q "store not reachable yet; retrying" replica3.log && ok "a replica started during the outage waits for the database, saying so" \
  || { bad "replica 3 did not report waiting for the database"; show < replica3.log; }
eventually "…and serves once it is back" 40 curl -sf http://$ctl:9992/ready || show < replica3.log
kill "$replica3" 2>/dev/null; wait "$replica3" 2>/dev/null
sleep 3
acker_verdict "the outage" R2

# A controller with bad settings must exit, not hang: one still running after 15 s counts as "succeeded".
refuses() { timeout 15 "$STARLING" controller "$@"; local rc=$?; [ $rc = 124 ] && { echo "still running after 15 s"; return 0; }; return $rc; }
step "bad settings are refused at start, saying why (and the controller exits)"
expect_fail "a wrong password" "refused the password of user 'starling'" \
  refuses --cluster-name "$cluster" --data-dir "$work/bad1" --api-address $ctl:8088 \
  --admin-address $ctl:9992 --store "${url/starling-test/wrong}"
expect_fail "another cluster's database" "belongs to cluster '$cluster', not 'other'" \
  refuses --cluster-name other --data-dir "$work/bad2" --api-address $ctl:8088 \
  --admin-address $ctl:9992 --store "$url"
expect_fail "a database that does not exist" "has no database 'nope'" \
  refuses --cluster-name "$cluster" --data-dir "$work/bad3" --api-address $ctl:8088 \
  --admin-address $ctl:9992 --store "${url%/*}/nope"
mkdir -p "$work/bad5" && head -c 32 /dev/urandom | base64 > "$work/bad5/secrets.key" && chmod 600 "$work/bad5/secrets.key"
expect_fail "a replica with another secrets key" "sealed with another secrets key" \
  refuses --cluster-name "$cluster" --data-dir "$work/bad5" --api-address $ctl:8088 --admin-address $ctl:9992 --store "$url"
expect_fail "a store URL that is not one" "must start with postgres://" \
  refuses --cluster-name "$cluster" --data-dir "$work/bad4" --store "mysql://x@y/z"

echo
echo "postgres-store e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
