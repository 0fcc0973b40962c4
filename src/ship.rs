//! Ship images to machines without a registry: export the image once from the
//! local engine, then send each machine an archive that carries only the layers
//! it lacks, streamed into its engine's image load through the SSH tunnel.
//!
//! An image archive (`docker save`) lists its layers in `manifest.json`, in the
//! order of the config's `rootfs.diff_ids`. A machine "has" a layer when one of
//! its images has the same layers up to and including it (the same *chain ID*):
//! engines look a layer up by that chain before they read it from the archive, so
//! those layer files are left out.
//!
//! Engines come with one of two image stores, and each wants its own archive:
//! - the classic store (engines before 29 by default) loads `docker save`'s own
//!   format and names the image by its config digest;
//! - containerd's image store (engine 24+ with the containerd snapshotter, 29's
//!   default) fails a Docker-format archive with a layer left out ("failed to
//!   resolve layers"), but loads an OCI layout whose manifest names blobs it
//!   does not carry when their snapshot is there; it names the image by the
//!   manifest's digest. hoist writes that manifest itself, so it knows that
//!   digest before it sends anything.
//!
//! After the load the image is looked up by the ID its store gives it, so a wrong
//! or partial load is an error.

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{ImportImageOptions, ListImagesOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a machine's engine keeps images (`engine::Facts::containerd_image_store`,
/// `engine::Facts::podman`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Classic,
    Containerd,
    /// Podman's containers/storage. Its load refuses a `docker save` archive that lacks a
    /// layer file, even one it has; it takes an OCI layout and reuses the layers it holds
    /// without reading their blobs. It names the image by its config digest, as the classic
    /// store does.
    Podman,
}

impl Store {
    pub fn of(facts: &crate::engine::Facts) -> Store {
        if facts.podman {
            Store::Podman
        } else if facts.containerd_image_store {
            Store::Containerd
        } else {
            Store::Classic
        }
    }
}

/// An image exported from the local engine into a cached archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exported {
    pub reference: String,
    /// The local engine's ID for the image; names the cached archive.
    pub image_id: String,
    pub archive: PathBuf,
    /// Digest of the image config: the ID the classic store gives the image.
    pub config_id: String,
    /// The config's path inside the archive.
    config_file: String,
    /// In the config's `rootfs.diff_ids` order.
    pub layers: Vec<Layer>,
    /// The OCI manifest sent to containerd's store, and its digest: the ID that
    /// store gives the image.
    manifest: String,
    pub manifest_digest: String,
}

/// One layer of an exported image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Its path inside the archive.
    pub file: String,
    pub diff_id: String,
    /// Identifies this layer on top of all those below it: what engines look up.
    pub chain_id: String,
    /// Digest and media type of the file as it is (compressed or not).
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

impl Exported {
    /// The ID an engine with `store` gives this image once loaded.
    pub fn id_in(&self, store: Store) -> &str {
        match store {
            Store::Classic | Store::Podman => &self.config_id,
            Store::Containerd => &self.manifest_digest,
        }
    }
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

/// The image cache: `$HOIST_CACHE`, `$XDG_CACHE_HOME/hoist`, `~/.cache/hoist`, else
/// `/tmp/hoist-cache-<uid>`; always its `images` folder, mode 0700 and owned by this user
/// (issue 17, finding 15: a shared `/tmp/hoist-cache` let another user plant archives or
/// symlinks hoist would write through).
fn cache_dir() -> Result<PathBuf> {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let base = std::env::var_os("HOIST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hoist")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hoist")))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/hoist-cache-{uid}")));
    let dir = base.join("images");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating the image cache {}", dir.display()))?;
    for d in [&base, &dir] {
        let meta = std::fs::symlink_metadata(d)
            .with_context(|| format!("reading the image cache {}", d.display()))?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            bail!(
                "the image cache {} is not a folder owned by this user that only it can write to; \
                 remove it, or set HOIST_CACHE to a private folder",
                d.display()
            );
        }
    }
    Ok(dir)
}

