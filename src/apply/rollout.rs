//! Rollout: carry out the container changes of a plan, service by service in
//! dependency order, in batches (update_config.parallelism, delay), each new
//! replica gated on its health, with failure_action (rollback by default) when
//! too many fail. Changes on different machines run concurrently.
//!
//! A replaced container is not removed: it is stopped and kept as the slot's
//! previous release, so `hoist rollback` (and an automatic rollback) can start it
//! again without the old compose file or the old image tag.
//!
//! A [`Hook`] lets a load balancer follow the rollout: a replica joins only once
//! it is ready, and leaves before it is stopped.

use super::ops::{self, HealthGate};
use super::progress::Progress;
use anyhow::{Result, anyhow};
use bollard::Docker;
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What to do when more replicas fail than max_failure_ratio allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// hoist's default when update_config says nothing: undo this service's changes.
    Rollback,
    /// Stop the rollout where it is and fail.
    Pause,
    /// Keep going; report the failures at the end.
    Continue,
}

/// update_config (or rollback_config) of one service, resolved to defaults.
#[derive(Debug, Clone)]
pub struct UpdatePolicy {
    /// Replicas changed at once; 0 means all at once.
    pub parallelism: usize,
    pub delay: Duration,
    pub failure_action: FailureAction,
    pub max_failure_ratio: f64,
}

/// One container change, as planned.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new replica for a slot that has none.
    Create {
        machine: String,
        slot: u32,
        name: String,
        request: Value,
        extra_networks: Vec<(String, Value)>,
    },
    /// The slot's container exists with the right spec but is stopped.
    Start {
        machine: String,
        slot: u32,
        id: String,
    },
    /// The slot's container has another spec: bring up the new one, retire the old.
    Replace {
        machine: String,
        slot: u32,
        old_id: String,
        name: String,
        request: Value,
        extra_networks: Vec<(String, Value)>,
        /// Start the new replica before stopping the old (no downtime) — only when
        /// both can run at once (no fixed host port, no single-writer volume).
        start_first: bool,
    },
    /// A container the file no longer wants (scale down, removed service, duplicate,
    /// or a previous release beyond the one kept for rollback).
    Remove {
        machine: String,
        slot: u32,
        id: String,
        stop_first: bool,
    },
}

impl Change {
    pub fn machine(&self) -> &str {
        match self {
            Change::Create { machine, .. }
            | Change::Start { machine, .. }
            | Change::Replace { machine, .. }
            | Change::Remove { machine, .. } => machine,
        }
    }

    fn slot(&self) -> u32 {
        match self {
            Change::Create { slot, .. }
            | Change::Start { slot, .. }
            | Change::Replace { slot, .. }
            | Change::Remove { slot, .. } => *slot,
        }
    }
}

/// One service's part of a rollout.
#[derive(Debug, Clone)]
pub struct ServiceRollout {
    pub service: String,
    pub update: UpdatePolicy,
    pub rollback: UpdatePolicy,
    pub gate: HealthGate,
    /// stop_grace_period.
    pub stop_grace: Duration,
    /// Services that must have rolled out for this one to go (depends_on with
    /// `required: true`); if one failed, this one is skipped.
    pub needs: Vec<String>,
    /// Every service it depends on: it starts only after they are done.
    pub after: Vec<String>,
    /// Secrets and configs placed in every new container before it starts.
    pub files: Vec<ops::FileInContainer>,
    pub changes: Vec<Change>,
}

/// How one change ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub machine: String,
    pub slot: u32,
    pub result: Result<String, String>,
}

/// The end of a rollout, service by service.
#[derive(Debug, Default)]
pub struct Report {
    pub services: Vec<(String, Vec<Outcome>, Verdict)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Failed, and this service's changes were undone.
    RolledBack(String),
    /// Failed and stopped there (failure_action: pause).
    Paused(String),
    /// Failed replicas remain (failure_action: continue).
    Degraded(String),
    /// Not attempted because an earlier service failed.
    Skipped,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.services.iter().all(|(_, _, v)| *v == Verdict::Done)
    }
}

/// What was done to a slot, so it can be undone.
enum Done {
    Created {
        machine: String,
        id: String,
    },
    Replaced {
        machine: String,
        old_id: String,
        new_id: String,
    },
    Nothing,
}

/// A replica as a [`Hook`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaRef<'a> {
    pub service: &'a str,
    pub slot: u32,
    pub machine: &'a str,
    /// The container ID.
    pub id: &'a str,
}

/// Called by the rollout around each replica's life, and awaited: the rollout
/// goes on only when the hook returns. `after_ready`: the replica has proven
/// itself (healthy, or running for `monitor`) and may take traffic.
/// `before_stop`: the replica is about to be stopped and must take no more.
/// The ingress (src/ingress) re-renders and reloads every load balancer here.
pub trait Hook: Send + Sync {
    fn after_ready<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()>;
    fn before_stop<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()>;
}

