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

/// Where rootful Podman serves its Docker-compatible API (`podman.socket`, or
/// `podman system service` as `hoist machines init` starts it without systemd).
pub const DEFAULT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";

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
    /// Which engine the machine runs (`engine:`), for `hoist machines init` to install and
    /// for the default socket; hoist speaks the Docker Engine API to both.
    pub engine: EngineKind,
    /// Where the other machines reach this one (the ingress proxies to replicas at
    /// ADDRESS:HOSTPORT); None: the host name the ssh destination resolves to.
    pub peer_address: Option<String>,
}

/// The container engine a machine runs (the machines file's `engine:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Docker Engine (the default).
    #[default]
    Docker,
    /// Podman, through its Docker-compatible API socket.
    Podman,
}

impl EngineKind {
    /// The socket its engine serves the API on when the machines file names none.
    pub fn default_socket(self) -> &'static str {
        match self {
            EngineKind::Docker => DEFAULT_DOCKER_SOCKET,
            EngineKind::Podman => DEFAULT_PODMAN_SOCKET,
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        })
    }
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
                engine: EngineKind::Docker,
                peer_address: None,
            }],
            mesh: None,
        }
    }
}

/// Finds the machines file: `-m FILE`, then `$HOIST_MACHINES`, then `hoist.yaml` in
/// `dir`. `None` means no inventory: deploy to the local engine.
pub fn locate(explicit: Option<&Path>, dir: &Path) -> Option<PathBuf> {
    locate_found(explicit, dir).map(|(path, _)| path)
}

/// How the machines file was chosen, which decides how far it is trusted (issue 17,
/// finding 9): a file named by the user (`-m`, `$HOIST_MACHINES`) may name an ssh config;
/// one merely found in the current folder may not, since an ssh config runs commands on
/// this computer (`ProxyCommand`, `Match exec`, `LocalCommand`) and the folder may be an
/// untrusted checkout where even a read-only `hoist plan` would run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `-m FILE` or `$HOIST_MACHINES`.
    Named,
    /// `./hoist.yaml` (or `.yml`) found in the current folder.
    Found,
}

/// [`locate`], also saying how the file was chosen.
pub fn locate_found(explicit: Option<&Path>, dir: &Path) -> Option<(PathBuf, Origin)> {
    if let Some(p) = explicit {
        return Some((p.to_path_buf(), Origin::Named));
    }
    if let Some(p) = std::env::var_os(MACHINES_ENV).filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(p), Origin::Named));
    }
    DEFAULT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .map(|p| (p, Origin::Found))
}

/// Reads the machines file [`locate_found`] chose (the local default when `None`), refusing
/// an `ssh_config` in a file that was only found in the current folder.
pub fn load_found(found: Option<(&Path, Origin)>) -> Result<Fleet> {
    let Some((path, origin)) = found else {
        return Ok(Fleet::local());
    };
    let fleet_text = read(path)?;
    let file = path.display().to_string();
    if origin == Origin::Found {
        refuse_found_ssh_config(&fleet_text, &file)?;
    }
    parse(&fleet_text, &file, path.parent().unwrap_or(Path::new(".")))
}

fn refuse_found_ssh_config(text: &str, file: &str) -> Result<()> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    if doc.get("ssh_config").is_some_and(|v| !v.is_null()) {
        bail!(
            "{file}: ssh_config: this machines file was found in the current folder, not named with -m or ${MACHINES_ENV}, \
             and an ssh config can run commands on this computer (ProxyCommand); if you trust this folder, \
             name the file: `hoist -m {file} …` or `export {MACHINES_ENV}={file}`"
        );
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the machines file {}: check the path given with -m or ${MACHINES_ENV}",
            path.display()
        )
    })
}

