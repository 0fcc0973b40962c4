//! The engine operations a rollout is made of: ensure networks and volumes,
//! create, start, stop and remove containers, and wait for a replica to prove
//! itself healthy. Each one is idempotent where the Engine API allows, so a
//! rerun after a crash converges instead of failing on what already exists.

use crate::labels;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, InspectContainerOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The HTTP status of an engine's error answer (404 no such object, 409 conflict, …).
pub fn status_code(e: &DockerError) -> Option<u16> {
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

/// Where [`fixed_host_ports`] picks host ports: below the kernel's ephemeral range (from 32768),
/// where the engine picks its own, and above the usual service ports.
pub const FIXED_PORTS: std::ops::Range<u16> = 20000..32768;

/// The create request with every port binding that leaves the host port to the engine
/// (`HostPort: ""`) given a fixed one. An engine gives such a binding a new port each time it
/// starts the container, so after a reboot the ingress and the mesh — which reach replicas by
/// host port — would point at ports nobody listens on until the next `hoist up`. A fixed port
/// survives restarts. It is chosen from the container's name and the container port (a rerun
/// picks the same); `attempt` moves to other ports after a clash with something else on the
/// machine.
pub fn fixed_host_ports(request: &Value, name: &str, attempt: u32) -> Value {
    use sha2::{Digest, Sha256};
    let mut out = request.clone();
    let Some(bindings) = out
        .pointer_mut("/HostConfig/PortBindings")
        .and_then(Value::as_object_mut)
    else {
        return out;
    };
    let span = u64::from(FIXED_PORTS.end - FIXED_PORTS.start);
    let mut taken = std::collections::BTreeSet::new();
    let mut keys: Vec<String> = bindings.keys().cloned().collect();
    keys.sort();
    for key in keys {
        let Some(list) = bindings.get_mut(&key).and_then(Value::as_array_mut) else {
            continue;
        };
        for (i, b) in list.iter_mut().enumerate() {
            if b.get("HostPort").and_then(Value::as_str) != Some("") {
                continue;
            }
            let digest = Sha256::digest(format!("{name}/{key}/{i}/{attempt}").as_bytes());
            let mut n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % span;
            // Two bindings of one container never share a port.
            while !taken.insert(n) {
                n = (n + 1) % span;
            }
            let port = FIXED_PORTS.start as u64 + n;
            b["HostPort"] = Value::String(port.to_string());
        }
    }
    out
}

/// Whether a failed start was a host port that something else holds.
pub fn port_clash(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("port is already allocated") || text.contains("address already in use")
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
    /// update_config.monitor: after a replica is ready, how long a failure still counts against
    /// the rollout (Swarm's semantics; the rollout watches it in the background).
    pub monitor: Duration,
    /// A one-shot service others wait for (`service_completed_successfully`):
    /// ready means exited with code 0.
    pub completes: bool,
    /// Give up after this long.
    pub deadline: Duration,
}

/// How a replica proved itself ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Its healthcheck (from the compose file or baked into the image) passed.
    Healthy,
    /// It runs and has no healthcheck: only watching it for a while tells more.
    Running,
    /// A one-shot service that exited with code 0.
    Completed,
}

/// How often a waiting rollout looks at a container when the engine's event stream is not
/// available: often enough that a healthy replica is noticed within a tenth of a second.
const POLL: Duration = Duration::from_millis(100);

/// Wakes a waiter when the engine reports a change of one container — it started, died, or its
/// health changed — or once `max` has passed. The engine's /events are read from the
/// container's start on (it replays what it buffered), so nothing that happened between the
/// waiter's last inspect and the subscription is missed. Without the stream (an engine or a
/// link that drops it) it wakes every `poll`, as a poll would.
struct Wake {
    events: Option<futures_util::stream::BoxStream<'static, Result<(), DockerError>>>,
    poll: Duration,
}

impl Wake {
    /// `started_at`: the container's State.StartedAt, in the engine's clock.
    fn new(docker: &Docker, id: &str, started_at: Option<&str>, poll: Duration) -> Wake {
        let since = started_at
            .and_then(|t| super::time::parse_timestamp(t).ok())
            .filter(|secs| *secs > 0);
        let Some(since) = since else {
            return Wake { events: None, poll };
        };
        let filters = HashMap::from([
            ("container".to_string(), vec![id.to_string()]),
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                ["start", "die", "health_status", "oom", "pause", "unpause"]
                    .map(str::to_string)
                    .to_vec(),
            ),
        ]);
        let stream = docker
            .events(Some(EventsOptions {
                since: Some(since.to_string()),
                until: None,
                filters: Some(filters),
            }))
            .map(|e| e.map(|_| ()))
            .boxed();
        Wake {
            events: Some(stream),
            poll,
        }
    }

    /// Returns on the container's next event, or after `max`.
    async fn next(&mut self, max: Duration) {
        let Some(events) = &mut self.events else {
            tokio::time::sleep(self.poll.min(max)).await;
            return;
        };
        tokio::select! {
            event = events.next() => {
                if !matches!(event, Some(Ok(()))) {
                    // The stream broke: poll from now on.
                    self.events = None;
                }
            }
            _ = tokio::time::sleep(max) => {}
        }
    }
}

