//! End-to-end tests run hoist against the lab: real machines (containers with sshd and their
//! own dockerd) that `tests/lab/lab.sh` starts on this box. This module brings the lab up once
//! per `cargo test` run, gives tests its paths, and wraps lab.sh's fault commands in guards that
//! undo the fault even when the test fails, so one broken test does not break the next.
//!
//! Only std: test support must not add dev-dependencies to the crate.
//!
//! Sharing: test binaries run as separate processes, other checkouts may use the same lab, and
//! tests in one binary run on parallel threads. `lab.sh ensure` serialises bringing the lab up.
//! A test that only deploys takes [`Lab::shared`]; a test that injects faults takes
//! [`Lab::exclusive`], which waits until no other test (of any process) uses the lab.
#![allow(dead_code)] // each test binary uses its own subset of the helpers

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Machines every test can rely on: m1 and m3 run engine 20.10, m2 engine 26.1.
pub const MACHINES: usize = 3;

/// How long a test waits for a lease on the lab before it fails (as long as lab.sh's `ensure`).
const LOCK_TIMEOUT_SECS: u32 = 1200;

/// The lab as tests see it. Get it with [`Lab::get`].
pub struct Lab {
    script: PathBuf,
    state_dir: PathBuf,
    machines: Vec<Machine>,
}

/// One lab machine: its name in the machines file and ssh_config, its address on the lab
/// network, and the Docker engine it runs.
#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub ip: String,
    /// `bookworm` (odd machines) or `trixie` (even machines).
    pub suite: &'static str,
    /// 20 on bookworm (API 1.41), 26 on trixie (API 1.45).
    pub engine_major: u32,
}

impl Machine {
    fn new(index: usize) -> Machine {
        let odd = index % 2 == 1;
        Machine {
            name: format!("m{index}"),
            ip: format!("172.31.77.{}", 10 + index),
            suite: if odd { "bookworm" } else { "trixie" },
            engine_major: if odd { 20 } else { 26 },
        }
    }
}

/// What a finished command printed, and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code; None when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with both streams unless the command succeeded; returns stdout.
    #[track_caller]
    pub fn expect_success(&self, what: &str) -> &str {
        assert!(self.success(), "{what} failed ({}):\n{self}", self.status);
        &self.stdout
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout\n{}--- stderr\n{}---",
            self.stdout, self.stderr
        )
    }
}

/// Runs a command to completion and captures its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The hoist binary cargo built for this test run.
pub fn hoist_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hoist"))
}

/// A command for the hoist binary, without colours, to add arguments, a directory or env to.
/// Each command starts its own ssh masters (HOIST_SSH_PERSIST=0): tests inject faults between
/// commands and must see each one met afresh. tests/machines_e2e.rs covers kept masters.
pub fn hoist_command() -> Command {
    let mut cmd = Command::new(hoist_bin());
    cmd.env("NO_COLOR", "1").env("HOIST_SSH_PERSIST", "0");
    cmd
}

/// Runs hoist with `args` in the current directory.
pub fn hoist<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(hoist_command().args(args))
}

/// Runs hoist with `args` in `dir` (where its compose.yaml is).
pub fn hoist_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(hoist_command().current_dir(dir).args(args))
}

/// `GET path` over plain HTTP/1.0 from this box, e.g. to a port a machine publishes.
/// Returns the status code and the body.
pub fn http_get(host: &str, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not HTTP: {head:?}"),
            )
        })?;
    Ok((code, body.to_string()))
}

