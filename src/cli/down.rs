//! `hoist down`: remove the project's containers and networks from every machine.
//! Volumes stay unless `--volumes` says otherwise: data is never lost by default.

use super::Global;
use super::project_args::ProjectArgs;
use crate::apply::lock;
use crate::core::{self, down::DownPlan, down::OnMachine};
use crate::engine;
use crate::observe;
use crate::pipeline;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// Stop and remove the project's containers and networks on every machine.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist down --dry-run         # what it would remove, machine by machine\n  hoist down\n  hoist down --volumes --yes   # also delete the project's named volumes (their data!)\n\nExit codes: 0 ok, 1 error or a machine unreachable (nothing there was touched)."
)]
pub struct DownArgs {
    /// Also remove the project's named volumes — and the data in them.
    #[arg(short, long)]
    volumes: bool,
    /// Do not ask before removing volumes.
    #[arg(short, long)]
    yes: bool,
    /// Show what would be removed on each machine, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the plan (with --dry-run) or what was removed as JSON.
    #[arg(long)]
    json: bool,
    /// Wait this long for a running deploy's lock (e.g. 2m).
    #[arg(long, value_parser = super::parse_duration, default_value = "0s", value_name = "DURATION")]
    lock_wait: Duration,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: DownArgs) -> Result<ExitCode> {
    let project_name = super::project_name(project_args)?;
    let project = project_name.as_str();
    if args.volumes
        && !args.yes
        && !args.dry_run
        && !super::confirm(&format!(
            "Delete the named volumes of project {project} and all their data?"
        ))?
    {
        tell!("hoist: nothing removed");
        return Ok(ExitCode::from(1));
    }
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let engines = conns.engines();
    if args.dry_run {
        // A look only: no lock, nothing touched.
        let plan = down_plan(&conns, project, args.volumes).await;
        conns.close().await;
        render(&plan, None, args.json);
        // As the real run would: a machine it cannot reach is an error (nothing there is seen).
        return Ok(if plan.unreached().is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let held = lock::acquire(
        &engines,
        project,
        &lock::describe_self("down"),
        args.lock_wait,
    )
    .await;
    let held = match held {
        Ok(l) => l,
        Err(e) => {
            conns.close().await;
            return Err(e);
        }
    };
    // Observed under the lock: what no deploy is changing any more.
    let plan = down_plan(&conns, project, args.volumes).await;
    let outcome = pipeline::down::carry_out(&plan, &engines).await;
    let failed = outcome.iter().any(|(_, r)| r.is_err());
    render(&plan, Some(&outcome), args.json);
    if !failed {
        crate::apply::fleet_record::clear(&conns.engines(), project).await;
    }
    held.release().await;
    conns.close().await;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The observation, as `down`'s plan.
async fn down_plan(conns: &engine::Connections, project: &str, volumes: bool) -> DownPlan {
    let seen = observe::observe(conns, project).await;
    let machines = seen
        .machines
        .into_iter()
        .map(|(m, state)| {
            let on = state.map(|s| OnMachine {
                containers: s.containers.into_iter().map(|c| (c.name, c.id)).collect(),
                networks: s.networks,
                volumes: s.project_volumes,
            });
            (m, on)
        })
        .collect();
    core::down::plan(project, machines, volumes)
}

/// The plan (no `outcome`: a dry run), or what each machine did.
fn render(plan: &DownPlan, outcome: Option<&[(String, Result<(), String>)]>, json: bool) {
    if json {
        say!("{}", plan.to_json(outcome));
        return;
    }
    let Some(outcome) = outcome else {
        say!("{}", plan.render_text().trim_end());
        return;
    };
    for (m, r) in outcome {
        let Some(Ok(on)) = plan.machines.iter().find(|(x, _)| x == m).map(|(_, s)| s) else {
            if let Err(e) = r {
                tell!("hoist: {m}: {e}");
            }
            continue;
        };
        match r {
            Ok(()) => {
                let vols = if plan.with_volumes {
                    format!(", {} volumes", on.volumes.len())
                } else {
                    String::new()
                };
                tell!(
                    "{m}: removed {} containers, {} networks{vols}",
                    on.containers.len(),
                    on.networks.len()
                );
            }
            Err(e) => tell!("hoist: {m}: {e}"),
        }
    }
    let kept = plan.kept_volumes.len();
    if kept > 0 {
        tell!("{kept} volumes stay (hoist down --volumes removes them, and their data)");
    }
}
