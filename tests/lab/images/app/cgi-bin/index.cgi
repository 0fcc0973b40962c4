#!/bin/sh
# GET / (busybox httpd serves /cgi-bin/index.cgi for a directory without index.html).
printf 'Content-Type: text/plain\r\n\r\n'
echo "version=$APP_VERSION machine=${HOIST_MACHINE:-} host=$(hostname)"
