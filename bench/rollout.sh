#!/usr/bin/env bash
# Fresh deploy and rolling update of 6 replicas over 3 machines (parallelism 2, start-first),
# hoist beside Swarm on the same lab, with two images:
#   - hoist-test/app  — the lab's test image: its PID 1 exits at once on SIGTERM;
#   - stubborn        — busybox httpd as PID 1, which ignores SIGTERM (like `sleep`, shell-form
#     CMDs and many real images): every stop takes the whole 10 s grace period.
# Both have a 1 s HEALTHCHECK. Both sides are timed by the same poll: until 6 replicas of the new
# image run healthy (Swarm reports a task Running only once its healthcheck passes). hoist's whole
# command is reported too: it waits for every old replica's stop and every monitor window
# before it exits (docs/rollouts.md); Swarm's `stack deploy --detach` returns at once.
#
# Usage: bash bench/rollout.sh   (prints a markdown table; RUNS=N rounds per side, default 3)
# Needs the 3-machine lab's images (bash tests/all.sh once). Holds the lab exclusively.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
in_m() { local m=$1; shift; docker exec -i "$m" docker "$@"; }
quiet() { "$@" >/dev/null 2>&1; }

# shellcheck source=bench/common.sh
source bench/common.sh
bash tests/lab/lab.sh ensure 3 >/dev/null
machines=$lab/machines.yaml
h() { "$hoist" -m "$machines" "$@"; }

# The stubborn image, built on the box and loaded into every machine (Swarm cannot ship it;
# hoist would, but both sides start from machines that hold both images).
mkdir -p "$work/stubborn"
cat >"$work/stubborn/Dockerfile" <<'EOF'
FROM hoist-test/base:latest
ARG VERSION
RUN mkdir -p /www && echo "stubborn $VERSION" > /www/index.html
HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
EXPOSE 80
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
EOF
for v in v1 v2; do
    quiet docker build --build-arg "VERSION=$v" -t "hoist-bench/stubborn:$v" "$work/stubborn"
done
for m in m1 m2 m3; do
    docker save hoist-bench/stubborn:v1 hoist-bench/stubborn:v2 | in_m "$m" load >/dev/null
done

# Swarm over m1..m3, driven from this box over ssh like hoist (see bench/peers.sh).
mkdir -p "$work/bin"
printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$lab/ssh_config" >"$work/bin/ssh"
chmod +x "$work/bin/ssh"
detach=()
docker stack deploy --help 2>/dev/null | grep -q -- '--detach' && detach=(--detach=true)
stack_deploy() {
    sed '1i version: "3.8"' |
        PATH=$work/bin:$PATH DOCKER_HOST=ssh://m1 docker stack deploy "${detach[@]}" --resolve-image never -c - "$1" >/dev/null
}
swarm_up() {
    quiet in_m m1 swarm init --advertise-addr 172.31.77.11 || true
    local token
    token=$(in_m m1 swarm join-token -q worker)
    for m in m2 m3; do quiet in_m "$m" swarm join --token "$token" 172.31.77.11:2377 || true; done
}
swarm_down() { for m in m3 m2 m1; do quiet in_m "$m" swarm leave --force || true; done; }
swarm_wait() { # SERVICE IMAGE: until 6 tasks of IMAGE are Running
    until [ "$(in_m m1 service ps "$1" --filter desired-state=running --format '{{.CurrentState}} {{.Image}}' |
        grep -c "^Running.*$2")" -ge 6 ]; do sleep 0.2; done
}
swarm_gone() {
    until [ -z "$(in_m m1 service ls -q --filter label=com.docker.stack.namespace=roll)" ]; do sleep 0.2; done
    for m in m1 m2 m3; do
        until [ -z "$(in_m "$m" ps -aq --filter label=com.docker.stack.namespace=roll)" ]; do sleep 0.2; done
    done
}
# hoist's side of the same poll: 6 healthy replicas of IMAGE on the machines. The three
# machines are asked at once, so one look takes about as long as Swarm's single `service ps`.
hoist_wait() { # IMAGE
    local m pids
    while :; do
        pids=()
        for m in m1 m2 m3; do
            in_m "$m" ps --filter label=io.hoist.project=roll --filter health=healthy \
                --format '{{.Image}}' >"$work/poll.$m" &
            pids+=($!)
        done
        wait "${pids[@]}"
        [ "$(cat "$work"/poll.m? | grep -c "$1" || true)" -ge 6 ] && return
        sleep 0.2
    done
}
stack() { # IMAGE
    printf 'services:\n  web:\n    image: %s\n    deploy:\n      replicas: 6\n      update_config: {parallelism: 2, order: start-first}\n' "$1"
}

echo "| 6 replicas over 3 machines, parallelism 2, start-first | hoist | Swarm | ratio |"
echo "| --- | --- | --- | --- |"
mkdir -p "$work/roll" && cd "$work/roll"
for image in hoist-test/app hoist-bench/stubborn; do
    case $image in
        hoist-test/app) what="test image (PID 1 exits on SIGTERM)" ;;
        *) what="busybox httpd as PID 1 (ignores SIGTERM: 10 s stops)" ;;
    esac
    say "Swarm, $what"
    swarm_up
    sf=() su=()
    for _ in $(seq "$runs"); do
        t=$(now); stack "$image:v1" | stack_deploy roll; swarm_wait roll_web "$image:v1"; sf+=("$(ms_since "$t")")
        t=$(now); stack "$image:v2" | stack_deploy roll; swarm_wait roll_web "$image:v2"; su+=("$(ms_since "$t")")
        quiet in_m m1 stack rm roll
        swarm_gone
    done
    swarm_down
    say "hoist, $what"
    hf=() hu=() hc=()
    for _ in $(seq "$runs"); do
        stack "$image:v1" | sed '1i name: roll' >compose.yaml
        t=$(now); quiet h up --yes; hf+=("$(ms_since "$t")")
        stack "$image:v2" | sed '1i name: roll' >compose.yaml
        t=$(now)
        quiet h up --yes &
        pid=$!
        hoist_wait "$image:v2"; hu+=("$(ms_since "$t")")
        wait "$pid"; hc+=("$(ms_since "$t")")
        quiet h down
    done
    row "fresh deploy until all healthy, $what, ms" "$(printf '%s\n' "${hf[@]}" | median)" "$(printf '%s\n' "${sf[@]}" | median)"
    row "rolling update until all new replicas healthy, $what, ms" "$(printf '%s\n' "${hu[@]}" | median)" "$(printf '%s\n' "${su[@]}" | median)"
    row "rolling update, hoist's whole command (every old replica stopped, monitor windows over; Swarm: same poll), $what, ms" "$(printf '%s\n' "${hc[@]}" | median)" "$(printf '%s\n' "${su[@]}" | median)"
done
cd "$root"
for m in m1 m2 m3; do quiet in_m "$m" rmi hoist-bench/stubborn:v1 hoist-bench/stubborn:v2 || true; done
say "done"
