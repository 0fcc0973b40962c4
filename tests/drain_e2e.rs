//! `hoist drain` / `undrain` on the lab: the replicas leave a drained machine with no failed
//! request through the ingress of another machine, hoist's own containers leave it too, every
//! later deploy keeps off it, `ps` and `machines` show it; a service whose data is only there
//! is refused (and follows its data once a backup is restored elsewhere); a machine taken out
//! of the machines file while it runs the project is reported by `plan`.
//!
//! A drain is fleet-wide (every project avoids the machine), so those tests take the lab
//! exclusively and always lift their cordon.

mod common;

use common::lab::{Fault, Lab, hey_counts, run};
use common::project::Project;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

impl Project {
    /// Every container of the project on `machine` (any role, any state).
    fn containers_on(&self, lab: &Lab, machine: &str) -> String {
        let out = lab.docker_in(
            machine,
            &[
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                &format!("label=io.hoist.project={}", self.name),
            ],
        );
        out.expect_success("docker ps").trim().to_string()
    }
}

/// Lifts the cordon of `machine` when the test ends, however it ends.
struct Undrain<'a>(&'a Project, &'a str);

impl Drop for Undrain<'_> {
    fn drop(&mut self) {
        let _ = self.0.hoist(&["undrain", self.1]);
    }
}

fn drained_in_machines(p: &Project, machine: &str) -> Value {
    let out = p.hoist(&["machines", "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == machine)
        .unwrap()["drained"]
        .clone()
}

const PORT: u16 = 18480;

fn web(port: u16) -> String {
    format!(
        r#"
x-hoist:
  ingress:
    image: hoist-test/caddy:latest
    http_port: {port}
    https_port: {https}
    tls: internal
services:
  web:
    image: hoist-test/app:v1
    ports: ["80"]
    x-hoist:
      ingress:
        health: {{path: /cgi-bin/health, interval: 1s, timeout: 500ms}}
    deploy:
      replicas: 3
"#,
        https = port + 1
    )
}

#[test]
fn drain_moves_replicas_off_with_no_failed_request() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let p = Project::new(lab, "dr", "mv", &web(PORT));
    p.hoist(&["up", "--yes"]).expect_success("up");
    let before = p.placements();
    assert!(
        before.iter().any(|(_, m)| m == "m3"),
        "a replica should run on m3: {before:?}"
    );
    assert!(!p.containers_on(lab, "m3").is_empty());
    let _undrain = Undrain(&p, "m3");

    // Load through m1's ingress for the whole drain of m3: new connections each request.
    let url = format!("http://{}:{PORT}/", lab.ip("m1"));
    let done = std::sync::atomic::AtomicBool::new(false);
    let (drain, total, bad, report) = std::thread::scope(|s| {
        let loader = s.spawn(|| {
            let (mut total, mut bad, mut report) = (0usize, 0usize, String::new());
            while total < 2000 || !done.load(std::sync::atomic::Ordering::SeqCst) {
                let out = run(Command::new("hey").args([
                    "-n",
                    "2000",
                    "-c",
                    "8",
                    "-disable-keepalive",
                    &url,
                ]));
                assert!(out.success(), "hey failed:\n{out}");
                let (ok, n) = hey_counts(&out.stdout);
                total += n;
                bad += n - ok;
                if ok < n {
                    report = out.stdout;
                }
            }
            (total, bad, report)
        });
        let drain = p.hoist(&["drain", "m3", "--yes", "--json"]);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (total, bad, report) = loader.join().unwrap();
        (drain, total, bad, report)
    });
    drain.expect_success("drain m3");
    // --json: standard output is up's report alone; the drain's own lines go to stderr.
    let up_report: serde_json::Value = serde_json::from_str(&drain.stdout)
        .unwrap_or_else(|e| panic!("drain --json printed no JSON ({e}): {drain}"));
    assert_eq!(up_report["ok"], true, "{up_report}");
    assert!(
        up_report["plan"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["action"] == "move" || s["action"] == "remove"),
        "{up_report}"
    );
    assert!(drain.stderr.contains("m3: drained"), "{drain}");
    assert_eq!(
        bad, 0,
        "{bad} of {total} requests failed during the drain:\n{report}"
    );
    eprintln!("drain m3: {total} requests through m1's ingress, {bad} failed");

    // Nothing of the project is left on m3: replicas, ingress, nothing; 3 replicas elsewhere.
    let after = p.placements();
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|(_, m)| m != "m3"), "{after:?}");
    assert_eq!(
        p.containers_on(lab, "m3"),
        "",
        "hoist containers left on m3"
    );
    // ps and machines show the cordon.
    assert_eq!(p.ps()["drained"], serde_json::json!(["m3"]));
    assert!(p.hoist(&["ps"]).stdout.contains("m3: drained"));
    assert!(drained_in_machines(&p, "m3").is_string());
    let table = p.hoist(&["machines"]);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("m3") && l.contains("drained")),
        "{table}"
    );

    // Any later deploy keeps off it, and the plan says why.
    let plan = p.hoist(&["plan"]);
    assert!(plan.stdout.contains("(m3 drained)"), "{plan}");
    assert!(plan.stdout.contains("No changes."), "{plan}");
    p.hoist(&["up", "--yes"]).expect_success("up after drain");
    assert_eq!(p.containers_on(lab, "m3"), "");

    // Undrain: m3 takes replicas again (the ingress comes back to it at the next up).
    p.hoist(&["undrain", "m3", "--yes"])
        .expect_success("undrain");
    assert!(drained_in_machines(&p, "m3").is_null());
    p.hoist(&["up", "--yes"]).expect_success("up after undrain");
    assert!(!p.containers_on(lab, "m3").is_empty());
}

