//! A workload: one compose service as the scheduler sees it.
//!
//! This is the core's input type, deliberately independent of the compose model: an adapter
//! turns a loaded compose service into a `Workload`, resolving names (networks, volumes) and
//! the container spec, so schedule and diff never need the compose file.

use super::spec::ContainerSpec;
use std::fmt;

/// How many replicas a service wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `deploy.mode: replicated` with `deploy.replicas` (slots 1..=n).
    Replicated(u32),
    /// `deploy.mode: global`: one replica on every machine that meets the constraints.
    Global,
}

/// `deploy.update_config.order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateOrder {
    StartFirst,
    StopFirst,
}

impl UpdateOrder {
    /// As written in compose: `start-first`, `stop-first`.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpdateOrder::StartFirst => "start-first",
            UpdateOrder::StopFirst => "stop-first",
        }
    }
}

impl fmt::Display for UpdateOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fixed published host port: two replicas publishing the same one cannot share a machine.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The host address bound; `None` means all addresses (0.0.0.0 and ::).
    pub host_ip: Option<String>,
    pub port: u16,
}

impl HostPort {
    pub fn tcp(port: u16) -> Self {
        HostPort {
            protocol: "tcp".into(),
            host_ip: None,
            port,
        }
    }

    /// Whether binding both on one machine fails: same protocol and port, and the same
    /// address or either one binding all addresses.
    pub fn clashes_with(&self, other: &HostPort) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host_ip {
            Some(ip) => write!(f, "{ip}:{}/{}", self.port, self.protocol),
            None => write!(f, "{}/{}", self.port, self.protocol),
        }
    }
}

/// A named volume of the `local` driver that the service mounts. Its data lives on one
/// machine, so the service is pinned to the machines that already hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalVolume {
    /// The engine-level name (`<project>_<volume>` unless `name:` is set).
    pub name: String,
    /// A read-only mount lets an old and a new container share the data (start-first is safe).
    pub read_only: bool,
}

/// `deploy.resources.reservations`: what one replica needs free on its machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reservations {
    /// CPUs × 10⁹ (`cpus: "0.5"` is 500_000_000).
    pub nano_cpus: u64,
    /// Bytes.
    pub memory: u64,
}

/// One compose service, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub service: String,
    pub mode: Mode,
    /// `deploy.placement.constraints`, as written (`node.labels.zone == eu`).
    pub constraints: Vec<String>,
    /// `deploy.placement.preferences[].spread`, outermost first (`node.labels.zone`).
    pub spread: Vec<String>,
    /// `deploy.placement.max_replicas_per_node`.
    pub max_replicas_per_node: Option<u32>,
    pub reservations: Reservations,
    /// Fixed published host ports (ranges and ephemeral ports excluded).
    pub host_ports: Vec<HostPort>,
    /// Local named volumes it mounts; non-empty makes the service stateful.
    pub volumes: Vec<LocalVolume>,
    /// Engine-level names of the networks its containers join (`<project>_default`, …);
    /// each must exist on every machine that runs one of its replicas.
    pub networks: Vec<String>,
    /// `deploy.update_config.order`; `None` lets hoist choose (start-first when safe).
    pub update_order: Option<UpdateOrder>,
    /// Services that must be rolled out before this one.
    pub depends_on: Vec<String>,
    pub spec: ContainerSpec,
}

impl Workload {
    /// A replicated service with one replica and nothing else set.
    pub fn new(service: &str, spec: ContainerSpec) -> Self {
        Workload {
            service: service.to_string(),
            mode: Mode::Replicated(1),
            constraints: Vec::new(),
            spread: Vec::new(),
            max_replicas_per_node: None,
            reservations: Reservations::default(),
            host_ports: Vec::new(),
            volumes: Vec::new(),
            networks: Vec::new(),
            update_order: None,
            depends_on: Vec::new(),
            spec,
        }
    }

    /// Whether the service mounts a local volume read-write: two containers writing the same
    /// data at once is what start-first must never do.
    pub fn single_writer_volume(&self) -> Option<&LocalVolume> {
        self.volumes.iter().find(|v| !v.read_only)
    }
}

/// Indices of `workloads` in rollout order: every service after the services it depends on,
/// ties broken by name so the order never depends on input order. Unknown dependencies are
/// ignored here (schedule reports them). On a cycle, returns the services caught in it.
pub fn dependency_order(workloads: &[Workload]) -> Result<Vec<usize>, Vec<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    let index: BTreeMap<&str, usize> = workloads
        .iter()
        .enumerate()
        .map(|(i, w)| (w.service.as_str(), i))
        .collect();
    let mut waiting_on: Vec<usize> = vec![0; workloads.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); workloads.len()];
    for (i, w) in workloads.iter().enumerate() {
        let deps: BTreeSet<usize> = w
            .depends_on
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .collect();
        waiting_on[i] = deps.len();
        for d in deps {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<(&str, usize)> = workloads
        .iter()
        .enumerate()
        .filter(|(i, _)| waiting_on[*i] == 0)
        .map(|(i, w)| (w.service.as_str(), i))
        .collect();
    let mut order = Vec::with_capacity(workloads.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            waiting_on[j] -= 1;
            if waiting_on[j] == 0 {
                ready.insert((workloads[j].service.as_str(), j));
            }
        }
    }
    if order.len() == workloads.len() {
        Ok(order)
    } else {
        let mut stuck: Vec<String> = (0..workloads.len())
            .filter(|i| waiting_on[*i] > 0)
            .map(|i| workloads[i].service.clone())
            .collect();
        stuck.sort();
        Err(stuck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_clash_on_shared_addresses_only() {
        let on = |ip: Option<&str>, port, proto: &str| HostPort {
            protocol: proto.into(),
            host_ip: ip.map(String::from),
            port,
        };
        let all80 = on(None, 80, "tcp");
        assert!(all80.clashes_with(&on(None, 80, "tcp")));
        assert!(all80.clashes_with(&on(Some("127.0.0.1"), 80, "tcp")));
        assert!(on(Some("10.0.0.1"), 80, "tcp").clashes_with(&on(Some("10.0.0.1"), 80, "tcp")));
        assert!(!on(Some("10.0.0.1"), 80, "tcp").clashes_with(&on(Some("127.0.0.1"), 80, "tcp")));
        assert!(!all80.clashes_with(&on(None, 80, "udp")));
        assert!(!all80.clashes_with(&on(None, 81, "tcp")));
        assert_eq!(
            on(Some("127.0.0.1"), 53, "udp").to_string(),
            "127.0.0.1:53/udp"
        );
    }

    #[test]
    fn dependency_order_is_topological_then_by_name() {
        let w = |name: &str, deps: &[&str]| {
            let mut w = Workload::new(name, ContainerSpec::new());
            w.depends_on = deps.iter().map(|d| d.to_string()).collect();
            w
        };
        let ws = [
            w("web", &["api"]),
            w("api", &["db"]),
            w("db", &[]),
            w("admin", &[]),
        ];
        let names: Vec<&str> = dependency_order(&ws)
            .unwrap()
            .into_iter()
            .map(|i| ws[i].service.as_str())
            .collect();
        assert_eq!(names, ["admin", "db", "api", "web"]);
        let cyclic = [w("a", &["b"]), w("b", &["a"]), w("c", &[])];
        assert_eq!(dependency_order(&cyclic).unwrap_err(), ["a", "b"]);
    }
}
