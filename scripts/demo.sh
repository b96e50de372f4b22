#!/usr/bin/env bash
# Builds starling as users deploy it (scripts/release-build.sh) and runs the whole walkthrough
# (DESIGN.md) on this machine: two clusters, a shared root, install, check, multicluster
# gateways, links both ways, podinfo in both clusters, the frontend, export, and the 50/50
# TrafficSplit across clusters. It prints the frontend's URL;
# Ctrl-C tears everything down. `scripts/demo.sh --check` runs unattended and exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/release-build.sh starling
exec .build/release/starling demo "$@"