const DB: &str = r#"
services:
  db:
    image: hoist-test/db:latest
    volumes: [data:/data]
    stop_grace_period: 5s
volumes:
  data: {}
"#;

#[test]
fn drain_refuses_to_strand_data_and_a_service_follows_its_restored_data() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let p = Project::new(lab, "dr", "db", DB);
    p.hoist(&["up", "--yes"]).expect_success("up");
    let (_, from) = p.placements().remove(0);
    let volume = format!("{}_data", p.name);
    let put = p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "for i in $(seq 1 50); do echo \"PUT r$i\"; done | nc -w 3 127.0.0.1 5432 >/dev/null",
    ]);
    put.expect_success("write records");
    let _undrain = Undrain(&p, &from);

    // Refused, naming the service, the volume and what to do; no cordon recorded.
    let out = p.hoist(&["drain", &from, "--yes"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("db keeps its data in volume {volume} on {from}")),
        "{out}"
    );
    assert!(out.stderr.contains("hoist volumes backup"), "{out}");
    assert!(drained_in_machines(&p, &from).is_null());

    // Copy the data to another machine by hand; then the drain moves db to its data.
    let to = ["m1", "m2", "m3"].into_iter().find(|m| *m != from).unwrap();
    let file = p.dir.join("db.hoist");
    p.hoist(&["volumes", "backup", "db", "-o", file.to_str().unwrap()])
        .expect_success("backup");
    p.hoist(&[
        "volumes",
        "restore",
        file.to_str().unwrap(),
        "--machine",
        to,
        "--yes",
    ])
    .expect_success("restore elsewhere");
    let out = p.hoist(&["drain", &from, "--yes"]);
    out.expect_success("drain after the copy");
    assert_eq!(p.placements(), [("db".to_string(), to.to_string())]);
    let count = p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "echo COUNT | nc -w 3 127.0.0.1 5432",
    ]);
    assert_eq!(count.expect_success("count").trim(), "50");
    // The source volume stays where it was: nothing removes data without being asked.
    let vols = lab.docker_in(&from, &["volume", "ls", "-q"]);
    assert!(vols.stdout.lines().any(|v| v == volume), "{vols}");
}