/// What the engine says of a container now.
async fn inspect_state(
    docker: &Docker,
    id: &str,
) -> Result<(bollard::models::ContainerState, i64)> {
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .with_context(|| format!("inspecting container {}", short(id)))?;
    Ok((
        info.state.unwrap_or_default(),
        info.restart_count.unwrap_or(0),
    ))
}

/// Waits until the container is ready, as Swarm counts it: healthy when it has a healthcheck,
/// running when it has none. It looks again whenever the engine reports an event of the
/// container (see [`Wake`]). On failure the error carries what the container said last.
pub async fn wait_ready(docker: &Docker, id: &str, gate: HealthGate) -> Result<Ready> {
    let started = Instant::now();
    let mut wake: Option<Wake> = None;
    loop {
        let (state, _) = inspect_state(docker, id).await?;
        if let Some(ready) = ready_now(docker, id, &state, gate.completes).await? {
            return Ok(ready);
        }
        if started.elapsed() >= gate.deadline {
            if gate.completes {
                bail!(
                    "still running after {}s; it must complete before its dependents start",
                    gate.deadline.as_secs()
                );
            }
            let checks_ran = state
                .health
                .as_ref()
                .and_then(|h| h.log.as_ref())
                .is_some_and(|log| !log.is_empty());
            if !checks_ran {
                // Podman runs health checks from systemd timers: without systemd none runs,
                // and every replica with a healthcheck waits here for ever.
                bail!(
                    "not ready after {}s: its health check never ran (the engine recorded no result); on Podman, checks run from systemd timers, so a Podman without systemd runs none — run Podman under systemd (`hoist machines init` sets that up)",
                    gate.deadline.as_secs()
                );
            }
            bail!(
                "not ready after {}s (health check still starting); raise the healthcheck's retries or start_period",
                gate.deadline.as_secs()
            );
        }
        let wake =
            wake.get_or_insert_with(|| Wake::new(docker, id, state.started_at.as_deref(), POLL));
        wake.next(gate.deadline.saturating_sub(started.elapsed()))
            .await;
    }
}

/// Whether `state` is ready (see [`wait_ready`]); an error when it can no longer become so.
async fn ready_now(
    docker: &Docker,
    id: &str,
    state: &bollard::models::ContainerState,
    completes: bool,
) -> Result<Option<Ready>> {
    if completes {
        if state.running != Some(true) && state.restarting != Some(true) && state.status.is_some() {
            let code = state.exit_code.unwrap_or(-1);
            if code == 0 {
                return Ok(Some(Ready::Completed));
            }
            let tail = last_logs(docker, id, 5).await;
            bail!(
                "exited with code {code}; services depending on it with service_completed_successfully cannot start{tail}"
            );
        }
        return Ok(None);
    }
    let running = state.running.unwrap_or(false);
    let restarting = state.restarting.unwrap_or(false);
    if !running && !restarting {
        let code = state.exit_code.unwrap_or(-1);
        let tail = last_logs(docker, id, 5).await;
        bail!("exited with code {code} before becoming ready{tail}");
    }
    match &state.health {
        Some(health) => match health.status.map(|s| s.to_string()).as_deref() {
            Some("healthy") => Ok(Some(Ready::Healthy)),
            Some("unhealthy") => {
                let probe = health
                    .log
                    .as_ref()
                    .and_then(|l| l.last())
                    .and_then(|r| r.output.clone())
                    .unwrap_or_default();
                bail!("health check failed: {}", probe.trim());
            }
            _ => Ok(None),
        },
        None if running && !restarting => Ok(Some(Ready::Running)),
        None => Ok(None),
    }
}

