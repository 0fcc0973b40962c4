//! The plan: what `up` will do, step by step, each step with its reasons.
//!
//! `plan` prints exactly what `up` will do, and `up` does only that, so the plan is data that
//! both render and apply read. Its text is the oracle of the core's table tests, hence
//! deterministic to the byte: everything in it is ordered by the steps' order or by name.
//!
//! # JSON schema 1 (`Plan::to_json`)
//!
//! ```text
//! {
//!   "schema": 1,
//!   "changes": bool,                 // same as has_changes()
//!   "summary": { "create", "start", "replace", "move", "remove", "unchanged",
//!                "create_network", "create_volume", "machines", "unreachable": int },
//!   "steps": [ {                     // in execution order
//!     "action": "create_network" | "create_volume" | "create" | "start" | "replace"
//!             | "move" | "remove" | "unchanged",
//!     "machine": string,             // where it happens (a move's destination)
//!     "service": string | null,      // null for networks and volumes
//!     "slot": int | null,            // replica number; null for a global service and for
//!                                    // networks and volumes
//!     "name": string | null,         // network or volume name, else null
//!     "container": {"id": string, "name": string} | null,  // existing container acted on
//!     "from_machine": string | null, // move: where the container is now
//!     "order": "start-first" | "stop-first" | null,  // replace only
//!     "order_reason": string | null,
//!     "reasons": [string]            // never contains environment or secret values
//!   } ],
//!   "unknown": [ {"service": string, "slot": int | null, "machines": [string]} ],
//!   "unreachable": [ {"machine": string, "reason": string} ],
//!   "warnings": [string],            // the text form's warning lines, without "warning: "
//!   "drained": [string],             // machines drained (`hoist drain`): nothing placed there
//!   "volume_moves": [ {"service": string, "slot": int | null, "from": string, "to": string,
//!                      "volumes": [ {"name": string, "bytes": int | null} ] } ]
//!                                    // moves that copy volume data (`up --move-volumes`)
//! }
//! ```
//! Fields are only ever added within a schema number; any other change bumps `schema`.
//! docs/plan-json.md holds the same description for users.

use super::observed::{Reach, Slot, SlotName};
use super::workload::UpdateOrder;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

/// An existing container a step acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateNetwork {
        name: String,
    },
    CreateVolume {
        name: String,
    },
    /// A new container for the slot.
    Create,
    /// Start the slot's stopped container; its spec is current.
    Start {
        container: ContainerRef,
    },
    /// Recreate the slot's container on the same machine, in `order`.
    Replace {
        container: ContainerRef,
        order: UpdateOrder,
        order_reason: String,
    },
    /// Create the slot on `machine`, then remove its container from `from`.
    Move {
        from: String,
        container: ContainerRef,
    },
    Remove {
        container: ContainerRef,
    },
    Unchanged {
        container: ContainerRef,
    },
}

impl Action {
    /// The `action` name in JSON and the order of the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateNetwork { .. } => "create_network",
            Action::CreateVolume { .. } => "create_volume",
            Action::Create => "create",
            Action::Start { .. } => "start",
            Action::Replace { .. } => "replace",
            Action::Move { .. } => "move",
            Action::Remove { .. } => "remove",
            Action::Unchanged { .. } => "unchanged",
        }
    }

    /// The existing container the step acts on, if any.
    pub fn container(&self) -> Option<&ContainerRef> {
        match self {
            Action::Start { container }
            | Action::Replace { container, .. }
            | Action::Move { container, .. }
            | Action::Remove { container }
            | Action::Unchanged { container } => Some(container),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub machine: String,
    /// `None` for network and volume steps.
    pub service: Option<String>,
    pub slot: Option<Slot>,
    pub action: Action,
    pub reasons: Vec<String>,
}

/// A move that takes the slot's data along: the named volumes are on `from` and not on `to`,
/// so `up --move-volumes` copies them (the service is stopped for the copy) before the slot
/// starts on `to`. `up` without the flag refuses the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeMove {
    pub service: String,
    pub slot: Slot,
    pub from: String,
    pub to: String,
    pub volumes: Vec<String>,
    /// Bytes per volume on `from`, when the engine said (filled in after the diff).
    pub sizes: BTreeMap<String, u64>,
}

