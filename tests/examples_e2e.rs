//! Every example is followed as its README says, on the lab, with the `hoist` just built.
//!
//! A README's first ```sh block is run line by line in one bash, from the repository root, with
//! this build's `hoist` first on PATH — what a reader who pastes the block into a terminal does.
//! Two conventions make a README checkable without making it harder to read:
//! - a line whose trailing comment says `exit N` must exit with N; every other line must exit 0;
//! - a `curl` line's trailing comment is text its output must contain.
//!
//! Each block ends with `hoist down`, and the example's files are restored afterwards
//! (build-app's README edits one), so the lab and the checkout are left as they were.
//!
//! examples/ci has no shell block: its workflow (deploy.yml) is run instead, step by step, with
//! the lab's key and host keys as its two secrets and ~/.ssh on a private tmpfs.

mod common;

use common::lab::{Lab, Output, hoist_bin, hoist_in, run};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README's first ```sh block, one entry per command (backslash continuations joined), with
/// its line number in the README.
fn shell_block(readme: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        let trimmed = line.trim();
        if !inside {
            inside = trimmed == "```sh";
            continue;
        }
        if trimmed == "```" {
            break;
        }
        let (start, mut text) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(head) = trimmed.strip_suffix('\\') {
            text.push_str(head.trim_end());
            text.push(' ');
            pending = Some((start, text));
            continue;
        }
        text.push_str(trimmed);
        if !text.is_empty() && !text.starts_with('#') {
            out.push((start, text));
        }
    }
    assert!(inside, "the README has no ```sh block");
    out
}

/// Splits a shell line into its command and its trailing comment: the first `#` outside quotes
/// that follows whitespace.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double, mut prev_space) = (false, false, false);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => {
                return (line[..i].trim_end(), Some(line[i + 1..].trim()));
            }
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    (line.trim_end(), None)
}

fn expected_exit(comment: Option<&str>) -> i32 {
    let Some(comment) = comment else { return 0 };
    let words: Vec<&str> = comment
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[0] == "exit")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(0)
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A bash script that runs the block's commands in order and stops at the first one that exits
/// other than its README says, or whose output lacks what its comment promises.
fn script_for(block: &[(usize, String)], readme: &Path) -> String {
    let mut s = String::from("set -u\n");
    for (line_no, line) in block {
        let (cmd, comment) = split_comment(line);
        let want = expected_exit(comment);
        let at = format!("{}:{line_no}", readme.display());
        s.push_str(&format!("printf '\\n$ %s\\n' {}\n", sh_quote(cmd)));
        let expect_text = comment.filter(|_| cmd.starts_with("curl "));
        if expect_text.is_some() {
            s.push_str(&format!("out=$({cmd}); rc=$?; printf '%s\\n' \"$out\"\n"));
        } else {
            s.push_str(&format!("{cmd}\nrc=$?\n"));
        }
        s.push_str(&format!(
            "[ \"$rc\" = {want} ] || {{ echo {} >&2; exit 101; }}\n",
            sh_quote(&format!("{at}: exit status $rc, the README expects {want}"))
                .replace("$rc", "'\"$rc\"'")
        ));
        if let Some(text) = expect_text {
            s.push_str(&format!(
                "case \"$out\" in *{}*) ;; *) echo {} >&2; exit 102;; esac\n",
                sh_quote(text),
                sh_quote(&format!("{at}: the output lacks the README's {text:?}"))
            ));
        }
    }
    s
}

