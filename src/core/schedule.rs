//! Scheduling: which machine each replica slot runs on.
//!
//! Swarm's semantics, because users already know them (constraints, spread preferences,
//! max_replicas_per_node, reservations), plus what a fleet without a manager needs: stability
//! (a replica stays while its machine still qualifies), data that stays put (a service with a
//! local volume is pinned to the machines holding it), and caution about the unknown (a slot
//! that may be running on an unreachable machine is never started elsewhere).
//!
//! The algorithm is three passes over the services, each in a fixed order so that the result
//! never depends on input order:
//! 1. keep: every observed replica whose machine still qualifies stays there (best copy first
//!    when a slot has duplicates), and its reservations and ports are counted;
//! 2. hold: a missing slot that may be on an unreachable machine is left unplaced — unless
//!    the caller declared that machine *lost* ([`schedule_with`]) and the service keeps no
//!    local data: then the machine counts as gone from the inventory and the slot is placed;
//! 3. place: global services first, then replicated ones by name, each new slot going down the
//!    spread tree to the branch with fewest replicas of the service, then to the machine with
//!    fewest replicas of the service, fewest replicas overall, then by name.
//!
//! Cost is O(slots × machines) plus one pass over the observed containers.

use super::constraint::{Constraint, parse_spread};
use super::fleet_view::MachineView;
use super::observed::{ContainerState, Health, Observed, ObservedContainer, Slot, SlotName};
use super::refusal::Refusal;
pub use super::refusal::{Problem, ScheduleError};
use super::workload::{HostPort, Mode, Workload, dependency_order};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A replica slot assigned to a machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub service: String,
    pub slot: Slot,
    pub machine: String,
    /// Hash of the spec the slot should run ([`super::spec::ContainerSpec::hash`]).
    pub spec_hash: String,
    /// The observed container that fills the slot and stays on `machine` (by ID), if any.
    pub keep: Option<String>,
}

/// An observed container that must leave its machine for a placement reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departure {
    pub service: String,
    pub slot: Slot,
    pub machine: String,
    pub container_id: String,
    /// `placement: machine m3 no longer matches node.labels.zone == eu`
    pub reason: String,
}

/// A slot left unplaced because it may already run on a machine hoist cannot see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub service: String,
    pub slot: Slot,
    /// The unreachable machines it may be on.
    pub machines: Vec<String>,
}

/// The scheduler's answer, every list sorted by service, slot, machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub placements: Vec<Placement>,
    pub departures: Vec<Departure>,
    pub held: Vec<Held>,
}

enum Fit {
    Yes,
    No(Refusal),
    /// A fact the constraints need is unknown (unreachable machine): it might match.
    Unknown(String),
}

/// The allocation-free form of a [`Refusal`], for the hot path.
#[derive(Clone, Copy)]
enum Blocker {
    Unreachable,
    Static,
    Volume,
    MaxPerNode(u32),
    Port { want: usize, taken: usize },
    Cpu(u64),
    Memory(u64),
}

struct Svc<'a> {
    w: &'a Workload,
    constraints: Vec<Constraint>,
    spread: Vec<String>,
    hash: String,
    /// Reachable machines holding one of its local volumes; non-empty pins a replicated service.
    holders: Vec<usize>,
    /// Every holder is refused (drained, constraint no longer met) while a replica runs on one:
    /// the service may go to another machine, its data copied there (`up --move-volumes`;
    /// the plan shows it). Its first new machine becomes its only holder.
    uprooted: bool,
}

struct Node<'a> {
    view: &'a MachineView,
    unreachable: Option<&'a str>,
    /// Declared lost by the caller: unreachable long enough that its stateless slots go elsewhere.
    lost: bool,
    cpu_used: u64,
    mem_used: u64,
    ports: Vec<(HostPort, String)>,
    load: u32,
}

