//! The plan converges, by construction: for generated fleets, compose services and observed
//! states (stale specs, stopped and paused replicas, duplicates, surplus slots, services gone
//! from the file, replicas on machines their constraints no longer allow, drained machines),
//! carrying out the plan — every step as the executor does it, applied to the observed state —
//! and planning again gives no change. A planner that oscillates (moves a replica back and
//! forth, replaces what it just created, leaves a duplicate) fails here with the seed, the
//! first plan and the second.

use super::fixtures::*;
use crate::core::diff::diff;
use crate::core::observed::{ContainerState, Health, Observed, ObservedContainer, Reach};
use crate::core::plan::{Action, Plan};
use crate::core::schedule::{Desired, schedule};
use crate::core::workload::{Mode, UpdateOrder, Workload};

/// A small deterministic generator (xorshift64*): the seed alone reproduces a case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Cases per run (each a seed).
const SEEDS: u64 = 1000;

const MACHINES: [&str; 4] = ["m1", "m2", "m3", "m4"];
const SERVICES: [&str; 4] = ["web", "api", "db", "old"];

struct Case {
    machines: Vec<crate::core::fleet_view::MachineView>,
    workloads: Vec<Workload>,
    observed: Observed,
}

fn generate(seed: u64) -> Case {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let n = 1 + r.below(4) as usize;
    let machines: Vec<_> = MACHINES[..n]
        .iter()
        .map(|m| machine(m).label("zone", if r.chance(50) { "a" } else { "b" }))
        .collect();
    // The compose file: web, api, db — each maybe; "old" never (it was removed from it).
    let mut workloads = Vec::new();
    for name in &SERVICES[..3] {
        if r.chance(25) {
            continue;
        }
        let image = if r.chance(50) { "app:1" } else { "app:2" };
        let mut w = svc(name, image);
        w = if r.chance(15) {
            w.global()
        } else {
            w.replicas(r.below(5) as u32)
        };
        if r.chance(30) {
            w = w.constraint(if r.chance(50) {
                "node.labels.zone == a"
            } else {
                "node.labels.zone != a"
            });
        }
        if r.chance(20) {
            w = w.max_per_node(1);
        }
        if r.chance(30) {
            w = w.spread("node.labels.zone");
        }
        if r.chance(30) {
            w = w.order(if r.chance(50) {
                UpdateOrder::StartFirst
            } else {
                UpdateOrder::StopFirst
            });
        }
        workloads.push(w);
    }
    // What runs: replicas of these services and of "old", each of the current or an older
    // spec, in any state, on any machine, with duplicates and slots beyond the wanted count.
    let mut f = fleet(&MACHINES[..n]);
    if n > 1 && r.chance(20) {
        f = f.drained(MACHINES[r.below(n as u64) as usize]);
    }
    let states = [
        "running", "running", "running", "exited", "paused", "created",
    ];
    for _ in 0..r.below(10) {
        let service = SERVICES[r.below(4) as usize];
        let current = workloads.iter().find(|w| w.service == service).cloned();
        let mut w = current.clone().unwrap_or_else(|| svc(service, "app:1"));
        if r.chance(30) {
            w = w.env("OLD", "1");
        }
        let m = MACHINES[r.below(n as u64) as usize];
        let state = states[r.below(states.len() as u64) as usize];
        let global = matches!(current.as_ref().map(|w| &w.mode), Some(Mode::Global));
        let dup = format!("-x{}", r.below(1000));
        f = if global {
            f.duplicate_global(&w, m, state, if r.chance(70) { "" } else { &dup })
        } else {
            let slot = 1 + r.below(5) as u32;
            if r.chance(80) {
                f.with_state(&w, slot, m, state)
            } else {
                f.duplicate(&w, slot, m, state, &dup)
            }
        };
    }
    // Unique ids: a generated duplicate may have landed on the same name and machine.
    let mut seen = std::collections::BTreeSet::new();
    f.0.containers.retain(|c| seen.insert(c.id.clone()));
    Case {
        machines,
        workloads,
        observed: f.0,
    }
}

