//! Why the scheduler says no: per machine (a refusal), and per service (a problem).
//!
//! A refusal has two phrasings because users meet it in two places: in the error when a
//! replica cannot be placed (`m2: node.labels.zone == eu not met`) and as the reason an
//! existing replica moves (`placement: machine m2 no longer matches node.labels.zone == eu`).

use super::fleet_view::{fmt_bytes, fmt_cpus};
use super::workload::HostPort;
use std::fmt;

/// One reason the project cannot be scheduled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The service's own settings are wrong (constraint syntax, unknown dependency, …).
    Invalid { service: String, message: String },
    /// Not every replica found a machine; `refusals` says why, machine by machine.
    Unplaceable {
        service: String,
        global: bool,
        wanted: u32,
        placed: u32,
        refusals: Vec<(String, String)>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Invalid { service, message } => write!(f, "{service}: {message}"),
            Problem::Unplaceable {
                service,
                global,
                wanted,
                placed,
                refusals,
            } => {
                if *global {
                    write!(
                        f,
                        "{service}: global, wants {wanted} machines, could place {placed}:"
                    )?;
                } else {
                    let s = if *wanted == 1 { "" } else { "s" };
                    write!(
                        f,
                        "{service}: wants {wanted} replica{s}, could place {placed}:"
                    )?;
                }
                for (machine, why) in refusals {
                    write!(f, "\n  {machine}: {why}")?;
                }
                Ok(())
            }
        }
    }
}

/// Everything that stops the project from being scheduled, services in name order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScheduleError {}

/// Why a machine cannot take (or keep) a replica. One value, two phrasings: as a refusal in a
/// scheduling error, and as the reason an existing replica moves.
#[derive(Clone, Debug)]
pub(super) enum Refusal {
    Unreachable(String),
    NotInInventory,
    /// `hoist drain`: the machine takes no replica.
    Drained,
    Constraint(String),
    FactUnknown(String),
    Volume {
        volume: String,
        holders: Vec<String>,
    },
    MaxPerNode {
        service: String,
        max: u32,
    },
    Port {
        port: HostPort,
        owner: String,
    },
    Cpu {
        wants: u64,
        free: u64,
    },
    Memory {
        wants: u64,
        free: u64,
    },
}

impl Refusal {
    pub(super) fn refusal(&self) -> String {
        match self {
            Refusal::Unreachable(why) => format!("unreachable ({why})"),
            Refusal::NotInInventory => "not in the inventory".to_string(),
            Refusal::Drained => {
                "drained (`hoist undrain` makes it take replicas again)".to_string()
            }
            Refusal::Constraint(c) => format!("{c} not met"),
            Refusal::FactUnknown(c) => format!("cannot check {c}: the engine did not say"),
            Refusal::Volume { volume, holders } => {
                format!(
                    "does not hold volume {volume} (it is on {})",
                    holders.join(", ")
                )
            }
            Refusal::MaxPerNode { service, max } => {
                format!("already runs {max} of {service} (max_replicas_per_node {max})")
            }
            Refusal::Port { port, owner } => format!("host port {port} already taken by {owner}"),
            Refusal::Cpu { wants, free } => {
                format!(
                    "not enough CPU (wants {}, {} free)",
                    fmt_cpus(*wants),
                    fmt_cpus(*free)
                )
            }
            Refusal::Memory { wants, free } => {
                format!(
                    "not enough memory (wants {}, {} free)",
                    fmt_bytes(*wants),
                    fmt_bytes(*free)
                )
            }
        }
    }

    pub(super) fn departure(&self, machine: &str) -> String {
        match self {
            Refusal::NotInInventory => {
                format!("placement: machine {machine} is no longer in the inventory")
            }
            Refusal::Constraint(c) => format!("placement: machine {machine} no longer matches {c}"),
            Refusal::Drained => format!("placement: machine {machine} is drained"),
            other => format!("placement: {machine} {}", other.refusal()),
        }
    }
}
