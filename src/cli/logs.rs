//! `hoist logs`: the output of every replica, prefixed `service.slot@machine |`.
//!
//! With `-f` it keeps following: new replicas (a rollout, a scale-up) are picked
//! up as they appear, so one command watches a whole deploy.

use super::Global;
use super::project_args::ProjectArgs;
use crate::apply::time;
use crate::core::observed::Slot;
use crate::engine;
use crate::labels;
use crate::observe;
use anyhow::Result;
use bollard::Docker;
use bollard::query_parameters::{EventsOptions, LogsOptions};
use clap::Args;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

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
    /// Only output since then: a duration ago (10m, 1h30m), a Unix time, or an RFC 3339
    /// date and time (2026-12-01T20:22:00Z; local time without a zone).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Prefix each line with its timestamp.
    #[arg(short, long)]
    timestamps: bool,
    /// Leave out the `service.slot@machine |` prefix.
    #[arg(long)]
    no_prefix: bool,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: LogsArgs) -> Result<ExitCode> {
    let since = match &args.since {
        None => 0,
        Some(s) => since_epoch(s, now_epoch())?,
    };
    let project_name = super::project_name(project_args)?;
    let project = project_name.as_str();
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = logs(&conns, project_args, project, &args, since).await;
    conns.close().await;
    result
}

async fn logs(
    conns: &engine::Connections,
    project_args: &ProjectArgs,
    project: &str,
    args: &LogsArgs,
    since: i64,
) -> Result<ExitCode> {
    let engines: HashMap<String, Docker> = conns.engines().into_iter().collect();
    for (m, e) in conns
        .results
        .iter()
        .filter_map(|(m, r)| r.as_ref().err().map(|e| (m, e)))
    {
        eprintln!("hoist: {}: {e} (its logs are missing)", m.name);
    }
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // While following, every machine reports the replicas it starts from now on.
    // The subscription reaches back a little before our first look, so a replica
    // that starts while we look is not missed (those already seen are skipped).
    let looked_at = now_epoch();
    let mut started = tokio::sync::mpsc::unbounded_channel();
    if args.follow {
        for (machine, docker) in &engines {
            let tx = started.0.clone();
            tokio::spawn(replica_starts(
                docker.clone(),
                machine.clone(),
                project.to_string(),
                looked_at - EVENTS_LOOKBACK_SECS,
                tx,
            ));
        }
    }
    drop(started.0);
    let seen = observe::observe(conns, project).await;
    super::services::check_known(project_args, project, &seen, &args.services)?;
    let wanted =
        |service: &str| args.services.is_empty() || args.services.iter().any(|s| s == service);
    let mut following: HashSet<String> = HashSet::new();
    // Containers that were there but not running when we looked (previous releases):
    // a replayed start of one of them happened before it stopped.
    let mut stopped_at_look: HashSet<String> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (machine, state) in &seen.machines {
        let Ok(state) = state else { continue };
        let current = observe::current(&state.containers);
        for c in &state.containers {
            if !current.iter().any(|x| x.id == c.id) {
                stopped_at_look.insert(c.id.clone());
            }
        }
        for c in current {
            if !wanted(&c.service) || !following.insert(c.id.clone()) {
                continue;
            }
            let Some(docker) = engines.get(machine).cloned() else {
                continue;
            };
            let prefix = prefix_text(args, &c.service, c.slot.as_ref(), machine, color);
            let opts = log_options(args, since, args.tail);
            tasks.spawn(pump(docker, c.id.clone(), opts, prefix));
        }
    }
    if args.follow {
        while let Some(start) = started.1.recv().await {
            if !wanted(&start.service) || following.contains(&start.id) {
                continue;
            }
            if start.time < looked_at && stopped_at_look.contains(&start.id) {
                continue;
            }
            following.insert(start.id.clone());
            let Some(docker) = engines.get(&start.machine).cloned() else {
                continue;
            };
            let slot = start.slot.as_deref().and_then(Slot::from_label);
            let prefix = prefix_text(args, &start.service, slot.as_ref(), &start.machine, color);
            // A replica that appears while we follow is shown from its first line,
            // whatever --tail says: that limit is for the backlog of those already there.
            let opts = log_options(args, since, None);
            tasks.spawn(pump(docker, start.id, opts, prefix));
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

/// How far back the start events are replayed, to cover the time between
/// subscribing and the first look (and clocks a few seconds apart).
const EVENTS_LOOKBACK_SECS: i64 = 10;

/// A container of the project that started on a machine.
struct Started {
    machine: String,
    id: String,
    service: String,
    slot: Option<String>,
    /// Seconds since the epoch, by the machine's clock.
    time: i64,
}

/// Sends every start of a project's replica on one machine from `since` on,
/// until the machine's event stream ends.
async fn replica_starts(
    docker: Docker,
    machine: String,
    project: String,
    since: i64,
    tx: tokio::sync::mpsc::UnboundedSender<Started>,
) {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("event".to_string(), vec!["start".to_string()]),
        (
            "label".to_string(),
            vec![format!("{}={project}", labels::PROJECT)],
        ),
    ]);
    let mut events = docker.events(Some(EventsOptions {
        since: Some(since.to_string()),
        until: None,
        filters: Some(filters),
    }));
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                eprintln!(
                    "hoist: {machine}: lost the engine's events ({e}); replicas that start there \
                     from now on are not shown"
                );
                return;
            }
        };
        let Some(actor) = event.actor else { continue };
        let attrs = actor.attributes.unwrap_or_default();
        let (Some(id), Some(service)) = (actor.id, attrs.get(labels::SERVICE)) else {
            continue;
        };
        let start = Started {
            machine: machine.clone(),
            id,
            service: service.clone(),
            slot: attrs.get(labels::SLOT).cloned(),
            time: event.time.unwrap_or(0),
        };
        if tx.send(start).is_err() {
            return;
        }
    }
}

