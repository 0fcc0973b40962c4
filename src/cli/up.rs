//! `hoist up`: take the machines from what they run to what the compose file
//! says — the plan `hoist plan` shows, carried out under the deploy lock,
//! health-gated, rolled back when a new version fails.

use super::Global;
use super::project_args::ProjectArgs;
use super::up_report::UpReport;
use crate::apply::lock;
use crate::apply::progress::Progress;
use crate::apply::rollout::Verdict;
use crate::engine::{self, Connections};
use crate::pipeline;
use anyhow::{Result, bail};
use bollard::Docker;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// Deploy: compute the plan, show it, and carry it out on every machine.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist up\n  hoist -m prod.yaml up --yes          # CI: no question asked\n  hoist up --lock-wait 5m               # wait for another deploy to finish\n\nExit codes: 0 deployed (or nothing to do), 1 error or a failed rollout (rolled back unless update_config says otherwise), 130/143 stopped by Ctrl-C/SIGTERM after the batch under way (run up again to finish)."
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
    /// Carry out the plan's stateful moves: copy each moving slot's volumes to its new machine
    /// (the slot is stopped for the copy, which is verified; the source volume stays).
    #[arg(long)]
    move_volumes: bool,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: UpArgs) -> Result<ExitCode> {
    // Everything is checked before a machine is contacted or the lock taken: a bad value
    // must fail here, not half way through a deploy.
    let project = super::load_project(project_args)?;
    let fleet = super::load_fleet(global)?;
    super::check_deployable(&project, project_args, fleet.mesh.as_ref())?;
    crate::trace!("loaded");
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    crate::trace!("connected");
    let result = deploy(&project, &fleet, &conns, &args).await;
    crate::trace!("deployed");
    conns.close().await;
    crate::trace!("closed");
    result
}

/// `up --yes` for a verb that already asked (`hoist drain`), on connections already made.
pub(super) async fn deploy_confirmed(
    project: &crate::model::Project,
    fleet: &crate::inventory::Fleet,
    conns: &Connections,
    lock_wait: Duration,
    move_volumes: bool,
    json: bool,
) -> Result<ExitCode> {
    let args = UpArgs {
        yes: true,
        lock_wait,
        allow_unreachable: false,
        json,
        no_build: false,
        move_volumes,
    };
    deploy(project, fleet, conns, &args).await
}

