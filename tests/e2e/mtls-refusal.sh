#!/usr/bin/env bash
# End to end: every way a TLS client can be wrong, against a proxy's inbound mTLS port (4143) and
# the multicluster gateway's port, with `openssl s_client` and Python's ssl module as the clients.
# One local cluster (mtls1, 127.66.0.0/16, loopback only) with the mesh and the gateway installed;
# client certificates are issued from the mesh's real root and issuer (or another root) by
# tests/e2e/mtls-refusal/certs.py, each wrong in one way. For every case: the handshake is refused
# (the client gets no application data), the listener logs one line naming the reason, and its
# Prometheus counter counts each attempt under that reason
# (starling_proxy_tls_handshake_failures_total / starling_gateway_refused_total). Positive
# controls: a certificate Starling itself issued, the generator's own valid certificate, and one
# with two intermediates are accepted; a mesh call through the inbound still works.
# The cases, what the client sees and the reasons are tabled in docs/mtls-refusals.md.
# Prints "mtls-refusal: N passed, M failed"; exits non-zero on any failure.
#
#   tests/e2e/mtls-refusal.sh [path/to/starling]
#
# Needs openssl, python3 with cryptography (certificates), h2 (an HTTP/2 request after the
# handshake), grpcio and PyYAML (a certificate from Starling's identity service, via
# tests/e2e/grpc_client.py), curl.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mt=$here/mtls-refusal
. "$here/lib.sh"
e2e_binary "${1:-}"

