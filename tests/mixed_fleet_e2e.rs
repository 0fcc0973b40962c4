//! examples/shop on a fleet of three kinds of engine: Docker 20.10 (m1), Docker 26 keeping its
//! images in containerd's image store (the lab's opt-in `ctd`) and Podman 5 (the lab's opt-in
//! `pod`, `engine: podman`) — with the fleet's ingress in front of web and names across
//! machines (the mesh) on. The same steps as on the Docker-only fleet (tests/up_e2e.rs): deploy
//! with every web replica's machine a different engine, a plan after it empty, web served by
//! every machine's ingress from every engine's replicas, api reached by name from every
//! machine, a rolling update under load over new connections with no failed request, a failing
//! version rolled back automatically, `rollback`, and — alone on the lab — `hoist watch` moving
//! the work of the killed Podman machine to the others.

mod common;

use common::lab::{Fault, Lab, Output, http_get, http_get_until, run};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Each test's own ingress ports (HTTP; HTTPS is the next one).
const LIFECYCLE_PORT: u16 = 19471;
const FAILOVER_PORT: u16 = 19473;
const MACHINES: [&str; 3] = ["m1", "ctd", "pod"];

struct Shop {
    dir: PathBuf,
    project: String,
    machines: PathBuf,
    port: u16,
}

