//! `hoist ingress`: the load balancer on every machine and what it routes to —
//! the live pool read from each Caddy's admin API (inside its container), each
//! upstream named by the replica behind it, with its health as that ingress sees
//! it (`ingress::health`).

use super::project_args::ProjectArgs;
use super::{Global, table};
use crate::engine;
use crate::ingress::{address, health, live};
use anyhow::Result;
use bollard::query_parameters::InspectContainerOptions;
use clap::Args;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Show the ingress on every machine and the replicas each one routes to.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist ingress\n  hoist ingress --json\n\nExit codes: 0 ok, 1 error or an ingress could not be read (the others are still listed)."
)]
pub struct IngressArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(
    global: &Global,
    project_args: &ProjectArgs,
    args: IngressArgs,
) -> Result<ExitCode> {
    let project = super::project_name(project_args)?;
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    // Which replica listens at ADDRESS:PORT, over all machines.
    let mut owners = std::collections::HashMap::new();
    for (m, r) in &conns.results {
        let (Ok(e), Ok(addr)) = (r, address::peer_address(m)) else {
            continue;
        };
        for rep in crate::observe::list_replicas(&e.docker, &project)
            .await
            .unwrap_or_default()
        {
            for (_, host_port) in &rep.ports {
                owners.insert(
                    format!("{addr}:{host_port}"),
                    format!("{}.{}@{}", rep.service, rep.slot, m.name),
                );
            }
        }
    }
    // Which service each upstream belongs to, and that service's route (its health check).
    let mut services = std::collections::HashMap::new();
    for (m, r) in &conns.results {
        let (Ok(e), Ok(addr)) = (r, address::peer_address(m)) else {
            continue;
        };
        for rep in crate::observe::list_replicas(&e.docker, &project)
            .await
            .unwrap_or_default()
        {
            for (_, host_port) in &rep.ports {
                services.insert(format!("{addr}:{host_port}"), rep.service.clone());
            }
        }
    }
    let routes = live::from_machines(&project, &fleet.machines, &conns.engines())
        .await
        .map(|i| i.spec().routes.clone())
        .unwrap_or_default();
    let name = live::container_name(&project);
    let mut ingresses = Vec::new();
    let mut failed = false;
    for (m, r) in &conns.results {
        let mut entry = json!({"machine": m.name, "container": name});
        match r {
            Err(e) => {
                entry["error"] = json!(e.to_string());
                failed = true;
            }
            Ok(e) => match read(&e.docker, &name).await {
                Ok((state, ports, pool)) => {
                    entry["state"] = json!(state);
                    entry["ports"] = json!(ports);
                    let probes = pool.iter().map(|u| {
                        let addr = u["address"].as_str().unwrap_or_default().to_string();
                        let route = services
                            .get(&addr)
                            .and_then(|s| routes.iter().find(|r| &r.service == s));
                        let (docker, name) = (&e.docker, &name);
                        async move {
                            match route {
                                Some(r) => {
                                    Some(health::probe(docker, name, &addr, &r.health).await)
                                }
                                None => None,
                            }
                        }
                    });
                    let probes = futures_util::future::join_all(probes).await;
                    entry["upstreams"] = Value::Array(
                        pool.into_iter()
                            .zip(probes)
                            .map(|(u, probe)| {
                                let addr = u["address"].as_str().unwrap_or_default().to_string();
                                json!({
                                    "address": addr,
                                    "replica": owners.get(&addr),
                                    "requests": u["num_requests"],
                                    "fails": u["fails"],
                                    "health": probe,
                                })
                            })
                            .collect(),
                    );
                }
                Err(err) => {
                    entry["error"] = json!(format!("{err:#}"));
                    failed = true;
                }
            },
        }
        ingresses.push(entry);
    }
    conns.close().await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"schema": 1, "project": project, "ingresses": ingresses})
            )?
        );
    } else {
        let mut rows = Vec::new();
        for i in &ingresses {
            let machine = i["machine"].as_str().unwrap_or_default().to_string();
            if let Some(e) = i["error"].as_str() {
                rows.push(vec![
                    machine,
                    format!("error: {e}"),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                continue;
            }
            let ports: Vec<&str> = i["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let head = format!("{} {}", i["state"].as_str().unwrap_or("?"), ports.join(" "));
            let ups = i["upstreams"].as_array().cloned().unwrap_or_default();
            if ups.is_empty() {
                rows.push(vec![
                    machine.clone(),
                    head.clone(),
                    "(none)".into(),
                    String::new(),
                    String::new(),
                ]);
            }
            for (n, u) in ups.iter().enumerate() {
                rows.push(vec![
                    if n == 0 {
                        machine.clone()
                    } else {
                        String::new()
                    },
                    if n == 0 { head.clone() } else { String::new() },
                    u["address"].as_str().unwrap_or_default().to_string(),
                    u["replica"].as_str().unwrap_or("?").to_string(),
                    health_cell(&u["health"]),
                ]);
            }
        }
        print!(
            "{}",
            table::render(
                &["MACHINE", "INGRESS", "UPSTREAM", "REPLICA", "HEALTH"],
                &rows
            )
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `healthy`, `unhealthy: GET /nope: server returned error: HTTP/1.1 404 Not Found`,
/// or `?` for an upstream of no known route.
fn health_cell(h: &Value) -> String {
    match h["healthy"].as_bool() {
        Some(true) => "healthy".into(),
        Some(false) => format!(
            "unhealthy: {}: {}",
            h["check"].as_str().unwrap_or_default(),
            h["detail"].as_str().unwrap_or_default()
        ),
        None => "?".into(),
    }
}

/// The ingress container's state, published ports, and Caddy's live upstream pool.
async fn read(docker: &bollard::Docker, name: &str) -> Result<(String, Vec<String>, Vec<Value>)> {
    let c = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .map_err(|_| anyhow::anyhow!("no ingress container {name} (run `hoist up`)"))?;
    let state = c
        .state
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut ports: Vec<String> = c
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            let host = v?.into_iter().next()?.host_port?;
            Some(format!("{host}->{k}"))
        })
        .collect();
    ports.sort();
    let url = "http://localhost:2019/reverse_proxy/upstreams";
    let (code, out) = crate::apply::ops::exec(docker, name, &["wget", "-q", "-O-", url]).await?;
    if code != 0 {
        anyhow::bail!("reading {url} in {name}: {}", out.trim());
    }
    let pool: Vec<Value> = serde_json::from_str(out.trim())?;
    Ok((state, ports, pool))
}