/// Retries `GET path` until it answers `want` or `timeout` passes; returns the last body.
pub fn http_get_until(host: &str, port: u16, path: &str, want: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let last = http_get(host, port, path);
        match &last {
            Ok((code, body)) if *code == want => return body.clone(),
            _ if Instant::now() >= deadline => {
                panic!(
                    "GET http://{host}:{port}{path}: wanted {want} within {timeout:?}, last: {last:?}"
                )
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

static LAB: OnceLock<Lab> = OnceLock::new();

impl Lab {
    /// The lab with at least [`MACHINES`] healthy machines, brought up (once per `cargo test`
    /// run, whichever test binary comes first) when it is not. Panics when it cannot: an
    /// end-to-end test must fail, never skip, without its lab.
    pub fn get() -> &'static Lab {
        LAB.get_or_init(|| Lab::ensure(MACHINES))
    }

    fn ensure(n: usize) -> Lab {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh");
        let state_dir = std::env::var_os("HOIST_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/hoist-lab"));
        std::fs::create_dir_all(&state_dir).unwrap_or_else(|e| {
            panic!(
                "cannot create the lab state dir {}: {e}",
                state_dir.display()
            )
        });
        // lab.sh serialises this across processes and leaves a healthy lab alone.
        let started = Instant::now();
        let out = run(Command::new("bash")
            .arg(&script)
            .args(["ensure", &n.to_string()])
            .env("HOIST_LAB_DIR", &state_dir));
        assert!(
            out.success(),
            "the lab is not up and `{} ensure {n}` failed (needs root and a Docker engine; see \
             tests/lab/README.md):\n{out}",
            script.display()
        );
        if !out.stdout.is_empty() {
            eprintln!("{}(lab ready after {:.1?})", out.stdout, started.elapsed());
        }
        Lab {
            script,
            state_dir,
            machines: (1..=n).map(Machine::new).collect(),
        }
    }

    /// `$HOIST_LAB_DIR`, by default /var/tmp/hoist-lab.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The hoist machines file (inventory) listing the lab's machines.
    pub fn machines_file(&self) -> PathBuf {
        self.state_dir.join("machines.yaml")
    }

    /// An ssh client config with a `Host mN` alias per machine (for `ssh -F`).
    pub fn ssh_config(&self) -> PathBuf {
        self.state_dir.join("ssh_config")
    }

    /// The machines' real host keys, by address.
    pub fn known_hosts(&self) -> PathBuf {
        self.state_dir.join("known_hosts")
    }

    /// The private key the machines accept for root.
    pub fn identity(&self) -> PathBuf {
        self.state_dir.join("id_ed25519")
    }

    pub fn machines(&self) -> &[Machine] {
        &self.machines
    }

    pub fn machine_names(&self) -> Vec<&str> {
        self.machines.iter().map(|m| m.name.as_str()).collect()
    }

    #[track_caller]
    pub fn machine(&self, name: &str) -> &Machine {
        self.machines
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no lab machine named {name:?}"))
    }

    #[track_caller]
    pub fn ip(&self, name: &str) -> &str {
        &self.machine(name).ip
    }

    /// Starts the opt-in machine `ctd` (engine 26 keeping images in containerd's image store)
    /// beside m1..m3, unless it runs, and returns a machines file of m1 (engine 20.10), m2
    /// (engine 26, classic store) and ctd. Take a lease first: an `up` removes ctd.
    pub fn containerd(&self) -> PathBuf {
        self.lab_sh_ok(&["containerd"]);
        self.state_dir.join("machines-containerd.yaml")
    }

    /// Starts a new bare machine `bare` (Debian 12, sshd, no engine; replacing the last one:
    /// `hoist machines init` changes it) beside m1..m3 and returns a machines file of it alone.
    /// Take a lease first: an `up` removes it.
    pub fn bare(&self) -> PathBuf {
        self.lab_sh_ok(&["bare"]);
        self.state_dir.join("machines-bare.yaml")
    }

    /// Starts the opt-in machine `pod` (Debian 13 with Podman serving the Docker API on
    /// /run/podman/podman.sock) beside m1..m3, unless it runs, and returns a machines file of m1
    /// (engine 20.10), m2 (engine 26) and pod (`engine: podman`). Take a lease first: an `up`
    /// removes it.
    pub fn podman(&self) -> PathBuf {
        self.lab_sh_ok(&["podman"]);
        self.state_dir.join("machines-podman.yaml")
    }

    /// Starts the opt-in machines of two "providers" beside m1..m3, unless they run: pa1, pa2
    /// on the lab network (172.31.77.31, .32) and pb1, pb2 on a second network (172.31.78.11,
    /// .12) that reaches the first only through the box's routing, at machine addresses.
    /// Returns a machines file of all four (labels `provider: a|b`). Take a lease first.
    pub fn providers(&self) -> PathBuf {
        self.lab_sh_ok(&["providers"]);
        self.state_dir.join("machines-providers.yaml")
    }

    /// Starts the opt-in machine `rl` (Debian 13; user alice runs her own rootless Docker,
    /// socket /run/user/1000/docker.sock) beside m1..m3, unless it runs, and returns a machines
    /// file of rl reached as alice. Take a lease first: an `up` removes it.
    pub fn rootless(&self) -> PathBuf {
        self.lab_sh_ok(&["rootless"]);
        self.state_dir.join("machines-rootless.yaml")
    }

    /// For a test that deploys but injects no faults: other such tests may run at the same time;
    /// tests that take [`Lab::exclusive`] wait until this lease is dropped.
    pub fn shared(&self) -> Lease {
        self.lease("-s")
    }

    /// For a test that injects faults: waits until no other test uses the lab. Take it before
    /// creating the fault guards, so the faults are undone before the lab is released.
    pub fn exclusive(&self) -> Lease {
        self.lease("-x")
    }

    fn lease(&self, mode: &str) -> Lease {
        // flock(1) holds the lock while `sh` waits on its stdin. Dropping the Lease closes that
        // pipe; so does the death of this process, so a crashed test cannot keep the lab locked.
        //
        // flock grants a shared lock while an exclusive one waits, so with several test
        // binaries at once (tests/all.sh runs them side by side) a fault test could wait for
        // ever behind a stream of shared ones. A turnstile stops that: a shared lease passes
        // through it (takes and drops it) before its own lock; an exclusive lease holds it
        // while it waits for, and while it holds, the lab — so no new shared lease starts
        // meanwhile.
        let lock = self.state_dir.join(".use.lock");
        let turnstile = self.state_dir.join(".use.turnstile");
        let wait = LOCK_TIMEOUT_SECS.to_string();
        let mut command = Command::new("flock");
        command.args(["-x", "-w", &wait]).arg(&turnstile);
        if mode == "-s" {
            // Through the turnstile, then the shared lock on its own.
            command.arg("true");
            let passed = command.status().expect("cannot run flock");
            assert!(
                passed.success(),
                "no turn at {} within {LOCK_TIMEOUT_SECS}s",
                turnstile.display()
            );
            command = Command::new("flock");
        } else {
            command.arg("flock");
        }
        let mut child = command
            .args([mode, "-w", &wait])
            .arg(&lock)
            .args(["sh", "-c", "echo locked; read _"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run flock: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("reading from flock");
        assert_eq!(
            line.trim(),
            "locked",
            "no {mode} lock on {} within {LOCK_TIMEOUT_SECS}s",
            lock.display()
        );
        Lease {
            stdin: child.stdin.take(),
            child,
        }
    }

    /// Runs `lab.sh ARGS`, capturing its output.
    pub fn lab_sh(&self, args: &[&str]) -> Output {
        run(Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("HOIST_LAB_DIR", &self.state_dir))
    }

    #[track_caller]
    fn lab_sh_ok(&self, args: &[&str]) {
        let out = self.lab_sh(args);
        out.expect_success(&format!("lab.sh {}", args.join(" ")));
    }

    /// `ssh -F ssh_config NAME ARGS...`: the machine exactly as a user reaches it.
    pub fn ssh(&self, name: &str, args: &[&str]) -> Output {
        run(Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(name)
            .args(args))
    }

    /// Every file of `volume` on `machine`: owner, mode, size and content digest, one line each,
    /// sorted — equal for two volumes with the same content.
    pub fn volume_fingerprint(&self, machine: &str, volume: &str) -> String {
        let out = self.docker_in(
            machine,
            &[
                "run", "--rm", "-v", &format!("{volume}:/data"), "hoist-test/base:latest", "sh", "-c",
                "cd /data && find . -exec stat -c '%n %u:%g %a %s' {} + | sort && find . -type f -exec sha256sum {} + | sort",
            ],
        );
        out.expect_success("fingerprint").to_string()
    }

    /// `docker exec NAME docker ARGS...` on the box: the machine's own engine, directly
    /// (not through SSH), to inspect what hoist did there.
    pub fn docker_in(&self, name: &str, args: &[&str]) -> Output {
        run(Command::new("docker")
            .args(["exec", name, "docker"])
            .args(args))
    }

    // Faults, as lab.sh injects them. Each panics when lab.sh fails.

    /// The machine dies (`docker kill`). Undo: [`Lab::start`].
    pub fn kill(&self, name: &str) {
        self.lab_sh_ok(&["kill", name]);
    }
    /// Boots a killed machine; returns when sshd and its engine answer.
    pub fn start(&self, name: &str) {
        self.lab_sh_ok(&["start", name]);
    }
    /// The machine hangs (`docker pause`): connections time out. Undo: [`Lab::unpause`].
    pub fn pause(&self, name: &str) {
        self.lab_sh_ok(&["pause", name]);
    }
    pub fn unpause(&self, name: &str) {
        self.lab_sh_ok(&["unpause", name]);
    }
    /// Network partition: the machine leaves the lab network. Undo: [`Lab::heal`].
    pub fn cut(&self, name: &str) {
        self.lab_sh_ok(&["cut", name]);
    }
    /// Reconnects the machine at its fixed address.
    pub fn heal(&self, name: &str) {
        self.lab_sh_ok(&["heal", name]);
    }
    /// Only the machine's dockerd stops (its containers with it); sshd stays up.
    pub fn stop_docker(&self, name: &str) {
        self.lab_sh_ok(&["stop-docker", name]);
    }
    pub fn start_docker(&self, name: &str) {
        self.lab_sh_ok(&["start-docker", name]);
    }
    /// The machine gets a new SSH host key; known_hosts keeps the old one, so ssh refuses it.
    pub fn rekey(&self, name: &str) {
        self.lab_sh_ok(&["rekey", name]);
    }
    /// Puts the machine's original host key back.
    pub fn rekey_restore(&self, name: &str) {
        self.lab_sh_ok(&["rekey", name, "--restore"]);
    }

    /// Injects `fault` on machine `name` and returns a guard that undoes it when dropped
    /// (also when the test panics), or earlier with [`FaultGuard::restore`].
    pub fn fault(&self, fault: Fault, name: &str) -> FaultGuard<'_> {
        self.lab_sh_ok(&[fault.inject(), name]);
        FaultGuard {
            lab: self,
            fault,
            machine: name.to_string(),
            active: true,
        }
    }
}

/// A lock on the lab's use, held until dropped. See [`Lab::shared`] and [`Lab::exclusive`].
pub struct Lease {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: `read` returns, sh and flock exit, the lock is free
        let _ = self.child.wait();
    }
}

/// A fault lab.sh can inject on one machine, and undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Pause,
    Cut,
    StopDocker,
    Rekey,
}

