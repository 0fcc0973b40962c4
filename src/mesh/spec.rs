//! What the mesh carries. `mesh: {}` in the machines file turns it on for every project deployed
//! to that fleet, without touching their compose files; `x-hoist: {mesh: {}}` at the top level of
//! a compose file turns it on for that project, and `x-hoist: {mesh: {enabled: false}}` off
//! (the compose file wins). `image:` in either names the proxy image; `encrypt: true` in the
//! compose file sends every connection between machines through the machines' TLS gateways
//! (mutual TLS from a fleet CA; replicas then publish nothing for the mesh). Then every service that
//! listens — its `expose` and `ports` targets, TCP — is reachable by its name (and its network
//! aliases) from every machine. A service opts out with `x-hoist: {mesh: false}`.

use crate::model::Project;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The proxy image when the file names none: any image with `haproxy` on PATH that runs it
/// in master-worker mode as its command (the official image does).
pub const DEFAULT_IMAGE: &str = "haproxy:2.8";

/// The mesh of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshSpec {
    pub image: String,
    /// Connections between machines go through the gateways, encrypted and mutually
    /// authenticated (`tls`, `gateway`). Left out of the JSON when off, so a mesh recorded
    /// before it existed reads the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypt: bool,
    /// By service name.
    pub services: BTreeMap<String, Meshed>,
}

/// One service as the mesh carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meshed {
    /// The TCP ports its replicas listen on, ascending.
    pub ports: Vec<u16>,
    /// Engine network name → the names the service answers to there (its own first).
    pub networks: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TopDoc {
    image: Option<String>,
    enabled: Option<bool>,
    encrypt: Option<bool>,
}

/// The project's mesh, or None when neither its compose file nor the fleet (`fleet`: the
/// machines file's `mesh:`) asks for one. `network_names`: compose network key → engine network
/// name, as the replicas use them.
pub fn from_project(
    project: &Project,
    network_names: &BTreeMap<String, String>,
    fleet: Option<&crate::inventory::FleetMesh>,
) -> Result<Option<MeshSpec>> {
    let declared = project
        .extensions
        .get("x-hoist")
        .and_then(|x| x.get("mesh"));
    if let Some(v) = declared.and_then(|d| d.get("encrypt"))
        && !v.is_boolean()
    {
        bail!(
            "x-hoist.mesh.encrypt: expected true or false, got {v}; `encrypt: true` sends \
             the mesh's connections between machines through their TLS gateways"
        );
    }
    let top: TopDoc = match declared {
        Some(d) => {
            serde_json::from_value(d.clone()).map_err(|e| anyhow::anyhow!("x-hoist.mesh: {e}"))?
        }
        None if fleet.is_some() => TopDoc::default(),
        None => return Ok(None),
    };
    if top.enabled == Some(false) {
        return Ok(None);
    }
    let image = top
        .image
        .or_else(|| fleet.and_then(|f| f.image.clone()))
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    let mut services = BTreeMap::new();
    for (name, svc) in &project.services {
        match svc.extension("x-hoist").and_then(|x| x.get("mesh")) {
            None | Some(serde_json::Value::Bool(true)) => {}
            Some(serde_json::Value::Bool(false)) => continue,
            Some(other) => {
                bail!("services.{name}.x-hoist.mesh: expected true or false, got {other}")
            }
        }
        let mut ports: Vec<u16> = Vec::new();
        for p in &svc.ports {
            if p.protocol.as_deref().unwrap_or("tcp") == "tcp" {
                ports.push(port(name, &p.target.to_string())?);
            }
        }
        for e in &svc.expose {
            let (number, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            if proto != "tcp" {
                continue;
            }
            // `expose: ["8000-8002"]` is a range.
            match number.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (port(name, a)?, port(name, b)?);
                    ports.extend(a..=b);
                }
                None => ports.push(port(name, number)?),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            continue;
        }
        let keys: Vec<(String, Vec<String>)> = if svc.networks.is_empty() {
            vec![("default".to_string(), Vec::new())]
        } else {
            svc.networks
                .iter()
                .map(|(k, n)| {
                    let aliases = n.as_ref().map(|n| n.aliases.clone()).unwrap_or_default();
                    (k.clone(), aliases)
                })
                .collect()
        };
        let mut networks = BTreeMap::new();
        for (key, aliases) in keys {
            let Some(engine) = network_names.get(&key) else {
                bail!("services.{name}.networks.{key}: network not defined");
            };
            let mut names = vec![name.clone()];
            names.extend(aliases.into_iter().filter(|a| a != name));
            networks.insert(engine.clone(), names);
        }
        services.insert(name.clone(), Meshed { ports, networks });
    }
    Ok(Some(MeshSpec {
        image,
        encrypt: top.encrypt.unwrap_or(false),
        services,
    }))
}

