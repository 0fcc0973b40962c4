//! Service names across machines (src/mesh), on the lab, with examples/three-tier: web on m1
//! fetches `api:8080` (replicas on m2 and m3), which fetches `db:5432` (on m1) — every hop
//! crosses machines. The chain answers; it keeps answering, without a failed request, through
//! a rolling update of api and after m3 (running an api replica) is killed; the plan shows the
//! mesh's changes; unrelated containers are not recreated when the mesh follows a change.

mod common;

use common::lab::{Fault, Lab, Output, hoist_command, http_get, run};
use common::load::Load;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WEB_PORT: u16 = 18088;
const CHAIN: &str = "/cgi-bin/fetch?http://api:8080/cgi-bin/fetch?http://db:5432/";

struct Tiers {
    dir: PathBuf,
    project: String,
    machines: PathBuf,
}

impl Tiers {
    fn new(lab: &Lab) -> Tiers {
        let dir = std::env::temp_dir().join(format!("hoist-mesh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/three-tier");
        std::fs::copy(example.join("compose.yaml"), dir.join("compose.yaml")).unwrap();
        Tiers {
            dir,
            project: format!("mesh{}", std::process::id()),
            machines: lab.machines_file(),
        }
    }

    fn hoist(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = hoist_command();
        cmd.current_dir(&self.dir)
            .env("MESH_IMAGE", "hoist-test/haproxy:latest")
            .env("WEB_PORT", WEB_PORT.to_string())
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.project]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd.args(args))
    }
}

