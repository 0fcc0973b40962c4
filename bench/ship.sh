#!/usr/bin/env bash
# Image shipping without a registry: hoist (thin archives, only the layers a machine lacks,
# through its SSH tunnel) against `docker save IMAGE | ssh MACHINE docker load`, on the lab's
# 3 machines (engines 20.10 and 26.1), for a ~100 MB image built from local files:
#   - a Debian root filesystem layer (binaries, libraries, /etc: the lab's bookworm .deb cache,
#     extracted),
#   - ~28 MB of random bytes (incompressible, like media or already-compressed data),
#   - one small text layer, the one that changes.
# Measures, for the first ship to 3 machines and after a one-layer change: archive bytes sent
# (hoist's counter in src/ship.rs; the peer's pipe counted with wc -c), bytes on the wire (the
# lab bridge's tx counter: SSH framing and TCP included) and time. Then whether compressing the
# archive on the wire would pay: gzip and zstd sizes and speeds on this CPU against the link.
#
# Usage: bash bench/ship.sh   (needs the test suite's set-up: tests/all.sh; pv, zstd)
# Holds the lab exclusively while it runs, so no other test's traffic is counted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/lab/lab.sh ensure 3 >/dev/null
# shellcheck source=bench/common.sh
source bench/common.sh

project=benchship$$
img=$project-s
work=$(mktemp -d)
machines=(m1 m2 m3)
in_m() { local m=$1; shift; docker exec -i "$m" "$@"; }
cleanup() {
    (cd "$work/ctx" 2>/dev/null && "$hoist" -m "$lab/machines.yaml" -p "$project" down >/dev/null 2>&1) || true
    for m in "${machines[@]}"; do in_m "$m" sh -c "docker images -q '$img' | xargs -r docker rmi -f" >/dev/null 2>&1 || true; done
    docker images -q "$img" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
ms() { echo $((($2 - $1) / 1000000)); }
bridge="br-$(docker network inspect hoist-lab -f '{{.Id}}' | cut -c1-12)"
wire() { cat "/sys/class/net/$bridge/statistics/tx_bytes"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "-"; else if (a / b < 0.01) printf "%.1e", a / b; else printf "%.3f", a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$4" "$5")"; }

# --- the image -------------------------------------------------------------------------------
mkdir -p "$work/ctx/rootfs" "$work/deb"
for f in /var/cache/hoist-lab/debs-bookworm/*.deb; do
    case ${f##*/} in docker.io_* | containerd_* | runc_*) continue ;; esac
    dpkg-deb -x "$f" "$work/deb"
done
cp -a "$work/deb/usr/bin" "$work/deb/usr/sbin" "$work/deb/usr/lib" "$work/deb/etc" "$work/ctx/rootfs/"
rm -rf "$work/deb"
head -c $((28 * 1024 * 1024)) /dev/urandom >"$work/ctx/media.bin"
echo "version one" >"$work/ctx/app.txt"
cat >"$work/ctx/Dockerfile" <<'EOF'
FROM hoist-test/base:latest
COPY rootfs/ /opt/rootfs/
COPY media.bin /opt/media.bin
COPY app.txt /opt/app.txt
CMD ["sleep", "3600"]
EOF
cat >"$work/ctx/compose.yaml" <<EOF
services:
  s:
    image: $img
    build: .
    init: true
    environment:
      ROUND: \${ROUND:-1}
    deploy:
      mode: global
      update_config: {parallelism: 3, monitor: 1s}
EOF
cd "$work/ctx"
h() { "$hoist" -m "$lab/machines.yaml" -p "$project" "$@"; }
h build >/dev/null 2>&1
size=$(docker save "$img" | wc -c)

peer_ship() { # docker save | ssh docker load to every machine, in parallel; prints ms bytes wire
    local t0 t1 w0 w1
    w0=$(wire)
    t0=$(now)
    for m in "${machines[@]}"; do
        docker save "$img" | tee >(wc -c >"$work/peer.$m") | ssh -F "$lab/ssh_config" "$m" docker load >/dev/null &
    done
    wait
    t1=$(now)
    w1=$(wire)
    sleep 0.2 # the tee counters
    echo "$(ms "$t0" "$t1") $(cat "$work"/peer.m* | awk '{s += $1} END {print s}') $((w1 - w0))"
}
hoist_up() { # ROUND: hoist up (images already built); prints ms bytes wire
    local t0 t1 w0 w1 out
    w0=$(wire)
    t0=$(now)
    out=$(ROUND=$1 h up --yes --json --no-build 2>"$work/up.err") || { cat "$work/up.err" >&2; exit 1; }
    t1=$(now)
    w1=$(wire)
    echo "$(ms "$t0" "$t1") $(echo "$out" | python3 -c 'import json,sys; print(sum(s["bytes"] for s in json.load(sys.stdin).get("shipped") or []))') $((w1 - w0))"
}
drop_on_machines() { for m in "${machines[@]}"; do in_m "$m" docker rmi -f "$img" >/dev/null 2>&1 || true; done; }

