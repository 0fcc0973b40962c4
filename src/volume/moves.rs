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
use super::delta;
use crate::core::plan::VolumeMove;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
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

/// Copies every moved volume, verified, stopping the moving slots' source containers for as
/// short a time as it can. Where the service's image has `find`, `stat`, `sha256sum` and
/// `xargs` (busybox or GNU) on both machines, each volume is first copied while the service
/// runs (the pre-copy, checked against the target's checksums); then every source container
/// stops and only what changed since is sent ([`super::delta`]) and checked. Elsewhere the
/// service stops first and the whole volume is copied and read back.
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
    let size = |from: &str, volume: &str| {
        moves
            .iter()
            .find(|m| m.from == from)
            .and_then(|m| m.sizes.get(volume).copied())
    };
    // Helpers an interrupted earlier move left, once per machine (later ones run side by side).
    let mut machines: Vec<&str> = pairs.iter().flat_map(|(f, t, _)| [*f, *t]).collect();
    machines.sort();
    machines.dedup();
    for m in machines {
        data::remove_leftovers(engine(m)?, project)
            .await
            .with_context(|| format!("{m}: removing leftover volume helpers"))?;
    }
    // While the services run: the pre-copies.
    let mut pre = HashMap::new();
    for &(from, to, volume) in &pairs {
        say!("{from} → {to}: copying volume {volume} while its service runs");
        match precopy(engine(from)?, engine(to)?, project, volume).await {
            Ok(p) => {
                say!(
                    "{from} → {to}: volume {volume} pre-copied and checked ({}, {:.1}s, {:.0} MiB/s)",
                    crate::output::bytes(p.bytes),
                    p.took.as_secs_f64(),
                    rate(p.bytes, p.took)
                );
                pre.insert((from, to, volume), p);
            }
            Err(NoPrecopy::Fallback(why)) => {
                say!("{from} → {to}: volume {volume} is copied once its service has stopped: {why}")
            }
            Err(NoPrecopy::Failed(e)) => {
                return Err(explain(e, to, volume, size(from, volume)).context(format!(
                    "moving volume {volume} from {from} to {to}: the source is untouched and its replicas kept running; the copy on {to} is marked unfinished and never used"
                )));
            }
        }
    }
    // Stop, all at once: what is sent now must be the data at rest.
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
    for (from, to, volume) in pairs {
        let copied = async {
            let (src, dst) = (engine(from)?, engine(to)?);
            let finished = match pre.remove(&(from, to, volume)) {
                Some(p) => {
                    let began = Instant::now();
                    match finish(src, dst, project, volume, p).await {
                        Ok((delta, bytes, digest)) => {
                            say!(
                                "{from} → {to}: volume {volume}: {} changed since the pre-copy, sent and checked in {:.1}s with the service stopped",
                                crate::output::bytes(delta),
                                began.elapsed().as_secs_f64()
                            );
                            Some((bytes, digest))
                        }
                        // A full disk stays full: copying the whole volume again would only
                        // keep the service stopped longer before failing the same way.
                        Err(e) if is_disk_full(&e) => return Err(e),
                        Err(e) => {
                            say!("{from} → {to}: volume {volume}: sending the changes failed ({e:#}); copying it whole");
                            None
                        }
                    }
                }
                None => None,
            };
            let (bytes, digest) = match finished {
                Some(done) => done,
                None => {
                    say!("{from} → {to}: copying volume {volume}");
                    let (bytes, digest, _) = copy(src, dst, project, volume).await?;
                    (bytes, digest)
                }
            };
            Ok::<_, anyhow::Error>(Copied {
                volume: volume.to_string(),
                from: from.to_string(),
                to: to.to_string(),
                bytes,
                digest,
                took: stopped.at.elapsed(),
            })
        }
        .await;
        match copied {
            Ok(c) => {
                say!(
                    "{from} → {to}: volume {volume} copied and verified ({}; the service has been stopped {:.1}s)",
                    crate::output::bytes(c.bytes),
                    c.took.as_secs_f64(),
                );
                done.push(c);
            }
            Err(e) => {
                restart_sources(&stopped, engines).await;
                return Err(explain(e, to, volume, size(from, volume)).context(format!(
                    "moving volume {volume} from {from} to {to}: the source is untouched and its replicas run again there; the copy on {to} is marked unfinished and never used"
                )));
            }
        }
    }
    // Every copy verified: only now are the targets' copies the data. Marked finished one by
    // one as each was verified, a later failure would leave an earlier target's copy unmarked
    // while its service writes on at the source again.
    for c in &done {
        let cleared = engine(&c.to)?
            .remove_volume(
                &incoming_marker(&c.volume),
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await;
        if let Err(e) = cleared {
            restart_sources(&stopped, engines).await;
            return Err(anyhow::Error::new(e).context(format!(
                "{}: clearing the unfinished-copy marker of {}: the copy stays unused and the service runs where it was",
                c.to, c.volume
            )));
        }
    }
    Ok((stopped, done))
}

