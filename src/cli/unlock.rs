//! `hoist unlock`: clear a deploy lock left by a deploy that died.

use super::Global;
use super::project_args::ProjectArgs;
use crate::apply::lock;
use crate::engine;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

/// Show who holds the project's deploy lock and clear it (only when that deploy is dead).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist unlock          # shows the holder, asks, clears\n  hoist unlock --yes    # CI: clear without asking\n\nOnly clear a lock whose deploy is no longer running: two deploys at once can leave a project half-updated.\nExit codes: 0 cleared (or no lock), 1 error."
)]
pub struct UnlockArgs {
    /// Clear without asking.
    #[arg(short, long)]
    yes: bool,
}

pub async fn run(
    global: &Global,
    project_args: &ProjectArgs,
    args: UnlockArgs,
) -> Result<ExitCode> {
    let project = super::project_name(project_args)?;
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let engines = conns.engines();
    let holders = lock::holders(&engines, &project).await;
    if holders.is_empty() {
        conns.close().await;
        eprintln!("project {project} is not locked");
        return Ok(ExitCode::SUCCESS);
    }
    for h in &holders {
        eprintln!("locked by {h}");
    }
    if !args.yes && !super::confirm("Clear this lock? Only if that deploy is no longer running.")? {
        conns.close().await;
        return Ok(ExitCode::from(1));
    }
    let n = lock::clear(&engines, &project).await;
    conns.close().await;
    eprintln!("cleared the lock on {} machines", n?);
    Ok(ExitCode::SUCCESS)
}
