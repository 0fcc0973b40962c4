//! Ship images to machines without a registry: export the image once from the
//! local engine, then send each machine an archive that carries only the layers
//! it lacks, streamed into its engine's image load through the SSH tunnel.
//!
//! An image archive (`docker save`) lists its layers in `manifest.json`, in the
//! order of the config's `rootfs.diff_ids`. A machine "has" a layer when any of
//! its images lists that diff ID; those layer files are left out of its archive,
//! and the engine's load links the image to the layers it already holds. The
//! image ID is checked after the load, so a wrong or partial load is an error.

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{ImportImageOptions, ListImagesOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// An image exported from the local engine into a cached archive.
#[derive(Debug, Clone)]
pub struct Exported {
    pub reference: String,
    pub image_id: String,
    pub archive: PathBuf,
    /// Archive path of each layer file → its diff ID.
    pub layer_files: BTreeMap<String, String>,
    /// Size in bytes of each layer file by diff ID.
    pub layer_sizes: BTreeMap<String, u64>,
}

/// What one machine received.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    pub machine: String,
    /// Bytes sent through the tunnel (0 when the machine had the image).
    pub bytes_sent: u64,
    pub layers_sent: usize,
    pub layers_skipped: usize,
    pub already_present: bool,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("HOIST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hoist")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hoist")))
        .unwrap_or_else(|| PathBuf::from("/tmp/hoist-cache"))
        .join("images")
}

/// Exports `reference` from the local engine (once per image ID) and indexes its layers.
pub async fn export(local: &Docker, reference: &str) -> Result<Exported> {
    let inspect = local.inspect_image(reference).await.with_context(|| {
        format!("image {reference} is not on the local engine; build or pull it first")
    })?;
    let image_id = inspect
        .id
        .clone()
        .context("the local engine gave no image ID")?;
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let archive = dir.join(format!("{}.tar", image_id.trim_start_matches("sha256:")));
    if !archive.is_file() {
        let partial = archive.with_extension("partial");
        let mut file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut stream = local.export_image(reference);
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.with_context(|| format!("exporting {reference}"))?)?;
        }
        file.sync_all()?;
        std::fs::rename(&partial, &archive)?;
    }
    let (layer_files, layer_sizes) = index_archive(&archive)?;
    Ok(Exported {
        reference: reference.to_string(),
        image_id,
        archive,
        layer_files,
        layer_sizes,
    })
}

/// Reads manifest.json and the image config from an archive: layer file → diff ID.
fn index_archive(path: &Path) -> Result<(BTreeMap<String, String>, BTreeMap<String, u64>)> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path)?);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        sizes.insert(name.clone(), entry.size());
        if name == "manifest.json"
            || name.ends_with(".json")
            || name.starts_with("blobs/sha256/") && entry.size() < 1 << 20
        {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            files.insert(name, buf);
        }
    }
    let manifest: Value = serde_json::from_slice(
        files
            .get("manifest.json")
            .context("archive has no manifest.json")?,
    )?;
    let first = manifest.get(0).context("empty manifest.json")?;
    let config_name = first
        .get("Config")
        .and_then(Value::as_str)
        .context("manifest without Config")?;
    let config: Value = serde_json::from_slice(
        files
            .get(config_name)
            .context("archive lacks the image config")?,
    )?;
    let diff_ids: Vec<String> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .context("config without rootfs.diff_ids")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let layers: Vec<String> = first
        .get("Layers")
        .and_then(Value::as_array)
        .context("manifest without Layers")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if layers.len() != diff_ids.len() {
        bail!(
            "archive manifest lists {} layers but the config {}",
            layers.len(),
            diff_ids.len()
        );
    }
    let mut layer_files = BTreeMap::new();
    let mut layer_sizes = BTreeMap::new();
    for (file, diff) in layers.into_iter().zip(diff_ids) {
        layer_sizes.insert(diff.clone(), sizes.get(&file).copied().unwrap_or(0));
        layer_files.insert(file, diff);
    }
    Ok((layer_files, layer_sizes))
}

/// The diff IDs of every layer the machine's images use.
pub async fn layers_on(docker: &Docker) -> Result<HashSet<String>> {
    let images = docker
        .list_images(Some(ListImagesOptions::default()))
        .await?;
    let inspects =
        futures_util::future::join_all(images.iter().map(|i| docker.inspect_image(&i.id))).await;
    let mut set = HashSet::new();
    for inspect in inspects.into_iter().flatten() {
        if let Some(layers) = inspect.root_fs.and_then(|r| r.layers) {
            set.extend(layers);
        }
    }
    Ok(set)
}