/// A tool's output as text. A name that is not UTF-8 is refused, not approximated: two such
/// names could become one and a change to either be missed (the caller copies whole).
fn text(out: Vec<u8>) -> Result<String> {
    String::from_utf8(out).map_err(|_| anyhow::anyhow!("a file name in the volume is not UTF-8"))
}

fn is_disk_full(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("no space left on device")
}

fn rate(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1048576.0 / took.as_secs_f64().max(0.001)
}

/// A full disk on the target, said as what it is and what to do.
fn explain(e: anyhow::Error, to: &str, volume: &str, size: Option<u64>) -> anyhow::Error {
    if is_disk_full(&e) {
        let need = size
            .map(|n| format!(" ({} to copy)", crate::output::bytes(n)))
            .unwrap_or_default();
        return e.context(format!(
            "{to} has no space left for volume {volume}{need}: free space on {to} (or give the volume's filesystem more room), or place the service on another machine, then run up again"
        ));
    }
    e
}

/// A volume copied while its service ran, checked, waiting for the changes since.
pub struct Precopied {
    /// The source machine's clock when the pre-copy began.
    since: i64,
    /// The image the tool containers run from (the service's own, on both machines).
    image: String,
    /// sha256 of every file as the pre-copy sent it (`./a/b` → hex), checked on the target.
    sums: BTreeMap<String, String>,
    bytes: u64,
    took: Duration,
}

/// Why a volume was not pre-copied.
enum NoPrecopy {
    /// The move can still copy it after the stop (the image lacks the tools, the data moved
    /// under the read).
    Fallback(String),
    /// The target failed (gone, full, refusing): the move fails, the service still runs.
    Failed(anyhow::Error),
}

/// Whether a tool run failed because the image cannot run the tools (no shell, or one of them
/// missing), not because the machine failed.
fn lacks_tools(e: &anyhow::Error) -> bool {
    if let Some(t) = e.downcast_ref::<data::ToolFailed>() {
        return matches!(t.code, 3 | 126 | 127);
    }
    // The runtime's words for an image without /bin/sh (a machine that fails says other things).
    let text = format!("{e:#}");
    text.contains("executable file not found")
        || (text.contains("OCI runtime") && text.contains("no such file or directory"))
}

