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
exec /usr/sbin/sshd -D -e
