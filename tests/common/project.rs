//! A compose project of a test's own: a temporary folder holding its compose.yaml, deployed to
//! the lab under a name no other test (or run) uses, taken down with its volumes when the test
//! ends however it ends. A test file adds what only it needs in an `impl Project` of its own.
#![allow(dead_code)] // each test binary uses its own subset of the helpers

use super::lab::{Lab, Output, hoist_command, run};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

pub struct Project {
    pub dir: PathBuf,
    /// `-p`: the kind's prefix, the test's tag and this process's id.
    pub name: String,
    pub machines: PathBuf,
    /// Set on every hoist command of the project.
    env: Vec<(String, String)>,
}

impl Project {
    /// `kind` names the test file (`drain`, `verbs`), `tag` the test.
    pub fn new(lab: &Lab, kind: &str, tag: &str, compose: &str) -> Project {
        let dir = std::env::temp_dir().join(format!("hoist-{kind}-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), compose).unwrap();
        Project {
            dir,
            name: format!("{kind}{tag}{}", std::process::id()),
            machines: lab.machines_file(),
            env: Vec::new(),
        }
    }

    /// Every hoist command of the project runs with `key=value` in its environment.
    pub fn with_env(mut self, key: &str, value: &str) -> Project {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Replaces the compose file.
    pub fn write(&self, compose: &str) {
        std::fs::write(self.dir.join("compose.yaml"), compose).unwrap();
    }

    /// hoist with `args`, in the project's folder, on the lab's machines file.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with(&self.machines, args)
    }

    /// hoist with `args` on another machines file.
    pub fn command_with(&self, machines: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = hoist_command();
        cmd.current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["-m", machines.to_str().unwrap(), "-p", &self.name])
            .args(args);
        cmd
    }

    pub fn hoist(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// [`Project::hoist`] on another machines file.
    pub fn hoist_with(&self, machines: &std::path::Path, args: &[&str]) -> Output {
        run(&mut self.command_with(machines, args))
    }

    /// `hoist ps --json`.
    pub fn ps(&self) -> Value {
        let out = self.hoist(&["ps", "--json"]);
        serde_json::from_str(out.expect_success("ps --json")).unwrap()
    }

    /// (service, machine) of every current replica, sorted.
    pub fn placements(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self.ps()["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["service"].as_str().unwrap().to_string(),
                    r["machine"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.hoist(&["down", "--volumes", "--yes"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
