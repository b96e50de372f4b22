#!/usr/bin/env bash
# End to end: the data plane with real clients through a proxy pair, on one local cluster (dp1,
# 127.60.0.0/16, loopback only): curl over HTTP/1.1 and h2c, gRPC with Python's grpcio (caller
# identity, error statuses in trailers), psql over an opaque TCP binding, openssl s_client
# against the mTLS port, a peer presenting the wrong identity, an SMI TrafficSplit 80/20, the
# controller killed for 30 s under load, bad input at the outbound listener, and a real
# Prometheus scraping a proxy. Prints "data-plane e2e: N passed, N failed"; exits non-zero on
# any failure. Helpers live in tests/e2e/data-plane/.
#
#   tests/e2e/data-plane.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dp=$here/data-plane
. "$here/lib.sh"
e2e_binary "${1:-}"

cluster=dp1
range=127.60.0.0/16
ctl=127.60.0.1            # the controller's address in that range
pg_addr=127.60.200.1      # PostgreSQL's workload address
prom_addr=127.60.250.1    # Prometheus's listen address
trust=identity.starling.cluster.local
work=$(mktemp -d /tmp/starling-dp.XXXXXX)
export STARLING_HOME=$work/home
unset STARLING_CONFIG http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
skipped=0
skip() { skipped=$((skipped + 1)); echo "  - $*"; }
cleanup() {
  [ -n "${load_stop:-}" ] && touch "$load_stop"
  stop_workloads
  [ -n "${pgdir:-}" ] && { (cd / && su postgres -c "$pgbin/pg_ctl -D $pgdir stop -m immediate") >/dev/null 2>&1; rm -rf "$pgdir"; }
  "$STARLING" cluster delete "$cluster" >/dev/null 2>&1
  [ -n "${nft_table:-}" ] && nft delete table ip "$nft_table" 2>/dev/null
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
expect_ok "check" S check

step "workloads"
start_workload podinfo.log -n test --service podinfo --service-account podinfo --port 9898 -- \
  "$STARLING" demo-app podinfo --message "podinfo in dp1"
start_workload curl.log -n test --service curl --service-account curl --port 7001 -- sleep 100000
curl_run=$!
start_workload greeter.log -n test --service greeter --service-account greeter --port 50051 -- python3 "$dp/greeter.py" serve
start_workload podinfo-a.log -n test --service podinfo-a --port 9898 -- "$STARLING" demo-app podinfo --message podinfo-a
start_workload podinfo-b.log -n test --service podinfo-b --port 9898 -- "$STARLING" demo-app podinfo --message podinfo-b
# Two replicas of one service, restarted one after the other under load in step 11.
roll_args=(-n test --service roll --port 9898 --shutdown-delay 1 -- "$STARLING" demo-app podinfo --message roll)
start_workload roll-1.log "${roll_args[@]}"; roll_pid[1]=$!
start_workload roll-2.log "${roll_args[@]}"; roll_pid[2]=$!
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$pgbin" ] && command -v psql >/dev/null && id postgres >/dev/null 2>&1; then
  pgdir=$(mktemp -d /tmp/starling-dp-pg.XXXXXX); chown postgres "$pgdir"
  if (cd / && su postgres -c "$pgbin/initdb -D $pgdir -A trust >/dev/null 2>&1") && \
     (cd / && su postgres -c "timeout 30 $pgbin/pg_ctl -D $pgdir -w -o '-p 5433 -k $pgdir -c listen_addresses=$pg_addr' -l $pgdir/log start >/dev/null"); then
    start_workload postgres.log -n db --service postgres --port 5433 --address "$pg_addr" --app-protocol opaque -- sleep 100000
    start_workload psql-client.log -n db --service psql-client --port 7002 \
      --outbound-tcp postgres.db:5433=127.0.0.1:15439 -- sleep 100000
  else
    bad "PostgreSQL did not start"; tail -5 "$pgdir/log" 2>/dev/null | show
  fi
fi
caddr=$(address_of curl.log) || { bad "the curl workload never started"; show < curl.log; }
paddr=$(address_of podinfo.log) || { bad "podinfo never started"; show < podinfo.log; }
proxy=http://$caddr:4140
curl_id=curl.test.serviceaccount.$trust
for w in podinfo greeter podinfo-a podinfo-b roll; do eventually "$w registered" 45 registered test "$w"; done

# The application gets stdin, stdout and stderr only: never the proxy's sockets (a child holding
# 4140/4143/4191 keeps them bound after its proxy died).
child=$(pgrep -P "$curl_run" -x sleep | head -1)
if [ -n "$child" ]; then
  fds=$(ls /proc/"$child"/fd | sort -n | tr '\n' ' ')
  [ "$fds" = "0 1 2 " ] && ok "the application started by starling run holds only fds 0 1 2" \
    || { bad "the application holds fds: $fds"; ls -l /proc/"$child"/fd | show; }
else bad "no application process under starling run (pid $curl_run)"; fi

# Prometheus runs from here on, scraping the curl workload's proxy, and is queried at the end.
step "Prometheus (started now, queried at the end)"
prom=""
if ! command -v prometheus >/dev/null && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive timeout 150 apt-get install -y -qq prometheus >/dev/null 2>&1
fi
if command -v prometheus >/dev/null; then
  cat > prometheus.yml <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: starling-proxy
  metrics_path: /metrics
  static_configs:
  - targets: ['$caddr:4191']
YAML
  prometheus --config.file=prometheus.yml --storage.tsdb.path="$work/prom-data" \
    --web.listen-address=$prom_addr:19090 > prometheus.log 2>&1 & pids+=($!); prom=$!; disown $!
  eventually "Prometheus is ready on $prom_addr:19090" 30 curl -sf -m 2 "http://$prom_addr:19090/-/ready"
else
  skip "skipped: prometheus not installable (apt-get install prometheus)"
fi

step "1. curl through the mesh: HTTP/1.1 and h2c"
body=$(curl -s -m 5 -w '\n%{http_code}' -x "$proxy" http://podinfo.test:9898/)
code=${body##*$'\n'}; body=${body%$'\n'*}
[ "$code" = 200 ] && ok "curl -x $proxy http://podinfo.test:9898/ → 200" || { bad "HTTP/1.1 through the mesh → $code"; echo "$body" | show; }
client=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("client", ""))' "$body" 2>/dev/null)
[ "$client" = "$curl_id" ] && ok "podinfo's JSON names the caller: client=$client" || { bad "podinfo's client is '$client', not $curl_id"; echo "$body" | show; }
out=$(timeout 30 python3 "$dp/traffic.py" split --reuse --proxy "$caddr:4140" --url http://podinfo.test:9898/ -n 3 2>&1)
matches "three GETs on one HTTP/1.1 keep-alive connection (Python http.client) all → 200" '^errors 0$' "$out"
out=$(curl -s -m 5 -i --http2-prior-knowledge -H 'Host: podinfo.test:9898' "http://$caddr:4140/" 2>&1)
matches "h2c (prior knowledge) to the outbound listener, Host podinfo.test:9898 → 200" '^HTTP/2 200' "$out"

# A command that only calls out: no --port, no --service; the run ends with the command.
t0=$SECONDS
out=$(timeout 60 "$STARLING" run -n test --service-account job -- sh -c 'curl -s -m 5 -x "$http_proxy" http://podinfo.test:9898/' 2>&1); rc=$?
took=$((SECONDS - t0))
[ $rc = 0 ] && grep -qa "podinfo in dp1" <<<"$out" && [ $took -lt 8 ] \
  && ok "run with no --port: a client-only command reaches podinfo and the run ends with it (${took}s)" \
  || { bad "client-only run: status $rc after ${took}s"; echo "$out" | show; }
timeout 60 "$STARLING" run -n test --service-account job -- sh -c 'exit 3' >/dev/null 2>&1; rc=$?
[ $rc = 3 ] && ok "run exits with its command's status (3)" || bad "run exited $rc, not the command's 3"

step "2. gRPC (Python grpcio) through the proxy pair"
out=$(timeout 30 python3 "$dp/greeter.py" call --target "$caddr:4140" --authority greeter.test:50051 --name mesh 2>&1)
matches "SayHello via :authority greeter.test:50051 succeeds" '^status=OK' "$out"
matches "the reply carries the caller identity the server saw ($curl_id)" "client_id=$curl_id( |$)" "$out"
matches "the server's trailing metadata reaches the client" "greeter-trailer': 'kept'" "$out"
matches "the server logged starling-client-id metadata" "starling-client-id=$curl_id" "$(cat greeter.log)"
out=$(timeout 30 python3 "$dp/greeter.py" call --target "$caddr:4140" --authority greeter.test:50051 --name missing --expect-code NOT_FOUND 2>&1)
matches "a NOT_FOUND status from the server stays NOT_FOUND end to end" "^status=NOT_FOUND details='no greeting for missing'" "$out"
# Both proxies count each call with its gRPC status (HTTP says 200 for both), so viz sees the failure.
gaddr=$(address_of greeter.log)
grpc_counted() { curl -s -m 5 "http://$1:4191/metrics" | grep -E "^starling_proxy_requests_total\{[^}]*direction=\"$2\"[^}]*grpc_status=\"$3\"[^}]*\} [1-9]" | grep -q "$4"; }
for code in 0 5; do
  eventually "the caller's outbound counts a call with grpc_status=\"$code\"" 10 grpc_counted "$caddr" outbound "$code" 'target_service="greeter'
  eventually "greeter's inbound counts a call with grpc_status=\"$code\"" 10 grpc_counted "$gaddr" inbound "$code" 'status_code="200"'
done

step "3. psql through an opaque TCP binding"
if [ -z "${pgdir:-}" ]; then
  skip "skipped: PostgreSQL server not installed (apt-get install postgresql)"
else
  eventually "postgres registered" 45 registered db postgres
  out=""
  for i in $(seq 20); do
    out=$(PGCONNECT_TIMEOUT=5 timeout 10 psql -h 127.0.0.1 -p 15439 -U postgres -At -c "select 'through-the-mesh', 1" 2>&1) && break
    sleep 0.5
  done
  matches "psql -h 127.0.0.1 -p 15439 -c 'select 1' through postgres.db:5433" '^through-the-mesh\|1$' "$out"
  # psql closed its connection: postgres's inbound counted it as opaque, with its bytes.
  pg_conn_counted() {
    local m; m=$(curl -s -m 5 "http://$pg_addr:4191/metrics")
    grep -Eq '^starling_proxy_tcp_close_total\{[^}]*direction="inbound"[^}]*protocol="opaque"[^}]*\} [1-9]' <<<"$m" \
      && grep -Eq '^starling_proxy_tcp_bytes_total\{[^}]*direction="inbound"[^}]*io="read"[^}]*\} [1-9]' <<<"$m"
  }
  eventually "postgres's inbound counted the closed psql connection (protocol=\"opaque\") and its bytes" 10 pg_conn_counted
fi

step "4. openssl s_client against the inbound mTLS port"
ca=$work/ca.pem
python3 - "$STARLING_HOME/config" "$ca" <<'PY'
import base64, sys, yaml
ctx = yaml.safe_load(open(sys.argv[1]))["contexts"][0]
open(sys.argv[2], "wb").write(base64.b64decode(ctx["certificate-authority-data"]))
PY
out=$( (sleep 2) | timeout 15 openssl s_client -connect "$paddr:4143" -tls1_3 -alpn h2 -CAfile root.crt 2>&1 | tr -d '\0')
matches "the server speaks TLSv1.3" 'Protocol *: TLSv1\.3|New, TLSv1\.3' "$out"
matches "without a client certificate the server refuses (alert)" 'alert certificate required|alert handshake failure|alert bad certificate' "$out"
token=$(S token create --namespace test --service-account tester --ttl 1h)
if timeout 30 python3 "$here/grpc_client.py" certify --server "$ctl:8086" --ca "$ca" --token "$token" \
     --identity "tester.test.serviceaccount.$trust" --out certs > certify.log 2>&1; then
  out=$( (sleep 2) | timeout 15 openssl s_client -connect "$paddr:4143" -tls1_3 -alpn h2 -CAfile root.crt \
    -cert certs/leaf.pem -key certs/leaf.key -cert_chain certs/chain.pem 2>&1 | tr -d '\0'; exit "${PIPESTATUS[0]}"); rc=$?
  matches "with a mesh certificate the handshake completes: Verification: OK" '^Verification: OK' "$out"
  matches "…negotiating h2 over TLSv1.3" 'ALPN protocol: h2' "$out"
  if [ $rc = 0 ] && ! grep -qaE 'alert|errno|:error:' <<<"$out"; then ok "…and no alert from the server"; else bad "the server sent an alert to a mesh client (rc=$rc)"; echo "$out" | grep -aE 'alert|error' | show; fi
  matches "the server presents podinfo's identity" "subject=CN ?= ?podinfo\.test\.serviceaccount" "$out"
else
  bad "could not get a mesh certificate (starling token create + grpc_client.py certify)"; show < certify.log
fi

step "5. a peer presenting another identity is refused"
cat > imposter.yaml <<YAML
apiVersion: v1
kind: Service
metadata:
  name: imposter
  namespace: test
spec:
  ports:
  - port: 9898
---
apiVersion: starling.io/v1alpha1
kind: Workload
metadata:
  name: imposter-1
  namespace: test
  labels: {app: imposter}
spec:
  address: $paddr
  ports:
  - {port: 4143, appPort: 9898}
  identity: other.test.serviceaccount.$trust
YAML
expect_ok "apply a Workload claiming other.test… at podinfo's inbound address" S apply -f imposter.yaml
imposter() { curl -s -m 5 -i -x "$proxy" http://imposter.test:9898/ 2>&1; }
eventually "imposter.test is known to the caller's proxy (no longer 503)" 15 bash -c "! curl -s -m 5 -o /dev/null -w '%{http_code}' -x $proxy http://imposter.test:9898/ | grep -q 503"
out=$(imposter)
matches "a call to imposter.test → 502" '^HTTP/1\.1 502' "$out"
matches "…with starling-error: peer-identity-rejected" '^starling-error: peer-identity-rejected' "$(tr -d '\r' <<<"$out")"
grep -qa 'podinfo in dp1' <<<"$out" && bad "the call reached podinfo despite the identity mismatch" || ok "podinfo's answer never reached the caller"

step "6. SMI TrafficSplit 80/20 in the cluster"
cat > split.yaml <<'YAML'
apiVersion: v1
kind: Service
metadata:
  name: podinfo-root
  namespace: test
spec:
  ports:
  - port: 9898
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: podinfo-root
  namespace: test
spec:
  service: podinfo-root
  backends:
  - service: podinfo-a
    weight: 80
  - service: podinfo-b
    weight: 20
YAML
expect_ok "apply podinfo-root (no workloads) and its TrafficSplit (v1alpha2, 80/20)" S apply -f split.yaml
eventually "podinfo-root answers through the split" 15 bash -c "curl -sf -m 5 -x $proxy http://podinfo-root.test:9898/ | grep -q podinfo-"
out=$(timeout 90 python3 "$dp/traffic.py" split --proxy "$caddr:4140" --url http://podinfo-root.test:9898/ -n 1000 2>split.err)
a=$(awk '$1 == "podinfo-a" {print $2}' <<<"$out"); b=$(awk '$1 == "podinfo-b" {print $2}' <<<"$out")
errs=$(awk '$1 == "errors" {print $2}' <<<"$out")
a=${a:-0}; b=${b:-0}; errs=${errs:-1000}
echo "      1000 requests: podinfo-a=$a podinfo-b=$b errors=$errs"
# ±5 % of 80/20: podinfo-a gets 750…850 of 1000 (binomial sd ≈ 12.6, so that is ±4 sd)
if [ "$errs" = 0 ] && [ $((a + b)) = 1000 ] && [ "$a" -ge 750 ] && [ "$a" -le 850 ]; then
  ok "the split lands 80/20 within ±5 % ($a/$b)"
else bad "the split is off: podinfo-a=$a podinfo-b=$b errors=$errs"; echo "$out" | show; show < split.err; fi

step "8. bad input at the outbound listener"
raw() { timeout 15 python3 "$dp/traffic.py" raw "$@" 2>&1; }
matches "Content-Length with Transfer-Encoding → 400" '^HTTP/1\.1 400' "$(raw --host "$caddr" --port 4140 --case conflict)"
out=$(raw --host "$caddr" --port 4140 --case bigheader)
matches "a 70 KiB header → 431" '^HTTP/1\.1 431' "$out"
out=$(raw --host "$caddr" --port 4140 --case unknown)
matches "an unknown authority → 503" '^HTTP/1\.1 503' "$out"
matches "…with starling-error" '^starling-error: ' "$out"
matches "plaintext HTTP to the mTLS port 4143 → connection closed, no answer" '^closed' "$(raw --host "$paddr" --port 4143 --case plaintext)"
matches "the outbound listener still serves after the bad input" '^HTTP/1\.1 200' "$(curl -s -m 5 -i -x "$proxy" http://podinfo.test:9898/)"

step "7. the controller killed for 30 s under load"
load_stop=$work/load.stop
timeout 120 python3 "$dp/traffic.py" load --proxy "$caddr:4140" --url http://podinfo.test:9898/ --rate 10 \
  --stop-file "$load_stop" > load.log 2>&1 &
loader=$!
sleep 3
cpid=$(cat "$STARLING_HOME/clusters/$cluster/controller.pid")
kill -9 "$cpid" && ok "controller (pid $cpid) killed with SIGKILL"
sleep 30
"$STARLING" controller --cluster-name "$cluster" --data-dir "$STARLING_HOME/clusters/$cluster/data" \
  --api-address "$ctl:8086" --admin-address "$ctl:9990" >> controller-restart.log 2>&1 &
echo $! > "$STARLING_HOME/clusters/$cluster/controller.pid"
eventually "the controller restarts and is ready" 30 curl -sf -m 2 "http://$ctl:9990/ready"
sleep 3
touch "$load_stop"; wait $loader
total=$(awk '$1 == "requests" {print $2}' load.log); lfailed=$(awk '$1 == "requests" {print $4}' load.log)
echo "      $(head -1 load.log) (10 req/s, a new connection each, across the outage)"
if [ -n "$total" ] && [ "$total" -ge 300 ] && [ "$lfailed" = 0 ]; then
  ok "no request to podinfo.test failed while the controller was down ($total requests)"
else bad "requests during the outage: ${total:-?} sent, ${lfailed:-?} failed"; show 10 < load.log; fi
expect_ok "check passes after the restart" S check

step "9. Prometheus scrapes a proxy"
if [ -n "$prom" ]; then
  q() { curl -s -m 5 "http://$prom_addr:19090/api/v1/query?query=starling_proxy_requests_total"; }
  nonempty() { q | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(not (d["status"] == "success" and d["data"]["result"]))'; }
  if eventually "query starling_proxy_requests_total returns a non-empty result" 15 nonempty; then
    series=$(q | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(len(r), "series, e.g.", r[0]["metric"].get("authority"), r[0]["metric"].get("status_code"), r[0]["value"][1])')
    echo "      $series"
  fi
  up=$(curl -s -m 5 "http://$prom_addr:19090/api/v1/query?query=up" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])' 2>/dev/null)
  [ "$up" = 1 ] && ok "the scrape target $caddr:4191 is up" || bad "the scrape target is not up (up=$up)"
fi

step "10. transparent capture: nftables DNAT to the outbound listener, routed by SO_ORIGINAL_DST"
# A client that knows nothing of the mesh connects to podinfo's own address and port; a NAT rule
# (what an init container's iptables rules do in Kubernetes) sends the connection to the curl
# workload's outbound listener, which reads the original destination (SO_ORIGINAL_DST; the Host
# names nothing) and routes to that workload over mTLS. Only connections from one source address are captured, so the proxies'
# own connections (and the inbound's to podinfo) are not.
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null; then
  skip "skipped: transparent capture needs root and nft (apt-get install nftables)"
else
  capture_src=127.60.250.9
  nft_table=starling_e2e_capture_$$
  if nft add table ip "$nft_table" \
    && nft "add chain ip $nft_table out { type nat hook output priority -100; }" \
    && nft add rule ip "$nft_table" out ip saddr "$capture_src" ip daddr "$paddr" tcp dport 9898 dnat to "$caddr:4140"; then
    ok "nft: connections from $capture_src to $paddr:9898 are DNATed to $caddr:4140"
    # Step 5's imposter claimed podinfo's address too; only podinfo may answer there now.
    S delete -f imposter.yaml >/dev/null 2>&1
    # The Host names nothing in the mesh: only the original destination can route this.
    captured() { curl -s -m 5 --interface "$capture_src" -H 'Host: not-a-service.invalid' -w '\n%{http_code}' "http://$paddr:9898/"; }
    for _ in $(seq 20); do body=$(captured); [ "${body##*$'\n'}" = 200 ] && break; sleep 0.5; done
    code=${body##*$'\n'}; body=${body%$'\n'*}
    client=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("client", ""))' "$body" 2>/dev/null)
    if [ "$code" = 200 ] && [ "$client" = "$curl_id" ]; then
      ok "a plain curl to $paddr:9898 went through the mesh (podinfo saw client=$client)"
    else
      bad "captured request → $code, client '$client' (expected 200 from $curl_id)"; echo "$body" | show
    fi
    out=$(curl -s -m 5 "http://$caddr:4191/metrics" | grep 'starling_proxy_requests_total' | grep "target_service=\"$paddr:9898\"" | head -1)
    matches "the outbound proxy counted it for the original destination $paddr:9898" 'status_code="200"' "$out"
    nft delete table ip "$nft_table" && nft_table=""
  else
    bad "could not install the nft capture rule"
  fi
fi

step "11. a rolling restart of the server side under load loses no request"
# Each replica of `roll` in turn gets SIGTERM (`starling run --shutdown-delay 1` deregisters it,
# and a second later its app gets the signal and stops, then its proxy drains), and starts again; the client's
# outbound goes on sending at 20 req/s, a new connection each. A request to a replica that is
# going away is sent to the other (a refused connect, or a stream closed before any answer to a
# GET). Without the deregistration first, a request routed in the window between the app's exit
# and the callers hearing of it got 502 connect-failed from the stopping proxy (one CI run).
roll_stop=$work/roll.stop
timeout 180 python3 "$dp/traffic.py" load --proxy "$caddr:4140" --url http://roll.test:9898/ --rate 20 \
  --stop-file "$roll_stop" > roll-load.log 2>&1 &
roll_loader=$!
sleep 3
for i in 1 2; do
  kill -TERM "${roll_pid[$i]}"; t_term=$(date +%s%N)
  for _ in $(seq 1 150); do kill -0 "${roll_pid[$i]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${roll_pid[$i]}" 2>/dev/null; then bad "replica $i of roll still runs 15 s after SIGTERM"
  else
    # 1 s of --shutdown-delay, the app's exit, then a drain that waits only for work in flight.
    # The callers' pooled HTTP/2 connections close at the drain's GOAWAY; when their dialer
    # allowed half-closure they never answered its close_notify, and a drain waited out TLS's
    # 5 s shutdown timeout (InboundProxyTests.drainingClosesAnIdlePeerConnectionAtOnce).
    stop_ms=$(( ($(date +%s%N) - t_term) / 1000000 ))
    if [ "$stop_ms" -lt 4000 ]; then ok "replica $i stopped ${stop_ms} ms after SIGTERM (its callers' connections did not hold the drain)"
    else bad "replica $i took ${stop_ms} ms to stop after SIGTERM (a drain held by idle connections?)"; show < "roll-$i.log"; fi
  fi
  if grep -q 'stopping: the workload is deregistered' "roll-$i.log"; then ok "replica $i was deregistered before its application got SIGTERM"
  else bad "replica $i: no deregistration before the application's SIGTERM in roll-$i.log"; fi
  start_workload "roll-$i-again.log" "${roll_args[@]}"; roll_pid[$i]=$!
  eventually "replica $i of roll is back" 45 grep -q 'workload started' "roll-$i-again.log"
  sleep 3
done
touch "$roll_stop"; wait $roll_loader
total=$(awk '$1 == "requests" {print $2}' roll-load.log); rfailed=$(awk '$1 == "requests" {print $4}' roll-load.log)
echo "      $(head -1 roll-load.log) (20 req/s, a new connection each, across two restarts)"
if [ -n "$total" ] && [ "$total" -ge 200 ] && [ "$rfailed" = 0 ]; then
  ok "no request to roll.test failed across the rolling restart ($total requests)"
else bad "requests during the rolling restart: ${total:-?} sent, ${rfailed:-?} failed"; show 10 < roll-load.log; fi

step "cleanup"
expect_ok "cluster delete $cluster" S cluster delete "$cluster"

echo
if [ "$skipped" -gt 0 ]; then echo "data-plane e2e: $passed passed, $failed failed, $skipped skipped"
else echo "data-plane e2e: $passed passed, $failed failed"; fi
[ "$failed" = 0 ]