struct Scheduler<'a> {
    svcs: Vec<Svc<'a>>,
    nodes: Vec<Node<'a>>,
    /// `count[s * nodes + m]`: replicas of service `s` on machine `m`.
    count: Vec<u32>,
    fit: Vec<Fit>,
    desired: Desired,
}

/// Assigns every replica slot of `workloads` to one of `machines`, given what is running.
pub fn schedule(
    workloads: &[Workload],
    machines: &[MachineView],
    observed: &Observed,
) -> Result<Desired, ScheduleError> {
    schedule_with(workloads, machines, observed, &BTreeSet::new())
}

/// [`schedule`], with machines declared `lost`: unreachable for longer than the caller's grace
/// period (`hoist watch`). For services without a local volume a lost machine counts as gone
/// from the inventory, so the slots it may hold are placed elsewhere; a stateful slot is still
/// held (its data is there). A lost machine that is reachable again is an ordinary machine.
pub fn schedule_with(
    workloads: &[Workload],
    machines: &[MachineView],
    observed: &Observed,
    lost: &BTreeSet<String>,
) -> Result<Desired, ScheduleError> {
    let mut svcs = validate(workloads)?;
    let mut views: Vec<&MachineView> = machines.iter().collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views.dedup_by(|a, b| a.name == b.name);
    let nodes: Vec<Node> = views
        .iter()
        .map(|v| Node {
            view: v,
            unreachable: observed.unreachable_reason(&v.name),
            lost: lost.contains(&v.name),
            cpu_used: 0,
            mem_used: 0,
            ports: Vec::new(),
            load: 0,
        })
        .collect();
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.view.name.as_str(), i))
        .collect();
    let volumes: BTreeSet<(&str, &str)> = observed
        .volumes
        .iter()
        .map(|(m, v)| (m.as_str(), v.as_str()))
        .collect();
    for svc in &mut svcs {
        svc.holders = (0..nodes.len())
            .filter(|&m| nodes[m].unreachable.is_none())
            .filter(|&m| {
                svc.w
                    .volumes
                    .iter()
                    .any(|v| volumes.contains(&(nodes[m].view.name.as_str(), v.name.as_str())))
            })
            .collect();
    }
    let fit: Vec<Fit> = svcs
        .iter()
        .flat_map(|s| {
            nodes.iter().map(move |n| {
                if observed.drained.contains(&n.view.name) {
                    Fit::No(Refusal::Drained)
                } else {
                    static_fit(s, n.view)
                }
            })
        })
        .collect();
    let mut by_service: HashMap<&str, Vec<&ObservedContainer>> = HashMap::new();
    for c in observed.visible_containers() {
        by_service.entry(c.service.as_str()).or_default().push(c);
    }
    let count = vec![0; svcs.len() * nodes.len()];
    let n = nodes.len();
    for (si, svc) in svcs.iter_mut().enumerate() {
        let refused = |h: &usize| matches!(fit[si * n + *h], Fit::No(_));
        let runs_on_holder = by_service.get(svc.w.service.as_str()).is_some_and(|cs| {
            cs.iter()
                .any(|c| svc.holders.iter().any(|&h| nodes[h].view.name == c.machine))
        });
        svc.uprooted = svc.w.mode != Mode::Global
            && !svc.holders.is_empty()
            && svc.holders.iter().all(refused)
            && runs_on_holder;
    }
    let mut s = Scheduler {
        svcs,
        nodes,
        count,
        fit,
        desired: Desired::default(),
    };

    let mut order: Vec<usize> = (0..s.svcs.len()).collect();
    order.sort_by(|&a, &b| s.svcs[a].w.service.cmp(&s.svcs[b].w.service));
    let mut kept: Vec<BTreeSet<Slot>> = vec![BTreeSet::new(); s.svcs.len()];
    let mut seen: Vec<BTreeSet<Slot>> = vec![BTreeSet::new(); s.svcs.len()];
    for &si in &order {
        let containers = by_service
            .get(s.svcs[si].w.service.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        seen[si] = containers.iter().map(|c| c.slot.clone()).collect();
        kept[si] = s.keep(si, containers, &index);
    }
    order.sort_by_key(|&si| {
        (
            s.svcs[si].w.mode != Mode::Global,
            s.svcs[si].w.service.as_str(),
        )
    });
    let mut problems = Vec::new();
    for &si in &order {
        let problem = match s.svcs[si].w.mode {
            Mode::Global => s.place_global(si),
            Mode::Replicated(n) => s.place_replicated(si, n, &kept[si], &seen[si]),
        };
        problems.extend(problem);
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| problem_service(a).cmp(problem_service(b)));
        return Err(ScheduleError { problems });
    }
    let mut desired = s.desired;
    desired
        .placements
        .sort_by(|a, b| (&a.service, &a.slot, &a.machine).cmp(&(&b.service, &b.slot, &b.machine)));
    desired.departures.sort_by(|a, b| {
        (&a.service, &a.slot, &a.machine, &a.container_id).cmp(&(
            &b.service,
            &b.slot,
            &b.machine,
            &b.container_id,
        ))
    });
    desired
        .held
        .sort_by(|a, b| (&a.service, &a.slot).cmp(&(&b.service, &b.slot)));
    Ok(desired)
}

