#!/bin/sh
# PID 1 of the rootless-Docker lab machine (`lab.sh rootless`): Debian 13 where no engine runs as
# root; user alice (uid 1000) runs her own dockerd through rootlesskit (Debian's docker.io ships
# dockerd-rootless.sh), socket /run/user/1000/docker.sock. Copied in at each start.
set -e
mkdir -p /run/sshd
# What systemd-logind would make at alice's login: her runtime directory.
install -d -o alice -g alice -m 700 /run/user/1000
# slirp4netns gives her engine its network through a tap device.
mkdir -p /dev/net
[ -e /dev/net/tun ] || mknod /dev/net/tun c 10 200
chmod 666 /dev/net/tun
# A real server's default, which Docker sets to 0 inside a container (this machine): ports below
# 1024 are privileged, so her engine cannot publish them.
sysctl -q -w net.ipv4.ip_unprivileged_port_start=1024
su alice -c 'export XDG_RUNTIME_DIR=/run/user/1000 PATH=/usr/sbin:/usr/bin:/sbin:/bin;
    setsid /usr/share/docker.io/contrib/dockerd-rootless.sh >>/home/alice/dockerd.log 2>&1 </dev/null &'
exec /usr/sbin/sshd -D -e