/// Sends `image` to one machine with only the layers it lacks (all of them when
/// `whole`), then checks the ID.
pub async fn ship_to(
    image: &Exported,
    machine: &str,
    docker: &Docker,
    on_bytes: Arc<AtomicU64>,
    whole: bool,
) -> Result<Shipped> {
    if let Ok(i) = docker.inspect_image(&image.image_id).await
        && i.id.as_deref() == Some(image.image_id.as_str())
    {
        // Present under its ID; make sure the tag points at it too.
        tag(docker, image).await?;
        return Ok(Shipped {
            machine: machine.to_string(),
            bytes_sent: 0,
            layers_sent: 0,
            layers_skipped: image.layer_sizes.len(),
            already_present: true,
        });
    }
    // Engines on containerd's image store load layers by content digest from the
    // archive itself, so they get the whole archive (see `Facts::containerd_image_store`).
    let present = if whole {
        HashSet::new()
    } else {
        layers_on(docker)
            .await
            .with_context(|| format!("{machine}: listing layers"))?
    };
    let skip: HashSet<String> = image
        .layer_files
        .iter()
        .filter(|(_, diff)| present.contains(*diff))
        .map(|(file, _)| file.clone())
        .collect();
    let skipped_layers: HashSet<&String> = image
        .layer_files
        .iter()
        .filter(|(f, _)| skip.contains(*f))
        .map(|(_, d)| d)
        .collect();
    let layers_skipped = skipped_layers.len();
    let layers_sent = image.layer_sizes.len() - layers_skipped;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let archive = image.archive.clone();
    let counter = on_bytes.clone();
    let writer = tokio::task::spawn_blocking(move || write_thin(&archive, &skip, tx, counter));
    let body = tokio_stream_from(rx);
    let mut load = docker.import_image_stream(
        ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        body,
        None,
    );
    let mut load_error = None;
    while let Some(item) = load.next().await {
        match item {
            Ok(info) => {
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    load_error = Some(e);
                }
            }
            Err(e) => load_error = Some(e.to_string()),
        }
    }
    let sent = writer.await.context("archive writer panicked")??;
    if let Some(e) = load_error {
        bail!("{machine}: loading {} failed: {e}", image.reference);
    }
    let loaded = docker
        .inspect_image(&image.image_id)
        .await
        .with_context(|| format!("{machine}: {} missing after load", image.reference))?;
    if loaded.id.as_deref() != Some(image.image_id.as_str()) {
        bail!(
            "{machine}: the image loaded as {} has ID {}, not the {} that was sent; run `hoist up` \
             again to ship it anew, and check the machine's disk and engine log if it repeats",
            image.reference,
            loaded.id.as_deref().unwrap_or("(none)"),
            image.image_id
        );
    }
    tag(docker, image).await?;
    Ok(Shipped {
        machine: machine.to_string(),
        bytes_sent: sent,
        layers_sent,
        layers_skipped,
        already_present: false,
    })
}

async fn tag(docker: &Docker, image: &Exported) -> Result<()> {
    if image.reference.starts_with("sha256:") {
        return Ok(());
    }
    let (repo, tag) = match image.reference.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (image.reference.clone(), "latest".to_string()),
    };
    docker
        .tag_image(
            &image.image_id,
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some(repo),
                tag: Some(tag),
            }),
        )
        .await
        .with_context(|| format!("tagging {}", image.reference))
}

/// Copies the archive into the channel, leaving out the files in `skip`.
/// Returns the bytes written.
fn write_thin(
    archive: &Path,
    skip: &HashSet<String>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    counter: Arc<AtomicU64>,
) -> Result<u64> {
    let sink = ChannelWriter {
        tx,
        counter,
        sent: 0,
    };
    let mut out = tar::Builder::new(sink);
    let mut input = tar::Archive::new(std::fs::File::open(archive)?);
    for entry in input.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if skip.contains(&name) {
            continue;
        }
        let mut header = entry.header().clone();
        out.append_data(&mut header, &name, &mut entry)?;
    }
    let sink = out.into_inner()?;
    Ok(sink.sent)
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    counter: Arc<AtomicU64>,
    sent: u64,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the machine stopped reading the image",
                )
            })?;
        self.sent += buf.len() as u64;
        self.counter.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
