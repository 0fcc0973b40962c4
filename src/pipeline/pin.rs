//! Pinning: a registry tag is resolved once per deploy to the digest of its
//! manifest, and every machine pulls and runs exactly that digest, as Swarm does
//! when `docker service create` resolves a tag at the manager. Without it, a tag
//! pushed again while a deploy runs (or one machine's older copy of `app:1`)
//! would leave machines running different bits under one name.
//!
//! Which images are pinned: those a registry serves, named by tag. Not images
//! built here (`build:`, pinned by image ID and shipped), not images the user
//! already pinned (`app@sha256:…`), not `pull_policy: never` (the user said not
//! to touch the registry), and not local-only images — present on the local
//! engine or a machine, with no digest from a registry for their repository
//! (they are shipped from the local engine as they are).
//!
//! The tag is resolved through the Engine API's distribution endpoint
//! (`GET /distribution/{name}/json`, API 1.30+: engines 20.10 and 26 alike) on a
//! machine, with the user's registry credentials: machines pull from the
//! registry, so the resolution takes the road the pulls will take (same network,
//! same trusted CAs in /etc/docker/certs.d).

use crate::apply::image;
use crate::core::spec::{ContainerSpec, attr};
use crate::engine::Connections;
use crate::labels;
use crate::model::Project;
use crate::observe::Observation;
use anyhow::{Result, bail};
use bollard::Docker;
use std::collections::{BTreeMap, BTreeSet};

/// Service → the manifest digest (`sha256:…`) its image tag resolved to.
pub type Pins = BTreeMap<String, String>;

/// The reference machines pull and run for `image` pinned to `digest`:
/// `reg/app:1` + `sha256:ab…` → `reg/app@sha256:ab…`.
pub fn pinned_reference(image: &str, digest: &str) -> String {
    let (repo, _) = image::split_tag(image);
    format!("{repo}@{digest}")
}

/// The services whose image could be pinned (a tag, pulled from a registry), with that image.
fn pinnable(project: &Project) -> Vec<(&str, &str)> {
    project
        .services
        .iter()
        .filter(|(_, s)| s.build.is_none())
        .filter(|(_, s)| s.pull_policy.as_deref() != Some("never"))
        .filter_map(|(n, s)| s.image.as_deref().map(|i| (n.as_str(), i)))
        .filter(|(_, i)| !i.contains('@'))
        .collect()
}

/// A repository name as `docker inspect` shows it in RepoDigests (`nginx`, not
/// `docker.io/library/nginx`).
fn familiar(repo: &str) -> &str {
    let repo = repo.strip_prefix("docker.io/").unwrap_or(repo);
    repo.strip_prefix("library/").unwrap_or(repo)
}

/// Where `image` comes from, as far as the engines holding it can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// An engine holds a registry digest for its repository, or no engine holds it at all
    /// (it can only come from a registry then).
    Registry,
    /// Held somewhere with no digest (`docker build -t app:dev`, `docker load` on the classic
    /// image store): shipped from the local engine as it is.
    Local,
    /// Held only by engines on containerd's image store, whose every image — pulled, built or
    /// loaded — carries its own manifest digest as repository digest (equal to its ID), so
    /// nothing tells a pulled image from a loaded one. The registry is asked; an image it
    /// does not serve is local.
    Unknown,
}

/// What the engines' copies of `image` say of its origin (see [`Origin`]).
async fn origin(image: &str, engines: &[&Docker]) -> Origin {
    let (repo, _) = image::split_tag(image);
    let inspects =
        futures_util::future::join_all(engines.iter().map(|d| d.inspect_image(image))).await;
    let copies: Vec<(Option<String>, Vec<String>)> = inspects
        .into_iter()
        .flatten()
        .map(|i| {
            let digests = i
                .repo_digests
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| {
                    let (r, digest) = d.split_once('@')?;
                    (familiar(r) == familiar(repo)).then(|| digest.to_string())
                })
                .collect();
            (i.id, digests)
        })
        .collect();
    origin_of(&copies)
}