cluster=mtls1
range=127.66.0.0/16
ctl=127.66.0.1            # the controller (API :8086, admin :9990) and the gateway (:4143)
trust=identity.starling.cluster.local
e2e_home starling-mtls
cleanup() {
  stop_workloads
  "$STARLING" cluster delete "$cluster" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"
S() { timeout 30 "$STARLING" "$@"; }

step "cluster $cluster ($range), mesh and gateway installed"
expect_ok "cluster create $cluster --address-range $range" S cluster create "$cluster" --address-range "$range"
S certs create "$trust" root.crt root.key --profile root-ca --no-password --insecure >/dev/null
S certs create "$trust" issuer.crt issuer.key --profile intermediate-ca --not-after 8760h \
  --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
expect_ok "install | apply" bash -c "timeout 30 '$STARLING' install --identity-trust-anchors-file root.crt \
  --identity-issuer-certificate-file issuer.crt --identity-issuer-key-file issuer.key | timeout 30 '$STARLING' apply -f -"
expect_ok "multicluster install | apply" bash -c "timeout 30 '$STARLING' multicluster install | timeout 30 '$STARLING' apply -f -"
expect_ok "client certificates from the mesh's root and issuer (certs.py)" \
  python3 "$mt/certs.py" root.crt root.key issuer.crt issuer.key certs --namespace test --service-account tester

start_workload podinfo.log -n test --service podinfo --service-account podinfo --port 9898 --log-level info -- \
  "$STARLING" demo-app podinfo --message "podinfo in $cluster"
start_workload curl.log -n test --service curl --service-account curl --port 7001 -- sleep 100000
paddr=$(address_of podinfo.log) || { bad "podinfo never started"; show < podinfo.log; }
caddr=$(address_of curl.log) || { bad "the curl workload never started"; show < curl.log; }
eventually "podinfo registered" 45 registered test podinfo
controller_log=$STARLING_HOME/clusters/$cluster/controller.log
eventually "the gateway listens on $ctl:4143" 30 grep -q "gateway listening" "$controller_log"

# The two listeners under test: where to connect, where they log, where their counter is.
declare -A addr log metrics metric
addr[inbound]=$paddr:4143;  log[inbound]=$work/podinfo.log
metrics[inbound]=http://$paddr:4191/metrics
metric[inbound]=starling_proxy_tls_handshake_failures_total
addr[gateway]=$ctl:4143;    log[gateway]=$controller_log
metrics[gateway]=http://$ctl:9990/metrics
metric[gateway]=starling_gateway_refused_total

# count LISTENER REASON: the listener's refusal counter for REASON (0 before the first one)
count() {
  local v
  v=$(curl -s -m 5 "${metrics[$1]}" | grep -E "^${metric[$1]}\{.*reason=\"$2\"" | awk '{s += $NF} END {print s + 0}')
  echo "${v:-0}"
}
# total LISTENER: all its refusals, any reason
total() { curl -s -m 5 "${metrics[$1]}" | grep -E "^${metric[$1]}\{" | awk '{s += $NF} END {print s + 0}'; }
# refusals LISTENER REASON: its "refused inbound connection" log lines with REASON
refusals() { grep -a "refused inbound connection" "${log[$1]}" | grep -ac "reason=$2 " ; }

# sclient LISTENER CASE [openssl options]: openssl s_client with CASE's certificate (none for
# "none"); sets sc_data (bytes of application data the server sent) and sc_err (its stderr).
sclient() {
  local l=$1 c=$2; shift 2
  local certopts=()
  [ "$c" != none ] && certopts=(-cert "certs/$c.crt" -key "certs/$c.key" -cert_chain "certs/$c.chain.pem")
  (sleep 1) | timeout 15 openssl s_client -connect "${addr[$l]}" -alpn h2 -CAfile root.crt -brief \
    "${certopts[@]}" "$@" > sc.out 2> sc.err
  sc_data=$(wc -c < sc.out); sc_err=$(tr -d '\0' < sc.err)
}
# pyclient LISTENER CASE [probe options]: Python's ssl (probe.py); sets py_out.
pyclient() {
  local l=$1 c=$2; shift 2
  local certopts=()
  [ "$c" != none ] && certopts=(--cert "certs/$c.pem" --key "certs/$c.key")
  py_out=$(timeout 20 python3 "$mt/probe.py" "${addr[$l]%:*}" "${addr[$l]#*:}" --ca root.crt "${certopts[@]}" "$@" 2>&1)
}

# refused LISTENER LABEL CASE REASON LOGPATTERN PEERPATTERN CLIENTS [client options]
#   CASE's certificate is refused by both clients (or by Python only when CLIENTS=py), the client
#   sees PEERPATTERN (an alert, or the connection closed), the listener logs one line per attempt
#   with reason=REASON matching LOGPATTERN, and its counter for REASON grows by one per attempt.
refused() {
  local l=$1 label=$2 c=$3 reason=$4 logpat=$5 peerpat=$6 clients=$7; shift 7
  local before logs_before attempts=0 n
  before=$(count "$l" "$reason"); logs_before=$(refusals "$l" "$reason")
  if [ "$clients" = both ]; then
    sclient "$l" "$c" "$@"; attempts=$((attempts + 1))
    if [ "$sc_data" = 0 ] && grep -qaiE -- "$peerpat" <<<"$sc_err"; then
      ok "$l, $label: openssl s_client refused ($(grep -aoiE -- "$peerpat" <<<"$sc_err" | head -1))"
    else bad "$l, $label: openssl s_client got $sc_data bytes of data; wanted a refusal matching /$peerpat/"; show <<<"$sc_err"; fi
  fi
  local popts=()
  for o in "$@"; do
    case $o in -servername) popts+=(--sni);; -tls1_2) popts+=(--tls12);; *) popts+=("$o");; esac
  done
  pyclient "$l" "$c" "${popts[@]}"; attempts=$((attempts + 1))
  if grep -q '^refused: ' <<<"$py_out" && grep -qaiE -- "$peerpat" <<<"$py_out"; then
    ok "$l, $label: Python ssl refused (${py_out#refused: })"
  else bad "$l, $label: Python ssl: $py_out (wanted a refusal matching /$peerpat/)"; fi
  local want=$((before + attempts))
  n=$before
  for _ in $(seq 20); do n=$(count "$l" "$reason"); [ "$n" -ge "$want" ] && break; sleep 0.25; done
  [ "$n" = "$want" ] && ok "$l, $label: ${metric[$l]}{reason=\"$reason\"} counted $attempts ($before → $n)" \
    || bad "$l, $label: ${metric[$l]}{reason=\"$reason\"} went $before → $n, wanted $want"
  local lines line
  lines=$(( $(refusals "$l" "$reason") - logs_before ))
  line=$(grep -a "refused inbound connection" "${log[$l]}" | grep -a "reason=$reason " | tail -1)
  if [ "$lines" = "$attempts" ] && grep -qaE -- "$logpat" <<<"$line"; then
    ok "$l, $label: logged reason=$reason: $(sed -E 's/.* error=(.*) peer=.*/\1/' <<<"$line" | cut -c1-150)"
  else bad "$l, $label: $lines new log lines with reason=$reason (wanted $attempts) matching /$logpat/"; show 3 <<<"$line"; fi
}

