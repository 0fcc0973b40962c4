//! The road `plan` and `up` share: load → connect → observe → resolve →
//! schedule → diff. `plan` prints the result; `up` carries out exactly that
//! result (see `rollout`), so what the plan says is what happens.

pub mod apply;
pub mod check;
pub mod down;
pub mod local;
pub mod pin;
pub mod resolve;
pub mod rollout;

use crate::core::fleet_view::MachineView;
use crate::core::observed::{ContainerState, Health, Observed, ObservedContainer, Reach};
use crate::core::plan::Plan;
use crate::core::spec::ContainerSpec;
use crate::core::workload::Mode;
use crate::engine::Connections;
use crate::inventory::Fleet;
use crate::labels;
use crate::model::Project;
use crate::observe::{self, Observation, SeenContainer};
use anyhow::Result;
use resolve::Resolved;
use std::collections::{BTreeMap, BTreeSet};

/// The plan and everything it was computed from.
pub struct Planned {
    pub resolved: Resolved,
    pub observed: Observed,
    pub plan: Plan,
    /// Previous releases kept for rollback (stopped, superseded in their slot),
    /// by machine. The core never sees them; apply prunes and rollback uses them.
    pub previous: Vec<(String, SeenContainer)>,
    /// Said to the user before the plan: registries that could not be reached, and the
    /// digests kept instead (`pin::resolve`).
    pub warnings: Vec<String>,
    /// The key the specs are sealed with, and the machines `up` must write it to.
    pub sealing: crate::seal::Sealing,
    /// The user allowed the plan's volume moves (`up --move-volumes`); without it, applying a
    /// plan that has some fails before anything changes.
    pub allow_volume_moves: bool,
}

/// What the scheduler may know of each machine, from its engine.
pub fn machine_views(fleet: &Fleet, conns: &Connections) -> Vec<MachineView> {
    fleet
        .machines
        .iter()
        .map(|m| {
            let facts = conns
                .results
                .iter()
                .find(|(x, _)| x.name == m.name)
                .and_then(|(_, r)| r.as_ref().ok())
                .map(|e| e.facts.clone());
            let mut view = MachineView::unknown(&m.name);
            view.labels = m.labels.clone();
            if let Some(f) = facts {
                view.hostname = Some(f.hostname);
                view.os = Some(f.os);
                view.arch = Some(f.arch);
                view.nano_cpus = u64::from(f.cpus) * 1_000_000_000;
                view.memory = f.memory_bytes;
            }
            view
        })
        .collect()
}

/// The core's view of what runs, and the previous releases set aside.
/// `completing` names one-shot services (see `resolve::completes`): their
/// replicas that exited with 0 have done their job and count as up to date.
pub fn observed(
    observation: &Observation,
    completing: &std::collections::BTreeSet<String>,
) -> (Observed, Vec<(String, SeenContainer)>) {
    let mut out = Observed::default();
    let mut previous = Vec::new();
    for (machine, state) in &observation.machines {
        let state = match state {
            Ok(s) => s,
            Err(e) => {
                out.machines
                    .insert(machine.clone(), Reach::Unreachable(e.clone()));
                continue;
            }
        };
        out.machines.insert(machine.clone(), Reach::Reachable);
        let current: Vec<&SeenContainer> = observe::current(&state.containers);
        for c in &state.containers {
            let Some(slot) = c.slot.clone() else { continue };
            let is_current = current.iter().any(|x| x.id == c.id);
            let holder = current
                .iter()
                .find(|x| x.service == c.service && x.slot == c.slot);
            // A stopped container whose slot is filled by another spec is that slot's
            // previous release: kept for rollback, invisible to the plan. The holder may be
            // stopped too (by hand, `docker stop`): it is still the newer release, to be
            // started, and this one stays its previous.
            let superseded = !is_current
                && c.state != "running"
                && holder.is_some_and(|h| {
                    h.spec_hash != c.spec_hash && (h.state == "running" || h.created > c.created)
                });
            if superseded {
                previous.push((machine.clone(), c.clone()));
                continue;
            }
            out.containers.push(ObservedContainer {
                machine: machine.clone(),
                id: c.id.clone(),
                name: c.name.clone(),
                service: c.service.clone(),
                slot,
                spec_hash: c.spec_hash.clone(),
                spec: c
                    .labels
                    .get(labels::SPEC)
                    .and_then(|s| ContainerSpec::from_json(s).ok()),
                state: if completing.contains(&c.service) && c.status.starts_with("Exited (0)") {
                    ContainerState::Running
                } else {
                    ContainerState::parse(&c.state)
                },
                health: match c.health.as_deref() {
                    Some("healthy") => Health::Healthy,
                    Some("unhealthy") => Health::Unhealthy,
                    Some("starting") => Health::Starting,
                    _ => Health::None,
                },
                release: (!c.release.is_empty()).then(|| c.release.clone()),
            });
        }
        for v in &state.volumes {
            if v == labels::DRAINED_VOLUME {
                out.drained.insert(machine.clone());
            }
            // A copy cut short, or the copy a finished move left behind (`volume::moves`), is
            // no data of the service: as if the volume were not there.
            if crate::volume::moves::is_left_or_unfinished(v, &state.volumes) {
                continue;
            }
            out.volumes.push((machine.clone(), v.clone()));
        }
        for n in &state.all_networks {
            out.networks.push((machine.clone(), n.clone()));
        }
    }
    (out, previous)
}

