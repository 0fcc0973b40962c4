//! Images built here reach the machines without a registry (examples/build-app):
//! each machine gets only the layers it lacks, a machine that has the image gets
//! nothing, a one-layer change sends about that layer, and a transfer cut off in
//! the middle fails clearly, leaves the machine as it was, and a rerun succeeds.

mod common;

use common::lab::{Fault, Lab, Output, run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct App {
    dir: PathBuf,
    port: u16,
    project: String,
    machines: PathBuf,
}

impl App {
    fn new(lab: &Lab, tag: &str) -> App {
        let dir = std::env::temp_dir().join(format!("hoist-ship-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/build-app");
        run(Command::new("cp").arg("-r").arg(&src).arg(&dir)).expect_success("copy the example");
        // Content of its own, so the image is new to every machine.
        std::fs::write(
            dir.join("www/id.txt"),
            format!("{tag} {}\n", std::process::id()),
        )
        .unwrap();
        App {
            dir,
            port: 20000 + (std::process::id() % 20000) as u16 + if tag == "cut" { 1 } else { 0 },
            project: format!("ship{tag}{}", std::process::id()),
            machines: lab.machines_file(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = common::lab::hoist_command();
        cmd.env("SITE_PORT", self.port.to_string());
        cmd.current_dir(&self.dir)
            .args(["-m", self.machines.to_str().unwrap(), "-p", &self.project])
            .args(args);
        cmd
    }

    fn up(&self) -> (Output, Value) {
        let out = run(&mut self.command(&["up", "--yes", "--json"]));
        let json = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        (out, json)
    }

    fn image(&self) -> String {
        format!("{}-site", self.project)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = run(&mut self.command(&["down"]));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Bytes of the newest non-empty layer of a local image, as `docker history` counts them.
fn top_layer_size(image: &str) -> u64 {
    let out = run(Command::new("docker").args([
        "history",
        "--human=false",
        "--format",
        "{{.Size}}",
        image,
    ]));
    out.expect_success("docker history")
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .find(|s| *s > 0)
        .unwrap()
}

fn shipped(json: &Value) -> Vec<(String, u64)> {
    json["shipped"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["machine"].as_str().unwrap().to_string(),
                        s["bytes"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ships_only_missing_layers() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let app = App::new(lab, "thin");

    let (out, json) = app.up();
    assert!(out.success(), "{out}");
    let first = shipped(&json);
    assert_eq!(
        first.len(),
        3,
        "every machine receives the new image: {json}"
    );
    for s in json["shipped"].as_array().unwrap() {
        assert!(
            s["layers_skipped"].as_u64().unwrap() >= 1,
            "the base layer is already there: {s}"
        );
        assert!(
            s["layers_sent"].as_u64().unwrap() >= 1,
            "the new layers travel: {s}"
        );
    }

    // Nothing changed: nothing is sent.
    let (out, json) = app.up();
    assert!(out.success(), "{out}");
    assert!(shipped(&json).is_empty(), "{json}");

    // One layer changes: about that layer travels, to each machine.
    let blob: Vec<u8> = (0..512 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(app.dir.join("www/blob.bin"), blob).unwrap();
    let (out, json) = app.up();
    assert!(out.success(), "{out}");
    let layer = top_layer_size(&app.image());
    let sent = shipped(&json);
    assert_eq!(sent.len(), 3, "{json}");
    for (machine, bytes) in sent {
        assert!(
            bytes as f64 <= 1.1 * layer as f64,
            "{machine}: sent {bytes} bytes for a {layer}-byte layer"
        );
    }
}

#[test]
fn an_interrupted_transfer_fails_clearly_and_a_rerun_succeeds() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    let app = App::new(lab, "cut");
    let (out, _) = app.up();
    assert!(out.success(), "{out}");

    // A big new layer, and m2 cut off while it travels.
    let blob: Vec<u8> = (0..48 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(app.dir.join("www/big.bin"), blob).unwrap();
    let mut cmd = app.command(&["up", "--yes"]);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The build takes a moment; cut m2 once shipping has begun.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let cut = lab.fault(Fault::Cut, "m2");
    let failed = child.wait_with_output().unwrap();
    cut.restore();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "the deploy must fail while m2 is cut off:\n{stderr}"
    );
    assert!(
        stderr.contains("m2"),
        "the error names the machine:\n{stderr}"
    );

    // m2 still runs the previous image, and a rerun completes the deploy.
    let (out, json) = app.up();
    assert!(out.success(), "{out}");
    assert!(json["ok"].as_bool().unwrap_or(false), "{json}");
    let plan = run(&mut app.command(&["plan", "--detailed-exitcode"]));
    assert_eq!(plan.code(), Some(0), "{plan}");
}