impl VolumeMove {
    /// `shop_data (1.2GiB), shop_logs`
    fn volumes_text(&self) -> String {
        self.volumes
            .iter()
            .map(|v| match self.sizes.get(v) {
                Some(n) => format!("{v} ({})", crate::output::bytes(*n)),
                None => v.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A slot the plan cannot decide about: it may be running on an unreachable machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    pub service: String,
    pub slot: Slot,
    pub machines: Vec<String>,
    /// Local volumes the service mounts (its data may be there too).
    pub volumes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// In execution order: networks and volumes; then every removal (services no longer in
    /// the file, then the others in depends_on order), so what they free is free; then the
    /// other steps, services in depends_on order, each by machine and slot.
    pub steps: Vec<Step>,
    /// Every inventory machine and whether it was reachable.
    pub machines: BTreeMap<String, Reach>,
    pub unknown: Vec<Unknown>,
    /// Machines drained (`hoist drain`): nothing is placed there.
    pub drained: BTreeSet<String>,
    /// Machines the project was deployed to that the machines file no longer has
    /// (`apply::fleet_record`): their containers are unseen.
    pub removed: BTreeSet<String>,
    /// Moves that copy volume data (`up --move-volumes`), in step order.
    pub volume_moves: Vec<VolumeMove>,
}

/// Summary order; the first four always print, the others when non-zero.
const COUNTS: [(&str, &str, bool); 8] = [
    ("create", "to create", true),
    ("start", "to start", false),
    ("replace", "to replace", true),
    ("move", "to move", false),
    ("remove", "to remove", true),
    ("unchanged", "unchanged", true),
    ("create_network", "network", false),
    ("create_volume", "volume", false),
];

impl Plan {
    /// Whether `up` would change anything (for `--detailed-exitcode`).
    /// The volume move a step carries out, if it is one.
    pub fn volume_move(&self, step: &Step) -> Option<&VolumeMove> {
        let Action::Move { from, .. } = &step.action else {
            return None;
        };
        self.volume_moves.iter().find(|m| {
            Some(&m.service) == step.service.as_ref()
                && Some(&m.slot) == step.slot.as_ref()
                && &m.from == from
                && m.to == step.machine
        })
    }

    pub fn has_changes(&self) -> bool {
        self.steps
            .iter()
            .any(|s| !matches!(s.action, Action::Unchanged { .. }))
    }

    /// Step counts in [`COUNTS`] order, in one pass.
    fn counts(&self) -> [usize; 8] {
        let mut counts = [0; 8];
        for step in &self.steps {
            let kind = step.action.kind();
            if let Some(i) = COUNTS.iter().position(|(k, _, _)| *k == kind) {
                counts[i] += 1;
            }
        }
        counts
    }

    fn unreachable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.machines.iter().filter_map(|(m, r)| match r {
            Reach::Unreachable(why) => Some((m.as_str(), why.as_str())),
            Reach::Reachable => None,
        })
    }

    /// `3 to create, 2 to replace, 1 to remove, 14 unchanged, across 3 machines`
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for ((kind, label, always), n) in COUNTS.into_iter().zip(self.counts()) {
            if n == 0 && !always {
                continue;
            }
            parts.push(match kind {
                "create_network" | "create_volume" => {
                    format!("{n} {label}{} to create", if n == 1 { "" } else { "s" })
                }
                _ => format!("{n} {label}"),
            });
        }
        let total = self.machines.len();
        let mut line = format!(
            "{}, across {total} machine{}",
            parts.join(", "),
            if total == 1 { "" } else { "s" }
        );
        let down = self.unreachable().count();
        if down > 0 {
            let _ = write!(line, " ({down} unreachable)");
        }
        if !self.drained.is_empty() {
            let names: Vec<&str> = self.drained.iter().map(String::as_str).collect();
            let _ = write!(line, " ({} drained)", names.join(", "));
        }
        line
    }

    /// Warnings about what the plan cannot see, one line each (without the `warning: `).
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unreachable()
            .map(|(m, why)| {
                format!("{m} is unreachable ({why}): its containers are unknown, nothing is planned there")
            })
            .collect();
        for u in &self.unknown {
            let mut line = format!(
                "{} is not placed: it may be running on unreachable {}",
                SlotName(&u.service, &u.slot),
                u.machines.join(" or ")
            );
            if !u.volumes.is_empty() {
                let _ = write!(line, ", with its volume {}", u.volumes.join(", "));
            }
            out.push(line);
        }
        for m in &self.volume_moves {
            out.push(format!(
                "{} moves with its data: only `hoist up --move-volumes` carries it out (it copies volume {} from {} to {})",
                SlotName(&m.service, &m.slot),
                m.volumes.join(", "),
                m.from,
                m.to
            ));
        }
        for m in &self.removed {
            out.push(format!(
                "{m} is no longer in the machines file, but the project ran there at the last deploy: its containers are not seen, so nothing there is stopped and its replicas are placed on the other machines. To retire it, put it back in the machines file, run `hoist drain {m}`, then remove it"
            ));
        }
        out
    }

