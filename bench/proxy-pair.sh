#!/usr/bin/env bash
# Data-plane benchmark: a Starling proxy pair against an HAProxy pair and against no proxy at all,
# in front of the same nginx, all on loopback. Prints one table (medians of 3 runs) with the
# ratios, then the issue's targets with pass/fail.
#
#   bench/proxy-pair.sh                 build release (starling), then measure (about 4-5 minutes
#                                       after the build on 2 cores)
#   SKIP_BUILD=1 bench/proxy-pair.sh    reuse .build/release/starling
#   SKIP_BUILD=1 BIN_DIR=DIR bench/proxy-pair.sh   use DIR/starling
#   COMPARE_BIN=/abs/path/starling ...   adds a second Starling pair run by that binary (another
#                                       build), measured interleaved with the others: the way to
#                                       compare two builds on a noisy machine (same run, same load)
#   METRICS_OFF=0 ...                   leave out the pair whose proxies run with `--metrics off`
#                                       (by default it is measured beside the others: what the
#                                       request metrics cost is the ratio of the two pairs)
#   POLICY=1 ...                        add a pair whose server side enforces an authorization policy
#                                       of 100 identities (a Server, a MeshTLSAuthentication naming
#                                       100, an AuthorizationPolicy), measured beside the plain pair:
#                                       what enforcement costs is the ratio of the two
#   HOLD=SECONDS ...                    keep the setup up that long before measuring (to poke at it)
#   PROFILE=1 ...                       add a perf profile of both Starling proxies (one extra
#                                       throughput run; needs `perf`), with the share of their
#                                       CPU spent recording the request metrics
#
# Paths (every address in one loopback /16, 127.70.0.0/16 unless RANGE_OCTET says otherwise):
#   direct    wrk -> nginx                                                (A.10.1:8080)
#   starling  wrk -> outbound of the `client` workload (A.10.2:4140, Host: web.bench:8080)
#                 -> mTLS 1.3, HTTP/2 -> inbound of the `web` workload (A.10.1:4143) -> nginx
#   haproxy   wrk -> haproxy A (A.20.1:8080, plain HTTP/1.1)
#                 -> `ssl crt client.pem ca-file root.pem verify required alpn h2`, TLS 1.3 only
#                 -> haproxy B (A.20.2:8443, `ssl crt server.pem ca-file root.pem verify required`)
#                 -> nginx
# The HAProxy pair uses the mesh's own PKI: the root and intermediate made with
# `starling certs create` (the ones `starling install` gets), and ECDSA P-256 leaves signed by the
# intermediate with openssl, each side verifying the other's certificate (B asks for a client
# certificate; A checks B's chain and name).
#
# Figures, each measured 3 times, interleaved across the paths (median printed):
#   req/s        wrk -t2 -c50 -d10s, HTTP/1.1 keep-alive (after a 2 s warm-up per path)
#   p50/p99/p99.9  at a fixed rate: wrk -t2 -c10 -d10s paced by proxy-pair/wrk.lua to 1,000 req/s
#                in all (each wrk thread sends on a fixed schedule, 2 ms apart, whatever the
#                responses do; wrk's own latency histogram, from writing a request to its response;
#                a request waits for a free connection, so coordinated omission is only partly
#                avoided). wrk rather than h2load: h2load stops using an HTTP/1.1 connection the
#                server closes, wrk reconnects.
#   CPU-ms/1k    utime+stime of each proxy process (/proc/PID/stat) across a throughput run,
#                divided by the requests wrk completed; "out+in" = client side + server side
#                (the lines under the table split it into user and system time)
#   RSS          VmRSS of each proxy process, idle (routes checked, before any load) and after
#                all runs. A Starling proxy is the `starling run` process (proxy in-process).
#   HTTP/2       h2load -c10 -m10 with h2c prior knowledge against each pair's client side (Starling's
#                outbound, HAProxy A's `proto h2` bind), the way gRPC clients come in; printed with
#                its ratio, no target (skipped without h2load)
#
# Exit status: 0 when every target is met, 1 when one is missed, 2 when the benchmark could not run.
# Load is bounded (every run has a duration) and only ever sent to 127.0.0.0/8. The cluster, the
# processes started here and the temporary directory are removed on exit.
#
# On a shared, noisy 2-core machine wrk, nginx and both proxies of a pair compete for the same two
# cores: figures move by tens of percent between runs; compare paths within one run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

# --- knobs ---
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}            # seconds per throughput and per latency run
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-50}
RATE=${RATE:-1000}                  # fixed-rate load, requests/s in all
RATE_CONNECTIONS=${RATE_CONNECTIONS:-10}  # connections sharing it
NGINX_WORKERS=${NGINX_WORKERS:-1}
BODY_BYTES=${BODY_BYTES:-100}
RANGE_OCTET=${RANGE_OCTET:-70}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building release (starling)"
  release_build starling
