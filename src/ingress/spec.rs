//! What the compose file says about the ingress: the top-level `x-hoist.ingress`
//! (image, ports, TLS) and each service's `x-hoist.ingress` (its routes), with the
//! defaults filled in. Pure: a Project in, an `IngressSpec` (or nothing) out.

use crate::model::Project;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The image when the file names none.
pub const DEFAULT_IMAGE: &str = "caddy:2";

/// The ingress of one project: one container per machine, these routes on each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngressSpec {
    pub image: String,
    /// Host ports the ingress publishes on every machine (container ports 80 and 443).
    pub http_port: u16,
    pub https_port: u16,
    pub tls: Tls,
    /// Address for ACME account mail (Let's Encrypt notices).
    pub email: Option<String>,
    /// How long a replica stays out of the pool before it is stopped, for requests in flight.
    pub drain: Duration,
    pub routes: Vec<Route>,
}

/// Certificates for routes with host names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tls {
    /// Public certificates from Let's Encrypt / ZeroSSL (Caddy's automatic HTTPS).
    Acme,
    /// Certificates from Caddy's own local CA (labs, private networks).
    Internal,
    /// Plain HTTP even for host names.
    Off,
}

/// Requests for `hosts` (any host when empty) under `paths` go to `port` of
/// every ready replica of `service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub service: String,
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    /// The container port the replicas publish.
    pub port: u32,
    pub health: HealthCheck,
}

/// Caddy's active health check on each upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TopDoc {
    image: Option<String>,
    #[serde(default, deserialize_with = "port_number")]
    http_port: Option<u16>,
    #[serde(default, deserialize_with = "port_number")]
    https_port: Option<u16>,
    tls: Option<String>,
    email: Option<String>,
    drain: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default, deserialize_with = "port_number")]
    port: Option<u16>,
    #[serde(default)]
    health: HealthDoc,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HealthDoc {
    path: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
}

/// A port written as a number or, after interpolation (`http_port: ${HTTP_PORT:-80}`), as a
/// string of digits — `x-` keys are not type-cast by the loader the way Compose's own keys are.
fn port_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u16>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("port {n} is not a number from 0 to 65535"))),
        Some(serde_json::Value::String(s)) => {
            s.trim().parse::<u16>().map(Some).map_err(|_| {
                D::Error::custom(format!("port {s:?} is not a number from 0 to 65535"))
            })
        }
        Some(other) => Err(D::Error::custom(format!(
            "expected a port number, got {other}"
        ))),
    }
}

fn ingress_of(ext: Option<&serde_json::Value>) -> Option<&serde_json::Value> {
    ext.and_then(|x| x.get("ingress"))
}

/// The project's ingress, or None when it has none. The ingress is opt-in (it
/// takes ports 80 and 443 on every machine): a project has one when its top level
/// has `x-hoist.ingress` (unless `enabled: false`) or a service declares a route.
pub fn from_project(project: &Project) -> Result<Option<IngressSpec>> {
    let declared = ingress_of(project.extensions.get("x-hoist"));
    let top: TopDoc = match declared {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| anyhow::anyhow!("x-hoist.ingress: {e}"))?,
        None => TopDoc::default(),
    };
    if top.enabled == Some(false) {
        return Ok(None);
    }
    let mut routes = Vec::new();
    for (name, svc) in &project.services {
        let Some(v) = ingress_of(svc.extension("x-hoist")) else {
            continue;
        };
        let doc: RouteDoc = serde_json::from_value(v.clone())
            .map_err(|e| anyhow::anyhow!("services.{name}.x-hoist.ingress: {e}"))?;
        let port = match doc.port {
            Some(p) => u32::from(p),
            None => match svc.ports.first() {
                Some(p) => p.target,
                None => bail!(
                    "services.{name}.x-hoist.ingress: no `port`, and the service publishes none; add e.g. `port: 80`"
                ),
            },
        };
        if !svc.ports.iter().any(|p| p.target == port) {
            bail!(
                "services.{name}.x-hoist.ingress.port: {port} is not published; add `ports: [\"{port}\"]` so each replica gets a host port the ingress of every machine can reach"
            );
        }
        routes.push(route(name, doc, port)?);
    }
    // The default: a project with exactly one service publishing ports is routed
    // whole (every host, every path) to that service's first published port.
    if routes.is_empty() {
        let publishing: Vec<_> = project
            .services
            .iter()
            .filter(|(_, s)| !s.ports.is_empty())
            .collect();
        match publishing.as_slice() {
            _ if declared.is_none() => return Ok(None),
            [(name, svc)] => {
                routes.push(route(name, RouteDoc::default(), svc.ports[0].target)?);
            }
            _ => bail!(
                "x-hoist.ingress: no service has `x-hoist: {{ingress: ...}}` routes, and {} services publish ports, so there is no default; add routes to the services to expose",
                publishing.len()
            ),
        }
    }
    if let Some(email) = &top.email {
        crate::safe::email(email).map_err(|e| anyhow::anyhow!("x-hoist.ingress.email: {e}"))?;
    }
    let tls = match top.tls.as_deref() {
        None | Some("acme") => Tls::Acme,
        Some("internal") => Tls::Internal,
        Some("off") => Tls::Off,
        Some(other) => bail!("x-hoist.ingress.tls: {other:?}: expected acme, internal or off"),
    };
    Ok(Some(IngressSpec {
        image: top.image.unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
        http_port: top.http_port.unwrap_or(80),
        https_port: top.https_port.unwrap_or(443),
        tls,
        email: top.email,
        drain: duration("x-hoist.ingress.drain", top.drain.as_deref(), "1s")?,
        routes,
    }))
}

