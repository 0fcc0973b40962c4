//! The mesh on the machines: for every meshed service, one proxy container per machine
//! (`<project>-mesh-<service>`, labelled `io.hoist.role=mesh`) that joins the service's networks
//! under the service's names, so `api:8080` from any container on that machine lands on it, and
//! forwards each connection to a ready replica of the service on any machine, at
//! MACHINE_ADDRESS:HOSTPORT (replicas publish their ports on their machine's address).
//!
//! The configuration is rendered from what runs (`render`) and applied with a graceful reload
//! (SIGUSR2 to HAProxy's master: connections in flight finish). `Mesh` is also the rollout's
//! [`Hook`]: a replica leaves every proxy before it stops and joins once ready. Unrelated
//! containers are never touched: only the proxies follow.

use super::render::{self, Upstream};
use super::spec::MeshSpec;
use crate::apply::ops::{self, FileInContainer};
use crate::apply::rollout::{Hook, ReplicaRef};
use crate::inventory::Machine;
use crate::labels;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptions,
};
use futures_util::future::BoxFuture;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Where the configuration lives inside a proxy container (the official image's path).
pub const CONFIG_PATH: &str = "/usr/local/etc/haproxy/haproxy.cfg";
/// The role label value of mesh proxies.
pub const ROLE: &str = "mesh";
/// How long a replica stays out of every proxy before it stops: new connections go elsewhere
/// at once (the reload is immediate); this lets the proxies' reloads land everywhere.
const DRAIN: Duration = Duration::from_millis(500);

/// A proxy container's name on every machine.
pub fn container_name(project: &str, service: &str) -> String {
    format!("{project}-mesh-{service}")
}

/// The mesh of one project on the reachable machines of a fleet.
pub struct Mesh {
    project: String,
    spec: MeshSpec,
    /// Machines whose engine answers, by inventory name.
    engines: Vec<(String, Docker)>,
    /// Every machine's address as the others reach it (replicas publish there).
    addresses: BTreeMap<String, String>,
    /// The compose definitions of the project's networks, by engine name: a proxy joins its
    /// service's networks on every machine, also where no replica of the project runs yet.
    networks: BTreeMap<String, serde_json::Value>,
    /// Containers about to stop: already out of every proxy.
    draining: std::sync::Mutex<HashSet<String>>,
    /// The configuration each proxy was last given, by (machine, service): unchanged → no reload.
    applied: std::sync::Mutex<HashMap<(String, String), String>>,
    /// One sync at a time, so proxies never go back to an older view.
    syncing: tokio::sync::Mutex<()>,
}

impl Mesh {
    pub fn new(
        project: &str,
        spec: MeshSpec,
        networks: BTreeMap<String, serde_json::Value>,
        machines: &[Machine],
        engines: &[(String, Docker)],
    ) -> Result<Mesh> {
        let mut addresses = BTreeMap::new();
        for m in machines {
            addresses.insert(m.name.clone(), crate::ingress::address::peer_address(m)?);
        }
        Ok(Mesh {
            project: project.to_string(),
            spec,
            engines: engines.to_vec(),
            addresses,
            networks,
            draining: std::sync::Mutex::new(HashSet::new()),
            applied: std::sync::Mutex::new(HashMap::new()),
            syncing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn spec(&self) -> &MeshSpec {
        &self.spec
    }

    /// Whether replicas of `service` are reached through the mesh (they publish its ports on
    /// their machine's address and leave its names to the proxies).
    pub fn carries(&self, service: &str) -> bool {
        self.spec.services.contains_key(service)
    }

    /// The address replicas on `machine` publish their ports on.
    pub fn address(&self, machine: &str) -> Option<&str> {
        self.addresses.get(machine).map(String::as_str)
    }

    /// Every machine runs one proxy per meshed service (recreated only when its image, ports
    /// or names change) and none for services no longer meshed.
    pub async fn ensure(&self) -> Result<()> {
        let upstreams = self.upstreams().await;
        let upstreams = &upstreams;
        let jobs = self.engines.iter().map(|(m, d)| async move {
            self.ensure_on(m, d, upstreams)
                .await
                .with_context(|| format!("mesh@{m}"))
        });
        for r in futures_util::future::join_all(jobs).await {
            r?;
        }
        Ok(())
    }

    async fn ensure_on(
        &self,
        machine: &str,
        docker: &Docker,
        upstreams: &BTreeMap<String, Vec<Upstream>>,
    ) -> Result<()> {
        for (id, service) in proxies(docker, &self.project).await? {
            if !self.carries(&service) {
                ops::remove(docker, &id).await?;
            }
        }
        let wanted: std::collections::BTreeSet<&String> = self
            .spec
            .services
            .values()
            .flat_map(|m| m.networks.keys())
            .collect();
        for net in wanted {
            let spec = self
                .networks
                .get(net)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            ops::ensure_network(docker, net, &self.project, &spec).await?;
        }
        for (service, meshed) in &self.spec.services {
            let name = container_name(&self.project, service);
            let hash = self.proxy_hash(service);
            if let Ok(c) = docker
                .inspect_container(&name, None::<InspectContainerOptions>)
                .await
            {
                let have = c
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(labels::SPEC_HASH))
                    .cloned();
                let id = c.id.unwrap_or_default();
                if have.as_deref() == Some(hash.as_str()) {
                    // Running: reloaded by `sync` if its view changed. Stopped (or crashing on
                    // a configuration it was left with): given the current one, then started.
                    let running = c
                        .state
                        .is_some_and(|s| s.running == Some(true) && s.restarting != Some(true));
                    if !running {
                        let text = self.render(machine, service, upstreams)?;
                        ops::copy_files(docker, &id, &[config_file(&text)]).await?;
                        ops::start(docker, &id).await?;
                        if let Ok(mut a) = self.applied.lock() {
                            a.insert((machine.to_string(), service.clone()), text);
                        }
                    }
                    continue;
                }
                ops::remove(docker, &id).await?;
            }
            let mut endpoints = meshed
                .networks
                .iter()
                .map(|(net, names)| (net.clone(), json!({ "Aliases": names })));
            let (first_net, first_ep) = endpoints
                .next()
                .context("a meshed service without networks")?;
            let extra: Vec<(String, serde_json::Value)> = endpoints.collect();
            let request = json!({
                "Image": self.spec.image,
                "Labels": {
                    labels::PROJECT: self.project,
                    labels::MACHINE: machine,
                    labels::ROLE: ROLE,
                    labels::MESH_SERVICE: service,
                    labels::SPEC_HASH: hash,
                    // The whole mesh, so verbs without the compose file (`rollback`) follow it.
                    labels::SPEC: serde_json::to_string(&self.spec)?,
                },
                // Ports below 1024 inside the container, as any user (engines before 20.10 do
                // not set this sysctl themselves).
                "HostConfig": {
                    "RestartPolicy": {"Name": "unless-stopped"},
                    "Sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
                },
                "NetworkingConfig": {"EndpointsConfig": {first_net: first_ep}},
            });
            let id = ops::create(docker, &name, &request, &extra).await?;
            // HAProxy refuses to start without its configuration: write it first.
            let text = self.render(machine, service, upstreams)?;
            ops::copy_files(docker, &id, &[config_file(&text)]).await?;
            ops::start(docker, &id).await?;
            if let Ok(mut a) = self.applied.lock() {
                a.insert((machine.to_string(), service.clone()), text);
            }
        }
        Ok(())
    }

    fn proxy_hash(&self, service: &str) -> String {
        let text = format!(
            "{} {:?}",
            self.spec.image,
            self.spec
                .services
                .get(service)
                .map(|s| (&s.ports, &s.networks))
        );
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    fn render(
        &self,
        machine: &str,
        service: &str,
        upstreams: &BTreeMap<String, Vec<Upstream>>,
    ) -> Result<String> {
        let ports = self
            .spec
            .services
            .get(service)
            .map(|s| s.ports.clone())
            .unwrap_or_default();
        let none = Vec::new();
        render::haproxy_cfg(
            &self.project,
            service,
            machine,
            &ports,
            upstreams.get(service).unwrap_or(&none),
        )
    }

    /// Renders every proxy's configuration from what runs now and reloads the proxies whose
    /// configuration changed. A machine that fails is reported; the others still get theirs.
    pub async fn sync(&self) -> Result<()> {
        let _one = self.syncing.lock().await;
        let upstreams = self.upstreams().await;
        let mut jobs = Vec::new();
        for (m, d) in &self.engines {
            for service in self.spec.services.keys() {
                let text = self.render(m, service, &upstreams)?;
                let key = (m.clone(), service.clone());
                let unchanged = self
                    .applied
                    .lock()
                    .map(|a| a.get(&key) == Some(&text))
                    .unwrap_or(false);
                if unchanged {
                    continue;
                }
                jobs.push(async move {
                    let name = container_name(&self.project, service);
                    let r = apply_config(d, &name, &text)
                        .await
                        .with_context(|| format!("mesh {service}@{m}"));
                    if r.is_ok()
                        && let Ok(mut a) = self.applied.lock()
                    {
                        a.insert(key, text);
                    }
                    r
                });
            }
        }
        let errors: Vec<String> = futures_util::future::join_all(jobs)
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}")))
            .collect();
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        Ok(())
    }

    /// Ready replicas of the meshed services on every machine, minus those draining.
    pub async fn upstreams(&self) -> BTreeMap<String, Vec<Upstream>> {
        let draining = self.draining.lock().map(|d| d.clone()).unwrap_or_default();
        let reads = self.engines.iter().map(|(m, d)| async move {
            (
                m,
                crate::ingress::live::list_replicas(d, &self.project)
                    .await
                    .unwrap_or_default(),
            )
        });
        let mut out: BTreeMap<String, Vec<Upstream>> = BTreeMap::new();
        for (machine, replicas) in futures_util::future::join_all(reads).await {
            let Some(addr) = self.addresses.get(machine) else {
                continue;
            };
            for r in replicas {
                let Some(meshed) = self.spec.services.get(&r.service) else {
                    continue;
                };
                if !r.ready || draining.contains(&r.id) {
                    continue;
                }
                let ports: BTreeMap<u16, String> = r
                    .ports
                    .iter()
                    .filter_map(|(private, public)| {
                        let p = u16::try_from(*private).ok()?;
                        meshed
                            .ports
                            .contains(&p)
                            .then(|| (p, format!("{addr}:{public}")))
                    })
                    .collect();
                if ports.is_empty() {
                    continue;
                }
                out.entry(r.service.clone()).or_default().push(Upstream {
                    machine: machine.clone(),
                    slot: r.slot.clone(),
                    ports,
                });
            }
        }
        out
    }

    /// The proxies run, and balance over what runs now.
    pub async fn converge(&self) -> Result<()> {
        self.ensure().await?;
        self.sync().await
    }

    /// The proxy image on every machine, shipped or pulled with the project's images.
    pub fn add_images(&self, prep: &mut crate::pipeline::rollout::Preparation) {
        for (m, _) in &self.engines {
            prep.images.insert((
                m.clone(),
                self.spec.image.clone(),
                crate::pipeline::rollout::PullPolicyKey::Missing,
                None,
            ));
        }
    }

    /// What `hoist plan` says about the mesh: proxies to start or remove, and services whose
    /// proxies on every machine will follow changed replicas.
    pub async fn plan_lines(&self, plan: &crate::core::plan::Plan) -> Vec<String> {
        let mut lines = Vec::new();
        let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut extra: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (m, d) in &self.engines {
            let running: HashMap<String, String> =
                proxy_hashes(d, &self.project).await.unwrap_or_default();
            for service in self.spec.services.keys() {
                if running.get(service) != Some(&self.proxy_hash(service)) {
                    missing.entry(service).or_default().push(m);
                }
            }
            for service in running.keys().filter(|s| !self.carries(s)) {
                extra.entry(service.clone()).or_default().push(m);
            }
        }
        for (service, machines) in missing {
            lines.push(format!(
                "+ proxy for {service} (ports {}) on {}",
                ports_text(&self.spec.services[service].ports),
                machines.join(", ")
            ));
        }
        for (service, machines) in extra {
            lines.push(format!("- proxy for {service} on {}", machines.join(", ")));
        }
        let mut follow: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &plan.steps {
            if let Some(service) = s.service.as_deref()
                && self.carries(service)
                && !matches!(s.action, crate::core::plan::Action::Unchanged { .. })
            {
                *follow.entry(service).or_default() += 1;
            }
        }
        for (service, n) in follow {
            lines.push(format!(
                "~ {service}: the proxies on {} machines follow {n} replica change{}",
                self.engines.len(),
                if n == 1 { "" } else { "s" }
            ));
        }
        lines
    }
}

fn ports_text(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Hook for Mesh {
    fn after_ready<'a>(&'a self, _replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.sync().await {
                eprintln!("hoist: warning: updating the mesh: {e:#}");
            }
        })
    }

    fn before_stop<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !self.carries(replica.service) {
                return;
            }
            if let Ok(mut d) = self.draining.lock() {
                d.insert(replica.id.to_string());
            }
            if let Err(e) = self.sync().await {
                eprintln!(
                    "hoist: warning: draining {} from the mesh: {e:#}",
                    replica.service
                );
            }
            tokio::time::sleep(DRAIN).await;
        })
    }
}