fi
STARLING=${BIN_DIR:-$root/.build/release}/starling
[ -x "$STARLING" ] || { echo "no binary at $STARLING (build with bench/lib.sh release_build, or swift build -c release --static-swift-stdlib --product starling)"; exit 2; }
for tool in wrk haproxy nginx openssl curl ss; do
  command -v "$tool" >/dev/null 2>&1 || command -v "/usr/sbin/$tool" >/dev/null 2>&1 || {
    echo "missing $tool: apt-get install -y wrk haproxy nginx-light openssl curl iproute2"; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

work=$(mktemp -d /tmp/starling-proxy-pair.XXXXXX)
chmod 755 "$work"
export STARLING_HOME=$work/home
unset STARLING_CONFIG http_proxy HTTP_PROXY https_proxy HTTPS_PROXY
cluster=proxypair
cluster_created=0
pids=()
cleanup() {
  set +e
  stop_pids
  if [ "$cluster_created" = 1 ]; then "$STARLING" cluster delete "$cluster" >/dev/null 2>&1; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

# --- helpers ---
# cpu_ticks PID: "utime+stime stime" (fields 14, 15; the command name in field 2 has no spaces here)
cpu_ticks() { awk '{ print $14 + $15, $15 }' "/proc/$1/stat"; }
# per_1k BEFORE AFTER REQUESTS: CPU-ms per 1,000 requests between two tick counts
per_1k() { awk -v a="$1" -v b="$2" -v n="$3" -v t="$clk_tck" 'BEGIN { printf "%.1f", (b - a) * 1000 / t / (n / 1000) }'; }
clk_tck=$(getconf CLK_TCK)

# --- addresses ---
for n in $(seq "$RANGE_OCTET" 99); do
  if free_address "127.$n.0.1" 8086 && free_address "127.$n.0.1" 9990 && free_address "127.$n.10.1" 4143 \
    && free_address "127.$n.20.1" 8080; then
    RANGE_OCTET=$n; break
  fi
  [ "$n" = 99 ] && fail "no free loopback range in 127.$RANGE_OCTET-99.0.0/16"
done
net=127.$RANGE_OCTET
web_addr=$net.10.1 web_port=8080         # nginx, and the `web` workload's proxy
client_addr=$net.10.2 client_port=8081   # the `client` workload (a placeholder app) and its outbound
ha_a=$net.20.1 ha_a_port=8080            # haproxy A (client side)
ha_a_h2c_port=8082                         # haproxy A's HTTP/2 (h2c prior knowledge) front end
ha_b=$net.20.2 ha_b_port=8443            # haproxy B (server side)
authority=web.bench:$web_port
compare_web_addr=$net.10.3 compare_client_addr=$net.10.4   # the COMPARE_BIN pair's workloads
compare_authority=webb.bench:$web_port
nometrics_web_addr=$net.10.5 nometrics_client_addr=$net.10.6   # the --metrics off pair's workloads
nometrics_authority=webm.bench:$web_port
METRICS_OFF=${METRICS_OFF:-1}
policy_web_addr=$net.10.7 policy_client_addr=$net.10.8   # the POLICY pair's workloads
policy_authority=webp.bench:$web_port
POLICY=${POLICY:-0}
if [ -n "${COMPARE_BIN:-}" ]; then
  [ -x "$COMPARE_BIN" ] || { echo "COMPARE_BIN: no executable at $COMPARE_BIN"; exit 2; }
fi

echo "== cluster on $net.0.0/16, $("$STARLING" --version 2>/dev/null || echo starling) from $STARLING"
cluster_created=1
"$STARLING" cluster create "$cluster" --address-range "$net.0.0/16" >/dev/null || fail "cluster create"
"$STARLING" cluster credentials "$cluster" --export-file "$work/config" >/dev/null || fail "cluster credentials"
export STARLING_CONFIG=$work/config
"$STARLING" certs create identity.starling.cluster.local root.crt root.key --profile root-ca \
  --no-password --insecure >/dev/null || fail "certs create root"
"$STARLING" certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca \
  --not-after 8760h --no-password --insecure --ca root.crt --ca-key root.key >/dev/null || fail "certs create issuer"
"$STARLING" install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
  --identity-issuer-key-file issuer.key > install.yaml || fail "install"
"$STARLING" apply -f install.yaml >/dev/null || fail "apply of the install manifest"
"$STARLING" check >/dev/null 2>&1 || { "$STARLING" check || true; fail "starling check"; }

echo "== nginx on $web_addr:$web_port ($NGINX_WORKERS worker, $BODY_BYTES-byte body)"
body=$(head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x')
mkdir -p nginx/tmp
cat > nginx/nginx.conf <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen $web_addr:$web_port reuseport backlog=1024;
    listen $compare_web_addr:$web_port reuseport backlog=1024;
    listen $nometrics_web_addr:$web_port reuseport backlog=1024;
    listen $policy_web_addr:$web_port reuseport backlog=1024;
    location / { default_type text/plain; return 200 "$body"; }
  }
}
EOF
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" > nginx/out.log 2>&1 & pids+=($!)
wait_for "nginx answers" 10 curl -sf -m 1 "http://$web_addr:$web_port/"

pair_run_args=()
# start_pair BIN WEB_SERVICE WEB_ADDR CLIENT_SERVICE CLIENT_ADDR: two workloads run by BIN, the web
# one's proxy in front of nginx at WEB_ADDR, the client one's outbound at CLIENT_ADDR:4140; waits
# until that outbound routes to nginx, then sets pair_web_pid and pair_client_pid.
start_pair() {
  local bin=$1 web=$2 waddr=$3 client=$4 caddr=$5 log child
  "$bin" run "${pair_run_args[@]}" -n bench --service "$web" --port "$web_port" --address "$waddr" -- sleep 100000 > "$web.log" 2>&1 & pids+=($!)
  pair_web_pid=$!
  "$bin" run "${pair_run_args[@]}" -n bench --service "$client" --port "$client_port" --address "$caddr" -- \
    python3 -c "import socket, time; s = socket.create_server(('$caddr', $client_port)); time.sleep(100000)" \
    > "$client.log" 2>&1 & pids+=($!)
  pair_client_pid=$!
  for log in "$web.log" "$client.log"; do
    ( wait_for "workload started ($log)" 60 grep -q "address=" "$log" ) 2>/dev/null ||
      fail "a workload did not start within 60 s; the end of $log: $(tail -5 "$log" | tr '\n' ' ')"
    child=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$child" ] && pids+=("$child")
  done
  wait_for "the $web workload is registered" 60 bash -c "'$STARLING' get wl -n bench | grep -q '^$web[ -]'"
  wait_for "the $client outbound routes $web.bench:$web_port" 60 \
    bash -c "curl -sf -m 2 -H 'Host: $web.bench:$web_port' http://$caddr:4140/ | grep -q '^x'"
}

echo "== Starling pair: workloads web (in front of nginx) and client"
start_pair "$STARLING" web "$web_addr" client "$client_addr"
web_pid=$pair_web_pid client_pid=$pair_client_pid
echo "proxies: client (outbound) pid $client_pid at $client_addr, web (inbound) pid $web_pid at $web_addr"
if [ -n "${COMPARE_BIN:-}" ]; then
  echo "== second Starling pair, run by $COMPARE_BIN: workloads webb and clientb"
  start_pair "$COMPARE_BIN" webb "$compare_web_addr" clientb "$compare_client_addr"
  compare_web_pid=$pair_web_pid compare_client_pid=$pair_client_pid
  echo "proxies: clientb (outbound) pid $compare_client_pid at $compare_client_addr, webb (inbound) pid $compare_web_pid"
fi
if [ "$METRICS_OFF" = 1 ]; then
  echo "== Starling pair with --metrics off: workloads webm and clientm"
  pair_run_args=(--metrics off)
  start_pair "$STARLING" webm "$nometrics_web_addr" clientm "$nometrics_client_addr"
  pair_run_args=()
  nometrics_web_pid=$pair_web_pid nometrics_client_pid=$pair_client_pid
  echo "proxies: clientm (outbound) pid $nometrics_client_pid, webm (inbound) pid $nometrics_web_pid"
fi

if [ "$POLICY" = 1 ]; then
  echo "== Starling pair with an authorization policy of 100 identities: workloads webp and clientp"
  {
    printf 'apiVersion: policy.starling.io/v1beta1\nkind: Server\nmetadata: {name: webp, namespace: bench}\n'
    printf 'spec: {podSelector: {matchLabels: {app: webp}}, port: %s}\n---\n' "$web_port"
    printf 'apiVersion: policy.starling.io/v1beta1\nkind: MeshTLSAuthentication\nmetadata: {name: callers, namespace: bench}\nspec:\n  identities:\n'
    for i in $(seq 99); do printf '  - caller-%s.bench.serviceaccount.identity.starling.cluster.local\n' "$i"; done
    printf '  - caller.bench.serviceaccount.identity.starling.cluster.local\n---\n'
    printf 'apiVersion: policy.starling.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: webp-callers, namespace: bench}\n'
    printf 'spec:\n  targetRef: {group: policy.starling.io, kind: Server, name: webp}\n'
    printf '  requiredAuthenticationRefs: [{group: policy.starling.io, kind: MeshTLSAuthentication, name: callers}]\n'
  } > policy.yaml
  "$STARLING" apply -f policy.yaml >/dev/null || fail "apply of the benchmark's authorization policy"
  # Both workloads run as service account `caller`, the one identity of the 100 the policy's
  # callers need (the other pairs run as `default`, which it does not name).
  pair_run_args=(--service-account caller)
  start_pair "$STARLING" webp "$policy_web_addr" clientp "$policy_client_addr"
  pair_run_args=()
  policy_web_pid=$pair_web_pid policy_client_pid=$pair_client_pid
  # That the policy is in force is checked after the measurements: a call from another pair's
  # client now would open a connection to webp's inbound and shift which event loop clientp's
  # connections land on (accepts go round robin), which changes the figure more than the policy.
  echo "proxies: clientp (outbound) pid $policy_client_pid, webp (inbound) pid $policy_web_pid"
fi

echo "== HAProxy pair ($("$HAPROXY" -v | head -1 | awk '{print $1, $3}'))"
# Leaves: ECDSA P-256, signed by the mesh's intermediate; both usable as client and server.
leaf() {
  local name=$1 san=$2
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key" 2>/dev/null
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA issuer.crt -CAkey issuer.key -CAcreateserial -days 2 -sha256 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null || fail "openssl x509 ($name)"
  cat "$name.crt" issuer.crt "$name.key" > "$name.pem"
  openssl verify -CAfile root.crt -untrusted issuer.crt "$name.crt" >/dev/null || fail "the $name leaf does not verify"
}
leaf server DNS:web.bench
leaf client DNS:client.bench
cp root.crt root.pem
cat > haproxy-a.cfg <<EOF
global
  maxconn 4096
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend a
  bind $ha_a:$ha_a_port
  bind $ha_a:$ha_a_h2c_port proto h2
  default_backend b
backend b
  http-reuse always
  server b $ha_b:$ha_b_port ssl crt $work/client.pem ca-file $work/root.pem verify required verifyhost web.bench sni str(web.bench) alpn h2
EOF
cat > haproxy-b.cfg <<EOF
global
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend b
  bind $ha_b:$ha_b_port ssl crt $work/server.pem ca-file $work/root.pem verify required alpn h2,http/1.1
  default_backend web
backend web
  http-reuse always
  server web $web_addr:$web_port
EOF
for c in a b; do "$HAPROXY" -c -q -f "haproxy-$c.cfg" || fail "haproxy-$c.cfg"; done
"$HAPROXY" -db -f haproxy-b.cfg > haproxy-b.log 2>&1 & pids+=($!)
hb_pid=$!
"$HAPROXY" -db -f haproxy-a.cfg > haproxy-a.log 2>&1 & pids+=($!)
ha_pid=$!
wait_for "haproxy A answers through B (logs: $(cat haproxy-a.log haproxy-b.log | tr '\n' ' '))" 10 bash -c "curl -sf -m 2 http://$ha_a:$ha_a_port/ | grep -q '^x'"
# The wire between A and B: TLS 1.3, h2, and B refuses a caller without a client certificate.
tls_line=$(openssl s_client -connect "$ha_b:$ha_b_port" -cert client.crt -key client.key -CAfile root.pem \
  -servername web.bench -alpn h2 </dev/null 2>/dev/null | grep -E "^(New|ALPN)" | tr '\n' ' ' || true)
echo "haproxy A pid $ha_pid, B pid $hb_pid; A->B: $tls_line"
if curl -s -m 2 -k --tls-max 1.3 "https://$ha_b:$ha_b_port/" >/dev/null 2>&1; then
  fail "haproxy B answered a caller without a client certificate"
fi

if [ "${HOLD:-0}" != 0 ]; then
  echo "HOLD: everything stays up for $HOLD s (work dir $work); Starling: curl -H 'Host: $authority' http://$client_addr:4140/"
  sleep "$HOLD" & wait $!
fi

# --- measurements ---
paths=(direct starling haproxy)
declare -A url host proxies
url[direct]=http://$web_addr:$web_port/;      host[direct]=""
url[starling]=http://$client_addr:4140/;       host[starling]=$authority
url[haproxy]=http://$ha_a:$ha_a_port/;         host[haproxy]=""
proxies[direct]=""
proxies[starling]="$client_pid $web_pid"
proxies[haproxy]="$ha_pid $hb_pid"
if [ -n "${COMPARE_BIN:-}" ]; then
  paths+=(compare)
  url[compare]=http://$compare_client_addr:4140/; host[compare]=$compare_authority
  proxies[compare]="$compare_client_pid $compare_web_pid"
fi
if [ "$METRICS_OFF" = 1 ]; then
  paths+=(nometrics)
  url[nometrics]=http://$nometrics_client_addr:4140/; host[nometrics]=$nometrics_authority
  proxies[nometrics]="$nometrics_client_pid $nometrics_web_pid"
fi
if [ "$POLICY" = 1 ]; then
  paths+=(policy)
  url[policy]=http://$policy_client_addr:4140/; host[policy]=$policy_authority
  proxies[policy]="$policy_client_pid $policy_web_pid"
fi
declare -A rps cpu p50 p99 p999 rss_idle rss_after rss_peak rss_anon errors closes fds app_conns
sleep 1
for p in "${paths[@]}"; do
  [ -n "${proxies[$p]}" ] || continue
  set -- ${proxies[$p]}
  rss_idle[$p]="$(rss_mb "$1")/$(rss_mb "$2")"
done
lua=$here/proxy-pair/wrk.lua

# wrk_run PATH SECONDS CONNECTIONS OUTFILE [rate R]: wrk with wrk.lua (HTTP/1.1 keep-alive)
wrk_run() {
  local p=$1 s=$2 c=$3 out=$4; shift 4
  local hdr=() extra=()
  [ -n "${host[$p]}" ] && hdr=(-H "Host: ${host[$p]}")
  [ $# -gt 0 ] && extra=(-- "$@" "$WRK_THREADS")
  wrk -t"$WRK_THREADS" -c"$c" -d"${s}s" --timeout 5s "${hdr[@]}" -s "$lua" "${url[$p]}" "${extra[@]}" > "$out" 2>&1 || true
}
# field NAME FILE: a value from wrk.lua's result line
field() { awk -v n="$1" '$1 == "result" { for (i = 2; i < NF; i += 2) if ($i == n) print $(i + 1) }' "$2" | tail -1; }
# tally PATH FILE: adds the run's failures and server-side closes; sets note for the run line
tally() {
  local p=$1 f=$2 bad cl
  bad=$(( $(field status_errors "$f") + $(field timeouts "$f") + $(field connect_errors "$f") + $(field write_errors "$f") ))
  cl=$(field read_errors "$f")
  errors[$p]=$(( ${errors[$p]:-0} + bad )); closes[$p]=$(( ${closes[$p]:-0} + cl ))
  note=""
  [ "$bad" != 0 ] && note+="  ($bad failed)"
  [ "$cl" != 0 ] && note+="  ($cl connections closed by the server side)"
  return 0
}

# rotated K ITEM...: the items rotated left by K. Each run starts with another path: on a noisy
# shared machine the place in the order moved a path's figure by more than a build change did
# (the same binary ran 15-45 % faster in the last slot than in the first).
rotated() {
  local k=$1; shift
  local items=("$@") n=$# i
  for ((i = 0; i < n; i++)); do echo "${items[$(( (i + k) % n ))]}"; done
}

echo
echo "== warm-up (2 s per path)"
for p in "${paths[@]}"; do wrk_run "$p" 2 "$WRK_CONNECTIONS" "warm-$p.out"; done

echo "== throughput: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${DURATION}s, $RUNS runs per path, interleaved, the order rotated per run"
for run in $(seq "$RUNS"); do
  for p in $(rotated $((run - 1)) "${paths[@]}"); do
    out=tp-$p-$run.out
    before=(); for pid in ${proxies[$p]}; do before+=("$(cpu_ticks "$pid")"); done
    wrk_run "$p" "$DURATION" "$WRK_CONNECTIONS" "$out"
    after=(); for pid in ${proxies[$p]}; do after+=("$(cpu_ticks "$pid")"); done
    reqs=$(field requests "$out")
    r=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    [ -n "$r" ] && [ -n "$reqs" ] || { cat "$out"; fail "wrk on $p"; }
    line="run $run  $(printf '%-9s' "$p") $(printf '%8s' "$r") req/s"
    i=0
    for pid in ${proxies[$p]}; do
      read -r total_a sys_a <<<"${before[$i]}"; read -r total_b sys_b <<<"${after[$i]}"
      ms=$(per_1k "$total_a" "$total_b" "$reqs")
      eval "cpu_${p}_$i+=(\"$ms\")"
      eval "sys_${p}_$i+=(\"$(per_1k "$sys_a" "$sys_b" "$reqs")\")"
      line+="  cpu[$([ $i = 0 ] && echo out || echo in)] $ms ms/1k"
      i=$((i + 1))
    done
    eval "rps_$p+=(\"$r\")"
    tally "$p" "$out"; echo "$line$note"
  done
done

echo "== latency at $RATE req/s: wrk -t$WRK_THREADS -c$RATE_CONNECTIONS -d${DURATION}s paced by wrk.lua, $RUNS runs per path, interleaved, the order rotated per run"
for run in $(seq "$RUNS"); do
  for p in $(rotated $((run - 1)) "${paths[@]}"); do
    out=lat-$p-$run.out
    wrk_run "$p" "$DURATION" "$RATE_CONNECTIONS" "$out" rate "$RATE"
    n=$(field requests "$out")
    [ -n "$n" ] || { cat "$out"; fail "paced wrk on $p"; }
    a=$(awk -v v="$(field p50_us "$out")" 'BEGIN { printf "%.3f", v / 1000 }')
    b=$(awk -v v="$(field p99_us "$out")" 'BEGIN { printf "%.3f", v / 1000 }')
    c=$(awk -v v="$(field p999_us "$out")" 'BEGIN { printf "%.3f", v / 1000 }')
    eval "p50_$p+=(\"$a\"); p99_$p+=(\"$b\"); p999_$p+=(\"$c\")"
    achieved=$(awk -v n="$n" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }')
    tally "$p" "$out"; echo "run $run  $(printf '%-9s' "$p") p50 $a  p99 $b  p99.9 $c ms  ($achieved req/s achieved)$note"
  done
done

# HTTP/2 clients (gRPC's way in): h2c prior knowledge to each pair's client side, the pairs only
# (informational, no target). Starling relays each stream on the event loop (HTTP2StreamRelay).
declare -A h2url h2rps
h2url[starling]=http://$client_addr:4140/; h2url[haproxy]=http://$ha_a:$ha_a_h2c_port/
[ -n "${COMPARE_BIN:-}" ] && h2url[compare]=http://$compare_client_addr:4140/
h2paths=(starling haproxy); [ -n "${COMPARE_BIN:-}" ] && h2paths+=(compare)
if command -v h2load >/dev/null 2>&1; then
  echo "== HTTP/2 clients: h2load -c10 -m10 -D$DURATION (h2c prior knowledge, :authority $authority), $RUNS runs per pair, interleaved, the order rotated per run"
  for run in $(seq "$RUNS"); do
    for p in $(rotated $((run - 1)) "${h2paths[@]}"); do
      auth=$authority; [ "$p" = compare ] && auth=$compare_authority
      out=h2-$p-$run.out
      h2load -c10 -m10 -D"$DURATION" -H ":authority: $auth" "${h2url[$p]}" > "$out" 2>&1 || true
      r=$(awk '/^finished in/ { gsub(",", "", $4); printf "%.0f", $4 }' "$out")
      ok=$(awk '/^requests:/ { print $8 }' "$out")
      echo "run $run  $(printf '%-9s' "$p") $(printf '%8s' "${r:-?}") req/s  (${ok:-?} succeeded)"
      eval "h2rps_$p+=(\"${r:-0}\")"
    done
  done
  for p in "${h2paths[@]}"; do eval "h2rps[$p]=\$(median \"\${h2rps_$p[@]}\")"; done
else
  echo "== HTTP/2 clients: skipped (h2load is not installed; apt-get install nghttp2-client)"
fi

sleep 1
for p in "${paths[@]}"; do
  [ -n "${proxies[$p]}" ] || continue
  set -- ${proxies[$p]}
  rss_after[$p]="$(rss_mb "$1")/$(rss_mb "$2")"
  rss_peak[$p]="$(hwm_mb "$1")/$(hwm_mb "$2")"
  rss_anon[$p]="$(anon_mb "$1")/$(anon_mb "$2")"
  fds[$p]="$(ls "/proc/$1/fd" | wc -l)/$(ls "/proc/$2/fd" | wc -l)"
  # connections the server-side proxy holds open to nginx
  dst=$web_addr; [ "$p" = compare ] && dst=$compare_web_addr; [ "$p" = nometrics ] && dst=$nometrics_web_addr; [ "$p" = policy ] && dst=$policy_web_addr
  app_conns[$p]=$(ss -tnp state established "( dst $dst and dport = :$web_port )" 2>/dev/null | grep -c "pid=$2," || true)
done

if [ "$POLICY" = 1 ]; then
  # The policy was in force: a caller it does not name is refused (403).
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "Host: webp.bench:$web_port" "http://$client_addr:4140/" || true)
  [ "$code" = 403 ] || fail "the policy pair's server admitted a caller outside its policy (status $code)"
  echo "policy pair: a caller outside the policy gets 403 (checked after the runs)"
fi

if [ "${PROFILE:-0}" = 1 ]; then
  echo
  echo "== profile: perf record -g on both Starling proxies during one ${DURATION}s throughput run"
  if command -v perf >/dev/null 2>&1; then
    perf record -F 499 -g -o perf-out.data -p "$client_pid" -- sleep "$DURATION" >/dev/null 2>&1 &
    po=$!
    perf record -F 499 -g -o perf-in.data -p "$web_pid" -- sleep "$DURATION" >/dev/null 2>&1 &
    pi=$!
    wrk_run starling "$DURATION" "$WRK_CONNECTIONS" profile.out
    wait $po $pi || true
    for side in out in; do
      echo "-- $side: top symbols (self)"
      perf report -i "perf-$side.data" --no-children --sort dso,sym --stdio 2>/dev/null \
        | grep -E '^ +[0-9]' | head -25 | sed 's/^/   /' || true
      echo "-- $side: by module, allocation and reference counting charged to their caller"
      "$here/profile-modules.py" "perf-$side.data" 2>/dev/null | sed 's/^/   /' || true
      # What the request metrics cost: the share of samples inside the per-request recording
      # (OutboundMetrics.record, InboundMetrics.recordResponse), callees included.
      share=$(perf report -i "perf-$side.data" --children --sort sym --stdio 2>/dev/null |
        awk '/OutboundMetricsO6record_7latency|InboundMetricsO14recordResponse/ { gsub("%", "", $1); s += $1 } END { printf "%.2f", s }')
      echo "-- $side: request metrics (recording, callees included): ${share}% of the proxy's samples"
    done
  else
    echo "(perf not installed)"
  fi
fi

# --- table ---
for p in "${paths[@]}"; do
  eval "rps[$p]=\$(median \"\${rps_$p[@]}\")"
  eval "p50[$p]=\$(median \"\${p50_$p[@]}\"); p99[$p]=\$(median \"\${p99_$p[@]}\"); p999[$p]=\$(median \"\${p999_$p[@]}\")"
  if [ -n "${proxies[$p]}" ]; then
    eval "cpu[$p]=\"\$(median \"\${cpu_${p}_0[@]}\")+\$(median \"\${cpu_${p}_1[@]}\")\""
  else
    cpu[$p]="-"; rss_idle[$p]="-"; rss_after[$p]="-"
  fi
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
label() { case $1 in direct) echo "direct (wrk->nginx)";; starling) echo "Starling pair";; haproxy) echo "HAProxy pair (h2)";; compare) echo "Starling COMPARE_BIN";; nometrics) echo "Starling metrics off";; policy) echo "Starling + policy";; esac; }
echo
printf '%-20s %8s %8s %8s %8s %8s %8s %13s %13s %13s\n' "path" "req/s" "/direct" "/haproxy" "p50 ms" "p99 ms" "p99.9 ms" "CPU-ms/1k" "RSS idle MB" "RSS after MB"
printf '%-20s %8s %8s %8s %8s %8s %8s %13s %13s %13s\n' "" "" "" "" "@$RATE/s" "@$RATE/s" "@$RATE/s" "out+in" "out/in" "out/in"
for p in "${paths[@]}"; do
  printf '%-20s %8s %8s %8s %8s %8s %8s %13s %13s %13s\n' "$(label "$p")" "${rps[$p]}" \
    "$(ratio "${rps[$p]}" "${rps[direct]}")" "$(ratio "${rps[$p]}" "${rps[haproxy]}")" \
    "${p50[$p]}" "${p99[$p]}" "${p999[$p]}" "${cpu[$p]}" "${rss_idle[$p]}" "${rss_after[$p]}"
