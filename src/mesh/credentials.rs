//! The fleet's TLS credentials on the machines (the encrypted mesh, `tls`): kept like the
//! sealing key (src/seal.rs), only on the machines, in labelled volumes read and written through
//! never-started holder containers, files owned by root with mode 0600.
//!
//! - `hoist-tls-ca`: the fleet CA's certificate and key (`ca.crt`, `ca.key`). Every machine
//!   keeps it, so any machine hoist reaches can admit a new one; nothing mounts it.
//! - `hoist-tls`: what the gateway and the proxies mount read-only at [`MOUNT_POINT`]: the CA
//!   certificate (`ca.pem`), the machine's key and certificate (`machine.pem` for HAProxy,
//!   `machine.crt` and `machine.key`), and `machine.json`, the record of what that certificate
//!   was issued for (`tls::MachineRecord`).
//!
//! The CA key and machine keys pass through hoist's memory (over the SSH connection it already
//! holds), never through a label, the plan, a log or a file on the operator's computer.

use super::tls::{self, Ca, Held, MachineCert, MachineRecord};
use crate::labels;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, InspectContainerOptions,
    UploadToContainerOptions,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};

/// `io.hoist.role` of the credentials' volumes and holders.
pub const ROLE: &str = "tls";
/// The volume (and holder) of the CA.
pub const CA_VOLUME: &str = "hoist-tls-ca";
/// The volume (and holder) the gateway and proxies mount.
pub const VOLUME: &str = "hoist-tls";
/// Where the gateway and the proxies find [`VOLUME`].
pub const MOUNT_POINT: &str = "/etc/hoist/tls";
/// HAProxy's certificate-and-key file, and the CA file, inside [`MOUNT_POINT`].
pub const MACHINE_PEM: &str = "/etc/hoist/tls/machine.pem";
pub const CA_PEM: &str = "/etc/hoist/tls/ca.pem";

/// Reads what `docker`'s machine holds. Files that do not parse count as missing (and are
/// written anew); an engine that does not answer is an error.
pub async fn read(docker: &Docker) -> Result<Held> {
    let ca_files = read_volume(docker, CA_VOLUME).await?;
    let ca = match (ca_files.get("ca.crt"), ca_files.get("ca.key")) {
        (Some(c), Some(k)) if c.contains("CERTIFICATE") && k.contains("PRIVATE KEY") => Some(Ca {
            cert_pem: c.clone(),
            key_pem: k.clone(),
        }),
        _ => None,
    };
    let files = read_volume(docker, VOLUME).await?;
    let record = files
        .get("machine.json")
        .and_then(|t| serde_json::from_str::<MachineRecord>(t).ok());
    let complete = ["machine.pem", "machine.crt", "machine.key"]
        .iter()
        .all(|f| files.get(*f).is_some_and(|t| !t.is_empty()));
    let machine = match (record, files.get("ca.pem")) {
        (Some(r), Some(trusted)) if complete => Some((r, trusted.clone())),
        _ => None,
    };
    Ok(Held { ca, machine })
}

/// The files of a credentials volume by name; none when the volume does not exist.
async fn read_volume(docker: &Docker, volume: &str) -> Result<BTreeMap<String, String>> {
    match docker.inspect_volume(volume).await {
        Ok(_) => ensure_holder(docker, volume).await?,
        Err(e) if crate::apply::ops::status_code(&e) == Some(404) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("inspecting volume {volume}")),
    }
    let mut stream = docker.download_from_container(
        volume,
        Some(DownloadFromContainerOptions {
            path: format!("{}/.", crate::seal::MOUNT),
        }),
    );
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => archive.extend_from_slice(&b),
            Err(e) if crate::apply::ops::status_code(&e) == Some(404) => {
                return Ok(BTreeMap::new());
            }
            Err(e) => return Err(e).with_context(|| format!("reading volume {volume}")),
        }
    }
    let mut out = BTreeMap::new();
    let mut entries = tar::Archive::new(archive.as_slice());
    for entry in entries.entries()? {
        use std::io::Read;
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let Some(name) = entry
            .path()?
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let mut text = String::new();
        // Certificates and keys are a few kilobytes; anything larger is not one.
        if entry
            .by_ref()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .is_ok()
        {
            out.insert(name, text);
        }
    }
    Ok(out)
}

/// Writes the CA onto `docker`'s machine.
pub async fn store_ca(docker: &Docker, ca: &Ca) -> Result<()> {
    write_volume(
        docker,
        CA_VOLUME,
        &[("ca.crt", &ca.cert_pem), ("ca.key", &ca.key_pem)],
    )
    .await?;
    match read(docker).await?.ca {
        Some(back) if &back == ca => Ok(()),
        _ => bail!("the fleet CA written into volume {CA_VOLUME} did not read back intact"),
    }
}

/// Writes a machine's key and certificate, and the CA certificate it trusts.
pub async fn store_machine(docker: &Docker, ca: &Ca, cert: &MachineCert) -> Result<()> {
    let pem = format!("{}{}", cert.cert_pem, cert.key_pem);
    let record = serde_json::to_string(&cert.record)?;
    write_volume(
        docker,
        VOLUME,
        &[
            ("ca.pem", &ca.cert_pem),
            ("machine.crt", &cert.cert_pem),
            ("machine.key", &cert.key_pem),
            ("machine.pem", &pem),
            ("machine.json", &record),
        ],
    )
    .await?;
    match read(docker).await?.machine {
        Some((r, trusted)) if r == cert.record && trusted == ca.cert_pem => Ok(()),
        _ => bail!("the machine certificate written into volume {VOLUME} did not read back intact"),
    }
}

