#!/usr/bin/env bash
# hoist's test lab: a fleet of real machines on one box.
#
# hoist deploys to machines reachable over SSH that run a Docker engine. To test it for real,
# without servers and without mocks, this script runs each "machine" as a container on the box's
# own engine: a Debian rootfs with sshd and its own dockerd, on a private network with fixed
# addresses. Odd machines run Debian 12 (engine 20.10, API 1.41), even ones Debian 13 (engine 26.1,
# API 1.45), because real fleets mix engine versions. See tests/lab/README.md for usage and
# /work/shared/LAB.md for the facts this relies on (the `docker run` flags in particular).
#
# Usage: tests/lab/lab.sh COMMAND [ARGS]   (run as root; `help` lists the commands)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly STATE=${HOIST_LAB_DIR:-/var/tmp/hoist-lab}
# Seconds a machine may take to answer ssh and `docker info` after (re)start.
readonly READY_TIMEOUT=${HOIST_LAB_TIMEOUT:-180}
# Seconds `ensure` waits for other users of the lab (a first `up` alone takes over a minute).
readonly LOCK_TIMEOUT=1200

readonly NET=hoist-lab
readonly SUBNET=172.31.77.0/24
readonly NET_PREFIX=172.31.77
# Every object the lab creates on the box carries this label, so cleanup never touches others.
readonly LABEL=io.hoist.lab
# The opt-in machine whose engine keeps images in containerd's image store (engine 26 with the
# containerd snapshotter). It is not one of m1..mN, so every test's lab of N machines stays as it
# is; `lab.sh containerd` starts it beside them, at an address no mN uses (m99 is .109).
readonly CTD=ctd
readonly CTD_IP=$NET_PREFIX.200
# The opt-in bare machine: sshd and no engine, a fresh server for `hoist machines init`
# (Debian 12, the machine image with the engine purged at first boot). `lab.sh bare` makes a new
# one every time, since init changes it.
readonly BARE=bare
readonly BARE_IP=$NET_PREFIX.201
# The opt-in Podman machine: Debian 13 with Podman from Debian's packages serving the Docker API
# on /run/podman/podman.sock, for mixed Docker + Podman fleets. Its image is the trixie machine
# image with Docker purged and Podman installed (built once, cached by recipe).
readonly POD=pod
readonly POD_IP=$NET_PREFIX.202
readonly POD_PACKAGES="podman aardvark-dns nftables catatonit ca-certificates"
# The opt-in rootless-Docker machine: Debian 13 whose engine is user alice's own (uid 1000,
# dockerd-rootless.sh from docker.io, socket /run/user/1000/docker.sock); no engine runs as root.
readonly RL=rl
readonly RL_IP=$NET_PREFIX.203
readonly RL_PACKAGES="rootlesskit uidmap slirp4netns"

# The opt-in "two providers" machines, for moving a project from one provider to another:
# pa1, pa2 on the lab network ("provider A", .31 and .32) and pb1, pb2 on a second network
# ("provider B"). Docker isolates two bridge networks from each other; the box forwards between
# these two (DOCKER-USER rules), so A and B reach each other only at their machines' addresses —
# as two clouds do over the internet — and nothing else of the lab is on B.
readonly NET_B=hoist-lab-b
readonly SUBNET_B=172.31.78.0/24
readonly NET_B_PREFIX=172.31.78
readonly PROVIDER_MACHINES="pa1 pa2 pb1 pb2"

log() { printf '%s lab: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

# How the machine and test images are built and cached.
# shellcheck source=tests/lab/images.sh
source "$HERE/images.sh"

# --- names and addresses ------------------------------------------------------------------------

machine_index() { # m7 -> 7; anything else is an error
    [[ $1 =~ ^m([1-9][0-9]?)$ ]] || die "no such machine name: '$1' (expected m1, m2, ...)"
    echo "${BASH_REMATCH[1]}"
}
machine_ip() {
    case $1 in
        "$CTD") echo "$CTD_IP" ;;
        "$BARE") echo "$BARE_IP" ;;
        "$POD") echo "$POD_IP" ;;
        "$RL") echo "$RL_IP" ;;
        pa[12]) echo "$NET_PREFIX.$((30 + ${1#pa}))" ;;
        pb[12]) echo "$NET_B_PREFIX.$((10 + ${1#pb}))" ;;
        *) echo "$NET_PREFIX.$((10 + $(machine_index "$1")))" ;;
    esac
}
machine_suite() {
    case $1 in
        "$CTD") echo trixie ;;
        "$BARE") echo bookworm ;;
        "$POD" | "$RL") echo trixie ;;
        pa1 | pb1) echo bookworm ;;
        pa2 | pb2) echo trixie ;;
        *) (($(machine_index "$1") % 2)) && echo bookworm || echo trixie ;;
    esac
}
is_opt_in() { [[ $1 == "$CTD" || $1 == "$BARE" || $1 == "$POD" || $1 == "$RL" || " $PROVIDER_MACHINES " == *" $1 "* ]]; }
machine_net() { if [[ $1 == pb* ]]; then echo "$NET_B"; else echo "$NET"; fi; }
machine_volume() { echo "hoist-lab-$1-docker"; }

# How many machines (m1..mN) the last `up` started.
lab_size() { cat "$STATE/size" 2>/dev/null || echo 0; }
require_machine() { # a fault command must name a machine of the running lab
    is_opt_in "$1" || machine_index "$1" >/dev/null
    docker container inspect -f "{{index .Config.Labels \"$LABEL.machine\"}}" "$1" 2>/dev/null |
        grep -qx "$1" || die "$1 is not a machine of the lab (run: $0 up)"
}

# --- prerequisites --------------------------------------------------------------------------------

