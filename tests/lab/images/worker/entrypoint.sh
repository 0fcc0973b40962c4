#!/bin/sh
# PID 1 of hoist-test/worker: prints "tick N machine=... host=..." every INTERVAL seconds
# (default 1) and exits 0 at once on SIGTERM.
trap 'echo "worker stopping"; exit 0' TERM INT
n=0
while :; do
    n=$((n + 1))
    echo "tick $n machine=${HOIST_MACHINE:-} host=$(hostname)"
    sleep "${INTERVAL:-1}" &
    wait $!
done