done
echo "(medians of $RUNS runs; p50/p99/p99.9 at a fixed $RATE req/s; CPU = utime+stime per 1,000 requests of the throughput runs)"
# The ratio run by run (the pairs of a run are measured one after the other): its spread is the
# measurement's noise, which the medians above hide.
per_run=""
for i in $(seq 0 $((RUNS - 1))); do
  eval "s=\${rps_starling[$i]} h=\${rps_haproxy[$i]}"
  per_run+=" $(ratio "$s" "$h")x"
done
echo "Starling/HAProxy throughput run by run:$per_run"
if [ "$METRICS_OFF" = 1 ]; then
  # What the request metrics cost: the pair with them on against the pair with them off, run by
  # run (measured back to back) and on the medians.
  per_run=""
  for i in $(seq 0 $((RUNS - 1))); do
    eval "s=\${rps_starling[$i]} m=\${rps_nometrics[$i]}"
    per_run+=" $(ratio "$s" "$m")x"
  done
  echo "metrics on/off throughput: $(ratio "${rps[starling]}" "${rps[nometrics]}")x on the medians (run by run:$per_run);" \
    "CPU-ms/1k on ${cpu[starling]}, off ${cpu[nometrics]}"
fi
if [ "$POLICY" = 1 ]; then
  per_run=""
  for i in $(seq 0 $((RUNS - 1))); do
    eval "s=\${rps_starling[$i]} q=\${rps_policy[$i]}"
    per_run+=" $(ratio "$q" "$s")x"
  done
  echo "policy/no policy throughput: $(ratio "${rps[policy]}" "${rps[starling]}")x on the medians (run by run:$per_run);" \
    "CPU-ms/1k with ${cpu[policy]}, without ${cpu[starling]}"