#[test]
fn a_machine_taken_out_of_the_file_is_reported_by_plan() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(
        lab,
        "dr",
        "rm",
        "services:\n  api:\n    image: hoist-test/worker:latest\n    deploy: {replicas: 3}\n",
    );
    p.hoist(&["up", "--yes"]).expect_success("up");
    assert!(!p.containers_on(lab, "m3").is_empty());

    // The same inventory without m3.
    let text = std::fs::read_to_string(&p.machines).unwrap();
    let dir = p.machines.parent().unwrap();
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("  m3:") {
            skipping = true;
            continue;
        }
        if skipping && line.starts_with("    ") {
            continue;
        }
        skipping = false;
        kept.push(line.replace(
            "ssh_config: ssh_config",
            &format!("ssh_config: {}", dir.join("ssh_config").display()),
        ));
    }
    let fewer = p.dir.join("two.yaml");
    std::fs::write(&fewer, kept.join("\n") + "\n").unwrap();

    let plan = p.hoist_with(&fewer, &["plan"]);
    plan.expect_success("plan without m3");
    let all = format!("{}{}", plan.stdout, plan.stderr);
    assert!(
        all.contains("m3 is no longer in the machines file"),
        "{plan}"
    );
    assert!(all.contains("hoist drain m3"), "{plan}");
    let json = p.hoist_with(&fewer, &["plan", "--json"]);
    let v: Value = serde_json::from_str(json.expect_success("plan --json")).unwrap();
    assert!(
        v["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("m3 is no longer in the machines file")),
        "{v}"
    );
    // With m3 back in the file, nothing is reported.
    let plan = p.hoist(&["plan"]);
    assert!(
        !plan.stdout.contains("no longer in the machines file"),
        "{plan}"
    );
}

fn pinned_db(zone: &str) -> String {
    format!(
        r#"
services:
  db:
    image: hoist-test/db:latest
    volumes: [data:/data]
    stop_grace_period: 5s
    deploy:
      placement:
        constraints: [node.labels.zone == {zone}]
volumes:
  data: {{}}
"#
    )
}

