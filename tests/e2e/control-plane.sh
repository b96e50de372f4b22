#!/usr/bin/env bash
# End to end: the first half of DESIGN.md's walkthrough, driven through the real `starling`
# binary — two local clusters, a shared root, install | apply, check — plus a gRPC client we did
# not write (Python grpcio) calling Identity.Certify and Destination.Get, and the bad inputs
# operators hit. Prints "N passed, N failed" and exits non-zero on any failure.
#
#   tests/e2e/control-plane.sh [path/to/starling]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
STARLING=${1:-$root/.build/debug/starling}
[ -x "$STARLING" ] || { echo "no starling binary at $STARLING (swift build first)"; exit 2; }
STARLING=$(cd "$(dirname "$STARLING")" && pwd)/$(basename "$STARLING")

work=$(mktemp -d /tmp/starling-e2e.XXXXXX)
export STARLING_HOME=$work/home
unset STARLING_CONFIG
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "  ✓ $*"; }
bad()  { failed=$((failed + 1)); echo "  × $*"; }
step() { echo; echo "== $*"; }
# expect_ok DESC CMD...: the command succeeds
expect_ok() { local d=$1; shift; if out=$("$@" 2>&1); then ok "$d"; else bad "$d"; echo "$out" | sed 's/^/      /' | tail -20; fi; }
# expect_fail DESC PATTERN CMD...: the command fails and its output matches PATTERN
expect_fail() {
  local d=$1 pat=$2; shift 2
  if out=$("$@" 2>&1); then bad "$d (succeeded)"; echo "$out" | sed 's/^/      /' | tail -5
  elif grep -qiE -- "$pat" <<<"$out"; then ok "$d"
  else bad "$d (message did not match /$pat/)"; echo "$out" | sed 's/^/      /' | tail -5; fi
}
cleanup() {
  "$STARLING" cluster delete workload1 >/dev/null 2>&1
  "$STARLING" cluster delete workload2 >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
S() { "$STARLING" "$@"; }

step "clusters"
expect_ok "cluster create workload1" S cluster create workload1
expect_ok "cluster create workload2" S cluster create workload2
expect_fail "creating an existing cluster is refused" "already exists" S cluster create workload1
expect_fail "a second cluster on a taken loopback range is refused" "127.1.0.0/16|in use|used by" S cluster create other --address-range 127.1.0.0/16
S cluster list
mkdir -p configs
expect_ok "credentials workload1" S cluster credentials workload1 --export-file configs/workload1
expect_ok "credentials workload2" S cluster credentials workload2 --export-file configs/workload2
[ "$(stat -c %a configs/workload1)" = 600 ] && ok "credentials file is 0600" || bad "credentials file mode is $(stat -c %a configs/workload1)"

step "certificates"
expect_ok "root CA" S certs create identity.starling.cluster.local root.crt root.key --profile root-ca --no-password --insecure
expect_ok "issuer" S certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca \
  --not-after 8760h --no-password --insecure --ca root.crt --ca-key root.key
expect_ok "openssl verifies the issuer against the root" openssl verify -CAfile root.crt issuer.crt
[ "$(stat -c %a issuer.key)" = 600 ] && ok "issuer key is 0600" || bad "issuer key mode is $(stat -c %a issuer.key)"
expect_fail "an unencrypted key needs --no-password --insecure" "no-password" S certs create x x.crt x.key --profile root-ca
expect_ok "other root" S certs create other.root other.crt other.key --profile root-ca --no-password --insecure
expect_ok "issuer of the other root" S certs create other.issuer other-issuer.crt other-issuer.key --profile intermediate-ca \
  --no-password --insecure --ca other.crt --ca-key other.key

for c in workload1 workload2; do
  step "install $c"
  export STARLING_CONFIG=$work/configs/$c
  expect_ok "check --pre ($c)" S check --pre
  expect_fail "install refuses an issuer from another root" "not signed|trust anchor|chain" \
    S install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file other-issuer.crt --identity-issuer-key-file other-issuer.key
  expect_fail "install refuses a key that is not the issuer's" "belong|match" \
    S install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt --identity-issuer-key-file other-issuer.key
  expect_fail "install refuses a non-CA issuer file (the root's key as a certificate)" "private key|certificate" \
    S install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file root.key --identity-issuer-key-file issuer.key
  S install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
    --identity-issuer-key-file issuer.key > install-$c.yaml
  expect_ok "install | apply ($c)" S apply -f install-$c.yaml
  expect_ok "check ($c)" S check
  S check
done

step "resources on workload1"
export STARLING_CONFIG=$work/configs/workload1
cat > podinfo.yaml <<'YAML'
apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: test
spec:
  ports:
  - port: 9898
YAML
expect_ok "apply a service" S apply -f podinfo.yaml
expect_ok "get svc -n test" S get svc -n test
S get svc -n test
expect_ok "label (set)" S label svc -n test podinfo mirror.starling.io/exported=true
expect_fail "label (change without --overwrite)" "overwrite" S label svc -n test podinfo mirror.starling.io/exported=false
S get svc -n test podinfo -o yaml > podinfo-out.yaml
expect_ok "get -o yaml applies again unchanged" bash -c "'$STARLING' apply -f podinfo-out.yaml | grep -q unchanged"
printf 'kind: Service\napiVersion: v1\nmetadata: {name: a\n' > broken.yaml
expect_fail "malformed YAML is refused with the file name" "broken.yaml" S apply -f broken.yaml
printf 'apiVersion: v1\nkind: Gadget\nmetadata: {name: a}\n' > unknown.yaml
expect_fail "an unknown kind is refused by name" "Gadget" S apply -f unknown.yaml
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
    weight: -50
YAML
expect_fail "a negative weight is refused with its field path" "backends\[1\]\.weight" S apply -f split.yaml
expect_fail "get of a missing resource says not found" "not found" S get svc -n test nope

step "a gRPC client we did not write (Python grpcio)"
ca=$work/ca.pem
python3 - "$work/configs/workload1" "$ca" <<'PY'
import base64, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
ctx = c["contexts"][0]
open(sys.argv[2], "wb").write(base64.b64decode(ctx["certificate-authority-data"]))
print(ctx["server"])
PY
server=$(python3 -c "import yaml,sys; print(yaml.safe_load(open('$work/configs/workload1'))['contexts'][0]['server'])")
token=$(S token create --namespace test --service-account podinfo --ttl 1h)
[ -n "$token" ] && ok "token create" || bad "token create"
ident=podinfo.test.serviceaccount.identity.starling.cluster.local
expect_ok "Identity.Certify from grpcio" python3 "$here/grpc_client.py" certify --server "$server" --ca "$ca" --token "$token" --identity "$ident" --out certs-py
expect_ok "openssl verifies the issued certificate to the root" openssl verify -CAfile root.crt -untrusted certs-py/chain.pem certs-py/leaf.pem
if openssl x509 -in certs-py/leaf.pem -noout -text | grep -q "URI:spiffe://cluster.local/ns/test/sa/podinfo"; then ok "leaf carries the SPIFFE URI SAN"; else bad "leaf lacks the SPIFFE URI SAN"; fi
expect_fail "a CSR for another identity is refused" "refused: PERMISSION_DENIED" \
  python3 "$here/grpc_client.py" certify --server "$server" --ca "$ca" --token "$token" --identity other.test.serviceaccount.identity.starling.cluster.local --out /tmp/x
expect_fail "a forged CSR is refused" "refused" \
  python3 "$here/grpc_client.py" certify-forged --server "$server" --ca "$ca" --token "$token" --identity "$ident" --out /tmp/x
expect_fail "a forged token is refused" "refused: UNAUTHENTICATED" \
  python3 "$here/grpc_client.py" certify --server "$server" --ca "$ca" --token "${token%?????}AAAAA" --identity "$ident" --out /tmp/x
short=$(S token create --namespace test --service-account podinfo --ttl 1s)
sleep 2
expect_fail "an expired token is refused" "refused: UNAUTHENTICATED.*expired" \
  python3 "$here/grpc_client.py" certify --server "$server" --ca "$ca" --token "$short" --identity "$ident" --out /tmp/x

cat > workload.yaml <<'YAML'
apiVersion: starling.io/v1alpha1
kind: Workload
metadata:
  name: podinfo-1
  namespace: test
  labels: {app: podinfo}
spec:
  address: 127.1.0.10
  ports:
  - {port: 4143, appPort: 9898}
  identity: podinfo.test.serviceaccount.identity.starling.cluster.local
YAML
python3 "$here/grpc_client.py" destination-get --server "$server" --ca "$ca" --token "$token" \
  --path podinfo.test.svc.cluster.local:9898 --expect 1 --timeout 15 > dest.log 2>&1 &
dest=$!
sleep 1.5
S apply -f workload.yaml >/dev/null
if wait $dest; then ok "Destination.Get from grpcio streams the new endpoint"; else bad "Destination.Get"; cat dest.log; fi

step "a controller killed in the middle of a large apply"
python3 - > many.yaml <<'PY'
for i in range(20000):
    print(f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: bulk-{i}, namespace: bulk}}\nspec:\n  ports: [{{port: 80}}]")