fn config_file(text: &str) -> FileInContainer {
    FileInContainer {
        target: CONFIG_PATH.to_string(),
        content: text.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// Writes the configuration into a proxy and reloads HAProxy gracefully: SIGUSR2 to its
/// master (PID 1, `haproxy -W`) starts new workers on the new configuration while the old
/// ones finish their connections.
async fn apply_config(docker: &Docker, container: &str, text: &str) -> Result<()> {
    ops::copy_files(docker, container, &[config_file(text)]).await?;
    let reload = docker
        .kill_container(
            container,
            Some(KillContainerOptions {
                signal: "SIGUSR2".to_string(),
            }),
        )
        .await;
    match reload {
        Ok(()) => Ok(()),
        // Not running: started on the new configuration — or, when its restart policy is
        // between two tries (the engine refuses a start then), restarted on it by the engine.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            let _ = ops::start(docker, container).await;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("reloading {container}")),
    }
}

/// The project's mesh proxies on one machine: (container ID, service).
async fn proxies(docker: &Docker, project: &str) -> Result<Vec<(String, String)>> {
    Ok(list(docker, project)
        .await?
        .into_iter()
        .map(|(id, service, _)| (id, service))
        .collect())
}

/// Service → the spec hash of its proxy on one machine.
async fn proxy_hashes(docker: &Docker, project: &str) -> Result<HashMap<String, String>> {
    Ok(list(docker, project)
        .await?
        .into_iter()
        .map(|(_, service, hash)| (service, hash))
        .collect())
}

async fn list(docker: &Docker, project: &str) -> Result<Vec<(String, String, String)>> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}={project}", labels::PROJECT),
            format!("{}={ROLE}", labels::ROLE),
        ],
    )]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let l = c.labels.unwrap_or_default();
            Some((
                c.id?,
                l.get(labels::MESH_SERVICE)?.clone(),
                l.get(labels::SPEC_HASH).cloned().unwrap_or_default(),
            ))
        })
        .collect())
}