# --- first ship ------------------------------------------------------------------------------
read -r peer1_ms peer1_bytes peer1_wire < <(peer_ship)
# The same deploy with the image already there (the peer just loaded it): hoist's own time to
# plan, start and health-gate 3 replicas, to take off the figure with shipping.
read -r base1_ms base1_bytes _ < <(hoist_up 1)
[ "$base1_bytes" = 0 ] || { echo "the baseline deploy shipped $base1_bytes bytes" >&2; exit 1; }
h down >/dev/null 2>&1
drop_on_machines
read -r hoist1_ms hoist1_bytes hoist1_wire < <(hoist_up 1)

# --- one small layer changes -----------------------------------------------------------------
echo "version two" >app.txt
h build >/dev/null 2>&1
layer=$(docker history --human=false --format '{{.Size}}' "$img" | awk '$1 > 0 { print; exit }')
read -r peer2_ms peer2_bytes peer2_wire < <(peer_ship)
drop_on_machines # the running containers keep the previous image; only the new tag goes
read -r hoist2_ms hoist2_bytes hoist2_wire < <(hoist_up 3)
# The same rolling update without shipping (only an environment variable changes).
read -r base2_ms _ _ < <(hoist_up 4)

echo "# Shipping images: hoist vs docker save | ssh docker load"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores, lab of 3 machines (engines 20.10, 26.1, 20.10) on one box; image $(mb "$size") (\`docker save\`), changed layer $layer bytes. Rerun: \`bash bench/ship.sh\`."
echo
echo "| to 3 machines | hoist | docker save \\| ssh docker load | hoist/peer |"
echo "| --- | --- | --- | --- |"
row "first ship: archive bytes sent" "$hoist1_bytes" "$peer1_bytes" "$hoist1_bytes" "$peer1_bytes"
row "first ship: bytes on the wire (lab bridge)" "$hoist1_wire" "$peer1_wire" "$hoist1_wire" "$peer1_wire"
row "first ship: time, ms (hoist: whole \`up\`, starting 3 replicas)" "$hoist1_ms" "$peer1_ms" "$hoist1_ms" "$peer1_ms"
row "first ship: time, ms (hoist: \`up\` minus the same \`up\` without shipping, $base1_ms ms)" "$((hoist1_ms - base1_ms))" "$peer1_ms" "$((hoist1_ms - base1_ms))" "$peer1_ms"
row "one-layer change: archive bytes sent" "$hoist2_bytes" "$peer2_bytes" "$hoist2_bytes" "$peer2_bytes"
row "one-layer change: bytes on the wire (lab bridge)" "$hoist2_wire" "$peer2_wire" "$hoist2_wire" "$peer2_wire"
row "one-layer change: time, ms (hoist: whole \`up\`, rolling update of 3)" "$hoist2_ms" "$peer2_ms" "$hoist2_ms" "$peer2_ms"
row "one-layer change: time, ms (hoist: \`up\` minus the same update without shipping, $base2_ms ms)" "$((hoist2_ms - base2_ms))" "$peer2_ms" "$((hoist2_ms - base2_ms))" "$peer2_ms"

# --- does compressing on the wire pay? -------------------------------------------------------
docker save "$img" >"$work/image.tar"
t0=$(now)
ssh -F "$lab/ssh_config" m1 'cat >/dev/null' <"$work/image.tar"
t1=$(now)
link=$(awk -v b="$size" -v t="$(ms "$t0" "$t1")" 'BEGIN { printf "%.0f", b / (t / 1000) }') # bytes/s, one stream
echo
echo "Compressing the archive on the wire (whole image, $(mb "$size")); the lab link is SSH to a"
echo "machine on this box: $(mb "$link")/s for one stream. A streamed transfer takes about"
echo "max(size / compress speed, compressed size / link). Engine 20.10 loads gzip archives but not"
echo "zstd (\`invalid tar header\`); engine 26 loads both."
echo
echo "| codec | compressed | ratio | compress speed | lab link | 1 Gbit/s | 100 Mbit/s | 20 Mbit/s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
est() { # SIZE RATE_OR_0 LINK → seconds
    awk -v s="$1" -v c="$2" -v l="$3" -v raw="$size" 'BEGIN { a = (c > 0) ? raw / c : 0; b = s / l; printf "%.2f s", (a > b) ? a : b }'
}
line() { # NAME BYTES SPEED(bytes/s, 0 = none)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(mb "$2")" "$(ratio "$2" "$size")" \
        "$([ "$3" = 0 ] && echo - || echo "$(mb "$3")/s")" \
        "$(est "$2" "$3" "$link")" "$(est "$2" "$3" 125000000)" "$(est "$2" "$3" 12500000)" "$(est "$2" "$3" 2500000)"
}
line "none" "$size" 0
for codec in "gzip -1" "gzip -6" "zstd -1" "zstd -3" "zstd -1 -T2"; do
    t0=$(now)
    bytes=$($codec -c <"$work/image.tar" 2>/dev/null | wc -c)
    t1=$(now)
    speed=$(awk -v b="$size" -v t="$(ms "$t0" "$t1")" 'BEGIN { printf "%.0f", b / (t / 1000) }')
    line "$codec" "$bytes" "$speed"
done