/// Is `path` an archive this user wrote (a plain file it owns, not a symlink)?
fn own_file(path: &Path) -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    let uid = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.uid() == uid)
}

/// Exports `reference` from the local engine and indexes its layers, both once
/// per image ID (the index is kept beside the archive).
pub async fn export(local: &Docker, reference: &str) -> Result<Exported> {
    let inspect = local.inspect_image(reference).await.with_context(|| {
        format!("image {reference} is not on the local engine; build or pull it first")
    })?;
    let image_id = inspect
        .id
        .clone()
        .context("the local engine gave no image ID")?;
    let dir = cache_dir()?;
    let id_hex = image_id.trim_start_matches("sha256:");
    if id_hex.is_empty() || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the local engine gave an odd image ID {image_id:?} for {reference}");
    }
    let archive = dir.join(format!("{id_hex}.tar"));
    let index = dir.join(format!("{id_hex}.index.json"));
    if own_file(&archive)
        && own_file(&index)
        && let Ok(text) = std::fs::read(&index)
        && let Ok(mut cached) = serde_json::from_slice::<Exported>(&text)
    {
        cached.reference = reference.to_string();
        return Ok(cached);
    }
    if !own_file(&archive) {
        // A fresh name, created exclusively and never through a symlink.
        let partial = dir.join(format!(
            "{id_hex}.{}-{:x}.partial",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let written = async {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            let mut stream = local.export_image(reference);
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk.with_context(|| format!("exporting {reference}"))?)?;
            }
            file.sync_all()?;
            std::fs::rename(&partial, &archive)?;
            anyhow::Ok(())
        }
        .await;
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written?;
    }
    let path = archive.clone();
    let indexed = tokio::task::spawn_blocking(move || index_archive(&path))
        .await
        .context("indexing the archive panicked")?
        .with_context(|| format!("reading the archive of {reference} ({})", archive.display()))?;
    let exported = Exported {
        reference: reference.to_string(),
        image_id,
        archive,
        config_id: indexed.config_id,
        config_file: indexed.config_file,
        manifest_digest: sha256_id(indexed.manifest.as_bytes()),
        manifest: indexed.manifest,
        layers: indexed.layers,
    };
    // A cache: without it the next deploy reads the archive again.
    let _ = std::fs::write(&index, serde_json::to_vec(&exported)?);
    Ok(exported)
}

fn sha256_id(data: &[u8]) -> String {
    hex_id(&Sha256::digest(data))
}

fn hex_id(digest: &[u8]) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Chain IDs of a layer stack, as the image spec defines them: the first layer's
/// is its diff ID, each next one the digest of "<chain below> <its diff ID>".
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let chain = match out.last() {
            None => diff.clone(),
            Some(below) => sha256_id(format!("{below} {diff}").as_bytes()),
        };
        out.push(chain);
    }
    out
}

struct Indexed {
    config_id: String,
    config_file: String,
    layers: Vec<Layer>,
    manifest: String,
}

/// What a file in the archive is, seen while reading it once.
struct FileFacts {
    size: u64,
    digest: String,
    /// The first bytes, to tell compressed layers from plain tars.
    head: Vec<u8>,
}

