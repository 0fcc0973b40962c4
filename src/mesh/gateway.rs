//! The TLS gateway of the encrypted mesh: one HAProxy container per machine (`hoist-gateway`,
//! host network, for every project on the machine) that listens on MACHINE_ADDRESS:7443,
//! accepts only TLS 1.3 clients holding a fleet certificate, and forwards each connection, by
//! the name it asked for (SNI, `tls::replica_sni`), to one replica port on the machine, at the
//! replica's container address. Replicas publish nothing for the mesh; proxies on other
//! machines reach them only through here.
//!
//! Its configuration is a pure function of the replicas the machine runs (`render`), read from
//! the replicas' `io.hoist.gateway-ports` label, so every project's `up` writes the same file
//! for a machine; it is applied like a proxy's (graceful reload).

use super::credentials;
use crate::apply::ops;
use crate::labels;
use anyhow::{Context, Result};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use minijinja::Value;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

const TEMPLATE: &str = include_str!("../../templates/gateway.cfg.j2");
/// The gateway container's name on every machine.
pub const NAME: &str = "hoist-gateway";
/// `io.hoist.role` of the gateway.
pub const ROLE: &str = "gateway";
/// The port it listens on, on the machine's address.
pub const PORT: u16 = 7443;

/// One replica port the gateway forwards to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    /// The replica container's engine ID.
    pub container: String,
    pub project: String,
    pub service: String,
    pub slot: String,
    pub port: u16,
    /// The replica's container address on its network.
    pub ip: String,
}

/// `machine`'s gateway configuration: listening on `address`:[`PORT`], one backend per entry
/// of `backends` (any order: the text is the same).
pub fn render(machine: &str, address: &str, backends: &[Backend]) -> Result<String> {
    let mut sorted = backends.to_vec();
    sorted.sort();
    sorted.dedup();
    let values: Vec<Value> = sorted
        .iter()
        .map(|b| {
            let sni = super::tls::replica_sni(&b.container, b.port, machine);
            let label = sni.split('.').next().unwrap_or_default().to_string();
            let target = if b.ip.contains(':') {
                format!("[{}]:{}", b.ip, b.port)
            } else {
                format!("{}:{}", b.ip, b.port)
            };
            Value::from(BTreeMap::from([
                ("name", Value::from(format!("b_{label}"))),
                ("server", Value::from(label)),
                ("sni", Value::from(sni)),
                ("target", Value::from(target)),
                ("project", Value::from(b.project.clone())),
                ("service", Value::from(b.service.clone())),
                ("slot", Value::from(b.slot.clone())),
                ("port", Value::from(b.port)),
            ]))
        })
        .collect();
    let bind = format!("{address}:{PORT}");
    let (crt, ca) = (credentials::MACHINE_PEM, credentials::CA_PEM);
    let mut env = crate::safe::template_env();
    env.add_template("gateway.cfg", TEMPLATE)
        .context("templates/gateway.cfg.j2")?;
    env.get_template("gateway.cfg")?
        .render(minijinja::context! { machine, bind, crt, ca, backends => values })
        .with_context(|| format!("rendering the gateway configuration of {machine}"))
}