/// Reads the machines file at `path`, or the embedded local default when `None`.
pub fn load(path: Option<&Path>) -> Result<Fleet> {
    let Some(path) = path else {
        return Ok(Fleet::local());
    };
    let text = read(path)?;
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
    engine: Option<serde_yaml_ng::Value>,
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
    let mut local_machine: Option<String> = None;
    for (name, m) in doc.machines {
        validate_name(&name).map_err(|why| anyhow::anyhow!("{file}: machines.{name}: {why}"))?;
        if m.local {
            if let Some(first) = &local_machine {
                bail!(
                    "{file}: machines.{name}.local: {first} is already the local engine; list this computer once"
                );
            }
            local_machine = Some(name.clone());
        }
        if m.port == Some(0) {
            bail!(
                "{file}: machines.{name}.port: 0 is not a port; use 1 to 65535 (ssh's default is 22)"
            );
        }
        if let Some(user) = &m.user {
            ssh_user(user).map_err(|why| anyhow::anyhow!("{file}: machines.{name}.user: {why}"))?;
        }
        let engine = match &m.engine {
            None => EngineKind::Docker,
            Some(serde_yaml_ng::Value::String(s)) if s == "docker" => EngineKind::Docker,
            Some(serde_yaml_ng::Value::String(s)) if s == "podman" => EngineKind::Podman,
            Some(other) => bail!(
                "{file}: machines.{name}.engine: {} is not an engine hoist knows; write `engine: docker` (the default) or `engine: podman`",
                match other {
                    serde_yaml_ng::Value::String(s) =>
                        format!("{:?}", s.chars().take(40).collect::<String>()),
                    v => yaml_kind(v).to_string(),
                }
            ),
        };
        let docker_socket = m
            .docker_socket
            .unwrap_or_else(|| engine.default_socket().to_string());
        crate::safe::socket_path(&docker_socket)
            .map_err(|why| anyhow::anyhow!("{file}: machines.{name}.docker_socket: {why}"))?;
        if let Some(a) = &m.address {
            crate::safe::network_address(a)
                .map_err(|why| anyhow::anyhow!("{file}: machines.{name}.address: {why}"))?;
        }
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
                ssh_destination(&dest)
                    .map_err(|why| anyhow::anyhow!("{file}: machines.{name}.ssh: {why}"))?;
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
            docker_socket,
            engine,
            peer_address: m.address,
        });
    }
    Ok(Fleet {
        source: file.to_string(),
        machines,
        mesh: doc.mesh,
    })
}

/// An ssh destination (`host`, `user@host`, an alias, `ssh://user@host:port`) that reaches
/// ssh's argv as a destination and nothing else: no whitespace or control characters, and no
/// part ssh could read as an option. The openssh crate strips `ssh://` and `user@`, so a
/// leading `-` is refused in the host and the user too, not just at the start (issue 17,
/// finding 12: `ssh://u@-oProxyCommand=…`).
fn ssh_destination(dest: &str) -> std::result::Result<(), String> {
    let shown = || format!("{:?}", dest.chars().take(80).collect::<String>());
    if dest.trim().is_empty() {
        return Err(
            "empty; give an ssh destination such as root@203.0.113.10 or an ~/.ssh/config alias"
                .into(),
        );
    }
    if dest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{} contains a space or a control character; give an ssh destination such as root@203.0.113.10",
            shown()
        ));
    }
    let rest = dest.strip_prefix("ssh://").unwrap_or(dest);
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (host, port) = match dest.starts_with("ssh://") {
        // ssh://host:port and ssh://[v6]:port
        true => match host.strip_prefix('[') {
            Some(v6) => {
                let (h, rest) = v6.split_once(']').unwrap_or((v6, ""));
                (h, rest.strip_prefix(':'))
            }
            None => match host.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host, None),
            },
        },
        false => (host, None),
    };
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "{} is not an ssh destination: the port {p:?} is not a number from 1 to 65535",
            shown()
        ));
    }
    // `[-x]` too: ssh takes a bracketed host for an address (found by the machines fuzz target).
    let host_start = host.trim_start_matches('[');
    if dest.starts_with('-')
        || host_start.starts_with('-')
        || user.is_some_and(|u| u.starts_with('-'))
    {
        return Err(format!(
            "{} is not an ssh destination: a part starts with '-', which ssh would read as an option",
            shown()
        ));
    }
    if host.is_empty() || user.is_some_and(str::is_empty) {
        return Err(format!(
            "{} is not an ssh destination: the host or the user is empty",
            shown()
        ));
    }
    Ok(())
}

