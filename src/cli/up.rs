//! `hoist up`: take the machines from what they run to what the compose file
//! says — the plan `hoist plan` shows, carried out under the deploy lock,
//! health-gated, rolled back when a new version fails.

use super::Global;
use super::project_args::ProjectArgs;
use crate::apply::progress::Progress;
use crate::apply::rollout::Verdict;
use crate::apply::{image, lock, ops, rollout};
use crate::engine::{self, Connections};
use crate::pipeline::{self, Planned};
use anyhow::{Result, bail};
use bollard::Docker;
use clap::Args;
use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

/// Deploy: compute the plan, show it, and carry it out on every machine.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist up\n  hoist -m prod.yaml up --yes          # CI: no question asked\n  hoist up --lock-wait 5m               # wait for another deploy to finish\n\nExit codes: 0 deployed (or nothing to do), 1 error or a failed rollout (rolled back unless update_config says otherwise)."
)]
pub struct UpArgs {
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Wait this long for another deploy's lock (e.g. 30s, 5m); default: fail at once.
    #[arg(long, value_parser = super::parse_duration, default_value = "0s", value_name = "DURATION")]
    lock_wait: Duration,
    /// Act even though some machines cannot be reached; their replicas are left as they are.
    #[arg(long)]
    allow_unreachable: bool,
    /// Print the plan and the result as JSON on stdout; progress stays on stderr.
    #[arg(long)]
    json: bool,
    /// Do not build `build:` services; use the images already built locally.
    #[arg(long)]
    no_build: bool,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: UpArgs) -> Result<ExitCode> {
    let project = super::load_project(project_args)?;
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = deploy(&project, &fleet, &conns, &args).await;
    conns.close().await;
    result
}

fn engines_of(conns: &Connections) -> Vec<(String, Docker)> {
    conns
        .results
        .iter()
        .filter_map(|(m, r)| r.as_ref().ok().map(|e| (m.name.clone(), e.docker.clone())))
        .collect()
}

async fn deploy(
    project: &crate::model::Project,
    fleet: &crate::inventory::Fleet,
    conns: &Connections,
    args: &UpArgs,
) -> Result<ExitCode> {
    let engines = engines_of(conns);
    let unreachable: Vec<String> = conns
        .results
        .iter()
        .filter_map(|(m, r)| r.as_ref().err().map(|e| format!("{}: {e}", m.name)))
        .collect();
    if !unreachable.is_empty() && !args.allow_unreachable {
        bail!(
            "cannot reach every machine, so the plan would be partial:\n  {}\nFix the machines, or pass --allow-unreachable to deploy to the others (replicas on unreachable machines are left alone, never duplicated).",
            unreachable.join("\n  ")
        );
    }
    let held = lock::acquire(
        &engines,
        &project.name,
        &lock::describe_self("up"),
        args.lock_wait,
    )
    .await?;
    let outcome = plan_and_apply(project, fleet, conns, &engines, args).await;
    held.release().await;
    outcome
}

