//! The everyday verbs on the lab (3 machines, engines 20.10 and 26), as a user
//! meets them: `exec` with every kind of stdin and a terminal, `logs`, validation
//! of `x-hoist` keys, state changed by hand on a machine, the ingress's health
//! view and `up --json`.
//!
//! Each test has its own project name (and host ports), so they run beside the
//! other end-to-end tests.

mod common;

use common::lab::{Lab, Output};
use common::project::Project;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

impl Project {
    /// The command line of [`Project::command`], for a shell (`script -c`).
    fn shell_line(&self, args: &[&str]) -> String {
        let mut line = format!(
            "{} -m {} -p {}",
            common::lab::hoist_bin().display(),
            self.machines.display(),
            self.name
        );
        for a in args {
            line.push_str(&format!(" '{a}'"));
        }
        line
    }
}

/// Waits for `child` to end. The bound only keeps a hanging hoist from hanging the
/// test run: it is generous, and the point of the tests is that it is never reached.
#[track_caller]
fn wait_ending(mut child: Child, what: &str) -> (ExitStatus, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let status = child.wait();
        let mut out = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut out);
        }
        let _ = tx.send((status, out));
    });
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok((status, out)) => (status.expect("wait"), out),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what}: hoist did not end (it hangs)");
        }
    }
}

const WORKERS: &str = r#"
services:
  api:
    image: hoist-test/worker:latest
    deploy:
      replicas: 2
"#;