/// What `hoist watch` adds to the inputs of a plan; empty for `plan` and `up`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Replica counts that replace the compose file's (the autoscaler's choice), by service.
    /// Only replicated services are affected.
    pub replicas: BTreeMap<String, u32>,
    /// Machines unreachable for longer than watch's grace period: their stateless slots are
    /// placed elsewhere (see `core::schedule::schedule_with`).
    pub lost: BTreeSet<String>,
}

/// Computes the plan for `project` on `fleet` from what `conns` observe.
/// `local`: what the local engine says of the services' images (`local::local_images`, or
/// `local::build_all` after building). Registry tags are resolved
/// to digests here (`pin::resolve`, asking the machines; `local` tells which images exist
/// only locally), after observing, so an unreachable registry can fall back to the digests
/// that run. Replica counts the autoscaler recorded on the machines (`hoist watch`) are
/// honoured.
pub async fn plan(
    project: &Project,
    fleet: &Fleet,
    conns: &Connections,
    images: &local::LocalImages,
    local: Option<&bollard::Docker>,
) -> Result<Planned> {
    // What `up` would refuse in the file's x-hoist settings, `plan` refuses first.
    crate::ingress::spec::from_project(project)?;
    crate::core::autoscale::policies(project)?;
    let (observation, keys) = tokio::join!(
        observe::observe(conns, &project.name),
        crate::seal::read_all(conns, &project.name)
    );
    crate::trace!("observed");
    let running = pin::from_observation(project, &observation);
    let resolution = pin::resolve(project, conns, local, &running).await?;
    crate::trace!("pinned");
    let records = crate::apply::scale_record::read(conns, &project.name).await;
    crate::trace!("records read");
    let inputs = Inputs {
        replicas: crate::core::autoscale::recorded_replicas(project, &records),
        lost: BTreeSet::new(),
    };
    let mut planned = plan_observed(
        project,
        fleet,
        conns,
        images,
        &resolution.pins,
        &observation,
        &keys,
        &inputs,
    )?;
    planned.warnings = resolution.warnings;
    planned.warnings.extend(clear_previous(&planned.previous));
    let recorded = crate::apply::fleet_record::read(&conns.engines(), &project.name).await;
    planned.plan.removed = recorded
        .into_iter()
        .filter(|m| !fleet.machines.iter().any(|x| &x.name == m))
        .collect();
    // The sizes of the volumes a move would copy, from the source machines' engines.
    for vm in &mut planned.plan.volume_moves {
        if let Some(Ok(e)) = conns
            .results
            .iter()
            .find(|(m, _)| m.name == vm.from)
            .map(|(_, r)| r)
            && let Ok(sizes) = crate::volume::data::sizes(&e.docker, e.socket()).await
        {
            for v in &vm.volumes {
                if let Some(n) = sizes.get(v) {
                    vm.sizes.insert(v.clone(), *n);
                }
            }
        }
    }
    Ok(planned)
}

/// A warning naming the previous releases whose labels still record their spec in the clear
/// (made by a hoist from before sealing): they are kept for rollback, so their labels keep the
/// values until their slot is next replaced.
fn clear_previous(previous: &[(String, SeenContainer)]) -> Option<String> {
    let clear: Vec<String> = previous
        .iter()
        .filter(|(_, c)| {
            c.labels
                .get(labels::SPEC)
                .and_then(|s| ContainerSpec::from_json(s).ok())
                .is_some_and(|s| s.get(crate::core::spec::attr::SEAL).is_none())
        })
        .map(|(m, c)| format!("{}@{m}", c.name))
        .collect();
    (!clear.is_empty()).then(|| {
        format!(
            "{} previous release(s) kept for rollback were made by a hoist from before sealing and \
             record their environment values in the clear in their labels: {}. They are removed \
             when their slot is next replaced; to remove them now (and lose that rollback), \
             `docker rm` them on their machines",
            clear.len(),
            clear.join(", ")
        )
    })
}

