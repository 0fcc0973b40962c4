#!/usr/bin/env bash
# hoist beside its peers on the same lab, in one run: prints BENCHMARKS.md (a markdown table
# with ratios hoist / peer; below 1 means hoist is faster or sends less).
#   - no-op plan and no-op up on 1, 3 and 10 machines  (peers: docker compose v2 over ssh on 1
#     machine — `--dry-run up -d` and `up -d`; Swarm `stack deploy` of the same file on 3 and 10)
#   - fresh deploy and rolling update of 6 replicas over 3 machines, parallelism 2, start-first,
#     with an image that exits on SIGTERM and one that ignores it (peer: Swarm; bench/rollout.sh,
#     its own table)
#   - fresh deploy: 5 containers on 1 machine           (peer: docker compose v2 over ssh)
#   - failover after a machine is killed                (peer: Swarm; bench/failover.sh)
#   - image shipping, ~100 MB, first and after a one-layer change (peer: docker save | ssh docker
#     load; bench/ship.sh, its own table)
#   - hoist's peak memory deploying to 20 machines
#   - the mesh: one hop by service name, same machine and across machines, against a direct
#     connection (bench/mesh.sh, its own table)
# Every timed scenario runs RUNS times per side (default 3) and reports the median.
#
# Usage: bash bench/peers.sh > BENCHMARKS.md
# Needs the test suite's set-up (`bash tests/all.sh` once: the lab's images, the reference
# docker compose in /var/cache/hoist-test/venv). Takes the lab for itself (tests wait), rebuilds
# it at 1, 3, 10 and 20 machines, and leaves a 3-machine lab up. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${RUNS:-3}
ref=${HOIST_COMPOSE_REF:-$(/var/cache/hoist-test/venv/bin/python -c 'import compose,os;print(os.path.join(os.path.dirname(compose.__file__),"docker-compose"))')}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR

say() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
in_m() { local m=$1; shift; docker exec -i "$m" docker "$@"; }
# `docker stack deploy` runs where a user runs it — on this box, reaching the manager over ssh
# (DOCKER_HOST=ssh://m1), as hoist reaches its machines; stdin is the stack file, which the CLI
# wants with a Compose file version. --resolve-image never: the lab has no registry, and hoist
# asks none for local images either, so neither side pays for a registry lookup.
# Since Docker 26 the CLI waits for convergence unless --detach; both sides are waited for by the
# same polling below, so ask for the older behaviour where the flag exists.
detach=()
docker stack deploy --help 2>/dev/null | grep -q -- '--detach' && detach=(--detach=true)
stack_deploy() {
    sed '1i version: "3.8"' |
        PATH=$work/bin:$PATH DOCKER_HOST=ssh://m1 docker stack deploy "${detach[@]}" --resolve-image never -c - "$1" \
            >/dev/null 2>"$work/stack.err" || { cat "$work/stack.err" >&2; return 1; }
}
quiet() { "$@" >/dev/null 2>&1; }

# shellcheck source=bench/common.sh
source bench/common.sh

h() { "$hoist" -m "$machines" "$@"; }

lab_sh() { # lab.sh quietly; its log on failure, and one retry (a machine may be slow to stop)
    bash "$root/tests/lab/lab.sh" "$@" >"$work/lab.log" 2>&1 && return
    cat "$work/lab.log" >&2
    say "lab.sh $* failed; once more"
    bash "$root/tests/lab/lab.sh" "$@" >"$work/lab.log" 2>&1 || { cat "$work/lab.log" >&2; exit 1; }
}
lab_up() { # N: a lab of exactly N machines, and a machines file for the first $2 (default N)
    say "lab: $1 machines"
    lab_sh up "$1"
    machines=$work/machines-$1.yaml
    python3 - "$lab/machines.yaml" "${2:-$1}" >"$machines" <<'PY'
import sys, re
text, keep = open(sys.argv[1]).read(), int(sys.argv[2])
out, skip = [], False
for line in text.splitlines():
    m = re.match(r"^  (m(\d+)):", line)
    if m:
        skip = int(m.group(2)) > keep
    elif not line.startswith("    "):
        skip = False
    if line.startswith("ssh_config:"):
        line = "ssh_config: " + sys.argv[1].rsplit("/", 1)[0] + "/ssh_config"
    if not skip:
        out.append(line)
print("\n".join(out))
PY
}

