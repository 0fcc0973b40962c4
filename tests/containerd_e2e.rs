//! Engines that keep images in containerd's image store (engine 24+ with the containerd
//! snapshotter; Docker 29's default) beside classic ones, on one fleet: the lab's opt-in
//! machine `ctd` (engine 26, containerd store) with m1 (engine 20.10) and m2 (engine 26,
//! classic store). An image built here ships to all three with only the layers each lacks,
//! deploys, rolls out a one-layer change (the bytes sent are printed), shows in `ps` and rolls
//! back; a registry tag is pinned to one digest on all three, moved, and rolled back.

mod common;

use common::lab::{Lab, Output, http_get, http_get_until, run};
use common::registry::Registry;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CTD_IP: &str = "172.31.77.200";

/// Each machine of the containerd machines file and its address.
fn fleet(lab: &Lab) -> Vec<(&'static str, String)> {
    vec![
        ("m1", lab.ip("m1").to_string()),
        ("m2", lab.ip("m2").to_string()),
        ("ctd", CTD_IP.to_string()),
    ]
}

struct Project {
    dir: PathBuf,
    name: String,
    machines: PathBuf,
    port: u16,
    docker_config: Option<PathBuf>,
    /// DOCKER_HOST for hoist: the engine it builds on and ships from.
    docker_host: Option<String>,
}

