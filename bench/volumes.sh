#!/usr/bin/env bash
# Volume data on the lab: moving a volume between machines and backing one up, hoist against
# the shell pipelines a user would write by hand, on the same machines and the same data.
#   - move: `hoist up --move-volumes` of a db service pinned by zone (m1 → m3: pre-copy while
#     the db runs — stream engine to engine through hoist's connections, sha256 on the target
#     compared with what passed —, stop, send what changed, check, start on m3) against
#     `ssh m1 docker run -v VOL:/v … tar c | ssh m3 docker run -i -v VOL:/v … tar x` (no check
#     at all). Throughput = volume bytes / pre-copy time (with its check); the service's
#     downtime as `up` reports it, and the part of it spent on the changes.
#   - backup: `hoist volumes backup` (stop, stream, gzip locally, sha256, start) against
#     `ssh m1 docker run -v VOL:/v … tar c | gzip -1 > FILE`.
# The volume holds SIZE_MB MiB (default 1024): half random bytes, half text.
#
# Usage: bash bench/volumes.sh   (needs the test suite's set-up: tests/all.sh)
# Holds the lab exclusively while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/lab/lab.sh ensure 3 >/dev/null
# shellcheck source=bench/common.sh
source bench/common.sh

size_mb=${SIZE_MB:-1024}
project=benchvol$$
volume=${project}_data
work=$(mktemp -d)
sshm() { ssh -F "$lab/ssh_config" "$@"; }
ms() { echo $((($2 - $1) / 1000000)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mibs() { awk -v mb="$size_mb" -v t="$1" 'BEGIN { printf "%.1f MiB/s", mb / (t / 1000) }'; }
compose() {
    cat >"$work/compose.yaml" <<EOF
services:
  db:
    image: hoist-test/db:latest
    volumes: [data:/data]
    stop_grace_period: 5s
    deploy:
      placement:
        constraints: [node.labels.zone == $1]
volumes:
  data: {}
EOF
}
h() { (cd "$work" && "$hoist" -m "$lab/machines.yaml" -p "$project" "$@"); }
cleanup() {
    h down --volumes --yes >/dev/null 2>&1 || true
    for m in m1 m3; do sshm "$m" "docker volume rm -f peer$$ $volume hoist-incoming-$volume" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

compose a
h up --yes >/dev/null
half=$((size_mb / 2))
h exec db sh -c "dd if=/dev/urandom of=/data/random bs=1M count=$half 2>/dev/null; \
    yes 'a line of text, as logs and tables hold them, repeated' | head -c $((half * 1048576)) >/data/text"
sshm m1 "docker run --rm -v $volume:/v hoist-test/base:latest sh -c 'cd /v && find . -type f -exec sha256sum {} + | sort'" >"$work/source.sum"

# --- backup ------------------------------------------------------------------------------------
t0=$(now)
h volumes backup db -o "$work/db.hoist" >"$work/backup.out"
t1=$(now)
hoist_backup=$(ms "$t0" "$t1")
t0=$(now)
sshm m1 "docker run --rm -v $volume:/v hoist-test/base:latest tar c -C /v ." | gzip -1 >"$work/peer.tar.gz"
t1=$(now)
peer_backup=$(ms "$t0" "$t1")

# --- move --------------------------------------------------------------------------------------
t0=$(now)
sshm m1 "docker run --rm -v $volume:/v hoist-test/base:latest tar c -C /v ." |
    sshm m3 "docker run --rm -i -v peer$$:/v hoist-test/base:latest tar x -C /v"
t1=$(now)
peer_move=$(ms "$t0" "$t1")
compose c
t0=$(now)
h up --yes --move-volumes >"$work/move.out" 2>&1
t1=$(now)
hoist_up=$(ms "$t0" "$t1")
copy_s=$(sed -n 's/.*pre-copied and checked ([^,]*, \([0-9.]*\)s.*/\1/p' "$work/move.out" | head -n1)
changes=$(sed -n 's/.*: \([^ ]*\) changed since the pre-copy, sent and checked in \([0-9.]*\)s.*/\1 in \2 s/p' "$work/move.out" | head -n1)
down_s=$(sed -n 's/.*were down at most \([0-9.]*\)s.*/\1/p' "$work/move.out" | head -n1)
[ -n "$copy_s" ] && [ -n "$changes" ] || { echo "bench: the move did not pre-copy:" >&2; cat "$work/move.out" >&2; exit 1; }
hoist_copy=$(awk -v s="$copy_s" 'BEGIN { printf "%d", s * 1000 }')
sshm m3 "docker run --rm -v $volume:/v hoist-test/base:latest sh -c 'cd /v && find . -type f -exec sha256sum {} + | sort'" >"$work/target.sum"
cmp -s "$work/source.sum" "$work/target.sum" || { echo "bench: the moved copy differs" >&2; exit 1; }

echo "Volume of $size_mb MiB (half random, half text), m1 (engine 20.10) → m3 (engine 20.10), lab on one box:"
echo
echo "| what | hoist | by hand | by hand / hoist (throughput ratio) |"
echo "| --- | --- | --- | --- |"
echo "| move: copy (hoist: pre-copy while the db runs + sha256 check on the target) | ${hoist_copy} ms ($(mibs "$hoist_copy")) | ${peer_move} ms ($(mibs "$peer_move")), no check | $(ratio "$peer_move" "$hoist_copy") |"
echo "| move: whole \`up --move-volumes\` | ${hoist_up} ms; db stopped for the changes: ${changes}; db down ${down_s} s (stop → healthy on m3) | — | — |"
echo "| backup to a gzip file | ${hoist_backup} ms ($(mibs "$hoist_backup")) | ${peer_backup} ms ($(mibs "$peer_backup")) | $(ratio "$peer_backup" "$hoist_backup") |"
echo
echo "backup file: $(stat -c %s "$work/db.hoist") bytes (hoist), $(stat -c %s "$work/peer.tar.gz") bytes (gzip -1)"
