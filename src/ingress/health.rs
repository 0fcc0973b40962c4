//! The ingress's own view of its upstreams' health. Caddy checks every upstream
//! on the route's health path (active health checks) and sends nothing to one that
//! fails, but its admin API (2.6) reports only request and failure counts. So hoist
//! asks the same question from the same place: a GET of the route's health path
//! from inside the ingress container, within the route's health timeout; an answer
//! in 2xx is healthy, as for Caddy.
//!
//! `hoist ingress` shows the answer per upstream; `hoist up` warns when a route has
//! no healthy upstream on a machine (every request to it would get a 503).

use super::render::Upstreams;
use super::spec::{HealthCheck, Route};
use bollard::Docker;
use serde::Serialize;

/// What an exec in the ingress container costs beyond the request itself.
const EXEC_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(2);

/// One upstream's health as its ingress sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub healthy: bool,
    /// What was asked: `GET /cgi-bin/health`.
    pub check: String,
    /// Why it is unhealthy, in the prober's words (e.g. `server returned error:
    /// HTTP/1.1 404 Not Found`); empty when healthy.
    pub detail: String,
}

/// Asks `address` (`IP:PORT`) for the health path from inside the ingress container.
pub async fn probe(docker: &Docker, container: &str, address: &str, health: &HealthCheck) -> Probe {
    let check = format!("GET {}", health.path);
    // The path goes into a URL as one argument (no shell); refuse what would not
    // be one path in it.
    if !health.path.starts_with('/')
        || health
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Probe {
            healthy: false,
            check,
            detail: "the health path is not a plain URL path".into(),
        };
    }
    let url = format!("http://{address}{}", health.path);
    // No `wget -T`: some busybox builds lack it (and crash on it). The wait is bounded
    // here instead: the route's timeout, plus the exec's own round trip to the engine.
    let cmd = ["wget", "-q", "-O", "/dev/null", url.as_str()];
    let within = health.timeout + EXEC_ALLOWANCE;
    let asked =
        tokio::time::timeout(within, crate::apply::ops::exec(docker, container, &cmd)).await;
    let Ok(asked) = asked else {
        return Probe {
            healthy: false,
            check,
            detail: format!("no answer within {} ms", health.timeout.as_millis()),
        };
    };
    match asked {
        Ok((0, _)) => Probe {
            healthy: true,
            check,
            detail: String::new(),
        },
        Ok((code, out)) => Probe {
            healthy: false,
            check,
            detail: plain_failure(&out, code),
        },
        Err(e) => Probe {
            healthy: false,
            check,
            detail: format!("could not ask from the ingress container: {e:#}"),
        },
    }
}

/// busybox wget's complaint without its `wget: ` prefix, or the exit code.
fn plain_failure(out: &str, code: i64) -> String {
    let line = out
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    match line.strip_prefix("wget: ").unwrap_or(line) {
        "" => format!("no answer (wget exit {code})"),
        said => said.to_string(),
    }
}

/// Routes without a healthy upstream on one machine's ingress: (route, why), the
/// why naming one upstream's failure. `upstreams`: service → addresses, as the
/// ingress routes to them.
pub async fn dead_routes<'a>(
    docker: &Docker,
    container: &str,
    routes: &'a [Route],
    upstreams: &Upstreams,
) -> Vec<(&'a Route, String)> {
    let mut dead = Vec::new();
    for route in routes {
        let addrs = upstreams.get(&route.service).cloned().unwrap_or_default();
        if addrs.is_empty() {
            dead.push((route, format!("no ready replica of {}", route.service)));
            continue;
        }
        let probes = futures_util::future::join_all(
            addrs
                .iter()
                .map(|a| probe(docker, container, a, &route.health)),
        )
        .await;
        if !probes.iter().any(|p| p.healthy) {
            let why = format!(
                "no upstream answers {} with 2xx ({}: {})",
                probes[0].check, addrs[0], probes[0].detail
            );
            dead.push((route, why));
        }
    }
    dead
}

/// How a route reads in a message: `web (shop.example.com /api)`.
pub fn describe(route: &Route) -> String {
    let mut at: Vec<&str> = route.hosts.iter().map(String::as_str).collect();
    at.extend(route.paths.iter().map(String::as_str));
    if at.is_empty() {
        route.service.clone()
    } else {
        format!("{} ({})", route.service, at.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_plainly() {
        assert_eq!(
            plain_failure("wget: server returned error: HTTP/1.1 404 Not Found\n", 1),
            "server returned error: HTTP/1.1 404 Not Found"
        );
        assert_eq!(plain_failure("", 1), "no answer (wget exit 1)");
        assert_eq!(
            plain_failure("wget: download timed out\n", 1),
            "download timed out"
        );
    }
}