/// Copies `volume` from `src` to `dst` while its service runs, then checks the target's files
/// against what was sent. The unfinished-copy marker stays on.
async fn precopy(
    src: &Docker,
    dst: &Docker,
    project: &str,
    volume: &str,
) -> std::result::Result<Precopied, NoPrecopy> {
    use NoPrecopy::{Failed, Fallback};
    let began = Instant::now();
    create_marker(dst, project, volume)
        .await
        .context("marking the target copy unfinished")
        .map_err(Failed)?;
    let users = data::users(src, volume).await.map_err(Failed)?;
    let Some(image) = users
        .iter()
        .find(|u| !u.image_id.is_empty())
        .map(|u| u.image_id.clone())
    else {
        return Err(Fallback(
            "no container of the service lends its image for the tools".into(),
        ));
    };
    if dst.inspect_image(&image).await.is_err() {
        return Err(Fallback("the service's image is not on the target".into()));
    }
    // The source's clock (and whether its image has the tools), and the target's tools.
    let (on_src, on_dst) = tokio::join!(
        data::run_tool(src, project, volume, &image, delta::LIST, b""),
        data::run_tool(dst, project, volume, &image, delta::LIST, b""),
    );
    let listing = match on_src {
        Ok(out) => text(out).and_then(|t| delta::parse_listing(&t)),
        Err(e) if lacks_tools(&e) => {
            return Err(Fallback(format!(
                "the service's image lacks what a copy while it runs needs (sh, find, stat, sha256sum, xargs): {e:#}"
            )));
        }
        Err(e) => return Err(Fallback(format!("listing the source: {e:#}"))),
    };
    let since = match listing {
        Ok(l) => l.clock,
        Err(e) => return Err(Fallback(format!("{e:#}"))),
    };
    match on_dst {
        Ok(_) => {}
        Err(e) if lacks_tools(&e) => {
            return Err(Fallback(format!(
                "the service's image cannot run the tools on the target: {e:#}"
            )));
        }
        Err(e) => return Err(Failed(e.context("running a tool on the target"))),
    }
    let from = Helper::create_only(src, project, volume, &image)
        .await
        .map_err(Failed)?;
    let to = match Helper::create_only(dst, project, volume, &image).await {
        Ok(h) => h,
        Err(e) => {
            let _ = from.remove().await;
            return Err(Failed(e));
        }
    };
    let result = async {
        let emptied = match to.first_entry().await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => to
                .clear()
                .await
                .context("emptying an unfinished earlier copy"),
            Err(e) => Err(e),
        };
        emptied.map_err(Failed)?;
        let (digest_tx, digest) = digester(None);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
        let upload = to.write(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let pump = async {
            let mut stream = from.read();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    // The running service changed a file under the read, or the source failed:
                    // the copy after the stop will say which.
                    Err(e) => {
                        let _ = tx
                            .send(Err(std::io::Error::other("the source stopped")))
                            .await;
                        return Err(Fallback(format!(
                            "reading the volume while it is written: {e}"
                        )));
                    }
                };
                bytes += chunk.len() as u64;
                let _ = digest_tx.send(chunk.clone()).await;
                if tx.send(Ok(chunk)).await.is_err() {
                    return Err(Failed(anyhow::anyhow!("the target engine stopped reading")));
                }
            }
            drop(tx);
            drop(digest_tx);
            Ok(bytes)
        };
        let (bytes, uploaded) = tokio::join!(pump, upload);
        let bytes = bytes?;
        uploaded
            .context("writing the target volume")
            .map_err(Failed)?;
        let (_, sent) = digest
            .await
            .map_err(|e| Failed(e.into()))?
            .map_err(|e| Fallback(format!("reading what was sent: {e:#}")))?;
        // The target's files, hashed where they are, against what was sent.
        let out = data::run_tool(dst, project, volume, &image, delta::HASH_ALL, b"")
            .await
            .context("hashing the copy on the target")
            .map_err(Failed)?;
        let there = text(out)
            .and_then(|t| delta::parse_sums(&t))
            .map_err(|e| Fallback(format!("{e:#}")))?;
        if there != sent {
            let differ = sent
                .iter()
                .filter(|(p, s)| there.get(*p) != Some(s))
                .map(|(p, _)| p.as_str())
                .chain(
                    there
                        .keys()
                        .filter(|p| !sent.contains_key(*p))
                        .map(|p| p.as_str()),
                )
                .take(3)
                .collect::<Vec<_>>()
                .join(", ");
            // Copied whole after the stop instead, with its read-back check.
            return Err(Fallback(format!(
                "the target's checksums after the pre-copy differ from what was sent ({differ})"
            )));
        }
        Ok((bytes, sent))
    }
    .await;
    let _ = from.remove().await;
    let _ = to.remove().await;
    let (bytes, sums) = result?;
    Ok(Precopied {
        since,
        image,
        sums,
        bytes,
        took: began.elapsed(),
    })
}

