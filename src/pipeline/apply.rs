//! Apply: carry out a plan on the machines — networks, volumes and images first,
//! then the rollout — and tidy the previous releases after. `up` and `watch`
//! share it, so both do exactly what the plan says in exactly the same way.
//! The caller holds the deploy lock.

use super::Planned;
use crate::apply::progress::Progress;
use crate::apply::rollout::{self, Hook, ReplicaRef, Report};
use crate::apply::{image, ops};
use crate::core::observed::Observed;
use crate::engine::Connections;
use crate::observe::SeenContainer;
use anyhow::Result;
use bollard::Docker;
use futures_util::future::BoxFuture;
use std::collections::HashMap;

/// The load balancers that follow what runs — the ingress in front of the routed services and
/// the mesh between services — each present when the compose file asks for it.
#[derive(Default)]
pub struct Balancers {
    pub ingress: Option<crate::ingress::Ingress>,
    pub mesh: Option<crate::mesh::Mesh>,
}

/// The machines the balancers run on: every connected one but the drained (`hoist drain`)
/// that run none of the project's replicas any more. A drained machine keeps its ingress and
/// proxies while replicas are still there to serve, so nothing is cut before they moved.
pub fn hosting(engines: &[(String, Docker)], observed: &Observed) -> Vec<(String, Docker)> {
    engines
        .iter()
        .filter(|(m, _)| !vacated(observed, m))
        .cloned()
        .collect()
}

/// A drained machine with no replica of the project left on it.
fn vacated(observed: &Observed, machine: &str) -> bool {
    observed.drained.contains(machine)
        && !observed.visible_containers().any(|c| c.machine == machine)
}

/// Records the machines of the file on every reachable machine (`apply::fleet_record`),
/// leaving out drained machines that run nothing of the project any more.
pub async fn record_fleet(conns: &Connections, observed: &Observed, project: &str) {
    let machines = conns
        .results
        .iter()
        .map(|(m, _)| m.name.clone())
        .filter(|m| !vacated(observed, m))
        .collect();
    for (m, e) in crate::apply::fleet_record::write(&conns.engines(), project, &machines).await {
        tell!("hoist: warning: {m}: could not record the fleet: {e}");
    }
}

impl Balancers {
    /// Removes the project's ingress and mesh proxies from drained machines that no longer run
    /// any of its replicas (as observed in `observed`): after a drain, the machine runs no
    /// container of hoist's for the project.
    pub async fn leave(
        &self,
        engines: &[(String, Docker)],
        observed: &Observed,
        project: &str,
    ) -> Result<usize> {
        let vacated: Vec<(String, Docker)> = engines
            .iter()
            .filter(|(m, _)| vacated(observed, m))
            .cloned()
            .collect();
        if vacated.is_empty() {
            return Ok(0);
        }
        let ingress = crate::ingress::live::remove_all(&vacated, project).await?;
        let mesh = crate::mesh::live::remove_all(&vacated, project).await?;
        Ok(ingress + mesh)
    }

    /// Those the compose file asks for, on the machines of `engines` (`name`: the project name
    /// the machines know it by).
    pub fn for_project(
        project: &crate::model::Project,
        resolved: &super::resolve::Resolved,
        fleet: &crate::inventory::Fleet,
        engines: &[(String, Docker)],
    ) -> Result<Balancers> {
        let name = &resolved.project;
        let mut ingress = crate::ingress::live::for_project(project, name, fleet, engines)?;
        let mesh = mesh_for_project(project, resolved, fleet, engines)?;
        // The encrypted mesh: routes to meshed services go through the local proxy, which
        // reaches replicas on other machines only through their gateways.
        if let (Some(i), Some(m)) = (ingress.as_mut(), mesh.as_ref())
            && m.spec().encrypt
        {
            let through: std::collections::BTreeMap<String, String> = i
                .spec()
                .routes
                .iter()
                .filter_map(|r| {
                    let meshed = m.spec().services.get(&r.service)?;
                    let port = u16::try_from(r.port).ok()?;
                    meshed.ports.contains(&port).then_some(())?;
                    Some((r.service.clone(), meshed.networks.keys().next()?.clone()))
                })
                .collect();
            i.route_through_mesh(through);
        }
        Ok(Balancers { ingress, mesh })
    }

