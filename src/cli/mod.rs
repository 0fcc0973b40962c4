//! Command-line interface: parses arguments, calls the pipeline, renders results.
//! It holds no deployment logic; each verb lives in its own file.

mod build;
mod completions;
mod config;
mod down;
mod exec;
mod ingress;
mod logs;
mod machines;
mod plan;
pub mod project_args;
mod ps;
mod rollback;
pub mod table;
mod unlock;
mod up;
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
    let result = runtime.block_on(async {
        // Ctrl-C or SIGTERM ends the verb's future, so every ssh master and socket
        // folder is cleaned up on the way out; the exit code says we were stopped.
        let stopped = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
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
                Ok(config::run(&args))
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
            }
        };
        tokio::select! {
            r = verb => r,
            _ = stopped => {
                eprintln!("hoist: stopped");
                Ok(ExitCode::from(130))
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hoist: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads the fleet the global options point at.
pub fn load_fleet(global: &Global) -> anyhow::Result<crate::inventory::Fleet> {
    let cwd = std::env::current_dir()?;
    let path = crate::inventory::locate(global.machines.as_deref(), &cwd);
    crate::inventory::load(path.as_deref())
}

/// Loads the compose project the options point at, printing the loader's warnings.
pub fn load_project(args: &project_args::ProjectArgs) -> anyhow::Result<crate::model::Project> {
    let opts = args.load_options()?;
    let loaded = crate::load::load(&opts)?;
    for w in &loaded.warnings {
        eprintln!("hoist: warning: {w}");
    }
    Ok(loaded.project)
}

/// The project name a verb acts on: `-p`, else the compose file's.
pub fn project_name(args: &project_args::ProjectArgs) -> anyhow::Result<String> {
    if let Some(p) = &args.project_name {
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
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Durations as Compose writes them: `90s`, `1m30s`, `1h`, `500ms`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs >= 0.0 && secs.is_finite() {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("{s:?} is not a duration"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: missing unit (use ms, s, m or h)"))?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration"))?;
        let secs = match unit {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
        };
        total += Duration::from_secs_f64(secs);
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("").is_err());
    }
}
