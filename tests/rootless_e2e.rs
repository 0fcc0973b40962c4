//! Rootless Docker: the lab's opt-in machine `rl`, where user alice runs her own engine
//! (rootlesskit; socket /run/user/1000/docker.sock) and nothing runs as root. hoist reaches it as
//! alice, deploys a service publishing a port ≥ 1024 and the ingress on unprivileged ports, rolls
//! it to a new version; a port below 1024 is refused by the engine with its remedy, and hoist
//! reports it and rolls the service back.

mod common;

use common::lab::{Lab, Output, http_get_until, run};
use std::path::{Path, PathBuf};
use std::time::Duration;

const RL_IP: &str = "172.31.77.203";
const HTTP: u16 = 18781;
const HTTPS: u16 = 18745;
const WEB: u16 = 18791;

fn hoist_in(machines: &Path, dir: &Path, args: &[&str]) -> Output {
    run(common::lab::hoist_command()
        .current_dir(dir)
        .args(["-m", machines.to_str().unwrap()])
        .args(args))
}

fn compose(dir: &Path, version: &str, extra: &str) {
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "x-hoist:
  ingress:
    image: hoist-test/caddy:latest
    http_port: {HTTP}
    https_port: {HTTPS}
    tls: off
services:
  web:
    image: hoist-test/app:{version}
    ports: [\"{WEB}:80\"]
    x-hoist:
      ingress: {{health: {{path: /cgi-bin/health}}}}
{extra}"
        ),
    )
    .unwrap();
}

#[test]
fn a_rootless_engine_serves_on_unprivileged_ports() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let machines: PathBuf = lab.rootless();
    let dir = std::env::temp_dir().join(format!("hoist-e2e-rootless-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let project = format!("e2erl{}", std::process::id());

    let out = hoist_in(&machines, &dir, &["machines", "--json"]);
    out.expect_success("machines");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["machines"][0]["rootless"], true, "{out}");

    compose(&dir, "v1", "");
    hoist_in(&machines, &dir, &["-p", &project, "up", "--yes"]).expect_success("up v1");
    let direct = http_get_until(RL_IP, WEB, "/", 200, Duration::from_secs(30));
    assert!(direct.starts_with("version=v1 machine=rl "), "{direct}");
    let ingress = http_get_until(RL_IP, HTTP, "/", 200, Duration::from_secs(30));
    assert!(ingress.starts_with("version=v1 machine=rl "), "{ingress}");

    compose(&dir, "v2", "");
    hoist_in(&machines, &dir, &["-p", &project, "up", "--yes"]).expect_success("up v2");
    let ingress = http_get_until(RL_IP, HTTP, "/", 200, Duration::from_secs(30));
    assert!(ingress.starts_with("version=v2 machine=rl "), "{ingress}");
    let plan = hoist_in(&machines, &dir, &["-p", &project, "plan"]);
    assert!(plan.stdout.contains("No changes."), "{plan}");

    // A privileged port: the engine refuses it and says how to allow it; nothing else changes.
    compose(
        &dir,
        "v2",
        "  admin:\n    image: hoist-test/app:v1\n    ports: [\"890:80\"]\n",
    );
    let out = hoist_in(&machines, &dir, &["-p", &project, "up", "--yes"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("admin.1@rl")
            && out.stderr.contains("cannot expose privileged port 890")
            && out.stderr.contains("net.ipv4.ip_unprivileged_port_start"),
        "{out}"
    );
    let ingress = http_get_until(RL_IP, HTTP, "/", 200, Duration::from_secs(10));
    assert!(ingress.starts_with("version=v2 machine=rl "), "{ingress}");

    hoist_in(&machines, &dir, &["-p", &project, "down", "--yes"]).expect_success("down");
    let _ = std::fs::remove_dir_all(&dir);
}