fn problem_service(p: &Problem) -> &str {
    match p {
        Problem::Invalid { service, .. } | Problem::Unplaceable { service, .. } => service,
    }
}

/// Parses what the scheduler needs from each workload, reporting every mistake at once.
fn validate(workloads: &[Workload]) -> Result<Vec<Svc<'_>>, ScheduleError> {
    let mut problems = Vec::new();
    let mut invalid = |service: &str, message: String| {
        problems.push(Problem::Invalid {
            service: service.to_string(),
            message,
        });
    };
    let names: BTreeSet<&str> = workloads.iter().map(|w| w.service.as_str()).collect();
    let mut seen = BTreeSet::new();
    let mut svcs = Vec::with_capacity(workloads.len());
    for w in workloads {
        if !seen.insert(w.service.as_str()) {
            invalid(&w.service, "defined twice".to_string());
        }
        let mut constraints = Vec::new();
        for text in &w.constraints {
            match Constraint::parse(text) {
                Ok(c) => constraints.push(c),
                Err(e) => invalid(&w.service, format!("placement constraint {e}")),
            }
        }
        let mut spread = Vec::new();
        for text in &w.spread {
            match parse_spread(text) {
                Ok(label) => spread.push(label),
                Err(e) => invalid(&w.service, format!("spread preference {e}")),
            }
        }
        for dep in &w.depends_on {
            if !names.contains(dep.as_str()) {
                invalid(
                    &w.service,
                    format!("depends_on names `{dep}`, which is not a service of the project"),
                );
            }
        }
        svcs.push(Svc {
            w,
            constraints,
            spread,
            hash: w.spec.hash(),
            holders: Vec::new(),
            uprooted: false,
        });
    }
    if let Err(stuck) = dependency_order(workloads) {
        for service in &stuck {
            invalid(
                service,
                format!("depends_on cycle among {}", stuck.join(", ")),
            );
        }
    }
    if problems.is_empty() {
        Ok(svcs)
    } else {
        problems.sort_by(|a, b| problem_service(a).cmp(problem_service(b)));
        Err(ScheduleError { problems })
    }
}

fn static_fit(svc: &Svc, machine: &MachineView) -> Fit {
    let mut unknown = None;
    for c in &svc.constraints {
        match c.matches(machine) {
            Some(true) => {}
            Some(false) => return Fit::No(Refusal::Constraint(c.to_string())),
            None => unknown = unknown.or(Some(c.to_string())),
        }
    }
    match unknown {
        Some(c) => Fit::Unknown(c),
        None => Fit::Yes,
    }
}

