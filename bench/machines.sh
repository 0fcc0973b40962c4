#!/usr/bin/env bash
# `hoist machines` against 3 and 10 lab machines, beside what dominates it: one ssh
# handshake (the same ssh config, run directly). Wall time, median of 7 runs.
# Usage: bash bench/machines.sh   (leaves a 3-machine lab up)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh

ms() { # run a command 7 times; print the median wall time in ms
    for _ in 1 2 3 4 5 6 7; do
        local t0 t1
        t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000000))
    done | median
}

printf '%-10s %18s %22s %26s\n' machines "hoist machines (ms)" "one ssh handshake (ms)" "ssh to all, parallel (ms)"
for n in 3 10; do
    bash tests/lab/lab.sh up "$n" >/dev/null
    all_ssh() { for i in $(seq "$n"); do ssh -F "$lab/ssh_config" "m$i" true & done; wait; }
    printf '%-10s %18s %22s %26s\n' "$n" \
        "$(ms "$hoist" -m "$lab/machines.yaml" machines)" \
        "$(ms ssh -F "$lab/ssh_config" m1 true)" \
        "$(ms all_ssh)"
done
bash tests/lab/lab.sh up 3 >/dev/null
