//! The ingress configuration as text: routes and their upstreams in, a Caddyfile
//! out (templates/Caddyfile.j2). Pure, so every case is a table test; the same
//! inputs always give the same bytes, which lets Caddy skip reloads that change
//! nothing.

use super::spec::{IngressSpec, Route, Tls};
use anyhow::{Context, Result};
use minijinja::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const TEMPLATE: &str = include_str!("../../templates/Caddyfile.j2");

/// `ADDRESS:PORT` of every ready replica, by service.
pub type Upstreams = BTreeMap<String, Vec<String>>;

struct Site {
    /// Each a token of the site's address line (`shop.example`, `http://shop.example`, `:80`).
    addresses: Vec<String>,
    routes: Vec<RouteView>,
}

struct RouteView {
    service: String,
    matchers: Vec<String>,
    upstreams: Vec<String>,
    health_path: String,
    health_interval: String,
    health_timeout: String,
}

/// The Caddyfile of the ingress on `machine`.
pub fn caddyfile(
    project: &str,
    machine: &str,
    spec: &IngressSpec,
    upstreams: &Upstreams,
) -> Result<String> {
    // One site per set of host names; routes without hosts answer for any host.
    let mut sites: BTreeMap<Vec<String>, Vec<&Route>> = BTreeMap::new();
    for r in &spec.routes {
        let mut hosts = r.hosts.clone();
        hosts.sort();
        hosts.dedup();
        sites.entry(hosts).or_default().push(r);
    }
    let sites: Vec<Site> = sites
        .into_iter()
        .map(|(hosts, mut routes)| {
            // Caddy tries `handle` blocks with named matchers in the order written:
            // the longest path first, so /api/v2 wins over /api; catch-alls last.
            routes.sort_by_key(|r| {
                std::cmp::Reverse(r.paths.iter().map(String::len).max().unwrap_or(0))
            });
            Site {
                addresses: site_addresses(&hosts, spec.tls),
                routes: routes.into_iter().map(|r| view(r, upstreams)).collect(),
            }
        })
        .collect();
    // Every value goes through the configuration-token guard: whatever a route holds, it
    // cannot end a block or add a site or an option (issue 17, finding 2).
    let mut env = crate::safe::template_env();
    env.add_template("Caddyfile", TEMPLATE)
        .context("templates/Caddyfile.j2")?;
    let text = env
        .get_template("Caddyfile")?
        .render(minijinja::context! {
            project, machine,
            sites => sites.iter().map(Site::value).collect::<Vec<_>>(),
            tls => match spec.tls { Tls::Acme => "acme", Tls::Internal => "internal", Tls::Off => "off" },
            email => spec.email.clone(),
            grace => go_duration(spec.drain.max(Duration::from_secs(5)) * 2),
        })
        .context("rendering the ingress configuration")?;
    Ok(text)
}

impl Site {
    /// The template's view (minijinja without its serde feature takes plain maps).
    fn value(&self) -> Value {
        let routes: Vec<Value> = self.routes.iter().map(RouteView::value).collect();
        Value::from(BTreeMap::from([
            ("addresses", Value::from(self.addresses.clone())),
            ("routes", Value::from(routes)),
        ]))
    }
}

impl RouteView {
    fn value(&self) -> Value {
        Value::from(BTreeMap::from([
            ("service", Value::from(self.service.clone())),
            ("matchers", Value::from(self.matchers.clone())),
            ("upstreams", Value::from(self.upstreams.clone())),
            ("health_path", Value::from(self.health_path.clone())),
            ("health_interval", Value::from(self.health_interval.clone())),
            ("health_timeout", Value::from(self.health_timeout.clone())),
        ]))
    }
}

fn site_addresses(hosts: &[String], tls: Tls) -> Vec<String> {
    if hosts.is_empty() {
        return vec![":80".to_string()];
    }
    let scheme = if tls == Tls::Off { "http://" } else { "" };
    hosts.iter().map(|h| format!("{scheme}{h}")).collect()
}

