//! Resolve: from the loaded compose project to what the pure core schedules
//! (`Workload`s with their `ContainerSpec`) and what apply needs per service
//! (the create request's input, update policy, health gate, secret files).
//!
//! Everything a user wrote that hoist cannot honour is refused here, before any
//! machine is touched.

use crate::apply::image::PullPolicy;
use crate::apply::ops::{FileInContainer, HealthGate};
use crate::apply::rollout::{FailureAction, UpdatePolicy};
use crate::container;
use crate::core::spec::{ContainerSpec, attr};
use crate::core::workload::{HostPort, LocalVolume, Mode, Reservations, UpdateOrder, Workload};
use crate::model::{FileObject, FileReference, Project, Service, UpdateConfig};
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// Swarm's default: a replica with no healthcheck must keep running this long.
/// The restart policy of a long-running service whose file sets none.
pub const DEFAULT_RESTART: &str = "unless-stopped";
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
/// How long a new replica may take to turn healthy when the compose file does not
/// say (its image may have a healthcheck hoist cannot see from here).
const DEFAULT_READY_DEADLINE: Duration = Duration::from_secs(120);

/// One service, ready for schedule and apply.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    /// The service in Compose's normalized JSON: the input of `container::create_request`.
    pub json: Value,
    pub spec: ContainerSpec,
    pub hash: String,
    pub image: String,
    pub pull: PullPolicy,
    pub update: UpdatePolicy,
    pub rollback: UpdatePolicy,
    pub gate: HealthGate,
    /// Services that must roll out first (`depends_on` with `required: true`).
    pub needs: Vec<String>,
    /// Every service it depends on, required or not.
    pub after: Vec<String>,
    pub stop_grace: Duration,
    pub files: Vec<FileInContainer>,
}

/// A project resolved for one deploy.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub project: String,
    pub workloads: Vec<Workload>,
    pub services: BTreeMap<String, ServiceSpec>,
    /// Compose network key → engine name, and engine name → its compose definition.
    pub network_names: BTreeMap<String, String>,
    pub network_specs: BTreeMap<String, Value>,
    /// Compose volume key → engine name, and engine name → its compose definition.
    pub volume_names: BTreeMap<String, String>,
    pub volume_specs: BTreeMap<String, Value>,
}

impl Resolved {
    /// Seals every service's spec with `key` (`core::seal`) and hashes it again: the specs
    /// are then what is recorded on the machines and compared with what they record.
    /// [`resolve`] leaves them in the clear, for checks that record nothing.
    pub fn seal(&mut self, key: &crate::core::seal::SealKey) {
        for w in &mut self.workloads {
            w.spec = w.spec.sealed(key);
        }
        for s in self.services.values_mut() {
            s.spec = s.spec.sealed(key);
            s.hash = s.spec.hash();
        }
    }
}