/// With the service stopped: lists both sides, sends what changed since the pre-copy, and
/// checks that the target now holds the source's tree (every path's kind, mode, owner, size
/// and mtime) and the changed files' checksums. Returns the bytes of the changes, the bytes of
/// the volume and a digest of its content (every path's metadata and every file's sha256).
async fn finish(
    src: &Docker,
    dst: &Docker,
    project: &str,
    volume: &str,
    pre: Precopied,
) -> Result<(u64, u64, String)> {
    let image = &pre.image;
    let (ls, lt) = tokio::join!(
        data::run_tool(src, project, volume, image, delta::LIST, b""),
        data::run_tool(dst, project, volume, image, delta::LIST, b""),
    );
    let source = delta::parse_listing(&text(ls.context("listing the source")?)?)?;
    let target = delta::parse_listing(&text(lt.context("listing the target")?)?)?;
    let d = delta::delta(&source, &target, pre.since);
    if d.is_empty() {
        // Nothing changed since the pre-copy, whose content was checked: the trees must match.
        delta::same_tree(&source, &target)
            .map_err(|why| anyhow::anyhow!("the copy is not the source's tree: {why}"))?;
        return Ok((0, volume_bytes(&source), content_digest(&source, pre.sums)));
    }
    if !d.remove.is_empty() {
        data::run_tool(
            dst,
            project,
            volume,
            image,
            delta::REMOVE_LISTED,
            &delta::nul_list(&d.remove),
        )
        .await
        .context("removing what the source no longer has")?;
    }
    let from = Helper::create_only(src, project, volume, image).await?;
    let to = match Helper::create_only(dst, project, volume, image).await {
        Ok(h) => h,
        Err(e) => {
            let _ = from.remove().await;
            return Err(e);
        }
    };
    // The changed paths, one stream each, digested on the way (the source is at rest now).
    let sent = async {
        if !d.dirs.is_empty() {
            let headers = Bytes::from(dir_headers(&d.dirs)?);
            to.write(futures_util::stream::once(async move { Ok(headers) }))
                .await
                .context("setting directories' modes and owners")?;
        }
        // Several paths in flight at once: each is a request of its own to both engines, and
        // a delta of many small files would otherwise cost their count in round trips. No
        // order is needed: a new directory travels whole, so every parent already exists.
        let sends = futures_util::stream::iter(d.copy.iter())
            .map(|path| {
                let (from, to) = (&from, &to);
                async move {
                    let parent = match path.rfind('/') {
                        Some(i) => &path[..i],
                        None => ".",
                    };
                    let (digest_tx, digest) = digester(Some(parent.to_string()));
                    let (tx, mut rx) =
                        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
                    let upload = to.write_at(
                        parent,
                        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
                    );
                    // Source → target and the digester; both senders dropped at the end, so
                    // the upload's body and the digest end when the source does.
                    let pump = async move {
                        let mut stream = from.read_path(path);
                        while let Some(chunk) = stream.next().await {
                            let chunk = chunk.with_context(|| format!("reading {path}"))?;
                            let _ = digest_tx.send(chunk.clone()).await;
                            if tx.send(Ok(chunk)).await.is_err() {
                                bail!("the target engine stopped reading {path}");
                            }
                        }
                        Ok::<_, anyhow::Error>(())
                    };
                    let (pumped, uploaded) = tokio::join!(pump, upload);
                    uploaded.with_context(|| format!("sending {path}"))?;
                    pumped?;
                    let (_, sums) = digest.await??;
                    Ok::<_, anyhow::Error>(sums)
                }
            })
            .buffer_unordered(SENDS_IN_FLIGHT);
        let mut sent = BTreeMap::new();
        futures_util::pin_mut!(sends);
        while let Some(sums) = sends.next().await {
            sent.extend(sums?);
        }
        Ok::<_, anyhow::Error>(sent)
    }
    .await;
    let _ = from.remove().await;
    let _ = to.remove().await;
    let sent = sent?;
    // The check, on the target: its tree is the source's, the changed files' content too.
    let files = d.files(&source);
    let out = data::run_tool(
        dst,
        project,
        volume,
        image,
        delta::LIST_THEN_HASH_LISTED,
        &delta::nul_list(&files),
    )
    .await
    .context("checking the target")?;
    let out = text(out)?;
    let (listing, sums) = out.split_once("\n\n").unwrap_or((&out, ""));
    let after = delta::parse_listing(listing)?;
    let there = delta::parse_sums(sums)?;
    delta::same_tree(&source, &after)
        .map_err(|why| anyhow::anyhow!("the copy is not the source's tree: {why}"))?;
    let expected: BTreeMap<String, String> = files
        .iter()
        .filter_map(|f| sent.get(f).map(|s| (f.clone(), s.clone())))
        .collect();
    if expected.len() != files.len() || there != expected {
        bail!("checksum mismatch: the changed files differ on the target from what was sent");
    }
    let mut sums = pre.sums;
    sums.extend(expected);
    Ok((
        d.bytes(&source),
        volume_bytes(&source),
        content_digest(&source, sums),
    ))
}

