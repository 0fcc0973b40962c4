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

/// What the computer running hoist says a service's image is: which copy of a tag is the
/// truth (docs/images.md). For a service built here (`build:`) and for an image that exists
/// only locally (built or loaded on this computer, never pulled from a registry), it is the
/// local engine's image: a rebuild under the same tag is a change the plan shows, and `up`
/// ships it. Registry images are pinned to their digest instead (`pin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalImage {
    /// The image ID on the local engine, when it has the image.
    pub id: Option<String>,
    /// `build:` services: the digest of what the build reads (`build::context_digest`).
    pub context: Option<String>,
}

/// Service → what the local engine and the build contexts say of its image.
pub type LocalImages = BTreeMap<String, LocalImage>;

/// The local images of the project's services, as they are now (for `plan`, which does not
/// build): `build:` services with their context digest, and services whose image exists
/// only locally.
pub async fn local_images(local: Option<&Docker>, project: &Project) -> Result<LocalImages> {
    let mut out = LocalImages::new();
    for (name, svc) in &project.services {
        let entry = match &svc.build {
            Some(build) => {
                let tag = crate::build::image_name(&project.name, name, svc.image.as_deref());
                LocalImage {
                    id: local_only_id(local, &tag, true).await,
                    context: Some(crate::build::context_digest(name, build)?),
                }
            }
            None => match svc.image.as_deref() {
                Some(image) if !image.contains('@') => LocalImage {
                    id: local_only_id(local, image, false).await,
                    context: None,
                },
                _ => continue,
            },
        };
        if entry != LocalImage::default() {
            out.insert(name.clone(), entry);
        }
    }
    Ok(out)
}

/// The local engine's ID for `image` — for a built image always, otherwise only when it never
/// came from a registry (no repo digest): a pulled image's truth is its registry's digest.
async fn local_only_id(local: Option<&Docker>, image: &str, built: bool) -> Option<String> {
    let info = local?.inspect_image(image).await.ok()?;
    if !built && info.repo_digests.as_ref().is_some_and(|d| !d.is_empty()) {
        return None;
    }
    info.id
}

/// Services whose image the local engine cannot speak for (no local copy, or no build context
/// here: another computer deployed it) keep the image ID and context digest their running
/// replicas record, so a plan made elsewhere is the same plan — a machine's copy of a tag
/// never silently replaces what was deployed.
pub fn keep_running_ids(
    project: &Project,
    observation: &crate::observe::Observation,
    images: &mut LocalImages,
) {
    use crate::core::spec::{ContainerSpec, attr};
    for (_, state) in &observation.machines {
        let Ok(state) = state else { continue };
        for c in crate::observe::current(&state.containers) {
            let Some(svc) = project.services.get(&c.service) else {
                continue;
            };
            let known = images.get(&c.service).cloned().unwrap_or_default();
            if known.id.is_some() && (svc.build.is_none() || known.context.is_some()) {
                continue;
            }
            let Some(spec) = c
                .labels
                .get(crate::labels::SPEC)
                .and_then(|s| ContainerSpec::from_json(s).ok())
            else {
                continue;
            };
            let image = crate::build::image_name(&project.name, &c.service, svc.image.as_deref());
            if spec.get(attr::IMAGE).and_then(|v| v.as_str()) != Some(image.as_str())
                || spec.get(attr::IMAGE_DIGEST).is_some()
            {
                continue;
            }
            let entry = images.entry(c.service.clone()).or_default();
            if entry.id.is_none() {
                entry.id = spec
                    .get(attr::IMAGE_ID)
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
            }
            if entry.context.is_none() && svc.build.is_some() {
                entry.context = spec
                    .get(attr::BUILD_CONTEXT)
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
            }
        }
    }
}

/// Builds every `build:` service (or those named) on the local engine.
pub async fn build_all(
    local: Option<&Docker>,
    project: &Project,
    only: &[String],
    platform: Option<&str>,
    progress: &Progress,
) -> Result<LocalImages> {
    let wanted: Vec<(&String, &crate::model::Service)> = project
        .services
        .iter()
        .filter(|(n, s)| s.build.is_some() && (only.is_empty() || only.contains(n)))
        .collect();
    let mut out = local_images(local, project).await?;
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
        let context = Some(crate::build::context_digest(name, build)?);
        out.insert(
            name.clone(),
            LocalImage {
                id: Some(id),
                context,
            },
        );
    }
    Ok(out)
}
