//! From a plan to the rollout that carries it out: the plan's steps, one for
//! one, as engine work (networks, volumes, images first; then each service's
//! container changes in the plan's order).

use super::Planned;
use crate::apply::image::PullPolicy;
use crate::apply::ops::HealthGate;
use crate::apply::rollout::{Change, FailureAction, ServiceRollout, UpdatePolicy};
use crate::container::{self, Placement};
use crate::core::observed::Slot;
use crate::core::plan::Action;
use crate::core::workload::UpdateOrder;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Per-machine preparation before any container changes.
#[derive(Debug, Default)]
pub struct Preparation {
    /// (machine, network name, compose definition)
    pub networks: Vec<(String, String, Value)>,
    /// (machine, volume name, compose definition)
    pub volumes: Vec<(String, String, Value)>,
    /// (machine, image, pull policy, the image ID it must have when hoist built it).
    pub images: BTreeSet<(String, String, PullPolicyKey, Option<String>)>,
}

/// PullPolicy in a sortable form for the set above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PullPolicyKey {
    Missing,
    Always,
    Never,
}

impl From<PullPolicy> for PullPolicyKey {
    fn from(p: PullPolicy) -> Self {
        match p {
            PullPolicy::Missing => PullPolicyKey::Missing,
            PullPolicy::Always => PullPolicyKey::Always,
            PullPolicy::Never => PullPolicyKey::Never,
        }
    }
}

impl From<PullPolicyKey> for PullPolicy {
    fn from(p: PullPolicyKey) -> Self {
        match p {
            PullPolicyKey::Missing => PullPolicy::Missing,
            PullPolicyKey::Always => PullPolicy::Always,
            PullPolicyKey::Never => PullPolicy::Never,
        }
    }
}

/// A container to create: its name, the create request, the networks to join after.
type NewContainer = (String, Value, Vec<container::Endpoint>);

