//! One deploy at a time per project: a lock held on the machines themselves.
//!
//! There is no control plane to hold a lock, so it lives where the state lives:
//! a small labelled volume `hoist-lock-<project>` on every machine, carrying the
//! holder and the time. Volume creation is serialized per name by the engine and
//! returns the existing volume when there is one, so the holder's nonce in the
//! answer tells whether we won. Machines are locked in name order, so two deploys
//! cannot each hold half the fleet; a partial win is given back at once.

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
        }
    }

    /// True when the holder ran on this computer and its process is gone: the
    /// deploy was killed, and nobody can be hurt by taking the lock over.
    fn is_dead_local(&self) -> bool {
        let Some(pid) = self.pid else { return false };
        if self.host.is_empty() || self.host != local_host() || pid == std::process::id() as i32 {
            return false;
        }
        // SAFETY: signal 0 only checks that the pid exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        !alive
    }
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
        if h.is_dead_local() {
            tell!("hoist: taking over the lock left by {h}: that process is gone");
            clear(&ordered, project).await?;
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "another deploy holds the lock of project {project}: {h}.\n\
                 Wait for it (--lock-wait 5m), or if that deploy is dead, clear the lock with `hoist unlock`."
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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
    let labels = HashMap::from([
        (LOCK_LABEL.to_string(), project.to_string()),
        (HOLDER_LABEL.to_string(), holder.to_string()),
        (SINCE_LABEL.to_string(), now_rfc3339()),
        (NONCE_LABEL.to_string(), nonce.to_string()),
        (HOST_LABEL.to_string(), local_host()),
        (PID_LABEL.to_string(), std::process::id().to_string()),
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

/// Removes the project's lock wherever it is, whoever holds it (`hoist unlock`).
pub async fn clear(machines: &[(String, Docker)], project: &str) -> Result<usize> {
    let mut n = 0;
    for (name, docker) in machines {
        let vname = volume_name(project);
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
