//! Rollouts on the lab as users run them (issue: rollouts at Swarm speed on ordinary images).
//!
//! The images here are like many real ones: busybox httpd as PID 1, which ignores SIGTERM, so
//! every stop takes the whole grace period. They are built on the box (`docker build` FROM the
//! lab's busybox base) and shipped by hoist, as a user's local build would be.
//!
//! - a deploy survives its own output: `up | head -1` and SIGHUP mid-rollout complete it;
//! - SIGINT/SIGTERM stop it after the batch under way, release the lock, exit 130/143;
//! - replicas and the ingress come back after a machine or engine restart with no hoist running;
//! - what you built is what runs: a rebuilt local tag and an edited `build:` context show in the
//!   plan and roll out;
//! - no failed request through the ingress during a rolling update or a service rename, for
//!   clients that open a new connection per request and for keep-alive clients.

mod common;

use common::lab::{Lab, Output, hey_counts, http_get, run};
use common::project::Project;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Builds `tag` on the box's engine: busybox httpd as PID 1 (ignores SIGTERM) serving `body`,
/// with a 1 s healthcheck.
fn build_stubborn(tag: &str, body: &str) {
    let dir = std::env::temp_dir().join(format!(
        "hoist-stubborn-{}-{}",
        tag.replace([':', '/'], "_"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), format!("{body}\n")).unwrap();
    std::fs::write(dir.join("Dockerfile"), STUBBORN_DOCKERFILE).unwrap();
    run(Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&dir))
    .expect_success("docker build");
    let _ = std::fs::remove_dir_all(&dir);
}

const STUBBORN_DOCKERFILE: &str = "FROM hoist-test/base:latest
COPY index.html /www/index.html
HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD [\"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1/\"]
EXPOSE 80
CMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]
";

/// A project of this file's: its commands open their own SSH connections (no master kept
/// between commands), so a test's signals reach hoist and nothing else.
fn project(lab: &Lab, tag: &str, compose: &str) -> Project {
    Project::new(lab, "ro", tag, compose).with_env("HOIST_SSH_PERSIST", "0")
}

impl Project {
    /// The shell command line that runs hoist with `args` (for pipelines).
    fn shell_line(&self, args: &str) -> String {
        format!(
            "HOIST_SSH_PERSIST=0 '{}' -m '{}' -p '{}' {args}",
            common::lab::hoist_bin().display(),
            self.machines.display(),
            self.name
        )
    }

    /// `plan --detailed-exitcode` says there is nothing to do.
    #[track_caller]
    fn assert_converged(&self) {
        let plan = self.hoist(&["plan", "--detailed-exitcode"]);
        assert_eq!(plan.code(), Some(0), "the next plan must be empty: {plan}");
    }

    /// No deploy lock is left on any machine.
    #[track_caller]
    fn assert_unlocked(&self, lab: &Lab) {
        for m in lab.machine_names() {
            let vols = lab.docker_in(m, &["volume", "ls", "-q"]);
            assert!(
                !vols.stdout.contains(&format!("hoist-lock-{}", self.name)),
                "{m} still holds the lock: {}",
                vols.stdout
            );
        }
    }
}

fn web(image: &str, replicas: u32, parallelism: u32, ingress_port: Option<u16>) -> String {
    let ingress = match ingress_port {
        Some(p) => format!(
            "x-hoist:\n  ingress:\n    image: hoist-test/caddy:latest\n    http_port: {p}\n    https_port: {}\n    tls: internal\n",
            p + 1
        ),
        None => String::new(),
    };
    let route = if ingress_port.is_some() {
        "    ports: [\"80\"]\n    x-hoist:\n      ingress:\n        health: {path: /, interval: 1s, timeout: 500ms}\n"
    } else {
        ""
    };
    format!(
        "{ingress}services:\n  web:\n    image: {image}\n{route}    deploy:\n      replicas: {replicas}\n      update_config: {{parallelism: {parallelism}, order: start-first}}\n"
    )
}

