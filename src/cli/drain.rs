//! `hoist drain MACHINE…` and `hoist undrain MACHINE…`: cordon machines (recorded on them,
//! `apply::cordon`) and move the project off them with the ordinary `up` road.

use super::Global;
use super::project_args::ProjectArgs;
use super::up;
use crate::apply::cordon;
use crate::engine::{self, Connections};
use anyhow::{Result, bail};
use clap::Args;
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

/// Drain machines: no replica goes there any more, the project's replicas move off them
/// (started elsewhere first, healthy, then stopped), then hoist's ingress and mesh proxies leave.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist drain m1 --yes\n  hoist drain m1 m2     # retire two machines\n  hoist undrain m1\n\nThe cordon is recorded on each machine (a volume named hoist-drained), so every hoist and\n`hoist watch` sees it, for every project; drain then runs `up` for this project. A service\nwhose named volume is only on a drained machine is refused unless --move-volumes (or copy\nits data with `hoist volumes backup` / `hoist volumes restore --machine OTHER` first).\nExit codes: 0 drained, 1 error (the cordons recorded stay; `hoist undrain` lifts them)."
)]
pub struct DrainArgs {
    /// The machines to drain (inventory names).
    #[arg(required = true, value_name = "MACHINE")]
    names: Vec<String>,
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Wait this long for another deploy's lock (e.g. 30s, 5m); default: fail at once.
    #[arg(long, value_parser = super::parse_duration, default_value = "0s", value_name = "DURATION")]
    lock_wait: Duration,
    /// Move services whose named volumes are on the drained machines with their data (as
    /// `up --move-volumes`: each is stopped for a verified copy, then started elsewhere).
    #[arg(long)]
    move_volumes: bool,
    /// Print `up --json`'s report of the deploy that moves the replicas off (docs/up-json.md);
    /// the drain's own lines go to standard error.
    #[arg(long)]
    json: bool,
}

/// Lift the cordon of drained machines: they take replicas again at the next `up`.
#[derive(Args)]
#[command(after_help = "Examples:\n  hoist undrain m1\n\nExit codes: 0 done, 1 error.")]
pub struct UndrainArgs {
    #[arg(required = true, value_name = "MACHINE")]
    names: Vec<String>,
    /// Taken like every verb that changes the fleet takes it (undrain never asks: lifting a
    /// cordon moves nothing until the next `up`).
    #[arg(short, long)]
    yes: bool,
}

/// The engines of `names`, each checked against the machines file and reachable.
fn engines_of<'a>(
    conns: &'a Connections,
    names: &[String],
) -> Result<Vec<(String, &'a bollard::Docker)>> {
    let mut out = Vec::new();
    for name in names {
        let Some((_, r)) = conns.results.iter().find(|(m, _)| &m.name == name) else {
            let known: Vec<&str> = conns.results.iter().map(|(m, _)| m.name.as_str()).collect();
            bail!(
                "{name}: no such machine in the machines file (it has {})",
                known.join(", ")
            );
        };
        match r {
            Ok(e) => out.push((name.clone(), &e.docker)),
            Err(err) => {
                bail!("{name} is unreachable, so its cordon cannot be recorded there: {err}")
            }
        }
    }
    Ok(out)
}

pub async fn drain(
    global: &Global,
    project_args: &ProjectArgs,
    args: DrainArgs,
) -> Result<ExitCode> {
    let project = super::load_project(project_args)?;
    let fleet = super::load_fleet(global)?;
    super::check_deployable(&project, project_args, fleet.mesh.as_ref())?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = drain_on(&project, &fleet, &conns, &args).await;
    conns.close().await;
    result
}

async fn drain_on(
    project: &crate::model::Project,
    fleet: &crate::inventory::Fleet,
    conns: &Connections,
    args: &DrainArgs,
) -> Result<ExitCode> {
    let targets = engines_of(conns, &args.names)?;
    let draining: BTreeSet<String> = targets.iter().map(|(m, _)| m.clone()).collect();
    // Data stays put: a service whose volume has no copy on a machine that stays cannot go.
    let mut seen = Vec::new();
    for (m, r) in &conns.results {
        if let Ok(e) = r {
            seen.extend(
                crate::volume::data::list(&e.docker, e.socket(), &m.name, Some(&project.name))
                    .await?,
            );
        }
    }
    let mut already = BTreeSet::new();
    for (m, r) in &conns.results {
        if let Ok(e) = r
            && cordon::read(&e.docker).await?.is_some()
        {
            already.insert(m.name.clone());
        }
    }
    let leaving: BTreeSet<String> = draining.union(&already).cloned().collect();
    let stranded = crate::volume::stranded(&seen, &leaving, &global_services(project));
    if !stranded.is_empty() && !args.move_volumes {
        bail!(
            "cannot drain {}: {}",
            args.names.join(", "),
            stranded.join("\n")
        );
    }
    if !args.yes
        && !super::confirm(&format!(
            "Drain {}? No replica will run there; project {}'s replicas move to the other machines.",
            args.names.join(", "),
            project.name
        ))?
    {
        tell!("hoist: nothing changed");
        return Ok(ExitCode::from(1));
    }
    let by = crate::apply::lock::describe_self("drain");
    // With --json, standard output is the report alone.
    let note = |line: String| {
        if args.json {
            tell!("{line}");
        } else {
            say!("{line}");
        }
    };
    for (m, d) in &targets {
        if cordon::mark(d, &by).await? {
            note(format!("{m}: drained (recorded on the machine)"));
        } else {
            note(format!("{m}: already drained"));
        }
    }
    let code = up::deploy_confirmed(
        project,
        fleet,
        conns,
        args.lock_wait,
        args.move_volumes,
        args.json,
    )
    .await?;
    if code == ExitCode::SUCCESS {
        note(format!(
            "{}: no replica of {} runs there; hoist's ingress and mesh proxies of the project left",
            args.names.join(", "),
            project.name
        ));
    } else {
        tell!(
            "hoist: the cordon stays on {}: run `hoist drain` again once the failure above is fixed, or `hoist undrain` to lift it",
            args.names.join(", ")
        );
    }
    Ok(code)
}

fn global_services(project: &crate::model::Project) -> BTreeSet<String> {
    project
        .services
        .iter()
        .filter(|(_, s)| {
            s.deploy
                .as_ref()
                .and_then(|d| d.mode.as_deref())
                .is_some_and(|m| m == "global")
        })
        .map(|(n, _)| n.clone())
        .collect()
}

pub async fn undrain(global: &Global, args: UndrainArgs) -> Result<ExitCode> {
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = async {
        for (m, d) in engines_of(&conns, &args.names)? {
            if cordon::unmark(d).await? {
                say!("{m}: undrained: it takes replicas again at the next `hoist up`");
            } else {
                say!("{m}: was not drained");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
    .await;
    conns.close().await;
    result
}