fn route(service: &str, doc: RouteDoc, port: u32) -> Result<Route> {
    let at = format!("services.{service}.x-hoist.ingress");
    // Each of these is written into the Caddyfile: only plain host names and paths pass
    // (issue 17, finding 2), and the renderer checks again.
    for (i, p) in doc.paths.iter().enumerate() {
        crate::safe::url_path(p, false).map_err(|e| anyhow::anyhow!("{at}.paths[{i}]: {e}"))?;
    }
    for (i, h) in doc.hosts.iter().enumerate() {
        crate::safe::host_name(h, true).map_err(|e| anyhow::anyhow!("{at}.hosts[{i}]: {e}"))?;
    }
    let path = doc.health.path.unwrap_or_else(|| "/".to_string());
    crate::safe::url_path(&path, true).map_err(|e| anyhow::anyhow!("{at}.health.path: {e}"))?;
    Ok(Route {
        service: service.to_string(),
        hosts: doc.hosts,
        paths: doc.paths,
        port,
        health: HealthCheck {
            path,
            interval: duration(
                &format!("{at}.health.interval"),
                doc.health.interval.as_deref(),
                "2s",
            )?,
            timeout: duration(
                &format!("{at}.health.timeout"),
                doc.health.timeout.as_deref(),
                "1s",
            )?,
        },
    })
}

