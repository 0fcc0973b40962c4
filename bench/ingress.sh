#!/usr/bin/env bash
# Throughput and p99 latency through the ingress vs straight to one replica, on the lab.
#
#   bash bench/ingress.sh [REQUESTS] [CONCURRENCY]     (defaults: 20000, 32)
#
# Deploys web ×4 (hoist-test/app, busybox httpd) behind the ingress (hoist-test/caddy) on the
# lab's 3 machines, then runs `hey` from the box:
#   direct   — to one replica's published port on m1 (no proxy);
#   ingress  — to the ingress on m1, which spreads over the 4 replicas on m1..m3.
# Prints one line per case and the ratio. Needs the lab (tests/lab/lab.sh up 3) and hey
# (apt-get install hey). Removes its project at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh
n=${1:-20000}
c=${2:-32}
port=18780
project=benchingress
machines=${HOIST_MACHINES:-/var/tmp/hoist-lab/machines.yaml}
command -v hey >/dev/null || { echo "bench: hey not found (apt-get install hey)" >&2; exit 1; }
hoist() { ./target/release/hoist -m "$machines" -p "$project" -f "$dir/compose.yaml" "$@"; }

dir=$(mktemp -d)
trap 'hoist down --yes >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
cat >"$dir/compose.yaml" <<YAML
x-hoist:
  ingress: {image: "hoist-test/caddy:latest", http_port: $port, https_port: $((port + 1))}
services:
  web:
    image: hoist-test/app:v1
    ports: ["80"]
    x-hoist:
      ingress: {health: {path: /cgi-bin/health, interval: 1s, timeout: 500ms}}
    deploy: {replicas: 4}
YAML
hoist up --yes >/dev/null 2>&1
direct=$(hoist ps --json | python3 -c '
import json, sys
for r in json.load(sys.stdin)["replicas"]:
    if r["machine"] == "m1" and r["ports"]:
        print(r["ports"][0].split("->")[0].rsplit(":", 1)[1]); break')

measure() { # NAME URL
    local out rps p99 bad
    hey -n 20 -c 1 "$2" >/dev/null # warm up
    out=$(hey -n "$n" -c "$c" "$2")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '/99% in/ {print $3 * 1000}' <<<"$out")
    bad=$(awk '/^\s*\[[0-9]+\]/ && $1 != "[200]" {s += $2} END {print s + 0}' <<<"$out")
    printf '%-8s %9.0f req/s   p99 %7.2f ms   non-200/errors %s\n' "$1" "$rps" "$p99" "$bad"
    echo "$rps $p99" >"$dir/$1"
}
echo "hey -n $n -c $c from the box; 4 replicas on 3 machines"
measure direct "http://172.31.77.11:$direct/"
measure ingress "http://172.31.77.11:$port/"
read -r drps dp99 <"$dir/direct"
read -r irps ip99 <"$dir/ingress"
awk -v a="$irps" -v b="$drps" -v x="$ip99" -v y="$dp99" \
    'BEGIN { printf "ingress/direct: throughput x%.2f, p99 x%.2f\n", a / b, x / y }'