/// The rollout of `planned`, tagged with `release`; replicas of services `mesh` carries
/// publish their ports on their machine's address.
pub fn build(
    planned: &Planned,
    release: &str,
    mesh: Option<&crate::mesh::Mesh>,
) -> Result<(Preparation, Vec<ServiceRollout>)> {
    let r = &planned.resolved;
    let mut prep = Preparation::default();
    let mut order: Vec<String> = Vec::new();
    let mut changes: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for step in &planned.plan.steps {
        match &step.action {
            Action::CreateNetwork { name } => {
                let spec = r.network_specs.get(name).cloned().unwrap_or(Value::Null);
                prep.networks
                    .push((step.machine.clone(), name.clone(), spec));
                continue;
            }
            Action::CreateVolume { name } => {
                let spec = r.volume_specs.get(name).cloned().unwrap_or(Value::Null);
                prep.volumes
                    .push((step.machine.clone(), name.clone(), spec));
                continue;
            }
            Action::Unchanged { .. } => continue,
            _ => {}
        }
        let service = step
            .service
            .clone()
            .context("a container step without a service")?;
        let slot = step
            .slot
            .clone()
            .context("a container step without a slot")?;
        if !order.contains(&service) {
            order.push(service.clone());
        }
        let list = changes.entry(service.clone()).or_default();
        let slot_no = slot.number().unwrap_or(0);
        let mut new_container = |machine: &str| -> Result<NewContainer> {
            let svc = r
                .services
                .get(&service)
                .with_context(|| format!("service {service} not resolved"))?;
            let slot_label = slot.label_value();
            // What is recorded in labels must be sealed (`Resolved::seal`): never a value.
            if svc.spec.get(crate::core::spec::attr::SEAL).is_none() {
                bail!("internal: the spec of service {service} was not sealed; nothing recorded");
            }
            let spec_json = svc.spec.canonical_json();
            let at = Placement {
                project: &r.project,
                service: &service,
                slot: &slot_label,
                machine,
                release,
                spec_hash: &svc.hash,
                spec_json: &spec_json,
                networks: &r.network_names,
                volumes: &r.volume_names,
                mesh: match mesh.and_then(|m| m.spec().services.get(&service).map(|s| (m, s))) {
                    None => None,
                    Some((m, meshed)) => Some(container::MeshPorts {
                        address: m.address(machine).with_context(|| {
                            format!("{machine}: no address for the mesh to reach it at")
                        })?,
                        ports: &meshed.ports,
                        encrypt: m.spec().encrypt,
                    }),
                },
            };
            let mut request = container::create_request(&svc.json, &at)?;
            // Created from a digest: the tag as written stays visible on the container.
            if svc
                .spec
                .get(crate::core::spec::attr::IMAGE_DIGEST)
                .is_some()
                && let (Some(tag), Some(labels)) = (
                    svc.spec.get(crate::core::spec::attr::IMAGE).cloned(),
                    request.get_mut("Labels").and_then(Value::as_object_mut),
                )
            {
                labels.insert(crate::labels::IMAGE.to_string(), tag);
            }
            let obj = svc.json.as_object().context("service is not an object")?;
            let (_, extra) = container::endpoints(obj, &at)?;
            let name = container::container_name(&r.project, &service, &slot_label, &svc.hash);
            let built_id = svc
                .spec
                .get(crate::core::spec::attr::IMAGE_ID)
                .and_then(Value::as_str)
                .map(str::to_string);
            prep.images.insert((
                machine.to_string(),
                svc.image.clone(),
                svc.pull.into(),
                built_id,
            ));
            Ok((name, request, extra))
        };
        match &step.action {
            Action::Create => {
                let (name, request, extra_networks) = new_container(&step.machine)?;
                list.push(Change::Create {
                    machine: step.machine.clone(),
                    slot: slot_no,
                    name,
                    request,
                    extra_networks,
                });
            }
            Action::Start { container } => list.push(Change::Start {
                machine: step.machine.clone(),
                slot: slot_no,
                id: container.id.clone(),
            }),
            Action::Replace {
                container, order, ..
            } => {
                let (mut name, request, extra_networks) = new_container(&step.machine)?;
                // Same spec (an unhealthy or dead replica): the name is taken by the old one.
                if name == container.name {
                    name = format!("{name}-{release}");
                }
                list.push(Change::Replace {
                    machine: step.machine.clone(),
                    slot: slot_no,
                    old_id: container.id.clone(),
                    name,
                    request,
                    extra_networks,
                    start_first: *order == UpdateOrder::StartFirst,
                });
            }
            Action::Move { from, container } => {
                let (name, request, extra_networks) = new_container(&step.machine)?;
                list.push(Change::Create {
                    machine: step.machine.clone(),
                    slot: slot_no,
                    name,
                    request,
                    extra_networks,
                });
                // Removals run after the service's new replicas are up.
                list.push(Change::Remove {
                    machine: from.clone(),
                    slot: slot_no,
                    id: container.id.clone(),
                    stop_first: true,
                });
                list.extend(previous_of(planned, from, &service, &slot, slot_no));
            }
            Action::Remove { container } => {
                list.push(Change::Remove {
                    machine: step.machine.clone(),
                    slot: slot_no,
                    id: container.id.clone(),
                    stop_first: true,
                });
                list.extend(previous_of(
                    planned,
                    &step.machine,
                    &service,
                    &slot,
                    slot_no,
                ));
            }
            Action::CreateNetwork { .. }
            | Action::CreateVolume { .. }
            | Action::Unchanged { .. } => {}
        }
    }
    // Services gone from the file go last, once the others are ready — a route or name they
    // served moves only to ready replicas (a renamed service) — except those that publish
    // fixed host ports: they go first, so the ports they free are free for the others.
    let (removed_first, removed_last): (Vec<String>, Vec<String>) = order
        .iter()
        .filter(|s| !r.services.contains_key(*s))
        .cloned()
        .partition(|s| publishes_fixed_ports(planned, s));
    let staying: Vec<String> = order
        .iter()
        .filter(|s| r.services.contains_key(*s))
        .cloned()
        .collect();
    let mut rollouts = Vec::new();
    for service in order {
        let changes = changes.remove(&service).unwrap_or_default();
        let rollout = match r.services.get(&service) {
            Some(svc) => ServiceRollout {
                service: service.clone(),
                update: svc.update.clone(),
                rollback: svc.rollback.clone(),
                gate: svc.gate,
                stop_grace: svc.stop_grace,
                needs: svc.needs.clone(),
                after: svc.after.iter().chain(&removed_first).cloned().collect(),
                files: svc.files.clone(),
                changes,
            },
            // A service gone from the file: its containers are only removed.
            None => ServiceRollout {
                service: service.clone(),
                update: removal_policy(),
                rollback: removal_policy(),
                gate: HealthGate {
                    completes: false,
                    monitor: Duration::ZERO,
                    deadline: Duration::from_secs(60),
                },
                stop_grace: Duration::from_secs(10),
                needs: Vec::new(),
                after: if removed_last.contains(&service) {
                    staying.clone()
                } else {
                    Vec::new()
                },
                files: Vec::new(),
                changes,
            },
        };
        rollouts.push(rollout);
    }
    Ok((prep, rollouts))
}

/// Whether the running replicas of `service` publish a host port fixed in the file
/// (`8080:80`), which a new replica may need.
fn publishes_fixed_ports(planned: &Planned, service: &str) -> bool {
    planned
        .observed
        .containers
        .iter()
        .filter(|c| c.service == service)
        .filter_map(|c| c.spec.as_ref())
        .filter_map(|spec| spec.get(crate::core::spec::attr::PORTS))
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .any(|p| p.contains(':'))
}

/// A slot that goes away takes its previous release (kept for rollback) with it.
fn previous_of(
    planned: &Planned,
    machine: &str,
    service: &str,
    slot: &Slot,
    slot_no: u32,
) -> Vec<Change> {
    planned
        .previous
        .iter()
        .filter(|(m, c)| m == machine && c.service == service && c.slot.as_ref() == Some(slot))
        .map(|(m, c)| Change::Remove {
            machine: m.clone(),
            slot: slot_no,
            id: c.id.clone(),
            stop_first: false,
        })
        .collect()
}

fn removal_policy() -> UpdatePolicy {
    UpdatePolicy {
        parallelism: 0,
        delay: Duration::ZERO,
        failure_action: FailureAction::Continue,
        max_failure_ratio: 1.0,
    }
}
