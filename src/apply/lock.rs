//! One deploy at a time per project: a lock held on the machines themselves.
//!
//! There is no control plane to hold a lock, so it lives where the state lives:
//! a small labelled volume `hoist-lock-<project>` on every machine, carrying the
//! holder and the time. Volume creation is serialized per name by the engine and
//! returns the existing volume when there is one, so the holder's nonce in the
//! answer tells whether we won. Machines are locked in name order, so two deploys
//! cannot each hold half the fleet; a partial win is given back at once.
//!
//! A lock whose holder is provably dead — same computer (boot ID), same PID namespace, and
//! its process gone or its pid reused by a process started later — is taken over; any other
//! lock waits for `hoist unlock`. Taking over goes through a second volume named after the
//! dead holder's nonce, so of several waiters exactly one removes the dead lock on a machine,
//! and it removes only a lock that still carries that nonce (issue 17, findings 4 and 5).

use anyhow::{Result, bail};
use bollard::Docker;
use bollard::models::VolumeCreateRequest;
use std::collections::HashMap;
use std::time::Duration;

pub const LOCK_LABEL: &str = "io.hoist.lock";
const HOLDER_LABEL: &str = "io.hoist.lock.holder";
const SINCE_LABEL: &str = "io.hoist.lock.since";
const NONCE_LABEL: &str = "io.hoist.lock.nonce";
/// Host name and pid of the holder, so a lock left by a dead process on this
/// same computer can be recognised and taken over.
const HOST_LABEL: &str = "io.hoist.lock.host";
const PID_LABEL: &str = "io.hoist.lock.pid";
/// The kernel's boot ID, the holder's PID namespace and its process start time (clock ticks
/// since boot): a pid means the same process only with all three equal. Two containers share
/// a host name and a boot ID, not a PID namespace.
const BOOT_LABEL: &str = "io.hoist.lock.boot";
const PIDNS_LABEL: &str = "io.hoist.lock.pidns";
const START_LABEL: &str = "io.hoist.lock.start";
/// On a takeover volume: the project whose dead lock is being removed.
const TAKEOVER_LABEL: &str = "io.hoist.lock.takeover";

pub fn volume_name(project: &str) -> String {
    format!("hoist-lock-{project}")
}

/// Who holds a lock and since when, as written on the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub machine: String,
    pub holder: String,
    pub since: String,
    host: String,
    pid: Option<i32>,
    nonce: String,
    boot: String,
    pidns: String,
    start: String,
}

/// Whether a lock's holder still runs, as far as this computer can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its process runs here (same computer, same PID namespace, same start time).
    Alive,
    /// It ran here and its process is gone (or the pid now belongs to a later process).
    Dead,
    /// It ran on another computer or in another PID namespace (or wrote no identity).
    Unknown,
}

impl Holder {
    fn from_labels(machine: &str, labels: &std::collections::HashMap<String, String>) -> Holder {
        Holder {
            machine: machine.to_string(),
            holder: labels
                .get(HOLDER_LABEL)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            since: labels
                .get(SINCE_LABEL)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            host: labels.get(HOST_LABEL).cloned().unwrap_or_default(),
            pid: labels.get(PID_LABEL).and_then(|p| p.parse().ok()),
            nonce: labels.get(NONCE_LABEL).cloned().unwrap_or_default(),
            boot: labels.get(BOOT_LABEL).cloned().unwrap_or_default(),
            pidns: labels.get(PIDNS_LABEL).cloned().unwrap_or_default(),
            start: labels.get(START_LABEL).cloned().unwrap_or_default(),
        }
    }