/// Best copy first: the right spec, running, not unhealthy, then by machine and name.
fn rank<'c>(c: &&'c ObservedContainer, hash: &str) -> (bool, bool, bool, &'c str, &'c str) {
    (
        c.spec_hash != hash,
        c.state != ContainerState::Running,
        c.health == Health::Unhealthy,
        &c.machine,
        &c.name,
    )
}

impl<'a> Scheduler<'a> {
    fn n(&self) -> usize {
        self.nodes.len()
    }

    fn count(&self, si: usize, m: usize) -> u32 {
        self.count[si * self.n() + m]
    }

    /// What stops machine `m` from taking one more replica of service `si` now; `None` if it
    /// can. Cheap (no allocation): it runs for every machine for every new replica.
    fn blocker(&self, si: usize, m: usize) -> Option<Blocker> {
        let (svc, node) = (&self.svcs[si], &self.nodes[m]);
        if node.unreachable.is_some() {
            return Some(Blocker::Unreachable);
        }
        if !matches!(self.fit[si * self.n() + m], Fit::Yes) {
            return Some(Blocker::Static);
        }
        let global = svc.w.mode == Mode::Global;
        if !global && !svc.holders.is_empty() && !svc.holders.contains(&m) && !svc.uprooted {
            return Some(Blocker::Volume);
        }
        if let Some(max) = svc.w.max_replicas_per_node.filter(|_| !global) {
            if self.count(si, m) >= max {
                return Some(Blocker::MaxPerNode(max));
            }
        }
        for (want, port) in svc.w.host_ports.iter().enumerate() {
            if let Some(taken) = node.ports.iter().position(|(p, _)| p.clashes_with(port)) {
                return Some(Blocker::Port { want, taken });
            }
        }
        let r = svc.w.reservations;
        let free_cpu = node.view.nano_cpus.saturating_sub(node.cpu_used);
        if r.nano_cpus > free_cpu {
            return Some(Blocker::Cpu(free_cpu));
        }
        let free_mem = node.view.memory.saturating_sub(node.mem_used);
        if r.memory > free_mem {
            return Some(Blocker::Memory(free_mem));
        }
        None
    }

    /// [`Scheduler::blocker`], explained for people.
    fn refusal(&self, si: usize, m: usize) -> Option<Refusal> {
        let (svc, node) = (&self.svcs[si], &self.nodes[m]);
        Some(match self.blocker(si, m)? {
            Blocker::Unreachable => {
                Refusal::Unreachable(node.unreachable.unwrap_or_default().to_string())
            }
            Blocker::Static => match &self.fit[si * self.n() + m] {
                Fit::No(r) => r.clone(),
                Fit::Unknown(c) => Refusal::FactUnknown(c.clone()),
                Fit::Yes => unreachable!("blocked by a static fit"),
            },
            Blocker::Volume => Refusal::Volume {
                volume: svc
                    .w
                    .volumes
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                holders: svc
                    .holders
                    .iter()
                    .map(|&h| self.nodes[h].view.name.clone())
                    .collect(),
            },
            Blocker::MaxPerNode(max) => Refusal::MaxPerNode {
                service: svc.w.service.clone(),
                max,
            },
            Blocker::Port { want, taken } => Refusal::Port {
                port: svc.w.host_ports[want].clone(),
                owner: node.ports[taken].1.clone(),
            },
            Blocker::Cpu(free) => Refusal::Cpu {
                wants: svc.w.reservations.nano_cpus,
                free,
            },
            Blocker::Memory(free) => Refusal::Memory {
                wants: svc.w.reservations.memory,
                free,
            },
        })
    }

