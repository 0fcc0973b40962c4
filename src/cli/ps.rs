//! `hoist ps`: every replica of the project on every machine.

use super::project_args::ProjectArgs;
use super::{Global, table};
use crate::engine;
use crate::observe::{self, SeenContainer};
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::process::ExitCode;

/// List the project's replicas: service, slot, machine, state, health, image, age.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist ps\n  hoist ps web --json\n  hoist ps --all   # also the stopped previous releases kept for rollback\n\nExit codes: 0 ok, 1 error or a machine could not be read (the others are still listed)."
)]
pub struct PsArgs {
    /// Only these services.
    services: Vec<String>,
    /// Also list previous releases kept (stopped) for rollback.
    #[arg(short, long)]
    all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: PsArgs) -> Result<ExitCode> {
    let project_name = super::project_name(project_args)?;
    let project = project_name.as_str();
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let seen = observe::observe(&conns, project).await;
    let scale = crate::apply::scale_record::read(&conns, project).await;
    conns.close().await;
    super::services::check_known(project_args, project, &seen, &args.services)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut rows = Vec::new();
    let mut records = Vec::new();
    let mut unread = Vec::new();
    let mut drained = Vec::new();
    for (machine, state) in &seen.machines {
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                unread.push(format!("{machine}: {e}"));
                continue;
            }
        };
        if state
            .volumes
            .iter()
            .any(|v| v == crate::labels::DRAINED_VOLUME)
        {
            drained.push(machine.clone());
        }
        let current = observe::current(&state.containers);
        for c in &state.containers {
            // The ingress fills no slot; `hoist ingress` shows it and what it routes to.
            if c.labels.contains_key(crate::labels::ROLE) {
                continue;
            }
            if !args.services.is_empty() && !args.services.contains(&c.service) {
                continue;
            }
            let is_current = current.iter().any(|x| x.id == c.id);
            if !is_current && !args.all {
                continue;
            }
            rows.push(vec![
                c.service.clone(),
                slot_text(c),
                machine.clone(),
                if is_current {
                    c.state.clone()
                } else {
                    format!("{} (previous)", c.state)
                },
                c.health.clone().unwrap_or_else(|| "-".into()),
                image_text(c),
                ports_text(c),
                age(now - c.created),
            ]);
            records.push(json!({
                "service": c.service, "slot": slot_text(c), "machine": machine, "id": c.id, "name": c.name,
                "state": c.state, "health": c.health, "image": c.image, "image_id": c.image_id, "tag": c.labels.get(crate::labels::IMAGE),
                "release": c.release, "spec_hash": c.spec_hash, "current": is_current, "created": c.created,
                "status": c.status, "ports": c.ports,
            }));
        }
    }
    rows.sort();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"schema": 1, "project": project, "replicas": records, "unreachable": unread,
                    "scale": scale.values().collect::<Vec<_>>(), "drained": drained})
            )?
        );
    } else {
        print!(
            "{}",
            table::render(
                &[
                    "SERVICE", "SLOT", "MACHINE", "STATE", "HEALTH", "IMAGE", "PORTS", "AGE"
                ],
                &rows
            )
        );
        for r in scale.values() {
            println!(
                "{}: {} replicas set by hoist watch at {}: {}",
                r.service, r.replicas, r.at, r.reason
            );
        }
        for m in &drained {
            println!("{m}: drained (no replica runs there; `hoist undrain {m}` lifts it)");
        }
        for u in &unread {
            eprintln!("hoist: could not read {u}");
        }
    }
    Ok(if unread.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn slot_text(c: &SeenContainer) -> String {
    c.slot
        .as_ref()
        .map(|s| s.label_value())
        .unwrap_or_else(|| "?".into())
}

fn ports_text(c: &SeenContainer) -> String {
    let mut p = c.ports.clone();
    p.sort();
    p.dedup();
    p.join(",")
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The image as the compose file names it, with the digest it was pinned to
/// (`reg/app:1 (sha256:0123456789ab)`), or the reference the container was created from.
fn image_text(c: &crate::observe::SeenContainer) -> String {
    match (c.labels.get(crate::labels::IMAGE), c.image.split_once('@')) {
        (Some(tag), Some((_, digest))) => {
            let short = digest.get(..19).unwrap_or(digest);
            format!("{tag} ({short})")
        }
        _ => c.image.clone(),
    }
}
