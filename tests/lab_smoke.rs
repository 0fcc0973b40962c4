//! The lab itself works: every machine answers over SSH with the engine it should run, and the
//! test images run inside a machine. If this fails, fix the lab before reading other e2e failures.

mod common;

use common::lab::{Fault, Lab, http_get_until, run};
use std::process::Command;
use std::time::Duration;

#[test]
fn every_machine_answers_ssh_with_its_engine_version() {
    let lab = Lab::get();
    let _lease = lab.shared();
    for m in lab.machines() {
        let out = lab.ssh(
            &m.name,
            &["docker", "version", "--format", "{{.Server.Version}}"],
        );
        let version = out
            .expect_success(&format!("docker version over ssh on {}", m.name))
            .trim();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: unexpected engine version {version:?}", m.name));
        assert_eq!(
            major, m.engine_major,
            "{} ({}) runs engine {version}",
            m.name, m.suite
        );
    }
}

#[test]
fn app_image_answers_over_http_inside_a_machine() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let name = format!("lab-smoke-{}", std::process::id());
    // Another checkout's tests may use the lab at the same time: no fixed host port.
    let port = 20000 + (std::process::id() % 20000) as u16;
    let publish = format!("{port}:80");
    // Removes the container even when an assertion below fails.
    struct Cleanup<'a>(&'a Lab, &'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            self.0.docker_in("m1", &["rm", "-f", self.1]);
        }
    }
    let run = lab.docker_in(
        "m1",
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            &publish,
            "hoist-test/app:v1",
        ],
    );
    let _cleanup = Cleanup(lab, &name);
    run.expect_success("docker run hoist-test/app:v1 in m1");

    let body = http_get_until(lab.ip("m1"), port, "/", 200, Duration::from_secs(10));
    assert!(body.starts_with("version=v1 "), "GET / answered {body:?}");
    let health = http_get_until(
        lab.ip("m1"),
        port,
        "/cgi-bin/health",
        200,
        Duration::from_secs(5),
    );
    assert_eq!(health.trim(), "ok");
}

#[test]
fn a_fault_guard_undoes_its_fault_when_dropped() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    {
        let _cut = lab.fault(Fault::Cut, "m3");
        let out = lab.ssh("m3", &["true"]);
        assert!(
            !out.success(),
            "m3 answered ssh while cut off the network:\n{out}"
        );
    }
    lab.ssh("m3", &["true"])
        .expect_success("ssh to m3 after the guard healed it");
}

#[test]
fn every_machine_has_the_test_images_of_the_box() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let image_id = |out: common::lab::Output| {
        out.expect_success("docker image inspect")
            .trim()
            .to_string()
    };
    for image in [
        "hoist-test/base:latest",
        "hoist-test/app:v1",
        "hoist-test/app:bad",
        "hoist-test/db:latest",
    ] {
        let want = image_id(run(
            Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", image])
        ));
        for m in lab.machines() {
            let got =
                image_id(lab.docker_in(&m.name, &["image", "inspect", "-f", "{{.Id}}", image]));
            assert_eq!(got, want, "{image} on {} differs from the box's", m.name);
        }
    }
}
