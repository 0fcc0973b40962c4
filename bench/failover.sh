#!/usr/bin/env bash
# Failover time, hoist watch beside Swarm, on the same 3-machine lab: 3 replicas of the test
# app spread one per machine; m2 is killed; the clock stops when 3 replicas run healthy on
# the surviving machines. Usage: bash bench/failover.sh   (leaves a fresh 3-machine lab up)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT
in_m() { local m=$1; shift; docker exec -i "$m" "$@"; }

# --- Swarm ------------------------------------------------------------------------------------
bash tests/lab/lab.sh up 3 >/dev/null 2>&1
in_m m1 docker swarm init --advertise-addr 172.31.77.11 >/dev/null
token=$(in_m m1 docker swarm join-token -q worker)
for m in m2 m3; do in_m "$m" docker swarm join --token "$token" 172.31.77.11:2377 >/dev/null; done
in_m m1 docker service create -q --name fo --replicas 3 --replicas-max-per-node 2 \
    --placement-pref spread=node.hostname hoist-test/app:v1 >/dev/null
healthy_elsewhere() { # running tasks of fo on m1 and m3
    in_m m1 docker service ps fo --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' |
        grep -v '^m2 ' | grep -c 'Running' || true
}
until [ "$(healthy_elsewhere)" -ge 2 ] && [ "$(in_m m1 docker service ps fo --filter desired-state=running --format '{{.Node}}' | grep -c m2)" -ge 1 ]; do sleep 0.2; done
t0=$(now); docker kill m2 >/dev/null
until [ "$(healthy_elsewhere)" -ge 3 ]; do sleep 0.2; done
t1=$(now)
swarm_ms=$(((t1 - t0) / 1000000))

# --- hoist watch ------------------------------------------------------------------------------
bash tests/lab/lab.sh up 3 >/dev/null 2>&1
cd "$work"
printf 'name: fo\nservices:\n  web:\n    image: hoist-test/app:v1\n    deploy:\n      replicas: 3\n' >compose.yaml
"$hoist" -m "$lab/machines.yaml" up --yes >/dev/null 2>&1
"$hoist" -m "$lab/machines.yaml" watch >"$work/watch.log" 2>&1 &
sleep 3
count_healthy() {
    # ps exits 1 while m2 is unreachable; its JSON still lists the others.
    { "$hoist" -m "$lab/machines.yaml" --timeout 2s ps --json 2>/dev/null || true; } |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for r in d["replicas"] if r["machine"]!="m2" and r["state"]=="running" and r["health"] in ("healthy", None)))' 2>/dev/null || echo 0
}
t0=$(now); docker kill m2 >/dev/null
until [ "$(count_healthy)" -ge 3 ]; do sleep 0.2; done
t1=$(now)
hoist_ms=$(((t1 - t0) / 1000000))
kill %1 2>/dev/null || true
cd - >/dev/null
bash tests/lab/lab.sh up 3 >/dev/null 2>&1
echo "| failover: machine killed → 3 healthy replicas on the others | hoist watch ${hoist_ms} ms | Swarm ${swarm_ms} ms | ratio $(awk -v a="$hoist_ms" -v b="$swarm_ms" 'BEGIN {printf "%.2f", a/b}') |"
