//! `hoist down`: remove the project's containers and networks from every machine.
//! Volumes stay unless `--volumes` says otherwise: data is never lost by default.

use super::Global;
use super::project_args::ProjectArgs;
use crate::apply::{lock, ops};
use crate::engine;
use crate::observe;
use anyhow::Result;
use bollard::Docker;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// Stop and remove the project's containers and networks on every machine.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  hoist down\n  hoist down --volumes --yes   # also delete the project's named volumes (their data!)\n\nExit codes: 0 ok, 1 error or a machine unreachable (nothing there was touched)."
)]
pub struct DownArgs {
    /// Also remove the project's named volumes — and the data in them.
    #[arg(short, long)]
    volumes: bool,
    /// Do not ask before removing volumes.
    #[arg(short, long)]
    yes: bool,
    /// Wait this long for a running deploy's lock (e.g. 2m).
    #[arg(long, value_parser = super::parse_duration, default_value = "0s", value_name = "DURATION")]
    lock_wait: Duration,
}

pub async fn run(global: &Global, project_args: &ProjectArgs, args: DownArgs) -> Result<ExitCode> {
    let project_name = super::project_name(project_args)?;
    let project = project_name.as_str();
    if args.volumes
        && !args.yes
        && !super::confirm(&format!(
            "Delete the named volumes of project {project} and all their data?"
        ))?
    {
        tell!("hoist: nothing removed");
        return Ok(ExitCode::from(1));
    }
    let fleet = super::load_fleet(global)?;
    let conns = engine::connect_all(&fleet, global.timeout).await?;
    let engines = conns.engines();
    let held = lock::acquire(
        &engines,
        project,
        &lock::describe_self("down"),
        args.lock_wait,
    )
    .await;
    let held = match held {
        Ok(l) => l,
        Err(e) => {
            conns.close().await;
            return Err(e);
        }
    };
    let seen = observe::observe(&conns, project).await;
    let mut failed = false;
    let tasks = seen.machines.iter().map(|(machine, state)| {
        let docker = engines
            .iter()
            .find(|(n, _)| n == machine)
            .map(|(_, d)| d.clone());
        async move {
            let (Ok(state), Some(docker)) = (state, docker) else {
                let why = state.as_ref().err().cloned().unwrap_or_default();
                return Err(format!(
                    "{machine}: not reached, nothing removed there: {why}"
                ));
            };
            let mut removed = 0;
            let stops = state.containers.iter().map(|c| {
                let docker = docker.clone();
                async move {
                    ops::stop(&docker, &c.id, None).await?;
                    ops::remove(&docker, &c.id).await
                }
            });
            for r in futures_util::future::join_all(stops).await {
                r.map_err(|e| format!("{machine}: {e:#}"))?;
                removed += 1;
            }
            for net in &state.networks {
                docker
                    .remove_network(net)
                    .await
                    .map_err(|e| format!("{machine}: removing network {net}: {e}"))?;
            }
            let mut vols = 0;
            if args.volumes {
                // The sealing key's holder mounts the key's volume (src/seal.rs).
                crate::seal::remove_holder(&docker, project)
                    .await
                    .map_err(|e| format!("{machine}: {e:#}"))?;
                vols = remove_project_volumes(&docker, project)
                    .await
                    .map_err(|e| format!("{machine}: {e:#}"))?;
            }
            Ok((machine.clone(), removed, state.networks.len(), vols))
        }
    });
    for r in futures_util::future::join_all(tasks).await {
        match r {
            Ok((m, c, n, v)) => {
                let vols = if args.volumes {
                    format!(", {v} volumes")
                } else {
                    String::new()
                };
                tell!("{m}: removed {c} containers, {n} networks{vols}");
            }
            Err(e) => {
                failed = true;
                tell!("hoist: {e}");
            }
        }
    }
    if !failed {
        crate::apply::fleet_record::clear(&conns.engines(), project).await;
    }
    held.release().await;
    conns.close().await;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Removes the volumes hoist created for the project (by label), never others.
async fn remove_project_volumes(docker: &Docker, project: &str) -> Result<usize> {
    let filters = std::collections::HashMap::from([(
        "label".to_string(),
        vec![format!("{}={project}", crate::labels::PROJECT)],
    )]);
    let list = docker
        .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
            filters: Some(filters),
        }))
        .await?;
    let mut n = 0;
    for v in list.volumes.unwrap_or_default() {
        docker
            .remove_volume(
                &v.name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await?;
        n += 1;
    }
    Ok(n)
}
