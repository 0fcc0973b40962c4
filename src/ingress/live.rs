//! The ingress on the machines: one container per machine and project
//! (`<project>-ingress`, labelled `io.hoist.role=ingress`), its configuration
//! rendered from what every machine runs, written into it and applied with
//! `caddy reload` — a graceful reload through Caddy's admin API on localhost
//! inside the container: listeners stay open, requests in flight finish.
//!
//! Upstreams are the ready replicas of each routed service on every machine,
//! at MACHINE_ADDRESS:HOSTPORT (see `address`). `Ingress` is also the rollout's
//! [`Hook`]: a replica leaves every ingress before it stops and joins once ready.

use super::render::{self, Upstreams};
use super::spec::IngressSpec;
use crate::apply::ops::{self, FileInContainer, exec};
use crate::apply::rollout::{Hook, ReplicaRef};
use crate::inventory::{Fleet, Machine};
use crate::labels;
use crate::observe::list_replicas;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use futures_util::future::BoxFuture;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Where the configuration lives inside the ingress container.
pub const CONFIG_PATH: &str = "/etc/caddy/Caddyfile";
/// The routes it was rendered from (JSON), so verbs that do not read the compose
/// file (`rollback`) can keep the ingress in step.
pub const SPEC_PATH: &str = "/etc/caddy/hoist-ingress.json";
/// The role label value of ingress containers.
pub const ROLE: &str = "ingress";

/// The ingress of one project on the reachable machines of a fleet.
pub struct Ingress {
    project: String,
    spec: IngressSpec,
    /// Machines whose engine answers, by inventory name.
    engines: Vec<(String, Docker)>,
    /// Every machine's address as the others reach it.
    addresses: BTreeMap<String, String>,
    /// Containers about to stop: already out of every pool.
    draining: std::sync::Mutex<HashSet<String>>,
    /// One sync at a time, so ingresses never go back to an older view; requests made during
    /// one share the next.
    syncing: crate::apply::coalesce::Coalesced,
    /// Route → the service that served it in the configuration the machines ran before this
    /// deploy, when another one serves it now (a renamed service): until the new service has
    /// a ready replica, the route stays with the old one (see `upstreams`).
    handover: std::sync::Mutex<BTreeMap<RouteKey, String>>,
    /// Routed services reached through this machine's mesh proxy instead of at their
    /// replicas' published ports (the encrypted mesh: the proxy balances over every replica and
    /// reaches those on other machines through their gateways): service → the engine network
    /// the ingress joins to reach the proxy by the service's name.
    through_mesh: BTreeMap<String, String>,
}

/// What identifies a route across deploys: its hosts and paths.
type RouteKey = (Vec<String>, Vec<String>);

fn route_key(r: &super::spec::Route) -> RouteKey {
    (r.hosts.clone(), r.paths.clone())
}

/// The ingress container's name on every machine.
pub fn container_name(project: &str) -> String {
    format!("{project}-ingress")
}

impl Ingress {
    pub fn new(
        project: &str,
        spec: IngressSpec,
        machines: &[Machine],
        engines: &[(String, Docker)],
    ) -> Result<Ingress> {
        let mut addresses = BTreeMap::new();
        for m in machines {
            addresses.insert(m.name.clone(), super::address::peer_address(m)?);
        }
        Ok(Ingress {
            project: project.to_string(),
            spec,
            engines: engines.to_vec(),
            addresses,
            draining: std::sync::Mutex::new(HashSet::new()),
            syncing: crate::apply::coalesce::Coalesced::new(),
            handover: std::sync::Mutex::new(BTreeMap::new()),
            through_mesh: BTreeMap::new(),
        })
    }

    /// Whether some route goes through the mesh proxies (their networks must exist first).
    pub fn routes_through_mesh(&self) -> bool {
        !self.through_mesh.is_empty()
    }

    /// Sends the routes of these services (service → a network of theirs) to the mesh proxy
    /// on the ingress's own machine, by the service's name (see `through_mesh`).
    pub fn route_through_mesh(&mut self, services: BTreeMap<String, String>) {
        self.through_mesh = services;
    }