fn view(r: &Route, upstreams: &Upstreams) -> RouteView {
    let mut ups = upstreams.get(&r.service).cloned().unwrap_or_default();
    ups.sort();
    ups.dedup();
    // `/api` means /api and everything under it, not /apiary; `/` (or none) is everything.
    let matchers = r
        .paths
        .iter()
        .filter(|p| p.as_str() != "/")
        .flat_map(|p| {
            let base = p.trim_end_matches('/');
            [base.to_string(), format!("{base}/*")]
        })
        .collect::<Vec<_>>();
    let matchers = if r.paths.iter().any(|p| p == "/") {
        Vec::new()
    } else {
        matchers
    };
    RouteView {
        service: r.service.clone(),
        matchers,
        upstreams: ups,
        health_path: r.health.path.clone(),
        health_interval: go_duration(r.health.interval),
        health_timeout: go_duration(r.health.timeout),
    }
}

/// A duration as Go (and so Caddy) parses it.
fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The structure reader the fuzz target uses: tests check rendered files with it.
#[cfg(test)]
#[path = "../../fuzz/fuzz_targets/caddyfile_model.rs"]
mod caddyfile_model;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::spec::HealthCheck;

    fn spec(tls: Tls, routes: Vec<Route>) -> IngressSpec {
        IngressSpec {
            image: "caddy:2".into(),
            http_port: 80,
            https_port: 443,
            tls,
            email: None,
            drain: Duration::from_secs(1),
            routes,
        }
    }

    fn route(service: &str, hosts: &[&str], paths: &[&str]) -> Route {
        Route {
            service: service.into(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            port: 80,
            health: HealthCheck {
                path: "/health".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(500),
            },
        }
    }

    fn ups(list: &[(&str, &[&str])]) -> Upstreams {
        list.iter()
            .map(|(s, a)| (s.to_string(), a.iter().map(|x| x.to_string()).collect()))
            .collect()
    }

    /// (case, spec, upstreams, lines the Caddyfile must contain, text it must not)
    type Case = (
        &'static str,
        IngressSpec,
        Upstreams,
        Vec<&'static str>,
        Vec<&'static str>,
    );

    #[test]
    fn table() {
        let cases: Vec<Case> = vec![
            (
                "default route: any host, every path, upstreams sorted",
                spec(Tls::Acme, vec![route("web", &[], &[])]),
                ups(&[("web", &["10.0.0.2:3001", "10.0.0.1:3000"])]),
                vec![
                    ":80 {",
                    "\thandle {",
                    "\t\treverse_proxy 10.0.0.1:3000 10.0.0.2:3001 {",
                    "\t\t\thealth_uri /health",
                    "\t\t\thealth_interval 1000ms",
                    "\t\t\thealth_timeout 500ms",
                    "\t\t\t\tdial_timeout 3s",
                ],
                vec!["local_certs", "email"],
            ),
            (
                "no ready replica: a 503 that says so, never an empty proxy",
                spec(Tls::Acme, vec![route("web", &[], &["/"])]),
                Upstreams::new(),
                vec!["\t\trespond \"no ready replica of web\" 503"],
                vec!["reverse_proxy"],
            ),
            (
                "host names with internal certificates; paths are prefixes",
                spec(
                    Tls::Internal,
                    vec![
                        route("web", &["shop.example.com"], &["/"]),
                        route("api", &["shop.example.com"], &["/api/"]),
                    ],
                ),
                ups(&[("web", &["a:1"]), ("api", &["b:2"])]),
                vec![
                    "\tlocal_certs",
                    "shop.example.com {",
                    "\t@route1 path /api /api/*",
                    "\thandle @route1 {",
                    "\t\treverse_proxy b:2 {",
                    "\t\treverse_proxy a:1 {",
                ],
                vec![":80 {"],
            ),
            (
                "tls off: host names over plain HTTP; two host sets, two sites",
                spec(
                    Tls::Off,
                    vec![
                        route("web", &["b.example", "a.example"], &[]),
                        route("admin", &["admin.example"], &[]),
                    ],
                ),
                ups(&[("web", &["a:1"]), ("admin", &["c:3"])]),
                vec![
                    "http://a.example, http://b.example {",
                    "http://admin.example {",
                ],
                vec!["local_certs"],
            ),
        ];
        for (case, spec, upstreams, want, not) in cases {
            let text = caddyfile("shop", "m1", &spec, &upstreams).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for w in want {
                assert!(lines.contains(&w), "{case}: missing {w:?} in\n{text}");
            }
            for n in not {
                assert!(!text.contains(n), "{case}: unexpected {n:?} in\n{text}");
            }
        }
    }

    use super::caddyfile_model;

    /// Issue 17, finding 2, at the renderer: values no loader checked (a route built in code)
    /// still cannot add a site, a block or a global option — rendering fails instead.
    #[test]
    fn values_that_would_change_the_structure_are_refused() {
        // An empty host (found by the fuzz target): the site line would be a bare `{`.
        let s = spec(Tls::Acme, vec![route("web", &[""], &[])]);
        assert!(caddyfile("p", "m1", &s, &Upstreams::new()).is_err());
        let evil = [
            "a.example {\n}\n{\n\tadmin 0.0.0.0:2019\n}\nb.example",
            "/ {\n\t\tfile_server\n\t}\n\thandle /x",
            "x#y",
            "x y",
            "\"x",
            "{env.SECRET}",
            "a\\b",
        ];
        for bad in evil {
            let mut host = route("web", &[bad], &[]);
            host.health.path = "/".into();
            let mut path = route("web", &[], &[&format!("/{bad}")]);
            path.health.path = "/".into();
            let mut health = route("web", &[], &[]);
            health.health.path = format!("/{bad}");
            for (what, r) in [("host", host), ("path", path), ("health", health)] {
                let s = spec(Tls::Acme, vec![r]);
                assert!(
                    caddyfile("p", "m1", &s, &ups(&[("web", &["a:1"])])).is_err(),
                    "{what} {bad:?} rendered"
                );
            }
            let s = spec(Tls::Acme, vec![route("web", &[], &[])]);
            let upstream = format!("10.0.0.1:80 {bad}");
            assert!(caddyfile("p", "m1", &s, &ups(&[("web", &[upstream.as_str()])])).is_err());
            let mut s = spec(Tls::Acme, vec![route("web", &[], &[])]);
            s.email = Some(format!("a@b.c {bad}"));
            assert!(caddyfile("p", "m1", &s, &Upstreams::new()).is_err());
        }
    }

    /// The rendered file reads back (as Caddy's lexer splits it) as exactly the intended sites.
    #[test]
    fn renders_exactly_the_intended_sites() {
        let s = spec(
            Tls::Off,
            vec![
                route("web", &["b.example", "a.example"], &["/"]),
                route("api", &["b.example", "a.example"], &["/api"]),
                route("admin", &["*.admin.example"], &[]),
                route("any", &[], &[]),
            ],
        );
        let text = caddyfile("p", "m1", &s, &ups(&[("web", &["10.0.0.1:3000"])])).unwrap();
        let nodes = caddyfile_model::parse(&text).unwrap();
        let heads: Vec<Vec<String>> = nodes
            .iter()
            .map(|n| caddyfile_model::addresses(&n.tokens))
            .collect();
        assert_eq!(
            heads,
            vec![
                vec![],
                vec![":80".to_string()],
                vec!["http://*.admin.example".to_string()],
                vec![
                    "http://a.example".to_string(),
                    "http://b.example".to_string()
                ],
            ],
            "{text}"
        );
        let global: Vec<&str> = nodes[0]
            .block
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.tokens[0].as_str())
            .collect();
        assert_eq!(global, ["admin", "grace_period"]);
        let shop = nodes[3].block.as_ref().unwrap();
        let handles = shop.iter().filter(|n| n.tokens[0] == "handle").count();
        assert_eq!(handles, 2, "{text}");
    }

    #[test]
    fn same_inputs_same_bytes() {
        let s = spec(Tls::Acme, vec![route("web", &[], &[])]);
        let u = ups(&[("web", &["b:2", "a:1", "a:1"])]);
        let one = caddyfile("p", "m1", &s, &u).unwrap();
        assert_eq!(one, caddyfile("p", "m1", &s, &u).unwrap());
        assert!(one.contains("reverse_proxy a:1 b:2 {"), "{one}");
    }
}