/// [`origin`] from each holding engine's (image ID, repository digests of its repository).
fn origin_of(copies: &[(Option<String>, Vec<String>)]) -> Origin {
    if copies.is_empty() {
        return Origin::Registry;
    }
    // A digest other than the image's own ID: the classic store records one only on a pull.
    if copies
        .iter()
        .any(|(id, digests)| digests.iter().any(|d| Some(d) != id.as_ref()))
    {
        return Origin::Registry;
    }
    if copies.iter().any(|(_, digests)| digests.is_empty()) {
        return Origin::Local;
    }
    Origin::Unknown
}

/// What is settled before any registry is asked (`hoist watch`: what runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    /// Services whose replicas run a pinned digest of the file's image: kept.
    pub pins: Pins,
    /// Services whose replicas run the file's image unpinned (a local-only image): kept so.
    pub unpinned: BTreeSet<String>,
}

/// The connected machines of `conns`, in the machines file's order.
pub fn connected(conns: &Connections) -> Vec<(&str, &Docker)> {
    conns
        .results
        .iter()
        .filter_map(|(m, r)| r.as_ref().ok().map(|e| (m.name.as_str(), &e.docker)))
        .collect()
}

/// Resolves the tag of every pinnable service's image to a digest, each image
/// once, asking the connected machines of `conns`. Fails, naming the image, the
/// registry and the machine, when a registry refuses the credentials, lacks the tag or
/// is not trusted: nothing has changed on any machine at that point.
///
/// A registry that cannot be reached does not stop a deploy of what already runs: when
/// every service of that image runs a pinned digest (`running`, from the observation),
/// those digests are kept and a warning says so — like Swarm, which deploys without a
/// digest when the registry does not answer, but without letting machines drift apart.
/// A service that runs nothing of it yet still needs the registry.
pub async fn resolve(
    project: &Project,
    conns: &Connections,
    local: Option<&Docker>,
    running: &Known,
) -> Result<Resolution> {
    resolve_on(
        project,
        &connected(conns),
        local,
        &Known::default(),
        Some(running),
    )
    .await
}

/// The digests of a resolution, and what the user should hear about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolution {
    pub pins: Pins,
    /// Registries that could not be reached, with the digests kept instead.
    pub warnings: Vec<String>,
}

/// [`resolve`] on `machines`, for the services `known` does not settle; `running` is what
/// an unreachable registry falls back to (None: no fallback).
pub async fn resolve_on(
    project: &Project,
    machines: &[(&str, &Docker)],
    local: Option<&Docker>,
    known: &Known,
    running: Option<&Known>,
) -> Result<Resolution> {
    let mut pins = Pins::new();
    let mut images: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (service, img) in pinnable(project) {
        if known.unpinned.contains(service) {
            continue;
        }
        match known.pins.get(service) {
            Some(d) => {
                pins.insert(service.to_string(), d.clone());
            }
            None => images.entry(img).or_default().push(service),
        }
    }
    let mut warnings = Vec::new();
    if images.is_empty() || machines.is_empty() {
        return Ok(Resolution { pins, warnings });
    }
    let engines: Vec<&Docker> = local
        .into_iter()
        .chain(machines.iter().map(|(_, d)| *d))
        .collect();
    let lookups = images.iter().map(|(img, services)| {
        let (engines, machines) = (&engines, &machines);
        async move {
            match origin(img, engines).await {
                Origin::Local => (img, services, Ok(None)),
                Origin::Registry => (img, services, resolve_one(img, machines).await.map(Some)),
                // Held only on containerd-store engines: a registry that serves it pins it;
                // one that does not (or cannot be reached) leaves the machines' copies as
                // they are, like any local image.
                Origin::Unknown => match resolve_one(img, machines).await {
                    Ok(d) => (img, services, Ok(Some(d))),
                    Err(_) => (img, services, Ok(None)),
                },
            }
        }
    });
    let mut problems = Vec::new();
    for (img, services, r) in futures_util::future::join_all(lookups).await {
        match r {
            Ok(Some(digest)) => {
                for s in services {
                    pins.insert(s.to_string(), digest.clone());
                }
            }
            Ok(None) => {}
            Err(Unresolved {
                kind: Failure::Unreachable,
                advice,
            }) if running.is_some_and(|r| services.iter().all(|s| r.pins.contains_key(*s))) => {
                let running = running.expect("checked above");
                let mut kept: Vec<String> = Vec::new();
                for s in services {
                    let d = &running.pins[*s];
                    pins.insert(s.to_string(), d.clone());
                    kept.push(format!("{s} keeps {}", crate::core::spec::short_digest(d)));
                }
                let first = advice.lines().next().unwrap_or_default();
                warnings.push(format!(
                    "{first}\n  deploying what runs now instead ({}): the tag {img} may have moved since",
                    kept.join(", ")
                ));
            }
            Err(u) => problems.push(u.advice),
        }
    }
    if !problems.is_empty() {
        bail!("{}\nNothing was changed.", problems.join("\n"));
    }
    Ok(Resolution { pins, warnings })
}

