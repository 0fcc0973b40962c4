//! Short builders for fleets, services and observed state, so a table row reads like the
//! situation it describes. Project `shop`: network `shop_default`, containers `shop-web-1`.

use crate::core::fleet_view::MachineView;
use crate::core::observed::{ContainerState, Health, Observed, ObservedContainer, Reach, Slot};
use crate::core::spec::ContainerSpec;
use crate::core::workload::{HostPort, LocalVolume, Mode, UpdateOrder, Workload};
use serde_json::{Value, json};

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

/// A reachable-looking machine: hostname = name, linux/x86_64, 4 CPUs, 8GiB.
pub fn machine(name: &str) -> MachineView {
    let mut m = MachineView::unknown(name);
    m.hostname = Some(name.to_string());
    m.os = Some("linux".into());
    m.arch = Some("x86_64".into());
    m.nano_cpus = 4_000_000_000;
    m.memory = 8 * GIB;
    m
}

pub fn machines(names: &[&str]) -> Vec<MachineView> {
    names.iter().map(|n| machine(n)).collect()
}

pub trait MachineBuild {
    fn label(self, key: &str, value: &str) -> Self;
    fn cpus(self, cpus: f64) -> Self;
    fn memory(self, bytes: u64) -> Self;
}

impl MachineBuild for MachineView {
    fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    fn cpus(mut self, cpus: f64) -> Self {
        self.nano_cpus = (cpus * 1e9) as u64;
        self
    }
    fn memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }
}

/// A replicated service with one replica of `image`, on network `shop_default`.
pub fn svc(name: &str, image: &str) -> Workload {
    let mut w = Workload::new(name, ContainerSpec::new().with("image", image));
    w.networks = vec!["shop_default".into()];
    w
}

pub trait ServiceBuild {
    fn replicas(self, n: u32) -> Self;
    fn global(self) -> Self;
    fn constraint(self, c: &str) -> Self;
    fn spread(self, p: &str) -> Self;
    fn max_per_node(self, n: u32) -> Self;
    fn reserve(self, cpus: f64, memory: u64) -> Self;
    /// Publishes `port:…/tcp` on all addresses, and says so in the spec.
    fn port(self, port: u16, target: u16) -> Self;
    fn volume(self, name: &str, mount: &str) -> Self;
    fn ro_volume(self, name: &str, mount: &str) -> Self;
    fn order(self, o: UpdateOrder) -> Self;
    fn depends_on(self, other: &str) -> Self;
    fn env(self, key: &str, value: &str) -> Self;
    fn attr(self, name: &str, value: Value) -> Self;
}

impl ServiceBuild for Workload {
    fn replicas(mut self, n: u32) -> Self {
        self.mode = Mode::Replicated(n);
        self
    }
    fn global(mut self) -> Self {
        self.mode = Mode::Global;
        self
    }
    fn constraint(mut self, c: &str) -> Self {
        self.constraints.push(c.into());
        self
    }
    fn spread(mut self, p: &str) -> Self {
        self.spread.push(p.into());
        self
    }
    fn max_per_node(mut self, n: u32) -> Self {
        self.max_replicas_per_node = Some(n);
        self
    }
    fn reserve(mut self, cpus: f64, memory: u64) -> Self {
        self.reservations.nano_cpus = (cpus * 1e9) as u64;
        self.reservations.memory = memory;
        self
    }
    fn port(mut self, port: u16, target: u16) -> Self {
        self.host_ports.push(HostPort::tcp(port));
        let mut ports = self.spec.get("ports").cloned().unwrap_or(json!([]));
        ports
            .as_array_mut()
            .expect("ports is a list")
            .push(json!(format!("{port}:{target}/tcp")));
        self.spec.set("ports", ports);
        self
    }
    fn volume(mut self, name: &str, mount: &str) -> Self {
        self.volumes.push(LocalVolume {
            name: name.into(),
            read_only: false,
        });
        mount_in_spec(&mut self.spec, format!("{name}:{mount}"));
        self
    }
    fn ro_volume(mut self, name: &str, mount: &str) -> Self {
        self.volumes.push(LocalVolume {
            name: name.into(),
            read_only: true,
        });
        mount_in_spec(&mut self.spec, format!("{name}:{mount}:ro"));
        self
    }
    fn order(mut self, o: UpdateOrder) -> Self {
        self.update_order = Some(o);
        self
    }
    fn depends_on(mut self, other: &str) -> Self {
        self.depends_on.push(other.into());
        self
    }
    fn env(mut self, key: &str, value: &str) -> Self {
        let mut env = self.spec.get("environment").cloned().unwrap_or(json!({}));
        env[key] = json!(value);
        self.spec.set("environment", env);
        self
    }
    fn attr(mut self, name: &str, value: Value) -> Self {
        self.spec.set(name, value);
        self
    }
}

