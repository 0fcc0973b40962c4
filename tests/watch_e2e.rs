//! `hoist watch` on the lab: a killed machine's stateless replicas start elsewhere (and the
//! time it takes is printed), the machine back leaves exactly one container per slot, a
//! crashing or unhealthy replica is replaced, and CPU load scales a service up to its max
//! and back to its min. Each test has its own project; timing checks are generous upper
//! bounds that only prove liveness.

mod common;

use common::lab::{Fault, Lab, Output, run};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A project in its own folder, with a compose file.
struct Project {
    dir: PathBuf,
    name: String,
    machines: PathBuf,
}

impl Project {
    fn new(lab: &Lab, tag: &str, compose: &str) -> Project {
        let name = format!("w{tag}{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("hoist-watch-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), compose.replace("PROJECT", &name)).unwrap();
        Project {
            dir,
            name,
            machines: lab.machines_file(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = common::lab::hoist_command();
        cmd.current_dir(&self.dir)
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.name])
            .args(args);
        cmd
    }

    fn hoist(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// Starts `hoist watch`; its log goes to a file, read with [`Watch::log`].
    fn watch(&self) -> Watch {
        let log = self.dir.join("watch.log");
        let child = self
            .command(&["watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting hoist watch");
        Watch { child, log }
    }

    /// (service, slot) → states of its containers on every answering machine, read from the
    /// engines directly: `running (healthy)`, `exited`, ...
    fn containers(&self, lab: &Lab) -> BTreeMap<(String, String), Vec<(String, String)>> {
        let mut out: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        for m in lab.machines() {
            let list = lab.docker_in(
                &m.name,
                &[
                    "ps",
                    "-a",
                    "--filter",
                    &format!("label=io.hoist.project={}", self.name),
                    "--format",
                    "{{.Label \"io.hoist.service\"}} {{.Label \"io.hoist.slot\"}} {{.State}} {{.Status}}",
                ],
            );
            if !list.success() {
                continue; // a killed machine
            }
            for line in list.stdout.lines() {
                let parts: Vec<&str> = line.splitn(4, ' ').collect();
                let state = if parts[3].contains("(healthy)") {
                    "healthy".to_string()
                } else {
                    parts[2].to_string()
                };
                out.entry((parts[0].to_string(), parts[1].to_string()))
                    .or_default()
                    .push((m.name.clone(), state));
            }
        }
        out
    }

    /// Healthy containers of `service`, by machine.
    fn healthy(&self, lab: &Lab, service: &str) -> Vec<(String, String)> {
        self.containers(lab)
            .into_iter()
            .filter(|((s, _), _)| s == service)
            .flat_map(|((_, slot), cs)| {
                cs.into_iter()
                    .filter(|(_, st)| st == "healthy")
                    .map(move |(m, _)| (slot.clone(), m))
            })
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.hoist(&["down", "--volumes", "--yes"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `hoist watch`, stopped with SIGTERM on drop.
struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it as systemd would (SIGTERM) and returns its log.
    fn stop(mut self) -> String {
        self.terminate();
        self.log()
    }

    fn terminate(&mut self) {
        run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let _ = self.child.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// Runs a command inside lab machine `m` (the machine itself, not a container in it).
#[track_caller]
fn on_machine(m: &str, args: &[&str]) {
    run(Command::new("docker").args(["exec", m]).args(args)).expect_success("docker exec");
}

/// Polls `f` every 200 ms until it is true; panics with `what` and `context()` after `limit`.
#[track_caller]
fn wait_for(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const FAILOVER: &str = "
services:
  web:
    image: hoist-test/app:v1
    deploy:
      replicas: 3
  db:
    image: hoist-test/db:latest
    volumes: [data:/data]
    deploy:
      placement:
        constraints: [node.labels.zone == b]
volumes:
  data: {}
";

#[test]
fn a_killed_machine_moves_its_stateless_replicas_and_back_leaves_one_per_slot() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let p = Project::new(lab, "kill", FAILOVER);
    p.hoist(&["up", "--yes"]).expect_success("up");
    let before = p.healthy(lab, "web");
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(
        before.iter().any(|(_, m)| m == "m2"),
        "web spread over m1..m3: {before:?}"
    );
    let watch = p.watch();
    wait_for(
        Duration::from_secs(30),
        "watch started",
        || watch.log().contains("watching project"),
        || watch.log(),
    );
    std::thread::sleep(Duration::from_secs(2));

    let killed = Instant::now();
    let m2 = lab.fault(Fault::Kill, "m2");
    wait_for(
        Duration::from_secs(60),
        "web's 3 replicas healthy on m1 and m3",
        || {
            let h = p.healthy(lab, "web");
            h.len() == 3 && h.iter().all(|(_, m)| m != "m2")
        },
        || watch.log(),
    );
    let failover = killed.elapsed();
    eprintln!("FAILOVER: m2 killed → web's 3 replicas healthy on other machines in {failover:.2?}");
    let log = watch.log();
    assert!(log.contains("m2 is lost"), "{log}");
    assert!(
        log.contains("stateful (volume"),
        "the stateful replica is reported, not moved:\n{log}"
    );
    assert!(
        !p.containers(lab).contains_key(&("db".into(), "1".into())),
        "db was not moved"
    );

    m2.restore();
    wait_for(
        Duration::from_secs(90),
        "m2 back: every slot exactly one container, all healthy (db started again on m2)",
        || {
            let c = p.containers(lab);
            c.len() == 4
                && c.values().all(|cs| cs.len() == 1 && cs[0].1 == "healthy")
                && c[&("db".to_string(), "1".to_string())][0].0 == "m2"
        },
        || format!("{:?}\n{}", p.containers(lab), watch.log()),
    );
    let log = watch.stop();
    assert!(log.contains("m2 is back"), "{log}");
    assert!(log.contains("duplicate of web."), "{log}");
}

const HEALING: &str = "
services:
  web:
    image: hoist-test/app:v1
    deploy:
      replicas: 2
  crashy:
    image: hoist-test/app:v1
    # Without it the engine restarts it (hoist's default restart policy, unless-stopped):
    # watch's own healing and back-off are what this test is about.
    restart: 'no'
    environment:
      CRASH_AFTER: '4'
";

#[test]
fn crashed_and_unhealthy_replicas_are_replaced() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "heal", HEALING);
    p.hoist(&["up", "--yes"]).expect_success("up");
    let watch = p.watch();

    // crashy exits after 4 s, every time: watch starts it again, then backs off.
    wait_for(
        Duration::from_secs(60),
        "crashy started again after it crashed",
        || watch.log().contains("start crashy.1 on"),
        || watch.log(),
    );

    // web.1 turns unhealthy: replaced by a healthy one.
    let c = p.containers(lab);
    let (machine, _) = &c[&("web".to_string(), "1".to_string())][0];
    let id = lab
        .docker_in(
            machine,
            &[
                "ps",
                "-q",
                "--filter",
                &format!("label=io.hoist.project={}", p.name),
                "--filter",
                "label=io.hoist.service=web",
                "--filter",
                "label=io.hoist.slot=1",
            ],
        )
        .stdout
        .trim()
        .to_string();
    lab.docker_in(
        machine,
        &[
            "exec",
            &id,
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1/cgi-bin/flip",
        ],
    )
    .expect_success("flip web.1 unhealthy");
    wait_for(
        Duration::from_secs(60),
        "web.1 replaced by a healthy container, one per slot",
        || {
            let log = watch.log();
            let c = p.containers(lab);
            log.contains("replace web.1 on")
                && log.contains("container is unhealthy")
                && c[&("web".to_string(), "1".to_string())]
                    == vec![(machine.clone(), "healthy".to_string())]
        },
        || format!("{:?}\n{}", p.containers(lab), watch.log()),
    );
    // Crashing again and again, it waits longer each time.
    wait_for(
        Duration::from_secs(120),
        "crashy backs off",
        || watch.log().contains("keeps failing; next try in"),
        || watch.log(),
    );
    watch.stop();
}

// The CPU target is low: three busy loops on a busy 2-core box may get under 20% each (seen in
// CI), and a higher target would scale them down while the load is still on.
const BURN: &str = "
services:
  burn:
    image: hoist-test/base:latest
    command: [sh, -c, \"trap 'exit 0' TERM; while :; do if [ -e /load/on ]; then :; else sleep 1; fi; done\"]
    volumes: ['/tmp/hoist-burn-PROJECT:/load']
    healthcheck: {test: [CMD, 'true'], interval: 1s}
    x-hoist:
      autoscale: {min: 1, max: 3, cpu: 10, cooldown: 5s}
";

#[test]
fn cpu_load_scales_up_to_max_and_back_to_min() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let p = Project::new(lab, "scale", BURN);
    let toggle = format!("/tmp/hoist-burn-{}", p.name);
    for m in lab.machine_names() {
        on_machine(m, &["mkdir", "-p", &toggle]);
    }
    p.hoist(&["up", "--yes"]).expect_success("up");
    let watch = p.watch();
    let running = || {
        p.containers(lab)
            .values()
            .flatten()
            .filter(|(_, st)| st == "healthy" || st == "running")
            .count()
    };
    for m in lab.machine_names() {
        on_machine(m, &["touch", &format!("{toggle}/on")]);
    }
    let mut most = 0;
    wait_for(
        Duration::from_secs(90),
        "burn scaled up to max (3)",
        || {
            most = most.max(running());
            most >= 3
        },
        || watch.log(),
    );
    // Still loaded: it stays at max, never beyond.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        most = most.max(running());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(most, 3, "never beyond max:\n{}", watch.log());
    let ps = p.hoist(&["ps"]);
    assert!(
        ps.stdout.contains("burn: 3 replicas set by hoist watch"),
        "{ps}"
    );

    for m in lab.machine_names() {
        on_machine(m, &["rm", "-f", &format!("{toggle}/on")]);
    }
    wait_for(
        Duration::from_secs(90),
        "burn back to min (1) after the cooldown",
        // Straight down to 1, or in steps (3 → 2 → 1) when the box is busy.
        || running() == 1 && watch.log().contains(" → 1 replicas"),
        || watch.log(),
    );
    let log = watch.stop();
    assert!(log.contains("cooldown"), "{log}");
    for m in lab.machine_names() {
        on_machine(m, &["rm", "-rf", &toggle]);
    }
}