# accepted LISTENER LABEL CASE: both clients complete the handshake and the listener serves the
# connection (its HTTP/2 SETTINGS frame arrives); nothing is counted as refused.
accepted() {
  local l=$1 label=$2 c=$3 before after
  before=$(total "$l")
  sclient "$l" "$c"
  if [ "$sc_data" -gt 0 ] && ! grep -qai alert <<<"$sc_err" && [ "$(od -An -tx1 -j3 -N1 sc.out | tr -d ' ')" = 04 ]; then
    ok "$l, $label: openssl s_client is served (HTTP/2 SETTINGS after the handshake, no alert)"
  else bad "$l, $label: openssl s_client was not served ($sc_data bytes)"; show <<<"$sc_err"; fi
  pyclient "$l" "$c"
  grep -q '^accepted: TLSv1.3 ALPN h2 first bytes ......04' <<<"$py_out" \
    && ok "$l, $label: Python ssl is served ($py_out)" || bad "$l, $label: Python ssl: $py_out"
  sleep 0.5; after=$(total "$l")
  [ "$after" = "$before" ] && ok "$l, $label: no refusal counted" || bad "$l, $label: refusals went $before → $after"
}

step "positive controls"
# A certificate from Starling's own identity service (token + CSR), as a proxy holds.
ca=$work/ca.pem
python3 - "$STARLING_HOME/config" "$ca" <<'PY'
import base64, sys, yaml
ctx = yaml.safe_load(open(sys.argv[1]))["contexts"][0]
open(sys.argv[2], "wb").write(base64.b64decode(ctx["certificate-authority-data"]))
PY
token=$(S token create --namespace test --service-account tester --ttl 1h)
if timeout 30 python3 "$here/grpc_client.py" certify --server "$ctl:8086" --ca "$ca" --token "$token" \
     --identity "tester.test.serviceaccount.$trust" --out issued > certify.log 2>&1; then
  cp issued/leaf.pem certs/starling-issued.crt; cp issued/leaf.key certs/starling-issued.key
  cp issued/chain.pem certs/starling-issued.chain.pem; cat issued/leaf.pem issued/chain.pem > certs/starling-issued.pem
  for l in inbound gateway; do accepted "$l" "a certificate Starling's identity service issued" starling-issued; done
else
  bad "could not get a certificate from the identity service (token create + grpc_client.py certify)"; show < certify.log
fi
for l in inbound gateway; do
  accepted "$l" "the generator's valid certificate (leaf + issuer)" valid
  accepted "$l" "a chain with two intermediates (the longest allowed: anchor, 2 intermediates, leaf)" two-intermediates
done
proxy=http://$caddr:4140
eventually "a mesh call through podinfo's inbound still works (curl -x $proxy http://podinfo.test:9898/)" 30 \
  bash -c "curl -sf -m 5 -x $proxy http://podinfo.test:9898/ | grep -q 'podinfo in $cluster'"

