#!/bin/sh
# PID 1 of a bare lab machine (`lab.sh bare`): a fresh server with sshd and no container engine,
# for `hoist machines init`. It is the lab's machine image with the engine purged at first boot,
# as LAB.md describes. Copied into the container as /usr/local/sbin/hoist-lab-boot before its
# first start, so the machine image (and every other machine's recipe) stays the same.
#
# There is no systemd in a lab machine. What stands in for init: services enabled the sysvinit
# way (`update-rc.d NAME defaults`, as Debian's docker.io package does in its postinst) start at
# every boot, except ssh, which is PID 1 here. So an engine `hoist machines init` installed comes
# back after `lab.sh kill` / `lab.sh start`, as it would on a real server after a reboot.
set -e
if [ ! -e /var/lib/hoist-lab-bare ]; then
    # Whatever the suite ships of the engine: on trixie the CLI is its own package.
    pkgs=
    for p in docker.io docker-cli containerd runc tini; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' && pkgs="$pkgs $p"
    done
    # shellcheck disable=SC2086 # a list of package names
    [ -z "$pkgs" ] || DEBIAN_FRONTEND=noninteractive dpkg --purge $pkgs >/var/log/hoist-lab-bare.log 2>&1
    # What this box cannot give its machines, said where Debian's init script for docker.io
    # reads it (it sources /etc/default/docker; `hoist machines init` installs with
    # --force-confold, so the file stays). The box's hard limit on open files is 20000 and a
    # lab machine cannot raise it (no CAP_SYS_RESOURCE), while the script sets `ulimit -n
    # 1048576` under `set -e` and would never start dockerd: here a limit it cannot set is
    # left as it is. Engine 26 (trixie) cannot turn on IPv6 forwarding (/proc/sys is read-only
    # in a lab machine) unless told to carry on without (LAB.md).
    cat >/etc/default/docker <<'DEFAULTS'
# Written by the hoist lab (tests/lab/bare/boot.sh), not by Debian: see there.
ulimit() { command ulimit "$@" 2>/dev/null || true; }
export DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
DEFAULTS
    touch /var/lib/hoist-lab-bare
fi
for s in /etc/rc2.d/S*; do
    case $s in */S[0-9][0-9]ssh) continue ;; esac
    [ -x "$s" ] && "$s" start >>/var/log/hoist-lab-rc.log 2>&1 || true
done
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