    pub fn spec(&self) -> &IngressSpec {
        &self.spec
    }

    /// The ingress container runs on every reachable machine, recreated only
    /// when its image or ports changed (a new configuration never recreates it).
    pub async fn ensure(&self) -> Result<()> {
        let jobs = self.engines.iter().map(|(m, d)| async move {
            self.ensure_on(m, d)
                .await
                .with_context(|| format!("ingress@{m}"))
        });
        for r in futures_util::future::join_all(jobs).await {
            r?;
        }
        Ok(())
    }

    async fn ensure_on(&self, machine: &str, docker: &Docker) -> Result<()> {
        let name = container_name(&self.project);
        let hash = self.container_hash();
        if let Some(c) = ops::current_by_hash(docker, &name, &hash).await? {
            return ops::start(docker, &c.id.unwrap_or(name)).await;
        }
        let request = json!({
            "Image": self.spec.image,
            "Labels": {
                labels::PROJECT: self.project,
                labels::MACHINE: machine,
                labels::ROLE: ROLE,
                labels::SPEC_HASH: hash,
            },
            "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
            "HostConfig": {
                "PortBindings": {
                    "80/tcp": [{"HostPort": self.spec.http_port.to_string()}],
                    "443/tcp": [{"HostPort": self.spec.https_port.to_string()}],
                },
                "RestartPolicy": {"Name": "unless-stopped"},
                // Only for the local engine (address::LOCAL_HOST); harmless elsewhere.
                "ExtraHosts": [format!("{}:host-gateway", super::address::LOCAL_HOST)],
            },
        });
        let mut request = request;
        let networks: std::collections::BTreeSet<&String> = self.through_mesh.values().collect();
        let mut networks = networks.into_iter();
        let extra: Vec<(String, serde_json::Value)> = match networks.next() {
            Some(first) => {
                request["NetworkingConfig"] = json!({"EndpointsConfig": {first: {}}});
                networks.map(|n| (n.clone(), json!({}))).collect()
            }
            None => Vec::new(),
        };
        let id = ops::create(docker, &name, &request, &extra).await?;
        ops::start(docker, &id).await
    }