#[test]
fn a_stateful_move_copies_the_data_only_with_move_volumes() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "dr", "sm", &pinned_db("a"));
    p.hoist(&["up", "--yes"]).expect_success("up on m1");
    assert_eq!(p.placements(), [("db".to_string(), "m1".to_string())]);
    let volume = format!("{}_data", p.name);
    p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "for i in $(seq 1 50); do echo \"PUT r$i\"; done | nc -w 3 127.0.0.1 5432 >/dev/null; \
         dd if=/dev/urandom of=/data/blob bs=1M count=24 2>/dev/null; chown 7:8 /data/blob",
    ])
    .expect_success("write data");
    // Stopped for a moment so the fingerprint is of data at rest.
    let before = lab.volume_fingerprint("m1", &volume);

    // The placement now wants zone c (m3): the plan shows the move with its volume and size.
    std::fs::write(p.dir.join("compose.yaml"), pinned_db("c")).unwrap();
    let plan = p.hoist(&["plan"]);
    let text = plan.expect_success("plan");
    assert!(
        text.contains(&format!("» move db.1 m1 → m3 with volume {volume} (")),
        "{plan}"
    );
    assert!(text.contains("downtime:"), "{plan}");
    let json = p.hoist(&["plan", "--json"]);
    let v: Value = serde_json::from_str(json.expect_success("plan --json")).unwrap();
    let moved = &v["volume_moves"][0];
    assert_eq!(moved["from"], "m1", "{v}");
    assert_eq!(moved["to"], "m3", "{v}");
    assert!(
        moved["volumes"][0]["bytes"].as_u64().unwrap() >= 24 << 20,
        "{v}"
    );

    // up without the flag refuses, naming it; nothing changes.
    let out = p.hoist(&["up", "--yes"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("--move-volumes"), "{out}");
    assert_eq!(p.placements(), [("db".to_string(), "m1".to_string())]);

    // With it: db runs on m3 on an identical copy; the source volume stays on m1. The db
    // keeps writing while the move pre-copies its volume (a line every 50 ms, until the stop):
    // what it wrote after the pre-copy must arrive with the changes sent after the stop.
    let moving = std::sync::atomic::AtomicBool::new(true);
    let (status, said) = std::thread::scope(|s| {
        s.spawn(|| {
            // While the move runs, the db takes records and its volume changes shape: a new
            // directory with a file each round, the one of two rounds ago removed, modes
            // changed. Each round is a new `hoist exec`; those that meet the stopped db fail,
            // which is fine: what counts is what reached the volume.
            let mut i: u32 = 0;
            while moving.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let _ = p.hoist(&[
                    "exec",
                    "db",
                    "sh",
                    "-c",
                    &format!(
                        "echo 'PUT tick{i}' | nc -w 3 127.0.0.1 5432; mkdir -p /data/d{i}; \
                         echo {i} > /data/d{i}/f; chmod 700 /data/d{i}; rm -rf /data/d{}",
                        i.saturating_sub(2)
                    ),
                ]);
            }
        });
        let mut child = p
            .command(&["up", "--yes", "--move-volumes"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut said = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()))
            .map_while(Result::ok)
        {
            // The data is on m3 from here: a later write would go to the db there.
            if line.contains("copied and verified") {
                moving.store(false, std::sync::atomic::Ordering::SeqCst);
            }
            said.push_str(&line);
            said.push('\n');
        }
        moving.store(false, std::sync::atomic::Ordering::SeqCst);
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
        (child.wait().unwrap(), said)
    });
    eprintln!("{said}");
    assert!(status.success(), "{said}");
    let out = &said;
    assert!(said.contains("pre-copied and checked"), "{out}");
    assert!(said.contains("changed since the pre-copy"), "{out}");
    assert!(!said.contains(": 0B changed since"), "{out}");
    assert!(said.contains("copied and verified"), "{out}");
    assert!(said.contains("were down at most"), "{out}");
    assert_eq!(p.placements(), [("db".to_string(), "m3".to_string())]);
    // The copy is the source at rest, with what changed during the pre-copy (sent after the
    // stop): every file, its owner, mode, size and checksum, and every directory's mode.
    let source = lab.volume_fingerprint("m1", &volume);
    let copy = lab.volume_fingerprint("m3", &volume);
    let dirs = |f: &str| {
        f.lines()
            .filter(|l| l.starts_with("./d"))
            .map(|l| {
                l.rsplit_once(' ')
                    .map_or(l, |(head, _size)| head)
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(files_of(&copy), files_of(&source));
    assert_eq!(dirs(&copy), dirs(&source));
    assert!(
        !dirs(&source).is_empty(),
        "the writer changed nothing: {source}"
    );
    let blob = |f: &[String]| {
        f.iter()
            .filter(|l| l.contains("blob"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let source_files = files_of(&source);
    let count = p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "echo COUNT | nc -w 3 127.0.0.1 5432",
    ]);
    let records: usize = count.expect_success("count").trim().parse().unwrap();
    let ticks = p.hoist(&["exec", "db", "grep", "-c", "tick", "/data/log"]);
    eprintln!("{records} records after the move, of them written during it: {ticks}");
    assert!(records >= 50, "{count}");
    p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "echo PUT after-move | nc -w 3 127.0.0.1 5432",
    ])
    .expect_success("write on m3");
    let source = lab.docker_in("m1", &["volume", "ls", "-q"]);
    assert!(
        source.stdout.lines().any(|l| l == volume),
        "source volume removed: {source}"
    );
    assert_eq!(
        files_of(&lab.volume_fingerprint("m1", &volume)),
        source_files,
        "the source changed after the move"
    );
    let markers = lab.docker_in(
        "m3",
        &[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name=hoist-incoming-{volume}"),
        ],
    );
    assert_eq!(
        markers.stdout.trim(),
        "",
        "an unfinished-copy marker is left"
    );
    let plan = p.hoist(&["plan"]);
    assert!(plan.stdout.contains("No changes."), "{plan}");
    // The copy matches the source apart from the record written after the move.
    let after = lab.volume_fingerprint("m3", &volume);
    assert_eq!(blob(&files_of(&after)), blob(&files_of(&before)));
    assert!(after.contains("./blob 7:8"), "{after}");

    // Back to zone a: the copy the move left on m1 is older than the data (it lacks
    // "after-move") and is never taken for it — the plan moves the data back, and db on m1
    // then holds all 51 records.
    std::fs::write(p.dir.join("compose.yaml"), pinned_db("a")).unwrap();
    let plan = p.hoist(&["plan"]);
    assert!(
        plan.stdout
            .contains(&format!("» move db.1 m3 → m1 with volume {volume} (")),
        "{plan}"
    );
    p.hoist(&["up", "--yes", "--move-volumes"])
        .expect_success("moving back to m1");
    assert_eq!(p.placements(), [("db".to_string(), "m1".to_string())]);
    let count = p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "echo COUNT | nc -w 3 127.0.0.1 5432",
    ]);
    assert_eq!(
        count.expect_success("count").trim(),
        (records + 1).to_string()
    );
    let plan = p.hoist(&["plan"]);
    assert!(plan.stdout.contains("No changes."), "{plan}");
    let _ = lab.docker_in(
        "m3",
        &[
            "volume",
            "rm",
            "-f",
            &volume,
            &format!("hoist-moved-{volume}"),
        ],
    );
}

