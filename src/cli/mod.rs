//! Command-line interface: parses arguments, calls the pipeline, renders results.
//! It holds no deployment logic; each verb lives in its own file.

mod build;
mod completions;
mod config;
mod down;
mod drain;
mod exec;
mod ingress;
mod logs;
mod machines;
mod machines_init;
mod plan;
pub mod project_args;
mod ps;
mod rollback;
mod services;
pub mod table;
mod unlock;
mod up;
mod up_report;
mod volumes;
mod watch;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "hoist",
    // The package version and the git commit it was built from (build.rs).
    version = env!("HOIST_VERSION"),
    about = "Compose across machines: deploy a compose.yaml to the machines you can SSH into",
    after_help = "Machines come from -m FILE, $HOIST_MACHINES, or ./hoist.yaml; with none, the local Docker engine is the only machine.\nExit codes: 0 success, 1 error (see each verb's --help for more)."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: Global,
    /// Compose options, as with `docker compose`: before the verb (`hoist -f prod.yaml up`).
    #[command(flatten)]
    project: project_args::ProjectArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every verb understands.
#[derive(Args, Clone)]
pub struct Global {
    /// The machines file (inventory). Default: $HOIST_MACHINES, then ./hoist.yaml, else the local engine.
    #[arg(short = 'm', long = "machines", global = true, value_name = "FILE")]
    pub machines: Option<PathBuf>,
    /// How long to wait for each machine to answer (SSH + engine), e.g. 10s, 1m.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Subcommand)]
enum Command {
    Machines(machines::MachinesArgs),
    Plan(plan::PlanArgs),
    Up(up::UpArgs),
    Config(config::ConfigArgs),
    Build(build::BuildArgs),
    Ps(ps::PsArgs),
    Logs(logs::LogsArgs),
    Exec(exec::ExecArgs),
    Down(down::DownArgs),
    Rollback(rollback::RollbackArgs),
    Unlock(unlock::UnlockArgs),
    Completions(completions::CompletionsArgs),
    Manpage(completions::ManpageArgs),
    Watch(watch::WatchArgs),
    Ingress(ingress::IngressArgs),
    Volumes(volumes::VolumesArgs),
    Drain(drain::DrainArgs),
    Undrain(drain::UndrainArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hoist: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // The verbs that change the fleet must not die halfway: output nobody reads any more (a
    // closed pipe or terminal) is dropped instead of killing the process, and a first SIGINT or
    // SIGTERM asks them to stop at the next safe point (see crate::interrupt).
    let changes_fleet = matches!(
        cli.command,
        Command::Up(_)
            | Command::Down(_)
            | Command::Rollback(_)
            | Command::Watch(_)
            | Command::Drain(_)
    ) || matches!(&cli.command, Command::Volumes(v) if v.changes_fleet());
    if changes_fleet {
        // SAFETY: setting signal dispositions before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
    }
    let result = runtime.block_on(async {
        // Ctrl-C or SIGTERM: a verb that changes the fleet is asked to stop at its next safe
        // point and ends at once only on a second signal; any other verb ends at once. Either
        // way the verb's future is dropped on the way out, so every ssh master and socket
        // folder is cleaned up; the exit code says we were stopped.
        let stopped = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let first = next_signal(&mut term).await;
            if !changes_fleet {
                return first;
            }
            crate::interrupt::request(first);
            tell!(
                "hoist: {} received: no new batch will start; the one under way finishes (or is undone) and the lock is released. Send it again to abort at once.",
                crate::interrupt::describe(first)
            );
            next_signal(&mut term).await
        };
        let verb = async {
            match cli.command {
            Command::Machines(args) => machines::run(&cli.global, &cli.project, args).await,
            Command::Plan(args) => plan::run(&cli.global, &cli.project, args).await,
            Command::Up(args) => up::run(&cli.global, &cli.project, args).await,
            Command::Config(mut args) => {
                // `hoist -f x config` and `hoist config -f x` both work.
                if args.project.is_empty() {
                    args.project = cli.project.clone();
                }
                Ok(config::run(&args).await)
            }
            Command::Build(args) => build::run(&cli.global, &cli.project, args).await,
            Command::Ps(args) => ps::run(&cli.global, &cli.project, args).await,
            Command::Logs(args) => logs::run(&cli.global, &cli.project, args).await,
            Command::Exec(args) => exec::run(&cli.global, &cli.project, args).await,
            Command::Down(args) => down::run(&cli.global, &cli.project, args).await,
            Command::Rollback(args) => rollback::run(&cli.global, &cli.project, args).await,
            Command::Unlock(args) => unlock::run(&cli.global, &cli.project, args).await,
            Command::Completions(args) => Ok(completions::completions(args)),
            Command::Manpage(args) => completions::manpage(args),
            Command::Watch(args) => watch::run(&cli.global, &cli.project, args).await,
            Command::Ingress(args) => ingress::run(&cli.global, &cli.project, args).await,
            Command::Volumes(args) => volumes::run(&cli.global, &cli.project, args).await,
            Command::Drain(args) => drain::drain(&cli.global, &cli.project, args).await,
            Command::Undrain(args) => drain::undrain(&cli.global, args).await,
            }
        };
        tokio::select! {
            r = verb => match (r, crate::interrupt::requested()) {
                // Stopped on request at a safe point: the exit code says so, whatever the
                // verb made of the rest.
                (Ok(_), Some(signal)) => {
                    tell!("hoist: stopped ({})", crate::interrupt::describe(signal));
                    Ok(ExitCode::from(crate::interrupt::exit_code(signal)))
                }
                (r, _) => r,
            },
            signal = stopped => {
                if changes_fleet {
                    tell!("hoist: aborted by a second signal; the deploy lock may remain (`hoist unlock` clears it)");
                } else {
                    tell!("hoist: stopped");
                }
                Ok(ExitCode::from(crate::interrupt::exit_code(signal)))
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tell!("hoist: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The next SIGINT or SIGTERM (without a SIGTERM handler, only SIGINT).
async fn next_signal(term: &mut Option<tokio::signal::unix::Signal>) -> i32 {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => libc::SIGINT,
        _ = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        } => libc::SIGTERM,
    }
}

/// Loads the fleet the global options point at.
pub fn load_fleet(global: &Global) -> anyhow::Result<crate::inventory::Fleet> {
    let cwd = std::env::current_dir()?;
    let found = crate::inventory::locate_found(global.machines.as_deref(), &cwd);
    crate::inventory::load_found(found.as_ref().map(|(p, o)| (p.as_path(), *o)))
}

/// Loads the compose project the options point at, printing the loader's warnings.
pub fn load_project(args: &project_args::ProjectArgs) -> anyhow::Result<crate::model::Project> {
    let opts = args.load_options()?;
    let loaded = crate::load::load(&opts)?;
    for w in &loaded.warnings {
        tell!("hoist: warning: {w}");
    }
    check_project(&loaded.project, args, None)?;
    Ok(loaded.project)
}

/// The `x-hoist` checks `plan` and `up` make later (`pipeline::check`), now, with the
/// compose file named in the error; `fleet_mesh` is the machines file's `mesh:`.
pub fn check_project(
    project: &crate::model::Project,
    args: &project_args::ProjectArgs,
    fleet_mesh: Option<&crate::inventory::FleetMesh>,
) -> anyhow::Result<()> {
    crate::pipeline::check::project(project, fleet_mesh)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", compose_files_label(args)))
}

/// [`check_project`] and everything else `plan` would refuse in the compose file
/// (`pipeline::check::deployable`), for `plan` and `up` before they contact a machine.
pub fn check_deployable(
    project: &crate::model::Project,
    args: &project_args::ProjectArgs,
    fleet_mesh: Option<&crate::inventory::FleetMesh>,
) -> anyhow::Result<()> {
    crate::pipeline::check::deployable(project, fleet_mesh)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", compose_files_label(args)))
}

/// Whether the options name compose files (`-f`) or the folder has one.
pub fn has_compose_file(args: &project_args::ProjectArgs) -> bool {
    if !args.files.is_empty() {
        return true;
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let start = args
        .project_directory
        .as_ref()
        .map(|d| cwd.join(d))
        .unwrap_or(cwd);
    crate::load::discovery::find_default(&start).is_some()
}

/// The compose files as the user named them (`-f`), else the one found in the folder.
pub fn compose_files_label(args: &project_args::ProjectArgs) -> String {
    if !args.files.is_empty() {
        return args
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let start = args
        .project_directory
        .as_ref()
        .map(|d| cwd.join(d))
        .unwrap_or(cwd.clone());
    crate::load::discovery::find_default(&start)
        .and_then(|files| files.into_iter().next())
        .map(|f| {
            f.strip_prefix(&cwd)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| f.display().to_string())
        })
        .unwrap_or_else(|| "compose.yaml".to_string())
}

/// The project name a verb acts on: `-p`, else the compose file's.
pub fn project_name(args: &project_args::ProjectArgs) -> anyhow::Result<String> {
    if let Some(p) = &args.project_name {
        // It names lock volumes and filters labels on the machines, like a loaded name.
        if !crate::load::discovery::is_valid_project_name(p) {
            anyhow::bail!(
                "-p {p:?}: a project name is lowercase letters, digits, '_' and '-', starting with a letter or digit"
            );
        }
        return Ok(p.clone());
    }
    Ok(load_project(args)?.name)
}

/// Asks a yes/no question on the terminal. Without a terminal it never waits:
/// the answer is no, and the caller says to pass `--yes`.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question} — no terminal to ask on; pass --yes to go ahead");
    }
    tell_raw!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Durations as Compose writes them: `90s`, `1m30s`, `1h`, `500ms`, or bare seconds
/// (checked, at most a year: see `crate::duration`).
pub use crate::duration::parse as parse_duration;
