//! The deploy lifecycle on the lab (3 machines, engines 20.10 and 26), with the
//! example in examples/shop (web ×4, api ×2, db with a volume, worker):
//! deploy from nothing, a no-op plan, a rolling update that keeps replicas on
//! their machines, a failing version rolled back automatically, `rollback`,
//! scaling 4 → 6 → 2, a service removed from the file, `down` keeping the data,
//! hoist killed mid-rollout then converging, and two deploys at once.

mod common;

use common::lab::{Lab, Output, http_get, run};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Shop {
    dir: PathBuf,
    project: String,
    machines: PathBuf,
}

impl Shop {
    fn new(lab: &Lab, tag: &str) -> Shop {
        let dir = std::env::temp_dir().join(format!("hoist-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
        for file in ["compose.yaml", "api_key.txt"] {
            std::fs::copy(example.join(file), dir.join(file)).unwrap();
        }
        Shop {
            dir,
            project: format!("e2e{tag}{}", std::process::id()),
            machines: lab.machines_file(),
        }
    }

    fn command(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let mut cmd = common::lab::hoist_command();
        cmd.current_dir(&self.dir)
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.project])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn hoist(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        run(&mut self.command(env, args))
    }

    /// `ps --json` replicas: (service, slot) → (machine, image, container id, ports).
    fn replicas(&self) -> BTreeMap<(String, String), Value> {
        let out = self.hoist(&[], &["ps", "--json"]);
        let v: Value = serde_json::from_str(out.expect_success("ps")).unwrap();
        v["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (
                        r["service"].as_str().unwrap().to_string(),
                        r["slot"].as_str().unwrap().to_string(),
                    ),
                    r.clone(),
                )
            })
            .collect()
    }

    fn count(&self, service: &str) -> usize {
        self.replicas().keys().filter(|(s, _)| s == service).count()
    }

    /// What every web replica answers on its published port.
    fn web_answers(&self, lab: &Lab) -> Vec<String> {
        let mut answers = Vec::new();
        for ((service, _), r) in self.replicas() {
            if service != "web" {
                continue;
            }
            let machine = r["machine"].as_str().unwrap();
            let port: u16 = r["ports"][0]
                .as_str()
                .and_then(|p| p.split("->").next())
                .and_then(|p| p.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no port in {r}"));
            let (code, body) = http_get(lab.ip(machine), port, "/").unwrap_or((0, String::new()));
            answers.push(format!("{code} {}", body.trim()));
        }
        answers
    }

    /// Every container of the project on every machine, by (service, slot): how many exist,
    /// and how many run.
    fn containers(&self, lab: &Lab) -> BTreeMap<(String, String), (usize, usize)> {
        let mut out = BTreeMap::new();
        for m in lab.machines() {
            let list = lab.docker_in(
                &m.name,
                &[
                    "ps",
                    "-a",
                    "--filter",
                    &format!("label=io.hoist.project={}", self.project),
                    "--format",
                    "{{.Label \"io.hoist.service\"}} {{.Label \"io.hoist.slot\"}} {{.State}}",
                ],
            );
            for line in list.expect_success("docker ps in a machine").lines() {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let e = out
                    .entry((parts[0].to_string(), parts[1].to_string()))
                    .or_insert((0, 0));
                e.0 += 1;
                if parts[2] == "running" {
                    e.1 += 1;
                }
            }
        }
        out
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.hoist(&[], &["down", "--volumes", "--yes"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn assert_one_running_per_slot(shop: &Shop, lab: &Lab) {
    for (slot, (_, running)) in shop.containers(lab) {
        assert!(
            running <= 1,
            "slot {slot:?} has {running} running containers"
        );
    }
}

#[test]
fn shop_lifecycle() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let shop = Shop::new(lab, "life");

    // From nothing.
    let up = shop.hoist(&[], &["up", "--yes"]);
    up.expect_success("first up");
    assert_eq!(shop.count("web"), 4);
    assert_eq!(shop.count("api"), 2);
    assert_eq!(shop.count("db"), 1);
    assert_eq!(shop.count("worker"), 1);
    let web_machines: std::collections::BTreeSet<String> = shop
        .replicas()
        .iter()
        .filter(|((s, _), _)| s == "web")
        .map(|(_, r)| r["machine"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        web_machines.len(),
        3,
        "web spread over the 3 zones: {web_machines:?}"
    );
    assert!(
        shop.web_answers(lab)
            .iter()
            .all(|a| a.starts_with("200 version=v1")),
        "{:?}",
        shop.web_answers(lab)
    );

    // The one-shot migration ran to completion before api started.
    let migrate = &shop.replicas()[&("migrate".to_string(), "1".to_string())];
    assert!(
        migrate["status"]
            .as_str()
            .unwrap()
            .starts_with("Exited (0)"),
        "{migrate}"
    );

    // The secret is a file in api's containers, and nowhere in labels, env or the plan.
    let secret = shop.hoist(
        &[],
        &["exec", "api", "-T", "--", "cat", "/run/secrets/api_key"],
    );
    assert_eq!(
        secret.expect_success("read the secret").trim(),
        "demo-key-not-secret"
    );
    let mode = shop.hoist(
        &[],
        &[
            "exec",
            "api",
            "-T",
            "--",
            "stat",
            "-c",
            "%a",
            "/run/secrets/api_key",
        ],
    );
    assert_eq!(mode.stdout.trim(), "400", "{mode}");
    for r in shop.replicas().values().filter(|r| r["service"] == "api") {
        let inspect = lab.docker_in(
            r["machine"].as_str().unwrap(),
            &["inspect", r["id"].as_str().unwrap()],
        );
        assert!(
            !inspect.stdout.contains("demo-key-not-secret"),
            "secret leaked into the container config"
        );
    }

    // Nothing changed: the plan says so, and a second up touches nothing.
    let plan = shop.hoist(&[], &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "{plan}");
    assert!(plan.stdout.contains("No changes."), "{plan}");
    let ids_before: Vec<String> = shop
        .replicas()
        .values()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    shop.hoist(&[], &["up", "--yes"])
        .expect_success("second up");
    let ids_after: Vec<String> = shop
        .replicas()
        .values()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids_before, ids_after,
        "a no-op up must not recreate containers"
    );

    // The plan shows exactly the edit; the rolling update keeps replicas on their machines.
    let v2 = [("WEB_VERSION", "v2")];
    let plan = shop.hoist(&v2, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(2), "{plan}");
    assert_eq!(plan.stdout.matches("~ replace web.").count(), 4, "{plan}");
    assert_eq!(
        plan.stdout
            .matches("image hoist-test/app:v1 → hoist-test/app:v2")
            .count(),
        4,
        "{plan}"
    );
    assert!(
        plan.stdout
            .contains("0 to create, 4 to replace, 0 to remove, 5 unchanged"),
        "{plan}"
    );
    let placement = |shop: &Shop| -> BTreeMap<(String, String), String> {
        shop.replicas()
            .into_iter()
            .map(|(k, r)| (k, r["machine"].as_str().unwrap().to_string()))
            .collect()
    };
    let before = placement(&shop);
    shop.hoist(&v2, &["up", "--yes"])
        .expect_success("rolling update to v2");
    assert_eq!(
        placement(&shop),
        before,
        "replicas must stay on their machines"
    );
    assert!(
        shop.web_answers(lab)
            .iter()
            .all(|a| a.starts_with("200 version=v2")),
        "{:?}",
        shop.web_answers(lab)
    );

    // A version whose health check fails is rolled back; v2 keeps serving; exit non-zero.
    let bad = shop.hoist(&[("WEB_VERSION", "bad")], &["up", "--yes"]);
    assert_eq!(bad.code(), Some(1), "{bad}");
    assert!(bad.stderr.contains("rolled back"), "{bad}");
    assert!(
        shop.web_answers(lab)
            .iter()
            .all(|a| a.starts_with("200 version=v2")),
        "{:?}",
        shop.web_answers(lab)
    );
    assert_one_running_per_slot(&shop, lab);

    // `rollback` after a good deploy: back to v1 without the old file.
    shop.hoist(&[], &["rollback", "--yes", "web"])
        .expect_success("rollback");
    assert!(
        shop.web_answers(lab)
            .iter()
            .all(|a| a.starts_with("200 version=v1")),
        "{:?}",
        shop.web_answers(lab)
    );
    shop.hoist(&v2, &["up", "--yes"])
        .expect_success("forward again to v2");

    // Scale 4 → 6 → 2.
    shop.hoist(
        &[("WEB_VERSION", "v2"), ("WEB_REPLICAS", "6")],
        &["up", "--yes"],
    )
    .expect_success("scale to 6");
    assert_eq!(shop.count("web"), 6);
    shop.hoist(
        &[("WEB_VERSION", "v2"), ("WEB_REPLICAS", "2")],
        &["up", "--yes"],
    )
    .expect_success("scale to 2");
    assert_eq!(shop.count("web"), 2);
    assert_one_running_per_slot(&shop, lab);

    // A new secret value: api is replaced, and the plan never shows the value.
    std::fs::write(shop.dir.join("api_key.txt"), "rotated-key-value\n").unwrap();
    let plan = shop.hoist(&v2, &["plan", "--json"]);
    assert!(!plan.stdout.contains("rotated-key-value"), "{plan}");
    let text = shop.hoist(&v2, &["plan"]);
    assert_eq!(
        text.stdout
            .matches("secrets /run/secrets/api_key changed")
            .count(),
        2,
        "{text}"
    );
    assert!(!text.stdout.contains("rotated-key-value"), "{text}");

    // A service removed from the file is removed from the machines.
    let text = std::fs::read_to_string(shop.dir.join("compose.yaml")).unwrap();
    let without_worker = text.replace(
        "  worker:\n    image: hoist-test/worker:latest\n    depends_on: [db]\n",
        "",
    );
    assert_ne!(
        text, without_worker,
        "the example's worker block moved; update this test"
    );
    std::fs::write(shop.dir.join("compose.yaml"), without_worker).unwrap();
    let plan = shop.hoist(&v2, &["plan"]);
    assert!(plan.stdout.contains("- remove worker.1"), "{plan}");
    shop.hoist(
        &[("WEB_VERSION", "v2"), ("WEB_REPLICAS", "2")],
        &["up", "--yes"],
    )
    .expect_success("remove worker");
    assert_eq!(shop.count("worker"), 0);
    assert!(
        !shop.containers(lab).keys().any(|(s, _)| s == "worker"),
        "worker containers left"
    );
}

#[test]
fn down_keeps_volumes_and_data() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let shop = Shop::new(lab, "data");
    shop.hoist(&[], &["up", "--yes"]).expect_success("up");
    let db = shop.replicas()[&("db".to_string(), "1".to_string())].clone();
    let machine = db["machine"].as_str().unwrap().to_string();
    let put = shop.hoist(
        &[],
        &[
            "exec",
            "db",
            "-T",
            "--",
            "sh",
            "-c",
            "echo 'PUT kept' | nc 127.0.0.1 5432",
        ],
    );
    put.expect_success("write into the db");
    // The plan first: every machine's removals, the volume named as staying; nothing touched.
    let dry = shop.hoist(&[], &["down", "--dry-run"]);
    let text = dry.expect_success("down --dry-run");
    assert!(text.contains("  - remove container "), "{dry}");
    assert!(
        text.contains("volumes stay (down --volumes removes them"),
        "{dry}"
    );
    let json = shop.hoist(&[], &["down", "--dry-run", "--volumes", "--json"]);
    let plan: Value = serde_json::from_str(json.expect_success("down --dry-run --json")).unwrap();
    let on_db = plan["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == machine.as_str())
        .unwrap();
    assert!(
        on_db["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| *v == format!("{}_data", shop.project)),
        "{plan}"
    );
    let running = shop.replicas().len();
    assert!(running > 0);
    let planned = plan["counts"]["containers"].as_u64().unwrap() as usize;
    assert!(planned >= running, "{plan}");
    let out = shop.hoist(&[], &["down", "--json"]);
    let done: Value = serde_json::from_str(out.expect_success("down --json")).unwrap();
    assert!(
        done["machines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["removed"] == true),
        "{done}"
    );
    assert!(shop.replicas().is_empty());
    let volumes = lab.docker_in(&machine, &["volume", "ls", "--format", "{{.Name}}"]);
    assert!(
        volumes.stdout.contains(&format!("{}_data", shop.project)),
        "{volumes}"
    );
    shop.hoist(&[], &["up", "--yes"]).expect_success("up again");
    let again = shop.replicas()[&("db".to_string(), "1".to_string())].clone();
    assert_eq!(
        again["machine"], machine,
        "the db must stay with its volume"
    );
    let get = shop.hoist(
        &[],
        &[
            "exec",
            "db",
            "-T",
            "--",
            "sh",
            "-c",
            "echo GET | nc 127.0.0.1 5432",
        ],
    );
    assert!(get.expect_success("read the db").contains("kept"), "{get}");
}

#[test]
fn killed_mid_rollout_then_converges_and_deploys_do_not_overlap() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let shop = Shop::new(lab, "kill");
    shop.hoist(&[], &["up", "--yes"]).expect_success("up");

    // Kill hoist in the middle of a rolling update.
    let mut child = shop
        .command(&[("WEB_VERSION", "v2")], &["up", "--yes"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY-free: plain SIGKILL through the kill command.
    run(Command::new("kill").args(["-KILL", &child.id().to_string()]));
    let _ = child.wait();

    // The next up takes over the dead deploy's lock and converges.
    shop.hoist(&[("WEB_VERSION", "v2")], &["up", "--yes"])
        .expect_success("up after the kill");
    let plan = shop.hoist(&[("WEB_VERSION", "v2")], &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "converged: {plan}");
    assert_eq!(shop.count("web"), 4);
    assert_one_running_per_slot(&shop, lab);
    assert!(
        shop.web_answers(lab)
            .iter()
            .all(|a| a.starts_with("200 version=v2")),
        "{:?}",
        shop.web_answers(lab)
    );

    // Two deploys at once: one holds the lock, the other fails naming the holder.
    let mut first = shop
        .command(&[("WEB_VERSION", "v3")], &["up", "--yes"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let second = shop.hoist(&[("WEB_VERSION", "v3")], &["up", "--yes"]);
    let first_status = first.wait().unwrap();
    assert!(first_status.success(), "the first deploy must succeed");
    assert_eq!(second.code(), Some(1), "{second}");
    assert!(
        second.stderr.contains("another deploy holds the lock"),
        "{second}"
    );
    assert!(
        second.stderr.contains("hoist up"),
        "names the holder: {second}"
    );
}

#[test]
fn an_unreachable_machine_is_never_treated_as_empty() {
    let lab = Lab::get();
    let shop = Shop::new(lab, "dark");
    {
        let _lease = lab.shared();
        shop.hoist(&[], &["up", "--yes"]).expect_success("up");
    }
    let _lease = lab.exclusive();
    let on_m2: Vec<(String, String)> = shop
        .replicas()
        .into_iter()
        .filter(|(_, r)| r["machine"] == "m2")
        .map(|(k, _)| k)
        .collect();
    assert!(!on_m2.is_empty(), "the shop spreads onto m2");
    let cut = lab.fault(common::lab::Fault::Cut, "m2");

    // The plan says it cannot see m2, and does not re-create what may run there.
    let plan = shop.hoist(&[], &["--timeout", "3s", "plan"]);
    assert_eq!(plan.code(), Some(1), "{plan}");
    assert!(
        plan.stdout.contains("m2"),
        "the plan names the unreachable machine: {plan}"
    );
    assert!(
        !plan.stdout.contains("+ create"),
        "nothing may be duplicated: {plan}"
    );

    // up refuses a partial view unless asked, and then leaves m2's replicas alone.
    let refused = shop.hoist(&[], &["--timeout", "3s", "up", "--yes"]);
    assert_eq!(refused.code(), Some(1), "{refused}");
    assert!(refused.stderr.contains("--allow-unreachable"), "{refused}");
    let partial = shop.hoist(
        &[],
        &["--timeout", "3s", "up", "--yes", "--allow-unreachable"],
    );
    partial.expect_success("up on the reachable machines");

    cut.restore();
    let plan = shop.hoist(&[], &["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.code(),
        Some(0),
        "back to normal, nothing to do: {plan}"
    );
    assert_one_running_per_slot(&shop, lab);
}

/// A machine left alone longer than the ssh master's idle minute (ControlPersist) while the
/// rollout waits on another one must still answer: `late` on m2 waits for `slow`'s first
/// health check on m1, 80 s after its start. Before the heartbeat, m2's master exited at the
/// minute and creating `late` failed with "Connection refused".
#[test]
fn a_machine_left_idle_for_minutes_during_a_rollout_still_answers() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let dir = std::env::temp_dir().join(format!("hoist-idle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        r#"
services:
  slow:
    image: hoist-test/app:v1
    healthcheck:
      test: ["CMD", "true"]
      interval: 80s
    deploy:
      placement:
        constraints: [node.hostname == m1]
  late:
    image: hoist-test/app:v1
    depends_on:
      slow: {condition: service_healthy}
    deploy:
      placement:
        constraints: [node.hostname == m2]
"#,
    )
    .unwrap();
    let project = format!("idle{}", std::process::id());
    let machines = lab.machines_file();
    let hoist = |args: &[&str]| {
        let mut cmd = common::lab::hoist_command();
        cmd.current_dir(&dir)
            .args(["-m", machines.to_str().unwrap(), "-p", &project])
            .args(args);
        common::lab::run(&mut cmd)
    };
    let up = hoist(&["up", "--yes"]);
    let down = hoist(&["down", "--yes"]);
    let _ = std::fs::remove_dir_all(&dir);
    up.expect_success("up with m2 idle for 80 s");
    assert!(up.stderr.contains("late: 1 changes done"), "{up}");
    down.expect_success("down");
}
