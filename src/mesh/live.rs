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

use super::render::{self, Target, Upstream};
use super::spec::MeshSpec;
use crate::apply::ops;
use crate::apply::rollout::{Hook, ReplicaRef};
use crate::inventory::Machine;
use crate::labels;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use futures_util::future::BoxFuture;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

pub use super::reload::CONFIG_PATH;
use super::reload::{apply_config, config_file};
/// The role label value of mesh proxies.
pub const ROLE: &str = "mesh";
/// The key of a machine's gateway among the configurations applied (no service has this name).
const GATEWAY_KEY: &str = "\0gateway";
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
    /// One sync at a time, so proxies never go back to an older view; requests made during one
    /// share the next.
    syncing: crate::apply::coalesce::Coalesced,
    /// Machines given a new certificate whose gateway and proxies have not reloaded since.
    renewed: std::sync::Mutex<HashSet<String>>,
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
            syncing: crate::apply::coalesce::Coalesced::new(),
            renewed: std::sync::Mutex::new(HashSet::new()),
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
        if self.spec.encrypt {
            self.renew().await?;
            self.ensure_gateways().await?;
        }
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

    async fn ensure_on(&self, machine: &str, docker: &Docker, upstreams: &View) -> Result<()> {
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
            if let Some(c) = ops::current_by_hash(docker, &name, &hash).await? {
                // Running: reloaded by `sync` if its view changed. Stopped (or crashing on a
                // configuration it was left with): given the current one, then started.
                let running = c
                    .state
                    .is_some_and(|s| s.running == Some(true) && s.restarting != Some(true));
                if !running {
                    let id = c.id.unwrap_or_default();
                    let text = self.render(machine, service, upstreams)?;
                    ops::copy_files(docker, &id, &[config_file(&text)]).await?;
                    ops::start(docker, &id).await?;
                    if let Ok(mut a) = self.applied.lock() {
                        a.insert((machine.to_string(), service.clone()), text);
                    }
                }
                continue;
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
            let mut request = request;
            if self.spec.encrypt {
                // The machine's credentials, read-only; root's files (mode 0600), so HAProxy
                // runs as root inside the container (it reads them again at every reload).
                request["User"] = json!("0");
                request["HostConfig"]["Binds"] = json!([format!(
                    "{}:{}:ro",
                    super::credentials::VOLUME,
                    super::credentials::MOUNT_POINT
                )]);
            }
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
        // The encrypted mesh's proxies mount the credentials: another container. Unchanged
        // text (and hash) for the plain mesh.
        let encrypt = if self.spec.encrypt { " tls" } else { "" };
        let text = format!(
            "{}{encrypt} {:?}",
            self.spec.image,
            self.spec
                .services
                .get(service)
                .map(|s| (&s.ports, &s.networks))
        );
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    fn render(&self, machine: &str, service: &str, upstreams: &View) -> Result<String> {
        let ports = self
            .spec
            .services
            .get(service)
            .map(|s| s.ports.clone())
            .unwrap_or_default();
        render::haproxy_cfg(
            &self.project,
            service,
            machine,
            &ports,
            &upstreams.for_machine(service, machine),
        )
    }

    /// Renders every proxy's configuration from what runs now and reloads the proxies whose
    /// configuration changed. A machine that fails is reported; the others still get theirs.
    pub async fn sync(&self) -> Result<()> {
        self.syncing.run(|| self.sync_now()).await
    }

    async fn sync_now(&self) -> Result<()> {
        // A gateway knows a replica before any proxy sends it a connection.
        self.sync_gateways().await?;
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
        // Every gateway and proxy of a renewed machine has reloaded on its new certificate.
        if let Ok(mut r) = self.renewed.lock() {
            r.clear();
        }
        Ok(())
    }

    /// For `hoist watch` between deploys: renders every proxy's configuration from what runs
    /// and reloads the proxies whose file differs (read back from the proxy, since a watch
    /// round starts with no memory of what it wrote). Replicas restarted by their engine (a
    /// machine or engine restart) get new ephemeral host ports, and a machine that comes back
    /// restarts its proxies on the view they had; both are caught here. Returns how many
    /// proxies were reloaded.
    pub async fn refresh(&self) -> Result<usize> {
        let _one = self.syncing.hold().await;
        // The encrypted mesh: certificates ending within 30 days (or missing) are issued here
        // too, so a fleet under `watch` renews without a deploy.
        if self.spec.encrypt {
            self.renew().await?;
        }
        self.sync_gateways().await?;
        let renewed = self.renewed();
        let renewed = &renewed;
        let upstreams = self.upstreams().await;
        let mut jobs = Vec::new();
        for (m, d) in &self.engines {
            for service in self.spec.services.keys() {
                let text = self.render(m, service, &upstreams)?;
                jobs.push(async move {
                    let name = container_name(&self.project, service);
                    let have = crate::apply::ops::exec(d, &name, &["cat", CONFIG_PATH]).await;
                    match have {
                        Ok((0, have)) if have == text && !renewed.contains(m) => Ok(false),
                        // Not there (yet): `up` or the next deploy starts it.
                        Err(_) => Ok(false),
                        _ => apply_config(d, &name, &text)
                            .await
                            .map(|()| true)
                            .with_context(|| format!("mesh {service}@{m}")),
                    }
                });
            }
        }
        let mut reloaded = 0;
        let mut errors = Vec::new();
        for r in futures_util::future::join_all(jobs).await {
            match r {
                Ok(true) => reloaded += 1,
                Ok(false) => {}
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
        if let Ok(mut r) = self.renewed.lock() {
            r.clear();
        }
        Ok(reloaded)
    }

    /// Ready replicas of the meshed services on every machine, minus those draining.
    pub async fn upstreams(&self) -> View {
        let draining = self.draining.lock().map(|d| d.clone()).unwrap_or_default();
        let reads = self.engines.iter().map(|(m, d)| async move {
            (
                m,
                crate::observe::list_replicas(d, &self.project)
                    .await
                    .unwrap_or_default(),
            )
        });
        let mut view = View::default();
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
                let (remote, local) = if self.spec.encrypt {
                    // Through the replica's machine's gateway from elsewhere; at its address
                    // on a network of the service (the proxy's too) from its own machine.
                    let Some(ip) = meshed.networks.keys().find_map(|n| r.addresses.get(n)) else {
                        continue;
                    };
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.clone()
                    };
                    let mut remote = BTreeMap::new();
                    let mut local = BTreeMap::new();
                    for &p in &meshed.ports {
                        let sni = super::tls::replica_sni(&r.id, p, machine);
                        remote.insert(
                            p,
                            Target {
                                address: format!("{addr}:{}", super::gateway::PORT),
                                gateway_sni: Some(sni),
                            },
                        );
                        local.insert(p, Target::plain(format!("{ip}:{p}")));
                    }
                    (remote, local)
                } else {
                    let ports: BTreeMap<u16, Target> = r
                        .ports
                        .iter()
                        .filter_map(|(private, public)| {
                            let p = u16::try_from(*private).ok()?;
                            meshed
                                .ports
                                .contains(&p)
                                .then(|| (p, Target::plain(format!("{addr}:{public}"))))
                        })
                        .collect();
                    (ports.clone(), ports)
                };
                if remote.is_empty() {
                    continue;
                }
                let upstream = |ports| Upstream {
                    machine: machine.clone(),
                    slot: r.slot.clone(),
                    ports,
                };
                view.remote
                    .entry(r.service.clone())
                    .or_default()
                    .push(upstream(remote));
                view.local
                    .entry(r.service.clone())
                    .or_default()
                    .push(upstream(local));
            }
        }
        view
    }

    /// Gives every machine the fleet CA and a valid certificate (`credentials::ensure`); the
    /// gateway and proxies of a machine given a new one reload at the next sync, whatever
    /// their configuration (HAProxy reads the certificate files only when it loads).
    async fn renew(&self) -> Result<()> {
        let issued = super::credentials::ensure(&self.engines, &self.addresses).await?;
        if issued.is_empty() {
            return Ok(());
        }
        if let Ok(mut a) = self.applied.lock() {
            a.retain(|(m, _), _| !issued.iter().any(|(im, _)| im == m));
        }
        if let Ok(mut r) = self.renewed.lock() {
            for (m, why) in issued {
                crate::trace!("tls {m}: machine certificate ({why})");
                r.insert(m);
            }
        }
        Ok(())
    }

    /// Machines given a new certificate since their gateway and proxies last reloaded.
    fn renewed(&self) -> HashSet<String> {
        self.renewed.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Every machine runs its gateway (encrypted mesh), on the view of what runs there now.
    async fn ensure_gateways(&self) -> Result<()> {
        let jobs = self.engines.iter().map(|(m, d)| async move {
            let address = self
                .addresses
                .get(m)
                .with_context(|| format!("{m}: no address for its gateway"))?;
            let backends = super::gateway::backends(d).await?;
            let text = super::gateway::render(m, address, &backends)?;
            if super::gateway::ensure(d, m, &self.spec.image, address, &text).await?
                && let Ok(mut a) = self.applied.lock()
            {
                a.insert((m.clone(), GATEWAY_KEY.to_string()), text);
            }
            anyhow::Ok(())
        });
        for (r, (m, _)) in futures_util::future::join_all(jobs)
            .await
            .into_iter()
            .zip(&self.engines)
        {
            r.with_context(|| format!("gateway@{m}"))?;
        }
        Ok(())
    }

    /// Rewrites each machine's gateway configuration from the replicas it runs (of every
    /// project) and reloads those whose file differs (compared with what this process last
    /// wrote, else read back from the gateway) or whose machine has a new certificate.
    /// Nothing in the plain mesh.
    async fn sync_gateways(&self) -> Result<()> {
        if !self.spec.encrypt {
            return Ok(());
        }
        let renewed = self.renewed();
        let renewed = &renewed;
        let jobs = self.engines.iter().map(|(m, d)| async move {
            let address = self
                .addresses
                .get(m)
                .with_context(|| format!("{m}: no address for its gateway"))?;
            let backends = super::gateway::backends(d).await?;
            let text = super::gateway::render(m, address, &backends)?;
            let key = (m.clone(), GATEWAY_KEY.to_string());
            let cached = self.applied.lock().ok().and_then(|a| a.get(&key).cloned());
            let unchanged = !renewed.contains(m)
                && match cached {
                    Some(have) => have == text,
                    None => matches!(
                        ops::exec(d, super::gateway::NAME, &["cat", CONFIG_PATH]).await,
                        Ok((0, have)) if have == text
                    ),
                };
            if !unchanged {
                apply_config(d, super::gateway::NAME, &text)
                    .await
                    .with_context(|| format!("gateway@{m}"))?;
            }
            if let Ok(mut a) = self.applied.lock() {
                a.insert(key, text);
            }
            anyhow::Ok(())
        });
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

    /// The proxies run, and balance over what runs now.
    pub async fn converge(&self) -> Result<()> {
        self.ensure().await?;
        self.sync().await
    }

    /// The proxy image on every machine (machine, image), shipped or pulled with the
    /// project's images when missing.
    pub fn images(&self) -> Vec<(String, String)> {
        self.engines
            .iter()
            .map(|(m, _)| (m.clone(), self.spec.image.clone()))
            .collect()
    }

    /// What `hoist plan` says about the mesh: one line per machine whose proxies change —
    /// proxies to start or remove there, and the replica changes its proxies will follow.
    pub async fn plan_lines(&self, plan: &crate::core::plan::Plan) -> Vec<String> {
        self.plan_changes(plan)
            .await
            .iter()
            .map(MeshChange::line)
            .collect()
    }

    /// [`Mesh::plan_lines`] as data, for `plan --json`.
    pub async fn plan_changes(&self, plan: &crate::core::plan::Plan) -> Vec<MeshChange> {
        let mut proxies = BTreeMap::new();
        for (m, d) in &self.engines {
            let running: HashMap<String, String> =
                proxy_hashes(d, &self.project).await.unwrap_or_default();
            let wanted: BTreeMap<String, String> = self
                .spec
                .services
                .keys()
                .map(|s| (s.clone(), self.proxy_hash(s)))
                .collect();
            proxies.insert(m.clone(), (wanted, running));
        }
        let mut changes = Vec::new();
        if self.spec.encrypt {
            match super::credentials::survey(&self.engines, &self.addresses).await {
                Ok((_, decision)) => {
                    for (machine, text) in super::credentials::plan_entries(&decision) {
                        changes.push(MeshChange {
                            machine,
                            kind: MeshChangeKind::Credentials,
                            items: vec![text],
                        });
                    }
                }
                // Machines holding two CAs: the plan says so, `up` refuses.
                Err(e) => changes.push(MeshChange {
                    machine: "fleet".to_string(),
                    kind: MeshChangeKind::Credentials,
                    items: vec![format!("refused: {e:#}")],
                }),
            }
            let mut gateways = BTreeMap::new();
            for (m, d) in &self.engines {
                let Some(address) = self.addresses.get(m) else {
                    continue;
                };
                let wanted = super::gateway::hash(&self.spec.image, address);
                let running = super::gateway::running_hash(d).await;
                gateways.insert(m.clone(), (address.clone(), wanted, running));
            }
            changes.extend(gateway_changes(&self.spec, &gateways, plan));
        }
        changes.extend(plan_changes(&self.spec, &proxies, plan));
        changes
    }
}

/// One machine's mesh change in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshChange {
    pub machine: String,
    pub kind: MeshChangeKind,
    /// `api:8080` for proxies to start, service names for proxies to remove, the replica
    /// changes followed (`api.2 moved m3 → m1`) for a reload.
    pub items: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshChangeKind {
    Start,
    Remove,
    Reload,
    /// The fleet's TLS credentials (encrypted mesh): a CA made or copied, a machine
    /// certificate issued; `items` holds the one line.
    Credentials,
    /// A machine's TLS gateway (encrypted mesh) to start (`items`: its address) or to reload
    /// (`items`: the replica changes on that machine it follows).
    GatewayStart,
    GatewayReload,
}

impl MeshChangeKind {
    /// A reload that only follows the plan's replica changes (no change of its own).
    pub fn follows_replicas(self) -> bool {
        matches!(self, MeshChangeKind::Reload | MeshChangeKind::GatewayReload)
    }
}

impl MeshChange {
    /// The plan's text line.
    pub fn line(&self) -> String {
        let (m, items) = (&self.machine, &self.items);
        match self.kind {
            MeshChangeKind::Start => format!("+ mesh@{m}: proxies for {}", items.join(", ")),
            MeshChangeKind::Remove => format!("- mesh@{m}: proxies for {}", items.join(", ")),
            MeshChangeKind::Reload => format!("~ reload mesh@{m} ({})", items.join("; ")),
            MeshChangeKind::Credentials => format!("+ {}", items.join("; ")),
            MeshChangeKind::GatewayStart => format!(
                "+ gateway@{m}: {} (mutual TLS from the fleet CA)",
                items.join(", ")
            ),
            MeshChangeKind::GatewayReload => {
                format!("~ reload gateway@{m} ({})", items.join("; "))
            }
        }
    }

    /// The entry of `plan --json`'s `mesh` array (docs/plan-json.md).
    pub fn json(&self) -> serde_json::Value {
        let change = match self.kind {
            MeshChangeKind::Start => "start",
            MeshChangeKind::Remove => "remove",
            MeshChangeKind::Reload => "reload",
            MeshChangeKind::Credentials => "credentials",
            MeshChangeKind::GatewayStart => "gateway-start",
            MeshChangeKind::GatewayReload => "gateway-reload",
        };
        json!({"machine": self.machine, "change": change, "items": self.items})
    }
}

/// What the proxies balance over: every ready replica of each meshed service as proxies on
/// other machines reach it (`remote`) and as the proxy on its own machine does (`local`; the
/// same in the plain mesh, its container address in the encrypted one).
#[derive(Debug, Default)]
pub struct View {
    remote: BTreeMap<String, Vec<Upstream>>,
    local: BTreeMap<String, Vec<Upstream>>,
}

impl View {
    /// `service`'s replicas as the proxy on `machine` reaches them.
    fn for_machine(&self, service: &str, machine: &str) -> Vec<Upstream> {
        let here = self.local.get(service).into_iter().flatten();
        let there = self.remote.get(service).into_iter().flatten();
        here.filter(|u| u.machine == machine)
            .chain(there.filter(|u| u.machine != machine))
            .cloned()
            .collect()
    }
}

/// Machine → (service → the proxy hash wanted, service → the hash of the running proxy).
type ProxyStates = BTreeMap<String, (BTreeMap<String, String>, HashMap<String, String>)>;

/// The plan's mesh changes from the proxies each machine runs and the plan's replica changes.
/// Every machine's proxies follow every replica change of a meshed service, wherever it is.
fn plan_changes(
    spec: &MeshSpec,
    proxies: &ProxyStates,
    plan: &crate::core::plan::Plan,
) -> Vec<MeshChange> {
    use crate::core::plan::Action;
    let follows: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| {
            let service = s.service.as_deref()?;
            if !spec.services.contains_key(service) {
                return None;
            }
            let slot = s.slot.as_ref().map(|x| x.label_value()).unwrap_or_default();
            let at = &s.machine;
            let what = match &s.action {
                Action::Create => format!("new on {at}"),
                Action::Start { .. } => format!("started on {at}"),
                Action::Replace { .. } => format!("replaced on {at}"),
                Action::Move { from, .. } => format!("moved {from} → {at}"),
                Action::Remove { .. } => format!("removed from {at}"),
                _ => return None,
            };
            Some(format!("{service}.{slot} {what}"))
        })
        .collect();
    let mut lines = Vec::new();
    for (machine, (wanted, running)) in proxies {
        let start: Vec<String> = wanted
            .iter()
            .filter(|(s, h)| running.get(*s) != Some(*h))
            .map(|(s, _)| format!("{s}:{}", ports_text(&spec.services[s].ports)))
            .collect();
        let mut remove: Vec<&String> = running
            .keys()
            .filter(|s| !wanted.contains_key(*s))
            .collect();
        remove.sort();
        let change = |kind, items: Vec<String>| MeshChange {
            machine: machine.clone(),
            kind,
            items,
        };
        let all_start = start.len() == wanted.len();
        if !start.is_empty() {
            lines.push(change(MeshChangeKind::Start, start));
        }
        if !remove.is_empty() {
            lines.push(change(
                MeshChangeKind::Remove,
                remove.iter().map(|s| s.to_string()).collect(),
            ));
        }
        // Proxies that all start now start on the new view: nothing there to reload.
        if !follows.is_empty() && !all_start {
            lines.push(change(MeshChangeKind::Reload, follows.clone()));
        }
    }
    lines
}

/// Machine → (address, the gateway hash wanted, the running gateway's hash).
type GatewayStates = BTreeMap<String, (String, String, Option<String>)>;

/// The plan's gateway changes (encrypted mesh): a gateway to start where none runs (or one
/// of another image or address), and on every machine where replicas of meshed services
/// change, a reload that follows them (a gateway routes only to its own machine's replicas).
fn gateway_changes(
    spec: &MeshSpec,
    gateways: &GatewayStates,
    plan: &crate::core::plan::Plan,
) -> Vec<MeshChange> {
    use crate::core::plan::Action;
    let mut follows: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in &plan.steps {
        let Some(service) = s.service.as_deref() else {
            continue;
        };
        if !spec.services.contains_key(service) {
            continue;
        }
        let slot = s.slot.as_ref().map(|x| x.label_value()).unwrap_or_default();
        let at = s.machine.as_str();
        let name = format!("{service}.{slot}");
        match &s.action {
            Action::Create => follows.entry(at).or_default().push(format!("{name} new")),
            Action::Start { .. } => follows
                .entry(at)
                .or_default()
                .push(format!("{name} started")),
            Action::Replace { .. } => follows
                .entry(at)
                .or_default()
                .push(format!("{name} replaced")),
            Action::Move { from, .. } => {
                follows
                    .entry(at)
                    .or_default()
                    .push(format!("{name} moved in"));
                follows
                    .entry(from.as_str())
                    .or_default()
                    .push(format!("{name} moved out"));
            }
            Action::Remove { .. } => follows
                .entry(at)
                .or_default()
                .push(format!("{name} removed")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (machine, (address, wanted, running)) in gateways {
        if running.as_ref() != Some(wanted) {
            out.push(MeshChange {
                machine: machine.clone(),
                kind: MeshChangeKind::GatewayStart,
                items: vec![format!("{address}:{}", super::gateway::PORT)],
            });
        } else if let Some(items) = follows.get(machine.as_str()) {
            out.push(MeshChange {
                machine: machine.clone(),
                kind: MeshChangeKind::GatewayReload,
                items: items.clone(),
            });
        }
    }
    out
}

fn ports_text(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

impl Hook for Mesh {
    fn after_ready<'a>(&'a self, _replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.sync().await {
                tell!("hoist: warning: updating the mesh: {e:#}");
            }
        })
    }

    fn leave<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !self.carries(replica.service) {
                return;
            }
            if let Ok(mut d) = self.draining.lock() {
                d.insert(replica.id.to_string());
            }
            if let Err(e) = self.sync().await {
                tell!(
                    "hoist: warning: draining {} from the mesh: {e:#}",
                    replica.service
                );
            }
        })
    }

    fn drain(&self, service: &str) -> Duration {
        if self.carries(service) {
            DRAIN
        } else {
            Duration::ZERO
        }
    }

    /// One reload per proxy: the new replica (ready now) in, the old one (marked draining) out.
    fn swap<'a>(&'a self, new: ReplicaRef<'a>, old: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !self.carries(new.service) {
                return;
            }
            if let Ok(mut d) = self.draining.lock() {
                d.insert(old.id.to_string());
            }
            if let Err(e) = self.sync().await {
                tell!("hoist: warning: updating the mesh: {e:#}");
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::observed::Slot;
    use crate::core::plan::{Action, ContainerRef, Plan, Step};

    fn spec() -> MeshSpec {
        let meshed = |port: u16| super::super::spec::Meshed {
            ports: vec![port],
            networks: BTreeMap::from([("p_default".to_string(), vec!["x".to_string()])]),
        };
        MeshSpec {
            image: "haproxy:2.8".into(),
            encrypt: false,
            services: BTreeMap::from([("api".into(), meshed(8080)), ("db".into(), meshed(5432))]),
        }
    }

    fn step(machine: &str, service: &str, slot: u32, action: Action) -> Step {
        Step {
            machine: machine.into(),
            service: Some(service.into()),
            slot: Some(Slot::Replica(slot)),
            action,
            reasons: Vec::new(),
        }
    }

    fn c() -> ContainerRef {
        ContainerRef {
            id: "id".into(),
            name: "n".into(),
        }
    }

    /// Every machine runs the proxies it should, except `missing` ones on `machine`.
    fn proxies(missing: &[(&str, &str)], stale: &[(&str, &str)]) -> ProxyStates {
        ["m1", "m2"]
            .iter()
            .map(|m| {
                let wanted: BTreeMap<String, String> = [("api", "h1"), ("db", "h2")]
                    .iter()
                    .map(|(s, h)| (s.to_string(), h.to_string()))
                    .collect();
                let mut running: HashMap<String, String> = wanted
                    .iter()
                    .filter(|(s, _)| !missing.contains(&(*m, s.as_str())))
                    .map(|(s, h)| (s.clone(), h.clone()))
                    .collect();
                for (sm, s) in stale {
                    if sm == m {
                        running.insert(s.to_string(), "old".into());
                    }
                }
                (m.to_string(), (wanted, running))
            })
            .collect()
    }

    #[test]
    fn gateway_lines() {
        let plan = Plan {
            steps: vec![
                step(
                    "m2",
                    "api",
                    1,
                    Action::Move {
                        from: "m3".into(),
                        container: c(),
                    },
                ),
                step("m1", "worker", 1, Action::Create),
            ],
            machines: BTreeMap::new(),
            unknown: Vec::new(),
            drained: Default::default(),
            removed: Default::default(),
            volume_moves: Vec::new(),
        };
        let state = |running: Option<&str>| {
            (
                "10.0.0.1".to_string(),
                "h".to_string(),
                running.map(String::from),
            )
        };
        let gateways: GatewayStates = BTreeMap::from([
            ("m1".to_string(), state(None)),
            ("m2".to_string(), state(Some("h"))),
            ("m3".to_string(), state(Some("h"))),
        ]);
        let lines: Vec<String> = gateway_changes(&spec(), &gateways, &plan)
            .iter()
            .map(MeshChange::line)
            .collect();
        assert_eq!(
            lines,
            [
                "+ gateway@m1: 10.0.0.1:7443 (mutual TLS from the fleet CA)",
                "~ reload gateway@m2 (api.1 moved in)",
                "~ reload gateway@m3 (api.1 moved out)",
            ]
        );
    }

    #[test]
    fn plan_lines_table() {
        let plan = |steps: Vec<Step>| Plan {
            steps,
            machines: BTreeMap::new(),
            unknown: Vec::new(),
            drained: Default::default(),
            removed: Default::default(),
            volume_moves: Vec::new(),
        };
        let cases: Vec<(&str, ProxyStates, Plan, Vec<&str>)> = vec![
            ("nothing changes", proxies(&[], &[]), plan(vec![]), vec![]),
            (
                "a new project: proxies start with the view, no reload",
                proxies(
                    &[("m1", "api"), ("m1", "db"), ("m2", "api"), ("m2", "db")],
                    &[],
                ),
                plan(vec![step("m1", "db", 1, Action::Create)]),
                vec![
                    "+ mesh@m1: proxies for api:8080, db:5432",
                    "+ mesh@m2: proxies for api:8080, db:5432",
                ],
            ),
            (
                "a replica moves: every machine's proxies reload",
                proxies(&[], &[]),
                plan(vec![step(
                    "m1",
                    "db",
                    1,
                    Action::Move {
                        from: "m2".into(),
                        container: c(),
                    },
                )]),
                vec![
                    "~ reload mesh@m1 (db.1 moved m2 → m1)",
                    "~ reload mesh@m2 (db.1 moved m2 → m1)",
                ],
            ),
            (
                "an unmeshed service changes: no reload; a missing proxy starts",
                proxies(&[("m2", "api")], &[]),
                plan(vec![step("m1", "worker", 1, Action::Create)]),
                vec!["+ mesh@m2: proxies for api:8080"],
            ),
            (
                "a proxy for a service no longer meshed goes; replaced replicas are followed",
                proxies(&[], &[("m1", "old")]),
                plan(vec![
                    step(
                        "m2",
                        "api",
                        2,
                        Action::Replace {
                            container: c(),
                            order: crate::core::workload::UpdateOrder::StartFirst,
                            order_reason: String::new(),
                        },
                    ),
                    step("m2", "api", 3, Action::Remove { container: c() }),
                ]),
                vec![
                    "- mesh@m1: proxies for old",
                    "~ reload mesh@m1 (api.2 replaced on m2; api.3 removed from m2)",
                    "~ reload mesh@m2 (api.2 replaced on m2; api.3 removed from m2)",
                ],
            ),
        ];
        for (name, proxies, plan, want) in cases {
            let lines: Vec<String> = plan_changes(&spec(), &proxies, &plan)
                .iter()
                .map(MeshChange::line)
                .collect();
            assert_eq!(lines, want, "case: {name}");
        }
    }
}