#[test]
fn a_full_target_fails_the_move_by_name_and_leaves_the_service_running() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "dr", "full", &pinned_db("a"));
    p.hoist(&["up", "--yes"]).expect_success("up on m1");
    let volume = format!("{}_data", p.name);
    p.hoist(&[
        "exec", "db", "sh", "-c",
        "echo 'PUT precious' | nc -w 3 127.0.0.1 5432 >/dev/null; dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null",
    ])
    .expect_success("write data");
    let before = files_of(&lab.volume_fingerprint("m1", &volume));
    // m3's copy of the volume lives on a filesystem with 2 MiB of room: a tmpfs volume of
    // that size, made beforehand and marked unfinished as a cut copy leaves it, so the move
    // copies into it and meets the "no space left on device" a full disk gives.
    let label = format!("io.hoist.project={}", p.name);
    lab.docker_in(
        "m3",
        &[
            "volume",
            "create",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=2m",
            "--label",
            &label,
            &volume,
        ],
    )
    .expect_success("a small volume on m3");
    lab.docker_in(
        "m3",
        &[
            "volume",
            "create",
            "--label",
            &label,
            &format!("hoist-incoming-{volume}"),
        ],
    )
    .expect_success("its unfinished-copy marker");

    std::fs::write(p.dir.join("compose.yaml"), pinned_db("c")).unwrap();
    let out = p.hoist(&["up", "--yes", "--move-volumes"]);
    eprintln!("{out}");
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("m3 has no space left for volume {volume} (")),
        "{out}"
    );
    assert!(out.stderr.contains("the source is untouched"), "{out}");
    // The copy failed while db ran: it was never stopped, it still answers on m1 with its data.
    assert!(out.stderr.contains("kept running"), "{out}");
    assert_eq!(p.placements(), [("db".to_string(), "m1".to_string())]);
    let get = p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "echo GET | nc -w 3 127.0.0.1 5432",
    ]);
    assert!(get.expect_success("get").contains("precious"), "{get}");
    assert_eq!(files_of(&lab.volume_fingerprint("m1", &volume)), before);
    // Back to zone a: nothing to do.
    std::fs::write(p.dir.join("compose.yaml"), pinned_db("a")).unwrap();
    let plan = p.hoist(&["plan"]);
    assert!(plan.stdout.contains("No changes."), "{plan}");
    let _ = lab.docker_in(
        "m3",
        &[
            "volume",
            "rm",
            "-f",
            &volume,
            &format!("hoist-incoming-{volume}"),
        ],
    );
}

/// A db on m1 with a record and a 160 MiB file, then `up --move-volumes` to m3 started and
/// returned as soon as it says the copy has begun (stdout and stderr piped). Returns the
/// project, its volume, the volume's fingerprint before, and the running `up`.
fn moving_db(lab: &Lab, tag: &str) -> (Project, String, String, std::process::Child) {
    let p = Project::new(lab, "dr", tag, &pinned_db("a"));
    p.hoist(&["up", "--yes"]).expect_success("up on m1");
    let volume = format!("{}_data", p.name);
    p.hoist(&[
        "exec", "db", "sh", "-c",
        "echo 'PUT precious' | nc -w 3 127.0.0.1 5432 >/dev/null; dd if=/dev/urandom of=/data/blob bs=1M count=160 2>/dev/null",
    ])
    .expect_success("write data");
    let before = lab.volume_fingerprint("m1", &volume);
    p.write(&pinned_db("c"));
    let mut child = p
        .command(&["up", "--yes", "--move-volumes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("copying volume"));
    assert!(started, "the copy never started");
    (p, volume, before, child)
}

#[test]
fn hoist_killed_mid_copy_leaves_the_source_and_never_uses_the_half_copy() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let (p, volume, before, mut child) = moving_db(lab, "kill");
    // Killed as soon as it says the copy started (an event, not a sleep).
    child.kill().unwrap();
    child.wait().unwrap();

    // The source volume is untouched; the target holds at most a marked, unused copy.
    assert_eq!(lab.volume_fingerprint("m1", &volume), before);
    // Back to zone a: the next up runs db again where it was, on its own data.
    std::fs::write(p.dir.join("compose.yaml"), pinned_db("a")).unwrap();
    let out = p.hoist(&["up", "--yes"]);
    out.expect_success("up after the kill");
    assert_eq!(p.placements(), [("db".to_string(), "m1".to_string())]);
    let get = p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "echo GET | nc -w 3 127.0.0.1 5432",
    ]);
    assert!(get.expect_success("get").contains("precious"), "{get}");
    // And pointing at m3 again plans a fresh copy: the half one is not taken for data.
    std::fs::write(p.dir.join("compose.yaml"), pinned_db("c")).unwrap();
    let plan = p.hoist(&["plan"]);
    assert!(
        plan.stdout.contains("» move db.1 m1 → m3 with volume"),
        "{plan}"
    );
    let _ = lab.docker_in(
        "m3",
        &[
            "volume",
            "rm",
            "-f",
            &volume,
            &format!("hoist-incoming-{volume}"),
        ],
    );
}

