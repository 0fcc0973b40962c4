#!/bin/sh
# busybox httpd as PID 1 would ignore SIGTERM; this wrapper makes stops prompt.
echo "machine=${HOIST_MACHINE:-?} slot=${HOIST_SLOT:-?}" > /www/where.txt
httpd -f -p 80 -h /www &
pid=$!
trap 'kill $pid; exit 0' TERM INT
wait $pid
