//! Fuzzes route values through the Caddyfile renderer (issue 17, finding 2). The input is cut
//! into routes and their hosts, paths, health path, upstreams and the ACME mail address. For
//! any values, rendering either fails or gives a file that Caddy's lexer reads as exactly the
//! intended global options, sites and routes (checked with `caddyfile_model`); and values the
//! compose-file checks accept always render.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/model.rs"]
mod model;

#[allow(dead_code)]
#[path = "../../src/duration.rs"]
mod duration;

#[allow(dead_code)]
#[path = "../../src/safe.rs"]
mod safe;

#[allow(dead_code)]
#[path = "../../src/ingress"]
mod ingress {
    pub mod render;
    pub mod spec;
}

mod caddyfile_model;

use ingress::render::{Upstreams, caddyfile};
use ingress::spec::{HealthCheck, IngressSpec, Route, Tls};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::time::Duration;

/// Routes are separated by `\x1e`, fields by `\x1f`: hosts, paths, health path, upstreams
/// (lists split on `,`); the first field of the whole input is the mail address.
fn routes(text: &str) -> (Option<String>, Vec<Route>, Upstreams) {
    let mut parts = text.split('\x1e');
    let email = parts.next().filter(|e| !e.is_empty()).map(str::to_string);
    let mut routes = Vec::new();
    let mut upstreams = Upstreams::new();
    for (i, r) in parts.take(8).enumerate() {
        let f: Vec<&str> = r.split('\x1f').collect();
        let list = |n: usize| -> Vec<String> {
            f.get(n)
                .filter(|s| !s.is_empty())
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        };
        let service = format!("s{i}");
        upstreams.insert(service.clone(), list(3));
        routes.push(Route {
            service,
            hosts: list(0),
            paths: list(1),
            port: 80,
            health: HealthCheck {
                path: f
                    .get(2)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "/".into()),
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
            },
        });
    }
    (email, routes, upstreams)
}

/// What the compose file's checks (and the machines file's, for upstream addresses) accept.
fn accepted(email: &Option<String>, routes: &[Route], upstreams: &Upstreams) -> bool {
    email.as_deref().is_none_or(|e| safe::email(e).is_ok())
        && routes.iter().all(|r| {
            r.hosts.iter().all(|h| safe::host_name(h, true).is_ok())
                && r.paths.iter().all(|p| safe::url_path(p, false).is_ok())
                && safe::url_path(&r.health.path, true).is_ok()
        })
        && upstreams.values().flatten().all(|u| {
            u.rsplit_once(':')
                .is_some_and(|(a, p)| safe::network_address(a).is_ok() && p.parse::<u16>().is_ok())
        })
}

/// The sites hoist means: one per set of hosts (`:80` for none), in the renderer's order.
fn intended_sites(routes: &[Route], tls: Tls) -> Vec<(Vec<String>, usize)> {
    let mut sites: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for r in routes {
        let mut hosts = r.hosts.clone();
        hosts.sort();
        hosts.dedup();
        *sites.entry(hosts).or_default() += 1;
    }
    sites
        .into_iter()
        .map(|(hosts, n)| {
            let addresses = if hosts.is_empty() {
                vec![":80".to_string()]
            } else {
                let scheme = if tls == Tls::Off { "http://" } else { "" };
                hosts.iter().map(|h| format!("{scheme}{h}")).collect()
            };
            (addresses, n)
        })
        .collect()
}

fn check(text: &str, email: &Option<String>, routes: &[Route], tls: Tls) {
    let nodes = caddyfile_model::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let (global, sites) = nodes.split_first().expect("a global block");
    assert!(global.tokens.is_empty(), "{text}");
    let options: Vec<Vec<String>> = global
        .block
        .as_ref()
        .expect("global options")
        .iter()
        .map(|n| n.tokens.clone())
        .collect();
    let mut want_options = vec![vec!["admin".to_string(), "localhost:2019".to_string()]];
    if tls == Tls::Internal {
        want_options.push(vec!["local_certs".into()]);
    }
    if let Some(e) = email {
        want_options.push(vec!["email".into(), e.clone()]);
    }
    assert_eq!(options[..options.len() - 1], want_options[..], "{text}");
    assert_eq!(
        options.last().map(|o| o[0].as_str()),
        Some("grace_period"),
        "{text}"
    );
    let got: Vec<(Vec<String>, usize)> = sites
        .iter()
        .map(|s| {
            let block = s
                .block
                .as_ref()
                .unwrap_or_else(|| panic!("site without a block\n{text}"));
            let handles = block.iter().filter(|n| n.tokens[0] == "handle").count();
            // Nothing else at a site's top level but matchers and handle blocks.
            for n in block {
                assert!(
                    n.tokens[0] == "handle" && n.block.is_some()
                        || n.tokens[0].starts_with("@route")
                            && n.tokens.get(1).map(String::as_str) == Some("path")
                            && n.block.is_none(),
                    "unexpected {:?}\n{text}",
                    n.tokens
                );
                if let Some(b) = &n.block {
                    for d in b {
                        assert!(
                            ["reverse_proxy", "respond"].contains(&d.tokens[0].as_str()),
                            "{text}"
                        );
                    }
                }
            }
            (caddyfile_model::addresses(&s.tokens), handles)
        })
        .collect();
    assert_eq!(got, intended_sites(routes, tls), "{text}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (email, routes, upstreams) = routes(text);
    if routes.is_empty() {
        return;
    }
    let tls = match data.len() % 3 {
        0 => Tls::Acme,
        1 => Tls::Internal,
        _ => Tls::Off,
    };
    let spec = IngressSpec {
        image: "caddy:2".into(),
        http_port: 80,
        https_port: 443,
        tls,
        email: email.clone(),
        drain: Duration::from_secs(1),
        routes: routes.clone(),
    };
    match caddyfile("p", "m1", &spec, &upstreams) {
        Ok(rendered) => check(&rendered, &email, &routes, tls),
        Err(e) => assert!(
            !accepted(&email, &routes, &upstreams),
            "checked values failed to render: {e:#}"
        ),
    }
});
