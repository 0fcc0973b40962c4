//! `hoist rollback`: put every slot (or those of the named services) back on its
//! previous release — the stopped container kept when it was replaced — health-
//! gated, without the old compose file. Rolling back twice returns to where you were.

use super::Global;
use super::project_args::ProjectArgs;
use crate::apply::lock;
use crate::apply::ops::{self, HealthGate};
use crate::apply::progress::Progress;
use crate::apply::rollout::{Hook, ReplicaRef};
use crate::engine;
use crate::observe::{self, SeenContainer};
use anyhow::{Result, bail};
use bollard::Docker;
use clap::Args;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

/// Return services to their previous release, slot by slot, health-gated.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist rollback           # every service that has a previous release\n  hoist rollback web api   # only these\n\nExit codes: 0 rolled back, 1 error, a previous release that would not turn healthy, or a slot with no previous release while others of its service (or a service named) go back (those slots stay on their current release, and are named)."
)]
pub struct RollbackArgs {
    /// Only these services.
    services: Vec<String>,
    /// Slots switched at once.
    #[arg(long, default_value_t = 1)]
    parallelism: usize,
    /// How long a revived replica may take to become ready.
    #[arg(long, value_parser = super::parse_duration, default_value = "2m", value_name = "DURATION")]
    ready_timeout: Duration,
    /// Wait this long for another deploy's lock.
    #[arg(long, value_parser = super::parse_duration, default_value = "0s", value_name = "DURATION")]
    lock_wait: Duration,
}

/// One slot to switch back.
struct Swap {
    machine: String,
    current: SeenContainer,
    previous: SeenContainer,
}

pub async fn run(
    global: &Global,
    project_args: &ProjectArgs,
    args: RollbackArgs,
) -> Result<ExitCode> {
    let project = super::project_name(project_args)?;
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = rollback(&conns, project_args, &project, &args).await;
    conns.close().await;
    result
}