# Swarm over machines m1..mN: m1 manages, the others join as workers.
swarm_up() { # N
    quiet in_m m1 swarm init --advertise-addr 172.31.77.11 || true
    local token i
    token=$(in_m m1 swarm join-token -q worker)
    for ((i = 2; i <= $1; i++)); do quiet in_m "m$i" swarm join --token "$token" 172.31.77.11:2377 & done
    wait
}
swarm_down() { # N
    local i
    for ((i = $1; i >= 1; i--)); do quiet in_m "m$i" swarm leave --force || true; done
}
swarm_wait() { # SERVICE WANT IMAGE-SUFFIX: until WANT tasks of that image are Running (Swarm
    # reports Running only once the image's HEALTHCHECK passes, as hoist waits for healthy)
    until [ "$(in_m m1 service ps "$1" --filter desired-state=running --format '{{.CurrentState}} {{.Image}}' |
        grep -c "^Running.*$3")" -ge "$2" ]; do sleep 0.2; done
}
swarm_stack_gone() { # STACK: until its containers are gone from every machine
    until [ -z "$(in_m m1 service ls -q --filter "label=com.docker.stack.namespace=$1")" ]; do sleep 0.2; done
    local i
    for ((i = 1; i <= $2; i++)); do
        until [ -z "$(in_m "m$i" ps -aq --filter "label=com.docker.stack.namespace=$1")" ]; do sleep 0.2; done
    done
}