/// The files of a folder as they were; put back (and new files removed) on drop, even when the
/// test fails half-way.
struct Restore {
    dir: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

impl Restore {
    fn new(dir: PathBuf) -> Restore {
        let mut paths = Vec::new();
        files_under(&dir, &mut paths);
        let files = paths
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        Restore { dir, files }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let mut now = Vec::new();
        files_under(&self.dir, &mut now);
        for path in now {
            match self.files.get(&path) {
                Some(bytes) if std::fs::read(&path).ok().as_ref() != Some(bytes) => {
                    std::fs::write(&path, bytes).unwrap()
                }
                Some(_) => {}
                None => std::fs::remove_file(&path).unwrap(),
            }
        }
    }
}

fn path_with_hoist() -> String {
    let bin = hoist_bin();
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Follows examples/NAME/README.md on the lab and returns what the run printed.
fn follow_readme(name: &str) -> Output {
    let dir = repo().join("examples").join(name);
    let readme_path = dir.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let block = shell_block(&readme);
    let _restore = Restore::new(dir);
    let script = script_for(&block, Path::new(&format!("examples/{name}/README.md")));
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(repo())
        .env("PATH", path_with_hoist())
        .env_remove("HOIST_MACHINES")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME"));
    assert!(
        out.success(),
        "examples/{name}/README.md, followed as written, failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    out
}

#[test]
fn parsing_the_readme_conventions() {
    let block = shell_block(
        "x\n```sh\ncd a   # go\nhoist up \\\n  --yes  # exit 1: rolled back\n# note\ncurl -s 'http://h/#x'  # version=v1\n```\n```sh\nnot this\n```\n",
    );
    let lines: Vec<&str> = block.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "cd a   # go",
            "hoist up --yes  # exit 1: rolled back",
            "curl -s 'http://h/#x'  # version=v1"
        ]
    );
    assert_eq!(block[1].0, 4, "the README line where the command starts");
    assert_eq!(
        split_comment(&block[2].1),
        ("curl -s 'http://h/#x'", Some("version=v1"))
    );
    assert_eq!(expected_exit(split_comment(&block[1].1).1), 1);
    assert_eq!(expected_exit(Some("rolling update")), 0);
}

#[test]
fn example_web_behind_the_ingress() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let out = follow_readme("web");
    assert!(out.stdout.contains("version=v2"), "{}", out.stdout);
}

#[test]
fn example_shop_web_api_db_with_a_volume() {
    let lab = Lab::get();
    let _lease = lab.shared();
    follow_readme("shop");
}

#[test]
fn example_build_app_shipped_without_a_registry() {
    let lab = Lab::get();
    let _lease = lab.shared();
    follow_readme("build-app");
}

#[test]
fn example_three_tier_by_name_across_machines() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let out = follow_readme("three-tier");
    // web (m1) → api (m2 or m3) → db (m1), then api rolled to v2.
    assert!(
        out.stdout.contains("\nversion=v2 machine=m"),
        "{}",
        out.stdout
    );
}

#[test]
fn example_hello_on_the_local_engine() {
    // The README's first command: no machines file, so the box's own engine is the machine.
    let out = follow_readme("hello");
    assert!(out.stdout.contains("Hello from hoist"), "{}", out.stdout);
}

