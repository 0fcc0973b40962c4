//! The engine operations a rollout is made of: ensure networks and volumes,
//! create, start, stop and remove containers, and wait for a replica to prove
//! itself healthy. Each one is idempotent where the Engine API allows, so a
//! rerun after a crash converges instead of failing on what already exists.

use crate::labels;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn status_code(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// A string-to-string object of a compose definition (`labels`, `driver_opts`).
fn string_map(spec: &Value, key: &str) -> HashMap<String, String> {
    spec.get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A container hoist keeps by name beside the replicas (the ingress, a mesh proxy): the one
/// there when its spec-hash label is `hash`; otherwise none — a stale one is removed first, so
/// the caller creates it anew.
pub async fn current_by_hash(
    docker: &Docker,
    name: &str,
    hash: &str,
) -> Result<Option<bollard::models::ContainerInspectResponse>> {
    let Ok(c) = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    else {
        return Ok(None);
    };
    let have = c
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(labels::SPEC_HASH));
    if have.map(String::as_str) == Some(hash) {
        return Ok(Some(c));
    }
    remove(docker, c.id.as_deref().unwrap_or(name)).await?;
    Ok(None)
}

/// Creates the project network `name` on a machine unless it exists.
pub async fn ensure_network(
    docker: &Docker,
    name: &str,
    project: &str,
    spec: &Value,
) -> Result<()> {
    if docker.inspect_network(name, None).await.is_ok() {
        return Ok(());
    }
    let mut label_map = string_map(spec, "labels");
    label_map.insert(labels::PROJECT.into(), project.into());
    let options = string_map(spec, "driver_opts");
    let req = NetworkCreateRequest {
        name: name.to_string(),
        driver: spec
            .get("driver")
            .and_then(Value::as_str)
            .map(str::to_string),
        internal: spec.get("internal").and_then(Value::as_bool),
        attachable: Some(true),
        enable_ipv6: spec.get("enable_ipv6").and_then(Value::as_bool),
        options: Some(options),
        labels: Some(label_map),
        ..Default::default()
    };
    match docker.create_network(req).await {
        Ok(_) => Ok(()),
        // Lost a race with another creator: the network is there, which is all we need.
        Err(e) if status_code(&e) == Some(409) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating network {name}")),
    }
}

/// Creates the named volume unless it exists. Existing volumes are never
/// modified: their data is the user's.
pub async fn ensure_volume(docker: &Docker, name: &str, project: &str, spec: &Value) -> Result<()> {
    if docker.inspect_volume(name).await.is_ok() {
        return Ok(());
    }
    let mut label_map = string_map(spec, "labels");
    label_map.insert(labels::PROJECT.into(), project.into());
    let driver_opts = string_map(spec, "driver_opts");
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: spec
                .get("driver")
                .and_then(Value::as_str)
                .map(str::to_string),
            driver_opts: Some(driver_opts),
            labels: Some(label_map),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating volume {name}"))?;
    Ok(())
}

/// Creates a container from an Engine API create request (see `container`),
/// connects its extra networks, and returns its ID. An existing container of
/// that name (left by an interrupted run) is reused when it carries the same
/// spec hash.
pub async fn create(
    docker: &Docker,
    name: &str,
    request: &Value,
    extra_networks: &[(String, Value)],
) -> Result<String> {
    let body: ContainerCreateBody =
        serde_json::from_value(request.clone()).context("building the create request")?;
    let id = match docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_string()),
                ..Default::default()
            }),
            body,
        )
        .await
    {
        Ok(r) => r.id,
        Err(e) if status_code(&e) == Some(409) => {
            let existing = docker
                .inspect_container(name, None::<InspectContainerOptions>)
                .await
                .with_context(|| format!("inspecting existing container {name}"))?;
            let want =
                request.pointer(&format!("/Labels/{}", labels::SPEC_HASH.replace('/', "~1")));
            let existing_labels = existing.config.as_ref().and_then(|c| c.labels.as_ref());
            let have = existing_labels.and_then(|l| l.get(labels::SPEC_HASH));
            if want.and_then(Value::as_str) != have.map(String::as_str) {
                // Running `up` again meets the same container: only removing or
                // renaming it frees the name.
                let whose = if existing_labels.is_some_and(|l| l.contains_key(labels::PROJECT)) {
                    "with another spec"
                } else {
                    "that hoist did not create (it has no io.hoist.project label)"
                };
                bail!(
                    "a container named {name} already exists on the machine, {whose}, and hoist \
                     needs that name; remove it (`docker rm -f {name}` on the machine) or rename \
                     it (`docker rename {name} NEW-NAME`), then run `hoist up`"
                );
            }
            existing.id.unwrap_or_default()
        }
        Err(e) => return Err(e).with_context(|| format!("creating container {name}")),
    };
    for (net, endpoint) in extra_networks {
        let req = NetworkConnectRequest {
            container: id.clone(),
            endpoint_config: Some(
                serde_json::from_value(endpoint.clone()).context("network endpoint")?,
            ),
        };
        match docker.connect_network(net, req).await {
            Ok(()) => {}
            // Already connected (a rerun): fine.
            Err(e) if status_code(&e) == Some(403) || status_code(&e) == Some(409) => {}
            Err(e) => return Err(e).with_context(|| format!("connecting {name} to network {net}")),
        }
    }
    Ok(id)
}

