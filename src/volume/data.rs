//! A volume's data on one machine, through the engine only: what volumes a project has and how
//! big they are, who uses them, and its files read out and written back as a tar stream.
//!
//! No image needs a shell or `tar` for a copy: the engine's archive endpoint reads and writes
//! the files of a container that is created and never started, with the volume mounted at
//! [`MOUNT`]. Any image already on the machine serves for that container (the service's own,
//! preferably), so a machine without a registry needs nothing shipped. Only emptying a volume
//! before a restore runs a command (`rm`, in the service's image), and says so if it cannot.
//! Everything goes over the machine's existing engine connection; nothing is staged on the
//! machine's disk.

use crate::apply::ops;
use crate::labels;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    ListVolumesOptions, RemoveContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Where a helper container mounts the volume (the backup's [`super::archive::ROOT`]).
pub const MOUNT: &str = "/hoist-volume";
/// `io.hoist.role` of a helper container.
pub const HELPER_ROLE: &str = "volume";
/// The volume a helper container serves (`io.hoist.volume` label).
pub const HELPER_VOLUME: &str = "io.hoist.volume";

/// One volume of a project on one machine.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeenVolume {
    pub machine: String,
    pub name: String,
    pub project: String,
    /// Created by hoist (it carries `io.hoist.project`); else it predates hoist and is only
    /// mounted by the project's containers.
    pub labelled: bool,
    pub driver: String,
    /// Bytes used, as the engine's disk-usage report counts them; None when it did not say.
    pub size: Option<u64>,
    /// The services whose containers (current or kept for rollback) mount it.
    pub services: Vec<String>,
}

/// A container that mounts a volume.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    /// Its `io.hoist.project` (None: not hoist's).
    pub project: Option<String>,
    pub service: Option<String>,
    pub slot: Option<String>,
    pub running: bool,
    pub image_id: String,
    /// `io.hoist.role`: hoist's own helpers are no users.
    role: Option<String>,
}

/// Whether a volume's labels make it a project's data volume rather than one of hoist's own
/// records (the deploy lock, the autoscaler's record), which carry further `io.hoist.` labels.
pub fn is_data_volume(labels: &HashMap<String, String>) -> bool {
    labels.contains_key(labels::PROJECT)
        && labels
            .keys()
            .all(|k| k == labels::PROJECT || !k.starts_with("io.hoist."))
}

/// The project's volumes on one machine (every project's with `None`), with sizes and users.
pub async fn list(
    docker: &Docker,
    socket: &Path,
    machine: &str,
    project: Option<&str>,
) -> Result<Vec<SeenVolume>> {
    let label = match project {
        Some(p) => format!("{}={p}", labels::PROJECT),
        None => labels::PROJECT.to_string(),
    };
    let containers = docker.list_containers(Some(ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), vec![label])])),
        ..Default::default()
    }));
    let volumes = docker.list_volumes(None::<ListVolumesOptions>);
    let sizes = sizes(docker, socket);
    let (containers, volumes, sizes) = tokio::join!(containers, volumes, sizes);
    let containers = containers.context("listing containers")?;
    let volumes = volumes.context("listing volumes")?;
    // Sizes are a nicety: a machine whose report fails still lists its volumes.
    let sizes = sizes.unwrap_or_default();
    // volume → (project, services)
    let mut used: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for c in &containers {
        let labels = c.labels.clone().unwrap_or_default();
        let Some(p) = labels.get(labels::PROJECT) else {
            continue;
        };
        let service = labels.get(labels::SERVICE).cloned();
        for m in c.mounts.iter().flatten() {
            let is_volume = m.typ.as_ref().is_some_and(|t| t == "volume");
            let Some(name) = m.name.clone().filter(|_| is_volume) else {
                continue;
            };
            let entry = used.entry(name).or_insert_with(|| (p.clone(), Vec::new()));
            if let Some(s) = &service
                && !labels.contains_key(labels::ROLE)
                && !entry.1.contains(s)
            {
                entry.1.push(s.clone());
            }
        }
    }
    let mut out = Vec::new();
    for v in volumes.volumes.unwrap_or_default() {
        let labelled = is_data_volume(&v.labels);
        let owner = v.labels.get(labels::PROJECT).cloned();
        let (project_of, mut services) = match used.remove(&v.name) {
            Some((p, s)) => (owner.clone().unwrap_or(p), s),
            None if labelled => (owner.clone().unwrap_or_default(), Vec::new()),
            None => continue,
        };
        if let Some(p) = project
            && project_of != p
        {
            continue;
        }
        // hoist's records (lock, scale) are not data.
        if owner.is_some() && !labelled {
            continue;
        }
        services.sort();
        out.push(SeenVolume {
            machine: machine.to_string(),
            size: sizes.get(&v.name).copied(),
            name: v.name,
            project: project_of,
            labelled,
            driver: v.driver,
            services,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Volume sizes from the engine's disk-usage report (`GET /system/df`, what `docker system df
/// -v` shows). Read with a plain HTTP request on the engine socket because bollard's model of
/// that answer follows API 1.52, which drops the `Volumes` list older engines send.
pub async fn sizes(docker: &Docker, socket: &Path) -> Result<HashMap<String, u64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let v = docker.client_version();
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let request = format!(
        "GET /v{}.{}/system/df?type=volume HTTP/1.0\r\nHost: docker\r\n\r\n",
        v.major_version, v.minor_version
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        stream.read_to_end(&mut answer),
    )
    .await
    .context("the engine's disk-usage report took over 2 minutes")??;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header in the engine's answer")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!(
            "the engine answered {}",
            head.lines().next().unwrap_or_default()
        );
    }
    let body: Value = serde_json::from_slice(&answer[split + 4..])?;
    let items = body
        .get("Volumes")
        .or_else(|| body.pointer("/VolumeUsage/Items"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|i| {
            let name = i.get("Name")?.as_str()?.to_string();
            let size = i.pointer("/UsageData/Size")?.as_i64()?;
            (size >= 0).then_some((name, size as u64))
        })
        .collect())
}