/// A login name for ssh `-l`: letters, digits and `._-`, not starting with '-'.
fn ssh_user(user: &str) -> std::result::Result<(), String> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a user name: use letters, digits, '.', '_' or '-', not starting with '-'",
            user.chars().take(80).collect::<String>()
        ))
    }
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

    /// Issue 17, findings 1, 3 and 12, and values accepted that should not be: each refused
    /// with the file, the machine and the key.
    #[test]
    fn values_that_reach_ssh_a_shell_or_a_config_are_checked() {
        let cases = [
            (
                "m1: {ssh: a, docker_socket: \"/tmp/x'; touch /tmp/pwned; '\"}",
                "machines.m1.docker_socket: ",
            ),
            (
                "m1: {ssh: a, docker_socket: ''}",
                "machines.m1.docker_socket: it is empty",
            ),
            (
                "m1: {ssh: a, docker_socket: docker.sock}",
                "machines.m1.docker_socket: \"docker.sock\" is relative",
            ),
            (
                "m1: {ssh: a, docker_socket: '/run/$(id).sock'}",
                "machines.m1.docker_socket: ",
            ),
            (
                "m1: {local: true, docker_socket: '/a b'}",
                "machines.m1.docker_socket: ",
            ),
            (
                "m1: {ssh: a, address: \"10.0.0.1:80 {\\n}\"}",
                "machines.m1.address: ",
            ),
            (
                "m1: {ssh: a, address: '10.0.0.1 backup'}",
                "machines.m1.address: ",
            ),
            (
                "m1: {ssh: a, address: \"x\\n    server evil 6.6.6.6:80\"}",
                "machines.m1.address: ",
            ),
            (
                "m1: {ssh: 'ssh://u@-oProxyCommand=touch /tmp/p'}",
                "machines.m1.ssh: ",
            ),
            ("m1: {ssh: 'ssh://u@-oProxyCommand=x'}", "starts with '-'"),
            ("m1: {ssh: 'u@-oProxyCommand=x'}", "starts with '-'"),
            ("m1: {ssh: '-oProxyCommand=x'}", "starts with '-'"),
            ("m1: {ssh: 'ssh://-u@host'}", "starts with '-'"),
            ("m1: {ssh: 'ssh://u@[-x]:22'}", "starts with '-'"),
            ("m1: {ssh: 'root@[-61.0.0.1:2222'}", "starts with '-'"),
            (
                "m1: {ssh: 'ssh://root@host:0'}",
                "the port \"0\" is not a number",
            ),
            (
                "m1: {ssh: 'ssh://root@[fd00::1]:x'}",
                "the port \"x\" is not a number",
            ),
            ("m1: {ssh: '[-oProxyCommand=x]'}", "starts with '-'"),
            ("m1: {ssh: 'a b'}", "machines.m1.ssh: "),
            ("m1: {ssh: ''}", "machines.m1.ssh: empty"),
            ("m1: {ssh: '@host'}", "the host or the user is empty"),
            ("m1: {ssh: 'root@'}", "the host or the user is empty"),
            ("m1: {ssh: a, user: -oProxyCommand=x}", "machines.m1.user: "),
            ("m1: {ssh: a, user: 'a b'}", "machines.m1.user: "),
            ("m1: {ssh: a, port: 0}", "machines.m1.port: 0 is not a port"),
            (
                "m1: {ssh: a, engine: containerd}",
                "machines.m1.engine: \"containerd\" is not an engine hoist knows; write `engine: docker` (the default) or `engine: podman`",
            ),
            (
                "m1: {ssh: a, engine: [podman]}",
                "machines.m1.engine: a list is not",
            ),
            (
                "m1: {local: true}\n  m2: {local: true}",
                "machines.m2.local: m1 is already the local engine",
            ),
        ];
        for (machines, want) in cases {
            let e = parse_err(&format!("machines:\n  {machines}\n"));
            assert!(
                e.starts_with("hoist.yaml: ") && e.contains(want),
                "{machines}: {e}"
            );
        }
        let ok = parse_ok(
            "machines:\n  m1: {ssh: 'ssh://root@10.0.0.1:2222', docker_socket: /run/user/1000/docker.sock, address: 'fd00::1'}\n  m2: {ssh: deploy@web2.example.com, user: deploy, address: web2.internal}\n",
        );
        assert_eq!(ok.machines[0].docker_socket, "/run/user/1000/docker.sock");
    }

    /// `engine: podman` picks Podman's rootful API socket unless docker_socket names another.
    #[test]
    fn the_engine_key_sets_the_default_socket() {
        let fleet = parse_ok(
            "machines:\n  a: {ssh: a}\n  b: {ssh: b, engine: podman}\n  c: {ssh: c, engine: podman, docker_socket: /run/user/1000/podman/podman.sock}\n  d: {ssh: d, engine: docker}\n",
        );
        let got: Vec<(EngineKind, &str)> = fleet
            .machines
            .iter()
            .map(|m| (m.engine, m.docker_socket.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (EngineKind::Docker, DEFAULT_DOCKER_SOCKET),
                (EngineKind::Podman, DEFAULT_PODMAN_SOCKET),
                (EngineKind::Podman, "/run/user/1000/podman/podman.sock"),
                (EngineKind::Docker, DEFAULT_DOCKER_SOCKET),
            ]
        );
    }

    /// Issue 17, finding 9: a hoist.yaml merely found in the current folder may not name an
    /// ssh config; the same file named with -m may.
    #[test]
    fn a_found_machines_file_may_not_name_an_ssh_config() {
        let dir = std::env::temp_dir().join(format!("hoist-inv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cfg"), "Host *\n  ProxyCommand touch /tmp/never\n").unwrap();
        std::fs::write(
            dir.join("hoist.yaml"),
            "ssh_config: cfg\nmachines:\n  m1: {ssh: a}\n",
        )
        .unwrap();
        let file = dir.join("hoist.yaml");
        let e = format!(
            "{:#}",
            load_found(Some((&file, Origin::Found))).unwrap_err()
        );
        assert!(
            e.contains(
                "hoist.yaml: ssh_config: this machines file was found in the current folder"
            ),
            "{e}"
        );
        assert!(load_found(Some((&file, Origin::Named))).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_file_means_the_local_engine() {
        let fleet = load(None).unwrap();
        assert_eq!(fleet.machines.len(), 1);
        assert_eq!(fleet.machines[0].address, Address::Local);
    }
}
