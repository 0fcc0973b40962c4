//! `hoist volumes ls|backup|restore`: a project's volume data, listed, saved to a file and put
//! back (the work is in `crate::volume`).

use super::project_args::ProjectArgs;
use super::{Global, table};
use crate::apply::lock;
use crate::engine::{self, Connections};
use crate::volume::{self, archive, data};
use anyhow::{Context, Result, bail};
use bollard::Docker;
use clap::{Args, Subcommand};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// List, back up and restore the project's named volumes.
#[derive(Args)]
pub struct VolumesArgs {
    #[command(subcommand)]
    command: VolumesCommand,
}

#[derive(Subcommand)]
enum VolumesCommand {
    Ls(LsArgs),
    Backup(BackupArgs),
    Restore(RestoreArgs),
}

/// The project's volumes on every machine: size, the services that mount them.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist volumes ls\n  hoist volumes ls --all-projects --json\n\nSizes are the engine's disk-usage figures (`docker system df -v`).\nExit codes: 0 ok, 1 error or a machine could not be read (the others are still listed)."
)]
struct LsArgs {
    /// Every hoist project's volumes, not only this one's.
    #[arg(long)]
    all_projects: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Back a volume up into one file: compressed, checksummed, consistent.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist volumes backup db -o db-2024-05-01.hoist      # the one volume service db mounts\n  hoist volumes backup shop_data --machine m2 -o data.hoist\n\nThe replicas that use the volume on its machine are stopped for the copy and started again,\nunless the service declares a command that makes its data consistent while it runs:\n  x-hoist: {backup: {command: \"pg_dump -U app app > /var/lib/postgresql/data/dump.sql\", timeout: 5m}}\nThe file is a plain tar (volume.tar.gz + manifest.json with sha256 sums); it is written as\nFILE.partial and renamed when complete.\nExit codes: 0 backed up, 1 error (the replicas are started again; no file is left)."
)]
struct BackupArgs {
    /// A volume (engine name such as shop_data, or the compose key such as data) or a service
    /// that mounts exactly one volume.
    #[arg(value_name = "VOLUME|SERVICE")]
    target: String,
    /// The backup file to write (must not exist).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// The machine to read it from, when the volume is on several.
    #[arg(long, value_name = "MACHINE")]
    machine: Option<String>,
    /// Wait this long for another deploy's lock (e.g. 30s, 5m); default: fail at once.
    #[arg(long, value_parser = super::parse_duration, default_value = "0s", value_name = "DURATION")]
    lock_wait: Duration,
    /// Print the manifest as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Restore a backup file into its volume, on the machine where its service runs.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist volumes restore db-2024-05-01.hoist\n  hoist volumes restore data.hoist --machine m3 --overwrite --yes\n\nThe whole file is verified against its sha256 before anything is changed. A volume that\nholds anything is replaced only with --overwrite. The replicas that use the volume are stopped\nfor the restore and started again.\nExit codes: 0 restored, 1 error (a refused or corrupted file changes nothing)."
)]
struct RestoreArgs {
    /// A file written by `hoist volumes backup`.
    file: PathBuf,
    /// Restore on this machine (default: where the service runs, else where the volume is).
    #[arg(long, value_name = "MACHINE")]
    machine: Option<String>,
    /// Replace what a non-empty volume holds (it is lost).
    #[arg(long)]
    overwrite: bool,
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Wait this long for another deploy's lock (e.g. 30s, 5m); default: fail at once.
    #[arg(long, value_parser = super::parse_duration, default_value = "0s", value_name = "DURATION")]
    lock_wait: Duration,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl VolumesArgs {
    /// Backup and restore stop replicas for the copy: they must not die halfway (cli::main).
    pub fn changes_fleet(&self) -> bool {
        !matches!(self.command, VolumesCommand::Ls(_))
    }
}

pub async fn run(
    global: &Global,
    project_args: &ProjectArgs,
    args: VolumesArgs,
) -> Result<ExitCode> {
    match args.command {
        VolumesCommand::Ls(a) => ls(global, project_args, a).await,
        VolumesCommand::Backup(a) => backup(global, project_args, a).await,
        VolumesCommand::Restore(a) => restore(global, project_args, a).await,
    }
}

/// Every connected machine's volumes (of `project`, or all), and the machines that failed.
async fn seen(conns: &Connections, project: Option<&str>) -> (Vec<data::SeenVolume>, Vec<String>) {
    let reads = conns.results.iter().map(|(m, r)| async move {
        match r {
            Ok(e) => data::list(&e.docker, e.socket(), &m.name, project)
                .await
                .map_err(|err| format!("{}: {err:#}", m.name)),
            Err(err) => Err(format!("{}: {err}", m.name)),
        }
    });
    let mut volumes = Vec::new();
    let mut unread = Vec::new();
    for r in futures_util::future::join_all(reads).await {
        match r {
            Ok(v) => volumes.extend(v),
            Err(e) => unread.push(e),
        }
    }
    (volumes, unread)
}

async fn ls(global: &Global, project_args: &ProjectArgs, args: LsArgs) -> Result<ExitCode> {
    let project = if args.all_projects {
        None
    } else {
        Some(super::project_name(project_args)?)
    };
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let (mut volumes, unread) = seen(&conns, project.as_deref()).await;
    conns.close().await;
    volumes
        .sort_by(|a, b| (&a.project, &a.name, &a.machine).cmp(&(&b.project, &b.name, &b.machine)));
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "schema": 1, "project": project, "volumes": volumes, "unreachable": unread,
            }))?
        );
    } else {
        let rows: Vec<Vec<String>> = volumes
            .iter()
            .map(|v| {
                vec![
                    v.machine.clone(),
                    v.name.clone(),
                    v.size
                        .map(crate::output::bytes)
                        .unwrap_or_else(|| "-".into()),
                    if v.services.is_empty() {
                        "-".into()
                    } else {
                        v.services.join(",")
                    },
                    v.project.clone(),
                ]
            })
            .collect();
        if rows.is_empty() {
            say!(
                "No volumes{}.",
                project
                    .as_deref()
                    .map(|p| format!(" for project {p}"))
                    .unwrap_or_default()
            );
        } else {
            print!(
                "{}",
                table::render(&["MACHINE", "VOLUME", "SIZE", "SERVICES", "PROJECT"], &rows)
            );
        }
        for u in &unread {
            tell!("hoist: could not read {u}");
        }
    }
    Ok(if unread.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The engine of `machine`, or why it cannot be used.
fn engine_of<'a>(conns: &'a Connections, machine: &str) -> Result<&'a Docker> {
    let Some((_, r)) = conns.results.iter().find(|(m, _)| m.name == machine) else {
        let names: Vec<&str> = conns.results.iter().map(|(m, _)| m.name.as_str()).collect();
        bail!(
            "--machine {machine}: no such machine in the machines file (it has {})",
            names.join(", ")
        );
    };
    match r {
        Ok(e) => Ok(&e.docker),
        Err(err) => bail!("{machine} is unreachable: {err}"),
    }
}