    /// Whether the holder still runs. Dead only when it provably ran on this computer, in
    /// this PID namespace: a pid alone names different processes in two containers with
    /// the same host name (issue 17, finding 4).
    pub fn liveness(&self) -> Liveness {
        let here = Identity::local();
        let Some(pid) = self.pid else {
            return Liveness::Unknown;
        };
        if self.host.is_empty()
            || self.boot.is_empty()
            || self.pidns.is_empty()
            || self.start.is_empty()
            || self.host != here.host
            || self.boot != here.boot
            || self.pidns != here.pidns
        {
            return Liveness::Unknown;
        }
        match process_start(pid) {
            Some(start) if start == self.start => Liveness::Alive,
            // The pid now belongs to a process started later.
            Some(_) => Liveness::Dead,
            // No /proc entry to read. With /proc mounted `hidepid`, another user's process is
            // hidden but still answers signal 0 (EPERM): then it is taken for alive.
            None => {
                // SAFETY: signal 0 only checks that the pid exists.
                let exists = unsafe { libc::kill(pid, 0) } == 0
                    || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
                if exists {
                    Liveness::Alive
                } else {
                    Liveness::Dead
                }
            }
        }
    }

    /// The pid of the holder, when it is a process on this computer.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }
}

/// What tells this process apart from every other, on this computer and elsewhere.
struct Identity {
    host: String,
    boot: String,
    pidns: String,
    start: String,
}

impl Identity {
    fn local() -> Identity {
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
        Identity {
            host: local_host(),
            boot: read("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            pidns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            start: process_start(std::process::id() as i32).unwrap_or_default(),
        }
    }
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
fn process_start(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_string)
}

fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (since {}, seen on {})",
            self.holder, self.since, self.machine
        )
    }
}

/// The lock, held on a set of machines until `release`.
pub struct Lock {
    project: String,
    nonce: String,
    held_on: Vec<(String, Docker)>,
}

/// A description of this process for the lock: `user@host pid N (hoist up)`.
pub fn describe_self(verb: &str) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = local_host();
    format!("{user}@{host} pid {} (hoist {verb})", std::process::id())
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::apply::time::rfc3339(secs)
}

/// Takes the project's lock on every machine given (in name order), waiting up
/// to `wait` for a holder to let go. Fails naming the holder.
pub async fn acquire(
    machines: &[(String, Docker)],
    project: &str,
    holder: &str,
    wait: Duration,
) -> Result<Lock> {
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let mut ordered: Vec<(String, Docker)> = machines.to_vec();
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    let deadline = tokio::time::Instant::now() + wait;
    // The dead holder whose lock this waiter already tried to take over, and when: another
    // waiter may be mid-takeover (it takes milliseconds), so further attempts retry for up to
    // TAKEOVER_GRACE whatever `wait` says; a takeover volume left by a killed waiter blocks
    // them until `hoist unlock`, and then the wait ends with that said. Never a spin.
    let mut tried: Option<(String, tokio::time::Instant)> = None;
    loop {
        let mut lock = Lock {
            project: project.to_string(),
            nonce: nonce.clone(),
            held_on: Vec::new(),
        };
        let mut blocked: Option<Holder> = None;
        for (name, docker) in &ordered {
            match try_one(docker, name, project, holder, &nonce).await? {
                None => lock.held_on.push((name.clone(), docker.clone())),
                Some(h) => {
                    blocked = Some(h);
                    break;
                }
            }
        }
        let Some(h) = blocked else {
            return Ok(lock);
        };
        lock.release().await;
        let dead = h.liveness() == Liveness::Dead;
        if dead {
            let now = tokio::time::Instant::now();
            let since = match &tried {
                Some((n, at)) if *n == h.nonce => Some(*at),
                _ => None,
            };
            if since.is_none() {
                tell!("hoist: taking over the lock left by {h}: that process is gone");
            }
            take_over(&ordered, project, &h.nonce, &nonce).await;
            match since {
                None => {
                    tried = Some((h.nonce.clone(), now));
                    continue;
                }
                Some(at) if now < at + TAKEOVER_GRACE => {
                    tokio::time::sleep(retry_delay()).await;
                    continue;
                }
                Some(_) => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            if dead {
                bail!(
                    "the lock of project {project} was left by {h}, which is gone, and another hoist is taking it over \
                     (or was interrupted doing so).\nRetry (--lock-wait 30s), or clear the lock with `hoist unlock`."
                );
            }
            bail!(
                "another deploy holds the lock of project {project}: {h}.\n\
                 Wait for it (--lock-wait 5m), or if that deploy is dead, clear the lock with `hoist unlock`."
            );
        }
        // Jittered, so waiters that started together do not retry in step.
        tokio::time::sleep(retry_delay()).await;
    }
}

/// How long a waiter keeps retrying the takeover of a dead holder's lock that another waiter
/// is taking over, even past `--lock-wait`.
const TAKEOVER_GRACE: Duration = Duration::from_secs(10);

/// 250–750 ms, drawn from the process's random hasher keys (no extra dependency).
fn retry_delay() -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    Duration::from_millis(250 + h.finish() % 501)
}

