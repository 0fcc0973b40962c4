#!/bin/sh
# PID 1 of hoist-test/db: a persistent busybox nc server that runs /bin/db-session for every
# connection. Traps SIGTERM (PID 1 gets no default signal actions) so a stop is prompt.
PORT=${PORT:-5432}
mkdir -p /data
touch /data/log
echo "db listening on :$PORT, $(wc -l </data/log) records in /data/log"
nc -ll -p "$PORT" -e /bin/db-session &
nc_pid=$!
trap 'kill "$nc_pid" 2>/dev/null; exit 0' TERM INT
wait "$nc_pid"
