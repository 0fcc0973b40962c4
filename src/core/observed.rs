//! What the engines reported: the project's containers, volumes and networks on each machine.
//!
//! The engines are hoist's only state, so this is the "before" of every plan. A machine that
//! could not be reached has no lists at all: its containers are unknown, never gone, and the
//! core must not act as if they were missing.

use super::spec::ContainerSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which replica a container fills.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// Slot `n` (1-based) of a replicated service.
    Replica(u32),
    /// The one replica of a global service on its machine (the machine is the key).
    Global,
}

impl Slot {
    /// The value hoist writes in the `io.hoist.slot` label: the number, or `global`.
    pub fn label_value(&self) -> String {
        match self {
            Slot::Replica(n) => n.to_string(),
            Slot::Global => "global".to_string(),
        }
    }

    /// Reads an `io.hoist.slot` label; `None` for anything hoist would not have written.
    pub fn from_label(value: &str) -> Option<Slot> {
        match value {
            "global" => Some(Slot::Global),
            n => n.parse().ok().filter(|n| *n > 0).map(Slot::Replica),
        }
    }

    pub fn number(&self) -> Option<u32> {
        match self {
            Slot::Replica(n) => Some(*n),
            Slot::Global => None,
        }
    }
}

/// `web.2` for a replica, `web` for a global service's container.
pub struct SlotName<'a>(pub &'a str, pub &'a Slot);

impl fmt::Display for SlotName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Slot::Replica(n) => write!(f, "{}.{n}", self.0),
            Slot::Global => f.write_str(self.0),
        }
    }
}

/// The engine's container state (`State.Status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Other(String),
}

impl ContainerState {
    pub fn parse(status: &str) -> Self {
        match status {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            other => ContainerState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Other(s) => s,
        }
    }
}

/// The container's healthcheck status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No healthcheck.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedContainer {
    /// Inventory name of the machine it runs on.
    pub machine: String,
    pub id: String,
    pub name: String,
    pub service: String,
    pub slot: Slot,
    /// `io.hoist.spec-hash`.
    pub spec_hash: String,
    /// The spec recorded on the container, when there is one: lets the plan name what changed.
    pub spec: Option<ContainerSpec>,
    pub state: ContainerState,
    pub health: Health,
    /// `io.hoist.release`.
    pub release: Option<String>,
}

/// Whether hoist could list a machine's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    Reachable,
    /// Why not (`ssh: connect to host m3 port 22: Connection timed out`).
    Unreachable(String),
}

/// Everything observed for one project. Containers, volumes and networks listed for a machine
/// that is not `Reachable` here are ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Every inventory machine. One missing from this map counts as unreachable.
    pub machines: BTreeMap<String, Reach>,
    pub containers: Vec<ObservedContainer>,
    /// (machine, volume name)
    pub volumes: Vec<(String, String)>,
    /// (machine, network name)
    pub networks: Vec<(String, String)>,
    /// Machines drained (`hoist drain`): they keep no replica and get no new one.
    pub drained: BTreeSet<String>,
}

impl Observed {
    pub fn is_reachable(&self, machine: &str) -> bool {
        matches!(self.machines.get(machine), Some(Reach::Reachable))
    }

    /// The reason a machine is unreachable; `None` when it is reachable.
    pub fn unreachable_reason(&self, machine: &str) -> Option<&str> {
        match self.machines.get(machine) {
            Some(Reach::Reachable) => None,
            Some(Reach::Unreachable(why)) => Some(why),
            None => Some("not observed"),
        }
    }

    /// The containers that can be trusted: those on reachable machines.
    pub fn visible_containers(&self) -> impl Iterator<Item = &ObservedContainer> {
        self.containers
            .iter()
            .filter(|c| self.is_reachable(&c.machine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_labels_round_trip() {
        for slot in [Slot::Replica(1), Slot::Replica(12), Slot::Global] {
            assert_eq!(Slot::from_label(&slot.label_value()), Some(slot));
        }
        assert_eq!(Slot::from_label("0"), None);
        assert_eq!(Slot::from_label("web"), None);
        assert_eq!(SlotName("web", &Slot::Replica(2)).to_string(), "web.2");
        assert_eq!(SlotName("agent", &Slot::Global).to_string(), "agent");
    }

    #[test]
    fn unreachable_machines_hide_their_containers() {
        let mut o = Observed::default();
        o.machines.insert("m1".into(), Reach::Reachable);
        o.machines
            .insert("m2".into(), Reach::Unreachable("timeout".into()));
        assert_eq!(o.unreachable_reason("m1"), None);
        assert_eq!(o.unreachable_reason("m2"), Some("timeout"));
        assert_eq!(o.unreachable_reason("m3"), Some("not observed"));
    }
}