impl Drop for Tiers {
    fn drop(&mut self) {
        let _ = self.hoist(&[], &["down"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The chain, from outside: web (m1) → api → db. Returns the three lines (web, api, db).
fn chain(lab: &Lab) -> Result<Vec<String>, String> {
    match http_get(lab.ip("m1"), WEB_PORT, CHAIN) {
        Ok((200, body)) => Ok(body.lines().map(str::to_string).collect()),
        Ok((code, body)) => Err(format!("{code}: {body}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The whole chain answered, all three tiers: one check of [`Load`].
fn chain_answers(lab: &Lab) -> Result<(), String> {
    match chain(lab)? {
        lines if lines.len() == 3 => Ok(()),
        lines => Err(format!("short answer: {lines:?}")),
    }
}

/// Container IDs of the project's replicas of `service` on every machine.
fn replica_ids(lab: &Lab, project: &str, service: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for m in lab.machine_names() {
        let out = lab.docker_in(
            m,
            &[
                "ps",
                "-q",
                "--filter",
                &format!("label=io.hoist.project={project}"),
                "--filter",
                &format!("label=io.hoist.service={service}"),
            ],
        );
        ids.extend(out.stdout.lines().map(str::to_string));
    }
    ids.sort();
    ids
}

#[test]
fn service_names_reach_replicas_on_other_machines() {
    let lab = Lab::get();
    // Exclusive: a machine is killed.
    let _lease = lab.exclusive();
    let tiers = Tiers::new(lab);

    // The plan names the proxies it will start, one line per machine.
    let plan = tiers.hoist(&[], &["plan"]);
    assert!(plan.success(), "{plan}");
    for m in ["m1", "m2", "m3"] {
        let line = format!("+ mesh@{m}: proxies for api:8080, db:5432, web:80");
        assert!(plan.stdout.contains(&line), "plan lacks {line:?}:\n{plan}");
    }
    let up = tiers.hoist(&[], &["up", "--yes"]);
    assert!(up.success(), "{up}");

    // Every hop crosses machines: web on m1, api on m2 or m3, db on m1.
    let lines = chain(lab).expect("the chain answers");
    assert!(lines[0].contains("machine=m1"), "{lines:?}");
    assert!(
        lines[1].contains("machine=m2") || lines[1].contains("machine=m3"),
        "{lines:?}"
    );
    assert!(lines[2].contains("machine=m1"), "{lines:?}");
    // Both api replicas serve (the proxies balance).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        if let Ok(l) = chain(lab) {
            seen.insert(
                l[1].split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert_eq!(seen.len(), 2, "api answered from {seen:?}");
    // A second plan: nothing to do, the mesh included.
    let again = tiers.hoist(&[], &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code(), Some(0), "{again}");

    // A rolling update of api under load: no failed request; web and db untouched.
    let web_before = replica_ids(lab, &tiers.project, "web");
    let db_before = replica_ids(lab, &tiers.project, "db");
    let plan = tiers.hoist(&[("API_VERSION", "v2")], &["plan"]);
    // Every machine's proxies follow both replaced replicas of api, and nothing else.
    for m in ["m1", "m2", "m3"] {
        let line = plan
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("~ reload mesh@{m} (")))
            .unwrap_or_else(|| panic!("no reload line for {m}:\n{plan}"));
        assert!(
            line.contains("api.1 replaced on") && line.contains("api.2 replaced on"),
            "{line}"
        );
        assert!(!line.contains("web.") && !line.contains("db."), "{line}");
    }
    let load = Load::start(move || chain_answers(lab));
    std::thread::sleep(Duration::from_millis(500));
    let update = tiers.hoist(&[("API_VERSION", "v2")], &["up", "--yes"]);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failures) = load.finish();
    assert!(update.success(), "{update}");
    eprintln!(
        "rolling update of api: {ok} chained requests answered, {} failed",
        failures.len()
    );
    assert!(ok > 20, "too few requests to mean anything: {ok}");
    assert!(
        failures.is_empty(),
        "failed during the update: {failures:?}"
    );
    assert!(chain(lab).unwrap()[1].contains("version=v2"));
    assert_eq!(replica_ids(lab, &tiers.project, "web"), web_before);
    assert_eq!(replica_ids(lab, &tiers.project, "db"), db_before);

    // m3 runs an api replica: kill it under load. The proxies' health checks take it out;
    // a connection not yet established is sent to the other replica. The one request that
    // may be inside api on m3 when it dies is lost: a TCP proxy cannot move a connection whose
    // server vanished. The load sends one request at a time, so at most one fails.
    let load = Load::start(move || chain_answers(lab));
    std::thread::sleep(Duration::from_millis(500));
    let killed = lab.fault(Fault::Kill, "m3");
    let at = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let (ok, failures) = load.finish();
    eprintln!(
        "m3 killed: {ok} chained requests answered in the {:.1}s after, {} failed",
        at.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(ok > 20, "too few requests to mean anything: {ok}");
    assert!(
        failures.len() <= 1,
        "more than the request in flight failed after m3 was killed: {failures:?}"
    );
    for _ in 0..10 {
        let lines = chain(lab).expect("the chain answers with m3 dead");
        assert!(lines[1].contains("machine=m2"), "{lines:?}");
    }
    // m3 is back: `up` starts its api replica again, and every proxy follows.
    killed.restore();
    let up = tiers.hoist(&[("API_VERSION", "v2")], &["up", "--yes"]);
    assert!(up.success(), "{up}");

    // watch keeps every proxy's view in step between deploys: m1's api proxy is given a stale
    // view without the replica on m3 (as after an update it missed); one watch round puts it
    // back, and nothing else is touched.
    let proxy = format!("{}-mesh-api", tiers.project);
    let cfg = "/usr/local/etc/haproxy/haproxy.cfg";
    let stale = format!(
        "grep -v {} {cfg} >/tmp/stale && cat /tmp/stale >{cfg}",
        lab.ip("m3")
    );
    lab.docker_in("m1", &["exec", &proxy, "sh", "-c", &stale])
        .expect_success("staling the view");
    lab.docker_in("m1", &["kill", "-s", "USR2", &proxy])
        .expect_success("reloading");
    std::thread::sleep(Duration::from_secs(1));
    let served = |n: usize| -> std::collections::BTreeSet<String> {
        (0..n)
            .filter_map(|_| chain(lab).ok())
            .filter_map(|l| l.get(1).cloned())
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("machine="))
                    .map(str::to_string)
            })
            .collect()
    };
    assert_eq!(
        served(10).into_iter().collect::<Vec<_>>(),
        ["machine=m2"],
        "the stale view took"
    );
    let watch = tiers.hoist(&[("API_VERSION", "v2")], &["watch", "--rounds", "2"]);
    assert!(watch.success(), "{watch}");
    assert!(
        watch.stderr.contains("mesh: 1 proxy reloaded")
            || watch.stdout.contains("mesh: 1 proxy reloaded"),
        "{watch}"
    );
    assert_eq!(served(10).len(), 2, "api on both machines again");
}

/// `mesh:` in the machines file turns the mesh on for a compose file that says nothing about
/// it: a plain two-service file, web on m1 reaching `api:8080` on m2 by name.
#[test]
fn the_machines_file_meshes_a_plain_compose_file() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let dir = std::env::temp_dir().join(format!("hoist-meshfleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lab_file = std::fs::read_to_string(lab.machines_file()).unwrap();
    let machines = dir.join("machines.yaml");
    std::fs::write(
        &machines,
        format!(
            "{}\nmesh: {{image: hoist-test/haproxy:latest}}\n",
            lab_file.replace(
                "ssh_config: ssh_config",
                &format!("ssh_config: {}", lab.ssh_config().display())
            )
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        r#"services:
  web:
    image: hoist-test/app:v1
    ports: ["18089:80"]
    deploy: {placement: {constraints: ["node.hostname == m1"]}}
  api:
    image: hoist-test/app:v1
    environment: {PORT: "8080"}
    expose: ["8080"]
    deploy: {placement: {constraints: ["node.hostname == m2"]}}
"#,
    )
    .unwrap();
    let project = format!("meshfleet{}", std::process::id());
    let hoist = |args: &[&str]| {
        run(hoist_command()
            .current_dir(&dir)
            .args(["-m", machines.to_str().unwrap(), "-p", &project])
            .args(args))
    };
    let up = hoist(&["up", "--yes"]);
    let answer = http_get(lab.ip("m1"), 18089, "/cgi-bin/fetch?http://api:8080/");
    let down = hoist(&["down"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(up.success(), "{up}");
    assert!(
        up.stderr.contains("mesh@m1"),
        "the plan shows the mesh:\n{up}"
    );
    let (code, body) = answer.expect("web answers");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("machine=m2"),
        "api answered from m2 by name: {body}"
    );
    assert!(down.success(), "{down}");
}
