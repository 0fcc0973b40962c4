//! The mesh proxy's configuration as text: one service's replicas in, an HAProxy configuration
//! out (templates/haproxy.cfg.j2). Pure and deterministic, so every case is a table test and
//! an unchanged view gives unchanged bytes (no reload needed).

use anyhow::{Context, Result};
use minijinja::Value;
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("../../templates/haproxy.cfg.j2");

/// A ready replica of a meshed service, as the proxies reach it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Upstream {
    /// The machine it runs on (inventory name).
    pub machine: String,
    /// Its slot label (`2`, `global`).
    pub slot: String,
    /// Container port → where the proxies reach it.
    pub ports: BTreeMap<u16, Target>,
}

/// Where a proxy connects to reach one port of a replica.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// `MACHINE_ADDRESS:HOSTPORT` (plain mesh); the replica's container address and port (a
    /// replica on the proxy's machine, encrypted mesh); `MACHINE_ADDRESS:7443`, its machine's
    /// gateway (a replica on another machine, encrypted mesh).
    pub address: String,
    /// Through a gateway: the name (TLS SNI) the gateway knows the replica's port by
    /// (`tls::replica_sni`). The connection is then TLS with this machine's certificate,
    /// verified against the fleet CA.
    pub gateway_sni: Option<String>,
}

impl Target {
    pub fn plain(address: String) -> Target {
        Target {
            address,
            gateway_sni: None,
        }
    }
}

/// The configuration of `service`'s proxy on `machine`, listening on `ports`, balancing over
/// `upstreams`. Every machine balances over all replicas alike: a replica on the proxy's own
/// machine saves a network hop but not the proxy's, and spreading load evenly matters more.
pub fn haproxy_cfg(
    project: &str,
    service: &str,
    machine: &str,
    ports: &[u16],
    upstreams: &[Upstream],
) -> Result<String> {
    let mut sorted = upstreams.to_vec();
    sorted.sort();
    let listeners: Vec<Value> = ports
        .iter()
        .map(|port| {
            let servers: Vec<Value> = sorted
                .iter()
                .filter_map(|u| {
                    let target = u.ports.get(port)?;
                    Some(Value::from(BTreeMap::from([
                        (
                            "name",
                            Value::from(server_name(service, &u.slot, &u.machine)),
                        ),
                        ("address", Value::from(target.address.clone())),
                        ("sni", Value::from(target.gateway_sni.clone())),
                    ])))
                })
                .collect();
            Value::from(BTreeMap::from([
                ("port", Value::from(*port)),
                ("servers", Value::from(servers)),
            ]))
        })
        .collect();
    // Every value goes through the configuration-token guard: an address from the machines
    // file or `ssh -G` cannot add a server or an option (issue 17, finding 3).
    let mut env = crate::safe::template_env();
    env.add_template("haproxy.cfg", TEMPLATE)
        .context("templates/haproxy.cfg.j2")?;
    let (crt, ca) = (super::credentials::MACHINE_PEM, super::credentials::CA_PEM);
    env.get_template("haproxy.cfg")?
        .render(minijinja::context! { project, service, machine, listeners, crt, ca })
        .context("rendering the mesh configuration")
}