    /// Their images, shipped or pulled with the project's.
    pub fn add_images(&self, prep: &mut super::rollout::Preparation) {
        let ingress = self.ingress.iter().flat_map(|i| i.images());
        let mesh = self.mesh.iter().flat_map(|m| m.images());
        for (machine, image) in ingress.chain(mesh) {
            let pull = super::rollout::PullPolicyKey::Missing;
            prep.images.insert((machine, image, pull, None));
        }
    }

    /// Their containers run and route to what runs now; those the file no longer asks for
    /// are removed.
    pub async fn converge(&self, engines: &[(String, Docker)], project: &str) -> Result<()> {
        // An ingress that routes through the mesh joins the networks the mesh makes on every
        // machine, and sends to its proxies: the mesh first then.
        let mesh_first = self
            .ingress
            .as_ref()
            .is_some_and(|i| i.routes_through_mesh());
        if mesh_first {
            self.converge_mesh(engines, project).await?;
        }
        match &self.ingress {
            Some(i) => i.converge().await?,
            None => {
                crate::ingress::live::remove_all(engines, project).await?;
            }
        }
        if !mesh_first {
            self.converge_mesh(engines, project).await?;
        }
        Ok(())
    }

    async fn converge_mesh(&self, engines: &[(String, Docker)], project: &str) -> Result<()> {
        match &self.mesh {
            Some(m) => m.converge().await?,
            None => {
                crate::mesh::live::remove_all(engines, project).await?;
            }
        }
        Ok(())
    }

    /// What `up` changes in them beside following the replicas: the ingress's `+`/`~`/`-`
    /// lines (the mesh's are `Mesh::plan_changes`).
    pub async fn ingress_lines(&self, engines: &[(String, Docker)], project: &str) -> Vec<String> {
        match &self.ingress {
            Some(i) => i.plan_lines().await,
            None => crate::ingress::live::removal_lines(engines, project).await,
        }
    }

    /// What the user should know about the balancers after a deploy: routes the ingress
    /// sees no healthy upstream for.
    pub async fn warnings(&self) -> Vec<String> {
        match &self.ingress {
            Some(i) => i.health_warnings().await,
            None => Vec::new(),
        }
    }

    /// Route to what runs now (after a rollout).
    pub async fn sync(&self) -> Result<()> {
        if let Some(i) = &self.ingress {
            i.sync().await?;
        }
        if let Some(m) = &self.mesh {
            m.sync().await?;
        }
        Ok(())
    }
}

/// Both follow a rollout: a replica leaves both before it stops (their drains overlap) and
/// joins both once ready.
impl Hook for Balancers {
    fn after_ready<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ingress = async {
                if let Some(i) = &self.ingress {
                    i.after_ready(replica).await;
                }
            };
            let mesh = async {
                if let Some(m) = &self.mesh {
                    m.after_ready(replica).await;
                }
            };
            tokio::join!(ingress, mesh);
        })
    }

    fn leave<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ingress = async {
                if let Some(i) = &self.ingress {
                    i.leave(replica).await;
                }
            };
            let mesh = async {
                if let Some(m) = &self.mesh {
                    m.leave(replica).await;
                }
            };
            tokio::join!(ingress, mesh);
        })
    }

    fn drain(&self, service: &str) -> std::time::Duration {
        let ingress = self.ingress.as_ref().map(|i| i.drain(service));
        let mesh = self.mesh.as_ref().map(|m| m.drain(service));
        ingress.into_iter().chain(mesh).max().unwrap_or_default()
    }

    fn swap<'a>(&'a self, new: ReplicaRef<'a>, old: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let ingress = async {
                if let Some(i) = &self.ingress {
                    i.swap(new, old).await;
                }
            };
            let mesh = async {
                if let Some(m) = &self.mesh {
                    m.swap(new, old).await;
                }
            };
            tokio::join!(ingress, mesh);
        })
    }
}