/// Every container on the machine that mounts `volume`, hoist's or not.
pub async fn users(docker: &Docker, volume: &str) -> Result<Vec<User>> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "volume".to_string(),
                vec![volume.to_string()],
            )])),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("listing the containers that use volume {volume}"))?;
    Ok(list
        .into_iter()
        .filter(|c| {
            // The filter matches the mount's source or destination: keep real users only.
            c.mounts
                .iter()
                .flatten()
                .any(|m| m.name.as_deref() == Some(volume))
        })
        .map(|c| {
            let l = c.labels.unwrap_or_default();
            User {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                project: l.get(labels::PROJECT).cloned(),
                service: l.get(labels::SERVICE).cloned(),
                slot: l.get(labels::SLOT).cloned(),
                running: c.state.map(|s| s.to_string()) == Some("running".to_string()),
                image_id: c.image_id.unwrap_or_default(),
                role: l.get(labels::ROLE).cloned(),
            }
        })
        // hoist's own helpers come and go with the operation that made them.
        .filter(|u| u.role.as_deref() != Some(HELPER_ROLE))
        .collect())
}

/// A container created (not started) with the volume mounted at [`MOUNT`]: the engine's
/// archive endpoint reads and writes the volume through it. Removed with [`Helper::remove`].
pub struct Helper {
    pub id: String,
    docker: Docker,
    image: String,
}

impl Helper {
    /// Removes helpers an interrupted earlier run of this project left on the machine (they
    /// hold no data), then creates one for `volume` from `image`.
    pub async fn create(
        docker: &Docker,
        project: &str,
        volume: &str,
        image: &str,
    ) -> Result<Helper> {
        remove_leftovers(docker, project).await?;
        Helper::create_only(docker, project, volume, image).await
    }

    /// Creates a helper for `volume` from `image`, leaving other helpers alone (a move runs
    /// several at once on one machine; it removes leftovers once, before the first).
    pub async fn create_only(
        docker: &Docker,
        project: &str,
        volume: &str,
        image: &str,
    ) -> Result<Helper> {
        // Runs only to empty the volume (Helper::clear); the archive endpoint needs no process.
        let empty = format!("rm -rf {MOUNT}/..?* {MOUNT}/.[!.]* {MOUNT}/*");
        Helper::create_running(docker, project, volume, image, &empty).await
    }

    /// A helper whose process, when started, is `sh -c script`. `script` is one of hoist's own
    /// fixed commands: never a value from a file or a machine (those go in as input files).
    async fn create_running(
        docker: &Docker,
        project: &str,
        volume: &str,
        image: &str,
        script: &str,
    ) -> Result<Helper> {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("{project}-volume-{}-{nonce}", std::process::id());
        let body: bollard::models::ContainerCreateBody = serde_json::from_value(json!({
            "Image": image,
            "Entrypoint": ["/bin/sh", "-c", script],
            "Cmd": [],
            "User": "0:0",
            "Labels": {
                labels::PROJECT: project,
                labels::ROLE: HELPER_ROLE,
                HELPER_VOLUME: volume,
            },
            "HostConfig": {
                "NetworkMode": "none",
                "Mounts": [{
                    "Type": "volume",
                    "Source": volume,
                    "Target": MOUNT,
                    "VolumeOptions": {"NoCopy": true},
                }],
            },
        }))
        .expect("a fixed request shape");
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .with_context(|| format!("creating helper container {name} for volume {volume}"))?;
        Ok(Helper {
            id: created.id,
            docker: docker.clone(),
            image: image.to_string(),
        })
    }

