//! Moving a project from one provider's machines to another's, with its data: the lab's opt-in
//! "providers" (pa1, pa2 on the lab network; pb1, pb2 on a second network the box routes to, so
//! A and B reach each other only at their machines' addresses). The project runs on A (a db with
//! data in a volume, web behind the ingress); B's machines join the machines file; `drain` of
//! A's machines moves everything to B while a client keeps opening new connections through a B
//! machine's ingress — no failed request, the db's data identical on B, its downtime reported,
//! and no hoist container left on A.

mod common;

use common::lab::{Lab, Output, http_get, http_get_until, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// This test's ingress ports (HTTP; HTTPS is the next one).
const PORT: u16 = 19481;
const PB1: &str = "172.31.78.11";

struct Project {
    dir: PathBuf,
    name: String,
}

impl Project {
    fn hoist(&self, machines: &Path, args: &[&str]) -> Output {
        run(common::lab::hoist_command()
            .current_dir(&self.dir)
            .args(["-m", machines.to_str().unwrap(), "-p", &self.name])
            .args(args))
    }

    /// (service, machine) of every current replica.
    fn placements(&self, machines: &Path) -> Vec<(String, String)> {
        let out = self.hoist(machines, &["ps", "--json"]);
        let v: Value = serde_json::from_str(out.expect_success("ps --json")).unwrap();
        let mut out: Vec<(String, String)> = v["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["service"].as_str().unwrap().to_string(),
                    r["machine"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// Lifts the cordons and removes the project (volumes too) however the test ends.
struct Cleanup<'a> {
    p: &'a Project,
    machines: &'a Path,
    lab: &'a Lab,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.p.hoist(self.machines, &["undrain", "pa1", "pa2"]);
        let _ = self.p.hoist(self.machines, &["down", "--volumes", "--yes"]);
        // The copies a drain keeps on A (labelled, never removed by hoist on its own).
        for m in ["pa1", "pa2"] {
            let _ = self
                .lab
                .docker_in(m, &["volume", "rm", "-f", &format!("{}_data", self.p.name)]);
        }
        let _ = std::fs::remove_dir_all(&self.p.dir);
    }
}

fn compose() -> String {
    format!(
        r#"
x-hoist:
  ingress:
    image: hoist-test/caddy:latest
    http_port: {PORT}
    https_port: {https}
    tls: off
services:
  web:
    image: hoist-test/app:v1
    ports: ["80"]
    x-hoist:
      ingress:
        health: {{path: /cgi-bin/health, interval: 1s, timeout: 500ms}}
    deploy:
      replicas: 2
      placement:
        preferences: [{{spread: node.labels.zone}}]
  db:
    image: hoist-test/db:latest
    volumes: [data:/data]
    stop_grace_period: 5s
volumes:
  data: {{}}
"#,
        https = PORT + 1
    )
}

#[test]
fn a_project_moves_from_provider_a_to_provider_b_with_its_data() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let both = lab.providers();
    let dir = std::env::temp_dir().join(format!("hoist-e2e-providers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("compose.yaml"), compose()).unwrap();
    // Provider A alone, as the project ran before the move.
    let only_a = dir.join("machines-a.yaml");
    std::fs::write(
        &only_a,
        format!(
            "ssh_config: {}\nmachines:\n  pa1: {{ssh: pa1, labels: {{provider: a, zone: a1}}}}\n  pa2: {{ssh: pa2, labels: {{provider: a, zone: a2}}}}\n",
            lab.ssh_config().display()
        ),
    )
    .unwrap();
    let p = Project {
        dir,
        name: format!("prov{}", std::process::id()),
    };
    let _cleanup = Cleanup {
        p: &p,
        machines: &both,
        lab,
    };

    p.hoist(&only_a, &["up", "--yes"])
        .expect_success("up on provider A");
    let on_a = p.placements(&only_a);
    let db_machine = on_a
        .iter()
        .find(|(s, _)| s == "db")
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("no db: {on_a:?}"));
    assert!(on_a.iter().all(|(_, m)| m.starts_with("pa")), "{on_a:?}");
    let volume = format!("{}_data", p.name);
    p.hoist(
        &only_a,
        &[
            "exec", "db", "sh", "-c",
            "for i in $(seq 1 40); do echo \"PUT r$i\"; done | nc -w 3 127.0.0.1 5432 >/dev/null; \
             dd if=/dev/urandom of=/data/blob bs=1M count=32 2>/dev/null; chown 7:8 /data/blob; sync",
        ],
    )
    .expect_success("write the db's data");
    let before = lab.volume_fingerprint(&db_machine, &volume);

    // B joins the machines file: the ingress comes up on B's machines; nothing moves yet.
    p.hoist(&both, &["up", "--yes"])
        .expect_success("up with B in the machines file");
    assert_eq!(p.placements(&both), on_a, "replicas moved on their own");
    http_get_until(PB1, PORT, "/", 200, Duration::from_secs(60));

    // Drain A, under load through B's ingress (a new connection per request).
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match http_get(PB1, PORT, "/") {
                    Ok((200, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    let drain = p.hoist(&both, &["drain", "pa1", "pa2", "--yes", "--move-volumes"]);
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.join().unwrap();
    eprintln!(
        "through pb1's ingress during the drain: {ok} answered 200, {} failed\n{drain}",
        failed.len()
    );
    drain.expect_success("drain pa1 pa2");
    assert!(
        failed.is_empty(),
        "requests failed during the drain: {failed:?}"
    );
    assert!(ok > 0, "no request went through during the drain");
    let said = format!("{}{}", drain.stdout, drain.stderr);
    assert!(said.contains("copied and verified"), "{drain}");
    assert!(
        said.contains("were down at most"),
        "the db's downtime: {drain}"
    );

    // Everything runs on B; the db on an identical copy of its data.
    let on_b = p.placements(&both);
    assert_eq!(on_b.len(), on_a.len(), "{on_b:?}");
    assert!(on_b.iter().all(|(_, m)| m.starts_with("pb")), "{on_b:?}");
    let new_db = &on_b.iter().find(|(s, _)| s == "db").unwrap().1;
    assert_eq!(lab.volume_fingerprint(new_db, &volume), before);
    let count = p.hoist(
        &both,
        &[
            "exec",
            "db",
            "sh",
            "-c",
            "echo COUNT | nc -w 3 127.0.0.1 5432",
        ],
    );
    assert_eq!(count.expect_success("count").trim(), "40");
    // A's machines run no hoist container of the project (replicas, ingress); the source
    // volume stays there, labelled, until removed by hand.
    for m in ["pa1", "pa2"] {
        let left = lab.docker_in(
            m,
            &[
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                &format!("label=io.hoist.project={}", p.name),
            ],
        );
        assert_eq!(left.expect_success("docker ps").trim(), "", "left on {m}");
    }
    let source = lab.docker_in(&db_machine, &["volume", "ls", "-q"]);
    assert!(
        source.stdout.lines().any(|l| l == volume),
        "the source volume was removed: {source}"
    );
    // And the plan agrees there is nothing left to do.
    let plan = p.hoist(&both, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{plan}");
}