/// The ready replicas of every project on one machine that the gateway forwards to.
pub async fn backends(docker: &Docker) -> Result<Vec<Backend>> {
    let filters = HashMap::from([("label".to_string(), vec![labels::GATEWAY_PORTS.to_string()])]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .context("listing the replicas behind the gateway")?;
    let mut out = Vec::new();
    for c in list {
        let Some(id) = c.id else {
            continue;
        };
        let l = c.labels.unwrap_or_default();
        let (Some(project), Some(service), Some(slot), Some(ports)) = (
            l.get(labels::PROJECT),
            l.get(labels::SERVICE),
            l.get(labels::SLOT),
            l.get(labels::GATEWAY_PORTS),
        ) else {
            continue;
        };
        let running = c.state.map(|s| s.to_string()).as_deref() == Some("running");
        let status = c.status.unwrap_or_default();
        if !running
            || !crate::observe::is_ready(crate::observe::health_from_status(&status).as_deref())
        {
            continue;
        }
        // The first network (by name) it has an address on; the gateway, on the host's
        // network, reaches every bridge network of the machine.
        let networks: BTreeMap<String, String> = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, ep)| Some((name, ep.ip_address.filter(|a| !a.is_empty())?)))
            .collect();
        let Some(ip) = networks.values().next() else {
            continue;
        };
        // Names that cannot be written into the file (never made by hoist) leave that
        // replica out, not every project's.
        if ![project, service, slot, ip]
            .iter()
            .all(|v| crate::safe::is_config_token(v))
        {
            continue;
        }
        for p in ports.split(',') {
            if let Ok(port) = p.trim().parse::<u16>() {
                out.push(Backend {
                    container: id.clone(),
                    project: project.clone(),
                    service: service.clone(),
                    slot: slot.clone(),
                    port,
                    ip: ip.clone(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The gateway's identity: recreated when the image or the address changes.
pub fn hash(image: &str, address: &str) -> String {
    let digest = Sha256::digest(format!("{image} {address}:{PORT}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether the gateway runs with this hash (None: there is none).
pub async fn running_hash(docker: &Docker) -> Option<String> {
    let c = docker
        .inspect_container(
            NAME,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()?;
    c.config?.labels?.get(labels::SPEC_HASH).cloned()
}

/// Makes the gateway run on `machine` with `image`, on `address`, with `text` as its
/// configuration (recreated when its hash differs). Returns whether it was (re)created.
pub async fn ensure(
    docker: &Docker,
    machine: &str,
    image: &str,
    address: &str,
    text: &str,
) -> Result<bool> {
    let h = hash(image, address);
    if let Some(c) = ops::current_by_hash(docker, NAME, &h).await? {
        let running = c
            .state
            .is_some_and(|s| s.running == Some(true) && s.restarting != Some(true));
        if !running {
            let id = c.id.unwrap_or_default();
            ops::copy_files(docker, &id, &[super::reload::config_file(text)]).await?;
            ops::start(docker, &id).await?;
        }
        return Ok(false);
    }
    let request = json!({
        "Image": image,
        "Labels": {
            labels::MACHINE: machine,
            labels::ROLE: ROLE,
            labels::SPEC_HASH: h,
        },
        // Root inside the container: the credentials are root's files (mode 0600), and
        // HAProxy reads them again at every reload.
        "User": "0",
        "HostConfig": {
            "NetworkMode": "host",
            "RestartPolicy": {"Name": "unless-stopped"},
            "Binds": [format!("{}:{}:ro", credentials::VOLUME, credentials::MOUNT_POINT)],
        },
    });
    let id = ops::create(docker, NAME, &request, &[]).await?;
    ops::copy_files(docker, &id, &[super::reload::config_file(text)]).await?;
    ops::start(docker, &id).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(project: &str, service: &str, slot: &str, port: u16, ip: &str) -> Backend {
        Backend {
            container: format!("{project}-{service}-{slot}"),
            project: project.into(),
            service: service.into(),
            slot: slot.into(),
            port,
            ip: ip.into(),
        }
    }

    use super::super::render::haproxy_model;

    #[test]
    fn one_backend_per_replica_port_chosen_by_name() {
        let backends = vec![
            b("shop", "db", "1", 5432, "172.18.0.3"),
            b("shop", "api", "2", 8080, "172.18.0.4"),
            b("blog", "web", "global", 80, "172.19.0.2"),
        ];
        let cfg = render("m2", "10.0.0.12", &backends).unwrap();
        assert!(cfg.contains(
            "bind 10.0.0.12:7443 ssl crt /etc/hoist/tls/machine.pem ca-file /etc/hoist/tls/ca.pem verify required ssl-min-ver TLSv1.3"
        ), "{cfg}");
        let sections = haproxy_model::parse(&cfg).unwrap();
        let frontend = sections.iter().find(|s| s.head[0] == "frontend").unwrap();
        let uses: Vec<&Vec<String>> = frontend
            .lines
            .iter()
            .filter(|l| l[0] == "use_backend")
            .collect();
        assert_eq!(uses.len(), 3);
        let backends_seen: Vec<_> = sections.iter().filter(|s| s.head[0] == "backend").collect();
        assert_eq!(backends_seen.len(), 3);
        for (project, service, slot, port, target) in [
            ("shop", "db", "1", 5432, "172.18.0.3:5432"),
            ("shop", "api", "2", 8080, "172.18.0.4:8080"),
            ("blog", "web", "global", 80, "172.19.0.2:80"),
        ] {
            let container = format!("{project}-{service}-{slot}");
            let sni = super::super::tls::replica_sni(&container, port, "m2");
            let use_line = uses
                .iter()
                .find(|l| l.contains(&sni))
                .unwrap_or_else(|| panic!("no use_backend for {sni}:\n{cfg}"));
            let name = &use_line[1];
            let backend = backends_seen
                .iter()
                .find(|s| s.head.get(1) == Some(name))
                .unwrap();
            assert_eq!(backend.lines[0][2], target, "{cfg}");
        }
        // Order does not matter.
        let mut reversed = backends.clone();
        reversed.reverse();
        assert_eq!(render("m2", "10.0.0.12", &reversed).unwrap(), cfg);
        // No replica: the gateway still listens, and routes nothing.
        let empty = render("m2", "10.0.0.12", &[]).unwrap();
        assert!(!empty.contains("use_backend") && empty.contains("bind 10.0.0.12:7443"));
    }

    #[test]
    fn values_that_are_not_one_token_are_refused() {
        assert!(render("m2", "10.0.0.12 ssl crt /x", &[]).is_err());
        assert!(render("m2", "10.0.0.12", &[b("p", "a b", "1", 80, "1.2.3.4")]).is_err());
        assert!(
            render(
                "m2",
                "10.0.0.12",
                &[b("p", "a", "1", 80, "1.2.3.4\nbackend x")]
            )
            .is_err()
        );
        let v6 = render("m2", "[fd00::12]", &[b("p", "a", "1", 80, "fd00::5")]).unwrap();
        assert!(
            v6.contains("bind [fd00::12]:7443") && v6.contains("[fd00::5]:80"),
            "{v6}"
        );
    }
}
