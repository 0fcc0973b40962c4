//! Observe: read what a project runs on every machine, by hoist's labels.
//!
//! The engines are hoist's only state, so this is how hoist remembers: list the
//! project's containers, networks and volumes (and the images present) on each
//! reachable machine, in parallel. Objects without hoist's project label are
//! never listed, so they are never touched.

use crate::core::observed::Slot;
use crate::core::ports::{Held, HostPort};
use crate::engine::Connections;
use crate::labels;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListNetworksOptions, ListVolumesOptions,
};
use std::collections::{BTreeMap, HashMap};

/// One container of the project as its machine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    /// None when the label is missing or unreadable (then it is no slot of ours).
    pub slot: Option<Slot>,
    pub spec_hash: String,
    pub release: String,
    /// `running`, `exited`, `created`, `restarting`, `paused`, `dead`, …
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or None without a healthcheck.
    pub health: Option<String>,
    /// The image reference it was created from, and the image ID it runs.
    pub image: String,
    pub image_id: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub status: String,
    /// Published ports as `host_ip:port->target/proto`.
    pub ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The container that currently fills each slot: the running one (the newest if
/// several), else the newest. The others of a slot are previous releases kept
/// for rollback, or leftovers of an interrupted run.
pub fn current(containers: &[SeenContainer]) -> Vec<&SeenContainer> {
    let mut best: BTreeMap<(&str, &Slot), &SeenContainer> = BTreeMap::new();
    for c in containers {
        let Some(slot) = &c.slot else { continue };
        let key = (c.service.as_str(), slot);
        let better = match best.get(&key) {
            None => true,
            Some(b) => {
                let rank = |x: &SeenContainer| (x.state == "running", x.created, x.id.clone());
                rank(c) > rank(b)
            }
        };
        if better {
            best.insert(key, c);
        }
    }
    best.into_values().collect()
}

/// Everything of a project on one machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineState {
    pub containers: Vec<SeenContainer>,
    /// Names of all volumes on the machine (a project's data may predate hoist).
    pub volumes: Vec<String>,
    /// Names of the volumes labelled for the project (data, hoist's records and markers):
    /// what `down --volumes` removes.
    pub project_volumes: Vec<String>,
    /// Names of the project's networks (hoist's label): what `down` removes.
    pub networks: Vec<String>,
    /// Names of all networks on the machine: a project network made earlier by
    /// `docker compose` is reused, not planned again.
    pub all_networks: Vec<String>,
    /// Image ID → its tags, for every image on the machine.
    pub images: BTreeMap<String, Vec<String>>,
    /// Host ports published by running containers that are not the project's (another
    /// project's, or no one's): a plan that needs one of them is refused.
    pub held_ports: Vec<Held>,
}

/// What every machine runs, or why it could not be read.
pub struct Observation {
    pub machines: Vec<(String, Result<MachineState, String>)>,
}

/// Lists the project's objects on every connected machine in parallel. Machines
/// that failed to connect come back with their connection error.
pub async fn observe(conns: &Connections, project: &str) -> Observation {
    let reads = conns.results.iter().map(|(machine, engine)| async move {
        let state = match engine {
            Ok(e) => read_engine(e, project).await,
            Err(err) => Err(err.to_string()),
        };
        (machine.name.clone(), state)
    });
    Observation {
        machines: futures_util::future::join_all(reads).await,
    }
}

/// [`observe`], each machine bounded by `within`: one that does not answer in time
/// comes back with an error saying so (`hoist watch` polls with a short bound).
pub async fn observe_within(
    conns: &Connections,
    project: &str,
    within: std::time::Duration,
) -> Observation {
    let reads = conns.results.iter().map(|(machine, engine)| async move {
        let state = match engine {
            Ok(e) => match tokio::time::timeout(within, read_engine(e, project)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {:.1}s", within.as_secs_f64())),
            },
            Err(err) => Err(err.to_string()),
        };
        (machine.name.clone(), state)
    });
    Observation {
        machines: futures_util::future::join_all(reads).await,
    }
}

fn project_filter(project: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{}={project}", labels::PROJECT)],
    )])
}