/// The volume that makes one waiter the remover of a dead holder's lock on a machine.
fn takeover_volume(project: &str, dead_nonce: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(dead_nonce.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.takeover-{hex}", volume_name(project))
}

/// Removes the lock left by the dead holder `dead_nonce` on every machine where it still is.
/// On each machine, only the waiter whose nonce wins the takeover volume removes it, and only
/// while it carries the dead nonce: a second waiter never deletes a lock the first just took.
async fn take_over(machines: &[(String, Docker)], project: &str, dead_nonce: &str, nonce: &str) {
    let name = volume_name(project);
    let guard = takeover_volume(project, dead_nonce);
    for (_, docker) in machines {
        let labels = HashMap::from([
            (TAKEOVER_LABEL.to_string(), project.to_string()),
            (NONCE_LABEL.to_string(), nonce.to_string()),
        ]);
        let won = match docker
            .create_volume(VolumeCreateRequest {
                name: Some(guard.clone()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
        {
            Ok(v) => v.labels.get(NONCE_LABEL).map(String::as_str) == Some(nonce),
            Err(_) => false,
        };
        if !won {
            continue;
        }
        if let Ok(v) = docker.inspect_volume(&name).await
            && v.labels.get(NONCE_LABEL).map(String::as_str) == Some(dead_nonce)
        {
            let _ = docker
                .remove_volume(
                    &name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
        let _ = docker
            .remove_volume(
                &guard,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await;
    }
}

/// Tries to take the lock on one machine; `Some(holder)` when someone else has it.
async fn try_one(
    docker: &Docker,
    machine: &str,
    project: &str,
    holder: &str,
    nonce: &str,
) -> Result<Option<Holder>> {
    let me = Identity::local();
    let labels = HashMap::from([
        (LOCK_LABEL.to_string(), project.to_string()),
        (HOLDER_LABEL.to_string(), holder.to_string()),
        (SINCE_LABEL.to_string(), now_rfc3339()),
        (NONCE_LABEL.to_string(), nonce.to_string()),
        (HOST_LABEL.to_string(), me.host),
        (PID_LABEL.to_string(), std::process::id().to_string()),
        (BOOT_LABEL.to_string(), me.boot),
        (PIDNS_LABEL.to_string(), me.pidns),
        (START_LABEL.to_string(), me.start),
    ]);
    let name = volume_name(project);
    let v = match docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
    {
        Ok(v) => v,
        Err(_) => docker
            .inspect_volume(&name)
            .await
            .map_err(|e| anyhow::anyhow!("{machine}: cannot take the deploy lock: {e}"))?,
    };
    // An engine that answers a create of an existing volume without its labels (seen on 20.10
    // after the engine restarted): read them back, or a dead holder's lock looks like no one's
    // and is never taken over.
    let v = if v.labels.contains_key(NONCE_LABEL) {
        v
    } else {
        docker.inspect_volume(&name).await.unwrap_or(v)
    };
    if v.labels.get(NONCE_LABEL).map(String::as_str) == Some(nonce) {
        return Ok(None);
    }
    Ok(Some(Holder::from_labels(machine, &v.labels)))
}

impl Lock {
    /// Gives the lock back on every machine where we hold it.
    pub async fn release(self) {
        let name = volume_name(&self.project);
        for (_, docker) in &self.held_on {
            if let Ok(v) = docker.inspect_volume(&name).await
                && v.labels.get(NONCE_LABEL).map(String::as_str) == Some(self.nonce.as_str())
            {
                let _ = docker
                    .remove_volume(
                        &name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
        }
    }
}

/// Reads who holds the project's lock on the given machines.
pub async fn holders(machines: &[(String, Docker)], project: &str) -> Vec<Holder> {
    let mut out = Vec::new();
    for (name, docker) in machines {
        if let Ok(v) = docker.inspect_volume(&volume_name(project)).await {
            out.push(Holder::from_labels(name, &v.labels));
        }
    }
    out
}

/// Removes the project's lock wherever it is, whoever holds it (`hoist unlock`), with any
/// takeover volume a waiter killed mid-takeover left.
pub async fn clear(machines: &[(String, Docker)], project: &str) -> Result<usize> {
    let mut n = 0;
    for (name, docker) in machines {
        let vname = volume_name(project);
        let takeovers = docker
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{TAKEOVER_LABEL}={project}")],
                )])),
            }))
            .await
            .map(|r| r.volumes.unwrap_or_default())
            .unwrap_or_default();
        for v in takeovers {
            let _ = docker
                .remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await;
        }
        if docker.inspect_volume(&vname).await.is_ok() {
            docker
                .remove_volume(
                    &vname,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{name}: cannot remove the lock: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_of_self(pid: i32, start: &str) -> HashMap<String, String> {
        let me = Identity::local();
        HashMap::from([
            (HOST_LABEL.to_string(), me.host),
            (PID_LABEL.to_string(), pid.to_string()),
            (BOOT_LABEL.to_string(), me.boot),
            (PIDNS_LABEL.to_string(), me.pidns),
            (START_LABEL.to_string(), start.to_string()),
            (NONCE_LABEL.to_string(), "n".to_string()),
        ])
    }

    /// Issue 17, finding 4: a holder is dead only when it provably ran here.
    #[test]
    fn liveness_needs_the_same_computer_namespace_and_process() {
        let me = std::process::id() as i32;
        let start = process_start(me).unwrap();
        let alive = Holder::from_labels("m1", &labels_of_self(me, &start));
        assert_eq!(alive.liveness(), Liveness::Alive);
        // The same pid started at another time: the pid was reused, the holder is gone.
        let reused = Holder::from_labels("m1", &labels_of_self(me, "1"));
        assert_eq!(reused.liveness(), Liveness::Dead);
        // A pid absent here, written from another PID namespace (another container with the
        // same host name): nobody can tell, so it is not taken over.
        let absent = i32::MAX - 7;
        let mut other_ns = labels_of_self(absent, "1");
        other_ns.insert(PIDNS_LABEL.into(), "pid:[1]".into());
        assert_eq!(
            Holder::from_labels("m1", &other_ns).liveness(),
            Liveness::Unknown
        );
        let mut other_boot = labels_of_self(absent, "1");
        other_boot.insert(BOOT_LABEL.into(), "another-boot".into());
        assert_eq!(
            Holder::from_labels("m1", &other_boot).liveness(),
            Liveness::Unknown
        );
        // A lock written before these labels existed (host and pid only) waits for unlock.
        let mut old = labels_of_self(absent, "1");
        old.remove(PIDNS_LABEL);
        old.remove(BOOT_LABEL);
        old.remove(START_LABEL);
        assert_eq!(
            Holder::from_labels("m1", &old).liveness(),
            Liveness::Unknown
        );
        assert_eq!(
            Holder::from_labels("m1", &labels_of_self(absent, "1")).liveness(),
            Liveness::Dead
        );
    }

    #[test]
    fn retry_delays_are_jittered_within_bounds() {
        let delays: std::collections::BTreeSet<Duration> = (0..32).map(|_| retry_delay()).collect();
        assert!(delays.iter().all(|d| (250..=750).contains(&d.as_millis())));
        assert!(delays.len() > 1, "no jitter: {delays:?}");
    }

    #[test]
    fn takeover_volumes_are_per_dead_holder() {
        assert_ne!(takeover_volume("p", "1-2"), takeover_volume("p", "1-3"));
        assert!(takeover_volume("shop", "1-2").starts_with("hoist-lock-shop.takeover-"));
    }
}