#[test]
fn exec_returns_the_exit_code_as_soon_as_the_command_exits() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "vb", "exec", WORKERS);
    p.hoist(&["up", "--yes"]).expect_success("up");

    // Slot 1 and 2 are on different machines: engines 20.10 and 26.
    for slot in ["1", "2"] {
        // Closed stdin.
        let out = p.hoist(&["exec", "--slot", slot, "api", "sh", "-c", "exit 2"]);
        assert_eq!(out.code(), Some(2), "slot {slot}, closed stdin:\n{out}");

        // A pipe that ends: the command reads it all.
        let mut child = p
            .command(&["exec", "--slot", slot, "api", "sh", "-c", "cat; exit 5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
        let (status, stdout) = wait_ending(child, "exec with a pipe");
        assert_eq!(status.code(), Some(5), "slot {slot}, pipe");
        assert_eq!(stdout, "hello\n");

        // A pipe that stays open (`(sleep 8) | hoist exec …`): hoist ends when the
        // command does, while we still hold the pipe's other end.
        let mut child = p
            .command(&["exec", "--slot", slot, "api", "sh", "-c", "exit 2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let held = child.stdin.take();
        let (status, _) = wait_ending(child, "exec with an open stdin");
        assert_eq!(status.code(), Some(2), "slot {slot}, open stdin");
        drop(held);
    }

    // A pseudo-terminal (`script` gives hoist one): the command sees a terminal, and
    // `exit 3` typed into the session ends it with 3 while the keyboard stays open.
    let line = p.shell_line(&["exec", "api", "sh"]);
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&p.dir)
        .env("NO_COLOR", "1")
        .env("HOIST_SSH_PERSIST", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut keyboard = child.stdin.take().unwrap();
    keyboard
        .write_all(b"if test -t 0 && test -t 1; then exit 3; else exit 9; fi\n")
        .unwrap();
    let (status, screen) = wait_ending(child, "exec in a terminal");
    assert_eq!(status.code(), Some(3), "exec in a terminal:\n{screen}");
    drop(keyboard);

    // A signal ends hoist while the command still runs.
    let mut child = p
        .command(&["exec", "api", "sh", "-c", "echo started; exec sleep 300"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "started\n");
    let held = child.stdin.take();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let (status, _) = wait_ending(child, "exec after SIGTERM");
    assert_eq!(status.code(), Some(143), "exec after SIGTERM (128 + 15)");
    drop(held);

    // Names that match nothing are errors that say so.
    let out = p.hoist(&["exec", "nosuch", "true"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("no service named `nosuch`") && out.stderr.contains("api"),
        "{out}"
    );
    let out = p.hoist(&["ps", "nosuch"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("no service named `nosuch`"), "{out}");
    let out = p.hoist(&["exec", "--machine", "m9", "api", "true"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("m9") && out.stderr.contains("m1, m2, m3"),
        "{out}"
    );
    assert!(!out.stderr.contains("Some("), "{out}");
}

/// Runs `hoist logs ARGS` until its output has a line containing `want`.
#[track_caller]
fn logs_until(p: &Project, args: &[&str], want: &str) -> String {
    for _ in 0..120 {
        let out = p.hoist(args);
        if out.stdout.contains(want) {
            return out.stdout;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("`hoist {}` never showed {want:?}", args.join(" "));
}

#[test]
fn logs_since_a_date_unknown_services_and_new_replicas_from_their_start() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "vb", "logs", WORKERS);
    p.hoist(&["up", "--yes"]).expect_success("up");

    // An unknown service is an error, not an empty success.
    let out = p.hoist(&["logs", "nosuch"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("no service named `nosuch`"), "{out}");

    // --since an RFC 3339 time (and the same as a Unix time): the lines from that
    // second on. The worker ticks every second, so tick k-2 is before it.
    let stamped = logs_until(
        &p,
        &["logs", "api", "--timestamps", "--no-prefix"],
        "tick 4 ",
    );
    let line = stamped.lines().find(|l| l.contains("tick 4 ")).unwrap();
    let machine = line
        .split("machine=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let when = &line[..19]; // YYYY-MM-DDTHH:MM:SS of the engine's RFC 3339 nanosecond stamp
    let rfc = format!("{when}Z");
    let out = p.hoist(&["logs", "api", "--no-prefix", "--since", &rfc]);
    let mine: Vec<&str> = out
        .expect_success("logs --since RFC 3339")
        .lines()
        .filter(|l| l.contains(&format!("machine={machine} ")))
        .collect();
    assert!(mine.iter().any(|l| l.starts_with("tick 4 ")), "{out}");
    assert!(!mine.iter().any(|l| l.starts_with("tick 2 ")), "{out}");
    let unix = std::process::Command::new("date")
        .args(["-u", "-d", &rfc, "+%s"])
        .output()
        .unwrap();
    let unix = String::from_utf8(unix.stdout).unwrap();
    let by_unix = p.hoist(&["logs", "api", "--no-prefix", "--since", unix.trim()]);
    let mine_unix: Vec<&str> = by_unix
        .expect_success("logs --since a Unix time")
        .lines()
        .filter(|l| l.contains(&format!("machine={machine} ")))
        .collect();
    assert!(
        mine_unix.iter().any(|l| l.starts_with("tick 4 ")),
        "{by_unix}"
    );
    assert!(
        !mine_unix.iter().any(|l| l.starts_with("tick 2 ")),
        "{by_unix}"
    );

    // -f --tail 1 through a rolling update: the new replicas show from their first line.
    let mut follower = p
        .command(&["logs", "-f", "--tail", "1", "api"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The backlog (one line per replica) shows before the update starts.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(
            rx.recv_timeout(Duration::from_secs(60))
                .expect("the backlog"),
        );
    }
    std::fs::write(
        p.dir.join("compose.yaml"),
        WORKERS.replace(
            "replicas: 2",
            "replicas: 2\n    environment: {ROUND: \"2\"}",
        ),
    )
    .unwrap();
    let up = p.hoist(&["up", "--yes"]);
    up.expect_success("up of a new version");
    let mut firsts = std::collections::BTreeSet::new();
    while firsts.len() < 2 {
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => panic!(
                "no first line of both new replicas; saw:\n{}",
                seen.join("\n")
            ),
        };
        if line.contains("| tick 1 ") {
            firsts.insert(line.split(" | ").next().unwrap().trim().to_string());
        }
        seen.push(line);
    }
    // Same slots and machines as the backlog's: each replaced replica, from its start.
    let backlog: std::collections::BTreeSet<String> = seen[..2]
        .iter()
        .map(|l| l.split(" | ").next().unwrap().trim().to_string())
        .collect();
    assert_eq!(firsts, backlog, "{}", seen.join("\n"));
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn config_and_plan_refuse_unknown_x_hoist_keys_with_file_and_key() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let cases = [
        (
            "services:\n  web:\n    image: hoist-test/app:v1\n    ports: [\"80\"]\n    x-hoist:\n      ingress: {hots: [a.example]}\n",
            "compose.yaml: services.web.x-hoist.ingress: unknown key \"hots\": did you mean \"hosts\"?",
        ),
        (
            "x-hoist:\n  ingres: {}\nservices:\n  web: {image: hoist-test/app:v1}\n",
            "compose.yaml: x-hoist: unknown key \"ingres\": did you mean \"ingress\"?",
        ),
        (
            "x-hoist:\n  mesh: {enable: false}\nservices:\n  web: {image: hoist-test/app:v1}\n",
            "compose.yaml: x-hoist.mesh: unknown key \"enable\": did you mean \"enabled\"?",
        ),
        (
            "services:\n  web:\n    image: hoist-test/app:v1\n    x-hoist: {autoscale: {max: 3, target: 50}}\n",
            "compose.yaml: services.web.x-hoist.autoscale: unknown key \"target\": hoist reads min, max, cpu, cooldown here",
        ),
        (
            "services:\n  web:\n    image: hoist-test/app:v1\n    deploy: {update_config: {order: strat-first}}\n",
            "compose.yaml: services.web.deploy.update_config.order: \"strat-first\" is not an order: write start-first or stop-first",
        ),
    ];
    for (i, (compose, want)) in cases.iter().enumerate() {
        let p = Project::new(lab, "vb", &format!("keys{i}"), compose);
        for verb in ["config", "plan"] {
            let out = p.hoist(&[verb]);
            assert_eq!(out.code(), Some(1), "{verb}:\n{out}");
            assert!(out.stderr.contains(want), "{verb}: wanted {want:?}\n{out}");
        }
    }
}

#[test]
fn plan_refuses_what_up_would_refuse_in_x_hoist_values() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(
        lab,
        "vb",
        "values",
        "services:\n  web:\n    image: hoist-test/app:v1\n    x-hoist: {ingress: {port: 80}}\n",
    );
    let out = p.hoist(&["plan"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("services.web.x-hoist.ingress.port: 80 is not published"),
        "{out}"
    );
}

/// `ps --json` replicas of the project: (service.slot, machine, name, state, current).
fn replicas(p: &Project, all: bool) -> Vec<serde_json::Value> {
    let args: &[&str] = if all {
        &["ps", "--json", "--all"]
    } else {
        &["ps", "--json"]
    };
    let out = p.hoist(args);
    let v: serde_json::Value = serde_json::from_str(out.expect_success("ps --json")).unwrap();
    v["replicas"].as_array().unwrap().clone()
}

#[test]
fn a_container_squatting_a_replicas_name_gets_advice_that_works() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "vb", "squat", WORKERS);
    p.hoist(&["up", "--yes"]).expect_success("up");
    let one = replicas(&p, false)
        .into_iter()
        .find(|r| r["slot"] == "1")
        .unwrap();
    let (machine, name) = (
        one["machine"].as_str().unwrap(),
        one["name"].as_str().unwrap(),
    );

    // By hand on the machine: the replica goes, a stranger takes its name.
    lab.docker_in(machine, &["rm", "-f", name])
        .expect_success("docker rm");
    lab.docker_in(
        machine,
        &["run", "-d", "--name", name, "hoist-test/worker:latest"],
    )
    .expect_success("docker run");
    let out = p.hoist(&["up", "--yes"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "a container named {name} already exists on the machine, that hoist did not create"
        )) && out.stderr.contains(&format!("`docker rm -f {name}`")),
        "{out}"
    );
    assert!(!out.stderr.contains("`hoist up` again"), "{out}");

    // The advice works: remove it, run up.
    lab.docker_in(machine, &["rm", "-f", name])
        .expect_success("docker rm");
    p.hoist(&["up", "--yes"])
        .expect_success("up after the advice");
    assert!(
        replicas(&p, false)
            .iter()
            .any(|r| r["slot"] == "1" && r["state"] == "running")
    );
}

#[test]
fn memory_reservations_apply_and_a_changed_config_is_called_a_config() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(
        lab,
        "vb",
        "res",
        r#"
services:
  api:
    image: hoist-test/worker:latest
    configs: [{source: app, target: /etc/app.conf}]
    secrets: [key]
    deploy:
      replicas: 1
      resources:
        reservations: {memory: 32M}
configs:
  app: {file: ./app.conf}
secrets:
  key: {file: ./key.txt}
"#,
    );
    std::fs::write(p.dir.join("app.conf"), "one\n").unwrap();
    std::fs::write(p.dir.join("key.txt"), "s3cret\n").unwrap();
    p.hoist(&["up", "--yes"]).expect_success("up");
    let r = replicas(&p, false).into_iter().next().unwrap();
    let (machine, id) = (r["machine"].as_str().unwrap(), r["id"].as_str().unwrap());
    let inspect = lab.docker_in(
        machine,
        &["inspect", "-f", "{{.HostConfig.MemoryReservation}}", id],
    );
    assert_eq!(inspect.expect_success("inspect").trim(), "33554432");

    std::fs::write(p.dir.join("app.conf"), "two\n").unwrap();
    let plan = p.hoist(&["plan"]);
    let text = plan.expect_success("plan");
    assert!(text.contains("configs /etc/app.conf changed"), "{plan}");
    assert!(!text.contains("secrets"), "{plan}");
}

/// A routed web service whose ingress health check asks `path`.
fn ingress_compose(path: &str, port: u16) -> String {
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
        health: {{path: {path}, interval: 1s, timeout: 500ms}}
    deploy:
      replicas: 2
"#,
        https = port + 1
    )
}

#[test]
fn the_ingress_shows_upstream_health_and_up_warns_when_a_route_has_none() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let port = 18690;
    let p = Project::new(lab, "vb", "inghealth", &ingress_compose("/nope", port));
    let up = p.hoist(&["up", "--yes", "--json"]);
    up.expect_success("up");
    let want = "has no healthy upstream for web: no upstream answers GET /nope with 2xx";
    assert!(up.stderr.contains(want), "{up}");
    assert!(
        up.stderr
            .contains("services.web.x-hoist.ingress.health.path"),
        "{up}"
    );
    let report: serde_json::Value = serde_json::from_str(&up.stdout).unwrap();
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(want)),
        "{up}"
    );
    // What the warning says is what a client meets (asked until it answers: right after `up`
    // a busy box may take longer than one read's timeout).
    common::lab::http_get_until(lab.ip("m1"), port, "/", 503, Duration::from_secs(30));

    // A no-op up warns too: nothing changed, the route is still dead.
    let again = p.hoist(&["up", "--yes"]);
    again.expect_success("up again");
    assert!(again.stderr.contains(want), "{again}");

    // `hoist ingress` shows each upstream's health, on every machine.
    let view = p.hoist(&["ingress", "--json"]);
    let v: serde_json::Value = serde_json::from_str(view.expect_success("ingress")).unwrap();
    let ingresses = v["ingresses"].as_array().unwrap();
    assert_eq!(ingresses.len(), 3);
    for ing in ingresses {
        let ups = ing["upstreams"].as_array().unwrap();
        assert_eq!(ups.len(), 2, "{ing}");
        for u in ups {
            assert_eq!(u["health"]["healthy"], false, "{u}");
            assert_eq!(u["health"]["check"], "GET /nope", "{u}");
            assert!(
                u["health"]["detail"].as_str().unwrap().contains("404"),
                "{u}"
            );
        }
    }
    let table = p.hoist(&["ingress"]);
    assert!(
        table
            .expect_success("ingress")
            .contains("unhealthy: GET /nope: server returned error: HTTP/1.1 404 Not Found"),
        "{table}"
    );

    // The right path: healthy everywhere, no warning, requests answered.
    std::fs::write(
        p.dir.join("compose.yaml"),
        ingress_compose("/cgi-bin/health", port),
    )
    .unwrap();
    let fixed = p.hoist(&["up", "--yes"]);
    fixed.expect_success("up with the right health path");
    assert!(!fixed.stderr.contains("no healthy upstream"), "{fixed}");
    let view = p.hoist(&["ingress", "--json"]);
    let v: serde_json::Value = serde_json::from_str(view.expect_success("ingress")).unwrap();
    for ing in v["ingresses"].as_array().unwrap() {
        for u in ing["upstreams"].as_array().unwrap() {
            assert_eq!(u["health"]["healthy"], true, "{u}");
        }
    }
    common::lab::http_get_until(lab.ip("m2"), port, "/", 200, Duration::from_secs(30));
}

#[test]
fn up_json_has_one_stable_shape_for_a_rollout_a_no_op_and_a_rollback() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let app = |tag: &str| format!("services:\n  api:\n    image: hoist-test/app:{tag}\n");
    let p = Project::new(lab, "vb", "upjson", &app("v1"));
    let keys = [
        "schema", "project", "ok", "changes", "release", "plan", "shipped", "services", "pruned",
        "warnings",
    ];
    let parse = |out: &Output| -> serde_json::Value {
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    };
    let key_list =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };

    let first = p.hoist(&["up", "--yes", "--json"]);
    first.expect_success("up");
    let first = parse(&first);
    assert_eq!(key_list(&first), keys);
    assert_eq!(first["schema"], 1);
    assert_eq!(first["project"], p.name.as_str());
    assert_eq!(first["ok"], true);
    assert_eq!(first["changes"], true);
    assert!(first["release"].is_string());
    assert_eq!(first["services"][0]["service"], "api");
    assert_eq!(first["services"][0]["verdict"], "done");
    assert_eq!(first["services"][0]["reason"], serde_json::Value::Null);
    assert_eq!(first["services"][0]["changes"][0]["ok"], true);

    let noop = p.hoist(&["up", "--yes", "--json"]);
    noop.expect_success("a no-op up");
    let noop = parse(&noop);
    assert_eq!(key_list(&noop), keys);
    assert_eq!(noop["changes"], false);
    assert_eq!(noop["release"], serde_json::Value::Null);
    assert_eq!(noop["services"], serde_json::json!([]));

    // A version that fails its health check: rolled back, in words, exit 1.
    std::fs::write(p.dir.join("compose.yaml"), app("bad")).unwrap();
    let bad = p.hoist(&["up", "--yes", "--json"]);
    assert_eq!(bad.code(), Some(1), "{bad}");
    let bad = parse(&bad);
    assert_eq!(key_list(&bad), keys);
    assert_eq!(bad["ok"], false);
    let api = &bad["services"][0];
    assert_eq!(api["verdict"], "rolled_back", "{api}");
    assert!(
        api["reason"].as_str().unwrap().contains("replicas failed"),
        "{api}"
    );
    assert!(!bad.to_string().contains("RolledBack("), "{bad}");
}

