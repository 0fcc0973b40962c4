//! hoist — Compose across machines.
//!
//! The crate follows the pipeline (see docs/architecture.md):
//! load → schedule → observe → diff → apply → watch. The binary (`src/main.rs`)
//! only calls `cli::main`.

// First, so its macros (`say!`, `tell!`) are in scope in every module below.
#[macro_use]
pub mod output;

pub mod apply;
pub mod build;
pub mod cli;
pub mod container;
pub mod core;
pub mod duration;
pub mod engine;
pub mod ingress;
pub mod interrupt;
pub mod inventory;
pub mod labels;
pub mod load;
pub mod mesh;
pub mod model;
pub mod observe;
pub mod pipeline;
pub mod provision;
pub mod safe;
pub mod seal;
pub mod ship;
pub mod transport;
pub mod volume;
pub mod watch;