/// `api.2.m1`: HAProxy allows letters, digits and `-_.:` in a server name.
fn server_name(service: &str, slot: &str, machine: &str) -> String {
    format!("{service}.{slot}.{machine}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The structure reader the fuzz target uses: tests check rendered files with it.
#[cfg(test)]
#[path = "../../fuzz/fuzz_targets/haproxy_model.rs"]
pub(super) mod haproxy_model;

#[cfg(test)]
mod tests {
    use super::*;

    fn up(machine: &str, slot: &str, ports: &[(u16, &str)]) -> Upstream {
        Upstream {
            machine: machine.into(),
            slot: slot.into(),
            ports: ports
                .iter()
                .map(|(p, a)| (*p, Target::plain(a.to_string())))
                .collect(),
        }
    }

    /// The listener blocks of a rendered configuration (the fixed header left out).
    fn listeners(cfg: &str) -> String {
        cfg[cfg.find("listen ").unwrap_or(cfg.len())..].to_string()
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            ports: Vec<u16>,
            upstreams: Vec<Upstream>,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "replicas on every machine, in a stable order",
                ports: vec![8080],
                upstreams: vec![
                    up("m3", "2", &[(8080, "10.0.0.13:32771")]),
                    up("m1", "1", &[(8080, "10.0.0.11:32768")]),
                ],
                want: "listen api_8080
    bind :8080
    balance leastconn
    server api.1.m1 10.0.0.11:32768 check
    server api.2.m3 10.0.0.13:32771 check

",
            },
            Case {
                name: "no replica ready: the port still listens, and refuses",
                ports: vec![8080],
                upstreams: vec![],
                want: "listen api_8080
    bind :8080
    balance leastconn

",
            },
            Case {
                name: "two ports; a replica that does not publish one is left out of it",
                ports: vec![8080, 9000],
                upstreams: vec![
                    up(
                        "m1",
                        "1",
                        &[(8080, "10.0.0.11:32768"), (9000, "10.0.0.11:32769")],
                    ),
                    up("m2", "2", &[(8080, "10.0.0.12:32768")]),
                ],
                want: "listen api_8080
    bind :8080
    balance leastconn
    server api.1.m1 10.0.0.11:32768 check
    server api.2.m2 10.0.0.12:32768 check

listen api_9000
    bind :9000
    balance leastconn
    server api.1.m1 10.0.0.11:32769 check

",
            },
        ];
        for c in cases {
            let cfg = haproxy_cfg("shop", "api", "m1", &c.ports, &c.upstreams).unwrap();
            assert_eq!(
                listeners(&cfg).trim_end(),
                c.want.trim_end(),
                "case: {}",
                c.name
            );
            assert!(
                cfg.contains("mode tcp") && cfg.contains("fall 2 rise 1"),
                "{cfg}"
            );
        }
    }

    #[test]
    fn server_names_are_ones_haproxy_accepts() {
        assert_eq!(server_name("api", "2", "m1"), "api.2.m1");
        assert_eq!(
            server_name("api", "global", "web 1@eu"),
            "api.global.web_1_eu"
        );
    }

    use super::haproxy_model;

    /// Issue 17, finding 3, at the renderer: an address that would add a server or an option
    /// fails the rendering; a good one reads back as exactly the intended servers.
    #[test]
    fn addresses_cannot_add_servers() {
        for bad in [
            // Found by the fuzz target: an empty address dropped a word from the server line.
            "",
            "10.0.0.1:80\n    server evil 6.6.6.6:80",
            "10.0.0.1:80 backup",
            "10.0.0.1:80#",
            "${HOME}:80",
            "\"10.0.0.1\":80",
        ] {
            let ups = vec![up("m1", "1", &[(80, bad)])];
            assert!(
                haproxy_cfg("p", "api", "m1", &[80], &ups).is_err(),
                "{bad:?}"
            );
        }
        let ups = vec![
            up("m1", "1", &[(80, "10.0.0.11:32768")]),
            up("m2", "2", &[(80, "[fd00::2]:32768")]),
        ];
        let cfg = haproxy_cfg("p", "api", "m1", &[80], &ups).unwrap();
        let sections = haproxy_model::parse(&cfg).unwrap();
        let listens: Vec<_> = sections.iter().filter(|s| s.head[0] == "listen").collect();
        assert_eq!(listens.len(), 1);
        let servers: Vec<Vec<String>> = listens[0]
            .lines
            .iter()
            .filter(|l| l[0] == "server")
            .cloned()
            .collect();
        assert_eq!(
            servers,
            vec![
                vec!["server", "api.1.m1", "10.0.0.11:32768", "check"],
                vec!["server", "api.2.m2", "[fd00::2]:32768", "check"],
            ]
            .into_iter()
            .map(|l| l.into_iter().map(String::from).collect::<Vec<_>>())
            .collect::<Vec<_>>()
        );
    }

    /// Encrypted: a local replica at its container address in clear, a remote one through its
    /// machine's gateway with mutual TLS, verified by name, health-checked the same way.
    #[test]
    fn remote_replicas_through_the_gateway() {
        let mut ups = vec![
            up("m1", "1", &[(8080, "172.18.0.5:8080")]),
            up("m2", "2", &[(8080, "10.0.0.12:7443")]),
        ];
        let sni = "r0123456789abcdef01234567.m2.hoist";
        ups[1].ports.get_mut(&8080).unwrap().gateway_sni = Some(sni.into());
        let cfg = haproxy_cfg("p", "api", "m1", &[8080], &ups).unwrap();
        let want = format!(
            "listen api_8080
    bind :8080
    balance leastconn
    server api.1.m1 172.18.0.5:8080 check
    server api.2.m2 10.0.0.12:7443 ssl crt /etc/hoist/tls/machine.pem ca-file /etc/hoist/tls/ca.pem verify required verifyhost {sni} sni str({sni}) ssl-min-ver TLSv1.3 check-sni {sni} check
"
        );
        assert_eq!(listeners(&cfg).trim_end(), want.trim_end());
        haproxy_model::parse(&cfg).unwrap();
        // A name that is not one token cannot reach the file.
        ups[1].ports.get_mut(&8080).unwrap().gateway_sni = Some("x) backup".into());
        assert!(haproxy_cfg("p", "api", "m1", &[8080], &ups).is_err());
    }

    #[test]
    fn same_view_same_bytes() {
        let a = vec![up("m1", "1", &[(80, "a:1")]), up("m2", "2", &[(80, "b:2")])];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(
            haproxy_cfg("p", "web", "m1", &[80], &a).unwrap(),
            haproxy_cfg("p", "web", "m1", &[80], &b).unwrap()
        );
    }
}