/// Resolves every service of `project`; all refusals are reported together.
/// `local` gives the local image ID of each service built here (`build:`) or whose image
/// exists only locally, and the digest of each build's context; both enter its spec: a
/// rebuild under the same tag is a change (see `local::LocalImage`).
/// `pins` gives the digest each service's registry tag resolved to for this deploy
/// (`pin::resolve`): it enters the spec, and machines pull and run that digest.
pub fn resolve(
    project: &Project,
    local: &super::local::LocalImages,
    pins: &super::pin::Pins,
    fleet_mesh: Option<&crate::inventory::FleetMesh>,
) -> Result<Resolved> {
    let mut network_names = BTreeMap::new();
    let mut network_specs = BTreeMap::new();
    for (key, net) in &project.networks {
        if net.external == Some(true) {
            bail!(
                "networks.{key}: external networks are not supported yet (hoist creates the project's networks on each machine)"
            );
        }
        let name = net
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{key}", project.name));
        network_specs.insert(name.clone(), serde_json::to_value(net)?);
        network_names.insert(key.clone(), name);
    }
    if !network_names.contains_key("default") {
        let name = format!("{}_default", project.name);
        network_specs.insert(name.clone(), json!({}));
        network_names.insert("default".into(), name);
    }
    let mut volume_names = BTreeMap::new();
    let mut volume_specs = BTreeMap::new();
    for (key, vol) in &project.volumes {
        let name = vol
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{key}", project.name));
        volume_specs.insert(name.clone(), serde_json::to_value(vol)?);
        volume_names.insert(key.clone(), name);
    }
    let mesh = crate::mesh::spec::from_project(project, &network_names, fleet_mesh)?;
    let mut problems = Vec::new();
    let mut workloads = Vec::new();
    let mut services = BTreeMap::new();
    for (name, svc) in &project.services {
        let meshed = mesh
            .as_ref()
            .and_then(|m| Some((m.services.get(name)?.ports.as_slice(), m.encrypt)));
        let settled = Settled {
            local: local.get(name),
            pinned: pins.get(name),
            meshed,
        };
        match resolve_service(project, name, svc, &network_names, &volume_names, settled) {
            Ok((w, s)) => {
                workloads.push(w);
                services.insert(name.clone(), s);
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(Resolved {
        project: project.name.clone(),
        workloads,
        services,
        network_names,
        network_specs,
        volume_names,
        volume_specs,
    })
}

/// What this deploy settled for one service beyond its compose definition.
#[derive(Clone, Copy)]
struct Settled<'a> {
    /// What the local engine says of its image (see `local::LocalImage`).
    local: Option<&'a super::local::LocalImage>,
    /// The digest its registry tag resolved to.
    pinned: Option<&'a String>,
    /// The ports the mesh forwards to, and whether it is encrypted, when it is meshed.
    meshed: Option<(&'a [u16], bool)>,
}

fn resolve_service(
    project: &Project,
    name: &str,
    svc: &Service,
    networks: &BTreeMap<String, String>,
    volumes: &BTreeMap<String, String>,
    settled: Settled<'_>,
) -> Result<(Workload, ServiceSpec)> {
    let Settled {
        local,
        pinned,
        meshed,
    } = settled;
    let mut json = serde_json::to_value(svc)?;
    let refused = container::unsupported(&json);
    if !refused.is_empty() {
        bail!(
            "services.{name}: hoist cannot honour {}:\n  {}",
            if refused.len() == 1 {
                "this key"
            } else {
                "these keys"
            },
            refused.join("\n  ")
        );
    }
    let image = match (&svc.image, &svc.build) {
        (Some(i), _) => i.clone(),
        (None, Some(_)) => crate::build::image_name(&project.name, name, None),
        (None, None) => bail!("services.{name}: neither image nor build; hoist needs one of them"),
    };
    let deploy = svc.deploy.clone().unwrap_or_default();
    let mode = match deploy.mode.as_deref() {
        None | Some("replicated") => {
            let n = deploy.replicas.or(svc.scale).unwrap_or(1);
            if !(0..=10_000).contains(&n) {
                bail!("services.{name}.deploy.replicas: {n} is out of range (0 to 10000)");
            }
            Mode::Replicated(n as u32)
        }
        Some("global") => Mode::Global,
        Some(other) => {
            bail!("services.{name}.deploy.mode: {other:?} is not supported (replicated or global)")
        }
    };
    let secrets = files_for(
        name,
        &svc.secrets,
        &project.secrets,
        "secrets",
        "/run/secrets",
    )?;
    let configs = files_for(name, &svc.configs, &project.configs, "configs", "/")?;
    // Replicas must come back after a reboot with no hoist running (docs/rollouts.md): with no
    // restart policy in the file, a long-running service gets `unless-stopped` — it survives
    // engine restarts, and the previous releases hoist stopped stay stopped. A one-shot service
    // (others wait for it to complete) keeps Compose's "no", or it would run again and again.
    if svc.restart.as_deref().is_none_or(str::is_empty)
        && deploy.restart_policy.is_none()
        && !completes(project, name)
        && let Some(obj) = json.as_object_mut()
    {
        obj.insert("restart".into(), json!(DEFAULT_RESTART));
    }
    let mut spec = container_spec(svc, &json, &image, volumes, &secrets, &configs)?;
    let files = secrets.into_iter().chain(configs).collect::<Vec<_>>();
    if let Some(local) = local {
        if let Some(id) = &local.id {
            spec.set(attr::IMAGE_ID, id.as_str());
        }
        if let Some(context) = &local.context {
            spec.set(attr::BUILD_CONTEXT, context.as_str());
        }
    }
    // A tag resolved for this deploy: the spec keeps the tag as written plus the
    // digest; the machines pull, and the containers are created from, the digest.
    let image = match pinned {
        Some(digest) => {
            spec.set(attr::IMAGE_DIGEST, digest.as_str());
            let reference = super::pin::pinned_reference(&image, digest);
            json["image"] = Value::String(reference.clone());
            reference
        }
        None => image,
    };
    // Reached through the mesh: the replica publishes these ports on its machine's address
    // and leaves its names to the proxies, so turning the mesh on or off replaces it.
    if let Some((ports, encrypt)) = meshed {
        spec.set(attr::MESH, json!(ports));
        // Encrypted, it publishes nothing: turning encryption on or off replaces it.
        if encrypt {
            spec.set(attr::MESH_ENCRYPT, true);
        }
    }
    let hash = spec.hash();

    let mut host_ports = Vec::new();
    for p in &svc.ports {
        let Some(published) = p.published.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let (lo, hi) = match published.split_once('-') {
            Some((a, b)) => (parse_port(name, a)?, parse_port(name, b)?),
            None => {
                let p = parse_port(name, published)?;
                (p, p)
            }
        };
        for port in lo..=hi {
            host_ports.push(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "tcp".into()),
                host_ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty() && ip != "0.0.0.0" && ip != "::"),
                port,
            });
        }
    }
    let local_volumes = svc
        .volumes
        .iter()
        .filter(|m| m.kind == "volume")
        .filter_map(|m| {
            let key = m.source.as_ref()?;
            let def = project.volumes.get(key)?;
            let local = def.driver.as_deref().is_none_or(|d| d == "local");
            local.then(|| LocalVolume {
                name: volumes.get(key).cloned().unwrap_or_else(|| key.clone()),
                read_only: m.read_only,
            })
        })
        .collect();
    let service_networks: Vec<String> = if svc.networks.is_empty() {
        vec![networks["default"].clone()]
    } else {
        svc.networks
            .keys()
            .map(|k| {
                networks
                    .get(k)
                    .cloned()
                    .with_context(|| format!("services.{name}.networks.{k}: network not defined"))
            })
            .collect::<Result<_>>()?
    };
    let update_config = deploy.update_config.clone().unwrap_or_default();
    let update_order = match update_config.order.as_deref() {
        None => None,
        Some("start-first") => Some(UpdateOrder::StartFirst),
        Some("stop-first") => Some(UpdateOrder::StopFirst),
        Some(o) => {
            bail!("services.{name}.deploy.update_config.order: {o:?} (start-first or stop-first)")
        }
    };
    let reservations = deploy
        .resources
        .reservations
        .as_ref()
        .map(|r| Reservations {
            nano_cpus: (r.cpus.unwrap_or(0.0) * 1e9) as u64,
            memory: r.memory.map(|b| b.as_u64()).unwrap_or(0),
        })
        .unwrap_or_default();
    let workload = Workload {
        service: name.to_string(),
        mode,
        constraints: deploy.placement.constraints.clone(),
        spread: deploy
            .placement
            .preferences
            .iter()
            .filter_map(|p| p.spread.clone())
            .collect(),
        max_replicas_per_node: deploy.placement.max_replicas_per_node.map(|n| n as u32),
        reservations,
        host_ports,
        volumes: local_volumes,
        networks: service_networks,
        update_order,
        depends_on: svc
            .depends_on
            .keys()
            .filter(|d| project.services.contains_key(*d))
            .cloned()
            .collect(),
        spec: spec.clone(),
    };
    let update = policy(name, "update_config", deploy.update_config.as_ref())?;
    let rollback = policy(name, "rollback_config", deploy.rollback_config.as_ref())?;
    let monitor = update_config
        .monitor
        .map(|d| d.as_std())
        .unwrap_or(DEFAULT_MONITOR);
    let deadline = match &svc.healthcheck {
        Some(h) if !h.disable => {
            let interval = h
                .interval
                .map(|d| d.as_std())
                .unwrap_or(Duration::from_secs(30));
            let timeout = h
                .timeout
                .map(|d| d.as_std())
                .unwrap_or(Duration::from_secs(30));
            let start = h.start_period.map(|d| d.as_std()).unwrap_or_default();
            let retries = h.retries.unwrap_or(3) as u32;
            start + (interval + timeout) * (retries + 1) + monitor
        }
        _ => DEFAULT_READY_DEADLINE.max(monitor * 2),
    };
    let service = ServiceSpec {
        name: name.to_string(),
        json,
        spec,
        hash,
        image,
        pull: if svc.build.is_some() {
            PullPolicy::Never
        } else {
            PullPolicy::from_compose(svc.pull_policy.as_deref())
                .map_err(|e| anyhow::anyhow!("services.{name}.pull_policy: {e}"))?
        },
        update,
        rollback,
        gate: HealthGate {
            monitor,
            deadline,
            completes: completes(project, name),
        },
        after: svc
            .depends_on
            .keys()
            .filter(|d| project.services.contains_key(*d))
            .cloned()
            .collect(),
        needs: svc
            .depends_on
            .iter()
            .filter(|(d, dep)| dep.required && project.services.contains_key(*d))
            .map(|(d, _)| d.clone())
            .collect(),
        stop_grace: svc
            .stop_grace_period
            .map(|d| d.as_std())
            .unwrap_or(Duration::from_secs(10)),
        files,
    };
    Ok((workload, service))
}

