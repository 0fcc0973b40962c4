//! Fuzzes the machines file parser (issue 17) on arbitrary text: it must return a fleet or an
//! error naming the file, never panic; and every fleet it returns must hold only values that
//! are safe where they go — a docker socket path ssh forwards and a shell probe names, an ssh
//! destination no part of which ssh could read as an option, a peer address fit for the
//! Caddyfile and haproxy.cfg.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/safe.rs"]
mod safe;

#[allow(dead_code)]
#[path = "../../src/inventory.rs"]
mod inventory;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fleet = match inventory::parse(text, "hoist.yaml", std::path::Path::new("/nonexistent")) {
        Ok(f) => f,
        Err(e) => {
            assert!(format!("{e:#}").starts_with("hoist.yaml: "), "{e:#}");
            return;
        }
    };
    let mut locals = 0;
    for m in &fleet.machines {
        assert!(
            safe::socket_path(&m.docker_socket).is_ok(),
            "{:?}",
            m.docker_socket
        );
        assert!(safe::is_config_token(&m.docker_socket));
        if let Some(a) = &m.peer_address {
            assert!(safe::network_address(a).is_ok(), "{a:?}");
            assert!(safe::is_config_token(a), "{a:?}");
        }
        match &m.address {
            inventory::Address::Local => locals += 1,
            inventory::Address::Ssh(t) => {
                let d = &t.destination;
                assert!(!d.is_empty() && !d.starts_with('-'), "{d:?}");
                assert!(
                    !d.chars().any(|c| c.is_whitespace() || c.is_control()),
                    "{d:?}"
                );
                let rest = d.strip_prefix("ssh://").unwrap_or(d);
                let host = rest.rsplit('@').next().unwrap_or(rest);
                assert!(!host.starts_with('-') && !host.starts_with("[-"), "{d:?}");
                if let Some((user, _)) = rest.rsplit_once('@') {
                    assert!(!user.starts_with('-'), "{d:?}");
                }
                if let Some(u) = &t.user {
                    assert!(
                        !u.starts_with('-') && !u.contains(char::is_whitespace),
                        "{u:?}"
                    );
                }
                assert_ne!(t.port, Some(0));
            }
        }
    }
    assert!(locals <= 1);
});
