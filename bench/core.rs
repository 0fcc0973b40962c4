//! The pure core alone — schedule + diff + render — on a large synthetic fleet:
//! 1,000 services × 100 machines, first from nothing, then in steady state with
//! 10% of the services changed. Run: `cargo bench --bench core`.
//!
//! Wall time of whole runs, the median of several; nothing here is asserted.

use hoist::core::diff::diff;
use hoist::core::fleet_view::MachineView;
use hoist::core::observed::{ContainerState, Health, Observed, ObservedContainer, Reach};
use hoist::core::schedule::schedule;
use hoist::core::spec::ContainerSpec;
use hoist::core::workload::{HostPort, Mode, Workload};
use std::time::{Duration, Instant};

const SERVICES: usize = 1000;
const MACHINES: usize = 100;

fn machines() -> Vec<MachineView> {
    (0..MACHINES)
        .map(|i| {
            let mut m = MachineView::unknown(&format!("m{i:03}"));
            m.hostname = Some(m.name.clone());
            m.os = Some("linux".into());
            m.arch = Some("x86_64".into());
            m.nano_cpus = 64_000_000_000;
            m.memory = 256 << 30;
            m.labels.insert("zone".into(), format!("z{}", i % 4));
            m
        })
        .collect()
}

fn workloads(version: impl Fn(usize) -> u32) -> Vec<Workload> {
    (0..SERVICES)
        .map(|i| {
            let spec = ContainerSpec::new()
                .with("image", format!("app{i}:{}", version(i)))
                .with("environment", serde_json::json!({"N": i.to_string()}));
            let mut w = Workload::new(&format!("svc{i:04}"), spec);
            w.mode = if i % 50 == 0 {
                Mode::Global
            } else {
                Mode::Replicated(1 + (i % 8) as u32)
            };
            if i % 3 == 0 {
                w.spread = vec!["node.labels.zone".into()];
            }
            if i % 7 == 0 {
                w.constraints = vec![format!("node.labels.zone != z{}", i % 4)];
            }
            if i % 97 == 0 {
                w.host_ports = vec![HostPort::tcp(10000 + i as u16)];
            }
            if i > 0 && i % 5 == 0 {
                w.depends_on = vec![format!("svc{:04}", i - 1)];
            }
            w.reservations.memory = 64 << 20;
            w
        })
        .collect()
}

fn empty() -> Observed {
    let mut o = Observed::default();
    for i in 0..MACHINES {
        o.machines.insert(format!("m{i:03}"), Reach::Reachable);
    }
    o
}

/// What the machines run after a deploy of `w`.
fn deployed(w: &[Workload], m: &[MachineView]) -> Observed {
    let mut o = empty();
    let desired = schedule(w, m, &o).expect("placeable");
    let hashes: std::collections::HashMap<&str, String> = w
        .iter()
        .map(|w| (w.service.as_str(), w.spec.hash()))
        .collect();
    for (n, p) in desired.placements.iter().enumerate() {
        o.containers.push(ObservedContainer {
            machine: p.machine.clone(),
            id: format!("c{n}"),
            name: format!("{}-{n}", p.service),
            service: p.service.clone(),
            slot: p.slot.clone(),
            spec_hash: hashes[p.service.as_str()].clone(),
            spec: None,
            state: ContainerState::Running,
            health: Health::None,
            release: None,
        });
    }
    o
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn time(label: &str, w: &[Workload], m: &[MachineView], o: &Observed) {
    let mut sched = Vec::new();
    let mut dif = Vec::new();
    let mut text = Vec::new();
    let mut steps = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let desired = schedule(w, m, o).expect("placeable");
        sched.push(t.elapsed());
        let t = Instant::now();
        let plan = diff(&desired, o, w);
        dif.push(t.elapsed());
        let t = Instant::now();
        let rendered = plan.render_text();
        text.push(t.elapsed());
        steps = plan.steps.len();
        std::hint::black_box(rendered);
    }
    println!(
        "{label:<34} {steps:>6} steps  schedule {:>8.2?}  diff {:>8.2?}  render {:>8.2?}",
        median(sched),
        median(dif),
        median(text)
    );
}

fn main() {
    let m = machines();
    let v1 = workloads(|_| 1);
    println!("pure core, {SERVICES} services × {MACHINES} machines (median of 7 runs)");
    time("first deploy (empty fleet)", &v1, &m, &empty());
    let running = deployed(&v1, &m);
    time("no-op (everything deployed)", &v1, &m, &running);
    let v2 = workloads(|i| if i % 10 == 0 { 2 } else { 1 });
    time("10% of services changed", &v2, &m, &running);
}
