#!/usr/bin/env bash
# End to end: `starling viz` on a real Prometheus (Debian's package), one local cluster (viz1,
# 127.61.0.0/16, loopback only). The controller serves Prometheus HTTP service discovery;
# `viz install` starts Prometheus beside it; known traffic goes through the mesh (200 answers
# and 20 × /status/500 from podinfo, a 50/50 TrafficSplit); `viz stat svc|workload|trafficsplit`
# must show the rates and the success that were sent, `viz edges` the caller and callee with
# both identities. `viz tap` shows live requests with both identities, `viz top` the busiest
# paths. Without Prometheus, viz says so plainly.
# Prints "viz e2e: N passed, N failed"; exits non-zero on any failure.
#
#   tests/e2e/viz.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib.sh"
e2e_binary "${1:-}"

cluster=viz1
range=127.61.0.0/16
ctl=127.61.0.1
trust=identity.starling.cluster.local
work=$(mktemp -d /tmp/starling-viz.XXXXXX)
export STARLING_HOME=$work/home
unset STARLING_CONFIG http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
cleanup() {
  stop_workloads
  "$STARLING" cluster delete "$cluster" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"
S() { timeout 60 "$STARLING" "$@"; }

step "cluster $cluster ($range), mesh installed, workloads"
expect_ok "cluster create $cluster" S cluster create "$cluster" --address-range "$range"
S certs create "$trust" root.crt root.key --profile root-ca --no-password --insecure >/dev/null
S certs create "$trust" issuer.crt issuer.key --profile intermediate-ca --not-after 8760h \
  --no-password --insecure --ca root.crt --ca-key root.key >/dev/null
expect_ok "install | apply" bash -c "timeout 30 '$STARLING' install --identity-trust-anchors-file root.crt \
  --identity-issuer-certificate-file issuer.crt --identity-issuer-key-file issuer.key | timeout 30 '$STARLING' apply -f -"
start_workload podinfo.log -n test --service podinfo --port 9898 -- "$STARLING" demo-app podinfo --message viz
start_workload podinfo-b.log -n test --service podinfo-b --port 9898 -- "$STARLING" demo-app podinfo --message viz-b
# The caller serves a port too: `starling run` registers a workload once its application
# listens, and only registered workloads are discovered (and scraped).
start_workload curl.log -n test --service curl --service-account curl --port 7001 -- \
  "$STARLING" demo-app podinfo --port 7001 --message caller
caddr=$(address_of curl.log) || { bad "the curl workload never started"; show < curl.log; }
# A pure client: it never listens, so after 30 s it is registered as a client only (scraped and
# tapped, never an endpoint). It calls the curl workload's app (not podinfo, whose figures are
# checked exactly below) once a second through its own proxy.
start_workload loadgen.log -n test --service loadgen --service-account loadgen --port 7009 -- \
  bash -c 'while true; do curl -s -m 5 -o /dev/null "http://curl.test:7001/status/204"; sleep 1; done'

proxy=http://$caddr:4140
for w in podinfo podinfo-b curl; do eventually "$w registered" 45 registered test "$w"; done

step "without Prometheus, viz says so plainly"
out=$(S viz stat svc -n test 2>&1); rc=$?
if [ $rc != 0 ] && grep -q "no Prometheus runs for cluster $cluster" <<<"$out" && grep -q "viz install" <<<"$out"; then
  ok "viz stat without Prometheus fails naming viz install"
else bad "viz stat without Prometheus (exit $rc)"; echo "$out" | show; fi
"$STARLING" dashboard --port 30752 > dashboard.log 2>&1 & pids+=($!)
# (Its port is below the kernel's ephemeral range, 32768-60999, so no outgoing connection of an
# earlier test can be holding it.)
eventually "the dashboard answers" 30 curl -sf -m 10 http://127.0.0.1:30752/api/overview || show < dashboard.log
overview=$(curl -s -m 10 http://127.0.0.1:30752/api/overview)
grep -q "no Prometheus for $cluster: run \`starling viz install\`" <<<"$overview" && ok "the dashboard says plainly that there is no Prometheus" \
  || { bad "the dashboard without Prometheus"; echo "$overview" | show; }
# A Prometheus of the operator's own, for a cluster `viz install` did not set up here (nothing
# listens on port 9: the dashboard must ask it, and say it does not answer).
"$STARLING" dashboard --port 30753 --prometheus "$cluster=http://127.0.0.1:9" > dashboard-own.log 2>&1 & pids+=($!)
own_prometheus() { curl -sf -m 10 http://127.0.0.1:30753/api/overview | grep -q '127.0.0.1:9"'; }
eventually "dashboard --prometheus $cluster=URL asks that Prometheus" 30 own_prometheus || { show < dashboard-own.log; curl -s -m 10 http://127.0.0.1:30753/api/overview | show; }
out=$(timeout 10 "$STARLING" dashboard --port 30754 --prometheus "nosuch=http://127.0.0.1:9" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "names cluster nosuch" <<<"$out" && ok "dashboard --prometheus for a cluster without a context is refused, naming it" \
  || { bad "dashboard --prometheus nosuch=… (exit $rc)"; echo "$out" | show; }
out=$(PATH=/nonexistent "$STARLING" viz install 2>&1); rc=$?
if [ $rc != 0 ] && grep -q "apt-get install prometheus" <<<"$out"; then
  ok "viz install without the binary names the package to install"
else bad "viz install without prometheus on PATH (exit $rc)"; echo "$out" | show; fi

step "Prometheus HTTP service discovery"
sd=$(curl -sf -m 5 "http://$ctl:9990/prometheus/targets")
if python3 -c '
import json, sys
groups = json.loads(sys.argv[1])
kinds = {g["labels"].get("component") for g in groups}
workloads = {g["labels"].get("app") for g in groups if g["labels"].get("component") == "proxy"}
assert "controller" in kinds, kinds
assert {"podinfo", "podinfo-b", "curl"} <= workloads, workloads
assert all(g["labels"]["cluster"] == "viz1" for g in groups)
assert all(g["targets"][0].endswith(":4191") for g in groups if g["labels"]["component"] == "proxy")
' "$sd"; then ok "the controller lists itself and every workload proxy (:4191) with cluster, namespace, workload, app"
else bad "the service discovery document"; echo "$sd" | show 12; fi
cfg=$(S viz prometheus-config)
grep -q "url: http://$ctl:9990/prometheus/targets" <<<"$cfg" && ok "viz prometheus-config points http_sd_configs at the controller" \
  || { bad "viz prometheus-config"; echo "$cfg" | show; }

step "a workload that never listens is registered as a client only, scraped and tapped"
eventually "loadgen is registered as a client only (after 30 s without a listener)" 50 registered test loadgen
sd=$(curl -sf -m 5 "http://$ctl:9990/prometheus/targets")
grep -Eq '"app": *"loadgen"' <<<"$sd" && ok "Prometheus discovery lists the client's proxy" || { bad "loadgen not in the discovery document"; echo "$sd" | show 4; }
out=$(timeout 20 "$STARLING" viz tap workload/loadgen -n test --max-events 1 -o json 2>&1)
if python3 -c '
import json, sys
e = json.loads(sys.argv[1].splitlines()[0])["event"]
assert e["direction"] == "outbound" and e["path"] == "/status/204", e
assert e["src_identity"] == "loadgen.test.serviceaccount.identity.starling.cluster.local", e
assert e["dst_identity"] == "curl.test.serviceaccount.identity.starling.cluster.local", e
' "$out"; then ok "viz tap workload/loadgen shows its calls with both identities"
else bad "viz tap of the client-only workload"; echo "$out" | show 5; fi
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -x "$proxy" http://loadgen.test:7009/)
[ "$code" != 200 ] && ok "nothing is routed to the client-only workload (loadgen.test answers $code)" || bad "loadgen.test answered 200"

step "series labels stay bounded by what the mesh knows"
for i in 1 2 3; do curl -s -m 5 -o /dev/null -x "$proxy" "http://made-up-$i-$RANDOM.test:9898/"; done
m=$(curl -s -m 5 "http://$caddr:4191/metrics")
if grep -q 'target_service="unknown"' <<<"$m" && ! grep -q 'made-up-' <<<"$m"; then
  ok "requests to made-up services are counted under target_service=\"unknown\", their names in no series"
else bad "made-up service names in the metrics"; grep 'made-up-\|unknown' <<<"$m" | head -4 | show; fi

step "viz tap and viz top (live requests from the proxies' admin ports)"
paddr=$(address_of podinfo.log)
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$paddr:4191/tap")
[ "$code" = 401 ] && ok "GET /tap without a ticket is refused (401)" || bad "GET /tap without a ticket answered $code"
forged="eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJzdGFybGluZy10YXAiLCJjbHVzdGVyIjoidml6MSIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNzAwMDAwMDAwLCJqdGkiOiJ4In0.AAAA"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "authorization: Bearer $forged" "http://$paddr:4191/tap")
[ "$code" = 403 ] && ok "GET /tap with a forged ticket is refused (403)" || bad "GET /tap with a forged ticket answered $code"
out=$(STARLING_CONFIG=/nonexistent S viz tap -n test --max-events 1 2>&1) && bad "viz tap without a context was accepted" || ok "viz tap needs the cluster's context (admin credential)"
timeout 40 "$STARLING" viz tap ns/test --path /status/201 --max-events 2 -o json > tap.json 2> tap.err &
tap_pid=$!
# Every probe is made after the tap started; it must show one of them, from both ends.
for i in $(seq 60); do
  kill -0 $tap_pid 2>/dev/null || break
  curl -s -m 5 -o /dev/null -x "$proxy" "http://podinfo.test:9898/status/201?probe=$i"
  sleep 0.5
done
wait $tap_pid
if python3 -c '
import json, sys
events = [json.loads(l) for l in open("tap.json") if l.strip()]
assert len(events) == 2, events
sides = {e["event"]["direction"]: e for e in events}
assert set(sides) == {"inbound", "outbound"}, events
for e in events:
    ev = e["event"]
    assert ev["method"] == "GET" and ev["path"].startswith("/status/201?probe=") and ev["status"] == 201, ev
    assert ev["src_identity"] == "curl.test.serviceaccount.identity.starling.cluster.local", ev
    assert ev["dst_identity"] == "default.test.serviceaccount.identity.starling.cluster.local", ev
    assert ev["src_cluster"] == "viz1" and ev["dst_cluster"] == "viz1" and ev["tls"] is True, ev
    assert ev["latency_ms"] >= 0, ev
assert sides["inbound"]["workload"].startswith("podinfo-") and sides["outbound"]["workload"].startswith("curl-"), events
'; then ok "viz tap shows a request made after it started: method, path, status, latency, both identities and clusters, from both proxies"
else bad "viz tap"; cat tap.json tap.err | show 10; fi
# tapping ADDRESS: the proxy at ADDRESS serves a tap now (its starling_proxy_tap_streams gauge).
tapping() { curl -s -m 5 "http://$1:4191/metrics" | grep -Eq '^starling_proxy_tap_streams(\{[^}]*\})? [1-9]'; }
timeout 40 "$STARLING" viz top ns/test --duration 10s -o json > top.json 2> top.err &
top_pid=$!
eventually "viz top has opened its taps on podinfo's and the caller's proxies" 8 bash -c "$(declare -f tapping); tapping $paddr && tapping $caddr"
for i in $(seq 30); do curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/top-a; done
for i in $(seq 10); do curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/status/503; done
wait $top_pid
if python3 -c '
import json
rows = {r["path"]: r for r in json.load(open("top.json"))}
a, b = rows["/top-a"], rows["/status/503"]
assert a["count"] == 30 and a["success_rate"] == 1, a
assert b["count"] == 10 and b["success_rate"] == 0, b
assert a["source"] == "curl.test@viz1" and a["method"] == "GET", a
assert a["best_ms"] <= a["worst_ms"], a
assert list(rows)[0] == "/top-a", list(rows)
'; then ok "viz top: /top-a 30 × (100 %), /status/503 10 × (0 %), busiest first, with the caller"
else bad "viz top"; cat top.json top.err | show 12; fi
"$STARLING" viz top ns/test --duration 1s | show 4
# The dashboard's tap view: its first poll starts the cluster's tap; requests made after it are
# kept for the page (which a headless browser then renders).
curl -s -m 10 -o /dev/null "http://127.0.0.1:30752/api/tap?cluster=$cluster"
eventually "the dashboard has opened its taps" 8 bash -c "$(declare -f tapping); tapping $paddr && tapping $caddr"
for i in $(seq 5); do curl -s -m 5 -o /dev/null -x "$proxy" "http://podinfo.test:9898/status/202?dashboard=$i"; done
dash_tap() { curl -s -m 10 "http://127.0.0.1:30752/api/tap?cluster=$cluster" | grep -q '/status/202?dashboard=5'; }
eventually "the dashboard's tap API has the requests made after it started" 10 dash_tap
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "  - skipped: no chromium (apt-get install chromium)"
else
  dom=$(timeout 60 "$browser" --headless --no-sandbox --disable-gpu --virtual-time-budget=5000 --dump-dom "http://127.0.0.1:30752/#tap" 2>/dev/null)
  if grep -Eq '<td data-path(="")?>/status/202\?dashboard=' <<<"$dom"; then
    if grep -q 'data-src="curl.test.serviceaccount.identity.starling.cluster.local"' <<<"$dom"; then
      ok "the dashboard's tap view (headless Chromium) lists the requests with the caller's identity"
    else bad "the dashboard's tap view lacks the caller's identity"; echo "$dom" | grep -o '<td class="id"[^<]*' | head -4 | show; fi
  else bad "the dashboard's tap view lacks the requests"; echo "$dom" | head -c 1500 | show 12; fi
  mkdir -p "$artifacts"
  timeout 60 "$browser" --headless --no-sandbox --disable-gpu --window-size=1500,700 --virtual-time-budget=5000 \
    --screenshot="$artifacts/dashboard-tap.png" "http://127.0.0.1:30752/#tap" >/dev/null 2>&1
  [ -s "$artifacts/dashboard-tap.png" ] && ok "screenshot saved to $artifacts/dashboard-tap.png" || bad "no tap view screenshot"
fi

if ! command -v prometheus >/dev/null; then
  echo "  - skipped: Prometheus is not installed (apt-get install prometheus)"
else
  step "viz install: Prometheus beside the controller"
  expect_ok "viz install" S viz install --scrape-interval 1s
  expect_ok "viz install again is a no-op" S viz install
  up() {
    curl -s -m 5 "http://$ctl:9090/api/v1/query?query=up" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
up = [x for x in r if x["value"][1] == "1"]
sys.exit(0 if len(up) >= 4 else 1)'
  }
  eventually "Prometheus scrapes the controller and the three proxies" 30 up

  step "known traffic: 200 × 200 and 20 × 500 to podinfo, 100 to the split"
  # A counter's first sample counts no increase (Prometheus' rate): make each series exist and
  # be scraped before the traffic that is measured.
  curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/
  curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/status/500
  sleep 3
  errs=0
  for i in $(seq 200); do curl -sf -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/ || errs=$((errs + 1)); done
  fives=0
  for i in $(seq 20); do
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -x "$proxy" http://podinfo.test:9898/status/500)
    [ "$code" = 500 ] && fives=$((fives + 1))
  done
  [ $errs = 0 ] && [ $fives = 20 ] && ok "200 answers and 20 × 500 went through the mesh" || bad "sent: $errs failures, $fives × 500"
  cat > split.yaml <<'YAML'
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata:
  name: podinfo-split
  namespace: test
spec:
  service: podinfo-b
  backends:
  - service: podinfo
    weight: 50
  - service: podinfo-b
    weight: 50
YAML
  expect_ok "apply a 50/50 split of podinfo-b" S apply -f split.yaml
  for i in $(seq 10); do curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo-b.test:9898/; done
  sleep 3
  to_podinfo=0   # how many of the 100 the split sent to podinfo (its answer says "viz", podinfo-b's "viz-b")
  for i in $(seq 100); do
    body=$(curl -sf -m 5 -x "$proxy" http://podinfo-b.test:9898/) || { errs=$((errs + 1)); continue; }
    grep -q '"message": *"viz"' <<<"$body" && to_podinfo=$((to_podinfo + 1))
  done
  [ $errs = 0 ] && ok "100 calls through the split ($to_podinfo to podinfo)" || bad "$errs calls through the split failed"
  sleep 3   # a few scrapes

  step "viz stat"
  # Over a window that holds all the traffic: 220 requests to podinfo plus its share of the
  # split (~55), 20 of them 500 → success between 86 % and 95 %.
  stat_json() { S viz stat "$@" -n test -t 5m -o json; }
  podinfo_ok() {
    stat_json svc/podinfo | python3 -c '
import json, sys
rows = json.load(sys.stdin)
f = rows[0]["figures"]
assert rows[0]["name"] == "podinfo", rows
assert 0.86 <= f["success"] <= 0.95, f
assert f["rps"] > 0 and f.get("latencyP50Ms") is not None, f
assert f.get("tcpConnections") is not None, f
# The counts sent: 220 plus what the split sent it, 20 of them failed; within a scrape interval:
# the warm-up calls before the first scrape are not counted, and Prometheus extrapolates a young
# series by up to a scrape interval at each end (about +10 % at 1 s scrapes for 15 s of traffic).
sent = 220 + int(sys.argv[1])
assert sent - 5 <= f["requests"] <= sent * 1.15 + 2, (sent, f)
assert 18 <= f["failures"] <= 24, f' "$to_podinfo"
  }
  eventually "viz stat svc/podinfo: 220 requests + the split's share, 20 failed, a rate, latencies, connections" 20 podinfo_ok
  S viz stat svc -n test -t 5m | show 6
  wl_ok() {
    stat_json workload | python3 -c '
import json, sys
rows = {r["name"].rsplit("-", 1)[0]: r["figures"] for r in json.load(sys.stdin)}
assert rows["podinfo"]["success"] < 0.95 and rows["podinfo"]["rps"] > 0, rows
assert 18 <= rows["podinfo"]["failures"] <= 24, rows
assert rows["podinfo-b"]["success"] == 1 and rows["podinfo-b"]["failures"] == 0, rows'
  }
  eventually "viz stat workload: the podinfo workload served the 500s, podinfo-b none" 20 wl_ok
  S viz stat workload -n test -t 5m | show 6
  ts_ok() {
    stat_json trafficsplit/podinfo-split | python3 -c '
import json, sys
rows = {r["leaf"]: r for r in json.load(sys.stdin)}
assert set(rows) == {"podinfo", "podinfo-b"}, rows
for leaf, r in rows.items():
    assert r["weight"] == 50, r
    assert 0.3 <= r["share"] <= 0.7, r
    assert r["figures"]["success"] == 1, r
    assert r["figures"].get("tcpConnections") is not None, r
assert 95 <= sum(r["figures"]["requests"] for r in rows.values()) <= 117, rows'
  }
  eventually "viz stat trafficsplit/podinfo-split: both backends, weight 50, a measured share each, the 100 calls counted" 20 ts_ok
  S viz stat ts -n test -t 5m | show 6
  edges_ok() {
    S viz edges -n test -t 5m -o json | python3 -c '
import json, sys
edges = json.load(sys.stdin)
e = [e for e in edges if e["source"].startswith("curl-") and e["destination"] == "podinfo"]
assert e, edges
e = e[0]
assert e["sourceIdentity"] == "curl.test.serviceaccount.identity.starling.cluster.local", e
assert e["destinationIdentity"] == "default.test.serviceaccount.identity.starling.cluster.local", e
assert e["secured"] is True, e'
  }
  eventually "viz edges: curl → podinfo with both identities over mTLS" 20 edges_ok
  S viz edges -n test -t 5m | show 6
  from_svc_ok() {
    stat_json svc --from workload/loadgen | python3 -c '
import json, sys
names = sorted(r["name"] for r in json.load(sys.stdin))
assert names == ["curl"], names'
  }
  eventually "viz stat svc --from workload/loadgen: only the service loadgen calls" 30 from_svc_ok
  from_wl_ok() {
    stat_json workload --from workload/loadgen | python3 -c '
import json, sys
names = [r["name"] for r in json.load(sys.stdin)]
assert len(names) == 1 and names[0].startswith("curl-"), names'
  }
  eventually "viz stat workload --from workload/loadgen: only the workload that served it (by its caller's identity)" 20 from_wl_ok
  to_wl_ok() {
    stat_json workload --to svc/curl | python3 -c '
import json, sys
names = [r["name"] for r in json.load(sys.stdin)]
assert len(names) == 1 and names[0].startswith("curl-"), names'
  }
  eventually "viz stat workload --to svc/curl: only the workload serving curl" 20 to_wl_ok
  out=$(S viz stat svc -n test --from cluster/workload2 2>&1) && bad "--from cluster/ on svc was accepted" \
    || { grep -q "is for \`viz stat gateway\`" <<<"$out" && ok "--from cluster/NAME outside gateway is refused, saying where it belongs" || { bad "--from cluster on svc"; echo "$out" | show; }; }
  out=$(S viz stat pods -n test 2>&1) && bad "viz stat pods was accepted" || {
    grep -q "svc, workload, route, trafficsplit and gateway" <<<"$out" && ok "an unknown kind is refused, naming the kinds" || { bad "unknown kind"; echo "$out" | show; }; }

  step "viz stat route: per-route figures from an HTTPRoute's matches"
  cat > route.yaml <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: podinfo-status
  namespace: test
spec:
  parentRefs:
  - name: podinfo
    kind: Service
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /status
    backendRefs:
    - name: podinfo
      port: 9898
YAML
  expect_ok "apply an HTTPRoute matching podinfo's /status paths" S apply -f route.yaml
  # Until the callers' proxies have the route, requests carry no route label: send until they do.
  routed() { curl -s -m 5 "http://$ctl:9090/api/v1/query" --data-urlencode 'query=starling_proxy_requests_total{route="podinfo-status"}' |
    python3 -c 'import json,sys; sys.exit(not json.load(sys.stdin)["data"]["result"])'; }
  for i in $(seq 40); do
    curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/status/200
    routed && break
    sleep 0.5
  done
  # The 500 series with the route label must exist and be scraped before the 500s that are measured.
  curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/status/500
  sleep 3
  for i in $(seq 30); do curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/status/200; done
  for i in $(seq 10); do curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/status/500; done
  for i in $(seq 20); do curl -s -m 5 -o /dev/null -x "$proxy" http://podinfo.test:9898/other; done
  route_ok() {
    S viz stat route -n test -t 1m -o json | python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert [r["name"] for r in rows] == ["podinfo-status"], rows
r = rows[0]
assert r["service"] == "podinfo", r
assert 0.6 <= r["figures"]["success"] <= 0.85, r   # 30 (+ a few probes) at 200, 10 (+ 1) at 500
assert r["figures"]["rps"] > 0 and r["figures"].get("latencyP50Ms") is not None, r'
  }
  eventually "viz stat route: podinfo-status has the /status calls (10 of ~40 failed), /other counted in no route" 20 route_ok
  S viz stat route -n test -t 1m | show 4
  out=$(S apply -f - 2>&1 <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad-route
  namespace: test
spec:
  parentRefs:
  - name: podinfo
  rules:
  - matches:
    - path:
        type: RegularExpression
        value: /status/.*
    backendRefs:
    - name: podinfo
YAML
  ) && bad "an HTTPRoute with a regular-expression path was accepted" || {
    grep -q "RegularExpression" <<<"$out" && grep -q "Exact or PathPrefix" <<<"$out" && ok "a path match the mesh does not evaluate is refused, saying which types it does" \
      || { bad "refusal of a RegularExpression path"; echo "$out" | show; }; }

  step "viz uninstall"
  expect_ok "viz uninstall" S viz uninstall
  if curl -sf -m 2 "http://$ctl:9090/-/ready" >/dev/null; then bad "Prometheus still answers after uninstall"; else ok "Prometheus is gone"; fi
fi

echo
echo "viz e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
