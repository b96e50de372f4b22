#!/usr/bin/env bash
# Builds starling as users deploy it (scripts/release-build.sh) and runs the whole walkthrough
# (DESIGN.md) on this machine: two clusters, a shared root, install, check, multicluster
# gateways, links both ways, podinfo in both clusters, the frontend, export, and the 50/50
# TrafficSplit across clusters. It prints the frontend's URL;
# Ctrl-C tears everything down. `scripts/demo.sh --check` runs unattended and exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# Prometheus (Debian's package) lets the demo show the mesh's own figures (`starling viz`).
if ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Prometheus (apt-get install prometheus) for starling viz ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null 2>&1; } ||
      echo "could not install prometheus; the demo runs without starling viz"
  else
    echo "Prometheus is not installed (apt-get install prometheus); the demo runs without starling viz"
  fi
fi
scripts/release-build.sh starling
exec .build/release/starling demo "$@"
