//! The inventory: which machines a project deploys to, read from a machines file.
//!
//! The same compose file goes to staging and production with two inventories, so
//! everything about *where* lives here and nothing about *what*. Parsing is pure:
//! a file's text in, a `Fleet` out, with errors that name the file, the key and
//! the machine.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The docker socket a machine's engine listens on unless the inventory says otherwise.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Environment variable naming the machines file when `-m` is not given.
pub const MACHINES_ENV: &str = "HOIST_MACHINES";

/// Files looked for in the current directory when neither `-m` nor `HOIST_MACHINES` is set.
pub const DEFAULT_FILES: [&str; 2] = ["hoist.yaml", "hoist.yml"];

/// All machines a deploy may use, in inventory order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Where the fleet came from, for messages ("the local engine" when embedded).
    pub source: String,
    pub machines: Vec<Machine>,
    /// The machines file's `mesh:` — service names across machines (src/mesh) for every
    /// project deployed to this fleet, without touching its compose file.
    pub mesh: Option<FleetMesh>,
}

/// The fleet's mesh settings (`mesh: {}` or `mesh: {image: …}` in the machines file).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetMesh {
    /// The proxy image, unless the compose file's `x-hoist.mesh.image` names one.
    pub image: Option<String>,
}

/// One machine of the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub name: String,
    pub address: Address,
    pub labels: BTreeMap<String, String>,
    /// Path of the engine's unix socket on that machine.
    pub docker_socket: String,
    /// Where the other machines reach this one (the ingress proxies to replicas at
    /// ADDRESS:HOSTPORT); None: the host name the ssh destination resolves to.
    pub peer_address: Option<String>,
}

/// How hoist reaches a machine's engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Address {
    /// The engine on this computer, without SSH.
    Local,
    /// Through the system's OpenSSH client.
    Ssh(SshTarget),
}

/// Everything `ssh` needs to reach a machine; unset fields fall back to the
/// user's ssh configuration exactly as the `ssh` command would.
#[derive(Debug, Clone, PartialEq)]
pub struct SshTarget {
    /// `host`, `user@host`, an `~/.ssh/config` alias, or `ssh://user@host:port`.
    pub destination: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    /// An ssh config file (`ssh -F`), from the inventory's top-level `ssh_config`.
    pub config_file: Option<PathBuf>,
}

impl Fleet {
    /// The embedded default: the local engine is the only machine.
    pub fn local() -> Fleet {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
            .unwrap_or_else(|| DEFAULT_DOCKER_SOCKET.to_string());
        Fleet {
            source: "the local engine (no machines file)".to_string(),
            machines: vec![Machine {
                name: "local".to_string(),
                address: Address::Local,
                labels: BTreeMap::new(),
                docker_socket: socket,
                peer_address: None,
            }],
            mesh: None,
        }
    }
}

