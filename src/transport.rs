//! SSH transport: one multiplexed OpenSSH master per machine, and through it a
//! private local unix socket forwarded to the machine's docker socket.
//!
//! We drive the system `ssh` (via the `openssh` crate) rather than an SSH library
//! so that the user's `~/.ssh/config`, agent, ProxyJump, known_hosts and
//! certificates work exactly as they do for `ssh`. Host keys are always checked
//! (`StrictHostKeyChecking=yes`); a changed key is refused, never accepted.
//!
//! Forwarded sockets live under one private folder per hoist process (`Workdir`);
//! dropping it removes the folder. The masters themselves outlive the command for a
//! minute of idleness (`MasterCache`, like Ansible's `ControlPersist=60s`), so the
//! next `hoist plan`/`up`/`ps` skips the SSH handshakes; `HOIST_SSH_PERSIST=0` turns
//! that off, and then every master dies with the command, even after an error.

use crate::inventory::SshTarget;
use openssh::{ControlPersist, ForwardType, KnownHosts, Session, SessionBuilder, Socket};
use sha2::{Digest, Sha256};
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a machine could not be reached over SSH, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshFailure {
    /// No answer within the connect timeout (machine down, paused, or firewalled).
    Timeout,
    /// The host refused or could not be routed to.
    Unreachable(String),
    /// The host name does not resolve.
    UnknownHost(String),
    /// The server rejected our credentials.
    AuthRefused(String),
    /// The machine's host key differs from the one in known_hosts.
    HostKeyChanged,
    /// The machine's host key is not in known_hosts at all.
    HostKeyUnknown,
    /// Anything else ssh said.
    Other(String),
}

impl fmt::Display for SshFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshFailure::Timeout => write!(
                f,
                "ssh: no answer before the connect timeout; is the machine up and reachable on its SSH port?"
            ),
            SshFailure::Unreachable(m) => write!(
                f,
                "ssh: unreachable ({m}); check the address and that sshd runs"
            ),
            SshFailure::UnknownHost(m) => {
                write!(f, "ssh: {m}; check the destination or your ssh config")
            }
            SshFailure::AuthRefused(m) => write!(
                f,
                "ssh: authentication refused ({m}); check the user, the identity file or your ssh agent"
            ),
            SshFailure::HostKeyChanged => write!(
                f,
                "ssh: HOST KEY CHANGED — the machine's host key does not match known_hosts. hoist refuses to connect. \
                 If the machine was legitimately rebuilt, remove the old key with `ssh-keygen -R HOST` and connect once with ssh to verify the new one"
            ),
            SshFailure::HostKeyUnknown => write!(
                f,
                "ssh: the machine's host key is not in known_hosts; connect once with `ssh` to verify and record it (hoist never accepts unknown keys)"
            ),
            SshFailure::Other(m) => write!(f, "ssh: {m}"),
        }
    }
}

/// Reads what ssh wrote when it failed. Ssh reports through text only, so we
/// match the stable parts of its messages.
pub fn classify(ssh_output: &str) -> SshFailure {
    let text = ssh_output.trim();
    // The openssh crate prefixes ssh's own words with its summary; keep ssh's.
    let text = text
        .strip_prefix("failed to connect to the remote host: ")
        .unwrap_or(text);
    let last_line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("ssh: ")
        .to_string();
    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || text.contains("Host key for") && text.contains("has changed")
    {
        SshFailure::HostKeyChanged
    } else if text.contains("host key is known for")
        || text.contains("Host key verification failed")
    {
        SshFailure::HostKeyUnknown
    } else if text.contains("Permission denied") {
        SshFailure::AuthRefused(last_line)
    } else if text.contains("timed out")
        || text.contains("Connection timed out during banner exchange")
    {
        SshFailure::Timeout
    } else if text.contains("Could not resolve hostname")
        || text.contains("Name or service not known")
    {
        SshFailure::UnknownHost(last_line)
    } else if text.contains("Connection refused")
        || text.contains("No route to host")
        || text.contains("Network is unreachable")
        || text.contains("Connection closed by")
        || text.contains("Connection reset")
    {
        SshFailure::Unreachable(last_line)
    } else {
        SshFailure::Other(if last_line.is_empty() {
            "ssh failed without a message".into()
        } else {
            last_line
        })
    }
}

/// The private folder holding this process's ssh masters and forwarded sockets.
///
/// Unix socket paths are limited to ~104 bytes, so it sits in a short temp path
/// and sockets inside it are named by index, not by machine name.
pub struct Workdir {
    path: PathBuf,
}