async fn write_volume(docker: &Docker, volume: &str, files: &[(&str, &str)]) -> Result<()> {
    if let Err(e) = docker.inspect_volume(volume).await {
        if crate::apply::ops::status_code(&e) != Some(404) {
            return Err(e).with_context(|| format!("inspecting volume {volume}"));
        }
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.to_string()),
                labels: Some(HashMap::from([(
                    labels::ROLE.to_string(),
                    ROLE.to_string(),
                )])),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating volume {volume}"))?;
    }
    ensure_holder(docker, volume).await?;
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(content.len() as u64);
        builder.append_data(&mut h, name, content.as_bytes())?;
    }
    let archive = builder.into_inner()?;
    docker
        .upload_to_container(
            volume,
            Some(UploadToContainerOptions {
                path: crate::seal::MOUNT.to_string(),
                ..Default::default()
            }),
            bollard::body_full(archive.into()),
        )
        .await
        .with_context(|| format!("writing the fleet's credentials into volume {volume}"))
}

/// The never-started container that mounts `volume` (and has its name), made unless it is
/// there; an object of that name that hoist did not make is an error.
async fn ensure_holder(docker: &Docker, volume: &str) -> Result<()> {
    match docker
        .inspect_container(volume, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => {
            let l = c.config.and_then(|c| c.labels).unwrap_or_default();
            if l.get(labels::ROLE).map(String::as_str) != Some(ROLE) {
                bail!(
                    "a container named {volume} exists that hoist did not create; hoist keeps \
                     the fleet's TLS credentials there: rename it (`docker rename {volume} \
                     NEW-NAME` on the machine), then run hoist again"
                );
            }
            return Ok(());
        }
        Err(e) if crate::apply::ops::status_code(&e) == Some(404) => {}
        Err(e) => return Err(e).with_context(|| format!("inspecting container {volume}")),
    }
    let image = crate::seal::ensure_holder_image(docker).await?;
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // Never started: the image has no program, and none is needed.
        cmd: Some(vec!["hoist-keyholder".to_string()]),
        labels: Some(HashMap::from([(
            labels::ROLE.to_string(),
            ROLE.to_string(),
        )])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:{}", crate::seal::MOUNT)]),
            network_mode: Some("none".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    match docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(volume.to_string()),
                ..Default::default()
            }),
            body,
        )
        .await
    {
        Ok(_) => Ok(()),
        // Made meanwhile by another hoist.
        Err(e) if crate::apply::ops::status_code(&e) == Some(409) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating container {volume}")),
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads every machine's credentials (in parallel) and decides what `up` must write.
pub async fn survey(
    engines: &[(String, Docker)],
    addresses: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, Held>, tls::Decision)> {
    let reads = engines.iter().map(|(m, d)| async move {
        (
            m.clone(),
            read(d)
                .await
                .with_context(|| format!("{m}: reading the fleet's TLS credentials")),
        )
    });
    let mut held = BTreeMap::new();
    for (m, r) in futures_util::future::join_all(reads).await {
        held.insert(m, r?);
    }
    let decision = tls::decide(&held, addresses, now())?;
    Ok((held, decision))
}

/// Carries out `survey`'s decision: every machine ends up with the fleet CA and a certificate
/// from it for its name and address. Returns the machines given a new certificate, with why:
/// their gateway and proxies must reload to use it.
pub async fn ensure(
    engines: &[(String, Docker)],
    addresses: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let (held, decision) = survey(engines, addresses).await?;
    if decision.is_empty() {
        return Ok(Vec::new());
    }
    let ca = match &decision.ca_from {
        Some(m) => held
            .get(m)
            .and_then(|h| h.ca.clone())
            .context("the fleet CA vanished while being read")?,
        None => Ca::generate(now())?,
    };
    let by_name: BTreeMap<&str, &Docker> = engines.iter().map(|(m, d)| (m.as_str(), d)).collect();
    let mut done = Vec::new();
    for m in &decision.copy_ca {
        let d = by_name[m.as_str()];
        store_ca(d, &ca)
            .await
            .with_context(|| format!("{m}: storing the fleet CA"))?;
    }
    for (m, why) in &decision.issue {
        let d = by_name[m.as_str()];
        let address = addresses
            .get(m)
            .with_context(|| format!("{m}: no address to issue its certificate for"))?;
        let cert = ca.issue(m, address, now())?;
        store_machine(d, &ca, &cert)
            .await
            .with_context(|| format!("{m}: storing its machine certificate"))?;
        done.push((m.clone(), why.clone()));
    }
    Ok(done)
}

/// The plan's entries for `decision`, (machine or `fleet`, text): a new CA, CA copies,
/// certificates to issue.
pub fn plan_entries(decision: &tls::Decision) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if decision.ca_from.is_none() {
        lines.push((
            "fleet".to_string(),
            "fleet CA: new, kept on every machine".to_string(),
        ));
    } else if !decision.copy_ca.is_empty() {
        lines.push((
            "fleet".to_string(),
            format!("fleet CA: copied to {}", decision.copy_ca.join(", ")),
        ));
    }
    for (m, why) in &decision.issue {
        lines.push((
            m.clone(),
            format!("credentials@{m}: machine certificate ({why})"),
        ));
    }
    lines
}
