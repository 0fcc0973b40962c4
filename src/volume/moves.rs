//! Stateful moves (`up --move-volumes`): a slot's named volumes copied from the machine it
//! leaves to the one it goes to, before the rollout starts it there.
//!
//! The plan lists them (`Plan::volume_moves`); this carries them out. For each volume: the
//! replicas that use it on the source are stopped (a consistent copy), a marker volume
//! `hoist-incoming-<volume>` is put on the target (so a copy cut short — hoist killed, the
//! target dead — is never taken for data: `pipeline::observed` ignores a volume with a marker),
//! the volume's files stream from the source engine to the target engine through hoist's own
//! connections, the target is read back and its content digest compared with the source's,
//! and the marker is removed. The rollout then starts the slot on the target behind its health
//! gate and removes the source container; the source volume is never touched. Whatever
//! fails, the source replicas are started again ([`restart_sources`]).

use super::data::{self, Helper};
use crate::core::plan::VolumeMove;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The marker volume that says `volume` on this machine is an unfinished copy.
pub fn incoming_marker(volume: &str) -> String {
    format!("hoist-incoming-{volume}")
}

/// The marker volume that says `volume` on this machine is the copy a move left behind: the
/// data went to another machine and lives on there, so this copy is older than the service's
/// and must never be taken for its data again (a later move back copies afresh, over it).
pub fn moved_marker(volume: &str) -> String {
    format!("hoist-moved-{volume}")
}

/// Whether a volume named `v` on a machine holding `volumes` is no data of the service: an
/// unfinished copy, or the copy a move left behind.
pub fn is_left_or_unfinished(v: &str, volumes: &[String]) -> bool {
    let (incoming, moved) = (incoming_marker(v), moved_marker(v));
    volumes.iter().any(|x| *x == incoming || *x == moved)
}