#[test]
fn replicas_stopped_or_paused_by_hand_are_brought_back_and_rollback_names_what_it_cannot() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "vb", "byhand", WORKERS);
    p.hoist(&["up", "--yes"]).expect_success("up v1");
    let v2 = WORKERS.replace(
        "replicas: 2",
        "replicas: 2\n    environment: {ROUND: \"2\"}",
    );
    std::fs::write(p.dir.join("compose.yaml"), &v2).unwrap();
    p.hoist(&["up", "--yes"]).expect_success("up v2");
    let current = |slot: &str| {
        replicas(&p, false)
            .into_iter()
            .find(|r| r["slot"] == slot)
            .unwrap()
    };
    let (one, two) = (current("1"), current("2"));
    let at = |r: &serde_json::Value| {
        (
            r["machine"].as_str().unwrap().to_string(),
            r["name"].as_str().unwrap().to_string(),
        )
    };
    let ((m1, n1), (m2, n2)) = (at(&one), at(&two));
    lab.docker_in(&m1, &["pause", &n1]).expect_success("pause");
    lab.docker_in(&m2, &["stop", "-t", "1", &n2])
        .expect_success("stop");

    let plan = p.hoist(&["plan"]);
    let text = plan.expect_success("plan");
    assert!(
        text.contains("^ start api.1\n        paused, spec unchanged: unpause it"),
        "{plan}"
    );
    assert!(
        text.contains("^ start api.2\n        exited, spec unchanged"),
        "{plan}"
    );
    assert!(
        !text.contains("remove") || text.contains("0 to remove"),
        "{plan}"
    );
    assert!(!text.contains("duplicate"), "{plan}");

    p.hoist(&["up", "--yes"])
        .expect_success("up brings them back");
    let all = replicas(&p, true);
    for slot in ["1", "2"] {
        let of_slot: Vec<_> = all.iter().filter(|r| r["slot"] == slot).collect();
        assert_eq!(
            of_slot.len(),
            2,
            "slot {slot} keeps its previous release: {all:?}"
        );
        assert!(
            of_slot
                .iter()
                .any(|r| r["current"] == true && r["state"] == "running"),
            "{all:?}"
        );
    }
    // Looking changes nothing and says what would go back; without a terminal and without
    // --yes nothing is done either (the same contract as `up`).
    let look = p.hoist(&["rollback", "--dry-run", "--detailed-exitcode", "api"]);
    assert_eq!(look.code(), Some(2), "{look}");
    assert!(look.stderr.contains("« rollback api.1"), "{look}");
    assert!(look.stderr.contains("« rollback api.2"), "{look}");
    let asked = p.hoist(&["rollback", "api"]);
    assert_eq!(asked.code(), Some(1), "{asked}");
    assert!(asked.stderr.contains("pass --yes"), "{asked}");
    let still = p.hoist(&["rollback", "--dry-run", "--json", "api"]);
    still.expect_success("rollback --dry-run --json");
    let json: serde_json::Value = serde_json::from_str(&still.stdout).expect("JSON");
    assert_eq!(
        json["rollback"]["swaps"].as_array().map(Vec::len),
        Some(2),
        "{still}"
    );

    let back = p.hoist(&["rollback", "--yes", "api"]);
    back.expect_success("rollback");
    assert!(back.stderr.contains("rolled back 2 slots"), "{back}");

    // Slot 2's previous release removed by hand: rollback does slot 1 and names slot 2.
    let gone = replicas(&p, true)
        .into_iter()
        .find(|r| r["slot"] == "2" && r["current"] == false)
        .unwrap();
    lab.docker_in(
        gone["machine"].as_str().unwrap(),
        &["rm", "-f", gone["name"].as_str().unwrap()],
    )
    .expect_success("docker rm");
    let partial = p.hoist(&["rollback", "--yes", "api"]);
    assert_eq!(partial.code(), Some(1), "{partial}");
    assert!(partial.stderr.contains("rolled back 1 slots"), "{partial}");
    assert!(
        partial.stderr.contains(&format!(
            "could not roll back api.2@{m2}: no previous release"
        )),
        "{partial}"
    );

    let unknown = p.hoist(&["rollback", "--yes", "nosuch"]);
    assert_eq!(unknown.code(), Some(1), "{unknown}");
    assert!(
        unknown.stderr.contains("no service named `nosuch`"),
        "{unknown}"
    );
}

