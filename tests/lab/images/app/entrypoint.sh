#!/bin/sh
# PID 1 of hoist-test/app. busybox httpd as PID 1 would ignore SIGTERM (PID 1 gets no default
# signal actions), so every stop would wait the whole grace period; this wrapper traps it.
#
# Knobs for tests (environment):
#   PORT=80            port to listen on
#   START_UNHEALTHY=1  /cgi-bin/health answers 500 from the start
#   START_DELAY=N      wait N seconds before listening (slow starter)
#   STOP_DELAY=N       on SIGTERM, wait N seconds before exiting (slow stopper)
#   CRASH_AFTER=N      exit with status 3 after N seconds (crashing service)
PORT=${PORT:-80}
rm -f /tmp/unhealthy
[ "${START_UNHEALTHY:-0}" = 1 ] && touch /tmp/unhealthy

httpd_pid=
stop() {
    [ -n "${STOP_DELAY:-}" ] && sleep "$STOP_DELAY"
    [ -n "$httpd_pid" ] && kill "$httpd_pid" 2>/dev/null
    exit 0
}
trap stop TERM INT

# `sleep` runs in the background and `wait` is interrupted by a trapped signal, so SIGTERM is
# handled at once even while we sleep.
if [ -n "${START_DELAY:-}" ]; then
    sleep "$START_DELAY" &
    wait $!
fi
echo "app version=$APP_VERSION listening on :$PORT"
httpd -f -p "$PORT" -h /www &
httpd_pid=$!
if [ -n "${CRASH_AFTER:-}" ]; then
    sleep "$CRASH_AFTER" &
    wait $!
    echo "app crashing on purpose (CRASH_AFTER=$CRASH_AFTER)"
    kill "$httpd_pid"
    exit 3
fi
wait "$httpd_pid"