# docker compose v2 with DOCKER_HOST=ssh://m1: its ssh transport runs `ssh` from PATH, so a
# wrapper points it at the lab's ssh config (as a user's ~/.ssh/config would).
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$lab/ssh_config" >"$work/bin/ssh"
chmod +x "$work/bin/ssh"
compose() { PATH=$work/bin:$PATH DOCKER_HOST=ssh://m1 "$ref" "$@"; }

med() { printf '%s\n' "$@" | median; }
# No-op plan and up with hoist, cold then warm, RUNS rounds: sets cold_plan warm_plan cold_up warm_up.
noop_hoist() {
    local cp=() wp=() cu=() wu=() t
    for _ in $(seq "$runs"); do
        t=$(now); HOIST_SSH_PERSIST=0 quiet h plan; cp+=("$(ms_since "$t")")
        quiet h plan # leaves masters for the warm runs
        t=$(now); quiet h plan; wp+=("$(ms_since "$t")")
        t=$(now); HOIST_SSH_PERSIST=0 quiet h up --yes; cu+=("$(ms_since "$t")")
        t=$(now); quiet h up --yes; wu+=("$(ms_since "$t")")
    done
    cold_plan=$(med "${cp[@]}") warm_plan=$(med "${wp[@]}") cold_up=$(med "${cu[@]}") warm_up=$(med "${wu[@]}")
}
noop_rows() { # WHAT PLAN-PEER PLAN-PEER-MS UP-PEER UP-PEER-MS
    local plan_peer=$3
    [ -n "$plan_peer" ] || plan_peer=-
    row "no-op plan, $1, cold: new SSH connections (peer: $2), ms" "$cold_plan" "$plan_peer"
    row "no-op plan, $1, warm: ssh masters kept by the previous command, hoist's default (peer: $2), ms" "$warm_plan" "$plan_peer"
    row "no-op up, $1, cold (peer: $4), ms" "$cold_up" "$5"
    row "no-op up, $1, warm (peer: $4), ms" "$warm_up" "$5"
}

# The projects. ${V} picks the image version for the rolling update.
five() { printf 'services:\n'; for i in 1 2 3 4 5; do printf '  s%s:\n    image: hoist-test/app:v1\n' "$i"; done; }
noop_project() { # N machines: 5 services × N replicas
    printf 'services:\n'
    for i in 1 2 3 4 5; do printf '  s%s:\n    image: hoist-test/app:v1\n    deploy: {replicas: %s}\n' "$i" "$1"; done
}

echo "# Benchmarks"
echo
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM: hoist $("$hoist" --version | awk '{print $2}') ($(git rev-parse --short HEAD)) and its peers on the same lab — machines are containers with real sshd and dockerd on this one box (odd machines Debian 12 / engine 20.10, even ones Debian 13 / engine 26.1), so every side shares the same 2 cores. Times are wall-clock medians of $runs runs; ratio = hoist / peer (below 1: hoist is faster or sends less). Rerun with \`bash bench/peers.sh > BENCHMARKS.md\`."
echo
echo "| scenario | hoist | peer | ratio |"
echo "| --- | --- | --- | --- |"

# --- no-op plan and up, 1 machine: docker compose over ssh -----------------------------------------
lab_up 3 1
mkdir -p "$work/noop1" && cd "$work/noop1"
noop_project 1 | sed '1i name: benchnoop' >compose.yaml
# One side at a time: the other's containers would load the same 2 cores. hoist runs twice
# per round: cold (HOIST_SSH_PERSIST=0: new SSH connections, as every peer here makes) and warm
# (its default: the ssh masters the previous command kept).
quiet h up --yes
noop_hoist
quiet h down
quiet compose -p benchnoopc up -d --wait
cplan=() cup=()
for _ in $(seq "$runs"); do
    t=$(now); quiet compose -p benchnoopc --dry-run up -d; cplan+=("$(ms_since "$t")")
    t=$(now); quiet compose -p benchnoopc up -d; cup+=("$(ms_since "$t")")
done
quiet compose -p benchnoopc down || true
noop_rows "1 machine, 5 services" "docker compose --dry-run up -d over ssh" "$(med "${cplan[@]}")" \
    "docker compose up -d over ssh" "$(med "${cup[@]}")"
cd "$root"

# --- no-op plan and up, 3 and 10 machines: Swarm stack deploy of the unchanged file -------------
for n in 3 10; do
    lab_up "$n"
    mkdir -p "$work/noop$n" && cd "$work/noop$n"
    noop_project "$n" >stack.yaml
    sed '1i name: benchnoop' stack.yaml >compose.yaml
    quiet h up --yes
    noop_hoist
    quiet h down
    swarm_up "$n"
    stack_deploy noop <stack.yaml
    for i in 1 2 3 4 5; do swarm_wait "noop_s$i" "$n" app:v1; done
    sup=()
    for _ in $(seq "$runs"); do
        t=$(now); stack_deploy noop <stack.yaml; sup+=("$(ms_since "$t")")
    done
    quiet in_m m1 stack rm noop || true
    swarm_stack_gone noop "$n"
    swarm_down "$n"
    noop_rows "$n machines, 5 services × $n replicas" "Swarm has no plan" "" \
        "Swarm stack deploy, unchanged file" "$(med "${sup[@]}")"
    cd "$root"
done

# Fresh deploy and rolling update of 6 replicas over 3 machines (peer: Swarm) have a table of
# their own, with two images (bench/rollout.sh), printed after this one.

# --- fresh deploy, 5 containers on 1 machine: docker compose over ssh -------------------------------
mkdir -p "$work/five" && cd "$work/five"
five >compose.yaml
cp "$work/machines-3.yaml" all.yaml
machines=$work/machines-1.yaml
[ -f "$machines" ] || lab_up 3 1
hfive=() cfive=()
for _ in $(seq "$runs"); do
    t=$(now); quiet compose -p five up -d --wait; cfive+=("$(ms_since "$t")")
    quiet compose -p five down
    t=$(now); quiet h -p five up --yes; hfive+=("$(ms_since "$t")")
    quiet h -p five down
done
row "fresh deploy, 5 containers on 1 machine, until healthy (peer: docker compose up -d --wait over ssh), ms" \
    "$(printf '%s\n' "${hfive[@]}" | median)" "$(printf '%s\n' "${cfive[@]}" | median)"
cd "$root"

# --- failover after a machine is killed: Swarm -------------------------------------------------------
say "failover (bench/failover.sh)"
bash "$root/bench/failover.sh" >"$work/failover" || true
# failover.sh prints one row: | failover … | hoist watch N ms | Swarm M ms | ratio R |
hfo=$(grep -o 'hoist watch [0-9]*' "$work/failover" | grep -o '[0-9]*$' || echo 0)
sfo=$(grep -o 'Swarm [0-9]*' "$work/failover" | grep -o '[0-9]*$' || echo 0)
row "failover: machine killed → 3 healthy replicas on the others (hoist watch; peer: Swarm), ms" "$hfo" "$sfo"

# --- hoist's peak memory deploying to 20 machines ----------------------------------------------------
lab_up 20
mkdir -p "$work/twenty" && cd "$work/twenty"
printf 'name: benchtwenty\nservices:\n  web:\n    image: hoist-test/app:v1\n    deploy: {replicas: 20}\n' >compose.yaml
# ru_maxrss of the one child hoist process, in KiB (no dependency on GNU time).
python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$hoist" -m "$machines" up --yes >"$work/rss"
echo "| hoist peak memory (max RSS), deploying 20 replicas to 20 machines | $(cat "$work/rss") KiB | - | - |"
quiet h down || true
cd "$root"
lab_sh up 3
echo
# Rollouts, with an image that exits on SIGTERM and one that ignores it (like many real ones).
say "rollouts (bench/rollout.sh)"
echo "## Fresh deploy and rolling update (bench/rollout.sh)"
echo
bash bench/rollout.sh
echo
# Image shipping has a table of its own (bytes and time, and whether compressing pays).
say "image shipping (bench/ship.sh)"
bash bench/ship.sh | sed 's/^# /## /'
echo
# The mesh (service names across machines): hoist alone, one hop against a direct connection.
say "mesh (bench/mesh.sh)"
bash bench/mesh.sh
echo
cat bench/peers-notes.md   # how to read the table (kept beside the script, printed with it)
say "done"