/// Spawns hoist with `args`, stderr piped; returns the child once a stderr line contains
/// `event` (with the lines read so far), so a fault lands mid-rollout, not after a fixed sleep.
fn spawn_until(p: &Project, args: &[&str], event: &str) -> (std::process::Child, Vec<String>) {
    let mut child = p
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("hoist ended before '{event}':\n{}", lines.join(""));
        }
        let hit = line.contains(event);
        lines.push(line);
        if hit {
            break;
        }
    }
    // Keep draining stderr so hoist never blocks on a full pipe.
    let rest = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut all);
        all
    });
    std::mem::forget(rest);
    (child, lines)
}

fn signal(child: &std::process::Child, sig: &str) {
    run(Command::new("kill").args([sig, &child.id().to_string()])).expect_success("kill");
}

#[test]
fn a_deploy_survives_a_closed_pipe_and_a_hangup() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let tag = format!("hoist-test/stubborn-pipe-{}", std::process::id());
    build_stubborn(&format!("{tag}:v1"), "v1");
    build_stubborn(&format!("{tag}:v2"), "v2");
    let p = project(lab, "pipe", &web(&format!("{tag}:v1"), 4, 1, None));
    p.hoist(&["up", "--yes"]).expect_success("up v1");

    // `| head -1`: the reader goes away after one line, in the middle of the rollout.
    p.write(&web(&format!("{tag}:v2"), 4, 1, None));
    let piped = run(Command::new("sh")
        .current_dir(&p.dir)
        .arg("-c")
        .arg(format!("{} up --yes 2>&1 | head -1", p.shell_line(""))));
    assert!(piped.success(), "{piped}");
    p.assert_converged();
    p.assert_unlocked(lab);

    // SIGHUP (the terminal closed) once the first replica is replaced: the deploy goes on.
    p.write(&web(&format!("{tag}:v1"), 4, 1, None));
    let (mut child, _) = spawn_until(&p, &["up", "--yes"], "replaced (start-first)");
    signal(&child, "-HUP");
    let status = child.wait().unwrap();
    assert!(status.success(), "up after SIGHUP: {status:?}");
    p.assert_converged();
    p.assert_unlocked(lab);
    let _ = run(Command::new("docker").args(["rmi", &format!("{tag}:v1"), &format!("{tag}:v2")]));
}

#[test]
fn sigint_and_sigterm_stop_after_the_batch_and_release_the_lock() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let tag = format!("hoist-test/stubborn-int-{}", std::process::id());
    for v in ["v1", "v2", "v3"] {
        build_stubborn(&format!("{tag}:{v}"), v);
    }
    let p = project(lab, "int", &web(&format!("{tag}:v1"), 4, 1, None));
    p.hoist(&["up", "--yes"]).expect_success("up v1");

    for (sig, code, version) in [("-INT", 130, "v2"), ("-TERM", 143, "v3")] {
        p.write(&web(&format!("{tag}:{version}"), 4, 1, None));
        let (mut child, _) = spawn_until(&p, &["up", "--yes"], "replaced (start-first)");
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "exit code after {sig}");
        p.assert_unlocked(lab);
        // Stopped early: what is left shows in the plan, and the next up finishes it.
        let plan = p.hoist(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            plan.code(),
            Some(2),
            "some replicas are still to replace: {plan}"
        );
        assert!(plan.stdout.contains("replace web."), "{plan}");
        p.hoist(&["up", "--yes"])
            .expect_success("up after the stop");
        p.assert_converged();
    }
    let _ = run(Command::new("docker").args([
        "rmi",
        &format!("{tag}:v1"),
        &format!("{tag}:v2"),
        &format!("{tag}:v3"),
    ]));
}

/// Which machines' replicas answer through the ingress on `ip` (one request per connection).
fn machines_answering(lab: &Lab, ip: &str, port: u16, tries: usize) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..tries {
        if let Ok((200, body)) = http_get(ip, port, "/") {
            if let Some(m) = body
                .split_whitespace()
                .find_map(|w| w.strip_prefix("machine="))
            {
                seen.insert(m.to_string());
            }
        }
    }
    let _ = lab;
    seen.into_iter().collect()
}

