//! `hoist build`: build the images of `build:` services on the local engine.
//! `hoist up` builds too, then ships each machine only the layers it lacks.

use super::Global;
use super::project_args::ProjectArgs;
use crate::apply::progress::Progress;
use crate::pipeline;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

/// Build the images of services with `build:` on the local Docker engine.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist build\n  hoist build web --json\n\nNo registry is needed: `hoist up` ships built images to the machines over SSH.\nExit codes: 0 built, 1 error."
)]
pub struct BuildArgs {
    /// Only these services.
    services: Vec<String>,
    /// Print service → image ID as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(
    _global: &Global,
    project_args: &ProjectArgs,
    args: BuildArgs,
) -> Result<ExitCode> {
    let project = super::load_project(project_args)?;
    for s in &args.services {
        if !project.services.contains_key(s) {
            anyhow::bail!("no service {s} in the project");
        }
    }
    let local = pipeline::local::engine().await;
    let built = pipeline::local::build_all(
        local.as_ref(),
        &project,
        &args.services,
        None,
        &Progress::new(args.json),
    )
    .await?;
    // Only what was built: service → image ID.
    let built: std::collections::BTreeMap<&String, &String> = built
        .iter()
        .filter(|(name, _)| {
            project.services[*name].build.is_some()
                && (args.services.is_empty() || args.services.contains(*name))
        })
        .filter_map(|(name, image)| image.id.as_ref().map(|id| (name, id)))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"schema": 1, "images": built}))?
        );
    } else if built.is_empty() {
        eprintln!("no service to build (none has build:)");
    }
    Ok(ExitCode::SUCCESS)
}
