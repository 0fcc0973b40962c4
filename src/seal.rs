//! The sealing key on the machines: where it is kept, how it is read, chosen and copied.
//!
//! `core::seal` replaces every secret-bearing value of a recorded spec by an HMAC under a
//! per-project key. The key must be the same on every machine of the fleet (so every machine
//! and every computer that runs `hoist plan` computes the same spec hashes) and must live only
//! on the machines: never in a label, the plan, a log, or a file on the operator's computer.
//!
//! On each machine it is a file in a labelled volume `hoist-key-<project>`, readable only by
//! root (mode 0400), like the engine's own data under /var/lib/docker. The engine's API reads
//! a volume only through a container, so a container `hoist-key-<project>` that mounts it is
//! created from a one-directory image hoist imports (`hoist-keyholder:1`) and is never
//! started: the key is read and written with the archive API (`docker cp`). Nothing runs. The
//! container is labelled `io.hoist.sealing-key`, not `io.hoist.project`: it is no replica, and
//! what lists a project's containers never meets it.
//! Everything goes through the engine, so a machine reached as a non-root user in the
//! `docker` group, or the local engine, works the same.
//!
//! The key is read by `plan`, `up` and `watch` (with what they observe), chosen when machines
//! disagree (the key that sealed most of what runs wins), created by the first `up` of a project,
//! and copied by `up` to machines that lack it — each of these said in the plan.

use crate::core::seal::{KEY_LEN, SealKey};
use crate::engine::Connections;
use crate::labels;
use crate::observe::Observation;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    InspectContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};

/// `io.hoist.role` of the key's volume and holder container.
pub const ROLE: &str = "key";
/// The image the holder container is created from: one empty directory, imported by hoist.
const HOLDER_IMAGE: &str = "hoist-keyholder:1";
/// Where the volume is mounted in the holder, and the key file in it.
pub const MOUNT: &str = "/key";
const FILE: &str = "key";

/// The volume, and the container that mounts it, of `project`'s key.
pub fn holder_name(project: &str) -> String {
    format!("hoist-key-{project}")
}

/// What one machine holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// No key volume, or one without a key file (a write interrupted).
    Nothing,
    Key(SealKey),
    /// A key file that is not a key: why.
    Unreadable(String),
}

/// Each connected machine's key, or why it could not be read.
pub struct Found {
    pub machines: Vec<(String, Result<Held, String>)>,
}

/// Reads `project`'s key on every connected machine, in parallel.
pub async fn read_all(conns: &Connections, project: &str) -> Found {
    let reads = conns.engines().into_iter().map(|(m, d)| async move {
        let r = read(&d, project).await.map_err(|e| format!("{e:#}"));
        (m, r)
    });
    Found {
        machines: futures_util::future::join_all(reads).await,
    }
}

/// [`read_all`], each machine bounded by `within` (`hoist watch`): one that does not answer
/// in time comes back with an error saying so, and the others are read all the same.
pub async fn read_all_within(
    conns: &Connections,
    project: &str,
    within: std::time::Duration,
) -> Found {
    let reads = conns.engines().into_iter().map(|(m, d)| async move {
        let r = match tokio::time::timeout(within, read(&d, project)).await {
            Ok(r) => r.map_err(|e| format!("{e:#}")),
            Err(_) => Err(format!("no answer within {:.1}s", within.as_secs_f64())),
        };
        (m, r)
    });
    Found {
        machines: futures_util::future::join_all(reads).await,
    }
}