fn port(service: &str, text: &str) -> Result<u16> {
    text.trim().parse().map_err(|_| {
        anyhow::anyhow!("services.{service}: port {text:?} is not a number from 1 to 65535")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let v: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        serde_json::from_value(v).unwrap()
    }

    fn nets() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("default".to_string(), "p_default".to_string()),
            ("back".to_string(), "p_back".to_string()),
        ])
    }

    #[test]
    fn opt_in_and_what_is_carried() {
        let off = project("name: p\nservices:\n  db: {image: x, expose: ['5432']}\n");
        assert_eq!(from_project(&off, &nets(), None).unwrap(), None);
        let disabled = project(
            "name: p\nx-hoist: {mesh: {enabled: false}}\nservices:\n  db: {image: x, expose: ['5432']}\n",
        );
        assert_eq!(from_project(&disabled, &nets(), None).unwrap(), None);

        let p = project(
            r#"
name: p
x-hoist: {mesh: {image: hoist-test/haproxy:latest}}
services:
  web: {image: x, ports: [{target: 80, published: "8080"}, {target: 53, protocol: udp}]}
  api: {image: x, expose: ["8080", "9000-9001", "53/udp"], networks: {default: null, back: {aliases: [backend]}}}
  worker: {image: x}
  secret: {image: x, expose: ["22"], x-hoist: {mesh: false}}
"#,
        );
        let s = from_project(&p, &nets(), None).unwrap().unwrap();
        assert_eq!(s.image, "hoist-test/haproxy:latest");
        assert!(!s.encrypt);
        let encrypted = project(
            "name: p\nx-hoist: {mesh: {encrypt: true}}\nservices:\n  db: {image: x, expose: ['5432']}\n",
        );
        let e = from_project(&encrypted, &nets(), None).unwrap().unwrap();
        assert!(e.encrypt);
        // Off, the recorded mesh reads as before the key existed.
        assert!(!serde_json::to_string(&s).unwrap().contains("encrypt"));
        assert!(
            serde_json::to_string(&e)
                .unwrap()
                .contains("\"encrypt\":true")
        );
        assert_eq!(s.services.keys().collect::<Vec<_>>(), ["api", "web"]);
        assert_eq!(s.services["web"].ports, [80]);
        assert_eq!(
            s.services["web"].networks,
            BTreeMap::from([("p_default".to_string(), vec!["web".to_string()])])
        );
        assert_eq!(s.services["api"].ports, [8080, 9000, 9001]);
        assert_eq!(
            s.services["api"].networks,
            BTreeMap::from([
                (
                    "p_back".to_string(),
                    vec!["api".to_string(), "backend".to_string()]
                ),
                ("p_default".to_string(), vec!["api".to_string()]),
            ])
        );
    }

    #[test]
    fn the_machines_file_turns_it_on_and_the_compose_file_wins() {
        let plain = project("name: p\nservices:\n  db: {image: x, expose: ['5432']}\n");
        let fleet = crate::inventory::FleetMesh {
            image: Some("lab/haproxy".into()),
        };
        let s = from_project(&plain, &nets(), Some(&fleet))
            .unwrap()
            .unwrap();
        assert_eq!(s.image, "lab/haproxy");
        assert_eq!(s.services["db"].ports, [5432]);
        let default_image = crate::inventory::FleetMesh::default();
        let s = from_project(&plain, &nets(), Some(&default_image))
            .unwrap()
            .unwrap();
        assert_eq!(s.image, DEFAULT_IMAGE);
        let own = project(
            "name: p\nx-hoist: {mesh: {image: mine}}\nservices:\n  db: {image: x, expose: ['5432']}\n",
        );
        assert_eq!(
            from_project(&own, &nets(), Some(&fleet))
                .unwrap()
                .unwrap()
                .image,
            "mine"
        );
        let off = project(
            "name: p\nx-hoist: {mesh: {enabled: false}}\nservices:\n  db: {image: x, expose: ['5432']}\n",
        );
        assert_eq!(from_project(&off, &nets(), Some(&fleet)).unwrap(), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let p = project("name: p\nx-hoist: {mesh: {encrypt: yes please}}\nservices: {}\n");
        let e = format!("{:#}", from_project(&p, &nets(), None).unwrap_err());
        assert!(e.starts_with("x-hoist.mesh.encrypt:"), "{e}");
        let p = project("name: p\nx-hoist: {mesh: {imag: x}}\nservices: {}\n");
        let e = format!("{:#}", from_project(&p, &nets(), None).unwrap_err());
        assert!(e.starts_with("x-hoist.mesh:"), "{e}");
        let p = project(
            "name: p\nx-hoist: {mesh: {}}\nservices:\n  a: {image: x, expose: ['80'], x-hoist: {mesh: maybe}}\n",
        );
        let e = format!("{:#}", from_project(&p, &nets(), None).unwrap_err());
        assert!(e.contains("services.a.x-hoist.mesh"), "{e}");
    }
}