async fn backup(global: &Global, project_args: &ProjectArgs, args: BackupArgs) -> Result<ExitCode> {
    // The services' backup commands come from the compose file; with only -p and no file,
    // replicas stop for the copy.
    let (project, commands) = if super::has_compose_file(project_args) {
        let p = super::load_project(project_args)?;
        let commands = volume::backup_commands(&p)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", super::compose_files_label(project_args)))?;
        (
            project_args.project_name.clone().unwrap_or(p.name),
            commands,
        )
    } else {
        let name = super::project_name(project_args)?;
        tell!(
            "hoist: no compose file here: no x-hoist.backup command is known, so the volume's replicas are stopped for the copy"
        );
        (name, BTreeMap::new())
    };
    if args.output.exists() {
        bail!(
            "{} exists; choose another file or remove it first",
            args.output.display()
        );
    }
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = backup_on(&conns, &project, &commands, &args).await;
    conns.close().await;
    let report = result?;
    let m = &report.manifest;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!(
            "backed up {} from {} to {}: {} of files, {} compressed, sha256 {}",
            m.volume,
            m.machine,
            args.output.display(),
            crate::output::bytes(m.tar_bytes),
            crate::output::bytes(m.data_bytes),
            m.data_sha256
        );
        say!(
            "consistency: {}{}; took {:.1}s",
            m.consistency,
            report
                .stopped_for
                .map(|d| format!(" (stopped {:.1}s)", d.as_secs_f64()))
                .unwrap_or_default(),
            report.took.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn backup_on(
    conns: &Connections,
    project: &str,
    commands: &BTreeMap<String, volume::BackupCommand>,
    args: &BackupArgs,
) -> Result<volume::BackupReport> {
    if let Some(m) = &args.machine {
        engine_of(conns, m)?;
    }
    let (seen, unread) = seen(conns, Some(project)).await;
    let name = volume::resolve_name(project, &args.target, &seen).map_err(|e| {
        if unread.is_empty() {
            e
        } else {
            e.context(format!("(unreadable: {})", unread.join("; ")))
        }
    })?;
    let mut holders: Vec<&str> = seen
        .iter()
        .filter(|v| v.name == name)
        .map(|v| v.machine.as_str())
        .collect();
    holders.sort();
    let machine = match (&args.machine, holders.as_slice()) {
        (Some(m), _) if holders.contains(&m.as_str()) => m.clone(),
        (Some(m), _) => bail!(
            "volume {name} is not on {m}; it is on {}",
            holders.join(", ")
        ),
        (None, [one]) => one.to_string(),
        (None, many) => bail!(
            "volume {name} is on {} (each machine has its own copy); choose one with --machine",
            many.join(", ")
        ),
    };
    let docker = engine_of(conns, &machine)?;
    let engines = conns.engines();
    let held = lock::acquire(
        &engines,
        project,
        &lock::describe_self("volumes backup"),
        args.lock_wait,
    )
    .await?;
    let outcome = volume::backup(docker, &machine, project, &name, commands, &args.output).await;
    held.release().await;
    outcome
}

async fn restore(
    global: &Global,
    project_args: &ProjectArgs,
    args: RestoreArgs,
) -> Result<ExitCode> {
    let file = args.file.clone();
    let verified = tokio::task::spawn_blocking(move || archive::verify(&file))
        .await
        .context("the backup reader stopped")??;
    let m = &verified.manifest;
    if let Some(p) = &project_args.project_name
        && *p != m.project
    {
        bail!(
            "{} is a backup of project {}, not {p}; restore it with -p {}",
            args.file.display(),
            m.project,
            m.project
        );
    }
    tell!(
        "{}: verified (sha256 {}), volume {} of project {}, backed up from {} at {}",
        args.file.display(),
        m.data_sha256,
        m.volume,
        m.project,
        m.machine,
        m.created
    );
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let result = restore_on(&conns, &verified, &args).await;
    conns.close().await;
    let report = result?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"manifest": verified.manifest, "restore": report})
            )?
        );
    } else {
        say!(
            "restored {} on {} from {}{}{}; took {:.1}s",
            report.volume,
            report.machine,
            args.file.display(),
            if report.created {
                " (volume created)"
            } else {
                ""
            },
            if report.replaced {
                " (its previous contents replaced)"
            } else {
                ""
            },
            report.took.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore_on(
    conns: &Connections,
    verified: &archive::Verified,
    args: &RestoreArgs,
) -> Result<volume::RestoreReport> {
    let m = &verified.manifest;
    let project = m.project.as_str();
    let machine = match &args.machine {
        Some(name) => {
            engine_of(conns, name)?;
            name.clone()
        }
        None => target_machine(conns, verified).await?,
    };
    let docker = engine_of(conns, &machine)?;
    let question = format!(
        "Restore volume {} on {machine} from {}{}?",
        m.volume,
        args.file.display(),
        if args.overwrite {
            " (replacing what it holds)"
        } else {
            ""
        }
    );
    if !args.yes && !super::confirm(&question)? {
        bail!("not restored");
    }
    let engines = conns.engines();
    let held = lock::acquire(
        &engines,
        project,
        &lock::describe_self("volumes restore"),
        args.lock_wait,
    )
    .await?;
    let outcome = volume::restore(
        docker,
        &machine,
        project,
        &m.volume,
        verified,
        args.overwrite,
    )
    .await;
    held.release().await;
    outcome
}

/// Where a backup goes without --machine: the machine running the backed-up service's
/// replica, else the one holding the volume; several or none → ask for --machine.
async fn target_machine(conns: &Connections, verified: &archive::Verified) -> Result<String> {
    let m = &verified.manifest;
    let observed = crate::observe::observe(conns, &m.project).await;
    let mut running: Vec<String> = Vec::new();
    for (machine, state) in &observed.machines {
        let Ok(state) = state else { continue };
        if crate::observe::current(&state.containers)
            .iter()
            .any(|c| Some(&c.service) == m.service.as_ref() && c.state == "running")
        {
            running.push(machine.clone());
        }
    }
    let (seen, unread) = seen(conns, Some(&m.project)).await;
    let mut holding: Vec<String> = seen
        .iter()
        .filter(|v| v.name == m.volume)
        .map(|v| v.machine.clone())
        .collect();
    holding.sort();
    let candidates = if running.is_empty() { holding } else { running };
    match candidates.as_slice() {
        [one] if unread.is_empty() => Ok(one.clone()),
        [] => bail!(
            "service {} does not run and no machine holds volume {}: choose where to restore it with --machine",
            m.service.as_deref().unwrap_or("-"),
            m.volume
        ),
        _ if !unread.is_empty() => bail!(
            "some machines could not be read ({}): choose where to restore with --machine",
            unread.join("; ")
        ),
        many => bail!(
            "{} on {}: choose one with --machine",
            match &m.service {
                Some(s) => format!("service {s} runs"),
                None => format!("volume {} is", m.volume),
            },
            many.join(", ")
        ),
    }
}