/// Waits until every machine's replica answers through `ip`'s ingress (no hoist running).
#[track_caller]
fn wait_all_serve(lab: &Lab, ip: &str, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let all: Vec<String> = lab.machine_names().iter().map(|s| s.to_string()).collect();
    loop {
        let seen = machines_answering(lab, ip, port, 30);
        if seen == all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: after 90 s only {seen:?} answer through {ip}:{port}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn replicas_and_the_ingress_come_back_after_a_restart_with_no_hoist_running() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let port = 18480;
    let mut compose = web("hoist-test/app:v1", 3, 1, Some(port));
    compose = compose.replace("replicas: 3", "mode: global");
    let p = project(lab, "boot", &compose);
    p.hoist(&["up", "--yes"]).expect_success("up");
    wait_all_serve(lab, lab.ip("m1"), port, "after up");

    // The machine loses power and boots again; nobody runs hoist.
    lab.kill("m2");
    lab.start("m2");
    wait_all_serve(
        lab,
        lab.ip("m2"),
        port,
        "m2 rebooted, through its own ingress",
    );
    wait_all_serve(lab, lab.ip("m1"), port, "m2 rebooted, through m1's ingress");

    // Only the engine restarts.
    lab.stop_docker("m3");
    lab.start_docker("m3");
    wait_all_serve(
        lab,
        lab.ip("m3"),
        port,
        "m3's engine restarted, through its own ingress",
    );
    wait_all_serve(
        lab,
        lab.ip("m1"),
        port,
        "m3's engine restarted, through m1's ingress",
    );

    // hoist agrees that nothing needs doing.
    p.assert_converged();
}

/// Builds `tag` from a context whose index.html says `body`.
fn build_from(dir: &Path, tag: &str, body: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("index.html"), format!("{body}\n")).unwrap();
    std::fs::write(dir.join("Dockerfile"), STUBBORN_DOCKERFILE).unwrap();
    run(Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir))
    .expect_success("docker build");
}

/// Every machine's ingress answers `want` only.
#[track_caller]
fn assert_serves(lab: &Lab, port: u16, want: &str) {
    for m in lab.machines() {
        for _ in 0..12 {
            let got = http_get(&m.ip, port, "/");
            assert!(
                matches!(&got, Ok((200, body)) if body.trim() == want),
                "through {}: {got:?}, want {want}",
                m.name
            );
        }
    }
}

#[test]
fn what_you_built_is_what_runs() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let port = 18580;
    let tag = format!("hoist-test/built-{}:1", std::process::id());
    let p = project(lab, "built", &web(&tag, 3, 2, Some(port)));

    // A local tag, rebuilt with new content under the same name.
    let ctx = p.dir.join("ctx");
    build_from(&ctx, &tag, "first build");
    p.hoist(&["up", "--yes"]).expect_success("up");
    assert_serves(lab, port, "first build");
    build_from(&ctx, &tag, "second build");
    let plan = p.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(2), "{plan}");
    assert!(
        plan.stdout
            .contains(&format!("image {tag} rebuilt: sha256:")),
        "{plan}"
    );
    p.hoist(&["up", "--yes"])
        .expect_success("up the rebuilt tag");
    assert_serves(lab, port, "second build");
    p.assert_converged();

    // A `build:` service: a file edited in its context, same tag.
    let compose = web(&tag, 3, 2, Some(port)).replace(
        &format!("    image: {tag}\n"),
        &format!("    image: {tag}\n    build: ./ctx\n"),
    );
    p.write(&compose);
    std::fs::write(ctx.join("index.html"), "third, built by hoist\n").unwrap();
    let plan = p.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(2), "{plan}");
    assert!(
        plan.stdout
            .contains("will be rebuilt: its build context changed"),
        "{plan}"
    );
    p.hoist(&["up", "--yes"])
        .expect_success("up builds and ships");
    assert_serves(lab, port, "third, built by hoist");
    p.assert_converged();
    // Touching files without changing them is no change.
    run(Command::new("touch")
        .arg(ctx.join("index.html"))
        .arg(ctx.join("Dockerfile")));
    p.assert_converged();
    let _ = run(Command::new("docker").args(["rmi", &tag]));
}