fn mount_in_spec(spec: &mut ContainerSpec, mount: String) {
    let mut mounts = spec.get("mounts").cloned().unwrap_or(json!([]));
    mounts
        .as_array_mut()
        .expect("mounts is a list")
        .push(json!(mount));
    spec.set("mounts", mounts);
}

/// Observed state, built up container by container.
pub struct Fleet(pub Observed);

/// The given machines reachable, nothing on them yet.
pub fn fleet(reachable: &[&str]) -> Fleet {
    let mut o = Observed::default();
    for m in reachable {
        o.machines.insert(m.to_string(), Reach::Reachable);
    }
    Fleet(o)
}

impl Fleet {
    pub fn down(mut self, machine: &str, why: &str) -> Self {
        self.0
            .machines
            .insert(machine.into(), Reach::Unreachable(why.into()));
        self
    }

    /// Slot `slot` of `w` running its current spec on `machine`, as hoist would have left it
    /// (networks and volumes there too).
    pub fn run(self, w: &Workload, slot: u32, machine: &str) -> Self {
        self.container(w, Slot::Replica(slot), machine, ContainerState::Running, "")
    }

    pub fn run_global(self, w: &Workload, machine: &str) -> Self {
        self.container(w, Slot::Global, machine, ContainerState::Running, "")
    }

    /// Like `run`, in another state.
    pub fn with_state(self, w: &Workload, slot: u32, machine: &str, state: &str) -> Self {
        self.container(
            w,
            Slot::Replica(slot),
            machine,
            ContainerState::parse(state),
            "",
        )
    }

    /// A second container for the same slot on `machine`, named with `suffix`.
    pub fn duplicate(
        self,
        w: &Workload,
        slot: u32,
        machine: &str,
        state: &str,
        suffix: &str,
    ) -> Self {
        self.container(
            w,
            Slot::Replica(slot),
            machine,
            ContainerState::parse(state),
            suffix,
        )
    }

    /// A second container of a global service on `machine`, named with `suffix`.
    pub fn duplicate_global(self, w: &Workload, machine: &str, state: &str, suffix: &str) -> Self {
        self.container(
            w,
            Slot::Global,
            machine,
            ContainerState::parse(state),
            suffix,
        )
    }

    /// A container that carries a hash but no recorded spec (recorded before hoist kept specs).
    pub fn run_unrecorded(mut self, w: &Workload, slot: u32, machine: &str) -> Self {
        self = self.run(w, slot, machine);
        self.0.containers.last_mut().expect("just pushed").spec = None;
        self
    }

    /// `machine` is drained (`hoist drain`).
    pub fn drained(mut self, machine: &str) -> Self {
        self.0.drained.insert(machine.into());
        self
    }

    pub fn volume(mut self, machine: &str, name: &str) -> Self {
        self.0.volumes.push((machine.into(), name.into()));
        self
    }

    pub fn network(mut self, machine: &str, name: &str) -> Self {
        self.0.networks.push((machine.into(), name.into()));
        self
    }

    fn container(
        mut self,
        w: &Workload,
        slot: Slot,
        machine: &str,
        state: ContainerState,
        suffix: &str,
    ) -> Self {
        let name = match &slot {
            Slot::Replica(n) => format!("shop-{}-{n}{suffix}", w.service),
            Slot::Global => format!("shop-{}-{machine}{suffix}", w.service),
        };
        self.0.containers.push(ObservedContainer {
            machine: machine.into(),
            id: format!("{machine}/{name}"),
            name,
            service: w.service.clone(),
            slot,
            spec_hash: w.spec.hash(),
            spec: Some(w.spec.clone()),
            state,
            health: Health::None,
            release: Some("r1".into()),
        });
        for n in &w.networks {
            if !self.0.networks.iter().any(|(m, x)| m == machine && x == n) {
                self.0.networks.push((machine.into(), n.clone()));
            }
        }
        for v in &w.volumes {
            if !self
                .0
                .volumes
                .iter()
                .any(|(m, x)| m == machine && *x == v.name)
            {
                self.0.volumes.push((machine.into(), v.name.clone()));
            }
        }
        self
    }
}