# CI starts from a bare Debian 12: install what is missing, once, through apt.
ensure_packages() {
    local missing=()
    command -v docker >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    # The test images are a busybox binary and nothing else, so it must be the static build.
    dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
        missing+=(busybox-static)
    command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || missing+=(openssh-client)
    command -v flock >/dev/null || missing+=(util-linux)
    ((${#missing[@]} == 0)) && return
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Processes do not outlive a CI job or a session, so the box's dockerd may not be running.
ensure_dockerd() {
    docker info >/dev/null 2>&1 && return
    log "no Docker engine answers; starting dockerd (log: /var/log/dockerd.log)"
    # Without the lock fds (7-9, see lock_lab and cmd_ensure): dockerd outlives this script and
    # would hold the lab's locks forever.
    setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null 7>&- 8>&- 9>&- &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 0.5
    done
    die "dockerd did not start within 30 s; see /var/log/dockerd.log"
}

# Engines read a container's CPU and memory (docker stats, hence `hoist watch`'s autoscaler)
# through every cgroup v1 hierarchy the kernel lists; one enabled but not mounted (this box
# kind leaves net_cls, net_prio, perf_event and hugetlb unmounted) makes containerd fail with
# "cannot find cgroup mount destination" and stats read all zeros — on the box and in every
# machine, which shares the box's /sys/fs/cgroup. Mount what is missing; a cgroup v2 box
# (cgroup.controllers at the top) needs nothing.
missing_cgroup_controllers() {
    [[ -e /sys/fs/cgroup/cgroup.controllers ]] && return
    local name hier _n enabled
    while read -r name hier _n enabled; do
        [[ $name == \#* || $enabled != 1 || $hier == 0 ]] && continue
        grep -qE " - cgroup cgroup .*[,]?$name(,|$)" /proc/self/mountinfo || echo "$name"
    done </proc/cgroups
}
ensure_cgroup_controllers() {
    local c
    for c in $(missing_cgroup_controllers); do
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || die "could not mount the $c cgroup controller (needed for docker stats)"
        log "mounted the $c cgroup controller (docker stats needs every enabled one)"
    done
}

# Two `up`s (or an `up` and a `down`) at once would remove each other's machines.
lock_lab() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lab.lock"
    flock 9
}

ensure_root() { ((EUID == 0)) || die "run as root (the lab drives the box's Docker engine and debootstrap)"; }

# --- keys and client files ---------------------------------------------------------------------------------

# The user's key and each machine's host key persist in the state dir, so a user's known_hosts
# and a running hoist stay valid across `up`s, as they would with real servers.
ensure_keys() { # N
    mkdir -p "$STATE/hostkeys"
    chmod 700 "$STATE"
    [[ -f $STATE/id_ed25519 ]] ||
        ssh-keygen -q -t ed25519 -N '' -C hoist-lab-user -f "$STATE/id_ed25519"
    local i
    for ((i = 1; i <= $1; i++)); do
        [[ -f $STATE/hostkeys/m$i ]] ||
            ssh-keygen -q -t ed25519 -N '' -C "m$i" -f "$STATE/hostkeys/m$i"
    done
}

write_client_files() { # N
    local n=$1 i name zones=(a b c)
    {
        echo "# known host keys of the hoist lab machines, by address (tests/lab/lab.sh)"
        for ((i = 1; i <= n; i++)); do
            echo "$(machine_ip "m$i") $(cut -d' ' -f1,2 "$STATE/hostkeys/m$i.pub")"
        done
    } >"$STATE/known_hosts"
    {
        echo "# ssh client config for the hoist lab machines, written by tests/lab/lab.sh"
        echo "# use: ssh -F $STATE/ssh_config m1"
        for ((i = 1; i <= n; i++)); do
            cat <<EOF

Host m$i
    HostName $(machine_ip "m$i")
    User root
    IdentityFile $STATE/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $STATE/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 5
EOF
        done
    } >"$STATE/ssh_config"
    {
        echo "# hoist machines file written by tests/lab/lab.sh"
        echo "ssh_config: ssh_config        # relative to this file; passed to ssh -F"
        echo "machines:"
        for ((i = 1; i <= n; i++)); do
            name=m$i
            echo "  $name:"
            echo "    ssh: $name"
            if ((i % 2)); then
                echo "    labels: {zone: ${zones[(i - 1) % 3]}, disk: ssd, os: bookworm}"
            else
                echo "    labels: {zone: ${zones[(i - 1) % 3]}, os: trixie}"
            fi
        done
    } >"$STATE/machines.yaml"
    echo "$n" >"$STATE/size"
}

# --- machines ---------------------------------------------------------------------------------------

# Everything an earlier run left: machines (running, paused or stopped by a box restart), their
# engine volumes, the network. Only objects labelled by the lab are removed.
clear_leftovers() {
    local ids
    ids=$(docker ps -aq --filter "label=$LABEL.machine")
    [[ -z $ids ]] || xargs docker rm -f <<<"$ids" >/dev/null
    docker volume ls -q --filter "label=$LABEL" | xargs -r docker volume rm >/dev/null
    local net
    for net in "$NET" "$NET_B"; do
        if docker network inspect "$net" >/dev/null 2>&1; then
            docker network rm "$net" >/dev/null
        fi
    done
}

create_machine() { # NAME [RECIPE DAEMON_JSON BOOT IMAGE FLAG] — the last five for a kind beside m1..mN
    local name=$1 recipe=${2:-$(lab_recipe)} daemon_json=${3:-} boot=${4:-} image=${5:-} ip suite
    local extra=()
    [[ -z ${6:-} ]] || extra=("$6")
    ip=$(machine_ip "$name")
    suite=$(machine_suite "$name")
    docker volume create --label "$LABEL=1" "$(machine_volume "$name")" >/dev/null
    # The flags are the ones LAB.md found to work here (--privileged fails on this kind of box).
    docker create --name "$name" --hostname "$name" \
        --label "$LABEL.machine=$name" --label "$LABEL.recipe=$recipe" \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        -v /sys/fs/cgroup:/sys/fs/cgroup --tmpfs /run \
        -v "$(machine_volume "$name"):$(engine_dir "$name")" \
        -e DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1 "${extra[@]}" \
        --network "$(machine_net "$name")" --ip "$ip" \
        "${image:-$(machine_image "$suite")}" /usr/local/sbin/hoist-lab-boot >/dev/null
    install_host_key "$name" "$STATE/hostkeys/$name"
    # The engine reads daemon.json when it starts, at boot: written before the first start, it
    # configures this machine alone, and the machine image (its recipe) stays the same.
    [[ -z $daemon_json ]] || docker cp "$daemon_json" "$name:/etc/docker/daemon.json"
    # Likewise another PID 1 for a kind that boots differently (the bare machine).
    [[ -z $boot ]] || docker cp "$boot" "$name:/usr/local/sbin/hoist-lab-boot"
    # authorized_keys as on a real server: root-owned, mode 600, in a 700 directory. A tar stream
    # sets owner and modes whether or not the image already has /root/.ssh (trixie's has).
    local tmp
    tmp=$(mktemp -d)
    install -d -m 700 "$tmp/.ssh"
    install -m 600 "$STATE/id_ed25519.pub" "$tmp/.ssh/authorized_keys"
    tar -C "$tmp" --numeric-owner --owner=0 --group=0 -c .ssh | docker cp - "$name:/root"
    rm -rf "$tmp"
    docker start "$name" >/dev/null
}

# Where the machine's engine keeps its data: on a volume, so that it can use overlay storage.
engine_dir() {
    case $1 in
        "$POD") echo /var/lib/containers ;;
        "$RL") echo /home/alice/.local/share/docker ;;
        *) echo /var/lib/docker ;;
    esac
}

install_host_key() { # NAME KEYFILE — copies a private key and its .pub in as the machine's host key
    local tmp
    tmp=$(mktemp -d)
    install -m 600 "$2" "$tmp/ssh_host_ed25519_key"
    install -m 644 "$2.pub" "$tmp/ssh_host_ed25519_key.pub"
    docker cp "$tmp/ssh_host_ed25519_key" "$1:/etc/ssh/ssh_host_ed25519_key"
    docker cp "$tmp/ssh_host_ed25519_key.pub" "$1:/etc/ssh/ssh_host_ed25519_key.pub"
    rm -rf "$tmp"
}

# What a healthy machine of this lab version runs; `status` flags machines made by another recipe.
lab_recipe() {
    echo "$LAB_VERSION-$(machine_recipe_hash bookworm)-$(machine_recipe_hash trixie)-$(test_images_hash)"
}

ssh_machine() { # NAME CMD... — exactly as a user (or hoist) reaches the machine
    ssh -F "$STATE/ssh_config" "$@"
}

# Ready = sshd accepts our key and host key, and the machine's own engine answers (a bare
# machine has none: sshd alone).
machine_ready() { # NAME
    ssh_machine "$1" true >/dev/null 2>&1 || return 1
    [[ $1 == "$BARE" ]] && return 0
    if [[ $1 == "$RL" ]]; then
        docker exec "$1" su alice -c 'DOCKER_HOST=unix:///run/user/1000/docker.sock docker info' >/dev/null 2>&1
        return
    fi
    if [[ $1 == "$POD" ]]; then
        docker exec -e PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$1" \
            podman --url unix:///run/podman/podman.sock version >/dev/null 2>&1
        return
    fi
    docker exec "$1" docker info >/dev/null 2>&1
}

wait_ready() { # NAME...  — in parallel; names every machine that is not ready in time
    local name pids=() names=() failed=()
    for name in "$@"; do
        (
            deadline=$((SECONDS + READY_TIMEOUT))
            until machine_ready "$name"; do
                ((SECONDS < deadline)) || exit 1
                sleep 0.5
            done
        ) &
        pids+=($!) names+=("$name")
    done
    local i
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || failed+=("${names[$i]}")
    done
    ((${#failed[@]} == 0)) && return
    for name in "${failed[@]}"; do
        echo "lab: ${name} ($(machine_ip "$name")): $(why_not_ready "$name")" >&2
    done
    die "not ready after ${READY_TIMEOUT}s: ${failed[*]}"
}

why_not_ready() { # NAME — the first thing that is wrong, for error messages
    local state out
    state=$(docker container inspect -f '{{.State.Status}}' "$1" 2>/dev/null) || { echo "no container"; return; }
    [[ $state == running ]] || { echo "container is $state"; return; }
    out=$(ssh_machine "$1" true 2>&1) || { echo "ssh fails: $(tail -n1 <<<"$out")"; return; }
    out=$(docker exec "$1" docker info 2>&1 >/dev/null) ||
        { echo "inner dockerd does not answer: $(tail -n1 <<<"$out") (see /var/log/dockerd.log in $1)"; return; }
    echo "ready now"
}

load_test_images() { # TARBALL NAME... — at most 4 at a time: each load unpacks on the one disk
    local tarball=$1 name running=0 errors=0
    shift
    for name in "$@"; do
        docker exec -i "$name" docker load -q <"$tarball" >/dev/null &
        if ((++running >= 4)); then wait -n || errors=1; ((running--)); fi
    done
    while ((running > 0)); do wait -n || errors=1; ((running--)); done
    ((errors == 0)) || die "loading the test images into a machine failed"
}

# --- commands --------------------------------------------------------------------------------------

cmd_up() { # [N]
    local n=${1:-3} start=$SECONDS
    [[ $n =~ ^[1-9][0-9]?$ && $n -le 99 ]] || die "up: N must be 1..99, got '$n'"
    ensure_root
    lock_lab
    ensure_packages
    ensure_dockerd
    ensure_cgroup_controllers
    ensure_keys "$n"
    ensure_machine_images
    local tarball
    tarball=$(ensure_test_images)
    log "images ready after $((SECONDS - start))s; starting $n machines"
    clear_leftovers
    prune_old_images
    docker network create --label "$LABEL=1" --subnet "$SUBNET" "$NET" >/dev/null
    write_client_files "$n"
    local machines=() i
    for ((i = 1; i <= n; i++)); do machines+=("m$i"); done
    for i in "${machines[@]}"; do create_machine "$i"; done
    wait_ready "${machines[@]}"
    log "machines answer after $((SECONDS - start))s; loading test images into them"
    load_test_images "$tarball" "${machines[@]}"
    echo "lab up: $n machines (${machines[0]}..${machines[-1]} at $NET_PREFIX.11..$(machine_ip "${machines[-1]}")," \
        "odd bookworm/engine 20.10, even trixie/engine 26.1) in $((SECONDS - start))s;" \
        "machines file: $STATE/machines.yaml"
}

# The containerd-store machine: its recipe is that of the running m1..mN plus its own
# daemon.json (read from m1's label: recomputing the lab's recipe takes seconds).
containerd_daemon_json() { echo "$HERE/containerd/daemon.json"; }
containerd_recipe() {
    local base
    base=$(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" m1 2>/dev/null) || return 1
    echo "$base-ctd-$(recipe_hash <"$(containerd_daemon_json)")"
}

# Starts the containerd-store machine `ctd` beside a running lab (m1..mN untouched), unless it
# already runs this recipe and answers. Adds it to ssh_config and known_hosts and writes
# machines-containerd.yaml (m1, m2 and ctd: engine 20.10, engine 26 on the classic store, engine 26
# on containerd's store). `up` and `down` remove it with the other machines.
cmd_containerd() {
    ensure_root
    lock_lab
    local want start=$SECONDS
    want=$(containerd_recipe) || die "containerd: the lab is not up (run: $0 up); $CTD joins m1..mN"
    if [[ $(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" "$CTD" 2>/dev/null) == "$want" ]] &&
        grep -q "^Host $CTD\$" "$STATE/ssh_config" 2>/dev/null && machine_ready "$CTD"; then
        echo "$CTD ready ($CTD_IP, containerd image store); machines file: $STATE/machines-containerd.yaml"
        return
    fi
    (($(lab_size) >= 2)) && cmd_status 2 >/dev/null ||
        die "containerd: m1 and m2 are not healthy (run: $0 up); $CTD joins m1..mN"
    ensure_machine_images
    local tarball
    tarball=$(ensure_test_images)
    docker rm -f "$CTD" >/dev/null 2>&1 || true
    docker volume rm "$(machine_volume "$CTD")" >/dev/null 2>&1 || true
    [[ -f $STATE/hostkeys/$CTD ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "$CTD" -f "$STATE/hostkeys/$CTD"
    log "images ready after $((SECONDS - start))s; starting $CTD"
    create_machine "$CTD" "$want" "$(containerd_daemon_json)"
    add_client_entry "$CTD"
    write_containerd_machines "$CTD"
    wait_ready "$CTD"
    log "$CTD answers after $((SECONDS - start))s; loading the test images into it"
    docker exec "$CTD" docker info --format '{{.DriverStatus}}' | grep -q io.containerd.snapshotter ||
        die "$CTD: its engine does not use the containerd image store (see /var/log/dockerd.log in $CTD)"
    load_test_images "$tarball" "$CTD"
    echo "$CTD up in $((SECONDS - start))s ($CTD_IP, engine $(docker exec "$CTD" docker version --format '{{.Server.Version}}'), containerd image store); machines file: $STATE/machines-containerd.yaml"
}

add_client_entry() { # NAME — its host key and ssh alias beside those of m1..mN
    local name=$1 ip
    ip=$(machine_ip "$name")
    { grep -v "^$ip " "$STATE/known_hosts" || true
      echo "$ip $(cut -d' ' -f1,2 "$STATE/hostkeys/$name.pub")"; } >"$STATE/known_hosts.new"
    mv "$STATE/known_hosts.new" "$STATE/known_hosts"
    grep -q "^Host $name\$" "$STATE/ssh_config" || cat >>"$STATE/ssh_config" <<EOF

Host $name
    HostName $ip
    User root
    IdentityFile $STATE/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $STATE/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 5
EOF
}

write_containerd_machines() { # NAME
    local name=$1
    cat >"$STATE/machines-containerd.yaml" <<EOF
# hoist machines file written by tests/lab/lab.sh containerd: engine 20.10, engine 26 on the
# classic image store, engine 26 on containerd's image store
ssh_config: ssh_config        # relative to this file; passed to ssh -F
machines:
  m1:
    ssh: m1
    labels: {zone: a, os: bookworm, store: classic}
  m2:
    ssh: m2
    labels: {zone: b, os: trixie, store: classic}
  $name:
    ssh: $name
    labels: {zone: c, os: trixie, store: containerd}
EOF
}

# A fresh bare machine `bare` (sshd, no engine) beside a running lab, replacing the last one:
# `hoist machines init` changes a machine, so every run starts from a new server. Adds it to
# ssh_config and known_hosts and writes machines-bare.yaml (bare alone). `up` and `down` remove
# it with the others.
cmd_bare() {
    ensure_root
    lock_lab
    local base start=$SECONDS
    base=$(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" m1 2>/dev/null) ||
        die "bare: the lab is not up (run: $0 up); $BARE joins m1..mN"
    ensure_machine_images
    docker rm -f "$BARE" >/dev/null 2>&1 || true
    docker volume rm "$(machine_volume "$BARE")" >/dev/null 2>&1 || true
    [[ -f $STATE/hostkeys/$BARE ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "$BARE" -f "$STATE/hostkeys/$BARE"
    create_machine "$BARE" "$base-bare-$(recipe_hash <"$HERE/bare/boot.sh")" "" "$HERE/bare/boot.sh"
    add_client_entry "$BARE"
    cat >"$STATE/machines-bare.yaml" <<EOF
# hoist machines file written by tests/lab/lab.sh bare: a Debian 12 machine with sshd and no
# container engine, for \`hoist machines init\`
ssh_config: ssh_config        # relative to this file; passed to ssh -F
machines:
  $BARE:
    ssh: $BARE
    labels: {zone: a, os: bookworm}
EOF
    wait_ready "$BARE"
    docker exec "$BARE" sh -c '! command -v dockerd && ! command -v docker' >/dev/null ||
        die "$BARE: an engine is still installed (see /var/log/hoist-lab-bare.log in $BARE)"
    echo "$BARE up in $((SECONDS - start))s ($BARE_IP, Debian 12, sshd and no engine); machines file: $STATE/machines-bare.yaml"
}

# The Podman machine image: the trixie machine image with Docker purged and Podman installed from
# Debian's mirror (LAB.md: lab machines reach it), committed and cached by its recipe's hash. Its
# PID 1 (podman/boot.sh) is copied in at each start, so changing it rebuilds nothing.
podman_image() {
    echo "hoist-lab/podman:$( {
        machine_image trixie
        echo "$POD_PACKAGES"
        declare -f build_podman_image
    } | recipe_hash)"
}

build_podman_image() { # TAG
    local builder=hoist-lab-podman-build
    docker rm -f "$builder" >/dev/null 2>&1 || true
    # shellcheck disable=SC2016 # expanded inside the builder
    docker run --name "$builder" --label "$LABEL=1" -e POD_PACKAGES="$POD_PACKAGES" \
        "$(machine_image trixie)" sh -c '
        set -e
        export DEBIAN_FRONTEND=noninteractive
        dpkg --purge docker.io docker-cli containerd runc tini
        rm -rf /etc/docker /usr/local/sbin/hoist-lab-dockerd
        apt-get update -q
        apt-get install -y -q --no-install-recommends $POD_PACKAGES
        rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb' >"$CACHE/build-podman.log" 2>&1 ||
        { tail -n 20 "$CACHE/build-podman.log" >&2; docker rm -f "$builder" >/dev/null; die "building the Podman machine image failed (log: $CACHE/build-podman.log)"; }
    docker commit --change 'CMD ["/usr/local/sbin/hoist-lab-boot"]' \
        --change "LABEL $LABEL.recipe=${1##*:}" "$builder" "$1" >/dev/null
    docker rm -f "$builder" >/dev/null
}

# Starts the Podman machine `pod` beside a running lab (m1..mN untouched), unless it already runs
# this recipe and answers; loads the test images into its Podman. Adds it to ssh_config and
# known_hosts and writes machines-podman.yaml (m1: engine 20.10, m2: engine 26, pod: Podman).
# `up` and `down` remove it with the others.
cmd_podman() {
    ensure_root
    lock_lab
    local base want image start=$SECONDS
    base=$(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" m1 2>/dev/null) ||
        die "podman: the lab is not up (run: $0 up); $POD joins m1..mN"
    ensure_machine_images
    image=$(podman_image)
    want="$base-pod-${image##*:}-$(recipe_hash <"$HERE/podman/boot.sh")"
    if [[ $(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" "$POD" 2>/dev/null) == "$want" ]] &&
        grep -q "^Host $POD\$" "$STATE/ssh_config" 2>/dev/null && machine_ready "$POD"; then
        echo "$POD ready ($POD_IP, Podman); machines file: $STATE/machines-podman.yaml"
        return
    fi
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        log "building $image (Podman from Debian's packages; log: $CACHE/build-podman.log)"
        mkdir -p "$CACHE"
        build_podman_image "$image"
        local old
        for old in $(docker images --format '{{.Repository}}:{{.Tag}}' hoist-lab/podman); do
            [[ $old == "$image" ]] || docker rmi "$old" >/dev/null 2>&1 || true
        done
    fi
    local tarball
    tarball=$(ensure_test_images)
    docker rm -f "$POD" >/dev/null 2>&1 || true
    docker volume rm "$(machine_volume "$POD")" >/dev/null 2>&1 || true
    [[ -f $STATE/hostkeys/$POD ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "$POD" -f "$STATE/hostkeys/$POD"
    create_machine "$POD" "$want" "" "$HERE/podman/boot.sh" "$image"
    add_client_entry "$POD"
    cat >"$STATE/machines-podman.yaml" <<EOF
# hoist machines file written by tests/lab/lab.sh podman: engine 20.10, engine 26 and Podman
ssh_config: ssh_config        # relative to this file; passed to ssh -F
machines:
  m1:
    ssh: m1
    labels: {zone: a, os: bookworm, engine: docker}
  m2:
    ssh: m2
    labels: {zone: b, os: trixie, engine: docker}
  $POD:
    ssh: $POD
    engine: podman
    labels: {zone: c, os: trixie, engine: podman}
EOF
    wait_ready "$POD"
    log "$POD answers after $((SECONDS - start))s; loading the test images into its Podman"
    docker exec -i -e PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$POD" podman load -q <"$tarball" >/dev/null ||
        die "loading the test images into $POD failed"
    echo "$POD up in $((SECONDS - start))s ($POD_IP, Podman $(docker exec -e PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$POD" podman version --format '{{.Server.Version}}' 2>/dev/null)); machines file: $STATE/machines-podman.yaml"
}

# The rootless-Docker machine image: the trixie machine image plus rootlesskit, uidmap and
# slirp4netns from Debian's mirror, and the user alice (uid 1000, subordinate ids 100000-165535,
# no password: ssh keys only). Committed once, cached by its recipe's hash.
rootless_image() {
    echo "hoist-lab/rootless:$( {
        machine_image trixie
        echo "$RL_PACKAGES"
        declare -f build_rootless_image
    } | recipe_hash)"
}

build_rootless_image() { # TAG
    local builder=hoist-lab-rootless-build
    docker rm -f "$builder" >/dev/null 2>&1 || true
    # shellcheck disable=SC2016 # expanded inside the builder
    docker run --name "$builder" --label "$LABEL=1" -e RL_PACKAGES="$RL_PACKAGES" \
        "$(machine_image trixie)" sh -c '
        set -e
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends $RL_PACKAGES
        rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
        useradd -m -u 1000 -s /bin/sh alice
        usermod -p "*" alice
        install -d -o alice -g alice -m 700 /home/alice/.ssh /home/alice/.local /home/alice/.local/share /home/alice/.local/share/docker' \
        >"$CACHE/build-rootless.log" 2>&1 ||
        { tail -n 20 "$CACHE/build-rootless.log" >&2; docker rm -f "$builder" >/dev/null; die "building the rootless machine image failed (log: $CACHE/build-rootless.log)"; }
    docker commit --change 'CMD ["/usr/local/sbin/hoist-lab-boot"]' \
        --change "LABEL $LABEL.recipe=${1##*:}" "$builder" "$1" >/dev/null
    docker rm -f "$builder" >/dev/null
}

# Starts the rootless-Docker machine `rl` beside a running lab (m1..mN untouched), unless it
# already runs this recipe and answers; loads the test images into alice's engine. Writes
# machines-rootless.yaml (rl as alice, docker_socket /run/user/1000/docker.sock). It runs with
# `--security-opt systempaths=unconfined`: a rootless engine mounts a fresh /proc for each
# container, which the kernel refuses while parts of the machine's /proc are masked.
cmd_rootless() {
    ensure_root
    lock_lab
    local base want image start=$SECONDS
    base=$(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" m1 2>/dev/null) ||
        die "rootless: the lab is not up (run: $0 up); $RL joins m1..mN"
    ensure_machine_images
    image=$(rootless_image)
    want="$base-rl-${image##*:}-$(recipe_hash <"$HERE/rootless/boot.sh")"
    if [[ $(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" "$RL" 2>/dev/null) == "$want" ]] &&
        grep -q "^Host $RL\$" "$STATE/ssh_config" 2>/dev/null && machine_ready "$RL"; then
        echo "$RL ready ($RL_IP, rootless Docker of alice); machines file: $STATE/machines-rootless.yaml"
        return
    fi
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        log "building $image (rootlesskit from Debian's packages; log: $CACHE/build-rootless.log)"
        mkdir -p "$CACHE"
        build_rootless_image "$image"
        local old
        for old in $(docker images --format '{{.Repository}}:{{.Tag}}' hoist-lab/rootless); do
            [[ $old == "$image" ]] || docker rmi "$old" >/dev/null 2>&1 || true
        done
    fi
    local tarball
    tarball=$(ensure_test_images)
    docker rm -f "$RL" >/dev/null 2>&1 || true
    docker volume rm "$(machine_volume "$RL")" >/dev/null 2>&1 || true
    [[ -f $STATE/hostkeys/$RL ]] ||
        ssh-keygen -q -t ed25519 -N '' -C "$RL" -f "$STATE/hostkeys/$RL"
    create_machine "$RL" "$want" "" "$HERE/rootless/boot.sh" "$image" "--security-opt=systempaths=unconfined"
    local tmp
    tmp=$(mktemp -d)
    install -m 600 "$STATE/id_ed25519.pub" "$tmp/authorized_keys"
    tar -C "$tmp" --numeric-owner --owner=1000 --group=1000 -c authorized_keys | docker cp - "$RL:/home/alice/.ssh"
    rm -rf "$tmp"
    add_client_entry "$RL"
    cat >"$STATE/machines-rootless.yaml" <<EOF
# hoist machines file written by tests/lab/lab.sh rootless: user alice's own (rootless) engine
ssh_config: ssh_config        # relative to this file; passed to ssh -F
machines:
  $RL:
    ssh: $RL
    user: alice
    docker_socket: /run/user/1000/docker.sock
    labels: {zone: a, os: trixie, engine: rootless}
EOF
    wait_ready "$RL"
    log "$RL answers after $((SECONDS - start))s; loading the test images into alice's engine"
    docker exec -i "$RL" su alice -c 'DOCKER_HOST=unix:///run/user/1000/docker.sock docker load -q' <"$tarball" >/dev/null ||
        die "loading the test images into $RL failed"
    echo "$RL up in $((SECONDS - start))s ($RL_IP, rootless Docker of alice); machines file: $STATE/machines-rootless.yaml"
}

# For test runs (tests/common/lab.rs): at least N healthy machines, leaving a healthy lab alone.
# Tests hold .use.lock while they use the lab (shared; exclusive while they inject a fault), so
# an `up` first waits until no test does, then looks again: a machine may be down only for the
# length of another test's fault.
# Provider A (pa1, pa2) and provider B (pb1, pb2) beside a running lab (m1..mN untouched),
# unless they run this recipe and answer; writes machines-providers.yaml with all four (labels
# provider: a|b). `up` and `down` remove them with the others.
cmd_providers() {
    ensure_root
    lock_lab
    local want start=$SECONDS name ready=1
    want=$(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" m1 2>/dev/null) ||
        die "providers: the lab is not up (run: $0 up); provider A and B join m1..mN"
    if ! docker network inspect "$NET_B" >/dev/null 2>&1; then
        docker network create --label "$LABEL=1" --subnet "$SUBNET_B" "$NET_B" >/dev/null
    fi
    # The box routes between the two networks (both ways), as the internet does between clouds.
    local rule
    for rule in "-s $SUBNET -d $SUBNET_B" "-s $SUBNET_B -d $SUBNET"; do
        # shellcheck disable=SC2086
        iptables -C DOCKER-USER $rule -j ACCEPT 2>/dev/null || iptables -I DOCKER-USER $rule -j ACCEPT
    done
    for name in $PROVIDER_MACHINES; do
        if ! [[ $(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" "$name" 2>/dev/null) == "$want" ]] ||
            ! grep -q "^Host $name\$" "$STATE/ssh_config" 2>/dev/null || ! machine_ready "$name"; then
            ready=0
        fi
    done
    if ((ready == 0)); then
        ensure_machine_images
        local tarball
        tarball=$(ensure_test_images)
        for name in $PROVIDER_MACHINES; do
            docker rm -f "$name" >/dev/null 2>&1 || true
            docker volume rm "$(machine_volume "$name")" >/dev/null 2>&1 || true
            [[ -f $STATE/hostkeys/$name ]] ||
                ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$STATE/hostkeys/$name"
            create_machine "$name" "$want"
            add_client_entry "$name"
        done
        # shellcheck disable=SC2086
        wait_ready $PROVIDER_MACHINES
        log "providers answer after $((SECONDS - start))s; loading the test images into them"
        # shellcheck disable=SC2086
        load_test_images "$tarball" $PROVIDER_MACHINES
    fi
    cat >"$STATE/machines-providers.yaml" <<EOF
# hoist machines file written by tests/lab/lab.sh providers: two machines at provider A (on the
# lab network) and two at provider B (another network; A and B reach each other only at their
# machines' addresses)
ssh_config: ssh_config        # relative to this file; passed to ssh -F
machines:
  pa1:
    ssh: pa1
    labels: {provider: a, zone: a1}
  pa2:
    ssh: pa2
    labels: {provider: a, zone: a2}
  pb1:
    ssh: pb1
    labels: {provider: b, zone: b1}
  pb2:
    ssh: pb2
    labels: {provider: b, zone: b2}
EOF
    echo "providers up in $((SECONDS - start))s: pa1 $(machine_ip pa1), pa2 $(machine_ip pa2) (A); pb1 $(machine_ip pb1), pb2 $(machine_ip pb2) (B); machines file: $STATE/machines-providers.yaml"
}

cmd_ensure() { # [N]
    local n=${1:-3}
    mkdir -p "$STATE"
    exec 8>"$STATE/.ensure.lock"
    flock -w "$LOCK_TIMEOUT" 8 || die "another ensure held $STATE/.ensure.lock for ${LOCK_TIMEOUT}s"
    cmd_status "$n" >/dev/null 2>&1 && return
    exec 7>"$STATE/.use.lock"
    flock -w "$LOCK_TIMEOUT" -x 7 || die "tests held the lab ($STATE/.use.lock) for ${LOCK_TIMEOUT}s"
    cmd_status "$n" >/dev/null 2>&1 && return
    cmd_up "$n"
}

cmd_down() {
    ensure_root
    lock_lab
    docker info >/dev/null 2>&1 || die "no Docker engine answers on this box"
    clear_leftovers
    echo 0 >"$STATE/size" 2>/dev/null || true
    echo "lab down (images kept; state dir $STATE kept)"
}

# One line per machine; exit status 0 only if m1..mN all exist, run this recipe and answer.
cmd_status() { # [N]
    local n=${1:-$(lab_size)} want name i
    ((n > 0)) || { echo "lab is down"; return 1; }
    want=$(lab_recipe)
    local missing
    missing=$(missing_cgroup_controllers)
    [[ -z $missing ]] || { echo "cgroup controllers not mounted on the box:" $missing; return 1; }
    local dir
    dir=$(mktemp -d)
    for ((i = 1; i <= n; i++)); do
        name=m$i
        (
            local state recipe sshv dockerv verdict=ok
            state=$(docker container inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo missing)
            recipe=$(docker container inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" "$name" 2>/dev/null || true)
            sshv=fail dockerv=fail
            # Only a running machine can answer; asking the others would wait for ssh's timeout.
            if [[ $state == running ]]; then
                ssh_machine "$name" true >/dev/null 2>&1 && sshv=ok
                dockerv=$(docker exec "$name" docker version --format '{{.Server.Version}}' 2>/dev/null) ||
                    dockerv=fail
            fi
            [[ $state == running && $sshv == ok && $dockerv != fail ]] || verdict=DOWN
            # A machine started before the box mounted every cgroup controller reads no stats.
            [[ $state != running || -z $(docker exec "$name" bash -c "$(declare -f missing_cgroup_controllers); missing_cgroup_controllers") ]] ||
                verdict=STALE
            [[ $state == missing || $recipe == "$want" ]] || verdict=STALE
            printf '%-4s %-14s %-9s %-8s ssh=%-4s docker=%-12s %s\n' "$name" "$(machine_ip "$name")" \
                "$(machine_suite "$name")" "$state" "$sshv" "$dockerv" "$verdict" >"$dir/$i"
        ) &
    done
    wait
    local all_ok=0
    for ((i = 1; i <= n; i++)); do
        cat "$dir/$i"
        [[ $(awk '{print $NF}' "$dir/$i") == ok ]] || all_ok=1
    done
    rm -rf "$dir"
    return $all_ok
}

cmd_env() {
    printf 'export HOIST_LAB_DIR=%q\n' "$STATE"
    printf 'export HOIST_MACHINES=%q\n' "$STATE/machines.yaml"
    printf 'export HOIST_LAB_SSH_CONFIG=%q\n' "$STATE/ssh_config"
    printf 'export HOIST_LAB_KNOWN_HOSTS=%q\n' "$STATE/known_hosts"
}

cmd_kill() { require_machine "$1"; docker kill "$1" >/dev/null; echo "$1 killed"; }

cmd_start() { # a killed (or stopped) machine boots again: sshd and its engine restart
    require_machine "$1"
    docker start "$1" >/dev/null
    wait_ready "$1"
    echo "$1 started"
}

cmd_pause() { require_machine "$1"; docker pause "$1" >/dev/null; echo "$1 paused"; }
cmd_unpause() { require_machine "$1"; docker unpause "$1" >/dev/null; echo "$1 unpaused"; }

cmd_cut() { require_machine "$1"; docker network disconnect "$(machine_net "$1")" "$1"; echo "$1 cut off the network"; }
cmd_heal() {
    require_machine "$1"
    docker network connect --ip "$(machine_ip "$1")" "$(machine_net "$1")" "$1"
    echo "$1 back on the network at $(machine_ip "$1")"
}

cmd_stop_docker() { # only the machine's engine stops (and with it its containers); sshd stays
    require_machine "$1"
    docker exec "$1" sh -c '
        pid=$(cat /var/run/docker.pid 2>/dev/null) || exit 0
        kill "$pid" 2>/dev/null || exit 0
        # dockerd stops its containers first (their grace period) before it exits.
        for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
        echo "dockerd did not stop within 30 s" >&2; exit 1'
    echo "$1: dockerd stopped"
}

cmd_start_docker() {
    require_machine "$1"
    docker exec "$1" /usr/local/sbin/hoist-lab-dockerd
    wait_ready "$1"
    echo "$1: dockerd started"
}

# A new host key behind the same address: what hoist must refuse. known_hosts keeps the old one.
cmd_rekey() { # NAME [--restore]
    require_machine "$1"
    local name=$1 key
    if [[ ${2:-} == --restore ]]; then
        install_host_key "$name" "$STATE/hostkeys/$name"
    elif [[ -z ${2:-} ]]; then
        key=$(mktemp -d)
        ssh-keygen -q -t ed25519 -N '' -C "$name-rekeyed" -f "$key/k"
        install_host_key "$name" "$key/k"
        rm -rf "$key"
    else
        die "rekey: unknown option '$2' (use: rekey NAME [--restore])"
    fi
    # sshd (PID 1) re-executes itself on SIGHUP and reads the host key again.
    docker exec "$name" sh -c 'chmod 600 /etc/ssh/ssh_host_ed25519_key; kill -HUP 1'
    local want
    want=$(cut -d' ' -f2 "$STATE/hostkeys/$name.pub")
    for _ in $(seq 50); do
        local got
        got=$(ssh-keyscan -T 2 -t ed25519 "$(machine_ip "$name")" 2>/dev/null | awk '{print $3}')  || true  # sshd may be mid-restart: keep polling
        if [[ -n $got ]]; then
            if [[ ${2:-} == --restore ]]; then
                [[ $got == "$want" ]] && { echo "$name: original host key restored"; return; }
            else
                [[ $got != "$want" ]] && { echo "$name: new host key (known_hosts unchanged)"; return; }
            fi
        fi
        sleep 0.2
    done
    die "$name: sshd did not come back with the expected host key"
}

usage() {
    cat <<EOF
usage: $0 COMMAND [ARGS]

  up [N]              fresh lab of N machines (default 3): m1..mN at $NET_PREFIX.11.., odd ones
                      Debian 12 / engine 20.10, even ones Debian 13 / engine 26.1
  down                remove machines, their volumes and the network (images stay cached)
  status [N]          one line per machine; exit 0 only if m1..mN are all healthy
  ensure [N]          \`up N\` unless m1..mN are healthy; waits for tests using the lab
  env                 shell exports for the lab: eval "\$($0 env)"
  containerd          also start machine $CTD ($CTD_IP): engine 26 with containerd's image store,
                      beside m1..mN (which stay as they are); writes machines-containerd.yaml
  bare                a new machine $BARE ($BARE_IP): Debian 12 with sshd and no engine, for
                      \`hoist machines init\`; replaces the last one; writes machines-bare.yaml
  podman              also start machine $POD ($POD_IP): Debian 13 with Podman serving the Docker
                      API on /run/podman/podman.sock; writes machines-podman.yaml (m1, m2, $POD)
  rootless            also start machine $RL ($RL_IP): Debian 13 where user alice runs her own
                      rootless Docker; writes machines-rootless.yaml ($RL as alice)
  providers           also start pa1, pa2 ("provider A", on the lab network) and pb1, pb2
                      ("provider B", network $NET_B, $SUBNET_B; the box routes between the two);
                      writes machines-providers.yaml (all four, labels provider: a|b)

faults (on one machine NAME, e.g. m2), each with its inverse:
  kill NAME           the machine dies (docker kill)      start NAME      boot it again
  pause NAME          the machine hangs (docker pause)    unpause NAME
  cut NAME            network partition                   heal NAME
  stop-docker NAME    only its dockerd stops              start-docker NAME
  rekey NAME          new SSH host key, known_hosts kept  rekey NAME --restore

state dir: $STATE (HOIST_LAB_DIR); image build cache: $CACHE (HOIST_LAB_CACHE)
EOF
}

main() {
    local cmd=${1:-help}
    shift || true
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        status) cmd_status "$@" ;;
        ensure) cmd_ensure "$@" ;;
        providers) cmd_providers ;;
        env) cmd_env ;;
        containerd) cmd_containerd ;;
        bare) cmd_bare ;;
        podman) cmd_podman ;;
        rootless) cmd_rootless ;;
        kill | start | pause | unpause | cut | heal | stop-docker | start-docker | rekey)
            (($# >= 1)) || die "$cmd: which machine? (e.g. $0 $cmd m2)"
            "cmd_${cmd//-/_}" "$@"
            ;;
        help | -h | --help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
