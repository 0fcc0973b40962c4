//! `hoist watch`: a long-running reconcile loop — heal the fleet and autoscale — over the
//! same plan and apply as `up` (see src/watch).

use super::Global;
use super::project_args::ProjectArgs;
use crate::engine;
use crate::watch::{self, Options};
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// Keep the project as planned: replace crashed and unhealthy replicas, move stateless
/// replicas off machines that stop answering, scale services on CPU (x-hoist.autoscale).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist watch\n  hoist -m prod.yaml watch --grace 10s     # slower to declare a machine lost\n  hoist watch --rounds 1                   # one reconcile round, then exit\n\nIt runs until Ctrl-C or SIGTERM (exit 130 or 143); every decision is a timestamped line on stderr.\nSee docs/watch.md.\nExit codes: 0 after --rounds, 1 error at start, 130 (SIGINT) or 143 (SIGTERM) stopped."
)]
pub struct WatchArgs {
    /// Time between two rounds (observe → plan → apply).
    #[arg(long, value_parser = super::parse_duration, default_value = "1s", value_name = "DURATION")]
    interval: Duration,
    /// How long a machine may go without answering before it is lost: its stateless replicas
    /// are then started on other machines (stateful ones are reported, never moved).
    #[arg(long, value_parser = super::parse_duration, default_value = "3s", value_name = "DURATION")]
    grace: Duration,
    /// How long each machine may take to answer within a round.
    #[arg(long, value_parser = super::parse_duration, default_value = "1500ms", value_name = "DURATION")]
    probe_timeout: Duration,
    /// Rounds in a row a lost machine must answer before it is trusted again (and the
    /// replicas it still runs for slots now filled elsewhere are removed).
    #[arg(long, default_value_t = 3, value_name = "N")]
    trust_after: u32,
    /// Stop after N rounds (default: run until stopped).
    #[arg(long, value_name = "N")]
    rounds: Option<u64>,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: WatchArgs) -> Result<ExitCode> {
    let project = super::load_project(project_args)?;
    let fleet = super::load_fleet(global)?;
    let mut conns = engine::connect_all(&fleet, global.timeout).await?;
    let opts = Options {
        interval: args.interval,
        probe: args.probe_timeout,
        grace: args.grace,
        connect: global.timeout,
        trust_after: args.trust_after.max(1),
        rounds: args.rounds,
    };
    let result = watch::run(&project, &fleet, &mut conns, &opts).await;
    conns.close().await;
    result.map(|()| ExitCode::SUCCESS)
}