#[test]
fn a_host_port_another_project_holds_is_a_plan_error_naming_the_holder() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let port = 18720;
    // Project a: an ingress on port..port+1 of every machine, and `pub` publishing port+2.
    let compose = |route_port: u16| {
        format!(
            r#"
x-hoist:
  ingress:
    image: hoist-test/caddy:latest
    http_port: {route_port}
    https_port: {https}
    tls: internal
services:
  web:
    image: hoist-test/app:v1
    ports: ["80"]
    x-hoist:
      ingress:
        health: {{path: /, interval: 1s, timeout: 500ms}}
  pub:
    image: hoist-test/app:v1
    ports: ["{fixed}:80"]
"#,
            https = route_port + 1,
            fixed = port + 2
        )
    };
    let a = Project::new(lab, "vb", "portsa", &compose(port));
    a.hoist(&["up", "--yes"]).expect_success("up a");

    // Project b wants the same ingress ports and the same fixed port: plan says so, and
    // names a's containers; up refuses before touching anything.
    let b = Project::new(lab, "vb", "portsb", &compose(port));
    let plan = b.hoist(&["plan"]);
    assert_eq!(plan.code(), Some(1), "{plan}");
    assert!(plan.stderr.contains("host ports already taken"), "{plan}");
    let ingress_line = format!("ingress: host port {port}/tcp on m1 is held by container");
    assert!(plan.stderr.contains(&ingress_line), "{plan}");
    assert!(
        plan.stderr
            .contains(&format!("of hoist project {}", a.name)),
        "{plan}"
    );
    assert!(
        plan.stderr
            .contains(&format!("pub: host port {}/tcp on", port + 2)),
        "{plan}"
    );
    let up = b.hoist(&["up", "--yes"]);
    assert_eq!(up.code(), Some(1), "{up}");
    let ps = b.hoist(&["ps", "--json"]);
    ps.expect_success("ps b");
    let listed: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(
        listed["replicas"].as_array().map(Vec::len),
        Some(0),
        "b deployed nothing: {ps}"
    );

    // With its own ports b plans cleanly beside a.
    std::fs::write(
        b.dir.join("compose.yaml"),
        compose(port + 10).replace(
            &format!("\"{}:80\"", port + 2),
            &format!("\"{}:80\"", port + 12),
        ),
    )
    .unwrap();
    b.hoist(&["plan"])
        .expect_success("plan b with its own ports");
}