fn log_options(args: &LogsArgs, since: i64, tail: Option<u64>) -> LogsOptions {
    LogsOptions {
        follow: args.follow,
        stdout: true,
        stderr: true,
        since: since.clamp(0, i64::from(i32::MAX)) as i32,
        timestamps: args.timestamps,
        tail: tail.map(|n| n.to_string()).unwrap_or_else(|| "all".into()),
        ..Default::default()
    }
}

fn prefix_text(
    args: &LogsArgs,
    service: &str,
    slot: Option<&Slot>,
    machine: &str,
    color: bool,
) -> String {
    if args.no_prefix {
        String::new()
    } else {
        prefix_for(service, slot, machine, color)
    }
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

fn prefix_for(service: &str, slot: Option<&Slot>, machine: &str, color: bool) -> String {
    let slot = slot.map(|s| s.label_value()).unwrap_or_else(|| "?".into());
    let label = format!("{service}.{slot}@{machine}");
    if color {
        // A stable colour per service, so replicas of one service line up visually.
        let hue = 31 + (service.bytes().map(u32::from).sum::<u32>() % 6);
        format!("\x1b[{hue}m{label:<20} |\x1b[0m ")
    } else {
        format!("{label:<20} | ")
    }
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `--since` as `docker logs` takes it: a duration ago (`10m`, `1h30m`), a Unix
/// time (`1764620520`, fractions ignored), or a date and time in RFC 3339
/// (`2026-12-01T20:22:00Z`, `…+01:00`; without a zone it is local time, and a date
/// alone is its midnight). Returns seconds since the epoch.
fn since_epoch(s: &str, now: i64) -> Result<i64> {
    let s = s.trim();
    let unix = s.split_once('.').map_or(s, |(whole, _)| whole);
    if !unix.is_empty() && unix.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(ts) = unix.parse::<i64>() {
            return Ok(ts);
        }
    }
    if s.len() >= 10 && s.as_bytes()[4] == b'-' {
        return time::parse_timestamp(s).map_err(|e| {
            anyhow::anyhow!(
                "--since {s}: {e}; write e.g. 2026-12-01T20:22:00Z, a Unix time or a duration \
                 like 10m"
            )
        });
    }
    let d = super::parse_duration(s).map_err(|e| {
        anyhow::anyhow!(
            "--since {s}: {e}; write a duration like 10m or 1h30m, a Unix time, or a date \
             and time like 2026-12-01T20:22:00Z"
        )
    })?;
    Ok(now - d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_156_000;

    #[test]
    fn since_takes_what_docker_logs_takes() {
        let ok = |s: &str| since_epoch(s, NOW).unwrap();
        assert_eq!(ok("10m"), NOW - 600);
        assert_eq!(ok("1h30m"), NOW - 5400);
        assert_eq!(ok("1764620520"), 1_764_620_520);
        assert_eq!(ok("1764620520.123456789"), 1_764_620_520);
        assert_eq!(ok("2026-12-01T20:22:00Z"), 1_796_156_520);
        assert_eq!(ok("2026-12-01T20:22:00.5Z"), 1_796_156_520);
        assert_eq!(ok("2026-12-01T21:22:00+01:00"), 1_796_156_520);
        assert_eq!(ok("2026-12-01T19:52:00-00:30"), 1_796_156_520);
    }

    #[test]
    fn since_says_what_to_write() {
        for bad in [
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-01T25:00:00Z",
            "10x",
        ] {
            let e = since_epoch(bad, NOW).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--since {bad}: ")), "{e}");
            assert!(e.contains("2026-12-01T20:22:00Z"), "{e}");
            assert!(!e.contains("unknown unit \"-\""), "{e}");
        }
    }
}
