#!/usr/bin/env bash
# Builds starling and runs DESIGN.md's walkthrough as far as it is built today: two local
# clusters, a shared root and issuer, check --pre, install | apply, check. Each step is shown
# with the command it runs. The clusters are deleted at the end unless --keep is given.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false; [ "${1:-}" = "--keep" ] && keep=true
swift build --product starling
S=$PWD/.build/debug/starling
export STARLING_HOME=${STARLING_HOME:-$HOME/.starling}
work=$(mktemp -d /tmp/starling-demo.XXXXXX)
cd "$work"
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
down() { "$S" cluster delete workload1 >/dev/null 2>&1 || true; "$S" cluster delete workload2 >/dev/null 2>&1 || true; }
$keep || trap down EXIT
down
run "$S" cluster create workload1
run "$S" cluster create workload2
mkdir -p configs
run "$S" cluster credentials workload1 --export-file configs/workload1
run "$S" cluster credentials workload2 --export-file configs/workload2
run "$S" certs create identity.starling.cluster.local root.crt root.key --profile root-ca --no-password --insecure
run "$S" certs create identity.starling.cluster.local issuer.crt issuer.key --profile intermediate-ca \
    --not-after 8760h --no-password --insecure --ca root.crt --ca-key root.key
for c in workload1 workload2; do
  export STARLING_CONFIG=$work/configs/$c
  printf '\n\033[1m# STARLING_CONFIG=%s\033[0m\n' "$STARLING_CONFIG"
  run "$S" check --pre
  printf '\n\033[1m$ starling install ... | starling apply -f -\033[0m\n'
  "$S" install --identity-trust-anchors-file root.crt --identity-issuer-certificate-file issuer.crt \
      --identity-issuer-key-file issuer.key | "$S" apply -f -
  run "$S" check
done
run "$S" cluster list
echo
echo "walkthrough (control plane half) done; files in $work"
$keep && echo "clusters kept: delete them with '$S cluster delete workload1' (and workload2)"