/// Changed paths sent at once after the stop ([`finish`]).
const SENDS_IN_FLIGHT: usize = 8;

fn volume_bytes(l: &delta::Listing) -> u64 {
    l.paths
        .values()
        .filter(|e| e.kind == delta::Kind::File)
        .map(|e| e.size)
        .sum()
}

/// A digest of a volume at rest: every path's kind, mode, owner and size, and every file's
/// mtime and sha256 (`sums`: the pre-copy's, the changes' over them).
fn content_digest(source: &delta::Listing, sums: BTreeMap<String, String>) -> String {
    let mut all = Sha256::new();
    for (path, e) in &source.paths {
        all.update(
            format!(
                "{path}|{:?}|{}|{}:{}|{}",
                e.kind, e.mode, e.uid, e.gid, e.size
            )
            .as_bytes(),
        );
        if let Some(s) = sums.get(path) {
            all.update(format!("|{}|{s}", e.mtime).as_bytes());
        }
        all.update(b"\n");
    }
    super::archive::hex(&all.finalize())
}

/// A tar of directory entries alone (under the helper's mount), to set their modes and owners
/// without touching what they hold.
fn dir_headers(dirs: &[(String, delta::Entry)]) -> std::result::Result<Vec<u8>, std::io::Error> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, e) in dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(u32::from_str_radix(&e.mode, 8).unwrap_or(0o755));
        h.set_uid(e.uid.into());
        h.set_gid(e.gid.into());
        h.set_mtime(e.mtime.max(0) as u64);
        h.set_size(0);
        let name = match path.as_str() {
            "." => format!("{}/", super::archive::ROOT),
            p => format!("{}/{}", super::archive::ROOT, p.trim_start_matches("./")),
        };
        tar.append_data(&mut h, name, std::io::empty())?;
    }
    tar.into_inner()
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
/// marker on, target emptied if a cut copy left anything, stream, read back, compare. The
/// caller takes the marker off. Returns the bytes streamed, the content digest and the time
/// taken.
async fn copy(
    src: &Docker,
    dst: &Docker,
    project: &str,
    volume: &str,
) -> Result<(u64, String, Duration)> {
    let began = Instant::now();
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
        let (digest_tx, digest) = digester(None);
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
        let (source_digest, _) = digest.await.context("digesting the source")??;
        // Read the target back: the copy counts only if its content is the source's.
        let (back_tx, back_digest) = digester(None);
        let mut stream = to.read();
        while let Some(chunk) = stream.next().await {
            let _ = back_tx
                .send(chunk.context("reading the target volume back")?)
                .await;
        }
        drop(back_tx);
        let (target_digest, _) = back_digest.await.context("digesting the target")??;
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
    Ok((bytes, digest, began.elapsed()))
}

/// A digest of a tar stream's content, independent of how the tar was encoded: per entry, its
/// path, type, mode, owner, size, link target and the sha256 of its bytes (and the mtime of
/// files), and the sha256 of each file by its path in the volume (`./a/b`). Fed with chunks;
/// the task answers when the sender is dropped.
/// `parent`: for a stream of one path ([`Helper::read_path`]), the directory its entries are
/// relative to (`./a`, or `.`); `None` for a whole volume's stream (entries under
/// `hoist-volume/`).
fn digester(
    parent: Option<String>,
) -> (
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<Result<Digested>>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let task = tokio::task::spawn_blocking(move || {
        let digest = digest_tar(
            ChannelReader {
                rx: &mut rx,
                chunk: Bytes::new(),
            },
            parent.as_deref(),
        );
        // Drain what a tar reader leaves (the end-of-archive padding).
        while rx.blocking_recv().is_some() {}
        digest
    });
    (tx, task)
}

/// An entry's path as `find` in the volume names it: `hoist-volume/a/b` → `./a/b` in a whole
/// volume's stream, `b` under `./a` → `./a/b` in one path's stream ([`digester`]).
fn volume_path(entry: &str, parent: Option<&str>) -> String {
    let entry = entry.trim_end_matches('/');
    match parent {
        None => match entry.strip_prefix(super::archive::ROOT) {
            Some(rest) => format!(".{rest}"),
            None => entry.to_string(),
        },
        Some(dir) => format!("{dir}/{}", entry.trim_start_matches("./")),
    }
}