impl Shop {
    /// examples/shop as it is, plus a file that puts web behind the ingress and lets other
    /// machines reach api by name; the fleet: m1 (zone a), ctd (zone b), pod (zone c).
    fn new(lab: &Lab, tag: &str, port: u16) -> Shop {
        // Both opt-in machines run before anything is deployed (each call returns at once when
        // its machine already runs).
        lab.containerd();
        lab.podman();
        let dir = std::env::temp_dir().join(format!("hoist-e2e-mixed{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
        for file in ["compose.yaml", "api_key.txt"] {
            std::fs::copy(example.join(file), dir.join(file)).unwrap();
        }
        std::fs::write(
            dir.join("fleet.yaml"),
            format!(
                "x-hoist:
  ingress:
    image: hoist-test/caddy:latest
    http_port: {port}
    https_port: {https}
    tls: off
services:
  web:
    x-hoist:
      ingress: {{health: {{path: /cgi-bin/health}}}}
  api:
    expose: [\"8080\"]
",
                https = port + 1
            ),
        )
        .unwrap();
        let machines = dir.join("machines.yaml");
        std::fs::write(
            &machines,
            format!(
                "ssh_config: {}
mesh: {{image: hoist-test/haproxy:latest}}
machines:
  m1: {{ssh: m1, labels: {{zone: a}}}}
  ctd: {{ssh: ctd, labels: {{zone: b}}}}
  pod: {{ssh: pod, engine: podman, labels: {{zone: c}}}}
",
                lab.ssh_config().display()
            ),
        )
        .unwrap();
        Shop {
            dir,
            project: format!("mixed{tag}{}", std::process::id()),
            machines,
            port,
        }
    }

    fn command(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let mut cmd = common::lab::hoist_command();
        cmd.current_dir(&self.dir)
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.project])
            .args(["-f", "compose.yaml", "-f", "fleet.yaml"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn hoist(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        run(&mut self.command(env, args))
    }

    /// Running replicas by service: the machines they run on.
    fn placement(&self) -> BTreeMap<String, Vec<String>> {
        let out = self.hoist(&[], &["ps", "--json"]);
        // With a machine down, ps still reports what the others run.
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("ps printed no JSON ({e}): {out}"));
        let mut by_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in v["replicas"].as_array().unwrap() {
            by_service
                .entry(r["service"].as_str().unwrap().to_string())
                .or_default()
                .push(r["machine"].as_str().unwrap().to_string());
        }
        for machines in by_service.values_mut() {
            machines.sort();
        }
        by_service
    }

    fn assert_no_changes(&self, env: &[(&str, &str)]) {
        let plan = self.hoist(env, &["plan", "--detailed-exitcode"]);
        assert_eq!(plan.status.code(), Some(0), "a plan right after: {plan}");
    }

    /// What `machine`'s ingress answers for `path` over `n` new connections (200s only).
    fn answers(&self, lab: &Lab, machine: &str, path: &str, n: usize) -> BTreeSet<String> {
        (0..n)
            .filter_map(|_| http_get(lab_ip(lab, machine), self.port, path).ok())
            .filter(|(code, _)| *code == 200)
            .map(|(_, body)| body.trim().to_string())
            .collect()
    }

    /// Asserts every machine's ingress serves web `version` only, from replicas on every
    /// machine of the fleet.
    fn assert_served(&self, lab: &Lab, version: &str) {
        for at in MACHINES {
            http_get_until(
                lab_ip(lab, at),
                self.port,
                "/",
                200,
                Duration::from_secs(60),
            );
            let seen = self.answers(lab, at, "/", 40);
            assert!(
                seen.iter()
                    .all(|a| a.starts_with(&format!("version={version} "))),
                "{at}'s ingress: {seen:?}"
            );
            for m in MACHINES {
                assert!(
                    seen.iter()
                        .any(|a| a.starts_with(&format!("version={version} machine={m} "))),
                    "{at}'s ingress never reached web on {m}: {seen:?}"
                );
            }
        }
    }

    fn watch(&self) -> Watch {
        let log = self.dir.join("watch.log");
        let child = self
            .command(&[], &["watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting hoist watch");
        Watch { child, log }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.hoist(&[], &["down", "--volumes", "--yes"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lab address of m1..m3 or an opt-in machine.
fn lab_ip<'a>(lab: &'a Lab, machine: &str) -> &'a str {
    match machine {
        "ctd" => "172.31.77.200",
        "pod" => "172.31.77.202",
        m => lab.ip(m),
    }
}

/// Requests over new connections through `machine`'s ingress until stopped: (answered 200,
/// the failures).
fn load(
    ip: &str,
    port: u16,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    let ip = ip.to_string();
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0usize, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            match http_get(&ip, port, "/") {
                Ok((200, _)) => ok += 1,
                other => failed.push(format!("{other:?}")),
            }
        }
        (ok, failed)
    })
}

#[test]
fn shop_on_docker_20_containerd_store_and_podman() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let shop = Shop::new(lab, "life", LIFECYCLE_PORT);

    // hoist sees each engine for what it is.
    let m = shop.hoist(&[], &["machines", "--json"]);
    let m: Value = serde_json::from_str(m.expect_success("machines")).unwrap();
    let by_name: BTreeMap<&str, &Value> = m["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m))
        .collect();
    assert_eq!(by_name.len(), 3, "{m}");
    assert_eq!(by_name["pod"]["podman"], true, "{m}");
    for name in MACHINES {
        assert_eq!(by_name[name]["reachable"], true, "{m}");
    }

    shop.hoist(&[], &["up", "--yes"]).expect_success("up");
    let placed = shop.placement();
    // web ×4 spread over three zones: every engine runs at least one.
    let web: BTreeSet<&str> = placed["web"].iter().map(String::as_str).collect();
    assert_eq!(web, BTreeSet::from(MACHINES), "{placed:?}");
    assert_eq!(placed["web"].len(), 4, "{placed:?}");
    assert_eq!(placed["api"].len(), 2, "{placed:?}");
    assert_eq!(placed["db"].len(), 1, "{placed:?}");
    assert_eq!(placed["worker"].len(), 1, "{placed:?}");
    shop.assert_no_changes(&[]);
    shop.assert_served(lab, "v1");

    // api by name from every machine: web fetches http://api:8080/ through its machine's
    // mesh proxy, which reaches api's replicas wherever they run.
    let api_machines: BTreeSet<String> = placed["api"].iter().cloned().collect();
    for at in MACHINES {
        let seen = shop.answers(lab, at, "/cgi-bin/fetch?http://api:8080/", 30);
        assert!(!seen.is_empty(), "{at}: api never answered by name");
        let reached: BTreeSet<String> = seen
            .iter()
            .filter_map(|a| a.lines().nth(1))
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|m| m.strip_prefix("machine="))
            .map(str::to_string)
            .collect();
        assert_eq!(reached, api_machines, "{at}: {seen:?}");
    }

    // A rolling update while a client opens a new connection per request through Podman's
    // ingress, and another through the containerd-store machine's.
    let v2 = [("WEB_VERSION", "v2")];
    let stop = Arc::new(AtomicBool::new(false));
    let clients = [
        load(lab_ip(lab, "pod"), shop.port, Arc::clone(&stop)),
        load(lab_ip(lab, "ctd"), shop.port, Arc::clone(&stop)),
    ];
    let up = shop.hoist(&v2, &["up", "--yes"]);
    stop.store(true, Ordering::Relaxed);
    up.expect_success("rolling update to v2");
    for (client, at) in clients.into_iter().zip(["pod", "ctd"]) {
        let (ok, failed) = client.join().unwrap();
        eprintln!(
            "through {at}'s ingress during the rolling update: {ok} answered 200, {} failed",
            failed.len()
        );
        assert!(failed.is_empty(), "{at}: {failed:?}");
        assert!(ok > 0, "{at}: no request went through");
    }
    shop.assert_served(lab, "v2");
    shop.assert_no_changes(&v2);

    // A version whose health check fails is rolled back by itself.
    let bad = shop.hoist(&[("WEB_VERSION", "bad")], &["up", "--yes"]);
    assert_eq!(bad.status.code(), Some(1), "{bad}");
    shop.assert_served(lab, "v2");

    // `rollback` returns web to v1 on every engine.
    shop.hoist(&[], &["rollback", "--yes", "web"])
        .expect_success("rollback");
    shop.assert_served(lab, "v1");
    shop.assert_no_changes(&[]);
}

#[test]
fn watch_moves_the_work_of_a_killed_podman_machine() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let shop = Shop::new(lab, "fail", FAILOVER_PORT);
    shop.hoist(&[], &["up", "--yes"]).expect_success("up");
    let before = shop.placement();
    let on_pod = before["web"].iter().filter(|m| *m == "pod").count();
    assert!(on_pod >= 1, "{before:?}");
    let watch = shop.watch();
    let _killed = lab.fault(Fault::Kill, "pod");
    // web's replicas from pod run again on m1 and ctd, and both ingresses serve all four slots.
    let start = Instant::now();
    loop {
        let now = shop.placement();
        let alive: Vec<&String> = now["web"].iter().filter(|m| *m != "pod").collect();
        if alive.len() == 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "web's replicas on the killed pod were not moved: {now:?}\n{}",
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for at in ["m1", "ctd"] {
        http_get_until(
            lab_ip(lab, at),
            shop.port,
            "/",
            200,
            Duration::from_secs(30),
        );
    }
    assert!(watch.log().contains("pod"), "{}", watch.log());
}