/// Starts a container, or unpauses it when it was paused (by hand: hoist never pauses).
pub async fn start(docker: &Docker, id: &str) -> Result<()> {
    match docker.start_container(id, None).await {
        Ok(()) => Ok(()),
        Err(e) if status_code(&e) == Some(304) => Ok(()),
        // The engine refuses to start a paused container ("try unpause instead").
        Err(e) if e.to_string().contains("paused") => docker
            .unpause_container(id)
            .await
            .with_context(|| format!("unpausing container {}", short(id))),
        Err(e) => Err(e).with_context(|| format!("starting container {}", short(id))),
    }
}

/// Stops a container, giving it `grace` before SIGKILL (stop_grace_period);
/// `None` uses the grace period the container was created with.
pub async fn stop(docker: &Docker, id: &str, grace: Option<Duration>) -> Result<()> {
    match docker
        .stop_container(
            id,
            Some(StopContainerOptions {
                t: grace.map(|g| g.as_secs().min(i32::MAX as u64) as i32),
                signal: None,
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if matches!(status_code(&e), Some(304) | Some(404)) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("stopping container {}", short(id))),
    }
}

/// Removes a container. Its named volumes stay: hoist removes volumes only
/// when asked (`down --volumes`).
pub async fn remove(docker: &Docker, id: &str) -> Result<()> {
    match docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: false,
                link: false,
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing container {}", short(id))),
    }
}

/// How a new replica proves itself before the rollout moves on.
#[derive(Debug, Clone, Copy)]
pub struct HealthGate {
    /// Without a healthcheck: how long it must keep running (update_config.monitor).
    pub monitor: Duration,
    /// A one-shot service others wait for (`service_completed_successfully`):
    /// ready means exited with code 0.
    pub completes: bool,
    /// Give up after this long.
    pub deadline: Duration,
}

/// Waits until the container is healthy — when it has a healthcheck, from the
/// compose file or baked into the image — or has kept running for `monitor`
/// without one. On failure the error carries what the container said last.
pub async fn wait_ready(docker: &Docker, id: &str, gate: HealthGate) -> Result<()> {
    let started = Instant::now();
    loop {
        let info = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .with_context(|| format!("inspecting container {}", short(id)))?;
        let state = info.state.unwrap_or_default();
        if gate.completes {
            if state.running != Some(true)
                && state.restarting != Some(true)
                && state.status.is_some()
            {
                let code = state.exit_code.unwrap_or(-1);
                if code == 0 {
                    return Ok(());
                }
                let tail = last_logs(docker, id, 5).await;
                bail!(
                    "exited with code {code}; services depending on it with service_completed_successfully cannot start{tail}"
                );
            }
            if started.elapsed() >= gate.deadline {
                bail!(
                    "still running after {}s; it must complete before its dependents start",
                    gate.deadline.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let running = state.running.unwrap_or(false);
        let restarting = state.restarting.unwrap_or(false);
        if !running && !restarting {
            let code = state.exit_code.unwrap_or(-1);
            let tail = last_logs(docker, id, 5).await;
            bail!("exited with code {code} before becoming ready{tail}");
        }
        if let Some(health) = state.health {
            match health.status.map(|s| s.to_string()).as_deref() {
                Some("healthy") => return Ok(()),
                Some("unhealthy") => {
                    let probe = health
                        .log
                        .unwrap_or_default()
                        .last()
                        .and_then(|r| r.output.clone())
                        .unwrap_or_default();
                    bail!("health check failed: {}", probe.trim());
                }
                _ => {}
            }
        } else if started.elapsed() >= gate.monitor && running && !restarting {
            return Ok(());
        }
        if started.elapsed() >= gate.deadline {
            bail!(
                "not ready after {}s (health check still starting); raise healthcheck retries or deploy.update_config.monitor",
                gate.deadline.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn last_logs(docker: &Docker, id: &str, lines: usize) -> String {
    let mut stream = docker.logs(
        id,
        Some(LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        }),
    );
    let mut text = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; last output:\n    {}", text.replace('\n', "\n    "))
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// A file to place in a container before it starts (secrets and configs).
#[derive(Debug, Clone, PartialEq)]
pub struct FileInContainer {
    /// Absolute path inside the container.
    pub target: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// Writes `files` into a created (not yet started) container through the
/// archive API: the content travels in the API call, never in labels or env.
pub async fn copy_files(docker: &Docker, id: &str, files: &[FileInContainer]) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let rel = f.target.trim_start_matches('/');
        let mut parent = std::path::Path::new(rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_path_buf());
            parent = p.parent();
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        builder.append_data(&mut h, d, std::io::empty())?;
    }
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(f.mode);
        h.set_uid(f.uid);
        h.set_gid(f.gid);
        h.set_size(f.content.len() as u64);
        builder.append_data(
            &mut h,
            f.target.trim_start_matches('/'),
            f.content.as_slice(),
        )?;
    }
    let archive = builder.into_inner()?;
    docker
        .upload_to_container(
            id,
            Some(bollard::query_parameters::UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            }),
            bollard::body_full(archive.into()),
        )
        .await
        .with_context(|| format!("placing secrets and configs in container {}", short(id)))
}
