//! The local engine — the one on the computer running hoist — where `build:`
//! services are built and from where images are shipped to machines.

use crate::apply::progress::Progress;
use crate::model::Project;
use anyhow::{Context, Result};
use bollard::Docker;
use std::collections::BTreeMap;

/// The local engine, if one answers (DOCKER_HOST or the default socket).
pub async fn engine() -> Option<Docker> {
    let docker = Docker::connect_with_local_defaults().ok()?;
    docker.ping().await.ok()?;
    Some(docker)
}

/// Image IDs of the `build:` services already built locally (for `plan`, which
/// does not build).
pub async fn built_ids(local: Option<&Docker>, project: &Project) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(local) = local else { return out };
    for (name, svc) in &project.services {
        if svc.build.is_none() {
            continue;
        }
        let tag = crate::build::image_name(&project.name, name, svc.image.as_deref());
        if let Ok(i) = local.inspect_image(&tag).await
            && let Some(id) = i.id
        {
            out.insert(name.clone(), id);
        }
    }
    out
}

/// Builds every `build:` service (or those named) on the local engine.
pub async fn build_all(
    local: Option<&Docker>,
    project: &Project,
    only: &[String],
    platform: Option<&str>,
    progress: &Progress,
) -> Result<BTreeMap<String, String>> {
    let wanted: Vec<(&String, &crate::model::Service)> = project
        .services
        .iter()
        .filter(|(n, s)| s.build.is_some() && (only.is_empty() || only.contains(n)))
        .collect();
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let local = local.context(
        "services with build: need a local Docker engine to build on (none answers at DOCKER_HOST or /var/run/docker.sock)",
    )?;
    for (name, svc) in wanted {
        let build = svc.build.as_ref().expect("filtered on build");
        let tag = crate::build::image_name(&project.name, name, svc.image.as_deref());
        let key = format!("build {name}");
        progress.step(&key, &format!("building {tag}"));
        let id = crate::build::build(local, name, build, &tag, platform).await?;
        progress.finish(&key, &format!("built {tag} ({})", &id[..id.len().min(19)]));
        out.insert(name.clone(), id);
    }
    Ok(out)
}
