#!/usr/bin/env bash
# hoist beside its peers on the same lab, in one run: prints a table with ratios
# (hoist / peer; below 1 means hoist is faster or smaller).
#   - fresh deploy of 6 replicas over 3 machines       (peer: Swarm `stack deploy`)
#   - rolling update of 6 replicas, parallelism 2, start-first (peer: Swarm)
#   - 5 containers on 1 machine                         (peer: docker compose v2 over ssh)
#   - no-op plan / up on 3 machines
#   - image shipping, first and after a one-layer change (peer: docker save | ssh docker load)
#   - hoist's peak memory deploying to 20 machines
# Usage: bash bench/peers.sh > BENCHMARKS.md.new   (needs the test suite's set-up: the lab,
# the reference docker-compose in /var/cache/hoist-test/venv). Leaves a 3-machine lab up.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cargo build --release --quiet
hoist=$root/target/release/hoist
lab=${HOIST_LAB_DIR:-/var/tmp/hoist-lab}
ref=${HOIST_COMPOSE_REF:-$(/var/cache/hoist-test/venv/bin/python -c 'import compose,os;print(os.path.join(os.path.dirname(compose.__file__),"docker-compose"))')}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
in_m() { local m=$1; shift; docker exec -i "$m" "$@"; }

bash tests/lab/lab.sh up 3 >/dev/null
echo "# Benchmarks"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), lab of 3 machines (engines 20.10 and 26.1) on one box. Rerun: \`bash bench/peers.sh\`."
echo
echo "| scenario | hoist (ms) | peer (ms) | ratio |"
echo "| --- | --- | --- | --- |"

# --- Swarm on the lab: m1 manager, m2 and m3 workers --------------------------------------
in_m m1 docker swarm init --advertise-addr 172.31.77.11 >/dev/null 2>&1 || true
token=$(in_m m1 docker swarm join-token -q worker)
for m in m2 m3; do in_m "$m" docker swarm join --token "$token" 172.31.77.11:2377 >/dev/null 2>&1 || true; done
swarm_wait() { # SERVICE WANT IMAGE — until WANT tasks of IMAGE run
    until [ "$(in_m m1 docker service ps "$1" --filter desired-state=running --format '{{.CurrentState}} {{.Image}}' | grep -c "^Running.*$3")" -ge "$2" ]; do sleep 0.2; done
}
cat >"$work/stack.yaml" <<'YAML'
services:
  web:
    image: hoist-test/app:${V:-v1}
    deploy:
      replicas: 6
      update_config: {parallelism: 2, order: start-first}
YAML
t0=$(now); sed 's/\${V:-v1}/v1/' "$work/stack.yaml" | in_m m1 docker stack deploy -c - bench >/dev/null 2>&1; swarm_wait bench_web 6 app:v1; t1=$(now)
swarm_fresh=$(ms "$t0" "$t1")
t0=$(now); sed 's/\${V:-v1}/v2/' "$work/stack.yaml" | in_m m1 docker stack deploy -c - bench >/dev/null 2>&1; swarm_wait bench_web 6 app:v2; t1=$(now)
swarm_update=$(ms "$t0" "$t1")
in_m m1 docker stack rm bench >/dev/null 2>&1 || true
for m in m3 m2 m1; do in_m "$m" docker swarm leave --force >/dev/null 2>&1 || true; done

# --- hoist, same scenarios -------------------------------------------------------------------
mkdir -p "$work/h" && cd "$work/h"
sed '1i name: benchhoist' "$work/stack.yaml" >compose.yaml
t0=$(now); V=v1 "$hoist" -m "$lab/machines.yaml" up --yes >/dev/null 2>&1; t1=$(now)
hoist_fresh=$(ms "$t0" "$t1")
t0=$(now); "$hoist" -m "$lab/machines.yaml" plan >/dev/null 2>&1; t1=$(now); noop_plan=$(ms "$t0" "$t1")
t0=$(now); "$hoist" -m "$lab/machines.yaml" up --yes >/dev/null 2>&1; t1=$(now); noop_up=$(ms "$t0" "$t1")
t0=$(now); V=v2 "$hoist" -m "$lab/machines.yaml" up --yes >/dev/null 2>&1; t1=$(now)
hoist_update=$(ms "$t0" "$t1")
"$hoist" -m "$lab/machines.yaml" down >/dev/null 2>&1
row "fresh deploy, 6 replicas over 3 machines (peer: Swarm stack deploy; hoist waits for healthy)" "$hoist_fresh" "$swarm_fresh"
row "rolling update of 6, parallelism 2, start-first (peer: Swarm)" "$hoist_update" "$swarm_update"
echo "| no-op plan, 3 machines | $noop_plan | - | - |"
echo "| no-op up, 3 machines | $noop_up | - | - |"

# --- 5 containers on one machine: docker compose v2 over ssh ---------------------------------
mkdir -p "$work/one" "$work/bin" && cd "$work/one"
printf 'name: benchone\nservices:\n' >compose.yaml
for i in 1 2 3 4 5; do printf '  s%s:\n    image: hoist-test/app:v1\n' "$i" >>compose.yaml; done
printf 'ssh_config: %s\nmachines:\n  m1: {ssh: m1}\n' "$lab/ssh_config" >m1.yaml
# docker compose's ssh transport runs `ssh` from PATH: point it at the lab's ssh config.
printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$lab/ssh_config" >"$work/bin/ssh" && chmod +x "$work/bin/ssh"
t0=$(now); PATH=$work/bin:$PATH DOCKER_HOST=ssh://m1 "$ref" up -d --wait >/dev/null 2>&1; t1=$(now)
compose_one=$(ms "$t0" "$t1")
PATH=$work/bin:$PATH DOCKER_HOST=ssh://m1 "$ref" down >/dev/null 2>&1 || true
t0=$(now); "$hoist" -m m1.yaml up --yes >/dev/null 2>&1; t1=$(now)
hoist_one=$(ms "$t0" "$t1")
"$hoist" -m m1.yaml down >/dev/null 2>&1
row "5 containers on 1 machine (peer: docker compose v2 over ssh, up -d --wait)" "$hoist_one" "$compose_one"

# --- image shipping: ~100 MB image, first and after a one-layer change -----------------------
mkdir -p "$work/img/www" && cd "$work/img"
head -c $((100 * 1024 * 1024)) /dev/urandom >www/big.bin
echo one >www/small.txt
printf 'FROM hoist-test/base:latest\nCOPY www/big.bin /big.bin\nCOPY www/small.txt /small.txt\nCMD ["sleep", "3600"]\n' >Dockerfile
printf 'name: benchship\nservices:\n  s:\n    build: .\n    init: true\n    deploy: {mode: global}\n' >compose.yaml
ship_peer() { # docker save | ssh docker load to every machine, in parallel; prints ms and bytes
    local t0 t1 bytes
    bytes=$(docker save "$1" | wc -c)
    t0=$(now)
    for m in m1 m2 m3; do docker save "$1" | ssh -F "$lab/ssh_config" "$m" docker load >/dev/null & done; wait
    t1=$(now)
    echo "$(ms "$t0" "$t1") $((bytes * 3))"
}
DOCKER_BUILDKIT=0 docker build -q -t benchship-s . >/dev/null
read -r peer_first_ms peer_first_bytes < <(ship_peer benchship-s)
for m in m1 m2 m3; do in_m "$m" docker rmi -f benchship-s >/dev/null 2>&1 || true; done
t0=$(now); out=$("$hoist" -m "$lab/machines.yaml" up --yes --json 2>/dev/null); t1=$(now)
hoist_first_ms=$(ms "$t0" "$t1")
hoist_first_bytes=$(echo "$out" | python3 -c 'import json,sys; print(sum(s["bytes"] for s in json.load(sys.stdin)["shipped"]))')
echo two >www/small.txt
DOCKER_BUILDKIT=0 docker build -q -t benchship-s . >/dev/null
read -r peer_change_ms peer_change_bytes < <(ship_peer benchship-s)
echo three >www/small.txt
t0=$(now); out=$("$hoist" -m "$lab/machines.yaml" up --yes --json 2>/dev/null); t1=$(now)
hoist_change_ms=$(ms "$t0" "$t1")
hoist_change_bytes=$(echo "$out" | python3 -c 'import json,sys; print(sum(s["bytes"] for s in json.load(sys.stdin)["shipped"]))')
"$hoist" -m "$lab/machines.yaml" down >/dev/null 2>&1
row "ship ~100 MB image to 3 machines, first (time incl. build + deploy for hoist)" "$hoist_first_ms" "$peer_first_ms"
row "  bytes sent, first" "$hoist_first_bytes" "$peer_first_bytes"
row "ship after a one-layer change (time incl. build + rolling update for hoist)" "$hoist_change_ms" "$peer_change_ms"
row "  bytes sent, one-layer change" "$hoist_change_bytes" "$peer_change_bytes"

# --- peak memory deploying to 20 machines ----------------------------------------------------
cd "$root"
bash tests/lab/lab.sh up 20 >/dev/null
mkdir -p "$work/twenty" && cd "$work/twenty"
printf 'name: benchtwenty\nservices:\n  web:\n    image: hoist-test/app:v1\n    deploy: {replicas: 20}\n' >compose.yaml
/usr/bin/time -f '%M' -o "$work/rss" "$hoist" -m "$lab/machines.yaml" up --yes >/dev/null 2>&1 || true
echo "| hoist peak memory, deploying 20 replicas to 20 machines | $(cat "$work/rss") KiB | - | - |"
"$hoist" -m "$lab/machines.yaml" down >/dev/null 2>&1 || true
cd "$root"
bash tests/lab/lab.sh up 3 >/dev/null
