//! Registry images on the lab, from a real registry (tests/common/registry.rs: TLS from a CA
//! made here, basic auth): a tag is resolved once per deploy to a digest and every machine
//! (engines 20.10 and 26) runs exactly that digest; a tag pushed again with new bits is a
//! change in the plan, rolled out everywhere; the same digest is no change; refused
//! credentials fail before any machine is touched; a registry that is down lets what runs be
//! deployed again (its digests kept, with a warning) and stops only what needs it.

mod common;

use common::lab::{Lab, Output, run};
use common::registry::Registry;
use std::path::{Path, PathBuf};

struct App {
    dir: PathBuf,
    project: String,
    machines: PathBuf,
}

impl App {
    fn new(lab: &Lab, tag: &str, image: &str) -> App {
        let dir = std::env::temp_dir().join(format!("hoist-reg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("compose.yaml"),
            format!(
                "services:
  web:
    image: {image}
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
        App {
            dir,
            project: format!("reg{tag}{}", std::process::id()),
            machines: lab.machines_file(),
        }
    }

    fn hoist(&self, docker_config: &Path, args: &[&str]) -> Output {
        let mut cmd = common::lab::hoist_command();
        cmd.current_dir(&self.dir)
            .env("DOCKER_CONFIG", docker_config)
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.project])
            .args(args);
        run(&mut cmd)
    }

    /// Per machine: (image reference the container was created from, image ID, io.hoist.image).
    fn running(&self, lab: &Lab) -> Vec<(String, String, String, String)> {
        let mut out = Vec::new();
        for m in lab.machine_names() {
            let ids = lab.docker_in(
                m,
                &[
                    "ps",
                    "-q",
                    "--filter",
                    &format!("label=io.hoist.project={}", self.project),
                ],
            );
            for id in ids.expect_success("docker ps").split_whitespace() {
                let inspect = lab.docker_in(
                    m,
                    &[
                        "inspect",
                        "-f",
                        "{{.Config.Image}} {{.Image}} {{index .Config.Labels \"io.hoist.image\"}}",
                        id,
                    ],
                );
                let text = inspect.expect_success("docker inspect");
                let mut f = text.split_whitespace().map(str::to_string);
                out.push((
                    m.to_string(),
                    f.next().unwrap(),
                    f.next().unwrap(),
                    f.next().unwrap_or_default(),
                ));
            }
        }
        out
    }

    fn assert_all_on(&self, lab: &Lab, reference: &str, tag: &str) {
        let running = self.running(lab);
        assert_eq!(running.len(), 3, "three replicas: {running:?}");
        let machines: std::collections::BTreeSet<&str> =
            running.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(machines.len(), 3, "one per machine: {running:?}");
        for (m, image, _, label) in &running {
            assert_eq!(image, reference, "{m} runs the pinned digest: {running:?}");
            assert_eq!(label, tag, "{m}: the tag stays visible");
        }
        let ids: std::collections::BTreeSet<&str> = running.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(ids.len(), 1, "the same image everywhere: {running:?}");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.hoist(Path::new("/nonexistent"), &["down"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

#[test]
fn a_tag_is_pinned_to_one_digest_on_every_machine() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let mut registry = Registry::start(lab, "pin");
    let image = registry.image("app:1");
    let first = registry.push("hoist-test/app:v1", "app:1");
    let app = App::new(lab, "pin", &image);
    let creds = registry.config();
    let host = registry.host.clone();
    let pinned = |digest: &str| format!("{host}/app@{digest}");

    // The plan names the tag and the digest it resolved to.
    let plan = app.hoist(&creds, &["plan"]);
    assert!(plan.success(), "{plan}");
    assert!(
        plan.stdout
            .contains(&format!("image {image} ({})", short(&first))),
        "{plan}"
    );

    let up = app.hoist(&creds, &["up", "--yes"]);
    assert!(up.success(), "{up}");
    app.assert_all_on(lab, &pinned(&first), &image);
    let ps = app.hoist(&creds, &["ps"]);
    assert_eq!(
        ps.stdout
            .matches(&format!("{image} ({})", short(&first)))
            .count(),
        3,
        "ps shows the tag and the digest: {ps}"
    );
    let plan = app.hoist(&creds, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "same digest, no change: {plan}");

    // The tag moves to other bits: a change, with both digests, rolled out everywhere.
    let second = registry.push("hoist-test/app:v2", "app:1");
    assert_ne!(first, second);
    let plan = app.hoist(&creds, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(2), "{plan}");
    eprintln!("{}", plan.stdout);
    let moved = format!(
        "image {image} moved: {} → {}",
        short(&first),
        short(&second)
    );
    assert_eq!(plan.stdout.matches(&moved).count(), 3, "{plan}");
    let up = app.hoist(&creds, &["up", "--yes"]);
    assert!(up.success(), "{up}");
    app.assert_all_on(lab, &pinned(&second), &image);
    let plan = app.hoist(&creds, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "{plan}");

    // Credentials the registry refuses: a clear error, nothing touched.
    registry.push("hoist-test/app:v3", "app:1");
    for config in [registry.wrong_config(), PathBuf::from("/nonexistent")] {
        let up = app.hoist(&config, &["up", "--yes"]);
        assert!(!up.success(), "{up}");
        eprintln!("credentials refused:\n{}", up.stderr);
        for word in [registry.host.as_str(), image.as_str(), "docker login", "m1"] {
            assert!(up.stderr.contains(word), "the error says {word}: {up}");
        }
        assert!(up.stderr.contains("refused access"), "{up}");
        app.assert_all_on(lab, &pinned(&second), &image);
    }

    // The tag has moved again (v3 above), but healing is no deploy: `watch` restarts a lost
    // replica on the digest its service runs.
    let lost = lab.docker_in(
        "m1",
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=io.hoist.project={}", app.project),
        ],
    );
    let lost = lost.expect_success("docker ps").trim().to_string();
    lab.docker_in("m1", &["rm", "-f", &lost])
        .expect_success("docker rm");
    let watch = app.hoist(&creds, &["watch", "--rounds", "5"]);
    assert!(watch.success(), "{watch}");
    app.assert_all_on(lab, &pinned(&second), &image);

    // The registry is down. What runs can still be deployed: plan and up keep the digests
    // that run, and say so.
    registry.stop();
    let plan = app.hoist(&creds, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code(), Some(0), "{plan}");
    let up = app.hoist(&creds, &["up", "--yes"]);
    assert!(up.success(), "{up}");
    for out in [&plan, &up] {
        eprintln!("registry down, what runs is kept:\n{}", out.stderr);
        for word in [
            "warning:",
            registry.host.as_str(),
            "cannot reach",
            "deploying what runs now",
            short(&second),
        ] {
            assert!(out.stderr.contains(word), "the warning says {word}: {out}");
        }
    }
    app.assert_all_on(lab, &pinned(&second), &image);
    // A service that runs nothing of that image yet needs the registry: a clear error from
    // plan and up, nothing touched.
    let compose = app.dir.join("compose.yaml");
    let original = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(
        &compose,
        format!("{original}  extra:\n    image: {image}\n"),
    )
    .unwrap();
    for args in [&["plan"][..], &["up", "--yes"][..]] {
        let out = app.hoist(&creds, args);
        assert!(!out.success(), "{out}");
        eprintln!("registry down:\n{}", out.stderr);
        for word in [
            registry.host.as_str(),
            image.as_str(),
            "cannot reach",
            "Nothing was changed",
        ] {
            assert!(out.stderr.contains(word), "the error says {word}: {out}");
        }
    }
    std::fs::write(&compose, original).unwrap();
    app.assert_all_on(lab, &pinned(&second), &image);
    registry.resume();
}

/// `config --resolve-image-digests` (issue 19): every service's image pinned to the digest its
/// registry gives, asked through this computer's engine as `docker compose` does, and printed
/// exactly as the reference prints it (differential); an image already pinned stays; a tag the
/// registry lacks is an error naming the service and the image.
#[test]
fn config_resolves_image_digests_as_the_reference_does() {
    let lab = Lab::get();
    let _lease = lab.shared();
    // Trusted by this computer's engine only: config asks no machine.
    let registry = Registry::start_for("cfgdigest", &[]);
    let tagged = registry.push("hoist-test/app:v1", "app:1");
    let untagged = registry.push("hoist-test/app:v2", "other");
    let creds = registry.config();
    let dir = std::env::temp_dir().join(format!("hoist-reg-cfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let host = &registry.host;
    let fixed = format!("{host}/app@{tagged}");
    let compose = |web: &str| {
        format!(
            "name: cfgdigest\nservices:\n  web:\n    image: {web}\n  api:\n    image: {host}/other\n  \
             again:\n    image: {host}/app:1\n  fixed:\n    image: {fixed}\n"
        )
    };
    std::fs::write(dir.join("compose.yaml"), compose(&format!("{host}/app:1"))).unwrap();
    let images = |text: &str| -> std::collections::BTreeMap<String, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        v["services"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, s)| (k.clone(), s["image"].as_str().unwrap().to_string()))
            .collect()
    };
    let args = ["config", "--resolve-image-digests", "--format", "json"];
    let mut cmd = common::lab::hoist_command();
    cmd.current_dir(&dir)
        .env("DOCKER_CONFIG", &creds)
        .args(args);
    let ours = run(&mut cmd);
    let ours = images(ours.expect_success("hoist config --resolve-image-digests"));
    assert_eq!(ours["web"], format!("{host}/app:1@{tagged}"));
    assert_eq!(ours["again"], ours["web"]);
    assert_eq!(ours["api"], format!("{host}/other:latest@{untagged}"));
    assert_eq!(ours["fixed"], fixed);
    let mut cmd = std::process::Command::new(common::reference::path());
    cmd.current_dir(&dir)
        .env("DOCKER_CONFIG", &creds)
        .env_remove("DOCKER_HOST")
        .args(args);
    let theirs = run(&mut cmd);
    assert_eq!(
        ours,
        images(theirs.expect_success("reference config --resolve-image-digests")),
        "hoist and the reference pin differently"
    );

    // A tag the registry does not have: the service and the image are named; nothing printed.
    std::fs::write(
        dir.join("compose.yaml"),
        compose(&format!("{host}/app:nope")),
    )
    .unwrap();
    let mut cmd = common::lab::hoist_command();
    cmd.current_dir(&dir)
        .env("DOCKER_CONFIG", &creds)
        .args(args);
    let out = run(&mut cmd);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "services.web.image: {host}/app:nope: registry {host} has no image"
        )),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