/// The plan from an observation already made (and the sealing keys read beside it), with
/// watch's `inputs`.
#[allow(clippy::too_many_arguments)]
pub fn plan_observed(
    project: &Project,
    fleet: &Fleet,
    conns: &Connections,
    images: &local::LocalImages,
    pins: &pin::Pins,
    observation: &Observation,
    keys: &crate::seal::Found,
    inputs: &Inputs,
) -> Result<Planned> {
    let mut images = images.clone();
    local::keep_running_ids(project, observation, &mut images);
    let sealing = crate::seal::choose(keys, observation)?;
    let mut resolved = resolve::resolve(project, &images, pins, fleet.mesh.as_ref())?;
    resolved.seal(&sealing.key);
    for w in &mut resolved.workloads {
        if let (Mode::Replicated(_), Some(n)) = (w.mode, inputs.replicas.get(&w.service)) {
            w.mode = Mode::Replicated(*n);
        }
    }
    let completing = project
        .services
        .keys()
        .filter(|s| resolve::completes(project, s))
        .cloned()
        .collect();
    let (observed, previous) = observed(observation, &completing);
    let views = machine_views(fleet, conns);
    let desired =
        crate::core::schedule::schedule_with(&resolved.workloads, &views, &observed, &inputs.lost)
            .map_err(|e| anyhow::anyhow!("cannot place the project on the machines:\n{e}"))?;
    let plan = crate::core::diff::diff(&desired, &observed, &resolved.workloads);
    host_ports_free(project, &resolved, &plan, observation)?;
    Ok(Planned {
        resolved,
        observed,
        plan,
        previous,
        warnings: Vec::new(),
        sealing,
        allow_volume_moves: false,
    })
}

/// Refuses a plan that needs a host port something else on the machine holds (another
/// project's replica or ingress, a container started by hand): the engine would refuse it in
/// the middle of `up`.
fn host_ports_free(
    project: &Project,
    resolved: &Resolved,
    plan: &crate::core::plan::Plan,
    observation: &Observation,
) -> Result<()> {
    use crate::core::ports::{self, HostPort};
    let wanted: BTreeMap<String, Vec<HostPort>> = resolved
        .services
        .iter()
        .map(|(name, s)| {
            let written: Vec<String> = s
                .spec
                .get(crate::core::spec::attr::PORTS)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            (name.clone(), ports::fixed(&written))
        })
        .collect();
    let tcp = |port| HostPort {
        port,
        proto: "tcp".into(),
    };
    let ingress = match crate::ingress::spec::from_project(project)? {
        Some(i) => vec![tcp(i.http_port), tcp(i.https_port)],
        None => Vec::new(),
    };
    let held: BTreeMap<String, Vec<ports::Held>> = observation
        .machines
        .iter()
        .filter_map(|(m, s)| Some((m.clone(), s.as_ref().ok()?.held_ports.clone())))
        .collect();
    let machines: Vec<String> = held.keys().cloned().collect();
    let clashes = ports::clashes(plan, &wanted, &ingress, &machines, &held);
    if !clashes.is_empty() {
        anyhow::bail!("host ports already taken:\n  {}", clashes.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::MachineState;

    /// A container of `api` in `slot`, with a spec hash, a state and a creation time.
    fn seen(id: &str, slot: &str, hash: &str, state: &str, created: i64) -> SeenContainer {
        SeenContainer {
            id: id.into(),
            name: format!("p-api-{slot}-{hash}"),
            service: "api".into(),
            slot: crate::core::observed::Slot::from_label(slot),
            spec_hash: hash.into(),
            release: String::new(),
            state: state.into(),
            health: None,
            image: "app".into(),
            image_id: String::new(),
            created,
            status: String::new(),
            ports: Vec::new(),
            labels: Default::default(),
        }
    }

    /// Which containers the plan sees and which are kept as previous releases.
    fn split(containers: Vec<SeenContainer>) -> (Vec<String>, Vec<String>) {
        let observation = Observation {
            machines: vec![(
                "m1".into(),
                Ok(MachineState {
                    containers,
                    ..Default::default()
                }),
            )],
        };
        let (observed, previous) = observed(&observation, &BTreeSet::new());
        (
            observed.containers.iter().map(|c| c.id.clone()).collect(),
            previous.iter().map(|(_, c)| c.id.clone()).collect(),
        )
    }

    #[test]
    fn the_previous_release_stays_previous_whatever_the_current_ones_state() {
        let cases = [
            // (current's state, seen by the plan, kept as previous)
            ("running", vec!["new"], vec!["old"]),
            ("exited", vec!["new"], vec!["old"]),
            ("paused", vec!["new"], vec!["old"]),
        ];
        for (state, plan, kept) in cases {
            let (p, k) = split(vec![
                seen("old", "2", "aaa", "exited", 100),
                seen("new", "2", "bbb", state, 200),
            ]);
            assert_eq!(
                (p, k),
                (
                    plan.iter().map(|s| s.to_string()).collect(),
                    kept.iter().map(|s| s.to_string()).collect()
                ),
                "current {state}"
            );
        }
        // After a rollback the older release runs again and the newer one is its previous.
        let (p, k) = split(vec![
            seen("old", "2", "aaa", "running", 100),
            seen("new", "2", "bbb", "exited", 200),
        ]);
        assert_eq!((p, k), (vec!["old".to_string()], vec!["new".to_string()]));
    }
}