    fn container_hash(&self) -> String {
        let mut text = format!(
            "{} {} {}",
            self.spec.image, self.spec.http_port, self.spec.https_port
        );
        // Joined to the project's networks: another container. Unchanged otherwise.
        if !self.through_mesh.is_empty() {
            let networks: std::collections::BTreeSet<&String> =
                self.through_mesh.values().collect();
            text.push_str(&format!(" {networks:?}"));
        }
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// Renders every machine's configuration from what runs now and reloads
    /// each ingress. A machine that fails is reported, the others still get theirs.
    pub async fn sync(&self) -> Result<()> {
        self.syncing.run(|| self.sync_now()).await
    }

    async fn sync_now(&self) -> Result<()> {
        let upstreams = self.upstreams().await;
        let jobs = self.engines.iter().map(|(m, d)| {
            let upstreams = &upstreams;
            async move {
                let text = render::caddyfile(&self.project, m, &self.spec, upstreams)?;
                let spec = serde_json::to_string(&self.spec)?;
                apply_config(d, &container_name(&self.project), &text, &spec)
                    .await
                    .with_context(|| format!("ingress@{m}"))
            }
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

    /// Ready replicas of the routed services on every machine, minus those draining. A route
    /// whose service has no ready replica yet while the service that served it before still
    /// has some keeps those (a rename moves traffic only to ready replicas).
    pub async fn upstreams(&self) -> Upstreams {
        let draining = self.draining.lock().map(|d| d.clone()).unwrap_or_default();
        let handover = self.handover.lock().map(|h| h.clone()).unwrap_or_default();
        let mut routed: HashMap<&str, u32> = HashMap::new();
        for r in &self.spec.routes {
            routed.insert(r.service.as_str(), r.port);
            if let Some(old) = handover.get(&route_key(r)) {
                routed.entry(old.as_str()).or_insert(r.port);
            }
        }
        let reads = self.engines.iter().map(|(m, d)| async move {
            (m, list_replicas(d, &self.project).await.unwrap_or_default())
        });
        let mut out = Upstreams::new();
        for (machine, replicas) in futures_util::future::join_all(reads).await {
            let Some(addr) = self.addresses.get(machine) else {
                continue;
            };
            for r in replicas {
                let Some(port) = routed.get(r.service.as_str()) else {
                    continue;
                };
                if !r.ready || draining.contains(&r.id) {
                    continue;
                }
                // One upstream, the local mesh proxy, while any replica is ready.
                if self.through_mesh.contains_key(&r.service) {
                    out.insert(r.service.clone(), vec![format!("{}:{port}", r.service)]);
                    continue;
                }
                if let Some((_, host_port)) = r.ports.iter().find(|(p, _)| p == port) {
                    out.entry(r.service.clone())
                        .or_default()
                        .push(format!("{addr}:{host_port}"));
                }
            }
        }
        for r in &self.spec.routes {
            if out.get(&r.service).is_some_and(|u| !u.is_empty()) {
                continue;
            }
            if let Some(old) = handover.get(&route_key(r))
                && let Some(previous) = out.get(old).cloned()
            {
                out.insert(r.service.clone(), previous);
            }
        }
        out
    }

    /// Reads the routes the machines ran before this deploy, to hand over those that change
    /// service (see `upstreams`).
    async fn read_handover(&self) {
        for (_, d) in &self.engines {
            if let Ok((0, text)) =
                exec(d, &container_name(&self.project), &["cat", SPEC_PATH]).await
                && let Ok(before) = serde_json::from_str::<IngressSpec>(text.trim())
            {
                let mut handover = BTreeMap::new();
                for r in &self.spec.routes {
                    if let Some(old) = before.routes.iter().find(|o| route_key(o) == route_key(r))
                        && old.service != r.service
                    {
                        handover.insert(route_key(r), old.service.clone());
                    }
                }
                if let Ok(mut h) = self.handover.lock() {
                    *h = handover;
                }
                return;
            }
        }
    }

    /// One line per route that some machine's ingress has no healthy upstream for
    /// (every request to it there gets a 503), saying where, why and what to check.
    pub async fn health_warnings(&self) -> Vec<String> {
        let upstreams = self.upstreams().await;
        let name = container_name(&self.project);
        let checks = self.engines.iter().map(|(m, d)| {
            let (upstreams, name) = (&upstreams, &name);
            async move {
                let dead = super::health::dead_routes(d, name, &self.spec.routes, upstreams).await;
                (m, dead)
            }
        });
        // Route (by its place in the spec) → the machines where it is dead, and one why.
        let mut dead: BTreeMap<usize, (Vec<&str>, String)> = BTreeMap::new();
        for (machine, routes) in futures_util::future::join_all(checks).await {
            for (route, why) in routes {
                let i = self
                    .spec
                    .routes
                    .iter()
                    .position(|r| std::ptr::eq(r, route))
                    .unwrap_or_default();
                let entry = dead.entry(i).or_insert_with(|| (Vec::new(), why));
                entry.0.push(machine.as_str());
            }
        }
        dead.into_iter()
            .map(|(i, (machines, why))| {
                let route = &self.spec.routes[i];
                let what = if why.starts_with("no ready replica") {
                    "see `hoist ps` for its replicas".to_string()
                } else {
                    format!(
                        "check services.{}.x-hoist.ingress.health.path ({}) against what the \
                         replicas answer on port {}",
                        route.service, route.health.path, route.port
                    )
                };
                format!(
                    "the ingress on {} has no healthy upstream for {}: {why}, so it answers \
                     503 to every request there; {what}",
                    machines.join(", "),
                    super::health::describe(route)
                )
            })
            .collect()
    }

    /// Machine address → machine name, to tell which replica an upstream is.
    pub fn addresses(&self) -> &BTreeMap<String, String> {
        &self.addresses
    }
}

impl Hook for Ingress {
    fn after_ready<'a>(&'a self, _replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.sync().await {
                tell!("hoist: warning: updating the ingress: {e:#}");
            }
        })
    }

    fn leave<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(mut d) = self.draining.lock() {
                d.insert(replica.id.to_string());
            }
            if let Err(e) = self.sync().await {
                tell!("hoist: warning: draining {}: {e:#}", replica.service);
            }
        })
    }

    /// Requests the ingresses sent before the reload finish on the old replica.
    fn drain(&self, service: &str) -> Duration {
        if self.spec.routes.iter().any(|r| r.service == service) {
            self.spec.drain
        } else {
            Duration::ZERO
        }
    }

    /// One reload: the pool is read from what runs, so the new replica (ready now) is in it
    /// and the old one, marked draining first, is out.
    fn swap<'a>(&'a self, _new: ReplicaRef<'a>, old: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(mut d) = self.draining.lock() {
                d.insert(old.id.to_string());
            }
            if let Err(e) = self.sync().await {
                tell!("hoist: warning: updating the ingress: {e:#}");
            }
        })
    }
}

