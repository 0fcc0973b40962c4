#!/bin/sh
# Starts this machine's own Docker engine in the background (copied into the machine image as
# /usr/local/sbin/hoist-lab-dockerd). Used at boot and by `lab.sh start-docker`.
#
# On a cgroup v1 host the machine sees the host's cgroup tree (LAB.md's bind mount of
# /sys/fs/cgroup). Without a cgroup parent the inner engine would put its containers next to the
# machine's own cgroup, outside it, and `docker pause` of the machine would freeze sshd and dockerd
# but leave the machine's containers serving. Nesting them under the machine's cgroup makes a
# paused machine hang as a whole, like a real frozen server.
set -e
if [ -e /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    exit 0 # already running
fi
set --
own=$(sed -n 's/^[0-9]*:freezer:\(.*\)$/\1/p' /proc/self/cgroup)
if [ -n "$own" ] && [ "$own" != / ]; then
    set -- --cgroup-parent="$own/inner"
fi
setsid dockerd "$@" >>/var/log/dockerd.log 2>&1 </dev/null &
