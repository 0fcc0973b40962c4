//! hoist — Compose across machines.
//!
//! The binary is a thin shell over the pipeline (see docs/architecture.md):
//! load → schedule → observe → diff → apply → watch.

mod cli;
mod core;
mod labels;

fn main() -> std::process::ExitCode {
    cli::main()
}
