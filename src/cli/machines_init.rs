//! `hoist machines init`: install and start an engine on fresh machines (see src/provision).

use super::Global;
use crate::inventory::Fleet;
use crate::provision::{self, Outcome, State};
use anyhow::{Result, bail};
use clap::Args;
use std::process::ExitCode;

/// Turn fresh servers into fleet members: over SSH, install an engine from the distribution's
/// packages (Docker; Podman where the machines file says `engine: podman`), start it and enable
/// it at boot, and let the ssh user use it. Machines whose engine already answers are left as
/// they are. Debian 12/13 and Ubuntu 22.04/24.04/26.04.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist -m prod.yaml machines init --dry-run\n  hoist -m prod.yaml machines init web3 --yes\n\nExit codes: 0 every machine has a running engine (or, with --dry-run, could be given one), 1 any machine failed or was refused (all are reported)."
)]
pub struct InitArgs {
    /// Machines of the inventory to prepare (default: all of them).
    #[arg(value_name = "MACHINE", id = "names")]
    names: Vec<String>,
    /// Print the exact commands each machine would run, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before installing.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub async fn run(global: &Global, args: InitArgs) -> Result<ExitCode> {
    let fleet = chosen(super::load_fleet(global)?, &args.names)?;
    let survey = provision::survey(&fleet, global.timeout).await?;
    let mut failed = 0;
    let mut to_do = Vec::new();
    for m in &survey.machines {
        let name = &m.machine.name;
        match &m.state {
            State::Running(facts) => {
                let asked_podman = m.machine.engine == crate::inventory::EngineKind::Podman;
                let mismatch = if facts.podman == asked_podman {
                    String::new()
                } else {
                    format!(" (the machines file says engine: {})", m.machine.engine)
                };
                say!(
                    "{name}: {} already installed and running — nothing to do{mismatch}",
                    provision::engine_words(facts)
                );
            }
            State::Refused(why) => {
                failed += 1;
                tell!("hoist: {name}: {why}");
            }
            State::ToDo { host, recipe, .. } => {
                let user = if host.is_root() {
                    format!("ssh user {}", host.user)
                } else {
                    format!("ssh user {} (through sudo -n)", host.user)
                };
                if args.dry_run {
                    say!("{name}: {}, {user}; would run:", host.os());
                    for step in &recipe.steps {
                        say!("  # {}\n  {}", step.what, step.command);
                    }
                } else {
                    say!(
                        "{name}: {}, {user}: no {} answers on {}",
                        host.os(),
                        m.machine.engine,
                        m.machine.docker_socket
                    );
                }
                to_do.push(format!("{} on {name}", m.machine.engine));
            }
        }
    }
    if args.dry_run || to_do.is_empty() {
        survey.close().await;
        return Ok(exit(failed));
    }
    if !args.yes && !super::confirm(&format!("Install and start {}?", to_do.join(", ")))? {
        survey.close().await;
        bail!("nothing was changed");
    }
    for (name, outcome) in survey.carry_out(global.timeout).await {
        match outcome {
            Outcome::Done { facts, start, took } => say!(
                "{name}: {} installed and running ({start}); hoist reaches it (API {}) — {:.1}s",
                provision::engine_words(&facts),
                facts.api_version,
                took.as_secs_f64()
            ),
            Outcome::Failed(why) => {
                failed += 1;
                tell!("hoist: {name}: {why}");
            }
        }
    }
    Ok(exit(failed))
}

fn exit(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The machines named on the command line (all when none), in inventory order.
fn chosen(mut fleet: Fleet, names: &[String]) -> Result<Fleet> {
    if names.is_empty() {
        return Ok(fleet);
    }
    for n in names {
        if !fleet.machines.iter().any(|m| &m.name == n) {
            bail!(
                "{}: no machine named {n:?}; the machines are: {}",
                fleet.source,
                fleet
                    .machines
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    fleet.machines.retain(|m| names.contains(&m.name));
    Ok(fleet)
}