/// The plan is the contract: `up` right after `plan` carries out exactly the steps `plan`
/// printed — the same plan (it is part of `up --json`), and one change reported per step, on
/// the step's machine and slot — and nothing else; the next plan is empty.
#[test]
fn up_right_after_plan_does_exactly_the_printed_steps() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let before = "services:\n  api:\n    image: hoist-test/app:v1\n    deploy:\n      replicas: 3\n  worker:\n    image: hoist-test/worker:latest\n    deploy:\n      replicas: 2\n";
    let p = Project::new(lab, "vb", "contract", before);
    p.hoist(&["up", "--yes"]).expect_success("first up");
    // One of each kind: replace (api's image), remove (worker scaled down), create (a new
    // service), unchanged (the worker that stays).
    p.write(
        "services:\n  api:\n    image: hoist-test/app:v2\n    deploy:\n      replicas: 3\n  worker:\n    image: hoist-test/worker:latest\n    deploy:\n      replicas: 1\n  cache:\n    image: hoist-test/worker:latest\n",
    );
    let plan = p.hoist(&["plan", "--json"]);
    let plan: serde_json::Value =
        serde_json::from_str(&plan.stdout).unwrap_or_else(|e| panic!("{e}: {plan}"));
    let steps = |plan: &serde_json::Value| -> Vec<(String, String, String, String)> {
        let mut s: Vec<_> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["service"].is_string() && s["action"] != "unchanged")
            .map(|s| {
                (
                    s["service"].as_str().unwrap().to_string(),
                    s["machine"].as_str().unwrap().to_string(),
                    s["slot"].to_string(),
                    s["action"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        s.sort();
        s
    };
    let printed = steps(&plan);
    let kinds: std::collections::BTreeSet<&str> = printed.iter().map(|s| s.3.as_str()).collect();
    assert_eq!(
        kinds,
        ["create", "remove", "replace"].into_iter().collect(),
        "{plan}"
    );

    let up = p.hoist(&["up", "--yes", "--json"]);
    up.expect_success("up");
    let up: serde_json::Value = serde_json::from_str(&up.stdout).unwrap();
    // The very plan that was printed.
    assert_eq!(up["plan"], plan, "up carried out another plan");
    // One change reported per printed step, on its machine and slot, and none other.
    let mut done: Vec<(String, String, String)> = up["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|svc| {
            let service = svc["service"].as_str().unwrap().to_string();
            svc["changes"].as_array().unwrap().iter().map(move |c| {
                assert_eq!(c["ok"], true, "{c}");
                (
                    service.clone(),
                    c["machine"].as_str().unwrap().to_string(),
                    c["slot"].to_string(),
                )
            })
        })
        .collect();
    done.sort();
    let expected: Vec<(String, String, String)> = printed
        .iter()
        .map(|(s, m, slot, _)| (s.clone(), m.clone(), slot.clone()))
        .collect();
    assert_eq!(done, expected, "{up}");
    let next = p.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(next.code(), Some(0), "{next}");
}
