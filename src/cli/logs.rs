//! `hoist logs`: the output of every replica, prefixed `service.slot@machine |`.
//!
//! With `-f` it keeps following: new replicas (a rollout, a scale-up) are picked
//! up as they appear, so one command watches a whole deploy.

use super::Global;
use super::project_args::ProjectArgs;
use crate::engine;
use crate::observe::{self, SeenContainer};
use anyhow::Result;
use bollard::Docker;
use bollard::query_parameters::LogsOptions;
use clap::Args;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Show the logs of the project's replicas on every machine.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist logs\n  hoist logs web -f --tail 20\n  hoist logs api --since 10m\n\nExit codes: 0 ok, 1 error."
)]
pub struct LogsArgs {
    /// Only these services.
    services: Vec<String>,
    /// Keep following, including replicas that appear later.
    #[arg(short, long)]
    follow: bool,
    /// Lines from the end of each replica's log (default: all).
    #[arg(long, short = 'n', value_name = "N")]
    tail: Option<u64>,
    /// Only output newer than this long ago (e.g. 10m, 1h) or since a Unix timestamp.
    #[arg(long, value_name = "DURATION|TIMESTAMP")]
    since: Option<String>,
    /// Prefix each line with its timestamp.
    #[arg(short, long)]
    timestamps: bool,
    /// Leave out the `service.slot@machine |` prefix.
    #[arg(long)]
    no_prefix: bool,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: LogsArgs) -> Result<ExitCode> {
    let project_name = super::project_name(project_args)?;
    let project = project_name.as_str();
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let since = match &args.since {
        None => 0,
        Some(s) => since_epoch(s)?,
    };
    let engines: HashMap<String, Docker> = conns.engines().into_iter().collect();
    for (m, e) in conns
        .results
        .iter()
        .filter_map(|(m, r)| r.as_ref().err().map(|e| (m, e)))
    {
        eprintln!("hoist: {}: {e} (its logs are missing)", m.name);
    }
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut following: HashSet<String> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let seen = observe::observe(&conns, project).await;
        for (machine, state) in seen.machines {
            let Ok(state) = state else { continue };
            for c in observe::current(&state.containers) {
                if !args.services.is_empty() && !args.services.contains(&c.service) {
                    continue;
                }
                if !following.insert(c.id.clone()) {
                    continue;
                }
                let Some(docker) = engines.get(&machine).cloned() else {
                    continue;
                };
                let prefix = if args.no_prefix {
                    String::new()
                } else {
                    prefix_for(c, &machine, color)
                };
                let opts = LogsOptions {
                    follow: args.follow,
                    stdout: true,
                    stderr: true,
                    since: since as i32,
                    timestamps: args.timestamps,
                    tail: args
                        .tail
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "all".into()),
                    ..Default::default()
                };
                let id = c.id.clone();
                tasks.spawn(async move { pump(docker, id, opts, prefix).await });
            }
        }
        if !args.follow {
            break;
        }
        // Look for new replicas every couple of seconds while following.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    while tasks.join_next().await.is_some() {}
    conns.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn pump(docker: Docker, id: String, opts: LogsOptions, prefix: String) {
    let mut stream = docker.logs(&id, Some(opts));
    let mut pending = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        pending.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        while let Some(pos) = pending.find('\n') {
            let line: String = pending.drain(..=pos).collect();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{prefix}{line}");
        }
    }
    if !pending.is_empty() {
        let _ = writeln!(std::io::stdout().lock(), "{prefix}{pending}");
    }
}

fn prefix_for(c: &SeenContainer, machine: &str, color: bool) -> String {
    let slot = c
        .slot
        .as_ref()
        .map(|s| s.label_value())
        .unwrap_or_else(|| "?".into());
    let label = format!("{}.{slot}@{machine}", c.service);
    if color {
        // A stable colour per service, so replicas of one service line up visually.
        let hue = 31 + (c.service.bytes().map(u32::from).sum::<u32>() % 6);
        format!("\x1b[{hue}m{label:<20} |\x1b[0m ")
    } else {
        format!("{label:<20} | ")
    }
}

/// `--since 10m` (a duration ago) or a Unix timestamp.
fn since_epoch(s: &str) -> Result<i64> {
    if let Ok(ts) = s.parse::<i64>() {
        return Ok(ts);
    }
    let d = super::parse_duration(s).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(now - d.as_secs() as i64)
}