/// True when another service waits for this one to finish
/// (`depends_on: {this: {condition: service_completed_successfully}}`): a one-shot
/// job such as a migration, whose replicas are ready once they exit with 0.
pub fn completes(project: &Project, service: &str) -> bool {
    project.services.values().any(|s| {
        s.depends_on
            .get(service)
            .is_some_and(|d| d.condition == "service_completed_successfully")
    })
}

fn parse_port(service: &str, text: &str) -> Result<u16> {
    text.trim()
        .parse()
        .with_context(|| format!("services.{service}.ports: {text:?} is not a port number"))
}

/// update_config / rollback_config with Swarm's defaults, except failure_action,
/// which is `rollback` when unset (hoist's choice: a bad deploy undoes itself).
fn policy(service: &str, key: &str, cfg: Option<&UpdateConfig>) -> Result<UpdatePolicy> {
    let cfg = cfg.cloned().unwrap_or_default();
    let failure_action = match cfg.failure_action.as_deref() {
        None | Some("rollback") => FailureAction::Rollback,
        Some("pause") => FailureAction::Pause,
        Some("continue") => FailureAction::Continue,
        Some(o) => bail!(
            "services.{service}.deploy.{key}.failure_action: {o:?} (rollback, pause or continue)"
        ),
    };
    Ok(UpdatePolicy {
        parallelism: cfg.parallelism.unwrap_or(1) as usize,
        delay: cfg.delay.map(|d| d.as_std()).unwrap_or_default(),
        failure_action,
        max_failure_ratio: cfg.max_failure_ratio.unwrap_or(0.0),
    })
}

