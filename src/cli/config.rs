//! `hoist config`: print the project as hoist reads it, like `docker compose config`.
//!
//! The quickest way to see what interpolation, merging, extends and profiles made of the
//! compose files, and the check a CI job runs before `plan`.

use super::project_args::ProjectArgs;
use crate::load;
use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Args, Debug)]
#[command(
    about = "Parse, resolve and print the compose project (like `docker compose config`)",
    after_help = "Examples:\n  hoist config                      # normalized YAML of ./compose.yaml (+ override)\n  hoist config -f a.yaml -f b.yaml --format json\n  hoist config -q && echo valid     # exit code 0 = valid, 1 = error\n  hoist config --services --profile debug"
)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Only validate; print nothing
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: &ConfigArgs) -> ExitCode {
    match render(args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hoist: {e}");
            ExitCode::FAILURE
        }
    }
}

fn render(args: &ConfigArgs) -> anyhow::Result<String> {
    let opts = args.project.load_options()?;
    let loaded = load::load(&opts)?;
    for w in &loaded.warnings {
        eprintln!("hoist: warning: {w}");
    }
    let project = &loaded.project;
    if args.quiet {
        return Ok(String::new());
    }
    if args.services || args.volumes {
        let mut out = String::new();
        if args.services {
            project
                .services
                .keys()
                .for_each(|k| out.push_str(&format!("{k}\n")));
        }
        if args.volumes {
            project
                .volumes
                .keys()
                .for_each(|k| out.push_str(&format!("{k}\n")));
        }
        return Ok(out);
    }
    let text = match args.format {
        Format::Yaml => serde_yaml_ng::to_string(project)?,
        Format::Json => serde_json::to_string_pretty(project)? + "\n",
    };
    // The printed project must load again with the same values: escape `$` as compose does.
    Ok(text.replace('$', "$$"))
}