/// Removes the project's mesh proxies (the file no longer asks for a mesh).
pub async fn remove_all(engines: &[(String, Docker)], project: &str) -> Result<usize> {
    let mut removed = 0;
    for (m, d) in engines {
        for (id, _) in proxies(d, project)
            .await
            .with_context(|| format!("mesh@{m}"))?
        {
            ops::remove(d, &id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The mesh as the machines run it (read back from a proxy's labels), for verbs without the
/// compose file. None: the project has no mesh.
pub async fn from_machines(
    project: &str,
    machines: &[Machine],
    engines: &[(String, Docker)],
) -> Option<Mesh> {
    for (_, d) in engines {
        let Ok(list) = list(d, project).await else {
            continue;
        };
        for (id, _, _) in list {
            let spec = d
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
                .ok()
                .and_then(|c| c.config?.labels?.get(labels::SPEC).cloned())
                .and_then(|text| serde_json::from_str::<MeshSpec>(&text).ok());
            // The networks exist wherever a proxy already runs.
            if let Some(spec) = spec {
                return Mesh::new(project, spec, BTreeMap::new(), machines, engines).ok();
            }
        }
    }
    None
}

/// What `hoist up` calls: the mesh of `project` as `resolved` names it, when the file asks
/// for one.
pub fn for_project(
    project: &crate::model::Project,
    resolved: &crate::pipeline::resolve::Resolved,
    fleet: &crate::inventory::Fleet,
    engines: &[(String, Docker)],
) -> Result<Option<Mesh>> {
    match super::spec::from_project(project, &resolved.network_names)? {
        Some(spec) => Ok(Some(Mesh::new(
            &resolved.project,
            spec,
            resolved.network_specs.clone(),
            &fleet.machines,
            engines,
        )?)),
        None => Ok(None),
    }
}