fn duration(at: &str, value: Option<&str>, default: &str) -> Result<Duration> {
    let text = value.unwrap_or(default);
    crate::duration::parse(text).map_err(|e| anyhow::anyhow!("{at}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let v: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn one_http_service_is_routed_by_default() {
        let p = project(
            "name: p\nx-hoist: {ingress: {}}\nservices:\n  web: {image: app, ports: [{target: 80}]}\n  db: {image: db}\n",
        );
        let s = from_project(&p).unwrap().unwrap();
        assert_eq!(s.image, DEFAULT_IMAGE);
        assert_eq!((s.http_port, s.https_port, s.tls), (80, 443, Tls::Acme));
        assert_eq!(s.routes.len(), 1);
        let r = &s.routes[0];
        assert_eq!((r.service.as_str(), r.port), ("web", 80));
        assert!(r.hosts.is_empty() && r.paths.is_empty());
        assert_eq!(r.health.path, "/");
    }

    #[test]
    fn opt_in_and_no_default_with_two_http_services() {
        let none = "name: p\nservices:\n  a: {image: x, ports: [{target: 80}]}\n";
        assert_eq!(from_project(&project(none)).unwrap(), None);
        let two = "name: p\nx-hoist: {ingress: {}}\nservices:\n  a: {image: x, ports: [{target: 80}]}\n  b: {image: x, ports: [{target: 81}]}\n";
        let e = format!("{:#}", from_project(&project(two)).unwrap_err());
        assert!(e.contains("2 services publish ports"), "{e}");
        let off = "name: p\nx-hoist: {ingress: {enabled: false}}\nservices:\n  a: {image: x, ports: [{target: 80}]}\n";
        assert_eq!(from_project(&project(off)).unwrap(), None);
    }

    #[test]
    fn ports_written_as_interpolated_strings() {
        let p = project(
            "name: p\nx-hoist: {ingress: {http_port: '8080', https_port: ' 8443'}}\nservices:\n  web: {image: x, ports: [{target: 80}], x-hoist: {ingress: {port: '80'}}}\n",
        );
        let s = from_project(&p).unwrap().unwrap();
        assert_eq!(
            (s.http_port, s.https_port, s.routes[0].port),
            (8080, 8443, 80)
        );
        for bad in ["'http'", "70000", "[80]"] {
            let yaml = format!(
                "name: p\nx-hoist: {{ingress: {{http_port: {bad}}}}}\nservices:\n  web: {{image: x, ports: [{{target: 80}}]}}\n"
            );
            let e = format!("{:#}", from_project(&project(&yaml)).unwrap_err());
            assert!(
                e.starts_with("x-hoist.ingress:") && e.contains("port"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn declared_routes_and_settings() {
        let p = project(
            r#"
name: p
x-hoist: {ingress: {image: hoist-test/caddy:latest, http_port: 8080, https_port: 8443, tls: internal, drain: 2s}}
services:
  web:
    image: x
    ports: [{target: 80}]
    x-hoist: {ingress: {hosts: [shop.example.com], paths: [/], health: {path: /cgi-bin/health, interval: 1s, timeout: 500ms}}}
  api:
    image: x
    ports: [{target: 8080}]
    x-hoist: {ingress: {hosts: [shop.example.com], paths: [/api], port: 8080}}
"#,
        );
        let s = from_project(&p).unwrap().unwrap();
        assert_eq!(s.image, "hoist-test/caddy:latest");
        assert_eq!(
            (s.http_port, s.https_port, s.tls),
            (8080, 8443, Tls::Internal)
        );
        assert_eq!(s.drain, Duration::from_secs(2));
        let web = s.routes.iter().find(|r| r.service == "web").unwrap();
        assert_eq!(web.health.path, "/cgi-bin/health");
        assert_eq!(web.health.interval, Duration::from_secs(1));
        assert_eq!(web.health.timeout, Duration::from_millis(500));
        let api = s.routes.iter().find(|r| r.service == "api").unwrap();
        assert_eq!(
            (api.port, api.paths.clone()),
            (8080, vec!["/api".to_string()])
        );
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            (
                "name: p\nservices:\n  web: {image: x, x-hoist: {ingress: {port: 80}}}\n",
                "services.web.x-hoist.ingress.port: 80 is not published",
            ),
            (
                "name: p\nservices:\n  web: {image: x, ports: [{target: 80}], x-hoist: {ingress: {paths: [api]}}}\n",
                "services.web.x-hoist.ingress.paths[0]: \"api\" must start with /",
            ),
            (
                "name: p\nx-hoist: {ingress: {tls: maybe}}\nservices:\n  web: {image: x, ports: [{target: 80}]}\n",
                "x-hoist.ingress.tls: \"maybe\"",
            ),
            (
                "name: p\nx-hoist: {ingress: {colour: red}}\nservices:\n  web: {image: x, ports: [{target: 80}]}\n",
                "x-hoist.ingress: unknown field `colour`",
            ),
        ];
        for (yaml, want) in cases {
            let e = format!("{:#}", from_project(&project(yaml)).unwrap_err());
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    /// Issue 17, finding 2: values that would add a global option, a site or a file server to
    /// the Caddyfile are refused, naming the key.
    #[test]
    fn caddyfile_syntax_in_routes_is_refused() {
        let route = |ingress: &str| {
            format!(
                "name: p\nservices:\n  web: {{image: x, ports: [{{target: 80}}], x-hoist: {{ingress: {ingress}}}}}\n"
            )
        };
        let top = |ingress: &str| {
            format!(
                "name: p\nx-hoist: {{ingress: {ingress}}}\nservices:\n  web: {{image: x, ports: [{{target: 80}}]}}\n"
            )
        };
        let cases = [
            (
                route(r#"{hosts: ["a.example {\n}\n{\n\tadmin 0.0.0.0:2019\n}\nb.example"]}"#),
                "services.web.x-hoist.ingress.hosts[0]: ",
            ),
            (route(r#"{hosts: ["a.example\tb"]}"#), "hosts[0]: "),
            (route(r#"{hosts: [ok.example, "x#y"]}"#), "hosts[1]: "),
            (route(r#"{hosts: ["\"q\""]}"#), "hosts[0]: "),
            (route(r#"{hosts: ["{env.HOME}"]}"#), "hosts[0]: "),
            (
                route(
                    r#"{paths: ["/ {\n\t\tfile_server {\n\t\t\troot /\n\t\t}\n\t}\n\thandle /x"]}"#,
                ),
                "services.web.x-hoist.ingress.paths[0]: ",
            ),
            (route(r#"{paths: ["/a b"]}"#), "paths[0]: "),
            (route(r#"{paths: ["/{path}"]}"#), "paths[0]: "),
            (route(r#"{paths: ["/#"]}"#), "paths[0]: "),
            (
                route(r#"{health: {path: "/ok\n\t\t}\n\t}\n}\n:9999 {\n\tfile_server"}}"#),
                "services.web.x-hoist.ingress.health.path: ",
            ),
            (route(r#"{health: {path: "/ok\"x"}}"#), "health.path: "),
            (
                route(r#"{health: {interval: "1e30"}}"#),
                "services.web.x-hoist.ingress.health.interval: \"1e30\" is too long",
            ),
            (
                route(r#"{health: {timeout: "18446744073709551615"}}"#),
                "health.timeout: ",
            ),
            (
                top(r#"{email: "ops@example.com\n\tadmin 0.0.0.0:2019"}"#),
                "x-hoist.ingress.email: ",
            ),
            (top(r#"{email: "ops"}"#), "x-hoist.ingress.email: "),
            (top(r#"{drain: "-1s"}"#), "x-hoist.ingress.drain: "),
        ];
        for (yaml, want) in cases {
            let e = format!("{:#}", from_project(&project(&yaml)).unwrap_err());
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