/// What `docker compose config --resolve-image-digests` prints for each service's image, as
/// the reference does it: every service with an `image:` not already pinned by digest (and not
/// `pull_policy: build`) gets `name:tag@sha256:…`, the name fully qualified and `latest` when
/// untagged, with the manifest digest `engine`'s distribution endpoint gets from the registry
/// — the road the reference takes through its engine (`engine`: this computer's). Returns
/// service → image; an image that cannot be resolved is an error naming its services.
pub async fn digests_for_config(
    project: &Project,
    engine: &Docker,
    engine_name: &str,
) -> Result<BTreeMap<String, String>> {
    let mut images: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, svc) in &project.services {
        let Some(img) = svc.image.as_deref().filter(|i| !i.is_empty()) else {
            continue;
        };
        if svc.pull_policy.as_deref() == Some("build") || img.contains('@') {
            continue;
        }
        images.entry(img).or_default().push(name);
    }
    let machines = [(engine_name, engine)];
    let lookups = images.iter().map(|(img, services)| {
        let machines = &machines;
        async move { (img, services, resolve_one(img, machines).await) }
    });
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (img, services, r) in futures_util::future::join_all(lookups).await {
        let named: Vec<String> = services
            .iter()
            .map(|s| format!("services.{s}.image"))
            .collect();
        match r {
            Ok(digest) => {
                let (repo, tag) = image::split_tag(img);
                let pinned = format!("{}:{tag}@{digest}", qualified(repo));
                for s in services {
                    out.insert(s.to_string(), pinned.clone());
                }
            }
            Err(u) => problems.push(format!("{}: {img}: {}", named.join(", "), u.advice)),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(out)
}

/// A repository name in full, as the reference prints it: `nginx` → `docker.io/library/nginx`,
/// `acme/app` → `docker.io/acme/app`; a name with a registry host stays as it is.
fn qualified(repo: &str) -> String {
    let first = repo.split('/').next().unwrap_or_default();
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    }
}

/// Why a tag has no digest: what kind of failure, and the message for the user.
struct Unresolved {
    kind: Failure,
    advice: String,
}

