#!/bin/sh
# PID 1 of the Podman lab machine (`lab.sh podman`): Debian 13 with Podman from Debian's
# packages instead of Docker, serving the Docker-compatible API on /run/podman/podman.sock as
# `podman system service` (there is no systemd, hence no podman.socket, in a lab machine).
#
# netavark sets sysctls in the machine's network namespace and in each container's
# (ip_forward, rp_filter, route_localnet, arp_notify …). /proc/sys is read-only in a lab machine
# (docker's default without --privileged), so every container start would fail with
# "netavark: Sysctl error: Read-only file system". The net.* entries written are per network
# namespace, so a writable /proc/sys here changes nothing on the box's own network.
set -e
mount -o remount,rw /proc/sys
mkdir -p /run/sshd /run/podman
# The box has cgroup v1, which Podman 5 still runs on but warns about at every command.
export PODMAN_IGNORE_CGROUPSV1_WARNING=1
setsid podman system service --time=0 unix:///run/podman/podman.sock \
    >>/var/log/podman-service.log 2>&1 </dev/null &
# Podman runs each container's health check from a systemd timer (a transient unit per
# container); with no systemd none ever runs and every health status stays "starting". This
# stands in for those timers, as the lab's sysvinit stand-in does for the bare machine: each
# second, every container with a health check gets one run (`podman healthcheck run`, which
# records the result as the timer would). The lab's images check every second anyway.
# A container labelled io.hoist.lab.no-timer=1 gets none: Podman without systemd, for the
# test of what hoist says then. One `podman ps` a second (filters on one key are OR'ed): the
# loop runs as long as the machine does, beside every later test.
setsid sh -c 'while :; do
    podman ps --filter health=starting --filter health=healthy --filter health=unhealthy \
        --format "{{.ID}} {{.Labels}}" | while read -r id labels; do
        case $labels in *io.hoist.lab.no-timer:1*) continue ;; esac
        podman healthcheck run "$id" >/dev/null 2>&1 &
    done
    sleep 1
done' >/dev/null 2>&1 </dev/null &
exec /usr/sbin/sshd -D -e
