# shellcheck shell=bash
# Sourced by lab.sh: how the lab's images are built, and when a cached one is reused.
#
# Machine images: a Debian rootfs from debootstrap with sshd and docker.io, `docker import`ed.
# Test images: hoist-test/* — busybox and small shell services, built with `docker build`.
# No registry is involved; everything is built on the box. Each image carries the hash of its
# recipe as a label and is rebuilt only when that recipe changed.

# Bump when something the hashes below do not cover must rebuild the images.
readonly LAB_VERSION=1

# Outside the repo: a debootstrap tree is ~400 MB, and the .deb cache saves re-downloads.
readonly CACHE=${HOIST_LAB_CACHE:-/var/cache/hoist-lab}
readonly MIRROR=${HOIST_LAB_MIRROR:-http://deb.debian.org/debian}

readonly MACHINE_PACKAGES=openssh-server,docker.io,iproute2,iptables,procps,ca-certificates
# Loaded into every machine's engine at `up`. hoist-test/app:v4 exists on the box only, so tests
# of shipping an image to machines have one the machines lack.
readonly TEST_IMAGES=(hoist-test/base:latest hoist-test/app:v1 hoist-test/app:v2
    hoist-test/app:v3 hoist-test/app:bad hoist-test/db:latest hoist-test/worker:latest
    hoist-test/caddy:latest hoist-test/haproxy:latest)
readonly BOX_ONLY_IMAGES=(hoist-test/app:v4)

# The legacy builder: the box's engine may have no buildx, and these builds need nothing more.
export DOCKER_BUILDKIT=0

# --- content hashes ----------------------------------------------------------------------------------

# A cached image is reused only while its recipe is unchanged: the hash covers everything that
# goes into it (the build function's own text included), so editing any of it rebuilds.
recipe_hash() { sha256sum | cut -c1-12; }

machine_recipe_hash() { # SUITE
    {
        echo "lab $LAB_VERSION suite $1 packages $(machine_packages "$1")"
        declare -f build_machine_image
        cat "$HERE"/machine/*
    } | recipe_hash
}
machine_packages() { # trixie ships the docker CLI as its own package
    if [[ $1 == trixie ]]; then echo "$MACHINE_PACKAGES,docker-cli"; else echo "$MACHINE_PACKAGES"; fi
}
machine_image() { echo "hoist-lab/machine:$1-$(machine_recipe_hash "$1")"; }

test_images_hash() {
    {
        echo "lab $LAB_VERSION"
        sha256sum "$(busybox_path)" "$(caddy_deb)" $(caddy_libs) $(haproxy_debs) $(haproxy_box_libs)
        declare -f build_test_images build_base_image build_caddy_image build_haproxy_image
        (cd "$HERE/images" && find . -type f | LC_ALL=C sort | xargs sha256sum)
    } | recipe_hash
}
busybox_path() { echo /bin/busybox; } # from busybox-static (ensure_packages)

# Debian's caddy package, downloaded once into the cache (not installed on the box). Its
# /usr/bin/caddy is a Go binary linked against glibc and libzstd, so the image carries those
# libraries too, copied from the box (Debian 12, the release the package is built for).
caddy_deb() {
    local dir="$CACHE/caddy" deb
    deb=$(find "$dir" -name 'caddy_*.deb' 2>/dev/null | LC_ALL=C sort | tail -n 1)
    if [[ -z $deb ]]; then
        mkdir -p "$dir"
        (cd "$dir" && apt-get download -q caddy >/dev/null 2>&1) || {
            apt-get update -qq && (cd "$dir" && apt-get download -q caddy >/dev/null 2>&1)
        } || die "cannot download Debian's caddy package (apt-get download caddy)"
        deb=$(find "$dir" -name 'caddy_*.deb' | LC_ALL=C sort | tail -n 1)
    fi
    echo "$deb"
}

# Debian's haproxy and the libraries it needs that the box does not have (lua, opentracing),
# downloaded once into the cache; the other libraries come from the box (Debian 12).
readonly HAPROXY_PACKAGES=(haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1)
haproxy_debs() {
    local dir="$CACHE/haproxy" p missing=()
    mkdir -p "$dir"
    for p in "${HAPROXY_PACKAGES[@]}"; do
        compgen -G "$dir/${p}_*.deb" >/dev/null || missing+=("$p")
    done
    if ((${#missing[@]})); then
        (cd "$dir" && apt-get download -q "${missing[@]}" >/dev/null 2>&1) || {
            apt-get update -qq && (cd "$dir" && apt-get download -q "${missing[@]}" >/dev/null 2>&1)
        } || die "cannot download Debian's haproxy packages (apt-get download ${missing[*]})"
    fi
    for p in "${HAPROXY_PACKAGES[@]}"; do
        find "$dir" -name "${p}_*.deb" | LC_ALL=C sort | tail -n 1
    done
}
haproxy_tree() { # DIR: the packages extracted into DIR
    local deb
    for deb in $(haproxy_debs); do dpkg-deb -x "$deb" "$1"; done
}
haproxy_box_libs() { # the libraries haproxy loads from the box, as paths on the box
    local dir
    dir=$(mktemp -d)
    haproxy_tree "$dir"
    LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu" ldd "$dir/usr/sbin/haproxy" |
        awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }' | grep -v "^$dir" | LC_ALL=C sort -u
    rm -rf "$dir"
}

image_label() { # IMAGE -> its recipe label, empty when the image is absent
    docker image inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" "$1" 2>/dev/null || true
}

# --- machine images --------------------------------------------------------------------------------

build_machine_image() { # SUITE TAG
    local suite=$1 tag=$2 root="$CACHE/rootfs-$1"
    rm -rf "$root"
    mkdir -p "$CACHE/debs-$suite"
    debootstrap --variant=minbase --include="$(machine_packages "$suite")" \
        --cache-dir="$CACHE/debs-$suite" "$suite" "$root" "$MIRROR"
    # Host keys come from the state dir per machine; ones baked in here would be shared by all.
    rm -f "$root"/etc/ssh/ssh_host_*
    install -m 755 "$HERE/machine/boot.sh" "$root/usr/local/sbin/hoist-lab-boot"
    install -m 755 "$HERE/machine/dockerd.sh" "$root/usr/local/sbin/hoist-lab-dockerd"
    install -m 644 "$HERE/machine/sshd.conf" "$root/etc/ssh/sshd_config.d/hoist-lab.conf"
    # The inner engines' networks come from 10.200.0.0/16. Docker's default pools run through
    # 172.17-31.x; a compose network on 172.31.0.0/16 inside a machine would shadow the lab
    # network (172.31.77.0/24) and cut the machine off from the box.
    install -D -m 644 "$HERE/machine/daemon.json" "$root/etc/docker/daemon.json"
    if [[ $suite == trixie ]]; then
        # OpenSSH 10 penalises a source address after failed or refused logins and then drops
        # its connections. Every client of the lab is the box (one address), so one test that
        # provokes failures (a changed host key, a wrong key) would break the next ones.
        # OpenSSH 9.2 (bookworm) has no such option and would refuse to start with it.
        echo "PerSourcePenalties no" >>"$root/etc/ssh/sshd_config.d/hoist-lab.conf"
    fi
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
    tar -C "$root" --numeric-owner -c . |
        docker import --change 'CMD ["/usr/local/sbin/hoist-lab-boot"]' \
            --change "LABEL $LABEL.recipe=${tag##*-}" - "$tag" >/dev/null
    rm -rf "$root"
}

# Both suites build in parallel: debootstrap mostly waits on the network and dpkg on the disk.
ensure_machine_images() {
    local suite tag pids=() suites=()
    for suite in bookworm trixie; do
        tag=$(machine_image "$suite")
        docker image inspect "$tag" >/dev/null 2>&1 && continue
        log "building $tag (debootstrap, about a minute; log: $CACHE/build-$suite.log)"
        mkdir -p "$CACHE"
        build_machine_image "$suite" "$tag" >"$CACHE/build-$suite.log" 2>&1 &
        pids+=($!) suites+=("$suite")
    done
    local i failed=0
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            tail -n 20 "$CACHE/build-${suites[$i]}.log" >&2
            log "building the ${suites[$i]} machine image failed (log: $CACHE/build-${suites[$i]}.log)"
            failed=1
        fi
    done
    ((failed == 0)) || die "machine image build failed"
}

# --- test app images ----------------------------------------------------------------------------------

build_base_image() { # HASH — busybox alone, every applet as a symlink, imported as a rootfs
    local dir
    dir=$(mktemp -d)
    mkdir -p "$dir"/{bin,etc,tmp,root,data,www} "$dir/usr"
    chmod 1777 "$dir/tmp"
    cp "$(busybox_path)" "$dir/bin/busybox"
    local applet
    for applet in $("$dir/bin/busybox" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$dir/bin/$applet"
    done
    ln -s bin "$dir/sbin"
    ln -s ../bin "$dir/usr/bin"
    ln -s ../bin "$dir/usr/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
    tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . |
        docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
            --change "LABEL $LABEL.recipe=$1" - hoist-test/base:latest >/dev/null
    rm -rf "$dir"
}

build_test_images() { # HASH
    local hash=$1 images=$HERE/images v
    build_base_image "$hash"
    for v in v1 v2 v3 v4; do
        docker build -q --label "$LABEL.recipe=$hash" --build-arg VERSION=$v \
            -t "hoist-test/app:$v" "$images/app" >/dev/null
    done
    docker build -q --label "$LABEL.recipe=$hash" --build-arg VERSION=bad \
        --build-arg START_UNHEALTHY=1 -t hoist-test/app:bad "$images/app" >/dev/null
    docker build -q --label "$LABEL.recipe=$hash" -t hoist-test/db:latest "$images/db" >/dev/null
    docker build -q --label "$LABEL.recipe=$hash" -t hoist-test/worker:latest "$images/worker" >/dev/null
    build_caddy_image "$hash"
    build_haproxy_image "$hash"
}

caddy_libs() { # the shared libraries Debian's caddy binary loads, as paths on the box
    local dir
    dir=$(mktemp -d)
    dpkg-deb -x "$(caddy_deb)" "$dir"
    ldd "$dir/usr/bin/caddy" | awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }' | LC_ALL=C sort -u
    rm -rf "$dir"
}

build_caddy_image() { # HASH — hoist-test/caddy: the busybox base plus Debian's caddy
    local dir lib
    dir=$(mktemp -d)
    dpkg-deb -x "$(caddy_deb)" "$dir/deb"
    mkdir -p "$dir/ctx/rootfs/bin"
    cp "$dir/deb/usr/bin/caddy" "$dir/ctx/rootfs/bin/caddy"
    for lib in $(caddy_libs); do
        mkdir -p "$dir/ctx/rootfs$(dirname "$lib")"
        cp -L "$lib" "$dir/ctx/rootfs$lib"
    done
    cp "$HERE/images/caddy/Dockerfile" "$dir/ctx/Dockerfile"
    docker build -q --label "$LABEL.recipe=$1" -t hoist-test/caddy:latest "$dir/ctx" >/dev/null
    rm -rf "$dir"
}

build_haproxy_image() { # HASH — hoist-test/haproxy: the busybox base plus Debian's haproxy
    local dir lib
    dir=$(mktemp -d)
    haproxy_tree "$dir/deb"
    mkdir -p "$dir/ctx/rootfs/bin" "$dir/ctx/rootfs/usr/lib/x86_64-linux-gnu"
    cp "$dir/deb/usr/sbin/haproxy" "$dir/ctx/rootfs/bin/haproxy"
    cp -a "$dir/deb/usr/lib/x86_64-linux-gnu/." "$dir/ctx/rootfs/usr/lib/x86_64-linux-gnu/"
    for lib in $(haproxy_box_libs); do
        mkdir -p "$dir/ctx/rootfs$(dirname "$lib")"
        cp -L "$lib" "$dir/ctx/rootfs$lib"
    done
    cp "$HERE/images/haproxy/Dockerfile" "$dir/ctx/Dockerfile"
    docker build -q --label "$LABEL.recipe=$1" -t hoist-test/haproxy:latest "$dir/ctx" >/dev/null
    rm -rf "$dir"
}

# Prints the path of a `docker save` tarball of all test images, building them when needed.
ensure_test_images() {
    local hash image stale=0
    hash=$(test_images_hash)
    for image in "${TEST_IMAGES[@]}" "${BOX_ONLY_IMAGES[@]}"; do
        [[ $(image_label "$image") == "$hash" ]] || stale=1
    done
    if ((stale)); then
        log "building test images (hoist-test/*, recipe $hash)"
        mkdir -p "$CACHE"
        # The log keeps the builder's chatter (a deprecation notice per build) off the terminal.
        # A background job, because `set -e` would not apply inside a function called with `||`.
        build_test_images "$hash" >"$CACHE/build-test-images.log" 2>&1 &
        wait $! || {
            tail -n 20 "$CACHE/build-test-images.log" >&2
            die "building the test images failed (log: $CACHE/build-test-images.log)"
        }
    fi
    # Named by the image IDs, so machines always get exactly the images the box has (a spec
    # hash that covers the image ID must not differ between the box and a machine).
    local tarball
    tarball="$CACHE/test-images-$(docker image inspect -f '{{.Id}}' "${TEST_IMAGES[@]}" | recipe_hash).tar"
    if [[ ! -s $tarball ]]; then
        mkdir -p "$CACHE"
        rm -f "$CACHE"/test-images-*.tar
        docker save "${TEST_IMAGES[@]}" >"$tarball.tmp"
        mv "$tarball.tmp" "$tarball"
    fi
    echo "$tarball"
}

# Images of earlier recipes: machine images are ~400 MB each, and rebuilt test tags leave
# untagged images behind. Only images carrying the lab's label are considered.
prune_old_images() {
    local keep_bookworm keep_trixie tag
    keep_bookworm=$(machine_image bookworm)
    keep_trixie=$(machine_image trixie)
    for tag in $(docker images --format '{{.Repository}}:{{.Tag}}' hoist-lab/machine); do
        [[ $tag == "$keep_bookworm" || $tag == "$keep_trixie" ]] || docker rmi "$tag" >/dev/null || true
    done
    docker image prune -f --filter "label=$LABEL.recipe" >/dev/null
}