#[test]
fn the_target_dying_mid_copy_leaves_the_service_running_on_its_own_data() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let (p, volume, before, mut child) = moving_db(lab, "tdie");
    // m3 dies as soon as hoist says the copy to it started (an event, not a sleep).
    let killed = lab.fault(Fault::Kill, "m3");
    // The deploy ends (it must not wait on the dead machine for ever) and fails, saying why.
    let ended = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if ended.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("up still waits on the dead target 300 s after it died");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    eprintln!(
        "up ended {:.1}s after m3 died, {status}:\n{stderr}",
        ended.elapsed().as_secs_f64()
    );
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("moving volume {volume} from m1 to m3"))
            && stderr.contains("the source is untouched"),
        "{stderr}"
    );
    // Without another up: db runs again on m1 on its own data, unchanged. (ps exits 1 while
    // m3 is down, and still lists what the others run.)
    let ps = p.hoist(&["ps", "--json"]);
    let v: Value = serde_json::from_str(&ps.stdout).unwrap_or_else(|e| panic!("{e}: {ps}"));
    let running: Vec<(&str, &str)> = v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap(),
                r["machine"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(running, [("db", "m1")], "{ps}");
    let get = p.hoist(&[
        "exec",
        "db",
        "sh",
        "-c",
        "echo GET | nc -w 3 127.0.0.1 5432",
    ]);
    assert!(get.expect_success("get").contains("precious"), "{get}");
    p.hoist(&["exec", "db", "sync"]).expect_success("sync");
    assert_eq!(
        lab.volume_fingerprint("m1", &volume)
            .lines()
            .filter(|l| l.contains("blob"))
            .collect::<Vec<_>>(),
        before
            .lines()
            .filter(|l| l.contains("blob"))
            .collect::<Vec<_>>(),
        "the source changed"
    );
    // m3 back: its half copy is marked and never used — the plan copies afresh.
    killed.restore();
    let plan = p.hoist(&["plan"]);
    assert!(
        plan.stdout.contains("» move db.1 m1 → m3 with volume"),
        "{plan}"
    );
    // The failed up held the deploy lock on m3 when m3 died; m3 back (its engine restarted),
    // that lock is a dead process's and the next command takes it over.
    let down = p.hoist(&["down", "--volumes", "--yes"]);
    down.expect_success("down after m3 came back");
    assert!(
        down.stderr.contains("taking over the lock left by"),
        "{down}"
    );
    let _ = lab.docker_in(
        "m3",
        &[
            "volume",
            "rm",
            "-f",
            &volume,
            &format!("hoist-incoming-{volume}"),
        ],
    );
}

/// The lines of a volume fingerprint about regular files (owner, mode, size; checksum):
/// directories' sizes depend on the filesystem's history, not on the data.
fn files_of(fingerprint: &str) -> Vec<String> {
    let files: std::collections::BTreeSet<&str> = fingerprint
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(_, path)| path))
        .collect();
    fingerprint
        .lines()
        .filter(|l| {
            l.split_once("  ").is_some()
                || l.split(' ').next().is_some_and(|path| files.contains(path))
        })
        .map(str::to_string)
        .collect()
}