other_sni=other.test.serviceaccount.$trust
for l in inbound gateway; do
  step "$l (${addr[$l]}): refusals"
  refused "$l" "client certificate expired" expired expired \
    "certificate 'CN=tester\.test\.[^']*' expired at 20" 'alert certificate expired|CERTIFICATE_EXPIRED' both
  refused "$l" "client certificate not yet valid" not-yet-valid not-yet-valid \
    "is not valid before 20" 'alert certificate expired|CERTIFICATE_EXPIRED' both
  refused "$l" "signed by another root" other-root unknown-authority \
    "issued by an unknown authority .*it does not chain to the mesh's trust anchors" 'alert unknown ca|UNKNOWN_CA' both
  refused "$l" "right root, identity of another trust domain" other-trust-domain identity-not-allowed \
    "identity tester\.test\.serviceaccount\.identity\.starling\.other\.example is not allowed" \
    'CONNECTION ESTABLISHED|closed after the handshake' both
  refused "$l" "leaf with extendedKeyUsage serverAuth only" server-auth-only no-client-auth \
    "not for TLS client authentication: its extendedKeyUsage is serverAuth, without clientAuth" \
    'alert unsupported certificate|UNSUPPORTED_CERTIFICATE' both
  refused "$l" "leaf without any extendedKeyUsage" no-eku no-client-auth \
    "not for TLS client authentication: it has no extendedKeyUsage" 'alert internal error|INTERNAL_ERROR' both
  refused "$l" "CA certificate (CA:TRUE) as the leaf" ca-leaf ca-as-leaf \
    "is a CA certificate \(basicConstraints CA:TRUE\) used as a client leaf" 'alert internal error|INTERNAL_ERROR' both
  refused "$l" "chain longer than allowed (three intermediates)" three-intermediates chain-too-long \
    "chain is longer than allowed: .* at most 4 are accepted" 'alert internal error|INTERNAL_ERROR' both
  refused "$l" "TLS 1.2 only" valid protocol-mismatch \
    "the client offered TLS 1.2 or older; TLS 1.3 is required" 'alert protocol version|PROTOCOL_VERSION' both -tls1_2
  refused "$l" "SNI naming another workload" valid sni-mismatch \
    "asked \(SNI\) for identity other\.test\.serviceaccount.* but this listener serves identity" \
    'alert internal error|INTERNAL_ERROR' both -servername "$other_sni"
  refused "$l" "SAN is an IP address only" ip-san no-mesh-identity \
    "names no single mesh identity \(SANs: IP 127\.66\.0\.200\)" 'CONNECTION ESTABLISHED|closed after the handshake' both
  refused "$l" "SAN is an IP address besides the mesh identity" ip-and-identity-san non-mesh-san \
    "names IP 127\.66\.0\.200 besides its mesh identity" 'alert internal error|INTERNAL_ERROR' both
  refused "$l" "no client certificate" none no-client-certificate \
    "the client sent no certificate" 'alert certificate required|CERTIFICATE_REQUIRED' both
  # Plaintext: no TLS client at all; Python sends an HTTP/1.1 request on a bare socket.
  before=$(count "$l" not-tls); logs_before=$(refusals "$l" not-tls)
  out=$(timeout 20 python3 "$mt/probe.py" "${addr[$l]%:*}" "${addr[$l]#*:}" --ca root.crt --plaintext 2>&1)
  matches "$l, plaintext HTTP/1.1: closed without an answer" '^refused: ' "$out"
  curl_out=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://${addr[$l]}/" 2>&1)
  [ "$curl_out" = 000 ] && ok "$l, plaintext HTTP/1.1 (curl): no HTTP answer" || bad "$l, plaintext (curl) got HTTP $curl_out"
  for _ in $(seq 20); do n=$(count "$l" not-tls); [ "$n" -ge $((before + 2)) ] && break; sleep 0.25; done
  [ "$n" = $((before + 2)) ] && ok "$l, plaintext: ${metric[$l]}{reason=\"not-tls\"} counted 2 ($before → $n)" \
    || bad "$l, plaintext: not-tls went $before → $n, wanted $((before + 2))"
  line=$(grep -a "refused inbound connection" "${log[$l]}" | grep -a "reason=not-tls " | tail -1)
  [ $(( $(refusals "$l" not-tls) - logs_before )) = 2 ] && grep -qa "the client did not speak TLS" <<<"$line" \
    && ok "$l, plaintext: logged reason=not-tls: the client did not speak TLS" || { bad "$l, plaintext: log"; show 3 <<<"$line"; }
done