    fn record(&mut self, si: usize, m: usize, slot: Slot, keep: Option<String>) {
        let n = self.n();
        let svc = &self.svcs[si];
        let owner = SlotName(&svc.w.service, &slot).to_string();
        let node = &mut self.nodes[m];
        node.cpu_used += svc.w.reservations.nano_cpus;
        node.mem_used += svc.w.reservations.memory;
        node.load += 1;
        node.ports
            .extend(svc.w.host_ports.iter().map(|p| (p.clone(), owner.clone())));
        let machine = node.view.name.clone();
        self.count[si * n + m] += 1;
        // The volume will be created with this replica: one named volume's data lives on one
        // machine, so the service's next replicas join it (as on a single compose host).
        if svc.w.mode != Mode::Global && !svc.w.volumes.is_empty() && !svc.holders.contains(&m) {
            if svc.uprooted {
                // Its data goes to this machine; the service's other replicas follow it.
                self.svcs[si].uprooted = false;
                self.svcs[si].holders.clear();
            }
            self.svcs[si].holders.push(m);
        }
        let svc = &self.svcs[si];
        self.desired.placements.push(Placement {
            service: svc.w.service.clone(),
            slot,
            machine,
            spec_hash: svc.hash.clone(),
            keep,
        });
    }

    /// Pass 1: keeps every observed replica whose machine still qualifies; returns the slots
    /// kept. Copies that must leave become departures; surplus copies are left for diff.
    fn keep(
        &mut self,
        si: usize,
        containers: &[&'a ObservedContainer],
        index: &HashMap<&str, usize>,
    ) -> BTreeSet<Slot> {
        let mut by_slot: BTreeMap<Slot, Vec<&ObservedContainer>> = BTreeMap::new();
        for c in containers {
            by_slot.entry(c.slot.clone()).or_default().push(c);
        }
        let global = self.svcs[si].w.mode == Mode::Global;
        let mut kept = BTreeSet::new();
        for (slot, mut copies) in by_slot {
            let wanted = match (&slot, self.svcs[si].w.mode) {
                (Slot::Replica(k), Mode::Replicated(n)) => *k <= n,
                (Slot::Global, Mode::Global) => true,
                _ => false,
            };
            if !wanted {
                continue;
            }
            let hash = self.svcs[si].hash.clone();
            copies.sort_by(|a, b| rank(a, &hash).cmp(&rank(b, &hash)));
            if global {
                // Each machine's copy is its own slot.
                let mut machines: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
                for c in copies {
                    machines.entry(c.machine.as_str()).or_default().push(c);
                }
                for copies in machines.into_values() {
                    self.keep_one(si, &slot, &copies, index);
                }
            } else if self.keep_one(si, &slot, &copies, index) {
                kept.insert(slot);
            }
        }
        kept
    }

    /// Keeps the best of `copies` (ranked) that may stay; records departures for those ranked
    /// above it that may not. Returns whether one was kept.
    fn keep_one(
        &mut self,
        si: usize,
        slot: &Slot,
        copies: &[&ObservedContainer],
        index: &HashMap<&str, usize>,
    ) -> bool {
        for c in copies {
            let refusal = match index.get(c.machine.as_str()) {
                None => Some(Refusal::NotInInventory),
                Some(&m) => self.refusal(si, m),
            };
            match refusal {
                None => {
                    let m = index[c.machine.as_str()];
                    self.record(si, m, slot.clone(), Some(c.id.clone()));
                    return true;
                }
                Some(r) => self.desired.departures.push(Departure {
                    service: c.service.clone(),
                    slot: slot.clone(),
                    machine: c.machine.clone(),
                    container_id: c.id.clone(),
                    reason: r.departure(&c.machine),
                }),
            }
        }
        false
    }

    fn place_global(&mut self, si: usize) -> Option<Problem> {
        let service = self.svcs[si].w.service.clone();
        let (mut wanted, mut refusals) = (0, Vec::new());
        for m in 0..self.n() {
            if self.nodes[m].unreachable.is_some()
                || !matches!(self.fit[si * self.n() + m], Fit::Yes)
            {
                continue;
            }
            wanted += 1;
            if self.count(si, m) > 0 {
                continue;
            }
            match self.refusal(si, m) {
                None => self.record(si, m, Slot::Global, None),
                Some(r) => refusals.push((self.nodes[m].view.name.clone(), r.refusal())),
            }
        }
        (!refusals.is_empty()).then(|| Problem::Unplaceable {
            service,
            global: true,
            wanted,
            placed: wanted - refusals.len() as u32,
            refusals,
        })
    }

    fn place_replicated(
        &mut self,
        si: usize,
        n: u32,
        kept: &BTreeSet<Slot>,
        seen: &BTreeSet<Slot>,
    ) -> Option<Problem> {
        let mut placed = kept.len() as u32;
        for k in 1..=n {
            let slot = Slot::Replica(k);
            if kept.contains(&slot) {
                continue;
            }
            if !seen.contains(&slot) {
                let stateless = self.svcs[si].w.volumes.is_empty();
                let maybe_on: Vec<String> = (0..self.n())
                    .filter(|&m| self.nodes[m].unreachable.is_some())
                    .filter(|&m| !(stateless && self.nodes[m].lost))
                    .filter(|&m| !matches!(self.fit[si * self.n() + m], Fit::No(_)))
                    .map(|m| self.nodes[m].view.name.clone())
                    .collect();
                if !maybe_on.is_empty() {
                    let service = self.svcs[si].w.service.clone();
                    self.desired.held.push(Held {
                        service,
                        slot,
                        machines: maybe_on,
                    });
                    placed += 1;
                    continue;
                }
            }
            match self.choose(si) {
                Some(m) => {
                    self.record(si, m, slot, None);
                    placed += 1;
                }
                None => {
                    let refusals = (0..self.n())
                        .map(|m| {
                            let why = self.refusal(si, m).map(|r| r.refusal()).unwrap_or_default();
                            (self.nodes[m].view.name.clone(), why)
                        })
                        .collect();
                    let service = self.svcs[si].w.service.clone();
                    return Some(Problem::Unplaceable {
                        service,
                        global: false,
                        wanted: n,
                        placed,
                        refusals,
                    });
                }
            }
        }
        None
    }

    /// The machine for one new replica of `si`, walking the spread tree; `None` if none fits.
    fn choose(&self, si: usize) -> Option<usize> {
        let mut feasible: Vec<usize> = (0..self.n())
            .filter(|&m| self.blocker(si, m).is_none())
            .collect();
        if feasible.is_empty() {
            return None;
        }
        let svc = &self.svcs[si];
        // The branches are counted over every machine the service may use, not only those
        // with room now, so a full zone still counts as holding its replicas.
        let mut eligible: Vec<usize> = (0..self.n())
            .filter(|&m| {
                self.nodes[m].unreachable.is_none()
                    && matches!(self.fit[si * self.n() + m], Fit::Yes)
            })
            .filter(|&m| svc.uprooted || svc.holders.is_empty() || svc.holders.contains(&m))
            .collect();
        for label in &svc.spread {
            let value = |m: usize| {
                self.nodes[m]
                    .view
                    .labels
                    .get(label)
                    .map(String::as_str)
                    .unwrap_or("")
            };
            let mut branches: BTreeMap<&str, (u32, bool)> = BTreeMap::new();
            for &m in &eligible {
                branches.entry(value(m)).or_default().0 += self.count(si, m);
            }
            for &m in &feasible {
                branches.entry(value(m)).or_default().1 = true;
            }
            let (best, _) = branches
                .iter()
                .filter(|(_, (_, open))| *open)
                .min_by_key(|(v, (count, _))| (*count, v.is_empty(), **v))?;
            let best = *best;
            eligible.retain(|&m| value(m) == best);
            feasible.retain(|&m| value(m) == best);
        }
        feasible.into_iter().min_by_key(|&m| {
            (
                self.count(si, m),
                self.nodes[m].load,
                &self.nodes[m].view.name,
            )
        })
    }
}