/// Reads an archive once: manifest.json, the image config, and each file's
/// digest; builds the OCI manifest for containerd's store.
fn index_archive(path: &Path) -> Result<Indexed> {
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut facts: BTreeMap<String, FileFacts> = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path)?);
    for entry in ar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let size = entry.size();
        let keep = name.ends_with(".json") || size < 1 << 20;
        let mut hasher = Sha256::new();
        let mut head = Vec::new();
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if head.len() < 8 {
                head.extend_from_slice(&buf[..n.min(8 - head.len())]);
            }
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        if keep {
            small.insert(name.clone(), kept);
        }
        facts.insert(
            name,
            FileFacts {
                size,
                digest: hex_id(&hasher.finalize()),
                head,
            },
        );
    }
    let manifest: Value = serde_json::from_slice(
        small
            .get("manifest.json")
            .context("archive has no manifest.json")?,
    )?;
    let first = manifest.get(0).context("empty manifest.json")?;
    let config_file = first
        .get("Config")
        .and_then(Value::as_str)
        .context("manifest without Config")?
        .to_string();
    let config_bytes = small
        .get(&config_file)
        .context("archive lacks the image config")?;
    let config: Value = serde_json::from_slice(config_bytes)?;
    let diff_ids: Vec<String> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .context("config without rootfs.diff_ids")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let files: Vec<String> = first
        .get("Layers")
        .and_then(Value::as_array)
        .context("manifest without Layers")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if files.len() != diff_ids.len() {
        bail!(
            "archive manifest lists {} layers but the config {}",
            files.len(),
            diff_ids.len()
        );
    }
    let chains = chain_ids(&diff_ids);
    let mut layers = Vec::with_capacity(files.len());
    for ((file, diff_id), chain_id) in files.into_iter().zip(diff_ids).zip(chains) {
        let f = facts
            .get(&file)
            .with_context(|| format!("archive lacks the layer file {file}"))?;
        layers.push(Layer {
            media_type: layer_media_type(&f.digest, &diff_id, &f.head).to_string(),
            digest: f.digest.clone(),
            size: f.size,
            file,
            diff_id,
            chain_id,
        });
    }
    let oci_manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256_id(config_bytes),
            "size": config_bytes.len(),
        },
        "layers": layers.iter().map(|l| json!({
            "mediaType": l.media_type, "digest": l.digest, "size": l.size,
        })).collect::<Vec<_>>(),
    });
    Ok(Indexed {
        config_id: sha256_id(config_bytes),
        config_file,
        layers,
        manifest: serde_json::to_string(&oci_manifest)?,
    })
}

/// A layer file is a plain tar when its digest is its diff ID; else it is
/// compressed, and its first bytes say how.
fn layer_media_type(digest: &str, diff_id: &str, head: &[u8]) -> &'static str {
    if digest == diff_id {
        "application/vnd.oci.image.layer.v1.tar"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
}

/// The chain IDs of every layer stack the machine's images stand on: a layer
/// whose chain is here need not travel.
pub async fn chains_on(docker: &Docker) -> Result<HashSet<String>> {
    let images = docker
        .list_images(Some(ListImagesOptions::default()))
        .await?;
    let inspects =
        futures_util::future::join_all(images.iter().map(|i| docker.inspect_image(&i.id))).await;
    let mut set = HashSet::new();
    for inspect in inspects.into_iter().flatten() {
        if let Some(layers) = inspect.root_fs.and_then(|r| r.layers) {
            set.extend(chain_ids(&layers));
        }
    }
    Ok(set)
}

