//! hoist — Compose across machines.
//!
//! The binary is a thin shell over the pipeline (see docs/architecture.md):
//! load → schedule → observe → diff → apply → watch.

mod apply;
mod cli;
mod container;
mod engine;
mod inventory;
mod labels;
mod observe;
mod ship;
mod transport;

fn main() -> std::process::ExitCode {
    cli::main()
}