    /// The plan for people: steps grouped by service (networks and volumes first) then by
    /// machine, each with its reasons, then the summary and warnings.
    pub fn render_text(&self) -> String {
        // Services in the order they first act, machines by name, steps in plan order.
        let mut groups: Vec<(&str, BTreeMap<&str, Vec<&Step>>)> = Vec::new();
        let mut group_of: HashMap<&str, usize> = HashMap::new();
        for step in self
            .steps
            .iter()
            .filter(|s| !matches!(s.action, Action::Unchanged { .. }))
        {
            let title = step.service.as_deref().unwrap_or("networks and volumes");
            let at = *group_of.entry(title).or_insert_with(|| {
                groups.push((title, BTreeMap::new()));
                groups.len() - 1
            });
            groups[at]
                .1
                .entry(step.machine.as_str())
                .or_default()
                .push(step);
        }
        let mut out = String::new();
        for (title, machines) in &groups {
            let _ = writeln!(out, "{title}");
            for (machine, steps) in machines {
                let _ = writeln!(out, "  {machine}");
                for step in steps {
                    match self.volume_move(step) {
                        Some(m) => {
                            let _ = writeln!(
                                out,
                                "    » move {} {} → {} with volume {}",
                                SlotName(&m.service, &m.slot),
                                m.from,
                                m.to,
                                m.volumes_text()
                            );
                            for reason in &step.reasons {
                                let _ = writeln!(out, "        {reason}");
                            }
                            let _ = writeln!(
                                out,
                                "        downtime: {} runs on {} while its data is copied, stops there for what changed since and a checksum check, and runs again once healthy on {}; the source volume stays",
                                SlotName(&m.service, &m.slot),
                                m.from,
                                m.to
                            );
                        }
                        None => {
                            let _ = writeln!(out, "    {}", step_line(step));
                            for reason in &step.reasons {
                                let _ = writeln!(out, "        {reason}");
                            }
                        }
                    }
                }
            }
            out.push('\n');
        }
        if !self.has_changes() {
            out.push_str("No changes.\n");
        }
        out.push_str(&self.summary());
        out.push('\n');
        for w in self.warnings() {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }

    /// The plan for programs, in the schema documented at the top of this module.
    pub fn to_json(&self) -> String {
        let [
            create,
            start,
            replace,
            move_,
            remove,
            unchanged,
            create_network,
            create_volume,
        ] = self.counts();
        let json = PlanJson {
            schema: 1,
            changes: self.has_changes(),
            summary: SummaryJson {
                create,
                start,
                replace,
                r#move: move_,
                remove,
                unchanged,
                create_network,
                create_volume,
                machines: self.machines.len(),
                unreachable: self.unreachable().count(),
            },
            steps: self.steps.iter().map(StepJson::new).collect(),
            unknown: self
                .unknown
                .iter()
                .map(|u| UnknownJson {
                    service: &u.service,
                    slot: u.slot.number(),
                    machines: &u.machines,
                })
                .collect(),
            unreachable: self
                .unreachable()
                .map(|(machine, reason)| UnreachableJson { machine, reason })
                .collect(),
            warnings: self.warnings(),
            drained: self.drained.iter().map(String::as_str).collect(),
            volume_moves: self
                .volume_moves
                .iter()
                .map(|m| VolumeMoveJson {
                    service: &m.service,
                    slot: m.slot.number(),
                    from: &m.from,
                    to: &m.to,
                    volumes: m
                        .volumes
                        .iter()
                        .map(|v| VolumeJson {
                            name: v,
                            bytes: m.sizes.get(v).copied(),
                        })
                        .collect(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&json).expect("plain data always serializes")
    }
}

#[derive(Serialize)]
struct PlanJson<'a> {
    schema: u32,
    changes: bool,
    summary: SummaryJson,
    steps: Vec<StepJson<'a>>,
    unknown: Vec<UnknownJson<'a>>,
    unreachable: Vec<UnreachableJson<'a>>,
    warnings: Vec<String>,
    drained: Vec<&'a str>,
    volume_moves: Vec<VolumeMoveJson<'a>>,
}

#[derive(Serialize)]
struct VolumeMoveJson<'a> {
    service: &'a str,
    slot: Option<u32>,
    from: &'a str,
    to: &'a str,
    volumes: Vec<VolumeJson<'a>>,
}

#[derive(Serialize)]
struct VolumeJson<'a> {
    name: &'a str,
    bytes: Option<u64>,
}

#[derive(Serialize)]
struct SummaryJson {
    create: usize,
    start: usize,
    replace: usize,
    r#move: usize,
    remove: usize,
    unchanged: usize,
    create_network: usize,
    create_volume: usize,
    machines: usize,
    unreachable: usize,
}

#[derive(Serialize)]
struct StepJson<'a> {
    action: &'static str,
    machine: &'a str,
    service: Option<&'a str>,
    slot: Option<u32>,
    name: Option<&'a str>,
    container: Option<&'a ContainerRef>,
    from_machine: Option<&'a str>,
    order: Option<&'static str>,
    order_reason: Option<&'a str>,
    reasons: &'a [String],
}