    /// The volume's files as a tar stream (entries start with `hoist-volume/`).
    pub fn read(
        &self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, bollard::errors::Error>> + use<> {
        self.docker.download_from_container(
            &self.id,
            Some(DownloadFromContainerOptions {
                path: MOUNT.to_string(),
            }),
        )
    }

    /// Whether the volume holds anything; if so, the name of one thing it holds.
    pub async fn first_entry(&self) -> Result<Option<String>> {
        let mut stream = self.read();
        let mut head = Vec::new();
        let mut complete = true;
        while let Some(chunk) = stream.next().await {
            head.extend_from_slice(&chunk.context("reading the volume")?);
            if head.len() >= 64 * 1024 {
                complete = false;
                break;
            }
        }
        drop(stream);
        let mut archive = tar::Archive::new(&head[..]);
        let mut names = Vec::new();
        if let Ok(entries) = archive.entries() {
            for e in entries {
                match e {
                    Ok(e) => names.push(e.path()?.to_string_lossy().into_owned()),
                    Err(_) => break,
                }
                if names.len() >= 2 {
                    break;
                }
            }
        }
        Ok(match names.get(1) {
            Some(n) => Some(
                n.trim_start_matches(super::archive::ROOT)
                    .trim_start_matches('/')
                    .to_string(),
            ),
            // A first entry bigger than what was read: not empty.
            None if !complete => Some("(a large entry)".into()),
            None => None,
        })
    }

    /// Extracts a tar stream (entries under `hoist-volume/`) into the volume. Owners and modes
    /// come from the tar (the engine's default; `copyUIDGID` would chown all to one user).
    pub async fn write(
        &self,
        tar: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<()> {
        self.docker
            .upload_to_container(
                &self.id,
                Some(UploadToContainerOptions {
                    path: "/".to_string(),
                    copy_uidgid: None,
                    no_overwrite_dir_non_dir: None,
                }),
                bollard::body_try_stream(tar),
            )
            .await
            .context("writing into the volume")
    }

    /// Empties the volume: runs the helper (`rm -rf` in its image, as root) and waits for it.
    pub async fn clear(&self) -> Result<()> {
        let why = |e: String| {
            anyhow::anyhow!(
                "could not empty the volume with image {} ({e}): it needs /bin/sh and rm; empty the volume by hand, then restore without --overwrite",
                self.image
            )
        };
        self.docker
            .start_container(&self.id, None)
            .await
            .map_err(|e| why(e.to_string()))?;
        let mut wait = self
            .docker
            .wait_container(&self.id, None::<WaitContainerOptions>);
        let code = match wait.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(why(e.to_string())),
            None => return Err(why("no exit status".into())),
        };
        if code != 0 {
            return Err(why(format!("exit code {code}")));
        }
        Ok(())
    }

    pub async fn remove(self) -> Result<()> {
        remove_helper(&self.docker, &self.id).await
    }

    /// One path of the volume (relative to it, `./a/b`) as a tar stream whose one entry (or
    /// tree, for a directory) is named after the path's last part.
    pub fn read_path(
        &self,
        path: &str,
    ) -> impl futures_util::Stream<Item = Result<Bytes, bollard::errors::Error>> + use<> {
        self.docker.download_from_container(
            &self.id,
            Some(DownloadFromContainerOptions {
                path: format!("{MOUNT}/{}", path.trim_start_matches("./")),
            }),
        )
    }

    /// Extracts a tar stream into the volume's directory `dir` (relative, `./a`; `.` for the
    /// volume's root), as [`Helper::write`] does at the root.
    pub async fn write_at(
        &self,
        dir: &str,
        tar: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<()> {
        let dir = dir.trim_start_matches('.').trim_start_matches('/');
        self.docker
            .upload_to_container(
                &self.id,
                Some(UploadToContainerOptions {
                    path: if dir.is_empty() {
                        MOUNT.to_string()
                    } else {
                        format!("{MOUNT}/{dir}")
                    },
                    copy_uidgid: None,
                    no_overwrite_dir_non_dir: None,
                }),
                bollard::body_try_stream(tar),
            )
            .await
            .context("writing into the volume")
    }
}

/// Runs one of hoist's fixed `script`s with `sh` in `image` on the machine, the volume mounted
/// at [`MOUNT`] and `input` readable at `/hoist-in`; returns what it wrote to standard output.
/// Both go through files in the container (the archive endpoint), so any log driver and any
/// bytes pass. A non-zero exit is an error carrying the script's standard error and its code
/// ([`ToolFailed`]).
pub async fn run_tool(
    docker: &Docker,
    project: &str,
    volume: &str,
    image: &str,
    script: &str,
    input: &[u8],
) -> Result<Vec<u8>> {
    let wrapped = format!("({script}) >/hoist-out 2>/hoist-err");
    let helper = Helper::create_running(docker, project, volume, image, &wrapped).await?;
    let result = async {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(input.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, "hoist-in", input)?;
        let tar = tar.into_inner()?;
        helper
            .docker
            .upload_to_container(
                &helper.id,
                Some(UploadToContainerOptions {
                    path: "/".to_string(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .context("giving the tool its input")?;
        helper
            .docker
            .start_container(&helper.id, None)
            .await
            .context("starting the tool")?;
        let mut wait = helper
            .docker
            .wait_container(&helper.id, None::<WaitContainerOptions>);
        let code = match wait.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(anyhow::Error::new(e).context("waiting for the tool")),
            None => bail!("the tool's container gave no exit status"),
        };
        if code != 0 {
            let err = read_file(&helper, "/hoist-err").await.unwrap_or_default();
            return Err(anyhow::Error::new(ToolFailed {
                code,
                stderr: String::from_utf8_lossy(&err).trim().to_string(),
            }));
        }
        read_file(&helper, "/hoist-out").await
    }
    .await;
    let _ = helper.remove().await;
    result
}

/// A tool script that exited with `code`.
#[derive(Debug)]
pub struct ToolFailed {
    pub code: i64,
    pub stderr: String,
}

impl std::fmt::Display for ToolFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.code)?;
        if !self.stderr.is_empty() {
            write!(f, ": {}", self.stderr)?;
        }
        Ok(())
    }
}

impl std::error::Error for ToolFailed {}

/// A file of the helper's own filesystem (not the volume's), whole.
async fn read_file(helper: &Helper, path: &str) -> Result<Vec<u8>> {
    let mut stream = helper.docker.download_from_container(
        &helper.id,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    let mut tar_bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar_bytes.extend_from_slice(&chunk.with_context(|| format!("reading {path}"))?);
    }
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut entries = archive.entries()?;
    let mut entry = entries
        .next()
        .with_context(|| format!("{path}: an empty archive"))??;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut out)?;
    Ok(out)
}

/// Removes the helper containers an interrupted earlier run of `project` left on the machine
/// (they hold no data: the volumes they served are never removed with them).
pub async fn remove_leftovers(docker: &Docker, project: &str) -> Result<()> {
    let leftovers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![
                    format!("{}={project}", labels::PROJECT),
                    format!("{}={HELPER_ROLE}", labels::ROLE),
                ],
            )])),
            ..Default::default()
        }))
        .await
        .context("listing leftover volume helpers")?;
    for c in leftovers {
        if let Some(id) = c.id {
            remove_helper(docker, &id).await?;
        }
    }
    Ok(())
}

