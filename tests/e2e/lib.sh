# Helpers the end-to-end scripts share. Source it after setting `here` and `root`:
#   . "$here/lib.sh"; e2e_binary "${1:-}"
# The script then defines S (its `starling` with the timeout it wants) and its own cleanup.

# e2e_binary [PATH]: sets STARLING to the absolute path of the binary under test (default: debug).
e2e_binary() {
  STARLING=${1:-$root/.build/debug/starling}
  [ -x "$STARLING" ] || { echo "no starling binary at $STARLING (swift build first)"; exit 2; }
  STARLING=$(cd "$(dirname "$STARLING")" && pwd)/$(basename "$STARLING")
}

# e2e_needs_postgres NAME: exits, counted as skipped, when Debian's PostgreSQL server is missing.
e2e_needs_postgres() {
  ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 && return 0
  echo "  - skipped: PostgreSQL server not installed (apt-get install postgresql)"
  echo "$1 e2e: 0 passed, 0 failed"
  exit 0
}

# e2e_home PREFIX: a fresh work directory $work (readable by the postgres user) holding
# STARLING_HOME, with no inherited context or HTTP proxy.
e2e_home() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$work"
  export STARLING_HOME=$work/home
  unset STARLING_CONFIG http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
}

# Where screenshots and other files worth keeping go (scripts/test.sh keeps them in the checkout).
artifacts=${STARLING_ARTIFACTS:-/tmp/starling-e2e-artifacts}