async fn plan_and_apply(
    project: &crate::model::Project,
    fleet: &crate::inventory::Fleet,
    conns: &Connections,
    engines: &[(String, Docker)],
    args: &UpArgs,
) -> Result<ExitCode> {
    let progress = Progress::new(false);
    let local = pipeline::local::engine().await;
    let built = if args.no_build {
        pipeline::local::built_ids(local.as_ref(), project).await
    } else {
        pipeline::local::build_all(local.as_ref(), project, &[], None, &progress).await?
    };
    let planned = pipeline::plan(project, fleet, conns, &built).await?;
    if !args.json {
        eprint!("{}", planned.plan.render_text());
    }
    let by_name: HashMap<String, Docker> = engines.iter().cloned().collect();
    let ingress =
        crate::ingress::live::for_project(project, &planned.resolved.project, fleet, engines)?;
    if !planned.plan.has_changes() {
        match &ingress {
            Some(i) => {
                let mut prep = pipeline::rollout::Preparation::default();
                i.add_images(&mut prep);
                let name = &planned.resolved.project;
                prepare(&prep, &by_name, name, local.as_ref(), &progress).await?;
                i.converge().await?;
            }
            None => {
                crate::ingress::live::remove_all(engines, &planned.resolved.project).await?;
            }
        }
        let pruned = prune_previous(&planned, engines).await;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"schema": 1, "plan": serde_json::from_str::<serde_json::Value>(&planned.plan.to_json())?, "ok": true, "pruned": pruned})
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !super::confirm("Apply this plan?")? {
        eprintln!("hoist: nothing changed");
        return Ok(ExitCode::from(1));
    }
    let release = release_id();
    let (mut prep, services) = pipeline::rollout::build(&planned, &release)?;
    if let Some(i) = &ingress {
        i.add_images(&mut prep);
    }
    let shipped = prepare(
        &prep,
        &by_name,
        &planned.resolved.project,
        local.as_ref(),
        &progress,
    )
    .await?;
    // The ingress routes to what runs before the rollout, then follows it (rollout Hook).
    let report = match &ingress {
        Some(i) => {
            i.converge().await?;
            let report = rollout::run_with(&services, &by_name, &progress, i).await;
            if let Err(e) = i.sync().await {
                progress.note(&format!("warning: updating the ingress: {e:#}"));
            }
            report
        }
        None => {
            crate::ingress::live::remove_all(engines, &planned.resolved.project).await?;
            rollout::run(&services, &by_name, &progress).await
        }
    };
    let after = pipeline::plan(project, fleet, conns, &built).await.ok();
    if let Some(after) = &after {
        prune_previous(after, engines).await;
    }
    let mut failed = Vec::new();
    for (service, outcomes, verdict) in &report.services {
        let done = outcomes.iter().filter(|o| o.result.is_ok()).count();
        let line = match verdict {
            Verdict::Done => format!("{service}: {done} changes done"),
            Verdict::RolledBack(why) => format!("{service}: FAILED, rolled back: {why}"),
            Verdict::Paused(why) => {
                format!("{service}: FAILED, paused (failure_action: pause): {why}")
            }
            Verdict::Degraded(why) => {
                format!("{service}: done with failures (failure_action: continue): {why}")
            }
            Verdict::Skipped => format!("{service}: skipped (an earlier service failed)"),
        };
        if *verdict != Verdict::Done {
            failed.push(line.clone());
            for o in outcomes {
                if let Err(e) = &o.result {
                    failed.push(format!("  {service}.{}@{}: {e}", o.slot, o.machine));
                }
            }
        }
        progress.note(&line);
    }
    if args.json {
        let services: Vec<_> = report
            .services
            .iter()
            .map(|(s, outcomes, v)| {
                serde_json::json!({
                    "service": s,
                    "verdict": format!("{v:?}"),
                    "changes": outcomes.iter().map(|o| serde_json::json!({"machine": o.machine, "slot": o.slot, "ok": o.result.is_ok(), "message": match &o.result { Ok(m) | Err(m) => m }})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": 1, "release": release, "ok": report.ok(), "shipped": shipped,
                "plan": serde_json::from_str::<serde_json::Value>(&planned.plan.to_json())?,
                "services": services,
            }))?
        );
    }
    if report.ok() {
        eprintln!("deployed release {release}");
        Ok(ExitCode::SUCCESS)
    } else {
        for f in failed {
            eprintln!("hoist: {f}");
        }
        Ok(ExitCode::from(1))
    }
}

