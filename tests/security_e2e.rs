//! Issue 17 on the lab: the findings that need a real machine (sshd, dockerd) or a real
//! ssh client, each shown fixed. Project names start with `sec-` so these tests can share
//! the lab with others.

mod common;

use common::lab::{Lab, hoist, hoist_command, run};
use hoist::inventory::{Address, Fleet, Machine, SshTarget};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hoist-sec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// True when `path` exists on lab machine `m`.
fn exists_on(lab: &Lab, m: &str, path: &str) -> bool {
    lab.ssh(m, &["test", "-e", path]).success()
}

/// Finding 1: a quote in `docker_socket` ran commands on the machine through the socket
/// probe. The machines file now refuses such a path, and the probe quotes it anyway: here it
/// is given to the engine layer directly, bypassing the file's check, against a real sshd.
#[test]
fn a_socket_path_with_a_quote_runs_nothing_on_the_machine() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let marker = format!("/tmp/hoist-sec-pwned-{}", std::process::id());
    let _ = lab.ssh("m1", &["rm", "-f", &marker]);
    let evil = format!("/tmp/nope'; touch {marker}; echo '");

    // Through the machines file: refused while loading, naming file, machine and key.
    let dir = scratch("socket");
    let file = dir.join("hoist.yaml");
    std::fs::write(
        &file,
        format!(
            "ssh_config: {}\nmachines:\n  m1:\n    ssh: m1\n    docker_socket: \"{evil}\"\n",
            lab.ssh_config().display()
        ),
    )
    .unwrap();
    let out = hoist(["-m", file.to_str().unwrap(), "machines"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("hoist.yaml: machines.m1.docker_socket: "),
        "{out}"
    );

    // Past the file's check: the engine does not answer, the probe runs on m1 and says why.
    let fleet = Fleet {
        source: "test".into(),
        machines: vec![Machine {
            name: "m1".into(),
            address: Address::Ssh(SshTarget {
                destination: "m1".into(),
                user: None,
                port: None,
                identity: None,
                config_file: Some(lab.ssh_config()),
            }),
            labels: BTreeMap::new(),
            docker_socket: evil.clone(),
            engine: hoist::inventory::EngineKind::Docker,
            peer_address: None,
        }],
        mesh: None,
    };
    let rt = runtime();
    let conns = rt
        .block_on(hoist::engine::connect_all(&fleet, Duration::from_secs(20)))
        .unwrap();
    let why = match &conns.results[0].1 {
        Ok(_) => panic!("an engine answered on {evil:?}"),
        Err(e) => e.to_string(),
    };
    rt.block_on(conns.close());
    assert!(why.contains("no socket at"), "the probe did not run: {why}");
    assert!(
        !exists_on(lab, "m1", &marker),
        "the socket path ran a command on m1"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 6: values that panicked `up` while it held the lock are refused before it
/// connects; no lock is left on any machine.
#[test]
fn up_refuses_bad_values_before_taking_the_lock() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let dir = scratch("up6");
    std::fs::write(
        dir.join("compose.yaml"),
        "name: sec-up6\nservices:\n  web:\n    image: hoist-test/app:v1\n    ports: ['80']\n    x-hoist:\n      ingress: {health: {interval: '1e30'}}\n",
    )
    .unwrap();
    let machines = lab.machines_file();
    let m = machines.to_str().unwrap();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["-m", m, "up", "--yes"],
            1,
            "compose.yaml: services.web.x-hoist.ingress.health.interval: \"1e30\" is too long",
        ),
        (
            vec!["-m", m, "--timeout", "18446744073709551615", "up", "--yes"],
            2,
            "--timeout",
        ),
        (
            vec!["-m", m, "up", "--yes", "--lock-wait", "1e30"],
            2,
            "--lock-wait",
        ),
    ];
    for (args, code, want) in cases {
        let out = run(hoist_command().current_dir(&dir).args(&args));
        assert_eq!(out.code(), Some(code), "{args:?}: {out}");
        assert!(out.stderr.contains(want), "{args:?}: {out}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out}");
    }
    // A good file with a bad HOIST_SSH_PERSIST: refused before any machine is contacted.
    std::fs::write(
        dir.join("compose.yaml"),
        "name: sec-up6\nservices:\n  web:\n    image: hoist-test/app:v1\n",
    )
    .unwrap();
    let out = run(hoist_command()
        .current_dir(&dir)
        .args(["-m", m, "up", "--yes"])
        .env("HOIST_SSH_PERSIST", "1e30"));
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("HOIST_SSH_PERSIST: \"1e30\" is too long"),
        "{out}"
    );
    for name in lab.machine_names() {
        let vols = lab.docker_in(
            name,
            &["volume", "ls", "-q", "--filter", "name=hoist-lock-sec-up6"],
        );
        assert_eq!(vols.stdout.trim(), "", "a lock was left on {name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// This process as a lock holder: host name, boot ID, PID namespace, start time.
fn identity() -> (String, String, String, String) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
    let stat = read("/proc/self/stat");
    let start = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    (
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/random/boot_id"),
        std::fs::read_link("/proc/self/ns/pid")
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        start,
    )
}

/// A pid no process has here.
fn absent_pid() -> u32 {
    (4_000_000..4_194_304)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap()
}

/// Writes a deploy lock for `project` on every lab machine, as a holder with these labels.
fn plant_lock(lab: &Lab, project: &str, pid: u32, pidns: &str, start: &str) {
    let (host, boot, _, _) = identity();
    for name in lab.machine_names() {
        let _ = lab.docker_in(
            name,
            &["volume", "rm", "-f", &format!("hoist-lock-{project}")],
        );
        let labels = [
            format!("io.hoist.lock={project}"),
            format!("io.hoist.lock.holder=tester@{host} pid {pid} (hoist up)"),
            "io.hoist.lock.since=2026-01-01T00:00:00Z".to_string(),
            format!("io.hoist.lock.nonce=planted-{pid}"),
            format!("io.hoist.lock.host={host}"),
            format!("io.hoist.lock.pid={pid}"),
            format!("io.hoist.lock.boot={boot}"),
            format!("io.hoist.lock.pidns={pidns}"),
            format!("io.hoist.lock.start={start}"),
        ];
        let mut args = vec!["volume", "create"];
        for l in &labels {
            args.push("--label");
            args.push(l);
        }
        let vname = format!("hoist-lock-{project}");
        args.push(&vname);
        lab.docker_in(name, &args).expect_success("planting a lock");
    }
}

fn lock_count(lab: &Lab, project: &str) -> usize {
    lab.machine_names()
        .iter()
        .filter(|m| {
            !lab.docker_in(
                m,
                &[
                    "volume",
                    "ls",
                    "-q",
                    "--filter",
                    &format!("name=^hoist-lock-{project}$"),
                ],
            )
            .stdout
            .trim()
            .is_empty()
        })
        .count()
}

/// Finding 4: a holder whose pid is absent here but who wrote another PID namespace (another
/// container with the same host name) is not taken for dead; one from this namespace is.
#[test]
fn a_lock_from_another_pid_namespace_is_not_taken_over() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let project = "sec-lock4";
    let m = lab.machines_file();
    let m = m.to_str().unwrap();
    let (_, _, pidns, _) = identity();
    let pid = absent_pid();

    plant_lock(lab, project, pid, "pid:[4026530000]", "12345");
    let out = hoist(["-m", m, "-p", project, "down"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("another deploy holds the lock"),
        "{out}"
    );
    assert_eq!(lock_count(lab, project), 3, "the lock was touched");

    plant_lock(lab, project, pid, &pidns, "12345");
    let out = hoist(["-m", m, "-p", project, "down"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stderr.contains("taking over the lock left by"), "{out}");
    assert_eq!(lock_count(lab, project), 0, "down left its lock");
}

/// Finding 5, an interrupted takeover: a waiter killed while it held the takeover volume of a
/// dead holder leaves that volume. The next deploy does not spin on it: it waits out
/// `--lock-wait` and says what happened; `hoist unlock` clears both volumes.
#[test]
fn an_interrupted_takeover_is_reported_and_unlock_clears_it() {
    use sha2::Digest;
    let lab = Lab::get();
    let _lease = lab.shared();
    let project = "sec-stale5";
    let m = lab.machines_file();
    let m = m.to_str().unwrap();
    let (_, _, pidns, _) = identity();
    let pid = absent_pid();
    plant_lock(lab, project, pid, &pidns, "12345");
    let digest = sha2::Sha256::digest(format!("planted-{pid}").as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let guard = format!("hoist-lock-{project}.takeover-{hex}");
    let label = format!("io.hoist.lock.takeover={project}");
    for name in lab.machine_names() {
        lab.docker_in(
            name,
            &[
                "volume",
                "create",
                "--label",
                &label,
                "--label",
                "io.hoist.lock.nonce=killed-waiter",
                &guard,
            ],
        )
        .expect_success("planting a takeover volume");
    }
    let out = hoist(["-m", m, "-p", project, "down", "--lock-wait", "1s"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("another hoist is taking it over"),
        "{out}"
    );
    assert_eq!(lock_count(lab, project), 3);
    let out = hoist(["-m", m, "-p", project, "unlock", "--yes"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(lock_count(lab, project), 0);
    for name in lab.machine_names() {
        let left = lab.docker_in(
            name,
            &["volume", "ls", "-q", "--filter", &format!("label={label}")],
        );
        assert_eq!(
            left.stdout.trim(),
            "",
            "a takeover volume is left on {name}"
        );
    }
}

/// Finding 5b: `hoist unlock --yes` no longer clears the lock of a deploy still running on
/// this computer (here: this test process, which the planted lock names); `--force` does.
#[test]
fn unlock_refuses_a_live_holder_without_force() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let project = "sec-unlock5b";
    let m = lab.machines_file();
    let m = m.to_str().unwrap();
    let (_, _, pidns, start) = identity();
    let me = std::process::id();

    plant_lock(lab, project, me, &pidns, &start);
    let out = hoist(["-m", m, "-p", project, "unlock", "--yes"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("still running on this computer")
            && out.stderr.contains(&format!("process {me}")),
        "{out}"
    );
    assert_eq!(lock_count(lab, project), 3, "unlock cleared a live lock");

    let out = hoist(["-m", m, "-p", project, "unlock", "--yes", "--force"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stderr
            .contains("--force: clearing the lock of a deploy that is still running"),
        "{out}"
    );
    assert_eq!(lock_count(lab, project), 0);

    // A dead holder's lock is cleared with --yes alone, as before.
    plant_lock(lab, project, absent_pid(), &pidns, "12345");
    let out = hoist(["-m", m, "-p", project, "unlock", "--yes"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(lock_count(lab, project), 0);
}

/// Finding 5: several waiters find the same dead holder at once. Each removes the dead lock
/// only through the takeover volume and only while it carries the dead nonce, so exactly one
/// of them ends up holding the lock on every machine — never two.
#[test]
fn racing_takeovers_leave_exactly_one_holder() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let project = "sec-race5";
    let (_, _, pidns, _) = identity();
    let fleet = hoist::inventory::load(Some(&lab.machines_file())).unwrap();
    let rt = runtime();
    let conns = rt
        .block_on(hoist::engine::connect_all(&fleet, Duration::from_secs(20)))
        .unwrap();
    let engines = conns.engines();
    assert_eq!(engines.len(), 3);
    for round in 0..5 {
        plant_lock(lab, project, absent_pid(), &pidns, "12345");
        let results = rt.block_on(futures_util::future::join_all((0..4).map(|i| {
            let engines = engines.clone();
            async move {
                hoist::apply::lock::acquire(
                    &engines,
                    project,
                    &format!("racer {i}"),
                    Duration::ZERO,
                )
                .await
                .map(|l| (i, l))
            }
        })));
        let mut winners = Vec::new();
        for r in results {
            match r {
                Ok(w) => winners.push(w),
                // A loser meets the winner's lock, or the dead one still being taken over.
                Err(e) => assert!(
                    format!("{e:#}").contains("another deploy holds the lock")
                        || format!("{e:#}").contains("another hoist is taking it over"),
                    "round {round}: {e:#}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        let (winner, lock) = winners.pop().unwrap();
        let holders = rt.block_on(hoist::apply::lock::holders(&engines, project));
        assert_eq!(holders.len(), 3, "round {round}: {holders:?}");
        assert!(
            holders
                .iter()
                .all(|h| h.holder == format!("racer {winner}")),
            "round {round}: the lock is split: {holders:?}"
        );
        rt.block_on(lock.release());
        assert_eq!(
            lock_count(lab, project),
            0,
            "round {round}: release left the lock"
        );
    }
    rt.block_on(conns.close());
}

/// Finding 11: a kept ssh master is keyed by what ssh resolves the destination to, so a
/// changed ssh config reaches the new machine instead of reusing the old master.
#[test]
fn a_kept_master_is_not_reused_after_the_ssh_config_changes() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let dir = scratch("master11");
    let config = dir.join("ssh_config");
    let lab_config = std::fs::read_to_string(lab.ssh_config()).unwrap();
    // `Host box` reaches m1, later m2, with the lab's key and known hosts.
    let aliased = |target: &str| {
        let block = lab_config
            .split("\nHost ")
            .find(|b| b.starts_with(&format!("{target}\n")))
            .unwrap()
            .replacen(target, "box", 1);
        format!("Host {block}\n")
    };
    std::fs::write(&config, aliased("m1")).unwrap();
    let file = dir.join("hoist.yaml");
    std::fs::write(
        &file,
        "ssh_config: ssh_config\nmachines:\n  box: {ssh: box}\n",
    )
    .unwrap();
    let hostname = || {
        let out = run(hoist_command()
            .args(["-m", file.to_str().unwrap(), "machines", "--json"])
            .env("HOIST_SSH_PERSIST", "20s"));
        let json: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
        json["machines"][0]["hostname"]
            .as_str()
            .unwrap_or_else(|| panic!("no hostname: {out}"))
            .to_string()
    };
    assert_eq!(hostname(), "m1");
    std::fs::write(&config, aliased("m2")).unwrap();
    assert_eq!(hostname(), "m2", "the master kept for m1 was reused");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 2 with Caddy's own parser: the Caddyfile hoist renders for several routes adapts
/// (`caddy adapt`, the lab's ingress image on m1) to exactly the intended hosts, with the
/// admin endpoint on localhost and no handler hoist did not write.
#[test]
fn caddy_reads_the_rendered_file_as_the_intended_sites() {
    use hoist::ingress::spec::{HealthCheck, IngressSpec, Route, Tls};
    let lab = Lab::get();
    let _lease = lab.shared();
    let route = |service: &str, hosts: &[&str], paths: &[&str]| Route {
        service: service.into(),
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        paths: paths.iter().map(|s| s.to_string()).collect(),
        port: 80,
        health: HealthCheck {
            path: "/health?full=1".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
        },
    };
    let spec = IngressSpec {
        image: "hoist-test/caddy:latest".into(),
        http_port: 80,
        https_port: 443,
        tls: Tls::Internal,
        email: Some("ops+lab@example.com".into()),
        drain: Duration::from_secs(1),
        routes: vec![
            route("web", &["shop.example.com", "www.shop.example.com"], &["/"]),
            route(
                "api",
                &["shop.example.com", "www.shop.example.com"],
                &["/api/v2"],
            ),
            route("wild", &["*.apps.example.com"], &["/a%20b"]),
        ],
    };
    let upstreams: hoist::ingress::render::Upstreams = [
        ("web".to_string(), vec!["172.31.77.11:32768".to_string()]),
        ("api".to_string(), vec!["[fd00::2]:32769".to_string()]),
    ]
    .into();
    let text = hoist::ingress::render::caddyfile("sec", "m1", &spec, &upstreams).unwrap();
    let out = run_with_file(
        lab,
        "hoist-test/caddy:latest",
        "/tmp/Caddyfile",
        &text,
        "caddy adapt --config /tmp/Caddyfile --adapter caddyfile",
    );
    let json: serde_json::Value = serde_json::from_str(out.expect_success("caddy adapt"))
        .unwrap_or_else(|e| panic!("caddy adapt printed no JSON ({e}): {out}\n{text}"));
    assert_eq!(json["admin"]["listen"], "localhost:2019", "{json}");
    let mut hosts: Vec<Vec<String>> = Vec::new();
    let mut handlers = Vec::new();
    fn walk(v: &serde_json::Value, handlers: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(h) = m.get("handler").and_then(|h| h.as_str()) {
                    handlers.push(h.to_string());
                }
                m.values().for_each(|x| walk(x, handlers));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, handlers)),
            _ => {}
        }
    }
    for server in json["apps"]["http"]["servers"]
        .as_object()
        .unwrap()
        .values()
    {
        for r in server["routes"].as_array().unwrap() {
            for m in r["match"].as_array().into_iter().flatten() {
                if let Some(h) = m["host"].as_array() {
                    hosts.push(h.iter().map(|x| x.as_str().unwrap().to_string()).collect());
                }
            }
            walk(r, &mut handlers);
        }
    }
    hosts.sort();
    assert_eq!(
        hosts,
        vec![
            vec!["*.apps.example.com".to_string()],
            vec![
                "shop.example.com".to_string(),
                "www.shop.example.com".to_string()
            ],
        ],
        "{json}"
    );
    handlers.sort();
    handlers.dedup();
    for h in &handlers {
        assert!(
            ["reverse_proxy", "static_response", "subroute"].contains(&h.as_str()),
            "a handler hoist did not write: {h}\n{json}"
        );
    }
}

/// `text` written into a container of `image` on m1 as `path`, then `command` run there.
fn run_with_file(
    lab: &Lab,
    image: &str,
    path: &str,
    text: &str,
    command: &str,
) -> common::lab::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let b64 = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let script = format!("echo {b64} | base64 -d > {path} && {command}");
    lab.docker_in(
        "m1",
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            &script,
        ],
    )
}

/// Finding 3 with HAProxy's own parser: the configuration hoist renders for replicas on
/// IPv4 and IPv6 addresses passes `haproxy -c` (the lab's mesh image on m1).
#[test]
fn haproxy_accepts_the_rendered_configuration() {
    use hoist::mesh::render::{Target, Upstream, haproxy_cfg};
    let lab = Lab::get();
    let _lease = lab.shared();
    let up = |machine: &str, slot: &str, address: &str| Upstream {
        machine: machine.into(),
        slot: slot.into(),
        ports: [(8080u16, Target::plain(address.to_string()))].into(),
    };
    let cfg = haproxy_cfg(
        "sec",
        "api",
        "m1",
        &[8080],
        &[
            up("m1", "1", "172.31.77.11:32768"),
            up("m2", "2", "[fd00::2]:32769"),
            up("web.eu-1", "global", "localhost:32770"),
        ],
    )
    .unwrap();
    let out = run_with_file(
        lab,
        "hoist-test/haproxy:latest",
        "/tmp/haproxy.cfg",
        &cfg,
        "haproxy -c -f /tmp/haproxy.cfg",
    );
    assert!(out.success(), "haproxy -c refused:\n{out}\n{cfg}");
}

/// Finding 9: a hoist.yaml merely found in the current folder cannot make a read-only verb
/// run a local command through its ssh config. Finding 12: nor can an `ssh://` destination.
/// Finding 14: ssh's own complaint about a target reaches the user.
#[test]
fn machines_files_cannot_run_local_commands() {
    let dir = scratch("local9");
    let marker = dir.join("ran");
    std::fs::write(
        dir.join("ssh_config"),
        format!("Host *\n    ProxyCommand touch {}\n", marker.display()),
    )
    .unwrap();
    std::fs::write(
        dir.join("hoist.yaml"),
        "ssh_config: ssh_config\nmachines:\n  m1: {ssh: somewhere}\n",
    )
    .unwrap();
    std::fs::write(dir.join("compose.yaml"), "services:\n  web: {image: app}\n").unwrap();
    for verb in [vec!["machines"], vec!["plan"], vec!["ps"]] {
        let out = run(hoist_command()
            .current_dir(&dir)
            .env_remove("HOIST_MACHINES")
            .args(&verb));
        assert_eq!(out.code(), Some(1), "{verb:?}: {out}");
        assert!(
            out.stderr.contains(
                "hoist.yaml: ssh_config: this machines file was found in the current folder"
            ),
            "{verb:?}: {out}"
        );
        assert!(
            !marker.exists(),
            "{verb:?} ran the ssh config's ProxyCommand"
        );
    }

    std::fs::write(
        dir.join("url.yaml"),
        format!(
            "machines:\n  m1: {{ssh: 'ssh://u@-oProxyCommand=touch {}'}}\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = run(hoist_command()
        .current_dir(&dir)
        .args(["-m", "url.yaml", "machines"]));
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("url.yaml: machines.m1.ssh: "), "{out}");
    assert!(!marker.exists(), "the ssh:// destination ran a command");

    std::fs::write(dir.join("bad_config"), "Host badport\n    Port 0\n").unwrap();
    std::fs::write(
        dir.join("port.yaml"),
        "ssh_config: bad_config\nmachines:\n  m1: {ssh: badport}\n",
    )
    .unwrap();
    let out = run(hoist_command()
        .current_dir(&dir)
        .args(["-m", "port.yaml", "machines"]));
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        !out.stdout.contains("No such file or directory")
            && !out.stderr.contains("No such file or directory"),
        "ssh's message was lost: {out}"
    );
    assert!(out.stderr.contains("Bad port"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every label on machine `m` (containers, running or not, of every project; volumes;
/// networks) as the engine's API lists them, one JSON object a line.
fn all_labels(lab: &Lab, m: &str) -> String {
    let ids = lab.docker_in(m, &["ps", "-aq", "--no-trunc"]);
    let ids: Vec<&str> = ids
        .expect_success("listing containers")
        .split_whitespace()
        .collect();
    let mut out = String::new();
    if !ids.is_empty() {
        let mut args = vec!["inspect", "--format", "{{json .Config.Labels}}"];
        args.extend(ids);
        out.push_str(lab.docker_in(m, &args).expect_success("container labels"));
    }
    for kind in ["volume", "network"] {
        let listed = lab.docker_in(m, &[kind, "ls", "--format", "{{json .Labels}}"]);
        out.push_str(listed.expect_success("labels"));
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the replicas of `project`'s api read on machine `m`: `$DB_PASSWORD` and the secret.
fn values_in_replicas(lab: &Lab, m: &str, project: &str) -> Vec<String> {
    let ids = lab.docker_in(
        m,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=io.hoist.project={project}"),
            "--filter",
            "label=io.hoist.service=api",
        ],
    );
    ids.expect_success("listing replicas")
        .split_whitespace()
        .map(|id| {
            lab.docker_in(
                m,
                &[
                    "exec",
                    id,
                    "sh",
                    "-c",
                    "echo \"$DB_PASSWORD\" $(cat /run/secrets/api_key)",
                ],
            )
            .expect_success("reading a replica's values")
            .trim()
            .to_string()
        })
        .collect()
}

/// Finding 8: environment values and secrets are recorded in labels only as HMACs under a
/// per-project key kept on the machines. On the lab: no label anywhere holds a value, its
/// plain SHA-256, or the key; a changed secret is still named in the plan; rollback restores
/// the old values (the engine keeps them in the stopped container, not in a label); a key lost
/// on one machine is copied back without replacing anything, and one lost everywhere makes a
/// new key and one rolling reseal, each said by `plan` and `machines` first.
#[test]
fn labels_hold_no_secret_value_nor_its_plain_hash() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let project = format!("sec-seal{}", std::process::id());
    let dir = scratch("seal");
    let m = lab.machines_file();
    let m = m.to_str().unwrap();
    // Values no label may show, made fresh per run.
    let nonce = format!("{:x}", std::process::id() as u64 * 7919 + 17);
    let password = format!("pw-{nonce}-correct-horse");
    let secret_v1 = format!("api-key-{nonce}-v1");
    let secret_v2 = format!("api-key-{nonce}-v2");
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "services:\n  api:\n    image: hoist-test/app:v1\n    environment:\n      \
             DB_PASSWORD: {password}\n      PORT: \"8080\"\n    secrets: [api_key]\n    \
             deploy:\n      replicas: 3\nsecrets:\n  api_key:\n    file: ./api_key.txt\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("api_key.txt"), &secret_v1).unwrap();
    let hoist_here = |args: &[&str]| {
        let mut all = vec!["-m", m, "-p", project.as_str()];
        all.extend_from_slice(args);
        common::lab::hoist_in(&dir, all)
    };
    let key_path = format!("/var/lib/docker/volumes/hoist-key-{project}/_data/key");
    // The labels of every machine must show none of these.
    let check_labels = |when: &str, extra: &[String]| {
        let mut forbidden = vec![
            password.clone(),
            secret_v1.clone(),
            secret_v2.clone(),
            sha256_hex(password.as_bytes()),
            sha256_hex(secret_v1.as_bytes()),
            sha256_hex(secret_v2.as_bytes()),
            sha256_hex(format!("DB_PASSWORD={password}").as_bytes()),
        ];
        forbidden.extend_from_slice(extra);
        let mut sealed = 0;
        for name in lab.machine_names() {
            let labels = all_labels(lab, name);
            for f in &forbidden {
                assert!(
                    !labels.contains(f.as_str()),
                    "{when}: {f} in a label on {name}:\n{labels}"
                );
            }
            sealed += labels.matches("\\\"DB_PASSWORD\\\":\\\"hmac:").count();
        }
        assert!(
            sealed >= 3,
            "{when}: the sealed specs were not found in the labels"
        );
    };
    let keys = || -> Vec<String> {
        lab.machine_names()
            .iter()
            .map(|n| lab.ssh(n, &["cat", &key_path]).stdout.trim().to_string())
            .collect()
    };

    let out = hoist_here(&["plan"]);
    assert!(
        out.stdout
            .contains("+ sealing key: create a new one on m1, m2, m3"),
        "{out}"
    );
    hoist_here(&["up", "--yes"]).expect_success("first up");
    let key = keys();
    assert_eq!(key.len(), 3);
    assert!(
        key[0].len() == 64 && key.iter().all(|k| *k == key[0]),
        "{key:?}"
    );
    check_labels("after the first up", &key);
    let mut running = Vec::new();
    for name in lab.machine_names() {
        running.extend(values_in_replicas(lab, name, &project));
        // The key file is root's alone.
        let mode = lab.ssh(name, &["stat", "-c", "%a:%U", &key_path]);
        assert_eq!(mode.stdout.trim(), "400:root", "{name}: {mode}");
    }
    assert_eq!(running, vec![format!("{password} {secret_v1}"); 3]);
    let out = hoist_here(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code(), Some(0), "a second plan is empty: {out}");

    // Only the secret changes: named, its value not shown, and nothing else.
    std::fs::write(dir.join("api_key.txt"), &secret_v2).unwrap();
    let out = hoist_here(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert_eq!(
        out.stdout
            .matches("secrets /run/secrets/api_key changed")
            .count(),
        3,
        "{out}"
    );
    assert!(!out.stdout.contains("environment"), "{out}");
    assert!(
        !out.stdout.contains(&secret_v2) && !out.stdout.contains(&secret_v1),
        "{out}"
    );
    hoist_here(&["up", "--yes"]).expect_success("up with the new secret");
    check_labels("after the secret changed", &key);

    // Rollback without the compose file: the old secret is back, from the engine's container.
    let elsewhere = scratch("seal-rollback");
    let out = common::lab::hoist_in(&elsewhere, ["-m", m, "-p", &project, "rollback", "--yes"]);
    out.expect_success("rollback");
    let mut running = Vec::new();
    for name in lab.machine_names() {
        running.extend(values_in_replicas(lab, name, &project));
    }
    assert_eq!(running, vec![format!("{password} {secret_v1}"); 3]);
    hoist_here(&["up", "--yes"]).expect_success("up again after the rollback");

    // The key lost on m2 (its volume removed by hand): said by `machines` and `plan`, copied
    // back by `up` with no replica replaced.
    lab.docker_in("m2", &["rm", &format!("hoist-key-{project}")])
        .expect_success("removing m2's key holder");
    lab.docker_in("m2", &["volume", "rm", &format!("hoist-key-{project}")])
        .expect_success("removing m2's key");
    let out = hoist_here(&["machines"]);
    assert!(out.stderr.contains("do not all hold project"), "{out}");
    let out = hoist_here(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stdout.contains("0 to create, 0 to replace"), "{out}");
    assert!(out.stdout.contains("+ sealing key@m2: copy key"), "{out}");
    hoist_here(&["up", "--yes"]).expect_success("up copying the key");
    assert_eq!(keys(), key);
    assert_eq!(hoist_here(&["plan", "--detailed-exitcode"]).code(), Some(0));

    // Lost everywhere: a new key, and every replica resealed, said in the plan.
    for name in lab.machine_names() {
        lab.docker_in(name, &["rm", &format!("hoist-key-{project}")])
            .expect_success("removing a key holder");
        lab.docker_in(name, &["volume", "rm", &format!("hoist-key-{project}")])
            .expect_success("removing a key");
    }
    let out = hoist_here(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert_eq!(
        out.stdout
            .matches("which is not the machines' key now")
            .count(),
        3,
        "{out}"
    );
    assert!(
        out.stdout.contains("+ sealing key: create a new one"),
        "{out}"
    );
    hoist_here(&["up", "--yes"]).expect_success("up with a new key");
    let new_key = keys();
    assert!(new_key.iter().all(|k| *k == new_key[0]) && new_key[0] != key[0]);
    assert_eq!(hoist_here(&["plan", "--detailed-exitcode"]).code(), Some(0));
    check_labels("after a new key", &[key.clone(), new_key].concat());

    hoist_here(&["down", "--volumes", "--yes"]).expect_success("down");
}