/// Asks the machines, in order, for the digest of `image`; the first answer wins.
/// A refusal of the credentials or an unknown tag ends the search at once (every
/// machine would say the same); an unreachable registry is tried from the next machine.
async fn resolve_one(img: &str, machines: &[(&str, &Docker)]) -> Result<String, Unresolved> {
    let registry = image::registry_host(img);
    let shown_registry = registry_shown(&registry);
    let creds = image::credentials(&registry).map_err(|e| Unresolved {
        kind: Failure::Other,
        advice: format!("{e:#}"),
    })?;
    let mut failures: Vec<(String, Failure, String)> = Vec::new();
    for (machine, docker) in machines {
        match docker.inspect_registry_image(img, creds.clone()).await {
            Ok(d)
                if d.descriptor
                    .digest
                    .as_deref()
                    .is_some_and(|x| x.contains(':')) =>
            {
                return Ok(d.descriptor.digest.unwrap_or_default());
            }
            Ok(_) => failures.push((
                machine.to_string(),
                Failure::Other,
                "the engine gave no digest".into(),
            )),
            Err(e) => {
                let text = engine_message(&e);
                let kind = Failure::classify(&text);
                failures.push((machine.to_string(), kind, text));
                if matches!(kind, Failure::Auth | Failure::NotFound) {
                    break;
                }
            }
        }
    }
    let also: Vec<String> = failures.iter().skip(1).map(|f| f.0.clone()).collect();
    let (machine, kind, text) = failures.into_iter().next().expect("at least one machine");
    let machine = if also.is_empty() {
        machine
    } else {
        format!("{machine} (and {})", also.join(", "))
    };
    let sent = if creds.is_some() {
        format!(
            "hoist sent the credentials your docker config ({}) has for {shown_registry}",
            image::docker_config_shown()
        )
    } else {
        format!(
            "your docker config ({}) has no credentials for {shown_registry}, so hoist asked anonymously",
            image::docker_config_shown()
        )
    };
    let advice = match kind {
        Failure::Auth => format!(
            "registry {shown_registry} refused access to {img} (asked from {machine}): {text}\n  {sent}; log in with `docker login {shown_registry}` (or point DOCKER_CONFIG at a config that has them) and run hoist again"
        ),
        Failure::NotFound => format!(
            "registry {shown_registry} has no image {img} (asked from {machine}): {text}\n  check the name and tag, and that it was pushed"
        ),
        Failure::Trust => format!(
            "{machine} does not trust the TLS certificate of registry {shown_registry} (resolving {img}): {text}\n  put the registry's CA certificate in /etc/docker/certs.d/{shown_registry}/ca.crt on every machine"
        ),
        Failure::Unreachable | Failure::Other => format!(
            "cannot resolve {img} to a digest: {machine} cannot reach registry {shown_registry}: {text}\n  every machine pulls from it: check that it is up and reachable from the machines; to deploy what the machines already have without the registry, set pull_policy: never"
        ),
    };
    Err(Unresolved { kind, advice })
}

fn registry_shown(host: &str) -> String {
    if host.contains("index.docker.io") {
        "docker.io".to_string()
    } else {
        host.to_string()
    }
}

/// The engine's own words from a bollard error.
fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            message.trim().to_string()
        }
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Auth,
    NotFound,
    Trust,
    Unreachable,
    Other,
}

impl Failure {
    /// What the engine's message says went wrong (its wording, engines 20.10 to 26).
    fn classify(text: &str) -> Failure {
        let t = text.to_ascii_lowercase();
        if t.contains("x509") || t.contains("certificate") {
            Failure::Trust
        } else if t.contains("unauthorized")
            || t.contains("authentication required")
            || t.contains("denied")
            || t.contains("no basic auth credentials")
            || t.contains("incorrect username or password")
        {
            Failure::Auth
        } else if t.contains("manifest unknown")
            || t.contains("not found: manifest")
            || t.contains("name unknown")
        {
            Failure::NotFound
        } else if t.contains("connection refused")
            || t.contains("no such host")
            || t.contains("timeout")
            || t.contains("i/o timeout")
            || t.contains("no route to host")
            || t.contains("network is unreachable")
            || t.contains("connection reset")
            || t.contains("eof")
        {
            Failure::Unreachable
        } else {
            Failure::Other
        }
    }
}