PY
pid=$(cat "$STARLING_HOME/clusters/workload1/controller.pid")
S apply -f many.yaml > apply.log 2>&1 &
applier=$!
for i in $(seq 100); do grep -q "applied [0-9]" apply.log && break; sleep 0.1; done
kill -9 "$pid"
wait $applier; status=$?
[ $status != 0 ] && ok "the interrupted apply fails" || bad "the interrupted apply claimed success"
grep -q "not applied" apply.log && ok "the CLI says what was not applied" || { bad "the CLI did not say what was not applied"; tail -3 apply.log; }
"$STARLING" controller --cluster-name workload1 --data-dir "$STARLING_HOME/clusters/workload1/data" \
  --api-address 127.1.0.1:8086 --admin-address 127.1.0.1:9990 >> restart.log 2>&1 &
echo $! > "$STARLING_HOME/clusters/workload1/controller.pid"
for i in $(seq 100); do curl -sf http://127.1.0.1:9990/ready >/dev/null && break; sleep 0.2; done
count=$(S get svc -n bulk -o name | wc -l)
if [ $((count % 500)) = 0 ] && [ "$count" -lt 20000 ]; then ok "after restart the store holds whole batches only ($count services)"; else bad "after restart the store holds $count services (not whole batches)"; fi
expect_ok "the same apply, run again, completes" S apply -f many.yaml
count=$(S get svc -n bulk -o name | wc -l)
[ "$count" = 20000 ] && ok "all 20000 services stored" || bad "$count services stored after the re-apply"

