//! Engines: one Docker Engine API client per machine, reached through the SSH
//! transport (or the local socket), connected to all machines in parallel.
//!
//! This is the I/O edge where a machine's failure becomes a clear per-machine
//! error — unreachable, refused, host key changed, docker not running — and
//! never a hang: every machine gets the same bounded connect time.

use crate::inventory::{Address, Fleet, Machine};
use crate::transport::{MasterCache, SshFailure, Tunnel, Workdir};
use bollard::Docker;
use futures_util::StreamExt;
use std::fmt;
use std::time::Duration;

/// Oldest Engine API hoist speaks (Docker 19.03). Older engines lack
/// healthcheck start periods and platform-aware image handling.
pub const MIN_API: (u32, u32) = (1, 40);

/// See `connect`: the engine client's own per-request timeout.
const ENGINE_REQUEST_TIMEOUT_SECS: u64 = 3600;

/// How many machines are dialled at once; ssh handshakes are CPU-bound locally.
const CONNECT_PARALLELISM: usize = 32;

/// What an engine tells about its machine; the scheduler's view of capacity.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Facts {
    pub engine_version: String,
    pub api_version: String,
    pub os: String,
    pub operating_system: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub hostname: String,
    pub storage_driver: String,
    /// True when images live in containerd's store (Docker 29's default):
    /// image shipping must then load whole archives.
    pub containerd_image_store: bool,
    /// The engine is Podman answering the Docker API (its version names a "Podman Engine").
    pub podman: bool,
    /// The engine runs rootless (a user's own, through rootlesskit): it cannot publish ports
    /// below the machine's `net.ipv4.ip_unprivileged_port_start` (1024 by default).
    pub rootless: bool,
}

/// Why a machine's engine could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum MachineError {
    Ssh(SshFailure),
    /// SSH works but the engine does not answer: the text says why.
    Docker(String),
    /// The whole connect took longer than the budget.
    Timeout(Duration),
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineError::Ssh(s) => write!(f, "{s}"),
            MachineError::Docker(s) => write!(f, "{s}"),
            MachineError::Timeout(d) => write!(
                f,
                "no answer within {}s (machine down, paused or unreachable); raise --timeout if the link is just slow",
                d.as_secs()
            ),
        }
    }
}

/// A connected engine on one machine.
pub struct Engine {
    pub docker: Docker,
    pub facts: Facts,
    tunnel: Option<Tunnel>,
    /// The local socket the engine answers on (forwarded when remote).
    socket: std::path::PathBuf,
}

impl Engine {
    /// The local unix socket that reaches this engine: for the rare request bollard's models
    /// cannot read (`volume::data`'s disk usage).
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }
}

/// Every machine of a fleet with its engine or the reason it has none.
/// Call `close` when done; dropping also cleans up, only less politely.
pub struct Connections {
    pub results: Vec<(Machine, Result<Engine, MachineError>)>,
    /// Shared with connections still being made in the background (`connect_again`).
    workdir: std::sync::Arc<Workdir>,
    /// Where ssh masters are kept for the next command, unless HOIST_SSH_PERSIST=0.
    masters: Option<std::sync::Arc<MasterCache>>,
}

impl Connections {
    /// Closes every ssh master and removes the private socket folder.
    pub async fn close(self) {
        let Connections {
            results, workdir, ..
        } = self;
        let closes = results
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .map(|e| async move {
                drop(e.docker);
                if let Some(t) = e.tunnel {
                    t.close().await;
                }
            });
        futures_util::future::join_all(closes).await;
        drop(workdir);
    }
}

impl Connections {
    /// The engines that answered, by machine name (clients are cheap handles to share).
    pub fn engines(&self) -> Vec<(String, Docker)> {
        self.results
            .iter()
            .filter_map(|(m, r)| r.as_ref().ok().map(|e| (m.name.clone(), e.docker.clone())))
            .collect()
    }

