//! `hoist machines` against the lab: every machine reported correctly, and each kind of
//! failure (paused machine, changed host key, stopped dockerd) reported as what it is —
//! within the timeout, without losing the other machines, and without leaving anything behind.

mod common;

use common::lab::{Fault, Lab, hoist};
use std::time::{Duration, Instant};

/// ssh processes and socket folders left by hoist processes that have exited.
/// (A hoist still running — another test's — owns its folder legitimately.)
fn leftovers() -> Vec<String> {
    let dead = |name: &str| {
        name.strip_prefix("hoist-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let owner = cmd
                .split("/tmp/")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("");
            if cmd.starts_with("ssh ") && dead(owner) {
                found.push(format!(
                    "process {}: {cmd}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    for entry in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && dead(&name) {
            found.push(format!("folder /tmp/{name}"));
        }
    }
    found
}

fn machines_json(lab: &Lab, extra: &[&str]) -> (common::lab::Output, serde_json::Value) {
    let file = lab.machines_file();
    let mut args = vec!["-m", file.to_str().unwrap(), "machines", "--json"];
    args.extend_from_slice(extra);
    let out = hoist(&args);
    let json: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("machines --json is not JSON ({e}):\n{out}"));
    (out, json)
}

fn machine<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {json}"))
}

#[test]
fn reports_every_machine_with_its_engine() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let (out, json) = machines_json(lab, &[]);
    assert!(out.success(), "{out}");
    for m in lab.machines() {
        let j = machine(&json, &m.name);
        assert_eq!(j["reachable"], true, "{j}");
        let engine = j["engine_version"].as_str().unwrap();
        assert!(
            engine.starts_with(&format!("{}.", m.engine_major)),
            "{}: engine {engine}",
            m.name
        );
        let api = j["api_version"].as_str().unwrap();
        assert_eq!(
            api,
            if m.engine_major == 20 { "1.41" } else { "1.45" },
            "{}",
            m.name
        );
        assert_eq!(j["os"], "linux");
        assert!(j["cpus"].as_u64().unwrap() >= 1);
        assert!(j["memory_bytes"].as_u64().unwrap() > 100 << 20);
        assert!(j["labels"]["zone"].is_string(), "{j}");
    }
    // The human table names every machine too.
    let file = lab.machines_file();
    let table = hoist(["-m", file.to_str().unwrap(), "machines"]);
    for m in lab.machines() {
        assert!(table.stdout.contains(&m.name), "{table}");
    }
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
}

#[test]
fn a_paused_machine_is_reported_within_the_timeout() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let _paused = lab.fault(Fault::Pause, "m2");
    let started = Instant::now();
    let (out, json) = machines_json(lab, &["--timeout", "4s"]);
    let took = started.elapsed();
    assert_eq!(
        out.code(),
        Some(1),
        "an unreachable machine must fail the command:\n{out}"
    );
    // The timeout bounds the whole command (plus process start and cleanup).
    assert!(took < Duration::from_secs(12), "took {took:?}");
    assert_eq!(machine(&json, "m2")["reachable"], false);
    let why = machine(&json, "m2")["error"].as_str().unwrap().to_string();
    assert!(
        why.contains("timeout") || why.contains("no answer"),
        "{why}"
    );
    assert_eq!(machine(&json, "m1")["reachable"], true);
    assert_eq!(machine(&json, "m3")["reachable"], true);
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
}

#[test]
fn a_changed_host_key_is_refused() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let _rekeyed = lab.fault(Fault::Rekey, "m3");
    let (out, json) = machines_json(lab, &[]);
    assert_eq!(out.code(), Some(1), "{out}");
    let why = machine(&json, "m3")["error"].as_str().unwrap().to_string();
    assert!(why.contains("HOST KEY CHANGED"), "{why}");
    assert_eq!(machine(&json, "m1")["reachable"], true);
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
}

#[test]
fn a_stopped_docker_is_not_an_ssh_failure() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let _stopped = lab.fault(Fault::StopDocker, "m1");
    let (out, json) = machines_json(lab, &[]);
    assert_eq!(out.code(), Some(1), "{out}");
    let why = machine(&json, "m1")["error"].as_str().unwrap().to_string();
    assert!(why.contains("docker not running"), "{why}");
    assert!(!why.starts_with("ssh"), "{why}");
    assert_eq!(machine(&json, "m2")["reachable"], true);
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
}

/// The pids of ssh processes whose command line mentions `dir`.
fn ssh_processes_in(dir: &std::path::Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.starts_with("ssh ") && c.contains(&needle)
            })
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    pids.sort();
    pids
}

/// By default a command leaves its ssh masters for the next one (HOIST_SSH_PERSIST): the
/// second command reuses them, and a machine lost since is still reported, within the timeout.
#[test]
fn kept_masters_are_reused_and_a_lost_machine_is_still_reported() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    // A runtime dir of the test's own, so no other hoist's kept masters mix in.
    let runtime = std::path::PathBuf::from(format!("/tmp/hk{}", std::process::id()));
    std::fs::create_dir_all(&runtime).unwrap();
    let file = lab.machines_file();
    let machines = |timeout: &str| {
        let out = common::lab::run(
            common::lab::hoist_command()
                .env("HOIST_SSH_PERSIST", "30s")
                .env("XDG_RUNTIME_DIR", &runtime)
                .args(["-m", file.to_str().unwrap(), "--timeout", timeout])
                .args(["machines", "--json"]),
        );
        let json: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("machines --json is not JSON ({e}):\n{out}"));
        (out, json)
    };
    let cache = std::fs::read_dir(&runtime)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("hoist-ssh-")
        });
    assert!(cache.is_none(), "a fresh runtime dir has no kept masters");

    let (first, _) = machines("10s");
    assert!(first.success(), "{first}");
    let cache = runtime.join(format!("hoist-ssh-{}", unsafe { libc::geteuid() }));
    let kept = ssh_processes_in(&cache);
    assert_eq!(kept.len(), 3, "one master kept per machine: {kept:?}");
    let records = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ctl"))
        .count();
    assert_eq!(records, 3);

    let (second, _) = machines("10s");
    assert!(second.success(), "{second}");
    assert_eq!(
        ssh_processes_in(&cache),
        kept,
        "the second command reuses the masters"
    );

    let paused = lab.fault(Fault::Pause, "m2");
    let started = Instant::now();
    let (third, json) = machines("4s");
    let took = started.elapsed();
    assert_eq!(third.code(), Some(1), "{third}");
    assert!(took < Duration::from_secs(12), "took {took:?}");
    assert_eq!(machine(&json, "m2")["reachable"], false, "{third}");
    assert_eq!(machine(&json, "m1")["reachable"], true, "{third}");
    assert_eq!(machine(&json, "m3")["reachable"], true, "{third}");
    drop(paused);

    // Leave nothing: stop the kept masters (they would exit after 30 s idle anyway).
    for pid in ssh_processes_in(&cache) {
        unsafe { libc::kill(pid.parse().unwrap(), libc::SIGTERM) };
    }
    let _ = std::fs::remove_dir_all(&runtime);
}

#[test]
fn an_unknown_machines_file_key_names_file_and_key() {
    let dir = std::env::temp_dir().join(format!("hoist-badinv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hoist.yaml");
    std::fs::write(
        &file,
        "machines:\n  web1:\n    ssh: root@192.0.2.1\n    prot: 22\n",
    )
    .unwrap();
    let out = hoist(["-m", file.to_str().unwrap(), "machines"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("hoist.yaml: machines.web1: unknown field `prot`"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