/// After the rollout: each copy whose slot now runs on its target (its source was not started
/// again) marks the source's volume as left behind, and its target's as current again.
/// `restarted`: the machines where [`restart_sources`] started a source replica again.
pub async fn mark_moved(
    copied: &[Copied],
    restarted: &[String],
    engines: &HashMap<String, Docker>,
    project: &str,
) -> Result<()> {
    let mut problems = Vec::new();
    for c in copied.iter().filter(|c| !restarted.contains(&c.from)) {
        if let Some(src) = engines.get(&c.from) {
            let labels = HashMap::from([
                (crate::labels::PROJECT.to_string(), project.to_string()),
                ("io.hoist.moved-to".to_string(), c.to.clone()),
            ]);
            if let Err(e) = src
                .create_volume(bollard::models::VolumeCreateRequest {
                    name: Some(moved_marker(&c.volume)),
                    labels: Some(labels),
                    ..Default::default()
                })
                .await
            {
                problems.push(format!(
                    "{}: marking the copy of {} left behind: {e}",
                    c.from, c.volume
                ));
            }
        }
        if let Some(dst) = engines.get(&c.to) {
            clear_moved_marker(dst, &c.volume).await;
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// Removes `volume`'s left-behind marker on this machine (it holds the current data again).
pub async fn clear_moved_marker(docker: &Docker, volume: &str) {
    let _ = docker
        .remove_volume(
            &moved_marker(volume),
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await;
}

/// Puts the unfinished-copy marker on every move's target before anything else happens there
/// (before the plan's step creates the target volume), so that no moment exists when an empty
/// or partial target volume could be taken for the data.
pub async fn mark_incoming(
    moves: &[VolumeMove],
    engines: &HashMap<String, Docker>,
    project: &str,
) -> Result<()> {
    for m in moves {
        let d = engines
            .get(&m.to)
            .with_context(|| format!("{}: no connection for the volume move", m.to))?;
        for v in &m.volumes {
            create_marker(d, project, v)
                .await
                .with_context(|| format!("{}: marking the copy of {v} unfinished", m.to))?;
        }
    }
    Ok(())
}

async fn create_marker(dst: &Docker, project: &str, volume: &str) -> Result<()> {
    dst.create_volume(bollard::models::VolumeCreateRequest {
        name: Some(incoming_marker(volume)),
        labels: Some(HashMap::from([(
            crate::labels::PROJECT.to_string(),
            project.to_string(),
        )])),
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// What one volume's copy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Copied {
    pub volume: String,
    pub from: String,
    pub to: String,
    pub bytes: u64,
    pub digest: String,
    pub took: Duration,
}

/// The source containers a set of moves stops, by machine: started again by
/// [`restart_sources`] when the moved slot did not come up on its target.
pub struct Stopped {
    pub containers: Vec<(String, String)>,
    pub at: Instant,
}

/// Stops the moving slots' source containers and copies every moved volume, verified.
/// `containers`: (machine, container id) of each move's source, from the plan.
pub async fn carry(
    moves: &[VolumeMove],
    containers: &[(String, String)],
    engines: &HashMap<String, Docker>,
    project: &str,
) -> Result<(Stopped, Vec<Copied>)> {
    let engine = |m: &str| {
        engines
            .get(m)
            .with_context(|| format!("{m}: no connection for the volume move"))
    };
    // Stop first, all at once: the copy must see the data at rest.
    let stops = containers
        .iter()
        .map(|(m, id)| async move { crate::apply::ops::stop(engine(m)?, id, None).await });
    let stopped = Stopped {
        containers: containers.to_vec(),
        at: Instant::now(),
    };
    for r in futures_util::future::join_all(stops).await {
        if let Err(e) = r {
            restart_sources(&stopped, engines).await;
            return Err(e.context("stopping a replica for its volume move"));
        }
    }
    let mut done = Vec::new();
    // One copy per (from, to, volume), even when several slots move together.
    let mut pairs: Vec<(&str, &str, &str)> = moves
        .iter()
        .flat_map(|m| {
            m.volumes
                .iter()
                .map(move |v| (m.from.as_str(), m.to.as_str(), v.as_str()))
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    for (from, to, volume) in pairs {
        say!("{from} → {to}: copying volume {volume}");
        let copied = async {
            copy(engine(from)?, engine(to)?, project, volume)
                .await
                .map(|(bytes, digest, took)| Copied {
                    volume: volume.to_string(),
                    from: from.to_string(),
                    to: to.to_string(),
                    bytes,
                    digest,
                    took,
                })
        }
        .await;
        match copied {
            Ok(c) => {
                say!(
                    "{from} → {to}: volume {volume} copied and verified ({}, {:.1}s, {:.0} MiB/s)",
                    crate::output::bytes(c.bytes),
                    c.took.as_secs_f64(),
                    c.bytes as f64 / 1048576.0 / c.took.as_secs_f64().max(0.001)
                );
                done.push(c);
            }
            Err(e) => {
                restart_sources(&stopped, engines).await;
                return Err(e.context(format!(
                    "moving volume {volume} from {from} to {to}: the source is untouched and its replicas run again there; the copy on {to} is marked unfinished and never used"
                )));
            }
        }
    }
    Ok((stopped, done))
}

/// Starts again the source containers that still exist (the rollout removes those whose
/// slot came up on the target): an interrupted or failed move leaves the service where it was.
/// Returns the machine of each container started again.
pub async fn restart_sources(stopped: &Stopped, engines: &HashMap<String, Docker>) -> Vec<String> {
    let mut started = Vec::new();
    for (m, id) in &stopped.containers {
        let Some(d) = engines.get(m) else { continue };
        let stopped = d
            .inspect_container(id, None)
            .await
            .is_ok_and(|c| c.state.as_ref().and_then(|s| s.running) != Some(true));
        if stopped && crate::apply::ops::start(d, id).await.is_ok() {
            started.push(m.clone());
        }
    }
    started
}

/// Copies `volume` from `src` to `dst` (created there beforehand by the plan's volume step):
/// marker on, target emptied if a cut copy left anything, stream, read back, compare, marker
/// off. Returns the bytes streamed, the content digest and the time taken.
async fn copy(
    src: &Docker,
    dst: &Docker,
    project: &str,
    volume: &str,
) -> Result<(u64, String, Duration)> {
    let began = Instant::now();
    let marker = incoming_marker(volume);
    // Already there (mark_incoming); made again in case it was removed meanwhile.
    create_marker(dst, project, volume)
        .await
        .context("marking the target copy unfinished")?;
    let users = data::users(src, volume).await?;
    let src_image = data::helper_image(src, &users).await?;
    let dst_image = data::helper_image(dst, &[]).await?;
    let from = Helper::create(src, project, volume, &src_image).await?;
    let to = match Helper::create(dst, project, volume, &dst_image).await {
        Ok(h) => h,
        Err(e) => {
            let _ = from.remove().await;
            return Err(e);
        }
    };
    let result = async {
        if to.first_entry().await?.is_some() {
            to.clear().await.context("emptying an unfinished earlier copy")?;
        }
        // Source → target, digesting what passes.
        let (digest_tx, digest) = digester();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        let mut rx = rx;
        let upload = to.write(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let pump = async {
            let mut stream = from.read();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.context("reading the source volume")?;
                bytes += chunk.len() as u64;
                let _ = digest_tx.send(chunk.clone()).await;
                if tx.send(Ok(chunk)).await.is_err() {
                    bail!("the target engine stopped reading");
                }
            }
            drop(tx);
            drop(digest_tx);
            Ok::<u64, anyhow::Error>(bytes)
        };
        let (bytes, uploaded) = tokio::join!(pump, upload);
        let bytes = bytes?;
        uploaded.context("writing the target volume")?;
        let source_digest = digest.await.context("digesting the source")??;
        // Read the target back: the copy counts only if its content is the source's.
        let (back_tx, back_digest) = digester();
        let mut stream = to.read();
        while let Some(chunk) = stream.next().await {
            let _ = back_tx
                .send(chunk.context("reading the target volume back")?)
                .await;
        }
        drop(back_tx);
        let target_digest = back_digest.await.context("digesting the target")??;
        if source_digest != target_digest {
            bail!(
                "checksum mismatch: the source's content digest is {source_digest}, the copy's {target_digest}"
            );
        }
        Ok((bytes, source_digest))
    }
    .await;
    let _ = from.remove().await;
    let _ = to.remove().await;
    let (bytes, digest) = result?;
    dst.remove_volume(
        &marker,
        None::<bollard::query_parameters::RemoveVolumeOptions>,
    )
    .await
    .context("clearing the unfinished-copy marker")?;
    Ok((bytes, digest, began.elapsed()))
}

/// A digest of a tar stream's content, independent of how the tar was encoded: per entry, its
/// path, type, mode, owner, size, link target and the sha256 of its bytes (and the mtime of
/// files). Fed with chunks; the task answers when the sender is dropped.
fn digester() -> (
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<Result<String>>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let task = tokio::task::spawn_blocking(move || {
        let digest = digest_tar(ChannelReader {
            rx: &mut rx,
            chunk: Bytes::new(),
        });
        // Drain what a tar reader leaves (the end-of-archive padding).
        while rx.blocking_recv().is_some() {}
        digest
    });
    (tx, task)
}

fn digest_tar(reader: impl std::io::Read) -> Result<String> {
    let mut archive = tar::Archive::new(reader);
    let mut all = Sha256::new();
    {
        for entry in archive.entries().context("reading a tar stream")? {
            let mut entry = entry.context("reading a tar entry")?;
            let h = entry.header().clone();
            let kind = h.entry_type();
            let mut line = format!(
                "{}|{:?}|{:o}|{}:{}|{}|{}",
                entry.path()?.display(),
                kind,
                h.mode().unwrap_or(0),
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
                h.size().unwrap_or(0),
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default()
            );
            if kind.is_file() {
                line.push_str(&format!("|{}", h.mtime().unwrap_or(0)));
                let mut content = Sha256::new();
                std::io::copy(&mut entry, &mut HashWriter(&mut content))?;
                line.push_str(&format!("|{}", super::archive::hex(&content.finalize())));
            }
            all.update(line.as_bytes());
            all.update(b"\n");
        }
    }
    Ok(super::archive::hex(&all.finalize()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A blocking `Read` over chunks arriving on a channel.
struct ChannelReader<'a> {
    rx: &'a mut tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl std::io::Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