/// Watches a ready replica for `window`: it fails if it stops running, restarts, or turns
/// unhealthy within it (update_config.monitor). It looks at the container when the engine
/// reports an event of it, and once more at the end of the window. The error says what happened.
pub async fn monitor(docker: &Docker, id: &str, window: Duration) -> Result<()> {
    let started = Instant::now();
    let mut restarts: Option<i64> = None;
    let mut wake: Option<Wake> = None;
    loop {
        let (state, count) = inspect_state(docker, id).await?;
        if state.running != Some(true) || state.restarting == Some(true) {
            let code = state.exit_code.unwrap_or(-1);
            let tail = last_logs(docker, id, 5).await;
            bail!(
                "exited with code {code} {}s after it was ready (within update_config.monitor){tail}",
                started.elapsed().as_secs()
            );
        }
        if *restarts.get_or_insert(count) != count {
            bail!("restarted within update_config.monitor");
        }
        if let Some(health) = &state.health
            && health.status.map(|s| s.to_string()).as_deref() == Some("unhealthy")
        {
            let probe = health
                .log
                .as_ref()
                .and_then(|l| l.last())
                .and_then(|r| r.output.clone())
                .unwrap_or_default();
            bail!(
                "turned unhealthy within update_config.monitor: {}",
                probe.trim()
            );
        }
        let left = window.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(());
        }
        let wake = wake.get_or_insert_with(|| {
            Wake::new(
                docker,
                id,
                state.started_at.as_deref(),
                Duration::from_millis(250),
            )
        });
        wake.next(left).await;
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

/// Runs `cmd` in a container; returns its exit code and its output (both streams).
///
/// When the runtime fails to start the process at all — runc's "unable to start container
/// process" with a broken init pipe, seen on busy machines — the command never ran, so it is
/// tried again (three tries, short pauses) rather than reported as the command's own failure.
/// A command that is missing or not allowed fails at once: trying again would not help.
pub async fn exec(docker: &Docker, container: &str, cmd: &[&str]) -> Result<(i64, String)> {
    let mut tries = 0;
    loop {
        tries += 1;
        let (code, out) = exec_once(docker, container, cmd).await?;
        if tries >= 3 || !runtime_could_not_start(code, &out) {
            return Ok((code, out));
        }
        tokio::time::sleep(std::time::Duration::from_millis(150 * tries)).await;
    }
}

/// The runtime's own failure to start an exec'd process, when it is not about the command
/// (missing, not executable): a transient failure worth one more try.
fn runtime_could_not_start(code: i64, out: &str) -> bool {
    (code == 126 || code == 127 || code == 1)
        && out.contains("OCI runtime exec failed")
        && !["not found", "no such file", "permission denied"]
            .iter()
            .any(|s| out.to_ascii_lowercase().contains(s))
}

async fn exec_once(docker: &Docker, container: &str, cmd: &[&str]) -> Result<(i64, String)> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("exec in {container}"))?;
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            }),
        )
        .await?;
    let mut text = String::new();
    if let StartExecResults::Attached { mut output, .. } = started {
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    let code = docker
        .inspect_exec(&created.id)
        .await?
        .exit_code
        .unwrap_or(1);
    Ok((code, text))
}

/// Puts a volume `name` carrying `labels` on every engine given. Volume labels cannot change,
/// so an existing volume is replaced, unless `keep` says its labels are already right. Returns
/// the machines where it could not be written, with why (hoist's small state records: scale
/// decisions, the fleet's machines).
pub async fn put_labelled_volume(
    engines: &[(String, Docker)],
    name: &str,
    labels: &HashMap<String, String>,
    keep: impl Fn(&HashMap<String, String>) -> bool,
) -> Vec<(String, String)> {
    let keep = &keep;
    let writes = engines.iter().map(|(machine, docker)| async move {
        if let Ok(v) = docker.inspect_volume(name).await {
            if keep(&v.labels) {
                return None;
            }
            let _ = docker
                .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await;
        }
        docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .err()
            .map(|e| (machine.clone(), e.to_string()))
    });
    futures_util::future::join_all(writes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_runtimes_own_start_failure_is_tried_again() {
        let broken_pipe = "OCI runtime exec failed: exec failed: unable to start container process: waiting for init preliminary setup: read init-p: connection reset by peer: unknown";
        assert!(super::runtime_could_not_start(126, broken_pipe));
        let missing = "OCI runtime exec failed: exec failed: unable to start container process: exec: \"wget\": executable file not found in $PATH: unknown";
        assert!(!super::runtime_could_not_start(126, missing));
        // The command's own failure, in its own words.
        assert!(!super::runtime_could_not_start(
            1,
            "wget: server returned error: HTTP/1.1 404"
        ));
        assert!(!super::runtime_could_not_start(0, broken_pipe));
    }

    #[test]
    fn host_ports_left_to_the_engine_get_fixed_ones() {
        let request = serde_json::json!({"HostConfig": {"PortBindings": {
            "80/tcp": [{"HostIp": "", "HostPort": ""}],
            "443/tcp": [{"HostIp": "10.0.0.1", "HostPort": ""}],
            "53/udp": [{"HostIp": "", "HostPort": "5353"}],
        }}});
        let a = super::fixed_host_ports(&request, "shop-web-1-abc", 0);
        let port = |v: &serde_json::Value, k: &str| -> u16 {
            v["HostConfig"]["PortBindings"][k][0]["HostPort"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        };
        for k in ["80/tcp", "443/tcp"] {
            assert!(super::FIXED_PORTS.contains(&port(&a, k)), "{a}");
        }
        assert_ne!(port(&a, "80/tcp"), port(&a, "443/tcp"));
        // What the file publishes stays as written; the address stays.
        assert_eq!(port(&a, "53/udp"), 5353);
        assert_eq!(
            a["HostConfig"]["PortBindings"]["443/tcp"][0]["HostIp"],
            "10.0.0.1"
        );
        // The same container gets the same ports; another attempt or container, others.
        assert_eq!(a, super::fixed_host_ports(&request, "shop-web-1-abc", 0));
        assert_ne!(a, super::fixed_host_ports(&request, "shop-web-1-abc", 1));
        assert_ne!(a, super::fixed_host_ports(&request, "shop-web-2-abc", 0));
        // No bindings: unchanged.
        let none = serde_json::json!({"Image": "x"});
        assert_eq!(super::fixed_host_ports(&none, "n", 0), none);
    }
}