/// What an apply did.
pub struct Applied {
    pub release: String,
    pub report: Report,
    /// Images shipped from the local engine, for the summary and `--json`.
    pub shipped: Vec<serde_json::Value>,
    /// Older previous releases removed (one per slot is kept).
    pub pruned: usize,
    /// Volumes copied for stateful moves (`up --move-volumes`).
    pub moved: Vec<crate::volume::moves::Copied>,
    /// From the stop of the moving slots' sources until the rollout ended: the longest the
    /// moved services were down.
    pub moved_downtime: Option<std::time::Duration>,
}

/// Why `up` refuses a plan with volume moves it was not allowed to make.
pub fn volume_moves_refusal(plan: &crate::core::plan::Plan) -> Option<String> {
    if plan.volume_moves.is_empty() {
        return None;
    }
    let moves: Vec<String> = plan
        .volume_moves
        .iter()
        .map(|m| {
            format!(
                "{} from {} to {} with volume {}",
                crate::core::observed::SlotName(&m.service, &m.slot),
                m.from,
                m.to,
                m.volumes
                    .iter()
                    .map(|v| match m.sizes.get(v) {
                        Some(n) => format!("{v} ({})", crate::output::bytes(*n)),
                        None => v.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    Some(format!(
        "the plan moves data: {}. Pass --move-volumes to copy it (each moving slot is stopped for the copy, verified, then started on its new machine; the source volume stays); nothing was changed",
        moves.join("; ")
    ))
}

/// The (machine, container id) each volume move leaves, from the plan's move steps.
fn move_sources(plan: &crate::core::plan::Plan) -> Vec<(String, String)> {
    plan.steps
        .iter()
        .filter(|s| plan.volume_move(s).is_some())
        .filter_map(|s| match &s.action {
            crate::core::plan::Action::Move { from, container } => {
                Some((from.clone(), container.id.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Carries out `planned` on the connected machines as one new release, then keeps
/// one previous release per slot. `local` is the engine images are shipped from.
pub async fn apply_plan(
    planned: &Planned,
    conns: &Connections,
    local: Option<&Docker>,
    progress: &Progress,
    balancers: &Balancers,
) -> Result<Applied> {
    let engines = conns.engines();
    let release = release_id();
    let (mut prep, services) = super::rollout::build(planned, &release, balancers.mesh.as_ref())?;
    // Before any replica is created with a spec sealed with it.
    crate::seal::store_where_needed(&engines, &planned.resolved.project, &planned.sealing).await?;
    balancers.add_images(&mut prep);
    let by_name: HashMap<String, Docker> = engines.iter().cloned().collect();
    let stores = image_stores(conns);
    if !planned.allow_volume_moves
        && let Some(why) = volume_moves_refusal(&planned.plan)
    {
        anyhow::bail!(why);
    }
    // Before `prepare` creates the target volumes: they are unfinished copies until verified.
    crate::volume::moves::mark_incoming(
        &planned.plan.volume_moves,
        &by_name,
        &planned.resolved.project,
    )
    .await?;
    let shipped = prepare(
        &prep,
        &by_name,
        &planned.resolved.project,
        local,
        &stores,
        progress,
    )
    .await?;
    // Stateful moves: the data is copied (and verified) before the slots start elsewhere.
    let carried = if planned.plan.volume_moves.is_empty() {
        None
    } else {
        Some(
            crate::volume::moves::carry(
                &planned.plan.volume_moves,
                &move_sources(&planned.plan),
                &by_name,
                &planned.resolved.project,
            )
            .await?,
        )
    };
    crate::trace!("prepared");
    // The ingress and the mesh route to what runs before the rollout, then follow it (they
    // are its hook).
    balancers
        .converge(&engines, &planned.resolved.project)
        .await?;
    crate::trace!("balancers converged");
    let report = rollout::run_with(&services, &by_name, progress, balancers).await;
    let (moved, moved_downtime) = match carried {
        None => (Vec::new(), None),
        Some((stopped, copied)) => {
            let downtime = stopped.at.elapsed();
            // A moved slot that did not come up on its target runs again where it was.
            let restarted = crate::volume::moves::restart_sources(&stopped, &by_name).await;
            if !restarted.is_empty() {
                progress.note(&format!(
                    "{} moved replica(s) did not come up on the new machine: started again where they were, on their own volume",
                    restarted.len()
                ));
            }
            // The copies left behind are no data any more: no later plan may take them for it.
            if let Err(e) = crate::volume::moves::mark_moved(
                &copied,
                &restarted,
                &by_name,
                &planned.resolved.project,
            )
            .await
            {
                progress.note(&format!("warning: {e:#}"));
            }
            (copied, Some(downtime))
        }
    };
    crate::trace!("rolled out");
    if let Err(e) = balancers.sync().await {
        progress.note(&format!("warning: updating the load balancers: {e:#}"));
    }
    let observation = crate::observe::observe(conns, &planned.resolved.project).await;
    let completing = planned
        .resolved
        .services
        .values()
        .filter(|s| s.gate.completes)
        .map(|s| s.name.clone())
        .collect();
    let (observed, previous) = super::observed(&observation, &completing);
    crate::trace!("synced, observed");
    let pruned = prune_previous(&observed, &previous, &engines).await;
    if let Err(e) = balancers
        .leave(&engines, &observed, &planned.resolved.project)
        .await
    {
        progress.note(&format!(
            "warning: removing the load balancers from drained machines: {e:#}"
        ));
    }
    record_fleet(conns, &observed, &planned.resolved.project).await;
    crate::trace!("pruned");
    Ok(Applied {
        release,
        report,
        shipped,
        pruned,
        moved,
        moved_downtime,
    })
}

/// Where each connected machine's engine keeps images: images are shipped to containerd's
/// store and to Podman's in other formats, and known in containerd's by another ID
/// (src/ship.rs).
pub fn image_stores(conns: &Connections) -> HashMap<String, crate::ship::Store> {
    conns
        .results
        .iter()
        .filter_map(|(m, r)| {
            r.as_ref()
                .ok()
                .map(|e| (m.name.clone(), crate::ship::Store::of(&e.facts)))
        })
        .collect()
}

/// Networks, volumes and images on each machine, before any container changes.
/// Images a machine lacks are shipped from the local engine when it has them
/// (layers the machine already holds stay behind), else pulled. Returns what was
/// shipped, for the summary and `--json`.
pub async fn prepare(
    prep: &super::rollout::Preparation,
    engines: &HashMap<String, Docker>,
    project: &str,
    local: Option<&Docker>,
    stores: &HashMap<String, crate::ship::Store>,
    progress: &Progress,
) -> Result<Vec<serde_json::Value>> {
    let get = |m: &str| {
        engines
            .get(m)
            .ok_or_else(|| anyhow::anyhow!("machine {m} is not connected"))
    };
    // Each machine creates its networks and volumes, and says which images it has, beside the
    // others: round trips to different machines overlap.
    let mut machines: Vec<&str> = prep
        .networks
        .iter()
        .map(|(m, _, _)| m.as_str())
        .chain(prep.volumes.iter().map(|(m, _, _)| m.as_str()))
        .collect();
    machines.sort();
    machines.dedup();
    let objects = machines.into_iter().map(|machine| async move {
        let docker = get(machine)?;
        for (_, name, spec) in prep.networks.iter().filter(|(m, _, _)| m == machine) {
            ops::ensure_network(docker, name, project, spec)
                .await
                .map_err(|e| anyhow::anyhow!("{machine}: {e:#}"))?;
            progress.finish(&format!("network@{machine}"), &format!("{name} ready"));
        }
        for (_, name, spec) in prep.volumes.iter().filter(|(m, _, _)| m == machine) {
            ops::ensure_volume(docker, name, project, spec)
                .await
                .map_err(|e| anyhow::anyhow!("{machine}: {e:#}"))?;
            progress.finish(&format!("volume@{machine}"), &format!("{name} ready"));
        }
        Ok::<(), anyhow::Error>(())
    });
    let looks = prep.images.iter().map(|(m, img, _, _)| async move {
        Ok::<Option<String>, anyhow::Error>(
            get(m)?.inspect_image(img).await.ok().and_then(|i| i.id),
        )
    });
    let (objects, looks) = tokio::join!(
        futures_util::future::join_all(objects),
        futures_util::future::join_all(looks)
    );
    objects.into_iter().collect::<Result<Vec<()>>>()?;
    // Which images each machine lacks, and which of those the local engine can ship.
    let mut exports: HashMap<String, crate::ship::Exported> = HashMap::new();
    let mut todo = Vec::new();
    for ((m, img, policy, built_id), on_machine) in prep.images.iter().zip(looks) {
        let policy: image::PullPolicy = (*policy).into();
        let on_machine = on_machine?;
        let satisfied = match (built_id, &on_machine, local) {
            // Built here: the machine must run exactly this build, whatever its tag says.
            (Some(id), Some(on), _) if on == id => true,
            // Known there by another ID than here (the other image store, on either side):
            // the export says which ID the machine's store gives this build.
            (Some(_), Some(on), Some(local)) => {
                let e = export_once(&mut exports, local, img, progress).await?;
                on == e.id_in(store_of(stores, m))
            }
            (Some(_), _, _) => false,
            (None, on, _) => on.is_some() && policy != image::PullPolicy::Always,
        };
        if satisfied {
            continue;
        }
        // A digest reference is pulled from its registry: an image loaded from an
        // archive carries no registry digest to create the container from.
        if let Some(local) = local
            && !img.contains('@')
            && local.inspect_image(img).await.is_ok()
        {
            export_once(&mut exports, local, img, progress).await?;
        }
        todo.push((m.clone(), img.clone(), policy));
    }
    let jobs = todo.into_iter().map(|(m, img, policy)| {
        let exports = &exports;
        async move {
            let docker = get(&m)?;
            let key = format!("image@{m}");
            if let Some(exported) = exports.get(&img) {
                let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let store = store_of(stores, &m);
                progress.step(&key, &format!("shipping {img}"));
                // Bytes and rate while the archive travels.
                let ticker = {
                    let counter = counter.clone();
                    let started = std::time::Instant::now();
                    let (key, img) = (key.clone(), img.clone());
                    async move {
                        loop {
                            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                            let sent = counter.load(std::sync::atomic::Ordering::Relaxed);
                            let rate = sent as f64 / started.elapsed().as_secs_f64().max(0.001);
                            progress.step(
                                &key,
                                &format!(
                                    "shipping {img}: {} ({}/s)",
                                    crate::output::bytes(sent),
                                    crate::output::bytes(rate as u64)
                                ),
                            );
                        }
                    }
                };
                let s = tokio::select! {
                    s = crate::ship::ship_to(exported, &m, docker, counter.clone(), store) => s?,
                    _ = ticker => unreachable!("the ticker never ends"),
                };
                progress.finish(
                    &key,
                    &format!(
                        "{img}: sent {} ({} layers sent, {} already there)",
                        crate::output::bytes(s.bytes_sent),
                        s.layers_sent,
                        s.layers_skipped
                    ),
                );
                Ok::<Option<serde_json::Value>, anyhow::Error>(Some(serde_json::json!({
                    "machine": m, "image": img, "bytes": s.bytes_sent,
                    "layers_sent": s.layers_sent, "layers_skipped": s.layers_skipped,
                })))
            } else {
                progress.step(&key, &format!("pulling {img}"));
                image::ensure(docker, &m, &img, policy).await?;
                progress.finish(&key, &format!("{img} pulled"));
                Ok(None)
            }
        }
    });
    let mut shipped = Vec::new();
    for r in futures_util::future::join_all(jobs).await {
        if let Some(s) = r? {
            shipped.push(s);
        }
    }
    Ok(shipped)
}

fn store_of(stores: &HashMap<String, crate::ship::Store>, machine: &str) -> crate::ship::Store {
    stores
        .get(machine)
        .copied()
        .unwrap_or(crate::ship::Store::Classic)
}

/// Exports `img` from the local engine the first time a machine needs it.
async fn export_once<'a>(
    exports: &'a mut HashMap<String, crate::ship::Exported>,
    local: &Docker,
    img: &str,
    progress: &Progress,
) -> Result<&'a crate::ship::Exported> {
    if !exports.contains_key(img) {
        progress.step(&format!("export {img}"), "exporting from the local engine");
        let e = crate::ship::export(local, img).await?;
        progress.finish(&format!("export {img}"), "exported");
        exports.insert(img.to_string(), e);
    }
    Ok(&exports[img])
}

/// The previous releases `up` removes: all but the newest per slot (one is kept for
/// rollback), and those of slots that no longer exist. (machine, container) pairs.
pub fn to_prune<'a>(
    observed: &Observed,
    previous: &'a [(String, SeenContainer)],
) -> Vec<(&'a str, &'a SeenContainer)> {
    let mut newest: HashMap<(String, String, String), (i64, usize)> = HashMap::new();
    let live: std::collections::HashSet<(String, String, String)> = observed
        .containers
        .iter()
        .map(|c| (c.machine.clone(), c.service.clone(), c.slot.label_value()))
        .collect();
    let mut remove = Vec::new();
    for (i, (machine, c)) in previous.iter().enumerate() {
        let key = (
            machine.clone(),
            c.service.clone(),
            c.slot.as_ref().map(|s| s.label_value()).unwrap_or_default(),
        );
        if !live.contains(&key) {
            remove.push(i);
            continue;
        }
        match newest.get(&key) {
            Some((created, _)) if *created >= c.created => remove.push(i),
            Some((_, older)) => {
                remove.push(*older);
                newest.insert(key, (c.created, i));
            }
            None => {
                newest.insert(key, (c.created, i));
            }
        }
    }
    remove.sort();
    remove
        .into_iter()
        .map(|i| (previous[i].0.as_str(), &previous[i].1))
        .collect()
}

/// The plan's lines for [`to_prune`]: `- prune web.2@m1: previous release …`.
pub fn prune_lines(observed: &Observed, previous: &[(String, SeenContainer)]) -> Vec<String> {
    to_prune(observed, previous)
        .into_iter()
        .map(|(m, c)| {
            let slot = c.slot.as_ref().map(|s| s.label_value()).unwrap_or_default();
            format!(
                "- prune {}.{slot}@{m}: an older release ({}) than the one kept for rollback, or its slot is gone",
                c.service, c.name
            )
        })
        .collect()
}

/// Keeps one previous release per slot (for rollback) and removes older ones,
/// and those of slots that no longer exist (see [`to_prune`]).
pub async fn prune_previous(
    observed: &Observed,
    previous: &[(String, SeenContainer)],
    engines: &[(String, Docker)],
) -> usize {
    let mut n = 0;
    for (machine, c) in to_prune(observed, previous) {
        if let Some((_, d)) = engines.iter().find(|(m, _)| m == machine)
            && ops::remove(d, &c.id).await.is_ok()
        {
            n += 1;
        }
    }
    n
}

/// A release name that sorts by time: `20261126-184701`.
pub fn release_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::apply::time::rfc3339(secs)
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string()
}
/// What `hoist up` calls: the mesh of `project` as `resolved` names it, when the file asks
/// for one.
pub fn mesh_for_project(
    project: &crate::model::Project,
    resolved: &super::resolve::Resolved,
    fleet: &crate::inventory::Fleet,
    engines: &[(String, Docker)],
) -> Result<Option<crate::mesh::live::Mesh>> {
    match crate::mesh::spec::from_project(project, &resolved.network_names, fleet.mesh.as_ref())? {
        Some(spec) => Ok(Some(crate::mesh::live::Mesh::new(
            &resolved.project,
            spec,
            resolved.network_specs.clone(),
            &fleet.machines,
            engines,
        )?)),
        None => Ok(None),
    }
}