/// The spec hoist hashes: everything that shapes the container, nothing that
/// only decides where or when it runs. Secret values enter only as hashes.
fn container_spec(
    svc: &Service,
    json: &Value,
    image: &str,
    volumes: &BTreeMap<String, String>,
    secrets: &[FileInContainer],
    configs: &[FileInContainer],
) -> Result<ContainerSpec> {
    const NOT_SPEC: &[&str] = &[
        "deploy",
        "depends_on",
        "profiles",
        "build",
        "scale",
        "pull_policy",
        "env_file",
        "secrets",
        "configs",
        "volumes",
        "ports",
        "image",
        "restart",
        "cpus",
        "mem_limit",
        "pids_limit",
    ];
    let mut spec = ContainerSpec::new();
    spec.set(attr::IMAGE, image);
    if let Some(obj) = json.as_object() {
        for (k, v) in obj {
            if v.is_null() || k.starts_with("x-") || NOT_SPEC.contains(&k.as_str()) {
                continue;
            }
            spec.set(k, v.clone());
        }
    }
    let ports: Vec<String> = svc
        .ports
        .iter()
        .map(|p| {
            let proto = p.protocol.clone().unwrap_or_else(|| "tcp".into());
            match (
                p.host_ip.as_deref().filter(|s| !s.is_empty()),
                p.published.as_deref().filter(|s| !s.is_empty()),
            ) {
                (Some(ip), Some(pb)) => format!("{ip}:{pb}:{}/{proto}", p.target),
                (None, Some(pb)) => format!("{pb}:{}/{proto}", p.target),
                _ => format!("{}/{proto}", p.target),
            }
        })
        .collect();
    if !ports.is_empty() {
        spec.set(attr::PORTS, json!(ports));
    }
    let mounts: Vec<String> = svc
        .volumes
        .iter()
        .map(|m| {
            let src = match (m.kind.as_str(), &m.source) {
                ("volume", Some(s)) => volumes.get(s).cloned().unwrap_or_else(|| s.clone()),
                (_, Some(s)) => s.clone(),
                (kind, None) => kind.to_string(),
            };
            let target = m.target.clone().unwrap_or_default();
            format!("{src}:{target}{}", if m.read_only { ":ro" } else { "" })
        })
        .collect();
    if !mounts.is_empty() {
        spec.set(attr::MOUNTS, json!(mounts));
    }
    // Resource limits from deploy and from the legacy keys, in one attribute.
    let mut resources = Map::new();
    if let Some(l) = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.limits.as_ref())
    {
        if let Some(c) = l.cpus {
            resources.insert("nano_cpus".into(), json!((c * 1e9) as u64));
        }
        if let Some(m) = l.memory {
            resources.insert("memory".into(), json!(m.as_u64()));
        }
        if let Some(p) = l.pids {
            resources.insert("pids".into(), json!(p));
        }
    }
    if let Some(c) = svc.cpus {
        resources
            .entry("nano_cpus")
            .or_insert(json!((c * 1e9) as u64));
    }
    if let Some(m) = svc.mem_limit {
        resources.entry("memory").or_insert(json!(m.as_u64()));
    }
    if let Some(p) = svc.pids_limit {
        resources.entry("pids").or_insert(json!(p));
    }
    if !resources.is_empty() {
        spec.set(attr::RESOURCES, Value::Object(resources));
    }
    let restart = match svc.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        Some(rp) => Some(serde_json::to_value(rp)?),
        None => json.get("restart").filter(|r| r.is_string()).cloned(),
    };
    if let Some(r) = restart {
        spec.set("restart", r);
    }
    // Each under its own attribute, so a changed config is reported as one.
    for (attr, files) in [(attr::SECRETS, secrets), (attr::CONFIGS, configs)] {
        if !files.is_empty() {
            spec.set(attr, Value::Object(file_hashes(files)));
        }
    }
    Ok(spec)
}

