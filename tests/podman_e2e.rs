//! A mixed fleet: Docker 20.10 (m1), Docker 26 (m2) and Podman 5 (the lab's opt-in machine
//! `pod`, `engine: podman` in its machines file, hoist talking to Podman's Docker-compatible
//! API socket). One service with replicas on all three behind the ingress: deployed, served by
//! Podman's ingress from every machine's replicas, rolled to an image only the box has (shipped
//! to Podman with only the layers it lacks) while a client keeps opening new connections through
//! Podman's ingress, then rolled back; a plan after each step is empty.

mod common;

use common::lab::{Lab, Output, http_get, http_get_until, run};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const POD_IP: &str = "172.31.77.202";
/// This test's own ingress ports.
const HTTP: u16 = 19461;
const HTTPS: u16 = 19462;

struct Project {
    dir: PathBuf,
    name: String,
    machines: PathBuf,
}

impl Project {
    fn hoist(&self, args: &[&str]) -> Output {
        run(common::lab::hoist_command()
            .current_dir(&self.dir)
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.name])
            .args(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.hoist(args);
        assert!(out.success(), "hoist {args:?}: {out}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("hoist {args:?} printed no JSON ({e}): {out}"))
    }

    fn write(&self, version: &str) {
        std::fs::write(
            self.dir.join("compose.yaml"),
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
    ports: [\"80\"]
    deploy:
      replicas: 3
      placement:
        preferences: [{{spread: node.labels.zone}}]
    x-hoist:
      ingress: {{health: {{path: /cgi-bin/health}}}}
"
            ),
        )
        .unwrap();
    }

    fn assert_no_changes(&self) {
        let out = self.hoist(&["plan"]);
        out.expect_success("plan");
        assert!(out.stdout.contains("No changes."), "{out}");
    }
}

/// The machines `ps --json` shows running replicas of web on.
fn machines_running(p: &Project) -> BTreeSet<String> {
    let ps = p.json(&["ps", "--json"]);
    ps["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] == "web")
        .map(|r| r["machine"].as_str().unwrap().to_string())
        .collect()
}

/// What Podman's ingress answers, over `n` new connections.
fn answers(n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| http_get(POD_IP, HTTP, "/").ok())
        .filter(|(code, _)| *code == 200)
        .map(|(_, body)| body.trim().to_string())
        .collect()
}

/// `podman ARGS` on the Podman machine, from the box.
fn podman_in_pod(args: &[&str]) -> Output {
    run(std::process::Command::new("docker")
        .args([
            "exec",
            "-e",
            "PODMAN_IGNORE_CGROUPSV1_WARNING=1",
            "pod",
            "podman",
        ])
        .args(args))
}

#[test]
fn docker_and_podman_machines_share_a_service_and_a_rolling_update() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let machines = lab.podman();
    let dir = std::env::temp_dir().join(format!("hoist-e2e-podman-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = Project {
        dir,
        name: format!("e2epod{}", std::process::id()),
        machines,
    };

    // hoist sees Podman for what it is.
    let m = p.json(&["machines", "--json"]);
    let pod = m["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "pod")
        .unwrap_or_else(|| panic!("no pod in {m}"));
    assert_eq!(pod["reachable"], true, "{pod}");
    assert_eq!(pod["podman"], true, "{pod}");

    p.write("v1");
    p.hoist(&["up", "--yes"]).expect_success("up v1");
    assert_eq!(
        machines_running(&p),
        BTreeSet::from(["m1".to_string(), "m2".into(), "pod".into()])
    );
    http_get_until(POD_IP, HTTP, "/", 200, Duration::from_secs(30));
    let seen = answers(30);
    for m in ["m1", "m2", "pod"] {
        assert!(
            seen.iter()
                .any(|a| a.starts_with(&format!("version=v1 machine={m} "))),
            "Podman's ingress never reached {m}'s replica: {seen:?}"
        );
    }
    p.assert_no_changes();

    // A rolling update to an image only the box has (an earlier run may have left it on pod:
    // removed, so it ships), under load through Podman's ingress.
    podman_in_pod(&["rmi", "localhost/hoist-test/app:v4"]);
    p.write("v4");
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match http_get(POD_IP, HTTP, "/") {
                    Ok((200, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    let up = p.json(&["up", "--yes", "--json"]);
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.join().unwrap();
    eprintln!(
        "during the rolling update: {ok} answers 200, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "requests failed during the update: {failed:?}"
    );
    assert!(ok > 0, "no request went through during the update");
    let shipped = up["shipped"].as_array().unwrap_or_else(|| panic!("{up}"));
    let to_pod = shipped
        .iter()
        .find(|s| s["machine"] == "pod")
        .unwrap_or_else(|| panic!("nothing shipped to pod: {up}"));
    eprintln!("shipped to pod: {to_pod}");
    assert!(to_pod["layers_skipped"].as_u64().unwrap() >= 1, "{to_pod}");
    let seen = answers(30);
    assert!(
        seen.iter().all(|a| a.starts_with("version=v4 ")),
        "{seen:?}"
    );
    for m in ["m1", "m2", "pod"] {
        assert!(
            seen.iter()
                .any(|a| a.starts_with(&format!("version=v4 machine={m} "))),
            "{m} does not serve v4: {seen:?}"
        );
    }
    p.assert_no_changes();

    // Back to v1 on every machine, Podman's previous replica included.
    p.hoist(&["rollback", "--yes"]).expect_success("rollback");
    let seen = answers(30);
    assert!(
        seen.iter().all(|a| a.starts_with("version=v1 ")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|a| a.starts_with("version=v1 machine=pod ")),
        "{seen:?}"
    );

    p.hoist(&["down", "--yes"]).expect_success("down");
    let left = podman_in_pod(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.hoist.project={}", p.name),
        "-q",
    ]);
    assert_eq!(left.stdout.trim(), "", "left on pod after down: {left}");
    // The shipped image leaves m1 and m2 as the lab had them (unless another test runs it now).
    for m in ["m1", "m2"] {
        let _ = lab.docker_in(m, &["rmi", "hoist-test/app:v4"]);
    }
    let _ = std::fs::remove_dir_all(Path::new(&p.dir));
}

/// Podman runs health checks from systemd timers; a Podman without systemd runs none, and a
/// replica with a healthcheck never leaves `starting`. The lab's Podman machine stands in for the
/// timers except for containers labelled io.hoist.lab.no-timer=1 (tests/lab/podman/boot.sh):
/// such a replica's health gate fails saying why, and the deploy rolls back.
#[test]
fn a_health_check_podman_never_runs_is_named_as_such() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let machines = lab.podman();
    let dir = std::env::temp_dir().join(format!("hoist-e2e-podtimer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = Project {
        dir,
        name: format!("e2epodtimer{}", std::process::id()),
        machines,
    };
    std::fs::write(
        p.dir.join("compose.yaml"),
        "services:
  web:
    image: hoist-test/app:v1
    labels: {io.hoist.lab.no-timer: \"1\"}
    healthcheck: {test: [CMD, 'true'], interval: 1s, timeout: 1s, retries: 2, start_period: 0s}
    deploy:
      placement: {constraints: [node.hostname == pod]}
",
    )
    .unwrap();
    let up = p.hoist(&["up", "--yes"]);
    assert!(!up.success(), "{up}");
    assert!(
        up.stderr.contains("its health check never ran") && up.stderr.contains("systemd timers"),
        "{up}"
    );
    p.hoist(&["down", "--yes"]).expect_success("down");
    let _ = std::fs::remove_dir_all(Path::new(&p.dir));
}
