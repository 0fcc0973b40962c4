//! `hoist volumes ls|backup|restore` on the lab, as a user meets them: data written into a
//! deployed service's volume is backed up, destroyed and restored, and the files (content,
//! owners, modes) come back identical; a corrupted file and a non-empty volume are refused
//! without a change; a service's `x-hoist.backup` command keeps it running, and a replica whose
//! PID 1 ignores SIGTERM is stopped for the copy and started again.
//!
//! Each test has its own project name, so they run beside the other end-to-end tests.

mod common;

use common::lab::{Lab, run};
use common::project::Project;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

impl Project {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs a shell line in the service's replica; returns its output.
    #[track_caller]
    fn sh(&self, service: &str, line: &str) -> String {
        let out = self.hoist(&["exec", service, "sh", "-c", line]);
        out.expect_success(&format!("exec {line}")).to_string()
    }

    /// Every file and folder under /data with owner, group, mode and size, and the sha256 of
    /// every file's content: equal listings mean identical data.
    fn fingerprint(&self, service: &str) -> String {
        self.sh(
            service,
            "cd /data && find . -exec stat -c '%n %u:%g %a %s' {} + | sort && find . -type f -exec sha256sum {} + | sort",
        )
    }

    /// `hoist ps --json` replicas of `service`: (machine, id, state).
    fn replicas(&self, service: &str) -> Vec<(String, String, String)> {
        let out = self.hoist(&["ps", "--json"]);
        let v: Value = serde_json::from_str(out.expect_success("ps --json")).unwrap();
        v["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["service"] == service)
            .map(|r| {
                (
                    r["machine"].as_str().unwrap().to_string(),
                    r["id"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
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
fn backup_destroy_restore_gives_back_identical_data() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "vol", "rt", DB);
    p.hoist(&["up", "--yes"]).expect_success("up");
    let volume = format!("{}_data", p.name);

    // Data of several kinds: text records, a binary file of another owner and mode, a folder.
    p.sh(
        "db",
        "for i in $(seq 1 300); do echo \"PUT record-$i\" ; done | nc -w 3 127.0.0.1 5432 >/dev/null; \
         mkdir -p /data/sub/deeper && dd if=/dev/urandom of=/data/sub/blob bs=1024 count=768 2>/dev/null && \
         chown 1234:2345 /data/sub/blob && chmod 640 /data/sub/blob && echo x > /data/sub/deeper/.hidden",
    );
    let before = p.fingerprint("db");
    assert!(
        before.contains("./sub/blob 1234:2345 640 786432"),
        "{before}"
    );
    assert_eq!(p.sh("db", "wc -l </data/log").trim(), "300");

    // ls: the volume, on the machine running db, with its size and service.
    let (machine, id_before, _) = p.replicas("db").remove(0);
    let out = p.hoist(&["volumes", "ls", "--json"]);
    let ls: Value = serde_json::from_str(out.expect_success("volumes ls")).unwrap();
    let row = ls["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == volume.as_str())
        .unwrap_or_else(|| panic!("{volume} not listed: {ls}"));
    assert_eq!(row["machine"], machine.as_str(), "{ls}");
    assert_eq!(row["services"], serde_json::json!(["db"]), "{ls}");
    assert!(row["size"].as_u64().unwrap() >= 786432, "{ls}");
    let text = p.hoist(&["volumes", "ls"]);
    assert!(
        text.expect_success("volumes ls").contains(&volume),
        "{text}"
    );

    // Backup by service name: db is stopped for the copy and runs again after it.
    let file = p.file("db.hoist");
    let out = p.hoist(&["volumes", "backup", "db", "-o", file.to_str().unwrap()]);
    let said = out.expect_success("backup");
    assert!(said.contains("db.1 stopped for the copy"), "{out}");
    assert!(file.exists() && !p.file("db.hoist.partial").exists());
    let after = p.replicas("db");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1, id_before, "the same container is started again");
    assert_eq!(after[0].2, "running", "{after:?}");
    // The file is a plain tar anyone can open: the volume's files and a manifest.
    let listing = run(Command::new("tar").arg("tf").arg(&file));
    assert_eq!(
        listing.expect_success("tar tf").lines().collect::<Vec<_>>(),
        ["volume.tar.gz", "manifest.json"]
    );

    // A second backup to the same file is refused (nothing overwritten).
    let again = p.hoist(&["volumes", "backup", "db", "-o", file.to_str().unwrap()]);
    assert_eq!(again.code(), Some(1), "{again}");
    assert!(again.stderr.contains("exists"), "{again}");

    // Destroy the data.
    p.sh("db", "rm -rf /data/* /data/.[!.]* ; echo junk > /data/junk");
    let destroyed = p.fingerprint("db");
    assert_ne!(destroyed, before);

    // A volume that holds something is not overwritten without the flag.
    let out = p.hoist(&["volumes", "restore", file.to_str().unwrap(), "--yes"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("is not empty"), "{out}");
    assert!(out.stderr.contains("--overwrite"), "{out}");
    assert_eq!(
        p.fingerprint("db"),
        destroyed,
        "a refused restore changed the volume"
    );

    // A corrupted backup is refused before anything is touched, even with --overwrite.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = 512 + (bytes.len() - 2048) / 2;
    bytes[middle] ^= 0x40;
    let bad = p.file("bad.hoist");
    std::fs::write(&bad, &bytes).unwrap();
    let out = p.hoist(&[
        "volumes",
        "restore",
        bad.to_str().unwrap(),
        "--overwrite",
        "--yes",
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("corrupted"), "{out}");
    assert_eq!(
        p.fingerprint("db"),
        destroyed,
        "a corrupted restore changed the volume"
    );

    // The real restore: everything back as it was, db running on the same machine.
    let out = p.hoist(&[
        "volumes",
        "restore",
        file.to_str().unwrap(),
        "--overwrite",
        "--yes",
    ]);
    out.expect_success("restore");
    assert!(out.stdout.contains("previous contents replaced"), "{out}");
    assert_eq!(p.fingerprint("db"), before, "restored data differs");
    let after = p.replicas("db");
    assert_eq!(after[0].0, machine);
    assert_eq!(after[0].2, "running", "{after:?}");
    // The service itself reads its data back.
    assert_eq!(
        p.sh("db", "echo COUNT | nc -w 3 127.0.0.1 5432").trim(),
        "300"
    );

    // Restore onto an empty volume needs no flag: onto another machine, chosen by hand.
    let other = lab
        .machine_names()
        .into_iter()
        .find(|m| *m != machine)
        .unwrap()
        .to_string();
    let out = p.hoist(&[
        "volumes",
        "restore",
        file.to_str().unwrap(),
        "--machine",
        &other,
        "--yes",
    ]);
    out.expect_success("restore onto another machine");
    assert!(out.stdout.contains("volume created"), "{out}");
    let check = lab.docker_in(
        &other,
        &[
            "run", "--rm", "-v", &format!("{volume}:/data"), "hoist-test/base:latest",
            "sh", "-c", "cd /data && find . -exec stat -c '%n %u:%g %a %s' {} + | sort && find . -type f -exec sha256sum {} + | sort",
        ],
    );
    assert_eq!(check.expect_success("read the copy"), before);
    // No helper container is left on either machine.
    for m in [&machine, &other] {
        let left = lab.docker_in(m, &["ps", "-aq", "--filter", "label=io.hoist.role=volume"]);
        assert_eq!(left.expect_success("ps").trim(), "", "helpers left on {m}");
    }
    let _ = lab.docker_in(&other, &["volume", "rm", &volume]);
}

const CONSISTENCY: &str = r#"
services:
  live:
    image: hoist-test/base:latest
    command: ["sh", "-c", "mkdir -p /data && while true; do date >> /data/ticks; sleep 1; done"]
    volumes: [live:/data]
    x-hoist:
      backup:
        command: "echo checkpoint > /data/checkpoint && sync"
        timeout: 30s
  stubborn:
    # PID 1 is a shell that ignores SIGTERM: a stop waits out the grace period.
    image: hoist-test/base:latest
    command: ["sh", "-c", "mkdir -p /data && echo hello > /data/greeting && sleep 100000"]
    volumes: [stubborn:/data]
    stop_grace_period: 2s
volumes:
  live: {}
  stubborn: {}
"#;

fn started_at(lab: &Lab, machine: &str, id: &str) -> String {
    let out = lab.docker_in(machine, &["inspect", "-f", "{{.State.StartedAt}}", id]);
    out.expect_success("inspect").trim().to_string()
}

#[test]
fn a_backup_command_keeps_the_service_running_and_a_stubborn_one_is_stopped() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "vol", "cs", CONSISTENCY);
    p.hoist(&["up", "--yes"]).expect_success("up");

    // With x-hoist.backup.command: the replica is never stopped, and the command ran first.
    let (m, id, _) = p.replicas("live").remove(0);
    let since = started_at(lab, &m, &id);
    let file = p.file("live.hoist");
    let out = p.hoist(&[
        "volumes",
        "backup",
        "live",
        "-o",
        file.to_str().unwrap(),
        "--json",
    ]);
    let report: Value = serde_json::from_str(out.expect_success("backup live")).unwrap();
    assert!(
        report["manifest"]["consistency"]
            .as_str()
            .unwrap()
            .contains("kept running"),
        "{report}"
    );
    assert!(report["stopped_for"].is_null(), "{report}");
    assert_eq!(started_at(lab, &m, &id), since, "live was restarted");
    let inner = run(Command::new("sh").arg("-c").arg(format!(
        "tar xOf {} volume.tar.gz | tar tzf -",
        file.display()
    )));
    assert!(
        inner
            .expect_success("list the copy")
            .contains("hoist-volume/checkpoint"),
        "{inner}"
    );

    // Without one, a replica that ignores SIGTERM is stopped (its grace period, then killed)
    // and started again; the copy holds its data.
    let (m, id, _) = p.replicas("stubborn").remove(0);
    let since = started_at(lab, &m, &id);
    let file = p.file("stubborn.hoist");
    let out = p.hoist(&[
        "volumes",
        "backup",
        "stubborn",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.expect_success("backup stubborn")
            .contains("stubborn.1 stopped for the copy"),
        "{out}"
    );
    assert_ne!(started_at(lab, &m, &id), since, "stubborn was not stopped");
    assert_eq!(p.replicas("stubborn")[0].2, "running");
    let inner = run(Command::new("sh").arg("-c").arg(format!(
        "tar xOf {} volume.tar.gz | tar xzOf - hoist-volume/greeting",
        file.display()
    )));
    assert_eq!(inner.expect_success("read the copy"), "hello\n");

    // A failing backup command stops the backup: no file, the replica untouched.
    std::fs::write(
        p.file("compose.yaml"),
        CONSISTENCY.replace("echo checkpoint > /data/checkpoint && sync", "exit 7"),
    )
    .unwrap();
    let file = p.file("failed.hoist");
    let out = p.hoist(&["volumes", "backup", "live", "-o", file.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("exited with 7"), "{out}");
    assert!(!file.exists() && !p.file("failed.hoist.partial").exists());

    // A bad x-hoist.backup is refused naming the key.
    std::fs::write(
        p.file("compose.yaml"),
        CONSISTENCY.replace("timeout: 30s", "timeout: soon"),
    )
    .unwrap();
    let out = p.hoist(&["volumes", "backup", "live", "-o", file.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("services.live.x-hoist.backup: timeout"),
        "{out}"
    );
    std::fs::write(p.file("compose.yaml"), CONSISTENCY).unwrap();
}
