#!/usr/bin/env bash
# Deploy examples/hello with hoist on a fresh Debian 12 machine, as root:
# installs Docker and busybox-static when missing, starts dockerd when none
# answers, builds hoist, and runs `hoist up`. With no machines file (-m or
# $HOIST_MACHINES) the local engine is the one machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx httpd || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  (dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
install -m 755 /bin/busybox "$here/busybox"
cd "$repo"
# A debug build: it compiles in about half the time of --release, and a deploy spends its time
# waiting on engines, not in hoist (`cargo build --release` for everyday use).
cargo build --quiet
./target/debug/hoist -f examples/hello/compose.yaml up --yes "$@"
./target/debug/hoist -f examples/hello/compose.yaml ps
echo "try: curl http://127.0.0.1:${HELLO_PORT:-8080}/"
