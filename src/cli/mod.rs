//! Command-line interface: parses arguments, calls the pipeline, renders results.
//! It holds no deployment logic.

mod config;
mod project_args;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hoist", version, about = "Compose across machines", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Config(config::ConfigArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(args) => config::run(&args),
    }
}