/// No load balancer to tell.
pub struct NoHook;

impl Hook for NoHook {
    fn after_ready<'a>(&'a self, _: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn before_stop<'a>(&'a self, _: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Runs the services' changes in waves: every service whose dependencies are
/// done goes at once (independent services roll out side by side, as Swarm
/// does); a service waits for all it `depends_on`. A service that fails stops
/// the services that need it; the others go on. The report keeps the given order.
pub async fn run(
    services: &[ServiceRollout],
    engines: &HashMap<String, Docker>,
    progress: &Progress,
) -> Report {
    run_with(services, engines, progress, &NoHook).await
}

/// [`run`], telling `hook` when replicas become ready and before they stop.
pub async fn run_with(
    services: &[ServiceRollout],
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
) -> Report {
    let names: HashSet<&str> = services.iter().map(|s| s.service.as_str()).collect();
    let mut finished: HashMap<&str, (Vec<Outcome>, Verdict)> = HashMap::new();
    let mut pending: Vec<&ServiceRollout> = services.iter().collect();
    while !pending.is_empty() {
        let ready_now = |s: &&ServiceRollout| {
            s.after
                .iter()
                .all(|d| !names.contains(d.as_str()) || finished.contains_key(d.as_str()))
        };
        let (mut wave, rest): (Vec<&ServiceRollout>, Vec<&ServiceRollout>) =
            pending.iter().copied().partition(|s| ready_now(s));
        let mut rest = rest;
        if wave.is_empty() {
            // A dependency cycle (the scheduler refuses those): go in the given order.
            wave.push(rest.remove(0));
        }
        pending = rest;
        let runs = wave.iter().map(|svc| {
            let blocked = svc.needs.iter().any(|n| {
                finished
                    .get(n.as_str())
                    .is_some_and(|(_, v)| !matches!(v, Verdict::Done | Verdict::Degraded(_)))
            });
            async move {
                if blocked {
                    (svc.service.as_str(), (Vec::new(), Verdict::Skipped))
                } else {
                    (
                        svc.service.as_str(),
                        run_service(svc, engines, progress, hook).await,
                    )
                }
            }
        });
        for (name, result) in futures_util::future::join_all(runs).await {
            finished.insert(name, result);
        }
    }
    let mut report = Report::default();
    for svc in services {
        let (outcomes, verdict) = finished
            .remove(svc.service.as_str())
            .unwrap_or((Vec::new(), Verdict::Skipped));
        report
            .services
            .push((svc.service.clone(), outcomes, verdict));
    }
    report
}

async fn run_service(
    svc: &ServiceRollout,
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
) -> (Vec<Outcome>, Verdict) {
    let (removals, updates): (Vec<&Change>, Vec<&Change>) = svc
        .changes
        .iter()
        .partition(|c| matches!(c, Change::Remove { .. }));
    let total = updates.len();
    // New replicas replace nothing, so they all start at once (as Swarm does);
    // update_config.parallelism paces the replacements of running replicas.
    let (fresh, replacing): (Vec<&Change>, Vec<&Change>) = updates
        .into_iter()
        .partition(|c| !matches!(c, Change::Replace { .. }));
    let batch = if svc.update.parallelism == 0 {
        replacing.len().max(1)
    } else {
        svc.update.parallelism
    };
    let mut batches: Vec<Vec<&Change>> = Vec::new();
    if !fresh.is_empty() {
        batches.push(fresh);
    }
    batches.extend(replacing.chunks(batch).map(<[&Change]>::to_vec));
    let mut outcomes = Vec::new();
    let mut done: Vec<Done> = Vec::new();
    let mut failures = 0usize;
    for (i, chunk) in batches.iter().enumerate() {
        if i > 0 && !svc.update.delay.is_zero() {
            progress.note(&format!(
                "{}: waiting {}s before the next batch",
                svc.service,
                svc.update.delay.as_secs()
            ));
            tokio::time::sleep(svc.update.delay).await;
        }
        let results = futures_util::future::join_all(
            chunk
                .iter()
                .map(|c| apply_change(svc, c, engines, progress, hook)),
        )
        .await;
        for (change, (outcome, record)) in chunk.iter().zip(results) {
            if outcome.is_err() {
                failures += 1;
            }
            outcomes.push(Outcome {
                machine: change.machine().to_string(),
                slot: change.slot(),
                result: outcome,
            });
            done.push(record);
        }
        let ratio = failures as f64 / total.max(1) as f64;
        if failures > 0 && ratio > svc.update.max_failure_ratio {
            let why = format!(
                "{failures} of {total} replicas failed (max_failure_ratio {})",
                svc.update.max_failure_ratio
            );
            match svc.update.failure_action {
                FailureAction::Continue => {}
                FailureAction::Pause => return (outcomes, Verdict::Paused(why)),
                FailureAction::Rollback => {
                    progress.note(&format!("{}: {why}; rolling back", svc.service));
                    undo(svc, done, engines, progress, hook).await;
                    return (outcomes, Verdict::RolledBack(why));
                }
            }
        }
    }
    for change in removals {
        let (outcome, _) = apply_change(svc, change, engines, progress, hook).await;
        outcomes.push(Outcome {
            machine: change.machine().to_string(),
            slot: change.slot(),
            result: outcome,
        });
    }
    if failures > 0 {
        let why = format!("{failures} of {total} replicas failed");
        return (outcomes, Verdict::Degraded(why));
    }
    (outcomes, Verdict::Done)
}

fn key(service: &str, slot: u32, machine: &str) -> String {
    format!("{service}.{slot}@{machine}")
}

async fn apply_change(
    svc: &ServiceRollout,
    change: &Change,
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
) -> (Result<String, String>, Done) {
    let machine = change.machine();
    let at = |id| ReplicaRef {
        service: &svc.service,
        slot: change.slot(),
        machine,
        id,
    };
    let k = key(&svc.service, change.slot(), machine);
    let Some(docker) = engines.get(machine) else {
        let e = format!("machine {machine} is not connected");
        progress.finish(&k, &format!("failed: {e}"));
        return (Err(e), Done::Nothing);
    };
    let (result, record) = match change {
        Change::Create {
            name,
            request,
            extra_networks,
            ..
        } => {
            progress.step(&k, "creating");
            let new = NewReplica {
                name,
                request,
                extra_networks,
            };
            match create_and_prove(svc, docker, &new, &k, progress, hook, at("")).await {
                Ok(id) => (
                    Ok("created".to_string()),
                    Done::Created {
                        machine: machine.into(),
                        id,
                    },
                ),
                Err((e, id)) => (
                    Err(e),
                    id.map(|id| Done::Created {
                        machine: machine.into(),
                        id,
                    })
                    .unwrap_or(Done::Nothing),
                ),
            }
        }
        Change::Start { id, .. } => {
            progress.step(&k, "starting");
            let r = async {
                ops::start(docker, id).await?;
                ops::wait_ready(docker, id, svc.gate).await?;
                hook.after_ready(at(id)).await;
                Ok::<(), anyhow::Error>(())
            }
            .await;
            (
                r.map(|_| "started".to_string())
                    .map_err(|e| format!("{e:#}")),
                Done::Nothing,
            )
        }
        Change::Replace {
            old_id,
            name,
            request,
            extra_networks,
            start_first,
            ..
        } => {
            let new = NewReplica {
                name,
                request,
                extra_networks,
            };
            replace(
                svc,
                docker,
                old_id,
                &new,
                *start_first,
                &k,
                progress,
                hook,
                at(""),
            )
            .await
        }
        Change::Remove { id, stop_first, .. } => {
            progress.step(&k, "removing");
            let r = async {
                if *stop_first {
                    hook.before_stop(at(id)).await;
                    ops::stop(docker, id, Some(svc.stop_grace)).await?;
                }
                ops::remove(docker, id).await
            }
            .await;
            (
                r.map(|_| "removed".to_string())
                    .map_err(|e| format!("{e:#}")),
                Done::Nothing,
            )
        }
    };
    match &result {
        Ok(m) => progress.finish(&k, m),
        Err(e) => progress.finish(&k, &format!("FAILED: {e}")),
    }
    (result, record)
}

/// The container a Create or Replace brings up.
struct NewReplica<'a> {
    name: &'a str,
    request: &'a Value,
    extra_networks: &'a [(String, Value)],
}