/// The digests the project's current replicas run, by service: what `hoist up`
/// pinned last. `hoist watch` keeps these (healing restores the same bits; only a
/// deploy moves a tag), keeps unpinned what runs unpinned, and resolves only the
/// services that run none of the file's image yet (new, or a new tag in the file).
pub fn from_observation(project: &Project, observation: &Observation) -> Known {
    let mut newest: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut unpinned = BTreeSet::new();
    let pinnable: BTreeMap<&str, &str> = pinnable(project).into_iter().collect();
    for (_, state) in &observation.machines {
        let Ok(state) = state else { continue };
        for c in crate::observe::current(&state.containers) {
            let Some(img) = pinnable.get(c.service.as_str()) else {
                continue;
            };
            let Some(spec) = c
                .labels
                .get(labels::SPEC)
                .and_then(|s| ContainerSpec::from_json(s).ok())
            else {
                continue;
            };
            if spec.get(attr::IMAGE).and_then(|v| v.as_str()) != Some(*img) {
                continue;
            }
            let Some(digest) = spec.get(attr::IMAGE_DIGEST).and_then(|v| v.as_str()) else {
                unpinned.insert(c.service.clone());
                continue;
            };
            let entry = newest
                .entry(c.service.clone())
                .or_insert_with(|| (c.release.clone(), digest.to_string()));
            if c.release > entry.0 {
                *entry = (c.release.clone(), digest.to_string());
            }
        }
    }
    let pins: Pins = newest.into_iter().map(|(s, (_, d))| (s, d)).collect();
    unpinned.retain(|s| !pins.contains_key(s));
    Known { pins, unpinned }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::SeenContainer;

    #[test]
    fn references() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            pinned_reference("172.31.77.1:5443/app:1", &d),
            format!("172.31.77.1:5443/app@{d}")
        );
        assert_eq!(pinned_reference("nginx", &d), format!("nginx@{d}"));
        assert_eq!(
            pinned_reference("localhost:5000/app", &d),
            format!("localhost:5000/app@{d}")
        );
    }

    #[test]
    fn failures_from_engine_messages() {
        use Failure::*;
        for (text, want) in [
            (
                "Get \"https://172.31.77.1:5443/v2/app/manifests/1\": no basic auth credentials",
                Auth,
            ),
            (
                "errors:\ndenied: requested access to the resource is denied\nunauthorized: authentication required\n",
                Auth,
            ),
            (
                "Get \"https://172.31.77.1:5443/v2/\": dial tcp 172.31.77.1:5443: connect: connection refused",
                Unreachable,
            ),
            (
                "Get \"https://172.31.77.1:5443/v2/\": x509: certificate signed by unknown authority",
                Trust,
            ),
            ("manifest unknown: manifest unknown", NotFound),
        ] {
            assert_eq!(Failure::classify(text), want, "{text}");
        }
    }

    fn project() -> Project {
        serde_json::from_value(serde_json::json!({
            "name": "shop",
            "services": {
                "web": {"image": "reg:5000/app:1"},
                "api": {"image": "reg:5000/app:1", "pull_policy": "always"},
                "built": {"image": "reg:5000/built:1", "build": {"context": "."}},
                "fixed": {"image": "reg:5000/app@sha256:0123"},
                "offline": {"image": "reg:5000/app:1", "pull_policy": "never"},
            }
        }))
        .unwrap()
    }

    #[test]
    fn which_services_are_pinned() {
        let p = project();
        let mut got = pinnable(&p);
        got.sort();
        assert_eq!(
            got,
            vec![("api", "reg:5000/app:1"), ("web", "reg:5000/app:1")]
        );
    }

    fn seen(service: &str, slot: u32, release: &str, spec: &ContainerSpec) -> SeenContainer {
        SeenContainer {
            id: format!("{service}{slot}{release}"),
            name: format!("{service}-{slot}"),
            service: service.into(),
            slot: Some(crate::core::observed::Slot::Replica(slot)),
            spec_hash: spec.hash(),
            release: release.into(),
            state: "running".into(),
            health: None,
            image: String::new(),
            image_id: String::new(),
            created: release.len() as i64,
            status: String::new(),
            ports: Vec::new(),
            labels: [(labels::SPEC.to_string(), spec.canonical_json())].into(),
        }
    }

    #[test]
    fn watch_keeps_the_digest_that_runs() {
        let p = project();
        let pinned = |image: &str, d: &str| {
            ContainerSpec::new()
                .with(attr::IMAGE, image)
                .with(attr::IMAGE_DIGEST, d)
        };
        let state = |containers| crate::observe::MachineState {
            containers,
            ..Default::default()
        };
        let observation = Observation {
            machines: vec![
                (
                    "m1".into(),
                    Ok(state(vec![
                        seen(
                            "web",
                            1,
                            "20260101-000000",
                            &pinned("reg:5000/app:1", "sha256:old"),
                        ),
                        seen(
                            "api",
                            1,
                            "20260101-000000",
                            &pinned("reg:5000/app:0", "sha256:x"),
                        ),
                    ])),
                ),
                (
                    "m2".into(),
                    Ok(state(vec![seen(
                        "web",
                        2,
                        "20260102-000000",
                        &pinned("reg:5000/app:1", "sha256:new"),
                    )])),
                ),
                ("m3".into(), Err("unreachable".into())),
            ],
        };
        let known = from_observation(&p, &observation);
        // The newest release's digest; api runs another tag than the file's: not kept.
        assert_eq!(
            known.pins,
            Pins::from([("web".to_string(), "sha256:new".to_string())])
        );
        assert!(known.unpinned.is_empty());
        // A replica of the file's image without a digest (a local-only image) stays unpinned.
        let observation = Observation {
            machines: vec![(
                "m1".into(),
                Ok(state(vec![seen(
                    "api",
                    1,
                    "20260101-000000",
                    &ContainerSpec::new().with(attr::IMAGE, "reg:5000/app:1"),
                )])),
            )],
        };
        let known = from_observation(&p, &observation);
        assert!(known.pins.is_empty());
        assert_eq!(known.unpinned, BTreeSet::from(["api".to_string()]));
    }

    #[test]
    fn qualified_names_as_the_reference_prints_them() {
        assert_eq!(qualified("nginx"), "docker.io/library/nginx");
        assert_eq!(qualified("acme/app"), "docker.io/acme/app");
        assert_eq!(
            qualified("docker.io/library/nginx"),
            "docker.io/library/nginx"
        );
        assert_eq!(qualified("ghcr.io/acme/app"), "ghcr.io/acme/app");
        assert_eq!(qualified("172.31.77.1:5443/app"), "172.31.77.1:5443/app");
        assert_eq!(qualified("localhost/app"), "localhost/app");
    }

    #[test]
    fn origin_from_the_copies_engines_hold() {
        let id = |s: &str| Some(format!("sha256:{s}"));
        let d = |s: &str| format!("sha256:{s}");
        assert_eq!(origin_of(&[]), Origin::Registry);
        // Classic store: pulled (a manifest digest beside the config ID) vs built or loaded.
        assert_eq!(origin_of(&[(id("c0"), vec![d("m1")])]), Origin::Registry);
        assert_eq!(origin_of(&[(id("c0"), vec![])]), Origin::Local);
        // containerd store: the ID is the manifest digest, pulled or loaded alike.
        assert_eq!(origin_of(&[(id("m1"), vec![d("m1")])]), Origin::Unknown);
        // Beside a classic copy with no digest it is local; beside a pulled one, a registry's.
        assert_eq!(
            origin_of(&[(id("m1"), vec![d("m1")]), (id("c0"), vec![])]),
            Origin::Local
        );
        assert_eq!(
            origin_of(&[(id("m1"), vec![d("m1")]), (id("c0"), vec![d("m1")])]),
            Origin::Registry
        );
    }

    #[test]
    fn familiar_names() {
        assert_eq!(familiar("docker.io/library/nginx"), "nginx");
        assert_eq!(familiar("nginx"), "nginx");
        assert_eq!(familiar("reg:5000/app"), "reg:5000/app");
    }
}