    /// Forgets machine `i`'s engine (it stopped answering: `why`), closing its ssh master.
    /// A long-running verb (`hoist watch`) then connects again with [`Connections::connect_again`].
    pub fn disconnect(&mut self, i: usize, why: MachineError) {
        let old = std::mem::replace(&mut self.results[i].1, Err(why));
        if let Ok(Engine {
            tunnel: Some(t), ..
        }) = old
        {
            // A master whose peer hangs may not answer: close it in the background (the
            // Workdir's drop kills it at worst), so the caller is never held up.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), t.discard()).await;
            });
        }
    }

    /// A new connection to machine `i`, its local socket named by `socket_index` (unique
    /// per attempt, so a half-closed earlier socket never collides). The future owns what it
    /// needs, so it can run in the background while this set is in use; store its result
    /// with [`Connections::set`].
    pub fn connect_again(
        &self,
        i: usize,
        socket_index: usize,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Engine, MachineError>> + Send + 'static {
        let machine = self.results[i].0.clone();
        let workdir = std::sync::Arc::clone(&self.workdir);
        let masters = self.masters.clone();
        async move {
            let connecting = connect(&machine, &workdir, masters.as_ref(), socket_index, timeout);
            match tokio::time::timeout(timeout, connecting).await {
                Ok(r) => r,
                Err(_) => Err(MachineError::Timeout(timeout)),
            }
        }
    }

    /// Stores machine `i`'s new connection (or why it has none), closing the old one.
    pub fn set(&mut self, i: usize, result: Result<Engine, MachineError>) {
        let old = std::mem::replace(&mut self.results[i].1, result);
        if let Ok(Engine {
            tunnel: Some(t), ..
        }) = old
        {
            // A master whose peer hangs may not answer: close it in the background (the
            // Workdir's drop kills it at worst), so the caller is never held up.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), t.discard()).await;
            });
        }
    }
}

/// Connects to every machine of `fleet` in parallel, each bounded by `timeout`.
pub async fn connect_all(fleet: &Fleet, timeout: Duration) -> anyhow::Result<Connections> {
    let workdir = Workdir::new()
        .map_err(|e| anyhow::anyhow!("cannot create a private folder for ssh sockets: {e}"))?;
    let wd = &workdir;
    let masters = MasterCache::from_env()
        .map_err(|e| anyhow::anyhow!(e))?
        .map(std::sync::Arc::new);
    let kept = masters.as_ref();
    let mut results: Vec<(usize, Machine, Result<Engine, MachineError>)> =
        futures_util::stream::iter(fleet.machines.iter().cloned().enumerate())
            .map(|(i, m)| async move {
                let r = match tokio::time::timeout(timeout, connect(&m, wd, kept, i, timeout)).await
                {
                    Ok(r) => r,
                    Err(_) => Err(MachineError::Timeout(timeout)),
                };
                (i, m, r)
            })
            .buffer_unordered(CONNECT_PARALLELISM)
            .collect()
            .await;
    results.sort_by_key(|(i, _, _)| *i);
    Ok(Connections {
        results: results.into_iter().map(|(_, m, r)| (m, r)).collect(),
        workdir: std::sync::Arc::new(workdir),
        masters,
    })
}

async fn connect(
    machine: &Machine,
    workdir: &Workdir,
    masters: Option<&std::sync::Arc<MasterCache>>,
    index: usize,
    timeout: Duration,
) -> Result<Engine, MachineError> {
    let Address::Ssh(target) = &machine.address else {
        let socket = std::path::PathBuf::from(&machine.docker_socket);
        return engine_at(machine, &socket, None, None).await;
    };
    // Leave a little of the budget for the engine's answer.
    let ssh_timeout = timeout
        .saturating_sub(Duration::from_secs(2))
        .max(Duration::from_secs(1));
    let open = |masters| {
        Tunnel::open(
            target,
            &machine.docker_socket,
            workdir,
            index,
            ssh_timeout,
            masters,
        )
    };
    let tunnel = open(masters).await.map_err(MachineError::Ssh)?;
    if !tunnel.resumed() {
        let socket = tunnel.socket().to_path_buf();
        return engine_at(machine, &socket, Some(tunnel), None).await;
    }
    // A master kept by an earlier command may have lost its machine without noticing yet:
    // give the engine a short while to answer through it, else start a fresh master.
    let socket = tunnel.socket().to_path_buf();
    let quick = (timeout / 3).min(Duration::from_secs(3));
    match engine_at(machine, &socket, Some(tunnel), Some(quick)).await {
        Ok(engine) => Ok(engine),
        Err(_) => {
            let tunnel = open(masters).await.map_err(MachineError::Ssh)?;
            let socket = tunnel.socket().to_path_buf();
            engine_at(machine, &socket, Some(tunnel), None).await
        }
    }
}