/// A tar stream's content digest, and each file's sha256 by its path in the volume.
type Digested = (String, BTreeMap<String, String>);

fn digest_tar(reader: impl std::io::Read, parent: Option<&str>) -> Result<Digested> {
    let mut archive = tar::Archive::new(reader);
    let mut all = Sha256::new();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
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
            // A hard link's bytes are its target's: the same sum under the link's name.
            if kind == tar::EntryType::Link
                && let Ok(Some(target)) = entry.link_name()
                && let Some(sum) = files.get(&volume_path(&target.to_string_lossy(), parent))
            {
                let path = volume_path(&entry.path()?.to_string_lossy(), parent);
                files.insert(path, sum.clone());
            }
            if kind.is_file() {
                line.push_str(&format!("|{}", h.mtime().unwrap_or(0)));
                let mut content = Sha256::new();
                std::io::copy(&mut entry, &mut HashWriter(&mut content))?;
                let sum = super::archive::hex(&content.finalize());
                line.push_str(&format!("|{sum}"));
                files.insert(volume_path(&entry.path()?.to_string_lossy(), parent), sum);
            }
            all.update(line.as_bytes());
            all.update(b"\n");
        }
    }
    Ok((super::archive::hex(&all.finalize()), files))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_headers_land_under_the_mount_with_their_modes_and_owners() {
        let e = |mode: &str, uid: u32| delta::Entry {
            kind: delta::Kind::Dir,
            size: 4096,
            mtime: 1000,
            ctime: 1000,
            mode: mode.into(),
            uid,
            gid: uid,
        };
        let tar_bytes =
            dir_headers(&[(".".into(), e("700", 999)), ("./a b".into(), e("755", 0))]).unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let got: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("hoist-volume/".to_string(), 0o700, 999),
                ("hoist-volume/a b".to_string(), 0o755, 0)
            ]
        );
    }

    #[test]
    fn a_hard_link_carries_its_targets_sum_under_its_own_name() {
        // The engine's archive writes a second name of an inode as a link entry of no size;
        // the target's `sha256sum` lists both names, so both must be in what was sent.
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "hoist-volume/a", &b"hello"[..])
            .unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_size(0);
        tar.append_link(&mut l, "hoist-volume/sub/b", "hoist-volume/a")
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        let (_, files) = digest_tar(&bytes[..], None).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files["./a"], files["./sub/b"]);
        assert_eq!(
            files["./a"],
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn entry_names_become_the_paths_find_prints() {
        assert_eq!(volume_path("hoist-volume/a/b", None), "./a/b");
        assert_eq!(volume_path("hoist-volume/", None), ".");
        assert_eq!(volume_path("b", Some("./a")), "./a/b");
        assert_eq!(volume_path("new/x", Some(".")), "./new/x");
        assert_eq!(volume_path("./c", Some(".")), "./c");
    }

    #[test]
    fn a_full_disk_is_said_with_machine_volume_and_size() {
        let e = anyhow::anyhow!("write /hoist-volume/blob: no space left on device");
        let said = format!("{:#}", explain(e, "m3", "shop_data", Some(8 << 20)));
        assert!(
            said.starts_with("m3 has no space left for volume shop_data (8MiB to copy)"),
            "{said}"
        );
        let other = format!("{:#}", explain(anyhow::anyhow!("refused"), "m3", "v", None));
        assert_eq!(other, "refused");
    }

    #[test]
    fn an_image_without_the_tools_is_told_from_a_failing_machine() {
        let missing = anyhow::Error::new(data::ToolFailed {
            code: 3,
            stderr: String::new(),
        });
        assert!(lacks_tools(&missing));
        assert!(lacks_tools(&anyhow::anyhow!(
            "OCI runtime create failed: exec: \"/bin/sh\": stat /bin/sh: no such file or directory: unknown"
        )));
        // A machine gone says "No such file or directory" about its socket: not the image's fault.
        assert!(!lacks_tools(&anyhow::anyhow!(
            "error trying to connect: No such file or directory (os error 2)"
        )));
    }
}