passed=0; failed=0; pids=()
ok()   { passed=$((passed + 1)); echo "  ✓ $*"; }
bad()  { failed=$((failed + 1)); echo "  × $*"; }
step() { echo; echo "== $*"; }
# show [N]: indents its input and keeps the last N lines (8)
show() { sed 's/^/      /' | tail -"${1:-8}"; }
# expect_ok DESC CMD...: the command succeeds
expect_ok() { local d=$1; shift; if out=$("$@" 2>&1); then ok "$d"; else bad "$d"; echo "$out" | show 15; fi; }
# expect_fail DESC PATTERN CMD...: the command fails and its output matches PATTERN
expect_fail() {
  local d=$1 pat=$2; shift 2
  if out=$("$@" 2>&1); then bad "$d (succeeded)"; echo "$out" | show 5
  elif grep -qiE -- "$pat" <<<"$out"; then ok "$d"
  else bad "$d (message did not match /$pat/)"; echo "$out" | show 5; fi
}
# eventually DESC SECONDS CMD...: the command succeeds within SECONDS
eventually() {
  local d=$1 t=$2; shift 2; local end=$((SECONDS + t))
  while [ $SECONDS -lt $end ]; do if "$@" >/dev/null 2>&1; then ok "$d"; return 0; fi; sleep 0.5; done
  bad "$d (not within ${t}s)"; "$@" 2>&1 | show 5; return 1
}
# matches DESC PATTERN TEXT: TEXT matches the extended regex PATTERN
matches() { if grep -qaE -- "$2" <<<"$3"; then ok "$1"; else bad "$1 (no /$2/)"; echo "$3" | show; fi; }
# start_workload LOG ARGS...: `starling run ARGS` in the background, output in LOG
start_workload() { local log=$1; shift; "$STARLING" run "$@" > "$log" 2>&1 & pids+=($!); disown $!; }
# address_of LOG: the workload address `starling run` logged (waits up to 30 s)
address_of() {
  local a i
  for i in $(seq 60); do
    a=$(sed -n 's/.*address=\([0-9.]*\).*/\1/p' "$1" | head -1)
    [ -n "$a" ] && { echo "$a"; return 0; }
    sleep 0.5
  done
  return 1
}
# registered NAMESPACE SERVICE: a workload of SERVICE is registered
registered() { S get wl -n "$1" | grep -q "^$2-"; }
# stop_workloads: stops what start_workload started (and anything else in pids). `starling run`
# forwards SIGTERM to its command, but a command that inherited a blocked SIGTERM (sleep, python3)
# never sees it: the commands are stopped by their logged pid too. Waits up to 8 s, then kills.
stop_workloads() {
  local kids p i alive
  kids=$(grep -h 'workload started' "$work"/*.log 2>/dev/null | sed -n 's/.* pid=\([0-9][0-9]*\).*/\1/p')
  for p in "${pids[@]}" $kids; do kill "$p" 2>/dev/null; done
  for i in $(seq 16); do
    alive=0; for p in "${pids[@]}" $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.5
  done
  for p in "${pids[@]}" $kids; do kill -9 "$p" 2>/dev/null; done
}

# apply_acker CMD...: applies Service ack-1, ack-2, … (namespace test) every 0.3 s with
# `CMD... apply -f -` (a starling command with a short timeout) in the background, until
# acker_verdict; the names acknowledged go to acked.txt, every name tried to tried.txt.
apply_acker() {
  rm -f stop-acker acked.txt tried.txt; touch acked.txt
  (
    i=0
    while [ ! -f stop-acker ]; do
      i=$((i + 1))
      if printf 'apiVersion: v1\nkind: Service\nmetadata: {name: ack-%d, namespace: test}\nspec: {selector: {app: ack}, ports: [{name: http, port: 80}]}\n' "$i" \
        | "$@" apply -f - >/dev/null 2>&1; then echo "ack-$i" >> acked.txt; fi
      echo "ack-$i" >> tried.txt
      sleep 0.3
    done
  ) &
  acker_pid=$!; pids+=($acker_pid)
}
# acker_verdict WHEN CMD...: stops the acker, then checks with `CMD... get svc` that every apply
# acknowledged is stored, and that some were refused (WHEN names the outage they spanned).
acker_verdict() {
  local when=$1; shift
  touch stop-acker; wait "$acker_pid"
  local acked tried stored missing n_acked n_tried
  acked=$(sort -u acked.txt); tried=$(sort -u tried.txt)
  stored=$("$@" get svc -n test -o json 2>/dev/null | python3 -c 'import json, sys; print("\n".join(sorted(i["metadata"]["name"] for i in json.load(sys.stdin)["items"] if i["metadata"]["name"].startswith("ack-"))))')
  missing=$(comm -23 <(echo "$acked") <(echo "$stored") | tr '\n' ' ')
  n_acked=$(grep -c . <<<"$acked"); n_tried=$(grep -c . <<<"$tried")
  echo "      applies across $when: $n_tried tried, $n_acked acknowledged"
  [ -z "${missing// /}" ] && [ "$n_acked" -gt 0 ] && [ "$n_acked" -lt "$n_tried" ] \
    && ok "every acknowledged apply across $when is in the store ($n_acked of $n_tried; the others were refused)" \
    || bad "acknowledged applies missing after $when: ${missing:-none} ($n_acked of $n_tried acknowledged)"
}

# podinfo_policy_yaml PORT SERVICE_ACCOUNT: a Server for podinfo's PORT (a name or a number) in
# namespace test, admitting only SERVICE_ACCOUNT's identity (MeshTLSAuthentication
# SERVICE_ACCOUNT-only, AuthorizationPolicy podinfo-from-SERVICE_ACCOUNT), on stdout.
podinfo_policy_yaml() {
  cat <<YAML
apiVersion: policy.starling.io/v1beta1
kind: Server
metadata: {name: podinfo-http, namespace: test}
spec:
  podSelector: {matchLabels: {app: podinfo}}
  port: $1
  proxyProtocol: HTTP/1
---
apiVersion: policy.starling.io/v1beta1
kind: MeshTLSAuthentication
metadata: {name: $2-only, namespace: test}
spec:
  identityRefs: [{kind: ServiceAccount, name: $2}]
---
apiVersion: policy.starling.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: podinfo-from-$2, namespace: test}
spec:
  targetRef: {group: policy.starling.io, kind: Server, name: podinfo-http}
  requiredAuthenticationRefs:
  - {group: policy.starling.io, kind: MeshTLSAuthentication, name: $2-only}
YAML
}