/// [`read_machine`], with the health of Podman's containers read one by one: Podman's
/// Docker-compatible container list leaves health out of the status text (`Up 12 seconds`), so
/// without this `ps` would show none and `watch` would never see an unhealthy replica there.
async fn read_engine(
    engine: &crate::engine::Engine,
    project: &str,
) -> Result<MachineState, String> {
    let mut state = read_machine(&engine.docker, project).await?;
    if engine.facts.podman {
        let running = state
            .containers
            .iter_mut()
            .filter(|c| c.state == "running" && c.health.is_none());
        let docker = &engine.docker;
        futures_util::future::join_all(running.map(|c| async move {
            if let Ok(i) = docker
                .inspect_container(
                    &c.id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
            {
                c.health = i
                    .state
                    .and_then(|s| s.health)
                    .and_then(|h| h.status)
                    .map(|s| s.to_string())
                    .filter(|s| s != "none" && !s.is_empty());
            }
        }))
        .await;
    }
    Ok(state)
}

async fn read_machine(docker: &Docker, project: &str) -> Result<MachineState, String> {
    let containers = docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(project_filter(project)),
        ..Default::default()
    }));
    let networks = docker.list_networks(None::<ListNetworksOptions>);
    let volumes = docker.list_volumes(None::<ListVolumesOptions>);
    let images = docker.list_images(Some(ListImagesOptions::default()));
    let running = docker.list_containers(None::<ListContainersOptions>);
    let (containers, networks, volumes, images, running) =
        tokio::join!(containers, networks, volumes, images, running);
    let running = running.map_err(|e| format!("listing containers: {e}"))?;
    let containers = containers.map_err(|e| format!("listing containers: {e}"))?;
    let networks = networks.map_err(|e| format!("listing networks: {e}"))?;
    let volumes = volumes.map_err(|e| format!("listing volumes: {e}"))?;
    let images = images.map_err(|e| format!("listing images: {e}"))?;

    let mut seen: Vec<SeenContainer> = containers
        .into_iter()
        .map(|c| {
            let labels: BTreeMap<String, String> =
                c.labels.unwrap_or_default().into_iter().collect();
            let status = c.status.unwrap_or_default();
            SeenContainer {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
                slot: labels.get(labels::SLOT).and_then(|s| Slot::from_label(s)),
                spec_hash: labels.get(labels::SPEC_HASH).cloned().unwrap_or_default(),
                release: labels.get(labels::RELEASE).cloned().unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                health: health_from_status(&status),
                image: c.image.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                created: c.created.unwrap_or(0),
                status,
                ports: c
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| {
                        let public = p.public_port?;
                        let ip = p.ip.unwrap_or_default();
                        let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
                        Some(format!("{ip}:{public}->{}/{proto}", p.private_port))
                    })
                    .collect(),
                labels,
            }
        })
        .collect();
    seen.sort_by(|a, b| (&a.service, &a.slot, &a.name).cmp(&(&b.service, &b.slot, &b.name)));
    let mut network_names: Vec<String> = networks
        .iter()
        .filter(|n| {
            n.labels
                .as_ref()
                .and_then(|l| l.get(labels::PROJECT))
                .is_some_and(|p| p == project)
        })
        .filter_map(|n| n.name.clone())
        .collect();
    let mut all_networks: Vec<String> = networks.into_iter().filter_map(|n| n.name).collect();
    all_networks.sort();

    network_names.sort();
    let volumes = volumes.volumes.unwrap_or_default();
    let mut project_volumes: Vec<String> = volumes
        .iter()
        .filter(|v| v.labels.get(labels::PROJECT).is_some_and(|p| p == project))
        .map(|v| v.name.clone())
        .collect();
    project_volumes.sort();
    let mut volume_names: Vec<String> = volumes.into_iter().map(|v| v.name).collect();
    volume_names.sort();
    let images = images
        .into_iter()
        .map(|i| {
            let mut tags = i.repo_tags;
            tags.retain(|t| t != "<none>:<none>");
            (i.id, tags)
        })
        .collect();
    let held_ports = running
        .into_iter()
        .filter(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(labels::PROJECT))
                .is_none_or(|p| p != project)
        })
        .flat_map(|c| {
            let holder = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let of = c
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::PROJECT))
                .cloned();
            c.ports
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |p| {
                    Some(Held {
                        port: HostPort {
                            port: p.public_port?,
                            proto: p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into()),
                        },
                        holder: holder.clone(),
                        project: of.clone(),
                    })
                })
        })
        .collect();
    Ok(MachineState {
        containers: seen,
        volumes: volume_names,
        project_volumes,
        networks: network_names,
        all_networks,
        images,
        held_ports,
    })
}

/// Engines before API 1.52 report health only inside the status text:
/// `Up 3 minutes (healthy)`, `Up 2 seconds (health: starting)`.
pub fn health_from_status(status: &str) -> Option<String> {
    if status.contains("(healthy)") {
        Some("healthy".into())
    } else if status.contains("(unhealthy)") {
        Some("unhealthy".into())
    } else if status.contains("(health: starting)") {
        Some("starting".into())
    } else {
        None
    }
}

/// A replica as the balancers (ingress and mesh) see it: what they put in their pools.
#[derive(Debug, Clone)]
pub struct Replica {
    pub id: String,
    pub service: String,
    pub slot: String,
    /// Running and healthy (or running without a healthcheck).
    pub ready: bool,
    /// (container port, host port) of its published TCP ports.
    pub ports: Vec<(u32, u16)>,
    /// Engine network name → its address there.
    pub addresses: std::collections::BTreeMap<String, String>,
}

/// The project's running replicas on one machine (hoist's own containers, which fill no
/// slot, excluded).
pub async fn list_replicas(docker: &Docker, project: &str) -> anyhow::Result<Vec<Replica>> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{}={project}", labels::PROJECT)],
    )]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let l = c.labels.unwrap_or_default();
            let service = l.get(labels::SERVICE)?.clone();
            let slot = l.get(labels::SLOT)?.clone();
            let status = c.status.unwrap_or_default();
            let running = c.state.map(|s| s.to_string()).as_deref() == Some("running");
            let ready = running && is_ready(health_from_status(&status).as_deref());
            let mut ports: Vec<(u32, u16)> = c
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.typ.map(|t| t.to_string()).as_deref() != Some("udp"))
                .filter_map(|p| Some((u32::from(p.private_port), p.public_port?)))
                .collect();
            ports.sort();
            ports.dedup();
            let addresses = c
                .network_settings
                .and_then(|n| n.networks)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(net, ep)| Some((net, ep.ip_address.filter(|a| !a.is_empty())?)))
                .collect();
            Some(Replica {
                id: c.id.unwrap_or_default(),
                service,
                slot,
                ready,
                ports,
                addresses,
            })
        })
        .collect())
}

/// The one readiness rule: running and healthy, or running without a healthcheck (the
/// engine reports no health then).
pub fn is_ready(health: Option<&str>) -> bool {
    matches!(health, None | Some("healthy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_comes_from_the_status_text() {
        assert_eq!(
            health_from_status("Up 3 minutes (healthy)").as_deref(),
            Some("healthy")
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(
            health_from_status("Up 9 minutes (unhealthy)").as_deref(),
            Some("unhealthy")
        );
        assert_eq!(health_from_status("Exited (0) 2 hours ago"), None);
    }
}