/// What `docker` holds of `project`'s key. A holder container lost to `docker container prune`
/// is made again from the volume (the volume is the key; the holder only reads it).
pub async fn read(docker: &Docker, project: &str) -> Result<Held> {
    let name = holder_name(project);
    if !holder_exists(docker, project).await? {
        match docker.inspect_volume(&name).await {
            Ok(_) => ensure_holder(docker, project).await?,
            Err(e) if crate::apply::ops::status_code(&e) == Some(404) => return Ok(Held::Nothing),
            Err(e) => return Err(e).with_context(|| format!("inspecting volume {name}")),
        }
    }
    let path = format!("{MOUNT}/{FILE}");
    let mut stream = docker.download_from_container(
        &name,
        Some(DownloadFromContainerOptions { path: path.clone() }),
    );
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => archive.extend_from_slice(&b),
            Err(e) if crate::apply::ops::status_code(&e) == Some(404) => return Ok(Held::Nothing),
            Err(e) => return Err(e).with_context(|| format!("reading {path} from {name}")),
        }
    }
    let mut text = String::new();
    let mut entries = tar::Archive::new(archive.as_slice());
    if let Some(entry) = entries.entries()?.next() {
        use std::io::Read;
        // A key is 65 bytes; read a little more so a larger file is seen as not a key.
        entry?.take(256).read_to_string(&mut text).ok();
    }
    Ok(match SealKey::from_text(&text) {
        Ok(k) => Held::Key(k),
        Err(e) => Held::Unreadable(e),
    })
}

/// Whether the holder exists; an object of that name that hoist did not make is an error.
async fn holder_exists(docker: &Docker, project: &str) -> Result<bool> {
    let name = holder_name(project);
    match docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => {
            let l = c.config.and_then(|c| c.labels).unwrap_or_default();
            if l.get(labels::ROLE).map(String::as_str) != Some(ROLE)
                || l.get(labels::SEALING_KEY).map(String::as_str) != Some(project)
            {
                bail!(
                    "a container named {name} exists that hoist did not create for project \
                     {project}; hoist keeps the project's sealing key there: rename it \
                     (`docker rename {name} NEW-NAME` on the machine), then run hoist again"
                );
            }
            Ok(true)
        }
        Err(e) if crate::apply::ops::status_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("inspecting container {name}")),
    }
}

/// Removes the holder container of `project`'s key (not the key: its volume), so that
/// `down --volumes` can remove the volume. Nothing to remove is fine.
pub async fn remove_holder(docker: &Docker, project: &str) -> Result<()> {
    if holder_exists(docker, project).await? {
        crate::apply::ops::remove(docker, &holder_name(project)).await?;
    }
    Ok(())
}

/// Creates the holder container (and its image) for the existing or new key volume.
async fn ensure_holder(docker: &Docker, project: &str) -> Result<()> {
    ensure_holder_image(docker).await?;
    let name = holder_name(project);
    let body = ContainerCreateBody {
        image: Some(HOLDER_IMAGE.to_string()),
        // Never started: the image has no program, and none is needed.
        cmd: Some(vec!["hoist-keyholder".to_string()]),
        labels: Some(HashMap::from([
            (labels::SEALING_KEY.to_string(), project.to_string()),
            (labels::ROLE.to_string(), ROLE.to_string()),
        ])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{name}:{MOUNT}")]),
            network_mode: Some("none".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    match docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
    {
        Ok(_) => Ok(()),
        // Made meanwhile by another hoist (a `plan` beside an `up`): the same thing.
        Err(e) if crate::apply::ops::status_code(&e) == Some(409) => {
            holder_exists(docker, project).await.map(|_| ())
        }
        Err(e) => Err(e).with_context(|| format!("creating container {name}")),
    }
}

/// The image of a never-started holder container ([`HOLDER_IMAGE`], one empty directory,
/// `/key`, to mount a volume on), imported unless the engine has it. The fleet's TLS
/// credentials (src/mesh/credentials.rs) are kept the same way.
pub async fn ensure_holder_image(docker: &Docker) -> Result<&'static str> {
    if docker.inspect_image(HOLDER_IMAGE).await.is_err() {
        import_holder_image(docker).await?;
    }
    Ok(HOLDER_IMAGE)
}

/// Imports the holder's image: a root filesystem with one empty directory, the mount point.
async fn import_holder_image(docker: &Docker) -> Result<()> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o700);
    h.set_size(0);
    builder.append_data(&mut h, MOUNT.trim_start_matches('/'), std::io::empty())?;
    let archive = builder.into_inner()?;
    let (repo, tag) = HOLDER_IMAGE.split_once(':').expect("a tagged name");
    let mut stream = docker.create_image(
        Some(CreateImageOptions {
            from_src: Some("-".to_string()),
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        }),
        Some(bollard::body_full(archive.into())),
        None,
    );
    while let Some(item) = stream.next().await {
        let message = match item {
            Err(e) => Some(e.to_string()),
            Ok(info) => info.error_detail.and_then(|d| d.message),
        };
        if let Some(e) = message {
            bail!("importing the key holder's image {HOLDER_IMAGE}: {e}");
        }
    }
    Ok(())
}