/// Removes a helper with the anonymous volumes its image may have declared (`VOLUME` lines
/// make the engine create some); the named volume it served is never removed.
async fn remove_helper(docker: &Docker, id: &str) -> Result<()> {
    match docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if ops::status_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(e).context("removing a volume helper container"),
    }
}

/// An image to create a helper from on this machine: one a user of the volume runs, else any.
pub async fn helper_image(docker: &Docker, users: &[User]) -> Result<String> {
    if let Some(u) = users.iter().find(|u| !u.image_id.is_empty()) {
        return Ok(u.image_id.clone());
    }
    let images = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .context("listing images")?;
    images
        .into_iter()
        .map(|i| i.id)
        .next()
        .context("the machine has no image at all to create a helper container from; deploy the service there first (hoist up)")
}

/// Creates `volume` labelled for `project` unless it exists.
pub async fn ensure(docker: &Docker, project: &str, volume: &str) -> Result<bool> {
    if docker.inspect_volume(volume).await.is_ok() {
        return Ok(false);
    }
    ops::ensure_volume(docker, volume, project, &json!({})).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_not_data() {
        let l = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(is_data_volume(&l(&[(labels::PROJECT, "shop")])));
        assert!(is_data_volume(&l(&[
            (labels::PROJECT, "shop"),
            ("com.example.tier", "db")
        ])));
        assert!(!is_data_volume(&l(&[
            (labels::PROJECT, "shop"),
            ("io.hoist.lock.holder", "me")
        ])));
        assert!(!is_data_volume(&l(&[
            (labels::PROJECT, "shop"),
            ("io.hoist.scale.replicas", "3")
        ])));
        assert!(!is_data_volume(&l(&[("com.example.tier", "db")])));
    }
}
