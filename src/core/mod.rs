//! The pure middle of the pipeline: schedule and diff.
//!
//! `(Workloads, Machines, Observed) ──schedule──▶ Desired ──diff(Observed)──▶ Plan`
//!
//! Data in, data out: no Docker, no SSH, no clock, no files. That is what lets the table
//! tests feed a whole fleet in a few lines and compare the rendered plan byte for byte, and
//! what lets `plan` print exactly what `up` will do. The types here are the boundary the
//! adapters build to: the compose loader produces [`workload::Workload`]s, the engine layer
//! produces [`fleet_view::MachineView`]s and [`observed::Observed`], apply consumes
//! [`plan::Plan`].

// The CLI wires the core next; until then most of its public items have no caller.
#![allow(dead_code)]

pub mod constraint;
pub mod diff;
pub mod fleet_view;
pub mod observed;
pub mod plan;
mod refusal;
pub mod schedule;
pub mod spec;
pub mod workload;

#[cfg(test)]
mod tests;
