//! `hoist plan`: what `up` would change, on every machine, and why.

use super::Global;
use super::project_args::ProjectArgs;
use crate::engine;
use crate::mesh::live::MeshChange;
use crate::pipeline;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

/// Show exactly what `hoist up` would do: every container to create, start,
/// replace, move or remove, on which machine, and why.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist plan\n  hoist -m prod.yaml plan --json\n  hoist plan --detailed-exitcode   # in CI: 0 no changes, 2 changes, 1 error\n\nExit codes: 0 success (with --detailed-exitcode: no changes), 1 error, 2 changes (with --detailed-exitcode only)."
)]
pub struct PlanArgs {
    /// Print the plan as JSON (schema: docs/plan-json.md).
    #[arg(long)]
    json: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: PlanArgs) -> Result<ExitCode> {
    let project = super::load_project(project_args)?;
    let fleet = super::load_fleet(global)?;
    super::check_deployable(&project, project_args, fleet.mesh.as_ref())?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let local = pipeline::local::engine().await;
    let planned = match pipeline::local::local_images(local.as_ref(), &project).await {
        Ok(images) => pipeline::plan(&project, &fleet, &conns, &images, local.as_ref()).await,
        Err(e) => Err(e),
    };
    // The mesh's own changes: proxies to start or remove, and who follows what.
    let mesh_lines = match &planned {
        Ok(p) => {
            match pipeline::apply::mesh_for_project(&project, &p.resolved, &fleet, &conns.engines())
            {
                Ok(Some(mesh)) => Ok(mesh.plan_changes(&p.plan).await),
                Ok(None) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        }
        Err(_) => Ok(Vec::new()),
    };
    // Beside the replicas: the ingress's own changes, previous releases to prune and the
    // sealing key to write — `up` does them even when no replica changes, so they are changes
    // too.
    let side_lines = match &planned {
        Ok(p) => {
            let engines = conns.engines();
            let hosting = pipeline::apply::hosting(&engines, &p.observed);
            let balancers =
                pipeline::apply::Balancers::for_project(&project, &p.resolved, &fleet, &hosting);
            match balancers {
                Ok(b) => {
                    let mut lines = b.ingress_lines(&engines, &p.resolved.project).await;
                    lines.extend(pipeline::apply::prune_lines(&p.observed, &p.previous));
                    lines.extend(p.sealing.lines());
                    Ok(lines)
                }
                Err(e) => Err(e),
            }
        }
        Err(_) => Ok(Vec::new()),
    };
    conns.close().await;
    let planned = planned?;
    let mesh_lines = mesh_lines?;
    let side_lines = side_lines?;
    for w in &planned.warnings {
        eprintln!("warning: {w}");
    }
    let mesh_changes = mesh_lines;
    let mesh_lines: Vec<String> = mesh_changes.iter().map(MeshChange::line).collect();
    if args.json {
        let text = planned.plan.to_json();
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(mut v) => {
                if !mesh_changes.is_empty() {
                    v["mesh"] = mesh_changes.iter().map(MeshChange::json).collect();
                }
                if !side_lines.is_empty() {
                    v["other"] = serde_json::json!(side_lines);
                }
                if !side_lines.is_empty() || mesh_changes.iter().any(|c| !c.kind.follows_replicas())
                {
                    v["changes"] = serde_json::Value::Bool(true);
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.clone())
                );
            }
            Err(_) => println!("{text}"),
        }
    } else {
        print!("{}", planned.plan.render_text());
        if !mesh_lines.is_empty() {
            println!(
                "\nmesh (service names across machines):\n  {}",
                mesh_lines.join("\n  ")
            );
        }
        if !side_lines.is_empty() {
            println!("\nbeside the replicas:\n  {}", side_lines.join("\n  "));
        }
    }
    let unreachable = planned
        .plan
        .machines
        .values()
        .any(|r| !matches!(r, crate::core::observed::Reach::Reachable));
    Ok(if unreachable {
        ExitCode::from(1)
    } else if args.detailed_exitcode
        && (planned.plan.has_changes()
            || !side_lines.is_empty()
            || mesh_lines.iter().any(|l| !l.starts_with('~')))
    {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