impl<'a> StepJson<'a> {
    fn new(step: &'a Step) -> Self {
        let (mut name, mut from_machine, mut order, mut order_reason) = (None, None, None, None);
        match &step.action {
            Action::CreateNetwork { name: n } | Action::CreateVolume { name: n } => {
                name = Some(n.as_str())
            }
            Action::Move { from, .. } => from_machine = Some(from.as_str()),
            Action::Replace {
                order: o,
                order_reason: r,
                ..
            } => {
                order = Some(o.as_str());
                order_reason = Some(r.as_str());
            }
            _ => {}
        }
        StepJson {
            action: step.action.kind(),
            machine: &step.machine,
            service: step.service.as_deref(),
            slot: step.slot.as_ref().and_then(Slot::number),
            name,
            container: step.action.container(),
            from_machine,
            order,
            order_reason,
            reasons: &step.reasons,
        }
    }
}

#[derive(Serialize)]
struct UnknownJson<'a> {
    service: &'a str,
    slot: Option<u32>,
    machines: &'a [String],
}

#[derive(Serialize)]
struct UnreachableJson<'a> {
    machine: &'a str,
    reason: &'a str,
}

fn step_line(step: &Step) -> String {
    let slot = match (&step.service, &step.slot) {
        (Some(service), Some(slot)) => SlotName(service, slot).to_string(),
        _ => String::new(),
    };
    match &step.action {
        Action::CreateNetwork { name } => format!("+ create network {name}"),
        Action::CreateVolume { name } => format!("+ create volume {name}"),
        Action::Create => format!("+ create {slot}"),
        Action::Start { .. } => format!("^ start {slot}"),
        Action::Replace {
            order,
            order_reason,
            ..
        } => format!("~ replace {slot} ({order}: {order_reason})"),
        Action::Move { from, .. } => format!("> move {slot} from {from}"),
        Action::Remove { container } => format!("- remove {slot} (container {})", container.name),
        Action::Unchanged { .. } => format!("= {slot}"),
    }
}