/// Creates, starts and health-gates a new container, then tells the hook it is
/// ready (`at` names the slot; its id is filled in here). On failure the error
/// comes with the new container's ID (if it got one) so the caller can clean up.
async fn create_and_prove(
    svc: &ServiceRollout,
    docker: &Docker,
    new: &NewReplica<'_>,
    k: &str,
    progress: &Progress,
    hook: &dyn Hook,
    at: ReplicaRef<'_>,
) -> Result<String, (String, Option<String>)> {
    let id = ops::create(docker, new.name, new.request, new.extra_networks)
        .await
        .map_err(|e| (format!("{e:#}"), None))?;
    if let Err(e) = ops::copy_files(docker, &id, &svc.files).await {
        return Err((format!("{e:#}"), Some(id)));
    }
    progress.step(k, "starting");
    if let Err(e) = ops::start(docker, &id).await {
        return Err((format!("{e:#}"), Some(id)));
    }
    progress.step(k, "waiting until ready");
    match ops::wait_ready(docker, &id, svc.gate).await {
        Ok(()) => {
            hook.after_ready(ReplicaRef { id: &id, ..at }).await;
            Ok(id)
        }
        Err(e) => Err((format!("{e:#}"), Some(id))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn replace(
    svc: &ServiceRollout,
    docker: &Docker,
    old_id: &str,
    new: &NewReplica<'_>,
    start_first: bool,
    k: &str,
    progress: &Progress,
    hook: &dyn Hook,
    at: ReplicaRef<'_>,
) -> (Result<String, String>, Done) {
    let replaced = |new_id: String| Done::Replaced {
        machine: at.machine.into(),
        old_id: old_id.into(),
        new_id,
    };
    if start_first {
        progress.step(k, "starting new replica beside the old (start-first)");
        match create_and_prove(svc, docker, new, k, progress, hook, at).await {
            Ok(new_id) => {
                progress.step(k, "stopping the previous replica");
                hook.before_stop(ReplicaRef { id: old_id, ..at }).await;
                if let Err(e) = ops::stop(docker, old_id, Some(svc.stop_grace)).await {
                    return (Err(format!("{e:#}")), replaced(new_id));
                }
                (Ok("replaced (start-first)".into()), replaced(new_id))
            }
            Err((e, new_id)) => {
                // The old replica never stopped: just drop the failed new one.
                if let Some(id) = new_id {
                    let _ = ops::remove(docker, &id).await;
                }
                (Err(e), Done::Nothing)
            }
        }
    } else {
        progress.step(k, "stopping the previous replica (stop-first)");
        hook.before_stop(ReplicaRef { id: old_id, ..at }).await;
        if let Err(e) = ops::stop(docker, old_id, Some(svc.stop_grace)).await {
            return (Err(format!("{e:#}")), Done::Nothing);
        }
        match create_and_prove(svc, docker, new, k, progress, hook, at).await {
            Ok(new_id) => (Ok("replaced (stop-first)".into()), replaced(new_id)),
            Err((e, new_id)) => {
                // Bring the old replica straight back; the service-level
                // rollback then has nothing left to do for this slot.
                if let Some(id) = new_id {
                    let _ = ops::remove(docker, &id).await;
                }
                if ops::start(docker, old_id).await.is_ok() {
                    hook.after_ready(ReplicaRef { id: old_id, ..at }).await;
                }
                (Err(e), Done::Nothing)
            }
        }
    }
}

/// Undoes this run's changes of one service: previous replicas started again,
/// new ones removed, following rollback_config's parallelism.
async fn undo(
    svc: &ServiceRollout,
    done: Vec<Done>,
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
) {
    let batch = if svc.rollback.parallelism == 0 {
        done.len().max(1)
    } else {
        svc.rollback.parallelism
    };
    let items: Vec<Done> = done
        .into_iter()
        .filter(|d| !matches!(d, Done::Nothing))
        .collect();
    for (i, chunk) in items.chunks(batch).enumerate() {
        if i > 0 && !svc.rollback.delay.is_zero() {
            tokio::time::sleep(svc.rollback.delay).await;
        }
        futures_util::future::join_all(chunk.iter().map(|d| async move {
            let r: Result<()> = async {
                match d {
                    Done::Created { machine, id } => {
                        let docker = engines
                            .get(machine)
                            .ok_or_else(|| anyhow!("{machine} not connected"))?;
                        hook.before_stop(replica(svc, machine, id)).await;
                        ops::remove(docker, id).await
                    }
                    Done::Replaced {
                        machine,
                        old_id,
                        new_id,
                    } => {
                        let docker = engines
                            .get(machine)
                            .ok_or_else(|| anyhow!("{machine} not connected"))?;
                        ops::start(docker, old_id).await?;
                        ops::wait_ready(docker, old_id, svc.gate).await?;
                        hook.after_ready(replica(svc, machine, old_id)).await;
                        hook.before_stop(replica(svc, machine, new_id)).await;
                        ops::stop(docker, new_id, Some(svc.stop_grace)).await?;
                        ops::remove(docker, new_id).await
                    }
                    Done::Nothing => Ok(()),
                }
            }
            .await;
            if let Err(e) = r {
                progress.note(&format!("{}: rollback step failed: {e:#}", svc.service));
            }
        }))
        .await;
    }
}

/// A replica undo touches; the slot is not known there, and a load balancer
/// needs only the container.
fn replica<'a>(svc: &'a ServiceRollout, machine: &'a str, id: &'a str) -> ReplicaRef<'a> {
    ReplicaRef {
        service: &svc.service,
        slot: 0,
        machine,
        id,
    }
}
