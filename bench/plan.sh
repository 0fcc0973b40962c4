#!/usr/bin/env bash
# `hoist plan` (no changes) for a deployed project of 20 services on 10 lab machines,
# and `hoist up` with nothing to do. Wall time, median of 7 runs.
# Usage: bash bench/plan.sh   (leaves a 3-machine lab up)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
    echo "name: benchplan"
    echo "services:"
    for i in $(seq -w 1 20); do
        printf '  s%s:\n    image: hoist-test/app:v1\n    deploy: {replicas: 2}\n' "$i"
    done
} >"$work/compose.yaml"

ms() {
    for _ in 1 2 3 4 5 6 7; do
        local t0 t1
        t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000000))
    done | median
}

bash tests/lab/lab.sh up 10 >/dev/null
cd "$work"
t0=$(date +%s%N)
"$hoist" -m "$lab/machines.yaml" up --yes >/dev/null 2>&1
t1=$(date +%s%N)
echo "fresh deploy, 20 services × 2 replicas on 10 machines: $(((t1 - t0) / 1000000)) ms"
echo "no-op plan: $(ms "$hoist" -m "$lab/machines.yaml" plan) ms"
echo "no-op up:   $(ms "$hoist" -m "$lab/machines.yaml" up --yes) ms"
"$hoist" -m "$lab/machines.yaml" down >/dev/null 2>&1
cd - >/dev/null
bash tests/lab/lab.sh up 3 >/dev/null