/// Where hoist keeps its sockets: a short path, since unix socket paths are limited.
fn socket_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir() && p.as_os_str().len() < 40)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

impl Workdir {
    pub fn new() -> std::io::Result<Workdir> {
        let base = socket_base();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        sweep_stale(&base);
        let path = base.join(format!("hoist-{}-{:x}", std::process::id(), nanos));
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        Ok(Workdir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        kill_processes_mentioning(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the folders of hoist processes that no longer exist (killed with
/// SIGKILL, or the machine rebooted), with any ssh master still using them.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("hoist-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        // Only our own folders: in a shared /tmp another user can make a `hoist-<pid>-x`.
        if !owned_private_dir(&path) {
            continue;
        }
        kill_processes_mentioning(&path);
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// A real directory (not a symlink) owned by this user that nobody else can enter.
fn owned_private_dir(path: &Path) -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    let uid = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
}

/// Kills the ssh masters we started under `dir`, should one outlive a timeout or a panic:
/// processes of this user, running `ssh`, with an argument that is a path inside `dir`
/// (not merely starting with its name: `/tmp/hoist-1-a` is no part of `/tmp/hoist-1-ab`).
/// Our own pid is spared. Issue 17, finding 10: a prefix match over every process let
/// another local user steer hoist's SIGTERMs.
fn kill_processes_mentioning(dir: &Path) {
    let me = std::process::id().to_string();
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == me || !std::fs::metadata(entry.path()).is_ok_and(|m| m.uid() == uid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if is_our_master(&cmdline, dir)
            && let Ok(pid) = pid.parse::<i32>()
        {
            // SAFETY: kill(2) on a pid we just read; the worst case is a
            // signal to a process that already exited (ESRCH), which we ignore.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// True when a NUL-separated command line runs `ssh` with an argument naming a path inside
/// `dir` (as `-S PATH`, `-oControlPath=PATH`, `-E PATH` …).
fn is_our_master(cmdline: &[u8], dir: &Path) -> bool {
    let mut args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty());
    let is_ssh = args
        .next()
        .is_some_and(|argv0| argv0.rsplit(|b| *b == b'/').next() == Some(b"ssh".as_slice()));
    let mut inside = dir.as_os_str().as_encoded_bytes().to_vec();
    inside.push(b'/');
    is_ssh
        && args.any(|a| {
            let value = match a.iter().position(|b| *b == b'=') {
                Some(i) if a.starts_with(b"-o") => &a[i + 1..],
                _ => a,
            };
            value.starts_with(&inside)
        })
}

/// SSH masters kept between hoist commands: one per machine, each exiting on its own after
/// `idle` without a client (ssh's ControlPersist). A record file per machine (named by a hash of
/// how the machine is reached) holds the path of its master's control socket.
///
/// The folder is `hoist-ssh-<uid>` beside the workdirs, mode 0700; hoist refuses to use one it
/// does not own or that others can enter, and then keeps no master.
pub struct MasterCache {
    dir: PathBuf,
    idle: std::num::NonZeroUsize,
}

impl MasterCache {
    /// From `HOIST_SSH_PERSIST` (a duration such as `60s` or `5m`; `0` turns it off; default
    /// 60s). A value that is no duration is an error (issue 17, finding 6: `1e30` panicked);
    /// a folder hoist cannot trust means no cache.
    pub fn from_env() -> Result<Option<MasterCache>, String> {
        let idle = match std::env::var("HOIST_SSH_PERSIST") {
            Err(_) => Duration::from_secs(60),
            Ok(v) if matches!(v.trim(), "" | "0" | "off" | "no" | "false") => return Ok(None),
            Ok(v) => crate::duration::parse(v.trim()).map_err(|e| {
                format!("HOIST_SSH_PERSIST: {e}; give how long ssh masters stay idle, e.g. 60s or 5m, or 0 to keep none")
            })?,
        };
        Ok(Self::in_private_dir(idle))
    }

    fn in_private_dir(idle: Duration) -> Option<MasterCache> {
        let idle = std::num::NonZeroUsize::new(usize::try_from(idle.as_secs()).ok()?)?;
        // SAFETY: geteuid(2) cannot fail and has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let dir = socket_base().join(format!("hoist-ssh-{uid}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        let meta = std::fs::symlink_metadata(&dir).ok()?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return None;
        }
        Some(MasterCache { dir, idle })
    }

    /// The record of the master for `target` as ssh resolves it now (`resolved`: `ssh -G`
    /// output), so a master is not reused after the ssh config sends the same destination
    /// elsewhere (issue 17, finding 11).
    fn record(&self, target: &SshTarget, resolved: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(format!("{target:?}").as_bytes());
        h.update(resolved.as_bytes());
        let hex: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(format!("{hex}.ctl"))
    }

    /// The master left by an earlier command, if it still answers.
    async fn resume(&self, target: &SshTarget, resolved: &str) -> Option<Session> {
        let record = self.record(target, resolved);
        let ctl = PathBuf::from(std::fs::read_to_string(&record).ok()?.trim());
        if ctl.parent().and_then(Path::parent) != Some(self.dir.as_path()) {
            let _ = std::fs::remove_file(&record);
            return None;
        }
        let session = Session::resume_mux(ctl.clone().into_boxed_path(), None);
        if session.check().await.is_ok() {
            return Some(session);
        }
        self.forget(target, resolved, &ctl);
        None
    }

    fn keep(&self, target: &SshTarget, resolved: &str, ctl: &Path) {
        let record = self.record(target, resolved);
        let tmp = record.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, ctl.as_os_str().as_encoded_bytes()).is_ok() {
            let _ = std::fs::rename(&tmp, &record);
        }
    }

    fn forget(&self, target: &SshTarget, resolved: &str, ctl: &Path) {
        let record = self.record(target, resolved);
        if std::fs::read_to_string(&record).is_ok_and(|r| Path::new(r.trim()) == ctl) {
            let _ = std::fs::remove_file(&record);
        }
        if let Some(folder) = ctl
            .parent()
            .filter(|p| p.parent() == Some(self.dir.as_path()))
        {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// An open SSH master to one machine with the machine's docker socket forwarded
/// to a local unix socket.
pub struct Tunnel {
    session: Session,
    local_socket: PathBuf,
    remote_socket: PathBuf,
    /// Where the master is kept after this command, when it is (see [`MasterCache`]), with
    /// the target and its `ssh -G` resolution that key it.
    kept: Option<(std::sync::Arc<MasterCache>, SshTarget, String)>,
    /// The master was left by an earlier command (not yet proven to reach the machine).
    resumed: bool,
    /// Keeps the master from counting itself idle while this command runs (see
    /// [`heartbeat`]); stopped when the tunnel goes.
    _heartbeat: AbortOnDrop,
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often [`heartbeat`] asks the engine: well inside the master's idle minute.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// ssh's ControlPersist counts a master idle when no channel is open, and the listener of a
/// forwarded socket is not a channel: when a command leaves a machine alone for a minute (a
/// long health wait on another machine, a service that waits for another's health), the
/// master exits and the next request to that machine meets "connection refused". A `GET
/// /_ping` through the forwarded socket every 20 s opens a channel and keeps the master (and
/// its forward) alive for as long as the command needs it; the idle minute starts when the
/// command ends.
fn heartbeat(local_socket: PathBuf) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let ping = async {
                let mut s = tokio::net::UnixStream::connect(&local_socket).await?;
                s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                    .await?;
                let mut sink = Vec::new();
                s.read_to_end(&mut sink).await?;
                Ok::<_, std::io::Error>(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), ping).await;
        }
    }))
}

impl Tunnel {
    /// Connects to `target` (through a master kept by an earlier command when `cache` has one
    /// that answers) and forwards `remote_socket` to `workdir/d{index}.sock`.
    pub async fn open(
        target: &SshTarget,
        remote_socket: &str,
        workdir: &Workdir,
        index: usize,
        connect_timeout: Duration,
        cache: Option<&std::sync::Arc<MasterCache>>,
    ) -> Result<Tunnel, SshFailure> {
        // ssh's own reading of the target first: its errors (a bad port, an invalid host
        // name, a broken config) come out in its words, not as a missing log file
        // (issue 17, finding 14), and it keys the kept master.
        let resolved = resolve(target, connect_timeout).await?;
        let resumed = match cache {
            Some(c) => c.resume(target, &resolved).await,
            None => None,
        };
        let (session, resumed) = match resumed {
            Some(s) => (s, true),
            None => (
                Self::connect(target, workdir, connect_timeout, cache).await?,
                false,
            ),
        };
        let local_socket = workdir.path().join(format!("d{index}.sock"));
        let remote_socket = PathBuf::from(remote_socket);
        if let Err(e) = session
            .request_port_forward(
                ForwardType::Local,
                Socket::UnixSocket {
                    path: local_socket.clone().into(),
                },
                Socket::UnixSocket {
                    path: remote_socket.clone().into(),
                },
            )
            .await
        {
            let _ = session.close().await;
            return Err(SshFailure::Other(format!(
                "cannot forward the docker socket: {}",
                error_text(&e)
            )));
        }
        Ok(Tunnel {
            session,
            _heartbeat: heartbeat(local_socket.clone()),
            local_socket,
            remote_socket,
            kept: cache.map(|c| (std::sync::Arc::clone(c), target.clone(), resolved)),
            resumed,
        })
    }

    async fn connect(
        target: &SshTarget,
        workdir: &Workdir,
        connect_timeout: Duration,
        cache: Option<&std::sync::Arc<MasterCache>>,
    ) -> Result<Session, SshFailure> {
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(connect_timeout)
            .server_alive_interval(Duration::from_secs(5));
        match cache {
            Some(c) => builder
                .control_directory(&c.dir)
                .control_persist(ControlPersist::IdleFor(c.idle)),
            // A safety net only: Workdir's drop kills masters; this bounds a master
            // orphaned by SIGKILL of hoist to a minute.
            None => {
                builder
                    .control_directory(workdir.path())
                    .control_persist(ControlPersist::IdleFor(
                        std::num::NonZeroUsize::new(60).expect("non-zero"),
                    ))
            }
        };
        if let Some(user) = &target.user {
            builder.user(user.clone());
        }
        if let Some(port) = target.port {
            builder.port(port);
        }
        if let Some(identity) = &target.identity {
            builder.keyfile(identity);
        }
        if let Some(cfg) = &target.config_file {
            builder.config_file(cfg);
        }
        builder
            .connect_mux(&target.destination)
            .await
            .map_err(|e| classify(&error_text(&e)))
    }

    /// Whether the master was left by an earlier command: if the engine does not answer
    /// through it, [`Tunnel::discard`] it and connect afresh, since a kept master may have
    /// lost its machine without noticing yet (keepalives take up to 15 s).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The local end of the forwarded docker socket.
    pub fn socket(&self) -> &Path {
        &self.local_socket
    }

    /// Runs a shell command on the machine and returns (exit code, stdout, stderr).
    /// Used to explain engine failures (is the socket there? readable?), never to deploy.
    pub async fn shell(&self, command: &str) -> Result<(i32, String, String), String> {
        run_shell(&self.session, command).await
    }

    /// Ends this command's use of the master: it stays for the next command when kept (only
    /// this command's forwarded socket goes), else it stops.
    pub async fn close(self) {
        let Tunnel {
            session,
            local_socket,
            remote_socket,
            kept,
            ..
        } = self;
        match kept {
            Some((cache, target, resolved)) => {
                let _ = session
                    .close_port_forward(
                        ForwardType::Local,
                        Socket::UnixSocket {
                            path: local_socket.clone().into(),
                        },
                        Socket::UnixSocket {
                            path: remote_socket.into(),
                        },
                    )
                    .await;
                let (ctl, _log) = session.detach();
                cache.keep(&target, &resolved, &ctl);
            }
            None => {
                let _ = session.close().await;
            }
        }
        let _ = std::fs::remove_file(&local_socket);
    }

    /// Stops the master, kept or not: its machine stopped answering through it.
    pub async fn discard(self) {
        let Tunnel {
            session,
            local_socket,
            kept,
            ..
        } = self;
        let (ctl, _log) = session.detach();
        let session = Session::resume_mux(ctl.clone(), None);
        let _ = session.close().await;
        if let Some((cache, target, resolved)) = kept {
            cache.forget(&target, &resolved, &ctl);
        }
        let _ = std::fs::remove_file(&local_socket);
    }
}

/// An SSH session to one machine that only runs commands, with no socket forwarded: for
/// `hoist machines init`, which prepares a machine that may have no engine yet. Its master is
/// never kept for a later command (init may change the user's groups, which a kept login
/// would not see), and closing it stops it.
pub struct Shell {
    session: Session,
}

impl Shell {
    pub async fn open(
        target: &SshTarget,
        workdir: &Workdir,
        connect_timeout: Duration,
    ) -> Result<Shell, SshFailure> {
        resolve(target, connect_timeout).await?;
        let session = Tunnel::connect(target, workdir, connect_timeout, None).await?;
        Ok(Shell { session })
    }

    /// Runs `command` through the login shell; (exit code, stdout, stderr).
    pub async fn run(&self, command: &str) -> Result<(i32, String, String), String> {
        run_shell(&self.session, command).await
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// Stops the master an earlier command kept for `target`, if one answers: after `hoist machines
/// init` added the ssh user to a group, a kept login would go on without it.
pub async fn end_kept_master(target: &SshTarget, limit: Duration) {
    let Ok(Some(cache)) = MasterCache::from_env() else {
        return;
    };
    let Ok(resolved) = resolve(target, limit).await else {
        return;
    };
    if let Some(session) = cache.resume(target, &resolved).await {
        let (ctl, _log) = session.detach();
        let _ = Session::resume_mux(ctl.clone(), None).close().await;
        cache.forget(target, &resolved, &ctl);
    }
}

async fn run_shell(session: &Session, command: &str) -> Result<(i32, String, String), String> {
    let out = session
        .shell(command)
        .output()
        .await
        .map_err(|e| error_text(&e))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `ssh -G` for `target`: the configuration ssh would connect with (host, port, user,
/// proxies …), or ssh's own complaint about the target.
async fn resolve(target: &SshTarget, limit: Duration) -> Result<String, SshFailure> {
    let mut cmd = tokio::process::Command::new("ssh");
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
    if let Some(i) = &target.identity {
        cmd.arg("-i").arg(i);
    }
    cmd.arg("--")
        .arg(&target.destination)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(limit, cmd.output()).await {
        Err(_) => return Err(SshFailure::Timeout),
        Ok(Err(e)) => return Err(SshFailure::Other(format!("cannot run ssh: {e}"))),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        // A config error is told over several lines (`cfg line 2: Badly formatted port
        // number.` then `terminating, 1 bad configuration options`): keep them all.
        return Err(match classify(&said) {
            SshFailure::Other(_) => SshFailure::Other(
                said.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            known => known,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The whole chain of an openssh error, which is where ssh's own words are.
fn error_text(e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17, finding 10: only ssh processes with an argument inside the folder match.
    #[test]
    fn only_our_masters_are_matched() {
        let dir = Path::new("/tmp/hoist-12-ab");
        let line = |args: &[&str]| args.join("\0").into_bytes();
        assert!(is_our_master(
            &line(&["ssh", "-S", "/tmp/hoist-12-ab/x.sock", "-M", "h"]),
            dir
        ));
        assert!(is_our_master(
            &line(&["/usr/bin/ssh", "-oControlPath=/tmp/hoist-12-ab/c", "h"]),
            dir
        ));
        assert!(is_our_master(
            &line(&["ssh", "-E", "/tmp/hoist-12-ab/log", "h"]),
            dir
        ));
        // A longer folder name that starts with ours, the folder itself, another program.
        assert!(!is_our_master(
            &line(&["ssh", "-S", "/tmp/hoist-12-abc/x.sock"]),
            dir
        ));
        assert!(!is_our_master(&line(&["ssh", "/tmp/hoist-12-ab"]), dir));
        assert!(!is_our_master(
            &line(&["vim", "/tmp/hoist-12-ab/notes"]),
            dir
        ));
        assert!(!is_our_master(&line(&["/tmp/hoist-12-ab/ssh", "x"]), dir));
        assert!(!is_our_master(b"", dir));
    }

    /// Issue 17, finding 6: a huge HOIST_SSH_PERSIST is an error, not a panic.
    #[test]
    fn a_bad_persist_value_is_an_error() {
        // The only test touching this variable (tests in this binary run in threads).
        unsafe { std::env::set_var("HOIST_SSH_PERSIST", "1e30") };
        let e = MasterCache::from_env().err().expect("an error");
        unsafe { std::env::remove_var("HOIST_SSH_PERSIST") };
        assert!(
            e.starts_with("HOIST_SSH_PERSIST: \"1e30\" is too long"),
            "{e}"
        );
    }

    #[test]
    fn classifies_what_ssh_says() {
        let cases = [
            (
                "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.",
                SshFailure::HostKeyChanged,
            ),
            (
                "No ED25519 host key is known for 10.0.0.1 and you have requested strict checking.\nHost key verification failed.",
                SshFailure::HostKeyUnknown,
            ),
            (
                "root@10.0.0.1: Permission denied (publickey).",
                SshFailure::AuthRefused("root@10.0.0.1: Permission denied (publickey).".into()),
            ),
            (
                "ssh: connect to host 10.0.0.1 port 22: Connection timed out",
                SshFailure::Timeout,
            ),
            (
                "Connection timed out during banner exchange\nConnection to 10.0.0.1 port 22 timed out",
                SshFailure::Timeout,
            ),
            (
                "ssh: connect to host 10.0.0.1 port 22: Connection refused",
                SshFailure::Unreachable(
                    "connect to host 10.0.0.1 port 22: Connection refused".into(),
                ),
            ),
            (
                "ssh: Could not resolve hostname nope: Name or service not known",
                SshFailure::UnknownHost(
                    "Could not resolve hostname nope: Name or service not known".into(),
                ),
            ),
            ("something new", SshFailure::Other("something new".into())),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), want, "for {text:?}");
        }
    }
}