fi
if [ -n "${h2rps[starling]:-}" ]; then
  line="HTTP/2 clients (h2load -c10 -m10, medians): Starling ${h2rps[starling]} req/s, HAProxy ${h2rps[haproxy]} req/s ($(ratio "${h2rps[starling]}" "${h2rps[haproxy]}")x)"
  [ -n "${h2rps[compare]:-}" ] && line+=", COMPARE_BIN ${h2rps[compare]} req/s"
  echo "$line"
fi
for p in "${paths[@]}"; do
  printf '  %-9s failed requests %s, connections closed by the server side %s' "$p" "${errors[$p]:-0}" "${closes[$p]:-0}"
  [ -n "${proxies[$p]}" ] && printf '; peak RSS out/in %s MB; open fds out/in %s; connections to nginx held by the server-side proxy %s' \
    "${rss_peak[$p]}" "${fds[$p]}" "${app_conns[$p]}"
  [ -n "${proxies[$p]}" ] && printf '; private (anonymous) RSS after load out/in %s MB' "${rss_anon[$p]}"
  # The CPU column split: what the kernel spent for each proxy (sockets, TLS records' copies,
  # wake-ups) and what the proxy's own code did (user).
  if [ -n "${proxies[$p]}" ]; then
    eval "sys_out=\$(median \"\${sys_${p}_0[@]}\"); sys_in=\$(median \"\${sys_${p}_1[@]}\")"
    eval "all_out=\$(median \"\${cpu_${p}_0[@]}\"); all_in=\$(median \"\${cpu_${p}_1[@]}\")"
    printf '; CPU-ms/1k user + system out %s + %s, in %s + %s' \
      "$(awk -v a="$all_out" -v s="$sys_out" 'BEGIN { printf "%.1f", a - s }')" "$sys_out" \
      "$(awk -v a="$all_in" -v s="$sys_in" 'BEGIN { printf "%.1f", a - s }')" "$sys_in"
  fi
  echo
