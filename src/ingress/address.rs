//! Where the ingress of one machine reaches the replicas of another: the
//! machine's `address:` from the machines file, else the host name its ssh
//! destination resolves to (`ssh -G`, so `HostName` in an ssh config counts).
//! Replicas publish their port on their machine; ingresses proxy to
//! ADDRESS:HOSTPORT over the machines' own network.

use crate::inventory::{Address, Machine};
use anyhow::{Context, Result, bail};
use std::process::Command;

/// How containers on a machine reach the machine itself when hoist drives the
/// local engine without ssh (Docker maps it to the host's gateway address).
pub const LOCAL_HOST: &str = "host.docker.internal";

/// The address other machines (and this machine's own ingress) reach `machine` at.
pub fn peer_address(machine: &Machine) -> Result<String> {
    if let Some(a) = &machine.peer_address {
        return Ok(bracketed(a));
    }
    let target = match &machine.address {
        Address::Local => return Ok(LOCAL_HOST.to_string()),
        Address::Ssh(t) => t,
    };
    let mut cmd = Command::new("ssh");
    cmd.arg("-G");
    if let Some(f) = &target.config_file {
        cmd.arg("-F").arg(f);
    }
    if let Some(p) = target.port {
        cmd.arg("-p").arg(p.to_string());
    }
    if let Some(u) = &target.user {
        cmd.arg("-l").arg(u);
    }
    cmd.arg("--").arg(&target.destination);
    let out = cmd
        .output()
        .with_context(|| format!("{}: running ssh -G to find its address", machine.name))?;
    if !out.status.success() {
        bail!(
            "{}: ssh -G {} failed: {}",
            machine.name,
            target.destination,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let host = hostname_of(&String::from_utf8_lossy(&out.stdout)).with_context(|| {
        format!(
            "{}: ssh -G printed no hostname; set `address:` for it in the machines file",
            machine.name
        )
    })?;
    // It goes into the Caddyfile and haproxy.cfg like a machines file's `address:`.
    crate::safe::network_address(&host).map_err(|e| {
        anyhow::anyhow!(
            "{}: the ssh config gives host name {e}; set `address:` for it in the machines file",
            machine.name
        )
    })?;
    Ok(bracketed(&host))
}

/// An IPv6 address in brackets, so that `ADDRESS:PORT` reads as one address and a port.
fn bracketed(address: &str) -> String {
    match address.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{address}]"),
        Err(_) => address.to_string(),
    }
}

/// The `hostname` line of `ssh -G` output.
fn hostname_of(ssh_g: &str) -> Option<String> {
    ssh_g.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "hostname").then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_comes_from_ssh_g() {
        let out = "user root\nhostname 172.31.77.11\nport 22\n";
        assert_eq!(hostname_of(out).as_deref(), Some("172.31.77.11"));
        assert_eq!(hostname_of("user root\n"), None);
    }

    #[test]
    fn ipv6_addresses_are_bracketed_for_address_port() {
        assert_eq!(bracketed("fd00::1"), "[fd00::1]");
        assert_eq!(bracketed("[fd00::1]"), "[fd00::1]");
        assert_eq!(bracketed("10.0.0.1"), "10.0.0.1");
        assert_eq!(bracketed("web2.internal"), "web2.internal");
    }
}
