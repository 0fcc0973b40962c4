//! Fuzzes replica addresses and names through the mesh's haproxy.cfg renderer (issue 17,
//! finding 3): for any machine names, slots and addresses, rendering either fails or gives a
//! configuration HAProxy reads as exactly one `listen` section per port with exactly the
//! intended servers (checked with `haproxy_model`); addresses the machines file accepts always
//! render.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/safe.rs"]
mod safe;

#[allow(dead_code)]
#[path = "../../src/mesh/render.rs"]
mod render;

mod haproxy_model;

use libfuzzer_sys::fuzz_target;
use render::{Upstream, haproxy_cfg};

/// Replicas separated by `\x1e`: machine `\x1f` slot `\x1f` address (the port is 8080).
fn upstreams(text: &str) -> Vec<Upstream> {
    text.split('\x1e')
        .take(8)
        .map(|r| {
            let f: Vec<&str> = r.split('\x1f').collect();
            Upstream {
                machine: f.first().unwrap_or(&"m1").to_string(),
                slot: f.get(1).unwrap_or(&"1").to_string(),
                ports: [(8080u16, f.get(2).unwrap_or(&"10.0.0.1:1").to_string())].into(),
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ups = upstreams(text);
    let cfg = match haproxy_cfg("p", "api", "m1", &[8080], &ups) {
        Ok(c) => c,
        Err(e) => {
            let accepted = ups.iter().all(|u| {
                u.ports.values().all(|a| {
                    a.rsplit_once(':').is_some_and(|(h, p)| {
                        safe::network_address(h).is_ok() && p.parse::<u16>().is_ok()
                    })
                })
            });
            assert!(!accepted, "accepted addresses failed to render: {e:#}");
            return;
        }
    };
    let sections = haproxy_model::parse(&cfg).unwrap_or_else(|e| panic!("{e}\n{cfg}"));
    let heads: Vec<&str> = sections.iter().map(|s| s.head[0].as_str()).collect();
    assert_eq!(heads, ["global", "defaults", "listen"], "{cfg}");
    let listen = &sections[2];
    assert_eq!(listen.head, ["listen", "api_8080"], "{cfg}");
    let mut sorted = ups.clone();
    sorted.sort();
    let want: Vec<String> = sorted.iter().map(|u| u.ports[&8080].clone()).collect();
    let mut got = Vec::new();
    for line in &listen.lines {
        match line[0].as_str() {
            "bind" => assert_eq!(line, &["bind", ":8080"], "{cfg}"),
            "balance" => assert_eq!(line, &["balance", "leastconn"], "{cfg}"),
            "server" => {
                assert_eq!(line.len(), 4, "{cfg}");
                assert_eq!(line[3], "check", "{cfg}");
                got.push(line[2].clone());
            }
            other => panic!("unexpected {other:?}\n{cfg}"),
        }
    }
    assert_eq!(got, want, "{cfg}");
});