impl Project {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = common::lab::hoist_command();
        cmd.env("SITE_PORT", self.port.to_string())
            .current_dir(&self.dir)
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.name])
            .args(args);
        if let Some(config) = &self.docker_config {
            cmd.env("DOCKER_CONFIG", config);
        }
        if let Some(host) = &self.docker_host {
            cmd.env("DOCKER_HOST", host);
        }
        cmd
    }

    fn hoist(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.hoist(args);
        assert!(out.success(), "hoist {args:?}: {out}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("hoist {args:?} printed no JSON ({e}): {out}"))
    }

    /// (machine, release, current) of every replica `ps --json --all` lists.
    fn replicas(&self) -> Vec<(String, String, bool)> {
        let ps = self.json(&["ps", "--json", "--all"]);
        ps["replicas"]
            .as_array()
            .unwrap_or_else(|| panic!("ps --json lists no replicas: {ps}"))
            .iter()
            .map(|r| {
                (
                    r["machine"].as_str().unwrap().to_string(),
                    r["release"].as_str().unwrap().to_string(),
                    r["current"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// The releases the running replicas belong to, one per machine, checking there is one
    /// running replica on each machine of the fleet.
    fn current_releases(&self) -> BTreeSet<String> {
        let current: Vec<(String, String, bool)> =
            self.replicas().into_iter().filter(|r| r.2).collect();
        let machines: BTreeSet<&str> = current.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            machines,
            BTreeSet::from(["m1", "m2", "ctd"]),
            "one replica on each machine: {current:?}"
        );
        current.into_iter().map(|r| r.1).collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.hoist(&["down"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Bytes of the newest non-empty layer of an image, as `docker history` counts them, on the
/// engine at `docker_host` (the box's by default).
fn top_layer_size(image: &str, docker_host: Option<&str>) -> u64 {
    let mut cmd = Command::new("docker");
    if let Some(host) = docker_host {
        cmd.args(["-H", host]);
    }
    let out = run(cmd.args(["history", "--human=false", "--format", "{{.Size}}", image]));
    out.expect_success("docker history")
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .find(|s| *s > 0)
        .unwrap()
}

/// (machine, bytes, layers sent, layers skipped) of each image shipped by an `up --json`.
fn shipped(json: &Value) -> Vec<(String, u64, u64, u64)> {
    json["shipped"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["machine"].as_str().unwrap().to_string(),
                        s["bytes"].as_u64().unwrap(),
                        s["layers_sent"].as_u64().unwrap(),
                        s["layers_skipped"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn image_id(lab: &Lab, machine: &str, image: &str) -> String {
    let out = lab.docker_in(machine, &["image", "inspect", "-f", "{{.Id}}", image]);
    out.expect_success(&format!("docker image inspect on {machine}"))
        .trim()
        .to_string()
}

#[test]
fn a_built_image_ships_deploys_rolls_out_and_back_on_both_image_stores() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let machines = lab.containerd();
    let store = lab.docker_in("ctd", &["info", "--format", "{{.DriverStatus}}"]);
    assert!(
        store
            .expect_success("docker info on ctd")
            .contains("io.containerd.snapshotter"),
        "ctd keeps images in containerd's store: {store}"
    );

    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("hoist-ctd-build-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/build-app");
    run(Command::new("cp").arg("-r").arg(&example).arg(&dir)).expect_success("copy the example");
    // Content of its own, so the image is new to every machine.
    std::fs::write(dir.join("www/id.txt"), format!("ctd {pid}\n")).unwrap();
    let app = Project {
        dir,
        name: format!("ctdbuild{pid}"),
        machines,
        port: 20000 + (pid % 20000) as u16 + 7,
        docker_config: None,
        docker_host: None,
    };
    let image = format!("{}-site", app.name);

    // First deploy: every machine gets the image, without the base layer it already has.
    let up = app.json(&["up", "--yes", "--json"]);
    let first = shipped(&up);
    let to: BTreeSet<&str> = first.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(to, BTreeSet::from(["m1", "m2", "ctd"]), "{up}");
    for (machine, bytes, sent, skipped) in &first {
        eprintln!("first ship to {machine}: {bytes} bytes, {sent} layers sent, {skipped} there");
        assert!(*skipped >= 1, "{machine}: the base layer stays: {up}");
        assert!(*sent >= 1, "{machine}: the new layers travel: {up}");
    }
    // The two stores know the image by different IDs: the config digest (classic, as on this
    // box) and the digest of the manifest hoist wrote (containerd).
    let local = run(Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", &image]));
    let local = local
        .expect_success("docker image inspect")
        .trim()
        .to_string();
    assert_eq!(image_id(lab, "m1", &image), local);
    assert_eq!(image_id(lab, "m2", &image), local);
    assert_ne!(
        image_id(lab, "ctd", &image),
        local,
        "ctd names it otherwise"
    );
    for (machine, ip) in fleet(lab) {
        let body = http_get_until(&ip, app.port, "/id.txt", 200, Duration::from_secs(30));
        assert_eq!(
            body,
            format!("ctd {pid}\n"),
            "{machine} serves the new build"
        );
    }
    let release = app.current_releases();
    assert_eq!(release.len(), 1, "one release: {release:?}");

    // Nothing changed: nothing travels, nothing is planned.
    let up = app.json(&["up", "--yes", "--json"]);
    assert!(shipped(&up).is_empty(), "{up}");
    let plan = app.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "{plan}");

    // One layer changes: about that layer travels, to each machine, whatever its store.
    // Text (the test reads it back over HTTP as a string) that does not compress much.
    let blob: Vec<u8> = (0..512 * 1024u32)
        .map(|i| b'a' + ((i.wrapping_mul(2654435761) >> 13) % 26) as u8)
        .collect();
    std::fs::write(app.dir.join("www/blob.bin"), &blob).unwrap();
    let up = app.json(&["up", "--yes", "--json"]);
    let layer = top_layer_size(&image, None);
    let changed = shipped(&up);
    assert_eq!(changed.len(), 3, "{up}");
    for (machine, bytes, sent, _) in &changed {
        eprintln!("one-layer change ({layer}-byte layer) to {machine}: {bytes} bytes sent");
        assert_eq!(*sent, 1, "{machine}: one layer travels: {up}");
        assert!(
            *bytes as f64 <= 1.1 * layer as f64,
            "{machine}: sent {bytes} bytes for a {layer}-byte layer"
        );
    }
    for (machine, ip) in fleet(lab) {
        let (code, body) = http_get(&ip, app.port, "/blob.bin").unwrap();
        assert_eq!(
            (code, body.len()),
            (200, blob.len()),
            "{machine} runs the change"
        );
    }
    let rolled_out = app.current_releases();
    assert_eq!(rolled_out.len(), 1, "{rolled_out:?}");
    assert_ne!(rolled_out, release, "a new release runs");
    let plan = app.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "{plan}");

    // ps lists the previous release on each machine, containerd's store included.
    let previous: BTreeSet<String> = app
        .replicas()
        .into_iter()
        .filter(|r| !r.2)
        .map(|r| r.0)
        .collect();
    assert_eq!(
        previous,
        BTreeSet::from(["m1", "m2", "ctd"].map(String::from))
    );

    // Rollback: the previous release runs again everywhere, without the change.
    let back = app.hoist(&["rollback", "--yes"]);
    assert!(back.success(), "{back}");
    assert_eq!(app.current_releases(), release, "back to the first release");
    for (machine, ip) in fleet(lab) {
        let (code, _) = http_get(&ip, app.port, "/blob.bin").unwrap();
        assert_eq!(code, 404, "{machine} runs the first build again");
    }
}

#[test]
fn a_registry_tag_is_pinned_to_one_digest_on_both_image_stores() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let machines = lab.containerd();
    let registry = Registry::start_for("ctdpin", &["m1", "m2", "ctd"]);
    let image = registry.image("app:1");
    let first = registry.push("hoist-test/app:v1", "app:1");

    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("hoist-ctd-pin-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "services:
  web:
    image: {image}
    ports: [\"${{SITE_PORT}}:80\"]
    deploy:
      replicas: 3
      placement:
        max_replicas_per_node: 1
      update_config:
        parallelism: 3
"
        ),
    )
    .unwrap();
    let app = Project {
        dir,
        name: format!("ctdpin{pid}"),
        machines,
        port: 20000 + (pid % 20000) as u16 + 8,
        docker_config: Some(registry.config()),
        docker_host: None,
    };
    let pinned = |digest: &str| format!("{}/app@{digest}", registry.host);
    // Every replica was created from the pinned digest (whatever ID its store gives the image).
    let assert_all_on = |digest: &str| {
        for (machine, _) in fleet(lab) {
            let ids = lab.docker_in(
                machine,
                &[
                    "ps",
                    "-q",
                    "--filter",
                    &format!("label=io.hoist.project={}", app.name),
                ],
            );
            let ids: Vec<String> = ids
                .expect_success("docker ps")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            assert_eq!(ids.len(), 1, "{machine}: one replica");
            let made = lab.docker_in(machine, &["inspect", "-f", "{{.Config.Image}}", &ids[0]]);
            assert_eq!(
                made.expect_success("docker inspect").trim(),
                pinned(digest),
                "{machine} runs the pinned digest"
            );
        }
    };

    let up = app.hoist(&["up", "--yes"]);
    assert!(up.success(), "{up}");
    assert_all_on(&first);
    for (machine, ip) in fleet(lab) {
        let body = http_get_until(&ip, app.port, "/", 200, Duration::from_secs(30));
        assert!(body.starts_with("version=v1"), "{machine}: {body}");
    }
    let ps = app.hoist(&["ps"]);
    assert_eq!(
        ps.stdout.matches(&format!("{image} (sha256:")).count(),
        3,
        "ps shows the tag and its digest on every machine: {ps}"
    );
    let plan = app.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "same digest, no change: {plan}");

    // The tag moves to other bits: the plan says so for each machine, up rolls it out.
    let second = registry.push("hoist-test/app:v2", "app:1");
    let plan = app.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(2), "{plan}");
    assert_eq!(plan.stdout.matches(" moved: ").count(), 3, "{plan}");
    let up = app.hoist(&["up", "--yes"]);
    assert!(up.success(), "{up}");
    assert_all_on(&second);

    // Rollback needs neither the registry's old tag nor the file: each machine still has the
    // previous digest's container and image.
    let back = app.hoist(&["rollback", "--yes"]);
    assert!(back.success(), "{back}");
    assert_all_on(&first);
    for (machine, ip) in fleet(lab) {
        let (code, body) = http_get(&ip, app.port, "/").unwrap();
        assert!(
            code == 200 && body.starts_with("version=v1"),
            "{machine}: {code} {body}"
        );
    }
}

/// `ssh -L`: a local unix socket forwarded to a machine's docker socket, for as long as it lives.
struct Forward {
    child: Child,
    socket: PathBuf,
}

impl Forward {
    fn to(lab: &Lab, machine: &str) -> Forward {
        let socket = std::env::temp_dir().join(format!(
            "hoist-ctd-engine-{}-{machine}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("ssh")
            .arg("-F")
            .arg(lab.ssh_config())
            .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("{}:/var/run/docker.sock", socket.display()))
            .arg(machine)
            .stdin(Stdio::null())
            .spawn()
            .expect("running ssh");
        let mut forward = Forward { child, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !forward.socket.exists() {
            if let Some(status) = forward.child.try_wait().unwrap() {
                panic!("ssh -L to {machine} ended: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "no forwarded socket from {machine}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        forward
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// hoist on a computer whose own engine uses containerd's image store (Docker 29's default):
/// it builds there and ships to classic machines (engines 20.10 and 26), which name the image by
/// its config digest, not by the ID the local engine shows.
#[test]
fn a_local_engine_on_containerd_ships_to_classic_machines() {
    let lab = Lab::get();
    let _lease = lab.shared();
    lab.containerd();
    let engine = Forward::to(lab, "ctd");
    let host = engine.docker_host();

    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("hoist-ctd-local-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/build-app");
    run(Command::new("cp").arg("-r").arg(&example).arg(&dir)).expect_success("copy the example");
    std::fs::write(dir.join("www/id.txt"), format!("built on ctd {pid}\n")).unwrap();
    let compose = dir.join("compose.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(&compose, text.replace("replicas: 3", "replicas: 2")).unwrap();
    let machines = dir.join("machines.yaml");
    std::fs::write(
        &machines,
        format!(
            "ssh_config: {}\nmachines:\n  m1: {{ssh: m1}}\n  m2: {{ssh: m2}}\n",
            lab.ssh_config().display()
        ),
    )
    .unwrap();
    let app = Project {
        dir,
        name: format!("ctdlocal{pid}"),
        machines,
        port: 20000 + (pid % 20000) as u16 + 9,
        docker_config: None,
        docker_host: Some(host.clone()),
    };
    let image = format!("{}-site", app.name);

    let up = app.json(&["up", "--yes", "--json"]);
    let first = shipped(&up);
    let to: BTreeSet<&str> = first.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(to, BTreeSet::from(["m1", "m2"]), "{up}");
    for (machine, bytes, sent, skipped) in &first {
        eprintln!(
            "first ship from ctd to {machine}: {bytes} bytes, {sent} layers, {skipped} there"
        );
        assert!(*skipped >= 1, "{machine}: the base layer stays: {up}");
    }
    let local = run(
        Command::new("docker").args(["-H", &host, "image", "inspect", "-f", "{{.Id}}", &image])
    );
    let local = local
        .expect_success("docker image inspect on ctd")
        .trim()
        .to_string();
    let on_m1 = image_id(lab, "m1", &image);
    assert_ne!(
        on_m1, local,
        "the classic store names the image by its config digest"
    );
    assert_eq!(image_id(lab, "m2", &image), on_m1);
    for machine in ["m1", "m2"] {
        let body = http_get_until(
            lab.ip(machine),
            app.port,
            "/id.txt",
            200,
            Duration::from_secs(30),
        );
        assert_eq!(body, format!("built on ctd {pid}\n"), "{machine}");
    }
    // The machines' copies are known for this build though their IDs differ from the local one.
    let up = app.json(&["up", "--yes", "--json"]);
    assert!(shipped(&up).is_empty(), "{up}");
    let plan = app.hoist(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "{plan}");

    // A one-layer change travels alone (the layers come compressed or not, as ctd keeps them).
    let blob: Vec<u8> = (0..256 * 1024u32)
        .map(|i| b'a' + ((i.wrapping_mul(2654435761) >> 13) % 26) as u8)
        .collect();
    std::fs::write(app.dir.join("www/blob.bin"), &blob).unwrap();
    let up = app.json(&["up", "--yes", "--json"]);
    let layer = top_layer_size(&image, Some(&host));
    let changed = shipped(&up);
    assert_eq!(changed.len(), 2, "{up}");
    for (machine, bytes, sent, _) in &changed {
        eprintln!("one-layer change from ctd ({layer}-byte layer) to {machine}: {bytes} bytes");
        assert_eq!(*sent, 1, "{machine}: {up}");
        assert!(
            *bytes as f64 <= 1.1 * layer as f64 + 16384.0,
            "{machine}: sent {bytes} bytes for a {layer}-byte layer"
        );
    }
    for machine in ["m1", "m2"] {
        let (code, body) = http_get(lab.ip(machine), app.port, "/blob.bin").unwrap();
        assert_eq!((code, body.len()), (200, blob.len()), "{machine}");
    }
    drop(app);
    let _ = run(Command::new("docker").args(["-H", &host, "rmi", "-f", &image]));
}