/// The engine behind `socket` (through `tunnel` when remote), its facts read within `quick`
/// when given; on failure the tunnel is closed — discarded when `quick` (a kept master that
/// does not reach its machine is of no use to the next command either).
async fn engine_at(
    machine: &Machine,
    socket: &std::path::Path,
    tunnel: Option<Tunnel>,
    quick: Option<Duration>,
) -> Result<Engine, MachineError> {
    let result = async {
        let connect = |version: &bollard::ClientVersion| {
            Docker::connect_with_unix(
                &socket.to_string_lossy(),
                // Per-request cap until the engine answers. Stops (grace periods), image
                // loads and pulls legitimately take long; a dead link is caught by ssh's
                // keepalives (ServerAliveInterval), so this is only a last resort.
                ENGINE_REQUEST_TIMEOUT_SECS,
                version,
            )
            .map_err(|e| MachineError::Docker(format!("docker: cannot set up a client: {e}")))
        };
        let docker = connect(bollard::API_DEFAULT_VERSION)?;
        let facts = match quick {
            Some(limit) => match tokio::time::timeout(limit, read_facts(&docker)).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    return Err(explain_engine_failure(machine, tunnel.as_ref(), &e).await);
                }
                Err(_) => return Err(MachineError::Timeout(limit)),
            },
            None => match read_facts(&docker).await {
                Ok(f) => f,
                Err(e) => return Err(explain_engine_failure(machine, tunnel.as_ref(), &e).await),
            },
        };
        check_api(&facts.api_version)?;
        // The engine's API version, or the client's if older: what bollard's
        // negotiate_version finds, without asking the engine a second time.
        let docker = match parse_api(&facts.api_version) {
            Some((major, minor)) => {
                let engine = bollard::ClientVersion {
                    major_version: major as usize,
                    minor_version: minor as usize,
                };
                if engine < *bollard::API_DEFAULT_VERSION {
                    connect(&engine)?
                } else {
                    docker
                }
            }
            None => docker,
        };
        Ok((docker, facts))
    }
    .await;
    match result {
        Ok((docker, facts)) => Ok(Engine {
            docker,
            facts,
            tunnel,
            socket: socket.to_path_buf(),
        }),
        Err(e) => {
            if let Some(t) = tunnel {
                if quick.is_some() {
                    t.discard().await;
                } else {
                    t.close().await;
                }
            }
            Err(e)
        }
    }
}

async fn read_facts(docker: &Docker) -> Result<Facts, bollard::errors::Error> {
    let (version, info) = tokio::join!(docker.version(), docker.info());
    let (version, info) = (version?, info?);
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.contains("Podman"));
    let rootless = info
        .security_options
        .iter()
        .flatten()
        .any(|o| o.split(',').any(|kv| kv == "name=rootless"));
    let containerd_image_store = info
        .driver_status
        .iter()
        .flatten()
        .any(|kv| kv.iter().any(|s| s.contains("io.containerd.snapshotter")));
    Ok(Facts {
        engine_version: version.version.unwrap_or_default(),
        api_version: version.api_version.unwrap_or_default(),
        os: info.os_type.unwrap_or_default(),
        operating_system: info.operating_system.unwrap_or_default(),
        arch: info.architecture.unwrap_or_default(),
        cpus: info.ncpu.unwrap_or(0).max(0) as u32,
        memory_bytes: info.mem_total.unwrap_or(0).max(0) as u64,
        hostname: info.name.unwrap_or_default(),
        storage_driver: info.driver.unwrap_or_default(),
        containerd_image_store,
        podman,
        rootless,
    })
}