async fn deploy(
    project: &crate::model::Project,
    fleet: &crate::inventory::Fleet,
    conns: &Connections,
    args: &UpArgs,
) -> Result<ExitCode> {
    let engines = conns.engines();
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
    crate::trace!("locked");
    let outcome = plan_and_apply(project, fleet, conns, &engines, args).await;
    crate::trace!("applied");
    held.release().await;
    crate::trace!("unlocked");
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
        pipeline::local::local_images(local.as_ref(), project).await?
    } else {
        pipeline::local::build_all(
            local.as_ref(),
            project,
            &[],
            platform(conns).as_deref(),
            &progress,
        )
        .await?
    };
    crate::trace!("local images");
    let mut planned = pipeline::plan(project, fleet, conns, &built, local.as_ref()).await?;
    planned.allow_volume_moves = args.move_volumes;
    crate::trace!("planned");
    for w in &planned.warnings {
        tell!("warning: {w}");
    }
    if !args.json {
        tell_raw!("{}", planned.plan.render_text());
    }
    let hosting = pipeline::apply::hosting(engines, &planned.observed);
    let balancers =
        pipeline::apply::Balancers::for_project(project, &planned.resolved, fleet, &hosting)?;
    if let Some(mesh) = &balancers.mesh {
        let lines = mesh.plan_lines(&planned.plan).await;
        if !args.json && !lines.is_empty() {
            tell!(
                "mesh (service names across machines):\n  {}\n",
                lines.join("\n  ")
            );
        }
    }
    let mut side_lines = balancers
        .ingress_lines(engines, &planned.resolved.project)
        .await;
    side_lines.extend(pipeline::apply::prune_lines(
        &planned.observed,
        &planned.previous,
    ));
    side_lines.extend(planned.sealing.lines());
    if !args.json && !side_lines.is_empty() {
        tell!("beside the replicas:\n  {}\n", side_lines.join("\n  "));
    }
    if !planned.plan.has_changes() {
        if !side_lines.is_empty() && !args.yes && !super::confirm("Apply this plan?")? {
            tell!("hoist: nothing changed");
            return Ok(ExitCode::from(1));
        }
        // Nothing to roll out; the ingress and the mesh still converge (a proxy missing on a
        // machine, a route file edited, one no longer asked for).
        let mut prep = pipeline::rollout::Preparation::default();
        balancers.add_images(&mut prep);
        let by_name: std::collections::HashMap<String, Docker> = engines.iter().cloned().collect();
        let name = &planned.resolved.project;
        crate::seal::store_where_needed(engines, name, &planned.sealing).await?;
        let stores = pipeline::apply::image_stores(conns);
        pipeline::apply::prepare(&prep, &by_name, name, local.as_ref(), &stores, &progress).await?;
        balancers.converge(engines, name).await?;
        balancers.leave(engines, &planned.observed, name).await?;
        pipeline::apply::record_fleet(conns, &planned.observed, name).await;
        let pruned =
            pipeline::apply::prune_previous(&planned.observed, &planned.previous, engines).await;
        let warnings = warn_after(&planned, &balancers).await;
        if args.json {
            let plan = serde_json::from_str(&planned.plan.to_json())?;
            let report = UpReport::unchanged(name, plan, pruned, warnings);
            say!("{}", report.to_json());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !args.move_volumes
        && let Some(why) = pipeline::apply::volume_moves_refusal(&planned.plan)
    {
        anyhow::bail!(why);
    }
    if !args.yes && !super::confirm("Apply this plan?")? {
        tell!("hoist: nothing changed");
        return Ok(ExitCode::from(1));
    }
    let pipeline::apply::Applied {
        release,
        report,
        shipped,
        pruned,
        moved,
        moved_downtime,
    } = pipeline::apply::apply_plan(&planned, conns, local.as_ref(), &progress, &balancers).await?;
    for c in &moved {
        progress.note(&format!(
            "volume {} moved {} → {}: {}, content digest {}",
            c.volume,
            c.from,
            c.to,
            crate::output::bytes(c.bytes),
            c.digest
        ));
    }
    if let Some(d) = moved_downtime {
        progress.note(&format!(
            "moved services were down at most {:.1}s (from the stop for the copy to the end of the rollout)",
            d.as_secs_f64()
        ));
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
            Verdict::Interrupted(why) => format!("{service}: {why}"),
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
    let warnings = warn_after(&planned, &balancers).await;
    if args.json {
        let plan = serde_json::from_str(&planned.plan.to_json())?;
        let name = &planned.resolved.project;
        let report = UpReport::rolled_out(name, plan, &release, &report, shipped, pruned, warnings);
        say!("{}", report.to_json());
    }
    if report.ok() {
        tell!("deployed release {release}");
        Ok(ExitCode::SUCCESS)
    } else {
        for f in failed {
            tell!("hoist: {f}");
        }
        Ok(ExitCode::from(1))
    }
}

/// Prints, after the deploy, what the user should know (the plan's warnings and
/// routes the ingress sees no healthy upstream for); returns them for `--json`.
async fn warn_after(
    planned: &pipeline::Planned,
    balancers: &pipeline::apply::Balancers,
) -> Vec<String> {
    let mut warnings = planned.warnings.clone();
    let after = balancers.warnings().await;
    for w in &after {
        tell!("hoist: warning: {w}");
    }
    warnings.extend(after);
    warnings
}

/// The platform images must be built for: the machines' own (`linux/arm64` for a
/// fleet of aarch64 machines), when they all agree; else the local engine's.
fn platform(conns: &Connections) -> Option<String> {
    let mut archs: Vec<&str> = conns
        .results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|e| match e.facts.arch.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        })
        .collect();
    archs.sort();
    archs.dedup();
    match archs.as_slice() {
        [one] => Some(format!("linux/{one}")),
        _ => None,
    }
}