done

# --- targets ---
missed=0
# verdict OK: pass/FAIL (callers also set `missed` outside the command substitution)
verdict() { if [ "$1" = 1 ]; then echo pass; else echo FAIL; fi; }
tp_ratio=$(ratio "${rps[starling]}" "${rps[haproxy]}")
added_s=$(awk -v a="${p99[starling]}" -v d="${p99[direct]}" 'BEGIN { printf "%.3f", a - d }')
added_h=$(awk -v a="${p99[haproxy]}" -v d="${p99[direct]}" 'BEGIN { printf "%.3f", a - d }')
rss_max=$(echo "${rss_after[starling]}" | tr '/' '\n' | sort -g | tail -1)
echo
printf '%-58s %-22s %s\n' "target" "value" "result"
ok_tp=$(awk -v r="$tp_ratio" 'BEGIN { print (r >= 1) }')
ok_p99=$(awk -v a="$added_s" -v b="$added_h" 'BEGIN { print (a <= b) }')
ok_rss=$(awk -v r="$rss_max" 'BEGIN { print (r < 30) }')
for ok in "$ok_tp" "$ok_p99" "$ok_rss"; do [ "$ok" = 1 ] || missed=1; done
printf '%-58s %-22s %s\n' "Starling pair throughput >= HAProxy pair's" "${tp_ratio}x" "$(verdict "$ok_tp")"
printf '%-58s %-22s %s\n' "p99 added at $RATE req/s <= HAProxy pair's ($added_h ms)" "$added_s ms" "$(verdict "$ok_p99")"
printf '%-58s %-22s %s\n' "RSS per Starling proxy after load < 30 MB" "${rss_after[starling]} MB" "$(verdict "$ok_rss")"
if [ "$METRICS_OFF" = 1 ]; then
  cost=$(awk -v a="${rps[starling]}" -v b="${rps[nometrics]}" 'BEGIN { if (b > 0) printf "%.1f", (1 - a / b) * 100; else print "-" }')
  ok_cost=$(awk -v c="$cost" 'BEGIN { print (c <= 3) }')
  [ "$ok_cost" = 1 ] || missed=1
  printf '%-58s %-22s %s\n' "request metrics cost <= 3 % of throughput (on vs off)" "$cost %" "$(verdict "$ok_cost")"
