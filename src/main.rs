//! hoist — Compose across machines.
//!
//! The binary is a thin shell over the pipeline (see docs/architecture.md):
//! load → schedule → observe → diff → apply → watch.

mod cli;
#[allow(dead_code)] // written by the engine stages, not built yet on this branch
mod labels;
mod load;
#[allow(dead_code)] // read by the stages after load
mod model;

fn main() -> std::process::ExitCode {
    cli::main()
}
