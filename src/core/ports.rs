//! Host ports the plan needs that something else on a machine already holds: a plan error,
//! named before anything is touched, instead of an engine's "port is already allocated" in
//! the middle of `up`. Pure: the holders come from the observation.

use super::plan::{Action, Plan};
use std::collections::BTreeMap;

/// A host port a container publishes on purpose (`"8080:80"`), or the ingress's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
}

/// A host port held on a machine by a container that is not the project's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub port: HostPort,
    /// The container's name.
    pub holder: String,
    /// The hoist project it belongs to, when it is one of hoist's.
    pub project: Option<String>,
}

/// The fixed host ports of a service's recorded port list (`8080:80/tcp`,
/// `127.0.0.1:53:53/udp`, `8000-8001:80/tcp`); ports left to the engine (`80/tcp`,
/// `127.0.0.1::80`) are none.
pub fn fixed(ports: &[String]) -> Vec<HostPort> {
    let mut out = Vec::new();
    for p in ports {
        let (addr, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        let parts: Vec<&str> = addr.split(':').collect();
        if parts.len() < 2 {
            continue;
        }
        let host = parts[parts.len() - 2];
        let (lo, hi) = host.split_once('-').unwrap_or((host, host));
        let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
            continue;
        };
        for port in lo..=hi.max(lo) {
            out.push(HostPort {
                port,
                proto: proto.to_string(),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every clash between what the plan starts on a machine and what others hold there:
/// one line each, naming service, port, machine and holder, and what to do.
/// `wanted`: service → its fixed host ports; `ingress`: the project's ingress ports, wanted on
/// every machine in `ingress_machines`.
pub fn clashes(
    plan: &Plan,
    wanted: &BTreeMap<String, Vec<HostPort>>,
    ingress: &[HostPort],
    ingress_machines: &[String],
    held: &BTreeMap<String, Vec<Held>>,
) -> Vec<String> {
    let holder = |h: &Held| match &h.project {
        Some(p) => format!("container {} of hoist project {p}", h.holder),
        None => format!("container {}", h.holder),
    };
    let mut out = Vec::new();
    for step in &plan.steps {
        let starts = matches!(
            step.action,
            Action::Create | Action::Start { .. } | Action::Replace { .. } | Action::Move { .. }
        );
        let Some(service) = step.service.as_deref().filter(|_| starts) else {
            continue;
        };
        for want in wanted.get(service).into_iter().flatten() {
            for h in held.get(&step.machine).into_iter().flatten() {
                if &h.port == want {
                    let line = format!(
                        "{service}: host port {}/{} on {} is held by {}; stop it, or publish another port in services.{service}.ports",
                        want.port,
                        want.proto,
                        step.machine,
                        holder(h)
                    );
                    if !out.contains(&line) {
                        out.push(line);
                    }
                }
            }
        }
    }
    for machine in ingress_machines {
        for want in ingress {
            for h in held.get(machine).into_iter().flatten() {
                let line = format!(
                    "ingress: host port {}/{} on {machine} is held by {}; stop it, or set x-hoist.ingress.http_port / https_port",
                    want.port,
                    want.proto,
                    holder(h)
                );
                if &h.port == want && !out.contains(&line) {
                    out.push(line);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::observed::Slot;
    use crate::core::plan::Step;

    fn tcp(port: u16) -> HostPort {
        HostPort {
            port,
            proto: "tcp".into(),
        }
    }

    #[test]
    fn fixed_ports_are_those_written_with_a_host_port() {
        let ports = [
            "8080:80/tcp",
            "127.0.0.1:5353:53/udp",
            "9000-9001:90/tcp",
            "80/tcp",
            "127.0.0.1::81/tcp",
        ]
        .map(String::from);
        let got: Vec<_> = fixed(&ports)
            .iter()
            .map(|p| format!("{}/{}", p.port, p.proto))
            .collect();
        assert_eq!(got, ["5353/udp", "8080/tcp", "9000/tcp", "9001/tcp"]);
    }

    #[test]
    fn a_port_held_by_another_project_is_named_with_its_holder() {
        let plan = Plan {
            steps: vec![Step {
                machine: "m1".into(),
                service: Some("web".into()),
                slot: Some(Slot::Replica(1)),
                action: Action::Create,
                reasons: vec![],
            }],
            ..Default::default()
        };
        let wanted = BTreeMap::from([("web".to_string(), vec![tcp(8080)])]);
        let held = BTreeMap::from([
            (
                "m1".to_string(),
                vec![
                    Held {
                        port: tcp(8080),
                        holder: "shop-web-1-abc".into(),
                        project: Some("shop".into()),
                    },
                    Held {
                        port: tcp(443),
                        holder: "shop-ingress".into(),
                        project: Some("shop".into()),
                    },
                ],
            ),
            (
                "m2".to_string(),
                vec![Held {
                    port: tcp(8080),
                    holder: "nginx".into(),
                    project: None,
                }],
            ),
        ]);
        let got = clashes(
            &plan,
            &wanted,
            &[tcp(80), tcp(443)],
            &["m1".into(), "m2".into()],
            &held,
        );
        assert_eq!(
            got,
            [
                "web: host port 8080/tcp on m1 is held by container shop-web-1-abc of hoist project shop; stop it, or publish another port in services.web.ports",
                "ingress: host port 443/tcp on m1 is held by container shop-ingress of hoist project shop; stop it, or set x-hoist.ingress.http_port / https_port",
            ]
        );
        // Unchanged replicas start nothing: no clash to report.
        let quiet = Plan::default();
        assert!(clashes(&quiet, &wanted, &[], &[], &held).is_empty());
    }
}
