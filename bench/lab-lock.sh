# shellcheck shell=bash
# Sourced by the benches that use the lab: hold it exclusively, like a test that injects faults
# (tests/common/lab.rs leases on $lab/.use.lock), so no e2e test deploys or kills machines while
# we measure, and none of ours disturbs theirs. A bench run from bench/peers.sh inherits its lock.
if [ -z "${HOIST_BENCH_LOCKED:-}" ]; then
    mkdir -p "${HOIST_LAB_DIR:-/var/tmp/hoist-lab}"
    exec 7>"${HOIST_LAB_DIR:-/var/tmp/hoist-lab}/.use.lock"
    printf 'bench: waiting for the lab (tests hold it while they run)\n' >&2
    flock -x -w 1800 7
    export HOIST_BENCH_LOCKED=1
fi