/// examples/ci/deploy.yml, run as GitHub Actions would run it on a push to main: the plan job,
/// then (its output says there are changes) the deploy job, then the plan job again (a push with
/// nothing new: no changes). Secrets are the lab's key and `ssh-keyscan -H` of the machines, as
/// the workflow's header says. `Install hoist` (cargo install from the project's git) is the
/// only step not run: this build's hoist is on PATH instead.
#[test]
fn example_ci_workflow_plans_then_deploys() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let workflow: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("examples/ci/deploy.yml")).unwrap(),
    )
    .unwrap();
    let tmp = tempdir("ci");
    let project = tmp.join("checkout");
    std::fs::create_dir_all(project.join("deploy")).unwrap();
    let name = format!("ciex{}", std::process::id());
    // The app is built from source by the deploy job (build:), so a code-only change — a new
    // commit that edits a file, same image tag — must show in the plan job and be deployed.
    std::fs::write(
        project.join("compose.yaml"),
        format!("name: {name}\nservices:\n  web:\n    build: ./app\n    image: {name}-web:1\n    ports: [\"80\"]\n    deploy: {{replicas: 3}}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(project.join("app")).unwrap();
    std::fs::write(
        project.join("app/Dockerfile"),
        "FROM hoist-test/base:latest\nCOPY index.html /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    std::fs::write(project.join("app/index.html"), "first commit\n").unwrap();
    let mut machines = String::from("machines:\n");
    let mut ips = Vec::new();
    for m in lab.machine_names().into_iter().take(3) {
        machines.push_str(&format!("  {m}: {{ssh: root@{}}}\n", lab.ip(m)));
        ips.push(lab.ip(m).to_string());
    }
    std::fs::write(project.join("deploy/production.yaml"), machines).unwrap();
    let key = std::fs::read_to_string(lab.identity()).unwrap();
    let keyscan = run(Command::new("ssh-keyscan").arg("-H").args(&ips));
    assert!(keyscan.success(), "ssh-keyscan: {}", keyscan.stderr);

    // One driver script per job: steps in order, each as Actions runs a `run:` step (bash
    // --noprofile --norc -eo pipefail), with its own $GITHUB_OUTPUT.
    let job_script = |job: &str, output: &Path| -> String {
        let steps = workflow["jobs"][job]["steps"].as_sequence().unwrap();
        let mut s = String::new();
        for (i, step) in steps.iter().enumerate() {
            let Some(body) = step["run"].as_str() else {
                continue; // `uses:` steps (checkout, upload-artifact)
            };
            if step["name"].as_str() == Some("Install hoist") {
                continue;
            }
            let body = body
                .replace("${{ secrets.DEPLOY_SSH_KEY }}", key.trim_end())
                .replace(
                    "${{ secrets.DEPLOY_KNOWN_HOSTS }}",
                    keyscan.stdout.trim_end(),
                );
            assert!(
                !body.contains("${{"),
                "unhandled expression in {job} step {i}: {body}"
            );
            let file = tmp.join(format!("{job}-{i}.sh"));
            std::fs::write(&file, body).unwrap();
            s.push_str(&format!(
                "echo '== {job}: {}'\nGITHUB_OUTPUT={} bash --noprofile --norc -eo pipefail {} || exit $?\n",
                step["name"].as_str().unwrap_or("run"),
                output.display(),
                file.display()
            ));
        }
        s
    };
    // ~/.ssh is a private tmpfs for the run: the workflow writes the key and known_hosts there,
    // as on a fresh runner, without touching this box's own.
    let run_jobs = |jobs: &[&str]| -> Vec<String> {
        let outputs: Vec<PathBuf> = jobs.iter().map(|j| tmp.join(format!("{j}.out"))).collect();
        let mut driver = String::from(
            "set -e\nmkdir -p \"$HOME/.ssh\"\nmount -t tmpfs hoist-ci-ssh \"$HOME/.ssh\"\n",
        );
        for (job, output) in jobs.iter().zip(&outputs) {
            std::fs::write(output, "").unwrap();
            driver.push_str(&job_script(job, output));
        }
        let out = run(Command::new("unshare")
            .args(["--mount", "bash", "-c", &driver])
            .current_dir(&project)
            .env("PATH", path_with_hoist())
            .env_remove("HOIST_MACHINES"));
        assert!(
            out.success(),
            "deploy.yml jobs {jobs:?} failed:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        outputs
            .iter()
            .map(|o| std::fs::read_to_string(o).unwrap())
            .collect()
    };

    // The deploy job runs only when the plan job says there are changes.
    let first = run_jobs(&["plan"]);
    assert!(first[0].contains("changes=true"), "{first:?}");
    let deployed = run_jobs(&["deploy"]);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("result.json")).unwrap())
            .unwrap_or_else(|e| panic!("result.json: {e}"));
    assert_eq!(result["schema"], 1, "{result}");
    let again = run_jobs(&["plan"]);
    assert!(again[0].contains("changes=false"), "{again:?} {deployed:?}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["schema"], 1, "{plan}");
    assert_eq!(served(lab, &name), ["first commit"; 3]);

    // A code-only commit: the plan job sees the build context changed, the deploy job builds
    // and rolls it out, and the next plan is empty again.
    std::fs::write(project.join("app/index.html"), "second commit\n").unwrap();
    let changed = run_jobs(&["plan"]);
    assert!(changed[0].contains("changes=true"), "{changed:?}");
    let plan_text = std::fs::read_to_string(project.join("plan.txt")).unwrap_or_default();
    run_jobs(&["deploy"]);
    assert_eq!(
        served(lab, &name),
        ["second commit"; 3],
        "plan was:\n{plan_text}"
    );
    let settled = run_jobs(&["plan"]);
    assert!(settled[0].contains("changes=false"), "{settled:?}");

    let down = hoist_in(
        &project,
        ["-m", lab.machines_file().to_str().unwrap(), "down"],
    );
    down.expect_success("hoist down");
}

/// What the project's running replicas serve, one entry per replica (read inside each machine).
fn served(lab: &Lab, project: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in lab.machine_names() {
        let ids = lab.docker_in(
            m,
            &[
                "ps",
                "-q",
                "--filter",
                &format!("label=io.hoist.project={project}"),
            ],
        );
        for id in ids.stdout.split_whitespace() {
            let body = lab.docker_in(m, &["exec", id, "cat", "/www/index.html"]);
            out.push(body.expect_success("cat index.html").trim().to_string());
        }
    }
    out
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hoist-examples-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