/// Target path → the hash of the content, mode and owner: what the spec may know of
/// files whose content can be secret.
fn file_hashes(files: &[FileInContainer]) -> Map<String, Value> {
    let mut out = Map::new();
    for f in files {
        let digest = Sha256::digest(&f.content);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        out.insert(
            f.target.clone(),
            json!(format!(
                "sha256:{hex} mode {:o} uid {} gid {}",
                f.mode, f.uid, f.gid
            )),
        );
    }
    out
}

/// Reads the secrets or configs a service uses into files for its containers.
fn files_for(
    service: &str,
    refs: &[FileReference],
    defs: &BTreeMap<String, FileObject>,
    kind: &str,
    default_dir: &str,
) -> Result<Vec<FileInContainer>> {
    let mut out = Vec::new();
    for r in refs {
        let def = defs.get(&r.source).with_context(|| {
            format!(
                "services.{service}.{kind}: {} is not defined under top-level {kind}",
                r.source
            )
        })?;
        let content = if let Some(path) = &def.file {
            std::fs::read(path)
                .with_context(|| format!("{kind}.{}: cannot read file {path}", r.source))?
        } else if let Some(var) = &def.environment {
            std::env::var(var)
                .with_context(|| {
                    format!("{kind}.{}: environment variable {var} is not set", r.source)
                })?
                .into_bytes()
        } else if let Some(c) = &def.content {
            c.clone().into_bytes()
        } else if def.external == Some(true) {
            bail!(
                "{kind}.{}: external {kind} need a swarm; give it a file, environment or content",
                r.source
            );
        } else {
            bail!("{kind}.{}: no file, environment or content", r.source);
        };
        let target = match &r.target {
            Some(t) if t.starts_with('/') => t.clone(),
            Some(t) => format!("{}/{t}", default_dir.trim_end_matches('/')),
            None => format!("{}/{}", default_dir.trim_end_matches('/'), r.source),
        };
        let num = |v: &Option<String>, what: &str| -> Result<u64> {
            match v {
                None => Ok(0),
                Some(s) => s.parse().with_context(|| {
                    format!(
                        "services.{service}.{kind}.{}: {what} {s:?} is not a number",
                        r.source
                    )
                }),
            }
        };
        let mode = match &r.mode {
            None => 0o444,
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .or_else(|_| m.parse::<u32>())
                .with_context(|| format!("services.{service}.{kind}.{}: mode {m:?}", r.source))?,
        };
        out.push(FileInContainer {
            target,
            content,
            mode,
            uid: num(&r.uid, "uid")?,
            gid: num(&r.gid, "gid")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_tag_enters_the_spec_and_the_container_runs_the_digest() {
        let project: Project = serde_json::from_value(json!({
            "name": "shop",
            "services": {"web": {"image": "reg:5000/app:1"}, "db": {"image": "db:1"}}
        }))
        .unwrap();
        let digest = format!("sha256:{}", "c".repeat(64));
        let pins = BTreeMap::from([("web".to_string(), digest.clone())]);
        let r = resolve(&project, &BTreeMap::new(), &pins, None).unwrap();
        let web = &r.services["web"];
        assert_eq!(web.image, format!("reg:5000/app@{digest}"));
        assert_eq!(web.json["image"], json!(format!("reg:5000/app@{digest}")));
        assert_eq!(web.spec.get(attr::IMAGE), Some(&json!("reg:5000/app:1")));
        assert_eq!(web.spec.get(attr::IMAGE_DIGEST), Some(&json!(digest)));
        let db = &r.services["db"];
        assert_eq!(db.image, "db:1");
        assert_eq!(db.spec.get(attr::IMAGE_DIGEST), None);
        // Another digest, another hash: the plan sees the tag move.
        let other = BTreeMap::from([("web".to_string(), format!("sha256:{}", "d".repeat(64)))]);
        let r2 = resolve(&project, &BTreeMap::new(), &other, None).unwrap();
        assert_ne!(r2.services["web"].hash, web.hash);
        assert_eq!(r2.services["db"].hash, db.hash);
    }

    #[test]
    fn a_changed_config_is_reported_as_a_config_and_a_secret_as_a_secret() {
        let project = |conf: &str, key: &str| -> Project {
            serde_json::from_value(json!({
                "name": "shop",
                "services": {"web": {
                    "image": "app:1",
                    "configs": [{"source": "app", "target": "/etc/app.conf"}],
                    "secrets": [{"source": "key"}]
                }},
                "configs": {"app": {"content": conf}},
                "secrets": {"key": {"content": key}}
            }))
            .unwrap()
        };
        let spec = |p: &Project| {
            resolve(p, &BTreeMap::new(), &BTreeMap::new(), None)
                .unwrap()
                .services["web"]
                .spec
                .clone()
        };
        let before = spec(&project("a", "k1"));
        assert_eq!(
            spec(&project("b", "k1")).changes_from(&before),
            ["configs /etc/app.conf changed"]
        );
        assert_eq!(
            spec(&project("a", "k2")).changes_from(&before),
            ["secrets /run/secrets/key changed"]
        );
    }
}