/// The observed state after the executor carried out `plan`: what each step does to the
/// machines, nothing more.
fn carry_out(
    plan: &Plan,
    desired: &Desired,
    workloads: &[Workload],
    before: &Observed,
) -> Observed {
    let mut after = before.clone();
    let mut made = 0;
    for step in &plan.steps {
        let mut create = |after: &mut Observed| {
            let (service, slot) = (step.service.clone().unwrap(), step.slot.clone().unwrap());
            let w = workloads.iter().find(|w| w.service == service).unwrap();
            let placement = desired
                .placements
                .iter()
                .find(|p| p.service == service && p.slot == slot && p.machine == step.machine)
                .expect("a created replica has a placement");
            made += 1;
            after.containers.push(ObservedContainer {
                machine: step.machine.clone(),
                id: format!("new{made}"),
                name: format!("shop-{service}-new{made}"),
                service,
                slot,
                spec_hash: placement.spec_hash.clone(),
                spec: Some(w.spec.clone()),
                state: ContainerState::Running,
                health: Health::None,
                release: Some("r2".into()),
            });
        };
        let drop = |after: &mut Observed, id: &str| after.containers.retain(|c| c.id != id);
        match &step.action {
            Action::CreateNetwork { name } => {
                after.networks.push((step.machine.clone(), name.clone()))
            }
            Action::CreateVolume { name } => {
                after.volumes.push((step.machine.clone(), name.clone()))
            }
            Action::Create => create(&mut after),
            Action::Start { container } => {
                for c in after.containers.iter_mut().filter(|c| c.id == container.id) {
                    c.state = ContainerState::Running;
                }
            }
            Action::Replace { container, .. } | Action::Move { container, .. } => {
                drop(&mut after, &container.id);
                create(&mut after);
            }
            Action::Remove { container } => drop(&mut after, &container.id),
            Action::Unchanged { .. } => {}
        }
    }
    after
}

fn plan_of(case: &Case, observed: &Observed) -> Option<(Desired, Plan)> {
    let desired = schedule(&case.workloads, &case.machines, observed).ok()?;
    let plan = diff(&desired, observed, &case.workloads);
    Some((desired, plan))
}

#[test]
fn carrying_out_the_plan_then_planning_again_changes_nothing() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for seed in 0..SEEDS {
        let case = generate(seed);
        let Some((desired, plan)) = plan_of(&case, &case.observed) else {
            continue; // a fleet the services do not fit: a plan error, not a plan
        };
        let after = carry_out(&plan, &desired, &case.workloads, &case.observed);
        let again = match plan_of(&case, &after) {
            Some((_, again)) => again,
            None => {
                failures.push(format!(
                    "seed {seed}: the first plan scheduled, the state it leaves does not:\n{}",
                    plan.render_text()
                ));
                continue;
            }
        };
        checked += 1;
        if again.has_changes() {
            failures.push(format!(
                "seed {seed}:\nfirst plan:\n{}\nsecond plan:\n{}",
                plan.render_text(),
                again.render_text()
            ));
        }
    }
    assert!(
        checked > SEEDS / 3,
        "only {checked} generated cases could be planned"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} cases did not converge; the first:\n{}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn the_generator_makes_the_states_it_claims() {
    // Guard against a generator that quietly stops producing the hard cases.
    let (mut stale, mut stopped, mut gone, mut dups, mut drained) = (0, 0, 0, 0, 0);
    for seed in 0..SEEDS {
        let c = generate(seed);
        for o in &c.observed.containers {
            match c.workloads.iter().find(|w| w.service == o.service) {
                None => gone += 1,
                Some(w) if w.spec.hash() != o.spec_hash => stale += 1,
                _ => {}
            }
            if o.state != ContainerState::Running {
                stopped += 1;
            }
            if o.name.contains("-x") {
                dups += 1;
            }
        }
        drained += c.observed.drained.len();
        assert!(c.observed.machines.values().all(|r| *r == Reach::Reachable));
    }
    assert!(
        stale > 50 && stopped > 50 && gone > 50 && dups > 50 && drained > 20,
        "stale {stale}, stopped {stopped}, gone {gone}, duplicates {dups}, drained {drained}"
    );
}