/// Writes the configuration into the ingress container and reloads Caddy. A
/// fresh container's admin endpoint may take a moment to answer: retried briefly.
async fn apply_config(docker: &Docker, container: &str, text: &str, spec: &str) -> Result<()> {
    let file = |target: &str, content: &str| FileInContainer {
        target: target.to_string(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    ops::copy_files(
        docker,
        container,
        &[file(CONFIG_PATH, text), file(SPEC_PATH, spec)],
    )
    .await?;
    let reload = [
        "caddy",
        "reload",
        "--config",
        CONFIG_PATH,
        "--adapter",
        "caddyfile",
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, output) = exec(docker, container, &reload).await?;
        if code == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline || !output.contains("connection refused") {
            bail!("caddy reload failed ({code}): {}", output.trim());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What `hoist up` calls: the ingress of `project` (labelled with `name`), when
/// the file asks for one.
pub fn for_project(
    project: &crate::model::Project,
    name: &str,
    fleet: &Fleet,
    engines: &[(String, Docker)],
) -> Result<Option<Ingress>> {
    match super::spec::from_project(project)? {
        Some(spec) => Ok(Some(Ingress::new(name, spec, &fleet.machines, engines)?)),
        None => Ok(None),
    }
}

/// The ingress as the machines run it (routes read back from an ingress
/// container), for verbs without the compose file. None: the project has none.
pub async fn from_machines(
    project: &str,
    machines: &[Machine],
    engines: &[(String, Docker)],
) -> Option<Ingress> {
    for (_, d) in engines {
        if let Ok((0, text)) = exec(d, &container_name(project), &["cat", SPEC_PATH]).await
            && let Ok(spec) = serde_json::from_str::<IngressSpec>(text.trim())
        {
            return Ingress::new(project, spec, machines, engines).ok();
        }
    }
    None
}

impl Ingress {
    /// The ingress image on every machine (machine, image), shipped or pulled with the
    /// project's images when missing.
    pub fn images(&self) -> Vec<(String, String)> {
        self.engines
            .iter()
            .map(|(m, _)| (m.clone(), self.spec.image.clone()))
            .collect()
    }

    /// The ingress containers run, and route to what runs now.
    pub async fn converge(&self) -> Result<()> {
        self.read_handover().await;
        self.ensure().await?;
        self.sync().await
    }
}

/// What `up` will change in the ingress on each machine, beside what follows the replicas
/// (their joining and leaving is part of the rollout): one line per machine, `+` start,
/// `~` recreate or new routes, `-` remove. `plan` prints them and counts them as changes.
impl Ingress {
    pub async fn plan_lines(&self) -> Vec<String> {
        let want_spec = serde_json::to_string(&self.spec).unwrap_or_default();
        let hash = self.container_hash();
        let name = container_name(&self.project);
        let jobs = self.engines.iter().map(|(m, d)| {
            let (want_spec, hash, name) = (&want_spec, &hash, &name);
            async move {
                let Ok(c) = d
                    .inspect_container(
                        name,
                        None::<bollard::query_parameters::InspectContainerOptions>,
                    )
                    .await
                else {
                    return Some(format!(
                        "+ ingress@{m}: start ({}, ports {}/{})",
                        self.spec.image, self.spec.http_port, self.spec.https_port
                    ));
                };
                let have_hash = c
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(labels::SPEC_HASH))
                    .cloned();
                if have_hash.as_deref() != Some(hash.as_str()) {
                    return Some(format!(
                        "~ ingress@{m}: recreate ({}, ports {}/{}: image or ports changed)",
                        self.spec.image, self.spec.http_port, self.spec.https_port
                    ));
                }
                let running = c.state.and_then(|s| s.running).unwrap_or(false);
                let have_spec = match exec(d, name, &["cat", SPEC_PATH]).await {
                    Ok((0, text)) => Some(text.trim().to_string()),
                    _ => None,
                };
                match (running, have_spec) {
                    (false, _) => Some(format!("~ ingress@{m}: start the stopped ingress")),
                    (true, Some(have)) if have == *want_spec => None,
                    (true, Some(have)) => Some(format!(
                        "~ ingress@{m}: {}",
                        describe_spec_change(&have, &self.spec)
                    )),
                    (true, None) => Some(format!("~ ingress@{m}: write its routes")),
                }
            }
        });
        futures_util::future::join_all(jobs)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// What changed between the routes an ingress runs (`have`, its JSON) and `want`, in words.
fn describe_spec_change(have: &str, want: &IngressSpec) -> String {
    let Ok(have) = serde_json::from_str::<IngressSpec>(have) else {
        return "new routes".to_string();
    };
    let mut what = Vec::new();
    for r in &want.routes {
        match have.routes.iter().find(|h| route_key(h) == route_key(r)) {
            None => what.push(format!("route {} → {} added", route_text(r), r.service)),
            Some(h) if h != r => {
                what.push(format!("route {} → {} changed", route_text(r), r.service))
            }
            Some(_) => {}
        }
    }
    for h in &have.routes {
        if !want.routes.iter().any(|r| route_key(r) == route_key(h)) {
            what.push(format!("route {} → {} removed", route_text(h), h.service));
        }
    }
    if have.tls != want.tls || have.email != want.email {
        what.push("TLS settings changed".to_string());
    }
    if have.drain != want.drain {
        what.push("drain changed".to_string());
    }
    if what.is_empty() {
        "settings changed".to_string()
    } else {
        what.join(", ")
    }
}

/// `api.example.com/v1` — a route's hosts and paths as a user wrote them (`*` for any host).
fn route_text(r: &super::spec::Route) -> String {
    let hosts = if r.hosts.is_empty() {
        "*".to_string()
    } else {
        r.hosts.join(",")
    };
    let paths = if r.paths.is_empty() || r.paths == ["/"] {
        String::new()
    } else {
        r.paths.join(",")
    };
    format!("{hosts}{paths}")
}

/// The `-` lines for ingress containers the file no longer asks for.
pub async fn removal_lines(engines: &[(String, Docker)], project: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (m, d) in engines {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{}={project}", labels::PROJECT),
                format!("{}={ROLE}", labels::ROLE),
            ],
        )]);
        if let Ok(list) = d
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            && !list.is_empty()
        {
            out.push(format!(
                "- ingress@{m}: remove (the file no longer asks for one)"
            ));
        }
    }
    out
}

/// Removes the project's ingress containers (the file no longer asks for one).
pub async fn remove_all(engines: &[(String, Docker)], project: &str) -> Result<usize> {
    let mut removed = 0;
    for (m, d) in engines {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{}={project}", labels::PROJECT),
                format!("{}={ROLE}", labels::ROLE),
            ],
        )]);
        let list = d
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .with_context(|| format!("ingress@{m}"))?;
        for c in list {
            ops::remove(d, &c.id.unwrap_or_default()).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