/// Writes `key` as `project`'s key on `docker` (creating its volume and holder), then reads it
/// back: a key that did not arrive intact is an error, never a silent new key later.
pub async fn store(docker: &Docker, project: &str, key: &SealKey) -> Result<()> {
    let name = holder_name(project);
    if let Err(e) = docker.inspect_volume(&name).await {
        if crate::apply::ops::status_code(&e) != Some(404) {
            return Err(e).with_context(|| format!("inspecting volume {name}"));
        }
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(HashMap::from([
                    (labels::PROJECT.to_string(), project.to_string()),
                    (labels::ROLE.to_string(), ROLE.to_string()),
                ])),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating volume {name}"))?;
    }
    if !holder_exists(docker, project).await? {
        ensure_holder(docker, project).await?;
    }
    let content = key.to_text();
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o400);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(content.len() as u64);
    builder.append_data(&mut h, FILE, content.as_bytes())?;
    let archive = builder.into_inner()?;
    docker
        .upload_to_container(
            &name,
            Some(UploadToContainerOptions {
                path: MOUNT.to_string(),
                ..Default::default()
            }),
            bollard::body_full(archive.into()),
        )
        .await
        .with_context(|| format!("writing the sealing key into volume {name}"))?;
    match read(docker, project).await? {
        Held::Key(k) if &k == key => Ok(()),
        _ => bail!("the sealing key written into volume {name} did not read back intact"),
    }
}

/// What a reachable machine holds, measured against the chosen key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    Holds,
    Missing,
    /// Another key, by ID.
    Other(String),
    Unreadable(String),
}

/// The key this plan seals with, and what each reachable machine holds.
#[derive(Debug, Clone)]
pub struct Sealing {
    pub key: SealKey,
    /// No reachable machine held a key: this one is new.
    pub created: bool,
    pub machines: Vec<(String, KeyState)>,
}

impl Sealing {
    /// The machines `up` must write the key to.
    pub fn to_store(&self) -> Vec<&str> {
        self.machines
            .iter()
            .filter(|(_, s)| *s != KeyState::Holds)
            .map(|(m, _)| m.as_str())
            .collect()
    }

    /// What `up` does with the key, for the plan: nothing when every machine holds it.
    pub fn lines(&self) -> Vec<String> {
        let id = self.key.id();
        if self.created {
            let lost = self
                .machines
                .iter()
                .filter_map(|(m, s)| match s {
                    KeyState::Unreadable(why) => Some(format!("{m}: {why}")),
                    _ => None,
                })
                .collect::<Vec<_>>();
            let note = if lost.is_empty() {
                String::new()
            } else {
                format!(" (no machine holds a readable key: {})", lost.join("; "))
            };
            // Its ID is not shown: `up` makes its own new key.
            return vec![format!(
                "+ sealing key: create a new one on {}{note}",
                self.to_store().join(", ")
            )];
        }
        self.machines
            .iter()
            .filter_map(|(m, s)| match s {
                KeyState::Holds => None,
                KeyState::Missing => Some(format!("+ sealing key@{m}: copy key {id}")),
                KeyState::Other(other) => Some(format!(
                    "~ sealing key@{m}: replace key {other} with {id} (the key most replicas \
                     were sealed with); replicas sealed with {other} are resealed"
                )),
                KeyState::Unreadable(why) => Some(format!(
                    "~ sealing key@{m}: unreadable ({why}); replaced with key {id}"
                )),
            })
            .collect()
    }
}

