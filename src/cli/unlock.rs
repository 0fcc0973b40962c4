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
    after_help = "Examples:\n  hoist unlock          # shows the holder, asks, clears\n  hoist unlock --yes    # CI: clear without asking\n\nOnly clear a lock whose deploy is no longer running: two deploys at once can leave a project half-updated.\nA lock held by a deploy still running on this computer is refused (stop that deploy first), unless --force.\nExit codes: 0 cleared (or no lock), 1 error or refused."
)]
pub struct UnlockArgs {
    /// Clear without asking.
    #[arg(short, long)]
    yes: bool,
    /// Clear even a lock whose deploy is still running on this computer (both deploys then
    /// run at once: stop that one instead if you can).
    #[arg(long)]
    force: bool,
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
    // Issue 17, finding 5b: `--yes` alone once cleared the lock of a live `up`.
    let live: Vec<&lock::Holder> = holders
        .iter()
        .filter(|h| h.liveness() == lock::Liveness::Alive)
        .collect();
    if let Some(h) = live.first() {
        let pid = h.pid().map(|p| p.to_string()).unwrap_or_default();
        if !args.force {
            conns.close().await;
            anyhow::bail!(
                "the lock of project {project} is held by a deploy that is still running on this computer: {h} (process {pid}). \
                 Wait for it to finish, or stop it (`kill {pid}`) and run `hoist unlock` again; `hoist unlock --force` clears it while it runs"
            );
        }
        eprintln!(
            "hoist: --force: clearing the lock of a deploy that is still running: {h} (process {pid})"
        );
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
