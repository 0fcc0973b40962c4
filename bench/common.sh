# shellcheck shell=bash
# Sourced by every bench that uses the lab, from the repository root:
#   - holds the lab exclusively, like a test that injects faults (tests/common/lab.rs leases on
#     $lab/.use.lock), so no e2e test deploys or kills machines while we measure, and none of
#     ours disturbs theirs; a bench run from bench/peers.sh inherits its lock;
#   - builds hoist (release) and sets $hoist, $lab; defines now (ns) and median (of stdin).
lab=${HOIST_LAB_DIR:-/var/tmp/hoist-lab}
if [ -z "${HOIST_BENCH_LOCKED:-}" ]; then
    mkdir -p "$lab"
    exec 7>"$lab/.use.lock"
    printf 'bench: waiting for the lab (tests hold it while they run)\n' >&2
    flock -x -w 1800 7
    export HOIST_BENCH_LOCKED=1
fi
cargo build --release --quiet
# shellcheck disable=SC2034 # used by the scripts that source this one
hoist=$PWD/target/release/hoist
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
