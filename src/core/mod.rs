//! The pure middle of the pipeline: schedule and diff.
//!
//! `(Workloads, Machines, Observed) ──schedule──▶ Desired ──diff(Observed)──▶ Plan`
//!
//! Data in, data out: no Docker, no SSH, no clock, no files. That is what lets the table
//! tests feed a whole fleet in a few lines and compare the rendered plan byte for byte, and
//! what lets `plan` print exactly what `up` will do.
//!
//! The types here are the boundary the adapters build to:
//! - in: [`workload::Workload`] (one compose service, with its [`spec::ContainerSpec`]) from
//!   the compose loader; [`fleet_view::MachineView`] (inventory + engine facts) and
//!   [`observed::Observed`] (what the engines list, per machine reachable or not) from the
//!   engine layer;
//! - [`schedule::schedule`] → [`schedule::Desired`] or a [`schedule::ScheduleError`] that
//!   says, machine by machine, why a replica has nowhere to go;
//! - [`diff::diff`] → [`plan::Plan`], which apply executes and the CLI renders with
//!   [`plan::Plan::render_text`] or [`plan::Plan::to_json`] (schema in docs/plan-json.md).
//!
//! docs/scheduling.md states the placement rules for users.

// The CLI wires the core next; until then most of its public items have no caller.
#![allow(dead_code)]

pub mod autoscale;
pub mod constraint;
pub mod diff;
pub mod down;
pub mod fleet_view;
pub mod observed;
pub mod plan;
pub mod ports;
mod refusal;
pub mod rollback;
pub mod schedule;
pub mod seal;
pub mod spec;
pub mod workload;

#[cfg(test)]
mod tests;