/// Sends `image` to one machine with only the layers it lacks, in the archive
/// format its `store` loads, then checks the image is there under its ID.
pub async fn ship_to(
    image: &Exported,
    machine: &str,
    docker: &Docker,
    on_bytes: Arc<AtomicU64>,
    store: Store,
) -> Result<Shipped> {
    let id = image.id_in(store);
    if let Ok(i) = docker.inspect_image(id).await
        && i.id.as_deref() == Some(id)
    {
        // Present under its ID; make sure the tag points at it too.
        tag(docker, image, id, store).await?;
        return Ok(Shipped {
            machine: machine.to_string(),
            bytes_sent: 0,
            layers_sent: 0,
            layers_skipped: image.layers.len(),
            already_present: true,
        });
    }
    let present = chains_on(docker)
        .await
        .with_context(|| format!("{machine}: listing the layers it has"))?;
    let skip: HashSet<String> = image
        .layers
        .iter()
        .filter(|l| present.contains(&l.chain_id))
        .map(|l| l.file.clone())
        .collect();
    let layers_skipped = image
        .layers
        .iter()
        .filter(|l| skip.contains(&l.file))
        .count();
    let layers_sent = image.layers.len() - layers_skipped;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let counter = on_bytes.clone();
    let writer = {
        let image = image.clone();
        tokio::task::spawn_blocking(move || {
            let sink = ChannelWriter {
                tx,
                counter,
                sent: 0,
            };
            match store {
                Store::Classic => write_thin(&image.archive, &skip, sink),
                Store::Containerd | Store::Podman => write_oci(&image, &skip, sink),
            }
        })
    };
    let mut load = docker.import_image_stream(
        ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        tokio_stream_from(rx),
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
    let sent = writer.await.context("archive writer panicked")?;
    if let Some(e) = load_error {
        bail!("{machine}: loading {} failed: {e}", image.reference);
    }
    let sent = sent.with_context(|| format!("{machine}: sending {}", image.reference))?;
    let loaded = docker.inspect_image(id).await.with_context(|| {
        format!(
            "{machine}: {} missing after load (expected it as {id} in the engine's {} image store)",
            image.reference,
            match store {
                Store::Classic => "classic",
                Store::Containerd => "containerd",
                Store::Podman => "Podman",
            }
        )
    })?;
    if loaded.id.as_deref() != Some(id) {
        bail!(
            "{machine}: the image loaded as {} has ID {}, not the {id} that was sent; run `hoist up` \
             again to ship it anew, and check the machine's disk and engine log if it repeats",
            image.reference,
            loaded.id.as_deref().unwrap_or("(none)"),
        );
    }
    tag(docker, image, id, store).await?;
    Ok(Shipped {
        machine: machine.to_string(),
        bytes_sent: sent,
        layers_sent,
        layers_skipped,
        already_present: false,
    })
}

async fn tag(docker: &Docker, image: &Exported, id: &str, store: Store) -> Result<()> {
    if image.reference.starts_with("sha256:") {
        return Ok(());
    }
    let (repo, tag) = match image.reference.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (image.reference.clone(), "latest".to_string()),
    };
    let repo = match store {
        Store::Podman => podman_local_name(&repo),
        _ => repo,
    };
    docker
        .tag_image(
            id,
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some(repo),
                tag: Some(tag),
            }),
        )
        .await
        .with_context(|| format!("tagging {}", image.reference))
}

/// The name Podman gives a loaded image whose repository names no registry (`app` →
/// `localhost/app`, as `podman load` does), which is also where it looks a short name up
/// first. Tagged through the Docker API it would become `docker.io/app`, and Podman reports a
/// repository digest for every image it holds: hoist would take a shipped image for a Docker
/// Hub one and try to pin it there (src/pipeline/pin.rs).
fn podman_local_name(repo: &str) -> String {
    let first = repo.split('/').next().unwrap_or("");
    let names_registry =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if names_registry {
        repo.to_string()
    } else {
        format!("localhost/{repo}")
    }
}

/// Copies the archive (`docker save`'s format, for the classic store), leaving
/// out the files in `skip`. Returns the bytes written.
fn write_thin(archive: &Path, skip: &HashSet<String>, sink: ChannelWriter) -> Result<u64> {
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
    Ok(out.into_inner()?.sent)
}

