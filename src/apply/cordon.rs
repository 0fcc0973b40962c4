//! The cordon of a drained machine, recorded on the machine itself.
//!
//! The engines are hoist's only state, so "m1 is drained" must be readable from m1 by every
//! hoist and every `hoist watch`, for every project: it is a volume named
//! [`labels::DRAINED_VOLUME`] on the machine, labelled with who drained it and when (the way
//! the deploy lock is a volume). Observing a project lists every volume name of a machine, so
//! the plan sees the cordon without another request (`pipeline::observed`). The volume holds
//! no data; `hoist undrain` removes it.

use crate::labels;
use anyhow::{Context, Result};
use bollard::Docker;
use bollard::models::VolumeCreateRequest;
use std::collections::HashMap;

/// Who drained the machine and when, if it is drained.
pub async fn read(docker: &Docker) -> Result<Option<String>> {
    match docker.inspect_volume(labels::DRAINED_VOLUME).await {
        Ok(v) => Ok(Some(
            v.labels
                .get(labels::DRAINED)
                .cloned()
                .unwrap_or_else(|| "drained".into()),
        )),
        Err(e) if crate::apply::ops::status_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(e).context("reading the drain cordon"),
    }
}

/// Records the cordon; false when the machine was drained already (the record is kept).
pub async fn mark(docker: &Docker, by: &str) -> Result<bool> {
    if read(docker).await?.is_some() {
        return Ok(false);
    }
    let since = crate::apply::time::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(labels::DRAINED_VOLUME.to_string()),
            labels: Some(HashMap::from([(
                labels::DRAINED.to_string(),
                format!("by {by} at {since}"),
            )])),
            ..Default::default()
        })
        .await
        .context("recording the drain cordon")?;
    Ok(true)
}

/// Removes the cordon; false when the machine was not drained.
pub async fn unmark(docker: &Docker) -> Result<bool> {
    match docker
        .remove_volume(
            labels::DRAINED_VOLUME,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if crate::apply::ops::status_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(e).context("removing the drain cordon"),
    }
}