impl Fault {
    fn inject(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Cut => "cut",
            Fault::StopDocker => "stop-docker",
            Fault::Rekey => "rekey",
        }
    }

    fn undo(self) -> &'static [&'static str] {
        match self {
            Fault::Kill => &["start"],
            Fault::Pause => &["unpause"],
            Fault::Cut => &["heal"],
            Fault::StopDocker => &["start-docker"],
            Fault::Rekey => &["rekey", "--restore"],
        }
    }
}

/// Undoes its fault when dropped. See [`Lab::fault`].
#[must_use = "the fault is undone as soon as the guard is dropped"]
pub struct FaultGuard<'a> {
    lab: &'a Lab,
    fault: Fault,
    machine: String,
    active: bool,
}

impl FaultGuard<'_> {
    /// Undoes the fault now (e.g. to test recovery); panics when that fails.
    #[track_caller]
    pub fn restore(mut self) {
        self.active = false;
        let out = self.lab.lab_sh(&self.undo_args());
        out.expect_success(&format!("undoing {:?} on {}", self.fault, self.machine));
    }

    fn undo_args(&self) -> Vec<&str> {
        let undo = self.fault.undo();
        let mut args = vec![undo[0], self.machine.as_str()];
        args.extend_from_slice(&undo[1..]);
        args
    }
}

impl Drop for FaultGuard<'_> {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        // No panic here: this may run while a failing test unwinds.
        let out = self.lab.lab_sh(&self.undo_args());
        if !out.success() {
            eprintln!(
                "lab: could not undo {:?} on {}; the next `cargo test` run rebuilds the lab:\n{out}",
                self.fault, self.machine
            );
        }
    }
}

/// (200 answers, all requests) from hey's report; errors count as requests.
pub fn hey_counts(report: &str) -> (usize, usize) {
    let (mut ok, mut all, mut in_errors) = (0, 0, false);
    for line in report.lines() {
        let l = line.trim();
        if l.starts_with("Error distribution") {
            in_errors = true;
        }
        if let Some(rest) = l.strip_prefix('[') {
            let (code, count) = rest.split_once(']').unwrap_or(("", ""));
            let count: usize = count
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            all += count;
            if code == "200" && !in_errors {
                ok += count;
            }
        }
    }
    (ok, all)
}