step "systemd units (install --target systemd), checked by systemd's own analyzer"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "  - skipped: systemd-analyze not installed (apt-get install systemd)"
else
  mkdir -p units
  S install --target systemd --cluster-name prod --binary "$STARLING" --store postgres://starling@10.0.0.10:5432/starling \
    --replica 10.0.0.1:8086 --replica 10.0.0.2:8086 --replica 10.0.0.3:8086 > units/all.txt
  # One file per unit, as the output's headers name them; the proxy template as an instance.
  python3 - units/all.txt units <<'PY'
import re, sys
text = open(sys.argv[1]).read()
parts = re.split(r"(?m)^# (/etc/systemd/system/\S+)", text)
for i in range(1, len(parts), 2):
    name = parts[i].rsplit("/", 1)[-1].replace("@.service", "@web.service")
    open(f"{sys.argv[2]}/{name}", "w").write("# " + parts[i] + parts[i + 1])
PY
  n=$(ls units/*.service 2>/dev/null | wc -l)
  [ "$n" = 3 ] && ok "three units: controller, gateway, proxy@" || bad "$n units in the output"
  for u in units/*.service; do
    out=$(systemd-analyze verify "$u" 2>&1)
    [ -z "$out" ] && ok "systemd-analyze verify $(basename "$u"): no warning" || { bad "systemd-analyze verify $(basename "$u")"; echo "$out" | sed 's/^/      /' | tail -5; }
    level=$(systemd-analyze security --offline=true "$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    awk -v l="${level:-10}" 'BEGIN {exit !(l <= 2.0)}' && ok "$(basename "$u"): exposure $level of 10 (systemd-analyze security, at most 2.0)" \
      || bad "$(basename "$u"): exposure ${level:-unknown}, above 2.0"
  done
fi

step "cleanup"
expect_ok "cluster delete workload1" S cluster delete workload1
expect_ok "cluster delete workload2" S cluster delete workload2

echo
echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