/// Networks, volumes and images on each machine, before any container changes.
/// Images a machine lacks are shipped from the local engine when it has them
/// (layers the machine already holds stay behind), else pulled. Returns what was
/// shipped, for the summary and `--json`.
async fn prepare(
    prep: &pipeline::rollout::Preparation,
    engines: &HashMap<String, Docker>,
    project: &str,
    local: Option<&Docker>,
    progress: &Progress,
) -> Result<Vec<serde_json::Value>> {
    let get = |m: &str| {
        engines
            .get(m)
            .ok_or_else(|| anyhow::anyhow!("machine {m} is not connected"))
    };
    for (m, name, spec) in &prep.networks {
        ops::ensure_network(get(m)?, name, project, spec)
            .await
            .map_err(|e| anyhow::anyhow!("{m}: {e:#}"))?;
        progress.finish(&format!("network@{m}"), &format!("{name} ready"));
    }
    for (m, name, spec) in &prep.volumes {
        ops::ensure_volume(get(m)?, name, project, spec)
            .await
            .map_err(|e| anyhow::anyhow!("{m}: {e:#}"))?;
        progress.finish(&format!("volume@{m}"), &format!("{name} ready"));
    }
    // Which images each machine lacks, and which of those the local engine can ship.
    let mut exports: HashMap<String, crate::ship::Exported> = HashMap::new();
    let mut todo = Vec::new();
    for (m, img, policy, built_id) in &prep.images {
        let policy: image::PullPolicy = (*policy).into();
        let on_machine = get(m)?.inspect_image(img).await.ok().and_then(|i| i.id);
        let satisfied = match built_id {
            // Built here: the machine must run exactly this build, whatever its tag says.
            Some(id) => on_machine.as_deref() == Some(id.as_str()),
            None => on_machine.is_some() && policy != image::PullPolicy::Always,
        };
        if satisfied {
            continue;
        }
        if let Some(local) = local
            && !exports.contains_key(img)
            && local.inspect_image(img).await.is_ok()
        {
            progress.step(&format!("export {img}"), "exporting from the local engine");
            let e = crate::ship::export(local, img).await?;
            progress.finish(&format!("export {img}"), "exported");
            exports.insert(img.clone(), e);
        }
        todo.push((m.clone(), img.clone(), policy));
    }
    let jobs = todo.into_iter().map(|(m, img, policy)| {
        let exports = &exports;
        async move {
            let docker = get(&m)?;
            let key = format!("image@{m}");
            if let Some(exported) = exports.get(&img) {
                let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                progress.step(&key, &format!("shipping {img}"));
                let s = crate::ship::ship_to(exported, &m, docker, counter).await?;
                progress.finish(
                    &key,
                    &format!(
                        "{img}: sent {} ({} layers sent, {} already there)",
                        crate::cli::table::bytes(s.bytes_sent),
                        s.layers_sent,
                        s.layers_skipped
                    ),
                );
                Ok::<Option<serde_json::Value>, anyhow::Error>(Some(serde_json::json!({
                    "machine": m, "image": img, "bytes": s.bytes_sent,
                    "layers_sent": s.layers_sent, "layers_skipped": s.layers_skipped,
                })))
            } else {
                progress.step(&key, &format!("pulling {img}"));
                image::ensure(docker, &m, &img, policy).await?;
                progress.finish(&key, &format!("{img} pulled"));
                Ok(None)
            }
        }
    });
    let mut shipped = Vec::new();
    for r in futures_util::future::join_all(jobs).await {
        if let Some(s) = r? {
            shipped.push(s);
        }
    }
    Ok(shipped)
}

/// Keeps one previous release per slot (for rollback) and removes older ones,
/// and those of slots that no longer exist.
async fn prune_previous(planned: &Planned, engines: &[(String, Docker)]) -> usize {
    let mut newest: HashMap<(String, String, String), (i64, String)> = HashMap::new();
    let live: std::collections::HashSet<(String, String, String)> = planned
        .observed
        .containers
        .iter()
        .map(|c| (c.machine.clone(), c.service.clone(), c.slot.label_value()))
        .collect();
    let mut remove = Vec::new();
    for (machine, c) in &planned.previous {
        let key = (
            machine.clone(),
            c.service.clone(),
            c.slot.as_ref().map(|s| s.label_value()).unwrap_or_default(),
        );
        if !live.contains(&key) {
            remove.push((machine.clone(), c.id.clone()));
            continue;
        }
        match newest.get(&key) {
            Some((created, _)) if *created >= c.created => {
                remove.push((machine.clone(), c.id.clone()))
            }
            Some((_, id)) => {
                remove.push((machine.clone(), id.clone()));
                newest.insert(key, (c.created, c.id.clone()));
            }
            None => {
                newest.insert(key, (c.created, c.id.clone()));
            }
        }
    }
    let mut n = 0;
    for (machine, id) in remove {
        if let Some((_, d)) = engines.iter().find(|(m, _)| *m == machine)
            && ops::remove(d, &id).await.is_ok()
        {
            n += 1;
        }
    }
    n
}

/// A release name that sorts by time: `20261126-184701`.
fn release_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::apply::time::rfc3339(secs)
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
}
