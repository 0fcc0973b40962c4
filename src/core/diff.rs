//! Diff: from where replicas should run (Desired) and what runs (Observed) to the steps of a
//! Plan, each with the reasons a user needs to trust it.
//!
//! The scheduler decided *where*; this module decides *what to do* about each container:
//! leave it, start it, replace it (and in which order), move it, or remove it. Nothing is
//! planned on a machine that could not be observed.

use super::observed::{ContainerState, Health, Observed, ObservedContainer, Slot, SlotName};
use super::plan::{Action, ContainerRef, Plan, Step, Unknown, VolumeMove};
use super::schedule::{Departure, Desired, Placement};
use super::spec::attr;
use super::workload::{Mode, UpdateOrder, Workload, dependency_order};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The steps that take the machines from `observed` to `desired`.
pub fn diff(desired: &Desired, observed: &Observed, workloads: &[Workload]) -> Plan {
    let mut by_service: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
    for c in observed.visible_containers() {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    for containers in by_service.values_mut() {
        containers.sort_by(|a, b| {
            (&a.machine, &a.slot, &a.name, &a.id).cmp(&(&b.machine, &b.slot, &b.name, &b.id))
        });
    }
    let mut placements: HashMap<&str, Vec<&Placement>> = HashMap::new();
    for p in &desired.placements {
        placements.entry(p.service.as_str()).or_default().push(p);
    }
    let departures: HashMap<(&str, &str), &Departure> = desired
        .departures
        .iter()
        .map(|d| (d.machine.as_str(), d.container_id.as_str()))
        .zip(&desired.departures)
        .collect();

    let volumes: HashSet<(&str, &str)> = observed
        .volumes
        .iter()
        .filter(|(m, _)| observed.is_reachable(m))
        .map(|(m, v)| (m.as_str(), v.as_str()))
        .collect();
    let mut steps = infrastructure(desired, observed, workloads);
    // Every removal comes before any creation, so the host ports and reservations the
    // scheduler counted as free are free by the time they are used.
    let mut later = Vec::new();
    let known: HashMap<&str, &Workload> =
        workloads.iter().map(|w| (w.service.as_str(), w)).collect();
    let mut held_by_service: HashMap<&str, usize> = HashMap::new();
    for h in &desired.held {
        *held_by_service.entry(h.service.as_str()).or_default() += 1;
    }
    for (service, containers) in &by_service {
        if !known.contains_key(service) {
            for c in containers {
                steps.push(remove(
                    c,
                    "service no longer in the compose file".to_string(),
                ));
            }
        }
    }
    for i in rollout_order(workloads) {
        let w = &workloads[i];
        let containers = by_service
            .get(w.service.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mine = placements
            .get(w.service.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let held = held_by_service
            .get(w.service.as_str())
            .copied()
            .unwrap_or(0);
        let (removals, rest) = service_steps(w, mine, containers, &departures, &volumes, held);
        steps.extend(removals);
        later.extend(rest);
    }
    steps.extend(later);
    let unknown = desired
        .held
        .iter()
        .map(|h| Unknown {
            service: h.service.clone(),
            slot: h.slot.clone(),
            machines: h.machines.clone(),
            volumes: known
                .get(h.service.as_str())
                .map(|w| w.volumes.iter().map(|v| v.name.clone()).collect())
                .unwrap_or_default(),
        })
        .collect();
    let volume_moves = steps
        .iter()
        .filter_map(|s| {
            let Action::Move { from, .. } = &s.action else {
                return None;
            };
            let w = known.get(s.service.as_deref()?)?;
            let moved: Vec<String> = w
                .volumes
                .iter()
                .map(|v| v.name.clone())
                .filter(|v| {
                    volumes.contains(&(from.as_str(), v.as_str()))
                        && !volumes.contains(&(s.machine.as_str(), v.as_str()))
                })
                .collect();
            let slot = s.slot.clone()?;
            (!moved.is_empty()).then(|| VolumeMove {
                service: w.service.clone(),
                slot,
                from: from.clone(),
                to: s.machine.clone(),
                volumes: moved,
                sizes: Default::default(),
            })
        })
        .collect();
    Plan {
        steps,
        machines: observed.machines.clone(),
        unknown,
        drained: observed.drained.clone(),
        removed: Default::default(),
        volume_moves,
    }
}

/// Services in depends_on order; a cycle (which schedule rejects) falls back to name order.
fn rollout_order(workloads: &[Workload]) -> Vec<usize> {
    dependency_order(workloads).unwrap_or_else(|_| {
        let mut order: Vec<usize> = (0..workloads.len()).collect();
        order.sort_by(|&a, &b| workloads[a].service.cmp(&workloads[b].service));
        order
    })
}

/// Networks and volumes missing on the machines that will run a replica needing them.
fn infrastructure(desired: &Desired, observed: &Observed, workloads: &[Workload]) -> Vec<Step> {
    let by_name: HashMap<&str, &Workload> =
        workloads.iter().map(|w| (w.service.as_str(), w)).collect();
    let networks: HashSet<(&str, &str)> = observed
        .networks
        .iter()
        .map(|(m, n)| (m.as_str(), n.as_str()))
        .collect();
    let volumes: HashSet<(&str, &str)> = observed
        .volumes
        .iter()
        .map(|(m, v)| (m.as_str(), v.as_str()))
        .collect();
    // (machine, 0 = network / 1 = volume, name)
    let mut missing: BTreeSet<(&str, u8, &str)> = BTreeSet::new();
    for p in &desired.placements {
        let Some(w) = by_name.get(p.service.as_str()) else {
            continue;
        };
        let m = p.machine.as_str();
        for n in &w.networks {
            if !networks.contains(&(m, n.as_str())) {
                missing.insert((m, 0, n));
            }
        }
        for v in &w.volumes {
            if !volumes.contains(&(m, v.name.as_str())) {
                missing.insert((m, 1, &v.name));
            }
        }
    }
    missing
        .into_iter()
        .map(|(machine, kind, name)| Step {
            machine: machine.to_string(),
            service: None,
            slot: None,
            action: if kind == 0 {
                Action::CreateNetwork {
                    name: name.to_string(),
                }
            } else {
                Action::CreateVolume {
                    name: name.to_string(),
                }
            },
            reasons: Vec::new(),
        })
        .collect()
}

fn container_ref(c: &ObservedContainer) -> ContainerRef {
    ContainerRef {
        id: c.id.clone(),
        name: c.name.clone(),
    }
}

fn remove(c: &ObservedContainer, reason: String) -> Step {
    Step {
        machine: c.machine.clone(),
        service: Some(c.service.clone()),
        slot: Some(c.slot.clone()),
        action: Action::Remove {
            container: container_ref(c),
        },
        reasons: vec![reason],
    }
}

fn service_steps(
    w: &Workload,
    placements: &[&Placement],
    containers: &[&ObservedContainer],
    departures: &HashMap<(&str, &str), &Departure>,
    volumes: &HashSet<(&str, &str)>,
    held: usize,
) -> (Vec<Step>, Vec<Step>) {
    let by_id: HashMap<(&str, &str), &ObservedContainer> = containers
        .iter()
        .map(|c| ((c.machine.as_str(), c.id.as_str()), *c))
        .collect();
    let mut used: HashSet<(&str, &str)> = HashSet::new();
    let mut steps = Vec::new();
    let wanted: BTreeSet<&Slot> = placements.iter().map(|p| &p.slot).collect();
    let found = containers
        .iter()
        .map(|c| &c.slot)
        .filter(|s| wanted.contains(s))
        .collect::<BTreeSet<_>>()
        .len()
        + held;

    for p in placements {
        let step = |action, reasons| Step {
            machine: p.machine.clone(),
            service: Some(w.service.clone()),
            slot: Some(p.slot.clone()),
            action,
            reasons,
        };
        if let Some(c) = p
            .keep
            .as_deref()
            .and_then(|id| by_id.get(&(p.machine.as_str(), id)))
        {
            used.insert((&c.machine, &c.id));
            let (action, reasons) = compare(w, p, c);
            steps.push(step(action, reasons));
            continue;
        }
        // A copy of this slot that must leave its machine moves here (the first by machine,
        // if several must leave; the others are removed with their own reason).
        let source = (p.slot != Slot::Global)
            .then(|| {
                containers.iter().find(|c| {
                    c.slot == p.slot
                        && !used.contains(&(c.machine.as_str(), c.id.as_str()))
                        && departures.contains_key(&(c.machine.as_str(), c.id.as_str()))
                })
            })
            .flatten();
        if let Some(c) = source {
            used.insert((&c.machine, &c.id));
            let mut reasons = vec![
                departures[&(c.machine.as_str(), c.id.as_str())]
                    .reason
                    .clone(),
            ];
            if c.spec_hash != p.spec_hash {
                reasons.extend(spec_reasons(w, c));
            }
            steps.push(step(
                Action::Move {
                    from: c.machine.clone(),
                    container: container_ref(c),
                },
                reasons,
            ));
        } else {
            let mut reasons = vec![if containers.is_empty() && held == 0 {
                "new service".to_string()
            } else {
                match w.mode {
                    Mode::Global => format!("global: none on {} yet", p.machine),
                    Mode::Replicated(n) => {
                        format!(
                            "{n} replica{} wanted, {found} found",
                            if n == 1 { "" } else { "s" }
                        )
                    }
                }
            }];
            let here: Vec<&str> = w
                .volumes
                .iter()
                .map(|v| v.name.as_str())
                .filter(|v| volumes.contains(&(p.machine.as_str(), *v)))
                .collect();
            if !here.is_empty() && w.mode != Mode::Global {
                reasons.push(format!(
                    "placed with its data: volume {} is on {}",
                    here.join(", "),
                    p.machine
                ));
            }
            // A tag resolved for this deploy: say which bits the new replica runs.
            if w.spec.get(attr::IMAGE_DIGEST).is_some()
                && let Some(image) = w.spec.image_shown()
            {
                reasons.push(format!("image {image}"));
            }
            steps.push(step(Action::Create, reasons));
        }
    }

    let mut removals = Vec::new();
    for c in containers {
        if used.contains(&(c.machine.as_str(), c.id.as_str())) {
            continue;
        }
        let reason = if let Some(d) = departures.get(&(c.machine.as_str(), c.id.as_str())) {
            d.reason.clone()
        } else {
            match (&c.slot, w.mode) {
                (Slot::Replica(_), Mode::Global) => "deploy mode changed to global".to_string(),
                (Slot::Global, Mode::Replicated(_)) => {
                    "deploy mode changed to replicated".to_string()
                }
                (Slot::Replica(k), Mode::Replicated(n)) if *k > n => {
                    format!(
                        "scale down: {n} replica{} wanted",
                        if n == 1 { "" } else { "s" }
                    )
                }
                _ => duplicate_reason(w, c, placements, &by_id),
            }
        };
        removals.push(remove(c, reason));
    }
    steps.sort_by(|a, b| (&a.machine, &a.slot).cmp(&(&b.machine, &b.slot)));
    (removals, steps)
}

fn duplicate_reason(
    w: &Workload,
    c: &ObservedContainer,
    placements: &[&Placement],
    by_id: &HashMap<(&str, &str), &ObservedContainer>,
) -> String {
    let slot = SlotName(&w.service, &c.slot);
    let placement = placements
        .iter()
        .find(|p| p.slot == c.slot && (c.slot != Slot::Global || p.machine == c.machine));
    match placement.and_then(|p| Some((p, by_id.get(&(p.machine.as_str(), p.keep.as_deref()?))?))) {
        Some((p, kept)) => format!(
            "duplicate of {slot}: keeping {} on {}",
            kept.name, p.machine
        ),
        None => format!("duplicate of {slot}"),
    }
}

/// What to do with the container that stays in its slot.
fn compare(w: &Workload, p: &Placement, c: &ObservedContainer) -> (Action, Vec<String>) {
    let container = container_ref(c);
    if c.spec_hash != p.spec_hash {
        let (order, order_reason) = update_order(w);
        return (
            Action::Replace {
                container,
                order,
                order_reason,
            },
            spec_reasons(w, c),
        );
    }
    match &c.state {
        // The engine keeps an unhealthy container running; Swarm replaces it, and so do we.
        ContainerState::Running if c.health == Health::Unhealthy => {
            let (order, order_reason) = update_order(w);
            (
                Action::Replace {
                    container,
                    order,
                    order_reason,
                },
                vec!["container is unhealthy, spec unchanged".to_string()],
            )
        }
        ContainerState::Running | ContainerState::Restarting => {
            (Action::Unchanged { container }, Vec::new())
        }
        // Stopped or paused by hand (`docker stop`, `docker pause`): the slot's replica is
        // brought back as it is, like any stopped one; replacing it would lose the slot's
        // previous release.
        ContainerState::Paused => (
            Action::Start { container },
            vec!["paused, spec unchanged: unpause it".to_string()],
        ),
        ContainerState::Created | ContainerState::Exited => (
            Action::Start { container },
            vec![format!("{}, spec unchanged", c.state.as_str())],
        ),
        other => {
            let (order, order_reason) = update_order(w);
            let reason = format!("container is {}", other.as_str());
            (
                Action::Replace {
                    container,
                    order,
                    order_reason,
                },
                vec![reason],
            )
        }
    }
}

fn spec_reasons(w: &Workload, c: &ObservedContainer) -> Vec<String> {
    match &c.spec {
        Some(recorded) => {
            let reasons = w.spec.changes_from(recorded);
            if reasons.is_empty() {
                vec!["spec changed".to_string()]
            } else {
                reasons
            }
        }
        None => vec!["spec changed (the container has no recorded spec to compare)".to_string()],
    }
}

/// Start-first where it is safe, stop-first where two containers cannot coexist on one
/// machine: a fixed host port would clash, a read-write local volume would have two writers.
fn update_order(w: &Workload) -> (UpdateOrder, String) {
    let clash = if let Some(port) = w.host_ports.first() {
        Some(format!("publishes host port {port}"))
    } else {
        w.single_writer_volume()
            .map(|v| format!("mounts volume {} read-write", v.name))
    };
    match (w.update_order, clash) {
        (Some(UpdateOrder::StopFirst), _) => (
            UpdateOrder::StopFirst,
            "requested by update_config.order".into(),
        ),
        (Some(UpdateOrder::StartFirst), None) => (
            UpdateOrder::StartFirst,
            "requested by update_config.order".into(),
        ),
        (Some(UpdateOrder::StartFirst), Some(why)) => (
            UpdateOrder::StopFirst,
            format!("{why}, so not the requested start-first"),
        ),
        (None, None) => (
            UpdateOrder::StartFirst,
            "hoist's default when update_config.order is unset".into(),
        ),
        (None, Some(why)) => (UpdateOrder::StopFirst, why),
    }
}