async fn rollback(
    conns: &engine::Connections,
    project_args: &ProjectArgs,
    project: &str,
    args: &RollbackArgs,
) -> Result<ExitCode> {
    let engines = conns.engines();
    if let Some((m, e)) = conns
        .results
        .iter()
        .find_map(|(m, r)| r.as_ref().err().map(|e| (m, e)))
    {
        bail!(
            "{}: {e}; rollback needs every machine (a slot there may need switching too)",
            m.name
        );
    }
    let held = lock::acquire(
        &engines,
        project,
        &lock::describe_self("rollback"),
        args.lock_wait,
    )
    .await?;
    let seen = observe::observe(conns, project).await;
    if let Err(e) = super::services::check_known(project_args, project, &seen, &args.services) {
        held.release().await;
        return Err(e);
    }
    let mut swaps = Vec::new();
    // Slots with no previous release: service → `service.slot@machine`.
    let mut without: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (machine, state) in &seen.machines {
        let Ok(state) = state else { continue };
        for current in observe::current(&state.containers) {
            if !args.services.is_empty() && !args.services.contains(&current.service) {
                continue;
            }
            let previous = state
                .containers
                .iter()
                .filter(|c| {
                    c.service == current.service && c.slot == current.slot && c.id != current.id
                })
                .filter(|c| c.spec_hash != current.spec_hash && c.state != "running")
                .max_by_key(|c| c.created);
            if let Some(previous) = previous {
                swaps.push(Swap {
                    machine: machine.clone(),
                    current: current.clone(),
                    previous: previous.clone(),
                });
            } else {
                let slot = current
                    .slot
                    .as_ref()
                    .map(|s| s.label_value())
                    .unwrap_or_default();
                without
                    .entry(current.service.clone())
                    .or_default()
                    .push(format!("{}.{slot}@{machine}", current.service));
            }
        }
    }
    // A slot left behind while others of its service go back (or of a service named on
    // the command line) is a rollback that did not happen: say which. A service never
    // updated, not named, simply has nothing to roll back.
    let mut left: Vec<String> = without
        .into_iter()
        .filter(|(service, _)| {
            args.services.contains(service) || swaps.iter().any(|s| &s.current.service == service)
        })
        .flat_map(|(_, slots)| slots)
        .collect();
    left.sort();
    let left_note = (!left.is_empty()).then(|| {
        format!(
            "hoist: could not roll back {}: no previous release is kept there (never replaced, \
             or its previous release was removed); they stay on their current release",
            left.join(", ")
        )
    });
    if swaps.is_empty() {
        held.release().await;
        match left_note {
            Some(note) => tell!("{note}"),
            None => tell!("hoist: no previous release to roll back to"),
        }
        return Ok(ExitCode::from(1));
    }
    // The ingress and the mesh (if any) follow the swaps: a replica leaves them before it
    // stops, and joins once ready.
    let machines: Vec<_> = conns.results.iter().map(|(m, _)| m.clone()).collect();
    let balancers = crate::pipeline::apply::Balancers {
        ingress: crate::ingress::live::from_machines(project, &machines, &engines).await,
        mesh: crate::mesh::live::from_machines(project, &machines, &engines).await,
    };
    let hook: &dyn Hook = &balancers;
    let by_name: HashMap<String, Docker> = engines.into_iter().collect();
    let progress = Progress::new(false);
    let gate = HealthGate {
        completes: false,
        monitor: Duration::from_secs(5),
        deadline: args.ready_timeout,
    };
    let mut failed = 0;
    for chunk in swaps.chunks(args.parallelism.max(1)) {
        let results = futures_util::future::join_all(
            chunk
                .iter()
                .map(|s| swap(s, &by_name, gate, &progress, hook)),
        )
        .await;
        failed += results.iter().filter(|ok| !**ok).count();
    }
    held.release().await;
    if failed > 0 {
        tell!(
            "hoist: {failed} of {} slots could not be rolled back; they stay on their current release",
            swaps.len()
        );
    } else {
        tell!("rolled back {} slots", swaps.len());
    }
    if let Some(note) = &left_note {
        tell!("{note}");
    }
    Ok(if failed > 0 || left_note.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Starts the previous container, waits until it is ready, then stops the
/// current one (which becomes the previous release). Returns success.
async fn swap(
    s: &Swap,
    engines: &HashMap<String, Docker>,
    gate: HealthGate,
    progress: &Progress,
    hook: &dyn Hook,
) -> bool {
    let slot = s
        .current
        .slot
        .as_ref()
        .map(|x| x.label_value())
        .unwrap_or_default();
    let key = format!("{}.{slot}@{}", s.current.service, s.machine);
    let Some(docker) = engines.get(&s.machine) else {
        return false;
    };
    // A fixed host port cannot be held twice: stop first when the replica publishes one.
    let stop_first = !s.current.ports.is_empty();
    progress.step(&key, &format!("back to release {}", s.previous.release));
    let r: Result<()> = async {
        if stop_first {
            hook.before_stop(replica(s, &s.current)).await;
            ops::stop(docker, &s.current.id, None).await?;
        }
        ops::start(docker, &s.previous.id).await?;
        ops::wait_ready(docker, &s.previous.id, gate).await?;
        hook.after_ready(replica(s, &s.previous)).await;
        if !stop_first {
            hook.before_stop(replica(s, &s.current)).await;
            ops::stop(docker, &s.current.id, None).await?;
        }
        Ok(())
    }
    .await;
    match r {
        Ok(()) => {
            progress.finish(
                &key,
                &format!("rolled back to release {}", s.previous.release),
            );
            true
        }
        Err(e) => {
            let _ = ops::stop(docker, &s.previous.id, None).await;
            if ops::start(docker, &s.current.id).await.is_ok() {
                hook.after_ready(replica(s, &s.current)).await;
            }
            progress.finish(
                &key,
                &format!("FAILED: {e:#}; kept release {}", s.current.release),
            );
            false
        }
    }
}

/// A container of a swap as the ingress hook sees it.
fn replica<'a>(s: &'a Swap, c: &'a SeenContainer) -> ReplicaRef<'a> {
    ReplicaRef {
        service: &s.current.service,
        slot: 0,
        machine: &s.machine,
        id: &c.id,
    }
}
