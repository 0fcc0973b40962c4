//! `hoist machines`: is every machine reachable, and what is it?

use super::{Global, table};
use crate::engine::{self, Engine};
use crate::labels;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Show every machine of the inventory: reachable or why not, engine, OS/arch,
/// CPUs, memory, hoist's containers there, the project's sealing key (its ID), the fleet's TLS
/// credentials of the encrypted mesh (missing, wrong, or valid until when), and labels.
/// `hoist machines init` installs an engine on machines that have none.
#[derive(Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  hoist machines\n  hoist -m prod.yaml machines --json\n  hoist -m prod.yaml machines init --dry-run\n\nExit codes: 0 all machines reachable, 1 any machine unreachable (all are still reported)."
)]
pub struct MachinesArgs {
    #[command(subcommand)]
    command: Option<MachinesCommand>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum MachinesCommand {
    Init(super::machines_init::InitArgs),
}

pub async fn run(
    global: &Global,
    project_args: &super::project_args::ProjectArgs,
    args: MachinesArgs,
) -> Result<ExitCode> {
    if let Some(MachinesCommand::Init(init)) = args.command {
        return super::machines_init::run(global, init).await;
    }
    // Count the current project's containers when there is one (-p or a compose
    // file here); otherwise every hoist project's.
    let project = super::project_name(project_args).ok();
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    // The project's sealing key on each machine (docs/security.md): its ID, never the key.
    let keys = match &project {
        Some(p) => Some(crate::seal::read_all(&conns, p).await),
        None => None,
    };
    let key_of = |machine: &str| -> (String, serde_json::Value) {
        use crate::seal::Held;
        let Some(found) = &keys else {
            return ("-".into(), serde_json::Value::Null);
        };
        match found.machines.iter().find(|(m, _)| m == machine) {
            Some((_, Ok(Held::Key(k)))) => (k.id(), json!(k.id())),
            Some((_, Ok(Held::Nothing))) => ("none".into(), json!("none")),
            Some((_, Ok(Held::Unreadable(why)))) => {
                ("unreadable".into(), json!({ "unreadable": why }))
            }
            Some((_, Err(e))) => ("?".into(), json!({ "error": e })),
            None => ("-".into(), serde_json::Value::Null),
        }
    };
    let tls = tls_states(&fleet, &conns).await;
    let tls_of = |machine: &str| -> (String, serde_json::Value) {
        match tls.as_ref().and_then(|t| t.get(machine)) {
            Some(state) => (state.text(), state.json()),
            None => ("-".into(), serde_json::Value::Null),
        }
    };
    let mut rows = Vec::new();
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for (machine, result) in &conns.results {
        let address = match &machine.address {
            crate::inventory::Address::Local => format!("local {}", machine.docker_socket),
            crate::inventory::Address::Ssh(t) => format!("ssh {}", t.destination),
        };
        let labels_text = machine
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        match result {
            Ok(engine) => {
                let containers = count_containers(engine).await;
                let (count_text, counts) = match (&containers, &project) {
                    (Ok(c), Some(p)) => (c.get(p).copied().unwrap_or(0).to_string(), json!(c)),
                    (Ok(c), None) => (c.values().sum::<usize>().to_string(), json!(c)),
                    (Err(e), _) => ("?".to_string(), json!({ "error": e })),
                };
                let f = &engine.facts;
                let (key_text, key_json) = key_of(&machine.name);
                let (tls_text, tls_json) = tls_of(&machine.name);
                // Drained (`hoist drain`): reachable, but it takes no replica.
                let drained = crate::apply::cordon::read(&engine.docker)
                    .await
                    .ok()
                    .flatten();
                rows.push(vec![
                    machine.name.clone(),
                    if drained.is_some() { "drained" } else { "ok" }.into(),
                    f.engine_version.clone(),
                    f.api_version.clone(),
                    format!("{}/{}", f.os, f.arch),
                    f.cpus.to_string(),
                    table::bytes(f.memory_bytes),
                    count_text,
                    key_text,
                    tls_text,
                    labels_text,
                ]);
                records.push(json!({
                    "name": machine.name, "address": address, "reachable": true, "error": null,
                    "engine_version": f.engine_version, "api_version": f.api_version,
                    "os": f.os, "arch": f.arch, "operating_system": f.operating_system,
                    "cpus": f.cpus, "memory_bytes": f.memory_bytes, "hostname": f.hostname,
                    "storage_driver": f.storage_driver, "containerd_image_store": f.containerd_image_store,
                    "podman": f.podman, "rootless": f.rootless,
                    "labels": machine.labels, "containers": counts, "sealing_key": key_json,
                    "tls": tls_json, "drained": drained,
                }));
            }
            Err(e) => {
                rows.push(vec![
                    machine.name.clone(),
                    "UNREACHABLE".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    labels_text,
                ]);
                failures.push(format!("{} ({address}): {e}", machine.name));
                records.push(json!({
                    "name": machine.name, "address": address, "reachable": false, "error": e.to_string(),
                    "labels": machine.labels, "drained": null,
                }));
            }
        }
    }
    let unreachable = failures.len();
    conns.close().await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "schema": 1, "source": fleet.source, "machines": records })
            )?
        );
    } else {
        print!(
            "{}",
            table::render(
                &[
                    "MACHINE",
                    "STATE",
                    "ENGINE",
                    "API",
                    "OS/ARCH",
                    "CPUS",
                    "MEMORY",
                    "CONTAINERS",
                    "KEY",
                    "TLS",
                    "LABELS"
                ],
                &rows
            )
        );
        for f in &failures {
            eprintln!("hoist: {f}");
        }
        for (m, state) in tls.iter().flatten() {
            if let TlsState::Error(e) = state {
                eprintln!("hoist: {m}: reading the fleet's TLS credentials: {e}");
            }
        }
        if tls
            .as_ref()
            .is_some_and(|t| t.values().any(|s| !matches!(s, TlsState::Valid { .. })))
        {
            eprintln!(
                "hoist: machines lack the fleet's TLS credentials or hold wrong ones (TLS \
                 column); `hoist up` of a project with `x-hoist: {{mesh: {{encrypt: true}}}}` \
                 gives every machine the fleet CA and a certificate from it"
            );
        }
        if let (Some(p), Some(found)) = (&project, &keys) {
            let mut ids: Vec<String> = found
                .machines
                .iter()
                .filter_map(|(_, r)| match r {
                    Ok(crate::seal::Held::Key(k)) => Some(k.id()),
                    _ => None,
                })
                .collect();
            ids.sort();
            ids.dedup();
            let lacking = found
                .machines
                .iter()
                .any(|(_, r)| !matches!(r, Ok(crate::seal::Held::Key(_))));
            if ids.len() > 1 || (lacking && !ids.is_empty()) {
                eprintln!(
                    "hoist: the machines do not all hold project {p}'s sealing key (KEY column); \
                     `hoist plan` says which key is kept and which replicas are resealed, \
                     `hoist up` repairs it"
                );
            }
        }
    }
    Ok(if unreachable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One reachable machine's TLS credentials (the encrypted mesh) as `machines` reports them.
enum TlsState {
    /// A certificate from the fleet's CA for its name and address, valid until (Unix seconds).
    Valid { ca: String, not_after: i64 },
    /// What `hoist up` would issue it a certificate for (`tls::decide`'s reason).
    Renew(String),
    /// Its credentials could not be read, or the machines hold two CAs.
    Error(String),
}

impl TlsState {
    fn text(&self) -> String {
        match self {
            TlsState::Valid { not_after, .. } => {
                let date = time::OffsetDateTime::from_unix_timestamp(*not_after)
                    .map(|t| t.date().to_string())
                    .unwrap_or_else(|_| "?".into());
                format!("ok until {date}")
            }
            TlsState::Renew(why) => why.clone(),
            TlsState::Error(_) => "?".into(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            TlsState::Valid { ca, not_after } => {
                json!({"state": "valid", "ca": ca, "not_after": not_after})
            }
            TlsState::Renew(why) => json!({"state": "issue", "why": why}),
            TlsState::Error(e) => json!({"state": "error", "error": e}),
        }
    }
}

/// Every reachable machine's TLS credentials, judged against the fleet (`tls::decide`); None
/// when no machine holds any (the fleet does not use the encrypted mesh).
async fn tls_states(
    fleet: &crate::inventory::Fleet,
    conns: &engine::Connections,
) -> Option<BTreeMap<String, TlsState>> {
    use crate::mesh::{credentials, tls};
    let engines = conns.engines();
    let mut held = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (m, d) in &engines {
        match credentials::read(d).await {
            Ok(h) => {
                held.insert(m.clone(), h);
            }
            Err(e) => {
                out.insert(m.clone(), TlsState::Error(format!("{e:#}")));
            }
        }
    }
    if held.values().all(|h| h.ca.is_none() && h.machine.is_none()) {
        return None;
    }
    let mut addresses = BTreeMap::new();
    for machine in &fleet.machines {
        if let Ok(a) = crate::ingress::address::peer_address(machine) {
            addresses.insert(machine.name.clone(), a);
        }
    }
    match tls::decide(&held, &addresses, credentials::now()) {
        Ok(decision) => {
            for (m, h) in &held {
                let state = match decision.issue.iter().find(|(im, _)| im == m) {
                    Some((_, why)) => TlsState::Renew(why.clone()),
                    None => match &h.machine {
                        Some((record, _)) => TlsState::Valid {
                            ca: record.ca.clone(),
                            not_after: record.not_after,
                        },
                        None => TlsState::Renew("no machine certificate".into()),
                    },
                };
                let state = match state {
                    TlsState::Valid { .. } if h.ca.is_none() => {
                        TlsState::Renew("no copy of the fleet CA".into())
                    }
                    other => other,
                };
                out.insert(m.clone(), state);
            }
        }
        Err(e) => {
            for m in held.keys() {
                out.insert(m.clone(), TlsState::Error(format!("{e:#}")));
            }
        }
    }
    Some(out)
}

/// hoist's containers on one engine, counted per project.
async fn count_containers(engine: &Engine) -> Result<BTreeMap<String, usize>, String> {
    let mut filters = std::collections::HashMap::new();
    filters.insert("label".to_string(), vec![labels::PROJECT.to_string()]);
    let list = engine
        .docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| e.to_string())?;
    let mut counts = BTreeMap::new();
    for c in list {
        if let Some(p) = c.labels.as_ref().and_then(|l| l.get(labels::PROJECT)) {
            *counts.entry(p.clone()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}