/// Runs `hey` in batches against `url` until `done` and at least `min` requests; `fresh`
/// opens a new connection per request. Returns (requests, failures, a failing report).
fn load(url: &str, min: usize, fresh: bool, done: &AtomicBool) -> (usize, usize, String) {
    let (mut total, mut bad, mut report) = (0, 0, String::new());
    while total < min || !done.load(Ordering::SeqCst) {
        let mut cmd = Command::new("hey");
        cmd.args(["-n", "2000", "-c", "8"]);
        if fresh {
            cmd.arg("-disable-keepalive");
        }
        let out = run(cmd.arg(url));
        assert!(
            out.success(),
            "hey failed (tests/all.sh installs it):\n{out}"
        );
        let (ok, n) = hey_counts(&out.stdout);
        total += n;
        bad += n - ok;
        if ok < n {
            report = out.stdout;
        }
    }
    (total, bad, report)
}

/// Runs `change` while two kinds of clients load the ingress on m1; asserts no request failed.
fn under_load(lab: &Lab, port: u16, what: &str, change: impl FnOnce() -> Output + Send) {
    let url = format!("http://{}:{port}/", lab.ip("m1"));
    let done = AtomicBool::new(false);
    let (fresh, kept, out) = std::thread::scope(|s| {
        let fresh = s.spawn(|| load(&url, 20_000, true, &done));
        let kept = s.spawn(|| load(&url, 20_000, false, &done));
        let out = change();
        done.store(true, Ordering::SeqCst);
        (fresh.join().unwrap(), kept.join().unwrap(), out)
    });
    out.expect_success(what);
    eprintln!(
        "{what}: {} requests on new connections ({} failed), {} keep-alive ({} failed)",
        fresh.0, fresh.1, kept.0, kept.1
    );
    assert!(fresh.0 + kept.0 >= 40_000);
    assert_eq!(fresh.1, 0, "{what}, new connections:\n{}", fresh.2);
    assert_eq!(kept.1, 0, "{what}, keep-alive:\n{}", kept.2);
}

#[test]
fn no_failed_request_for_any_client_during_an_update_or_a_rename() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let port = 18680;
    let tag = format!("hoist-test/stubborn-load-{}", std::process::id());
    build_stubborn(&format!("{tag}:v1"), "v1");
    build_stubborn(&format!("{tag}:v2"), "v2");
    let p = project(lab, "load", &web(&format!("{tag}:v1"), 4, 1, Some(port)));
    p.hoist(&["up", "--yes"]).expect_success("up v1");
    assert_serves(lab, port, "v1");

    p.write(&web(&format!("{tag}:v2"), 4, 1, Some(port)));
    under_load(lab, port, "rolling update", || p.hoist(&["up", "--yes"]));
    assert_serves(lab, port, "v2");

    // The same route moves from `web` to a new service `www`: it switches only once www's
    // replicas are ready, and web's leave the pool only after that.
    p.write(&web(&format!("{tag}:v2"), 4, 1, Some(port)).replace("  web:\n", "  www:\n"));
    under_load(lab, port, "rename web → www", || {
        p.hoist(&["up", "--yes"])
    });
    assert_serves(lab, port, "v2");
    p.assert_converged();
    let _ = run(Command::new("docker").args(["rmi", &format!("{tag}:v1"), &format!("{tag}:v2")]));
}

#[test]
fn plan_shows_ingress_changes_that_up_makes_without_a_replica_change() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let port = 18880;
    let compose = |host: &str| {
        web("hoist-test/app:v1", 2, 1, Some(port)).replace(
            "        health:",
            &format!("        hosts: [{host}]\n        health:"),
        )
    };
    let p = project(lab, "ingplan", &compose("a.example.test"));
    p.hoist(&["up", "--yes"]).expect_success("up");
    p.assert_converged();

    // Only a route changes: plan says so and exits 2; up applies it; then nothing is left.
    p.write(&compose("b.example.test"));
    let plan = p.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(2), "{plan}");
    assert!(
        plan.stdout
            .contains("route b.example.test → web added, route a.example.test → web removed"),
        "{plan}"
    );
    let json = p.hoist(&["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["changes"], true, "{v}");
    assert_eq!(v["other"].as_array().map(Vec::len), Some(3), "{v}");
    p.hoist(&["up", "--yes"]).expect_success("up the new route");
    p.assert_converged();
}