/// The key to seal with: of the keys the reachable machines hold, the one that sealed most of
/// the project's containers (then: held by most machines, then the smallest ID); a new one when
/// none holds a key. A machine that answered the observation but whose key could not be read
/// is an error (guessing would replace every replica).
pub fn choose(found: &Found, observation: &Observation) -> Result<Sealing> {
    let reachable: Vec<&str> = observation
        .machines
        .iter()
        .filter(|(_, s)| s.is_ok())
        .map(|(m, _)| m.as_str())
        .collect();
    let mut held: Vec<(&str, &Held)> = Vec::new();
    for m in &reachable {
        match found.machines.iter().find(|(x, _)| x == m) {
            Some((_, Ok(h))) => held.push((m, h)),
            Some((_, Err(e))) => bail!("{m}: cannot read the project's sealing key: {e}"),
            None => bail!("{m}: the project's sealing key was not read"),
        }
    }
    let mut sealed: BTreeMap<String, usize> = BTreeMap::new();
    for (_, state) in &observation.machines {
        let Ok(state) = state else { continue };
        for c in &state.containers {
            let seal = c
                .labels
                .get(labels::SPEC)
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| {
                    v.get(crate::core::spec::attr::SEAL)?
                        .as_str()
                        .map(str::to_string)
                });
            if let Some(id) = seal {
                *sealed.entry(id).or_default() += 1;
            }
        }
    }
    let mut candidates: Vec<(&SealKey, usize)> = Vec::new();
    for (_, h) in &held {
        if let Held::Key(k) = h {
            match candidates.iter_mut().find(|(c, _)| *c == k) {
                Some((_, n)) => *n += 1,
                None => candidates.push((k, 1)),
            }
        }
    }
    candidates.sort_by_key(|(k, machines)| {
        let id = k.id();
        (
            std::cmp::Reverse(sealed.get(&id).copied().unwrap_or(0)),
            std::cmp::Reverse(*machines),
            id,
        )
    });
    let (key, created) = match candidates.first() {
        Some((k, _)) => ((*k).clone(), false),
        None => (generate()?, true),
    };
    let machines = held
        .iter()
        .map(|(m, h)| {
            let state = match h {
                Held::Key(k) if *k == key => KeyState::Holds,
                Held::Key(k) => KeyState::Other(k.id()),
                Held::Nothing => KeyState::Missing,
                Held::Unreadable(why) => KeyState::Unreadable(why.clone()),
            };
            (m.to_string(), state)
        })
        .collect();
    Ok(Sealing {
        key,
        created,
        machines,
    })
}

/// A new random key from the operating system.
fn generate() -> Result<SealKey> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for a new sealing key: {e}"))?;
    Ok(SealKey::from_bytes(bytes))
}