step "right root, an identity the route does not admit (Python ssl + HTTP/2 GET)"
# The handshake is the mesh's to accept: tester is a valid identity of this trust domain. What a
# port admits is its authorization policy's: podinfo's Server admits only curl's service account,
# so tester's request is answered 403, naming why, at podinfo's inbound, and through the gateway
# (which forwards only what was exported, then podinfo's inbound judges the caller it names).
podinfo_target=podinfo.test.svc.cluster.local:9898
# pyget LISTENER: tester's GET / to podinfo on that listener; prints probe.py's line.
pyget() {
  timeout 20 python3 "$mt/probe.py" "${addr[$1]%:*}" "${addr[$1]#*:}" --ca root.crt \
    --cert certs/valid.pem --key certs/valid.key --get "$podinfo_target/" --header "starling-target:$podinfo_target" 2>&1
}
deny_count() { curl -s -m 5 "http://$paddr:4191/metrics" | grep -E '^inbound_http_authz_deny_total\{' | awk '{s += $NF} END {print s + 0}'; }
out=$(pyget inbound)
matches "inbound, before any policy: tester's GET is served" '^answered: 200 ' "$out"
# not_exported_lines: the gateway's log lines refusing a request as not exported
not_exported_lines() { grep -a 'gateway refused a request' "${log[gateway]}" | grep -a 'reason=not-exported'; }
before=$(count gateway not-exported); logs_before=$(not_exported_lines | wc -l)
out=$(pyget gateway)
matches "gateway, podinfo not exported: refused, naming why" '^answered: 403 starling-error=not-exported' "$out"
[ "$(count gateway not-exported)" = $((before + 1)) ] && ok "gateway: counted in ${metric[gateway]}{reason=\"not-exported\"}" \
  || bad "gateway: not-exported went $before → $(count gateway not-exported)"
[ $(( $(not_exported_lines | wc -l) - logs_before )) = 1 ] \
  && ok "gateway: logged: $(not_exported_lines | tail -1 | grep -o 'error=.* reason=not-exported')" \
  || bad "gateway: no 'gateway refused a request' line with reason=not-exported"
expect_ok "export podinfo" S label svc -n test podinfo mirror.starling.io/exported=true
exported_ok() { pyget gateway | grep -q '^answered: 200 '; }
eventually "gateway, podinfo exported: tester's GET is served" 20 exported_ok
podinfo_policy_yaml 9898 curl > podinfo-policy.yaml
expect_ok "apply a Server for podinfo admitting only curl's service account" S apply -f podinfo-policy.yaml
denied_ok() { pyget inbound | grep -q '^answered: 403 '; }
eventually "inbound: tester's GET is now 403" 10 denied_ok
before=$(deny_count); logs_before=$(grep -ac 'request denied' podinfo.log)
for l in inbound gateway; do
  out=$(pyget $l)
  matches "$l: tester's GET answered 403, naming the policy" \
    "^answered: 403 starling-error=forbidden: no authorization of server test/podinfo-http admits tester\.test\.serviceaccount" "$out"
done
after=$(deny_count)
[ "$after" = $((before + 2)) ] && ok "podinfo's inbound counted both in inbound_http_authz_deny_total ($before → $after)" \
  || bad "inbound_http_authz_deny_total went $before → $after, wanted +2"
line=$(grep -a 'request denied' podinfo.log | tail -1)
[ $(( $(grep -ac 'request denied' podinfo.log) - logs_before )) = 2 ] && grep -qa 'tester\.test\.serviceaccount' <<<"$line" \
  && ok "podinfo's proxy logged both denials, naming the caller: $(cut -c1-160 <<<"$line")" || { bad "the denials' log lines"; show 3 <<<"$line"; }
eventually "curl's own calls (its service account is admitted) still work" 20 \
  bash -c "curl -sf -m 5 -x $proxy http://podinfo.test:9898/ | grep -q 'podinfo in $cluster'"

# The gateway counts every TCP connection, refused ones too: opened, closed by protocol (a refused
# one never got one: unknown), and the bytes each carried.
gm=$(curl -s -m 5 "${metrics[gateway]}")
sum_of() { grep -E "^$1" <<<"$gm" | awk '{s += $NF} END {print s + 0}'; }
opened=$(sum_of 'starling_gateway_tcp_open_total'); refused_closed=$(sum_of 'starling_gateway_tcp_close_total\{protocol="unknown"\}')
read_bytes=$(sum_of 'starling_gateway_tcp_bytes_total\{io="read"\}')
[ "$opened" -ge "$refused_closed" ] && [ "$refused_closed" -ge 20 ] && [ "$read_bytes" -gt 0 ] \
  && ok "the gateway counted the connections: $opened opened, $refused_closed closed before a protocol, $read_bytes bytes read" \
  || { bad "the gateway's TCP counters: $opened opened, $refused_closed closed as unknown, $read_bytes bytes read"; grep '^starling_gateway_tcp' <<<"$gm" | show; }

echo
echo "mtls-refusal: $passed passed, $failed failed"
[ "$failed" = 0 ]