/// Finds the machines file: `-m FILE`, then `$HOIST_MACHINES`, then `hoist.yaml` in
/// `dir`. `None` means no inventory: deploy to the local engine.
pub fn locate(explicit: Option<&Path>, dir: &Path) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(MACHINES_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    DEFAULT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// Reads the machines file at `path`, or the embedded local default when `None`.
pub fn load(path: Option<&Path>) -> Result<Fleet> {
    let Some(path) = path else {
        return Ok(Fleet::local());
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the machines file {}: check the path given with -m or ${MACHINES_ENV}",
            path.display()
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    ssh_config: Option<PathBuf>,
    mesh: Option<FleetMesh>,
    #[serde(default)]
    machines: indexmap::IndexMap<String, MachineDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineDoc {
    ssh: Option<String>,
    #[serde(default)]
    local: bool,
    user: Option<String>,
    port: Option<u16>,
    identity: Option<PathBuf>,
    #[serde(default)]
    labels: BTreeMap<String, serde_yaml_ng::Value>,
    docker_socket: Option<String>,
    address: Option<String>,
}

/// Parses a machines file's text. `file` names it in errors; relative paths
/// (`ssh_config`, `identity`) are resolved against `base`, the file's folder.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Fleet> {
    // Parsing to a generic value first rejects duplicate keys, which a typed map
    // would silently collapse into the last machine of that name.
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let doc: FileDoc = serde_yaml_ng::from_str(text).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let ssh_config = doc.ssh_config.map(|p| base.join(p));
    if let Some(cfg) = &ssh_config
        && !cfg.is_file()
    {
        bail!(
            "{file}: ssh_config: {} does not exist (paths are relative to the machines file)",
            cfg.display()
        );
    }
    if doc.machines.is_empty() {
        bail!(
            "{file}: machines: no machines listed; add at least one, e.g.\n  machines:\n    web1:\n      ssh: root@203.0.113.10"
        );
    }
    let mut machines = Vec::new();
    for (name, m) in doc.machines {
        validate_name(&name).map_err(|why| anyhow::anyhow!("{file}: machines.{name}: {why}"))?;
        let address = match (m.local, m.ssh) {
            (true, Some(_)) => bail!(
                "{file}: machines.{name}: `local: true` and `ssh` exclude each other; keep one"
            ),
            (true, None) => {
                if m.user.is_some() || m.port.is_some() || m.identity.is_some() {
                    bail!(
                        "{file}: machines.{name}: user, port and identity apply to ssh machines only"
                    );
                }
                Address::Local
            }
            (false, None) => bail!(
                "{file}: machines.{name}: missing `ssh` (an ssh destination such as root@203.0.113.10 or an ~/.ssh/config alias), or set `local: true`"
            ),
            (false, Some(dest)) => {
                if dest.trim().is_empty() || dest.starts_with('-') {
                    bail!("{file}: machines.{name}.ssh: {dest:?} is not an ssh destination");
                }
                Address::Ssh(SshTarget {
                    destination: dest,
                    user: m.user,
                    port: m.port,
                    identity: m.identity.map(|p| base.join(p)),
                    config_file: ssh_config.clone(),
                })
            }
        };
        let mut labels = BTreeMap::new();
        for (k, v) in m.labels {
            let v = match v {
                serde_yaml_ng::Value::String(s) => s,
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                serde_yaml_ng::Value::Bool(b) => b.to_string(),
                other => bail!(
                    "{file}: machines.{name}.labels.{k}: expected a string, number or boolean, got {}; write it as one value, e.g. `{k}: eu-1`",
                    yaml_kind(&other)
                ),
            };
            labels.insert(k, v);
        }
        machines.push(Machine {
            name,
            address,
            labels,
            docker_socket: m
                .docker_socket
                .unwrap_or_else(|| DEFAULT_DOCKER_SOCKET.to_string()),
            peer_address: m.address,
        });
    }
    Ok(Fleet {
        source: file.to_string(),
        machines,
        mesh: doc.mesh,
    })
}

/// Machine names end up in container names and labels, so they follow Docker's
/// container-name alphabet.
fn validate_name(name: &str) -> std::result::Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_first || !ok_rest {
        return Err(format!(
            "invalid machine name {name:?}: use letters, digits, '_', '.' or '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// A YAML value's kind in words, for errors.
fn yaml_kind(v: &serde_yaml_ng::Value) -> &'static str {
    match v {
        serde_yaml_ng::Value::Null => "nothing (null)",
        serde_yaml_ng::Value::Bool(_) => "a boolean",
        serde_yaml_ng::Value::Number(_) => "a number",
        serde_yaml_ng::Value::String(_) => "a string",
        serde_yaml_ng::Value::Sequence(_) => "a list",
        serde_yaml_ng::Value::Mapping(_) => "a mapping",
        serde_yaml_ng::Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Fleet {
        parse(text, "hoist.yaml", Path::new("/etc/hoist")).unwrap()
    }

    fn parse_err(text: &str) -> String {
        format!(
            "{:#}",
            parse(text, "hoist.yaml", Path::new("/etc/hoist")).unwrap_err()
        )
    }

    #[test]
    fn reads_ssh_and_local_machines_in_order() {
        let fleet = parse_ok(
            "machines:\n  web2:\n    ssh: root@10.0.0.2\n    port: 2222\n    identity: keys/id\n    labels: {zone: b, gpu: true, rack: 7}\n  here:\n    local: true\n",
        );
        assert_eq!(fleet.machines.len(), 2);
        let web2 = &fleet.machines[0];
        assert_eq!(web2.name, "web2");
        assert_eq!(
            web2.address,
            Address::Ssh(SshTarget {
                destination: "root@10.0.0.2".into(),
                user: None,
                port: Some(2222),
                identity: Some(PathBuf::from("/etc/hoist/keys/id")),
                config_file: None,
            })
        );
        assert_eq!(web2.labels["gpu"], "true");
        assert_eq!(web2.labels["rack"], "7");
        assert_eq!(web2.docker_socket, DEFAULT_DOCKER_SOCKET);
        assert_eq!(fleet.machines[1].address, Address::Local);
    }

    #[test]
    fn errors_name_file_key_and_machine() {
        assert_eq!(
            parse_err("machines:\n  m1:\n    ssh: a\n    port: abc\n"),
            "hoist.yaml: machines.m1.port: invalid type: string \"abc\", expected u16 at line 4 column 11"
        );
        assert!(
            parse_err("machines:\n  m1:\n    sh: a\n")
                .starts_with("hoist.yaml: machines.m1: unknown field `sh`")
        );
        assert!(
            parse_err("machines:\n  m1:\n    user: root\n").contains("machines.m1: missing `ssh`")
        );
        assert!(
            parse_err("machines:\n  m1:\n    ssh: a\n    local: true\n")
                .contains("exclude each other")
        );
        assert!(parse_err("machines: {}\n").contains("no machines listed"));
        assert!(parse_err("machines:\n  -bad:\n    ssh: a\n").contains("invalid machine name"));
        assert!(
            parse_err("machines:\n  m1:\n    ssh: a\n    labels: {z: [1]}\n")
                .contains("machines.m1.labels.z")
        );
        assert!(
            parse_err("ssh_config: nope\nmachines:\n  m1: {ssh: a}\n")
                .contains("ssh_config: /etc/hoist/nope does not exist")
        );
        assert!(parse_err("machines:\n  m1: {ssh: a}\n  m1: {ssh: b}\n").contains("duplicate"));
    }

    #[test]
    fn no_file_means_the_local_engine() {
        let fleet = load(None).unwrap();
        assert_eq!(fleet.machines.len(), 1);
        assert_eq!(fleet.machines[0].address, Address::Local);
    }
}