fi
if [ "$POLICY" = 1 ]; then
  # Against the COMPARE_BIN pair when there is one: started the same way, after the first pair,
  # it is the fairer baseline (the first pair measures ~2 % faster than any later one).
  base=starling; [ -n "${rps[compare]:-}" ] && base=compare
  cost=$(awk -v a="${rps[policy]}" -v b="${rps[$base]}" 'BEGIN { if (b > 0) printf "%.1f", (1 - a / b) * 100; else print "-" }')
  ok_cost=$(awk -v c="$cost" 'BEGIN { print (c <= 3) }')
  [ "$ok_cost" = 1 ] || missed=1
  printf '%-58s %-22s %s\n' "authorization (100 identities) costs <= 3 % (vs $base pair)" "$cost %" "$(verdict "$ok_cost")"
fi
defect=$(awk -v r="$tp_ratio" 'BEGIN { print (r < 0.5) }')
printf '%-58s %-22s %s\n' "defect if Starling throughput < 0.5x HAProxy pair's" "${tp_ratio}x" \
  "$([ "$defect" = 1 ] && echo "DEFECT" || echo "no defect")"
[ "$defect" = 1 ] && missed=1
[ "${errors[starling]:-0}${errors[haproxy]:-0}${errors[direct]:-0}" = 000 ] || echo "warning: some requests failed (see above)"
[ "${closes[starling]:-0}" = 0 ] || echo "note: the Starling outbound closed the client's keep-alive connection ${closes[starling]} times (wrk reconnects; HTTP/1.1 keep-alive is not kept)"
echo
echo "(machine: $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg); wrk, nginx and the proxies share them)"
exit $missed
