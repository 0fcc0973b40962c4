//! Carries out a `down` plan ([`crate::core::down`]): on each machine it reached, stop and
//! remove the containers, remove the networks, and — only when the plan has them — the sealing
//! key's holder and the volumes. Machines run side by side; one that fails says why and the
//! others go on.

use crate::apply::ops;
use crate::core::down::DownPlan;
use anyhow::{Context, Result};
use bollard::Docker;

/// Each reached machine of the plan, and whether its removals all succeeded.
pub async fn carry_out(
    plan: &DownPlan,
    engines: &[(String, Docker)],
) -> Vec<(String, Result<(), String>)> {
    let tasks = plan.machines.iter().map(|(machine, state)| async move {
        let done = match (state, engines.iter().find(|(n, _)| n == machine)) {
            (Err(why), _) => Err(format!("not reached, nothing removed there: {why}")),
            (Ok(_), None) => Err("no connection".to_string()),
            (Ok(on), Some((_, docker))) => remove(docker, &plan.project, on)
                .await
                .map_err(|e| format!("{e:#}")),
        };
        (machine.clone(), done)
    });
    futures_util::future::join_all(tasks).await
}

async fn remove(docker: &Docker, project: &str, on: &crate::core::down::OnMachine) -> Result<()> {
    let stops = on.containers.iter().map(|(name, id)| async move {
        ops::stop(docker, id, None)
            .await
            .with_context(|| format!("stopping container {name}"))?;
        ops::remove(docker, id)
            .await
            .with_context(|| format!("removing container {name}"))
    });
    for r in futures_util::future::join_all(stops).await {
        r?;
    }
    for net in &on.networks {
        docker
            .remove_network(net)
            .await
            .with_context(|| format!("removing network {net}"))?;
    }
    if !on.volumes.is_empty() {
        // The sealing key's holder mounts the key's volume (src/seal.rs).
        crate::seal::remove_holder(docker, project).await?;
    }
    for v in &on.volumes {
        match docker
            .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => {}
            Err(e) if ops::status_code(&e) == Some(404) => {}
            Err(e) => return Err(e).with_context(|| format!("removing volume {v}")),
        }
    }
    Ok(())
}