fn parse_api(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn check_api(v: &str) -> Result<(), MachineError> {
    match parse_api(v) {
        Some(api) if api >= MIN_API => Ok(()),
        Some(_) => Err(MachineError::Docker(format!(
            "docker: engine too old (API {v}); hoist needs API {}.{} (Docker 19.03) or newer — upgrade Docker on this machine",
            MIN_API.0, MIN_API.1
        ))),
        None => Err(MachineError::Docker(format!(
            "docker: the engine reported an unreadable API version {v:?}"
        ))),
    }
}

/// SSH works but the engine did not answer: look at the socket on the machine to
/// tell "docker not running" from "permission denied" and from "no engine installed".
async fn explain_engine_failure(
    machine: &Machine,
    tunnel: Option<&Tunnel>,
    err: &bollard::errors::Error,
) -> MachineError {
    let sock = &machine.docker_socket;
    let probe = socket_probe(sock);
    let verdict = match tunnel {
        Some(t) => t.shell(&probe).await.ok().map(|(_, out, _)| out),
        None => None,
    };
    let (state, user, engine) = match &verdict {
        Some(out) => {
            let mut lines = out.lines();
            (
                lines.next().unwrap_or("").to_string(),
                lines.next().unwrap_or("").to_string(),
                lines.next().unwrap_or("").to_string(),
            )
        }
        None => (local_socket_state(sock), String::new(), String::new()),
    };
    MachineError::Docker(match state.as_str() {
        "missing" if engine == "none" => format!(
            "no container engine is installed here (no dockerd, no podman) and nothing answers on {sock}; `hoist machines init {}` installs one",
            machine.name
        ),
        "missing" => format!(
            "docker not running: no socket at {sock} (start it, e.g. `systemctl start docker`, or let `hoist machines init {}` start it)",
            machine.name
        ),
        "notsocket" => {
            format!("docker: {sock} is not a unix socket; set docker_socket for this machine")
        }
        "denied" => format!(
            "docker: permission denied on {sock} for user {user}; add the user to the docker group (`usermod -aG docker {user}`) or connect as root"
        ),
        _ => format!("docker not running or not answering on {sock}: {err}"),
    })
}

/// The shell command that tells what is at `sock` on the machine. The path is one quoted
/// word (the machines file's check refuses odd paths too): issue 17, finding 1 — it was pasted
/// inside single quotes, so a quote in `docker_socket` ran commands on the machine.
fn socket_probe(sock: &str) -> String {
    format!(
        "s={}; if [ ! -e \"$s\" ]; then echo missing; elif [ ! -S \"$s\" ]; then echo notsocket; \
         elif [ -r \"$s\" ] && [ -w \"$s\" ]; then echo ok; else echo denied; fi; id -un; \
         if command -v dockerd >/dev/null 2>&1 || command -v podman >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/podman ]; \
         then echo engine; else echo none; fi",
        crate::safe::shell_quote(sock)
    )
}

fn local_socket_state(sock: &str) -> String {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(sock) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing".into(),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "denied".into(),
        Err(_) => String::new(),
        Ok(m) if !m.file_type().is_socket() => "notsocket".into(),
        Ok(_) => match std::os::unix::net::UnixStream::connect(sock) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "denied".into(),
            _ => String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically() {
        assert!(check_api("1.41").is_ok());
        assert!(check_api("1.45").is_ok());
        assert!(check_api("1.100").is_ok());
        assert!(
            matches!(check_api("1.39"), Err(MachineError::Docker(m)) if m.contains("engine too old"))
        );
        assert!(check_api("x").is_err());
    }

    /// Issue 17, finding 1: whatever the socket path holds, the probe runs no other command.
    #[test]
    fn the_socket_probe_runs_nothing_from_the_path() {
        let dir = std::env::temp_dir().join(format!("hoist-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("pwned");
        for path in [
            format!("/nope'; touch {}; echo '", marker.display()),
            format!("/nope\"; touch {}; echo \"", marker.display()),
            format!("/nope$(touch {})", marker.display()),
            format!("/nope`touch {}`", marker.display()),
            format!("/nope\ntouch {}", marker.display()),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(socket_probe(&path))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.lines().next(), Some("missing"), "{path}: {text}");
            assert!(!marker.exists(), "{path} ran a command");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