/// Writes an OCI image layout (for containerd's store): hoist's manifest, the
/// config, and the layers not in `skip`, as blobs named by their digest. The
/// index names no image: `tag` names it after the load. Returns the bytes written.
fn write_oci(image: &Exported, skip: &HashSet<String>, sink: ChannelWriter) -> Result<u64> {
    let mut out = tar::Builder::new(sink);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest_digest,
            "size": image.manifest.len(),
        }],
    });
    let blob = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let mut put = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut header, name, data)
    };
    put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    put("index.json", serde_json::to_string(&index)?.as_bytes())?;
    put(&blob(&image.manifest_digest), image.manifest.as_bytes())?;
    // One pass over the archive: the config and each layer to send, as blobs.
    let mut wanted: BTreeMap<&str, String> = image
        .layers
        .iter()
        .filter(|l| !skip.contains(&l.file))
        .map(|l| (l.file.as_str(), blob(&l.digest)))
        .collect();
    wanted.insert(&image.config_file, blob(&image.config_id));
    let mut input = tar::Archive::new(std::fs::File::open(&image.archive)?);
    for entry in input.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let Some(target) = wanted.remove(name.as_str()) else {
            continue;
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.size());
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut header, &target, &mut entry)?;
    }
    if let Some((file, _)) = wanted.into_iter().next() {
        bail!("{} lacks {file}", image.archive.display());
    }
    Ok(out.into_inner()?.sent)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_names_local_images_under_localhost() {
        assert_eq!(
            podman_local_name("hoist-test/app"),
            "localhost/hoist-test/app"
        );
        assert_eq!(podman_local_name("app"), "localhost/app");
        assert_eq!(podman_local_name("localhost/app"), "localhost/app");
        assert_eq!(
            podman_local_name("reg.example.com/team/app"),
            "reg.example.com/team/app"
        );
        assert_eq!(podman_local_name("reg:5000/app"), "reg:5000/app");
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(chains[1], sha256_id(format!("{a} {b}").as_bytes()));
        // The same layer on another base is another chain.
        assert_ne!(chain_ids(&[b.clone(), b.clone()])[1], chains[1]);
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(
            layer_media_type("sha256:1", "sha256:1", b"anything"),
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(
            layer_media_type("sha256:1", "sha256:2", &[0x1f, 0x8b, 8]),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            layer_media_type("sha256:1", "sha256:2", &[0x28, 0xb5, 0x2f, 0xfd]),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }

    /// A Docker-format archive as `docker save` writes it (engine 20.10): hoist's
    /// manifest names the config and each layer by digest, and the config's
    /// digest is the classic ID.
    #[test]
    fn indexes_a_docker_save_archive() {
        let dir = std::env::temp_dir().join(format!("hoist-ship-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let layer = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o644);
            b.append_data(&mut h, "hello", &b"hi\n"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let diff = sha256_id(&layer);
        let config =
            serde_json::to_vec(&json!({"rootfs": {"type": "layers", "diff_ids": [diff]}})).unwrap();
        let config_id = sha256_id(&config);
        let config_name = format!("{}.json", config_id.trim_start_matches("sha256:"));
        let manifest = serde_json::to_vec(&json!([{
            "Config": config_name, "RepoTags": ["app:1"], "Layers": ["abc/layer.tar"],
        }]))
        .unwrap();
        let path = dir.join("image.tar");
        {
            let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
            for (name, data) in [
                ("abc/layer.tar", &layer[..]),
                (config_name.as_str(), &config[..]),
                ("manifest.json", &manifest[..]),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, data).unwrap();
            }
            b.finish().unwrap();
        }
        let ix = index_archive(&path).unwrap();
        assert_eq!(ix.config_id, config_id);
        assert_eq!(ix.config_file, config_name);
        assert_eq!(ix.layers.len(), 1);
        assert_eq!(ix.layers[0].digest, diff);
        assert_eq!(ix.layers[0].chain_id, diff);
        assert_eq!(ix.layers[0].size, layer.len() as u64);
        let m: Value = serde_json::from_str(&ix.manifest).unwrap();
        assert_eq!(m["config"]["digest"], json!(config_id));
        assert_eq!(m["layers"][0]["digest"], json!(diff));
        assert_eq!(
            m["layers"][0]["mediaType"],
            json!("application/vnd.oci.image.layer.v1.tar")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 17, finding 15: a cache folder others can write to is refused, and archives are
    /// never written through a planted symlink.
    #[test]
    fn the_cache_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("hoist-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(base.join("images")).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        // The only test touching this variable.
        unsafe { std::env::set_var("HOIST_CACHE", &base) };
        let open = cache_dir();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(base.join("images"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let private = cache_dir();
        unsafe { std::env::remove_var("HOIST_CACHE") };
        assert!(format!("{:#}", open.unwrap_err()).contains("only it can write to"));
        let dir = private.unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("abc.tar")).unwrap();
        assert!(!own_file(&dir.join("abc.tar")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
