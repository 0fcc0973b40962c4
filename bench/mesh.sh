#!/usr/bin/env bash
# The mesh's cost: one HTTP hop through the mesh proxy to a replica on the same machine and to
# one on another machine, against the same request sent straight to the replica's container
# address (no proxy, what Compose does on one machine). `hey` runs in a client container on m1
# (the box's hey binary, copied into an image that has glibc); the servers are busybox httpd
# serving a small static file, so the proxy and the network are what is measured.
# Usage: bash bench/mesh.sh [REQUESTS] [CONCURRENCY]    (defaults 20000, 8)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
n=${1:-20000}
c=${2:-8}
command -v hey >/dev/null || { echo "bench: hey not found (apt-get install hey)" >&2; exit 1; }
bash tests/lab/lab.sh ensure 3 >/dev/null
work=$(mktemp -d)
project=benchmesh
h() { "$hoist" -m "$lab/machines.yaml" -p "$project" -f "$work/compose.yaml" "$@"; }
trap 'h down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
serve='echo hello from the mesh bench >/www/index.html && exec httpd -f -p 80 -h /www'
cat >"$work/compose.yaml" <<YAML
x-hoist:
  mesh: {image: hoist-test/haproxy:latest}
services:
  near:
    image: hoist-test/base:latest
    command: ["sh", "-c", "$serve"]
    expose: ["80"]
    deploy: {placement: {constraints: ["node.hostname == m1"]}}
  far:
    image: hoist-test/base:latest
    command: ["sh", "-c", "$serve"]
    expose: ["80"]
    deploy: {placement: {constraints: ["node.hostname == m2"]}}
  client:
    image: hoist-test/caddy:latest
    entrypoint: ["sleep", "86400"]
    deploy: {placement: {constraints: ["node.hostname == m1"]}}
YAML
h up --yes >/dev/null 2>&1
in_m1() { docker exec -i m1 docker "$@"; }
client=$(in_m1 ps -q --filter "label=io.hoist.project=$project" --filter label=io.hoist.service=client)
near=$(in_m1 ps -q --filter "label=io.hoist.project=$project" --filter label=io.hoist.service=near)
docker cp /usr/bin/hey m1:/tmp/hey
in_m1 cp /tmp/hey "$client:/bin/hey"
near_ip=$(in_m1 inspect -f "{{(index .NetworkSettings.Networks \"${project}_default\").IPAddress}}" "$near")

run() { # URL -> "req/s p50_ms p99_ms"
    in_m1 exec "$client" hey -n "$n" -c "$c" "$1" | awk '
        /Requests\/sec:/ { rps = $2 }
        /50% in/ { p50 = $3 * 1000 }
        /99% in/ { p99 = $3 * 1000 }
        END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}
run "http://$near_ip/" >/dev/null # warm up
read -r d_rps d_p50 d_p99 < <(run "http://$near_ip/")
read -r s_rps s_p50 s_p99 < <(run "http://near/")
read -r x_rps x_p50 x_p99 < <(run "http://far/")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "## The mesh: one hop, $n requests, $c at a time ($(date -u +%Y-%m-%d), $(nproc) cores, lab on one box)"
echo
echo "| path from a container on m1 | req/s | p50 ms | p99 ms | req/s vs direct | p99 vs direct |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| direct to the replica's container address, same machine (no mesh) | $d_rps | $d_p50 | $d_p99 | 1.00 | 1.00 |"
echo "| \`near\` by name: mesh proxy on m1 → replica on m1 | $s_rps | $s_p50 | $s_p99 | $(ratio "$s_rps" "$d_rps") | $(ratio "$s_p99" "$d_p99") |"
echo "| \`far\` by name: mesh proxy on m1 → replica on m2 (cross-machine) | $x_rps | $x_p50 | $x_p99 | $(ratio "$x_rps" "$d_rps") | $(ratio "$x_p99" "$d_p99") |"
