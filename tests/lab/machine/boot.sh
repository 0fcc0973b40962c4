#!/bin/sh
# PID 1 of a lab machine (copied into the machine image as /usr/local/sbin/hoist-lab-boot).
#
# A lab machine stands in for a real server: it runs its own Docker engine and sshd, nothing
# else. sshd becomes PID 1 (exec) so that `docker stop` reaches it with SIGTERM and so that
# `lab.sh rekey` can make it reload its host key with SIGHUP (sshd re-executes itself in place,
# keeping PID 1, so the machine keeps running). sshd also reaps orphans, e.g. a dockerd that
# `lab.sh stop-docker` stopped.
set -e
mkdir -p /run/sshd
/usr/local/sbin/hoist-lab-dockerd
exec /usr/sbin/sshd -D -e