/// Writes the chosen key on the machines that lack it (`Sealing::to_store`), in parallel.
pub async fn store_where_needed(
    engines: &[(String, Docker)],
    project: &str,
    sealing: &Sealing,
) -> Result<()> {
    let wanted = sealing.to_store();
    let writes = engines
        .iter()
        .filter(|(m, _)| wanted.contains(&m.as_str()))
        .map(|(m, d)| async move {
            store(d, project, &sealing.key)
                .await
                .with_context(|| format!("{m}: storing the project's sealing key"))
        });
    for r in futures_util::future::join_all(writes).await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::ContainerSpec;
    use crate::observe::{MachineState, SeenContainer};

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes([b; KEY_LEN])
    }

    fn sealed_with(k: &SealKey, n: usize) -> Vec<SeenContainer> {
        let spec = ContainerSpec::new().with("image", "app:1").sealed(k);
        (0..n)
            .map(|i| SeenContainer {
                id: format!("{}{i}", k.id()),
                name: format!("p-api-{i}"),
                service: "api".into(),
                slot: None,
                spec_hash: spec.hash(),
                release: String::new(),
                state: "running".into(),
                health: None,
                image: String::new(),
                image_id: String::new(),
                created: 0,
                status: String::new(),
                ports: Vec::new(),
                labels: [(labels::SPEC.to_string(), spec.canonical_json())].into(),
            })
            .collect()
    }

    fn observation(machines: Vec<(&str, Result<Vec<SeenContainer>, String>)>) -> Observation {
        Observation {
            machines: machines
                .into_iter()
                .map(|(m, r)| {
                    (
                        m.to_string(),
                        r.map(|containers| MachineState {
                            containers,
                            ..Default::default()
                        }),
                    )
                })
                .collect(),
        }
    }

    fn found(machines: Vec<(&str, Result<Held, String>)>) -> Found {
        Found {
            machines: machines
                .into_iter()
                .map(|(m, r)| (m.to_string(), r))
                .collect(),
        }
    }

    #[test]
    fn the_key_that_sealed_most_replicas_wins_and_the_others_are_told() {
        // m1 holds key 1 and one replica sealed with it; m2 and m3 hold key 2 but their three
        // replicas were sealed with key 1 (key 2 was written there by hand, say): key 1 wins.
        let obs = observation(vec![
            ("m1", Ok(sealed_with(&key(1), 1))),
            ("m2", Ok(sealed_with(&key(1), 2))),
            ("m3", Ok(sealed_with(&key(1), 1))),
            ("m4", Ok(vec![])),
            ("m5", Err("unreachable".into())),
        ]);
        let f = found(vec![
            ("m1", Ok(Held::Key(key(1)))),
            ("m2", Ok(Held::Key(key(2)))),
            ("m3", Ok(Held::Key(key(2)))),
            ("m4", Ok(Held::Nothing)),
        ]);
        let s = choose(&f, &obs).unwrap();
        assert_eq!(s.key, key(1));
        assert!(!s.created);
        assert_eq!(s.to_store(), ["m2", "m3", "m4"]);
        let lines = s.lines().join("\n");
        assert!(lines.contains(&format!("~ sealing key@m2: replace key {}", key(2).id())));
        assert!(lines.contains(&format!("+ sealing key@m4: copy key {}", key(1).id())));
        assert!(!lines.contains("m5"), "{lines}");
        // Nothing sealed yet: the key most machines hold.
        let obs = observation(vec![
            ("m1", Ok(vec![])),
            ("m2", Ok(vec![])),
            ("m3", Ok(vec![])),
        ]);
        assert_eq!(choose(&f, &obs).unwrap().key, key(2));
    }

    #[test]
    fn no_key_anywhere_makes_a_new_one_and_says_so() {
        let obs = observation(vec![
            ("m1", Ok(sealed_with(&key(1), 2))),
            ("m2", Ok(vec![])),
        ]);
        let f = found(vec![
            ("m1", Ok(Held::Unreadable("not a sealing key".into()))),
            ("m2", Ok(Held::Nothing)),
        ]);
        let s = choose(&f, &obs).unwrap();
        assert!(s.created);
        assert_ne!(s.key, key(1));
        assert_eq!(s.to_store(), ["m1", "m2"]);
        let lines = s.lines();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("+ sealing key: create a new one on m1, m2 (no machine holds"),
            "{lines:?}"
        );
        assert!(!lines[0].contains(&s.key.id()), "{lines:?}");
        assert!(lines[0].contains("m1: not a sealing key"), "{lines:?}");
        // Two new keys differ: randomness, not a constant.
        assert_ne!(choose(&f, &obs).unwrap().key, s.key);
    }

    #[test]
    fn an_unreadable_key_on_a_machine_that_answers_is_an_error() {
        let obs = observation(vec![("m1", Ok(vec![])), ("m2", Ok(vec![]))]);
        let f = found(vec![
            ("m1", Ok(Held::Key(key(1)))),
            ("m2", Err("connection reset".into())),
        ]);
        let e = choose(&f, &obs).unwrap_err().to_string();
        assert!(
            e.contains("m2: cannot read the project's sealing key: connection reset"),
            "{e}"
        );
        // Every machine holds it: nothing to do, nothing said.
        let f = found(vec![
            ("m1", Ok(Held::Key(key(1)))),
            ("m2", Ok(Held::Key(key(1)))),
        ]);
        let s = choose(&f, &obs).unwrap();
        assert!(s.lines().is_empty() && s.to_store().is_empty());
    }
}
