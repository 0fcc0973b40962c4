//! The encrypted mesh (`x-hoist: {mesh: {encrypt: true}}`, docs/networking.md) on the lab, with
//! examples/three-tier: web on m1 fetches `api:8080` (replicas on m2 and m3), which fetches
//! `db:5432` (on m1). First without encryption, as a control: a packet capture on m2's link to
//! the lab network sees a marker the requests carry between machines, in clear. Then with it:
//! the credentials and the gateways appear in the plan, the chain answers across machines, the
//! same capture sees the marker never (and sees the traffic on the gateway port), the ports
//! the replicas published before answer no longer, a TLS client without a fleet certificate
//! is refused by a gateway, and a rolling update of api under load fails no request.

mod common;

use common::lab::{Lab, Output, hoist_command, http_get, run};
use common::load::Load;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WEB_PORT: u16 = 18091;
/// In every request that crosses machines (web → api, api → db), never in a response.
const MARKER: &str = "hoistmarker7f3a9c";

fn chain_path() -> String {
    format!("/cgi-bin/fetch?http://api:8080/cgi-bin/fetch?http://db:5432/?{MARKER}")
}

struct Tiers {
    dir: PathBuf,
    project: String,
    machines: PathBuf,
}

impl Tiers {
    fn new(lab: &Lab) -> Tiers {
        let dir = std::env::temp_dir().join(format!("hoist-meshenc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/three-tier");
        std::fs::copy(example.join("compose.yaml"), dir.join("compose.yaml")).unwrap();
        Tiers {
            dir,
            project: format!("meshenc{}", std::process::id()),
            machines: lab.machines_file(),
        }
    }

    /// The example's file, with `encrypt:` under `x-hoist.mesh` when `encrypt`.
    fn write(&self, encrypt: bool) {
        let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/three-tier");
        let text = std::fs::read_to_string(example.join("compose.yaml")).unwrap();
        let text = if encrypt {
            let with = text.replace(
                "    image: ${MESH_IMAGE:-haproxy:2.8}\n",
                "    image: ${MESH_IMAGE:-haproxy:2.8}\n    encrypt: true\n",
            );
            assert_ne!(with, text, "the example's mesh block changed");
            with
        } else {
            text
        };
        std::fs::write(self.dir.join("compose.yaml"), text).unwrap();
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
        let _ = self.hoist(&[], &["down", "--volumes", "--yes"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The fleet-wide objects the encrypted mesh leaves on every machine (its gateway and the
/// fleet's credentials), removed so the test starts from a fleet without them and leaves none.
fn remove_fleet_tls(lab: &Lab) {
    for m in lab.machine_names() {
        lab.docker_in(
            m,
            &["rm", "-f", "hoist-gateway", "hoist-tls", "hoist-tls-ca"],
        );
        lab.docker_in(m, &["volume", "rm", "hoist-tls", "hoist-tls-ca"]);
    }
}

struct FleetTls<'a>(&'a Lab);

impl Drop for FleetTls<'_> {
    fn drop(&mut self) {
        remove_fleet_tls(self.0);
    }
}

/// The chain, from outside: web (m1) → api → db. Returns the three lines (web, api, db).
fn chain(lab: &Lab) -> Result<Vec<String>, String> {
    match http_get(lab.ip("m1"), WEB_PORT, &chain_path()) {
        Ok((200, body)) => Ok(body.lines().map(str::to_string).collect()),
        Ok((code, body)) => Err(format!("{code}: {body}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Asks the chain until it answers with three lines, or `within` passes.
fn chain_until(lab: &Lab, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        match chain(lab) {
            Ok(lines) if lines.len() == 3 => return lines,
            other if Instant::now() > deadline => panic!("the chain does not answer: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A packet capture on one network interface of this box (an AF_PACKET socket: every frame
/// in and out of it), counting frames, frames that carry `MARKER`, and frames to or from TCP
/// port 7443 (the gateways).
struct Capture {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Captured>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Captured {
    frames: usize,
    marked: usize,
    gateway: usize,
}

impl Capture {
    fn start(interface: &str) -> Capture {
        let name = std::ffi::CString::new(interface).unwrap();
        // SAFETY: plain socket calls on a descriptor this thread owns; every buffer passed
        // outlives the call.
        let fd = unsafe {
            let index = libc::if_nametoindex(name.as_ptr());
            assert!(index > 0, "no interface {interface}");
            let protocol = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol));
            assert!(
                fd >= 0,
                "a packet socket needs root (CAP_NET_RAW): {}",
                std::io::Error::last_os_error()
            );
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = protocol;
            sll.sll_ifindex = index as i32;
            let bound = libc::bind(
                fd,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            fd
        };
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut got = Captured::default();
            while !s.load(Ordering::Relaxed) {
                // SAFETY: `buf` is valid for `buf.len()` bytes.
                let n =
                    unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
                if n <= 0 {
                    continue;
                }
                let frame = &buf[..n as usize];
                got.frames += 1;
                if frame.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()) {
                    got.marked += 1;
                }
                if tcp_ports(frame).is_some_and(|(a, b)| a == 7443 || b == 7443) {
                    got.gateway += 1;
                }
            }
            // SAFETY: the descriptor is this thread's and is closed once.
            unsafe { libc::close(fd) };
            got
        });
        Capture {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Captured {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// The TCP ports of an Ethernet frame carrying IPv4 and TCP.
fn tcp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let tcp = frame.get(14 + ihl..14 + ihl + 4)?;
    Some((
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
    ))
}

/// The box's end of `machine`'s link to the lab network: the veth peer of the interface that
/// holds its lab address (eth0 at first; after a partition is healed — mesh_e2e cuts one —
/// the engine reconnects it as eth1).
fn lab_link(machine: &str) -> String {
    let ip = Lab::get().ip(machine);
    let out = run(std::process::Command::new("docker").args([
        "exec",
        machine,
        "sh",
        "-c",
        &format!(
            "dev=$(ip -o -4 addr show to {ip} | awk '{{print $2}}'); cat /sys/class/net/$dev/iflink"
        ),
    ]));
    let index = out
        .expect_success("reading the lab interface's peer")
        .trim()
        .to_string();
    for e in std::fs::read_dir("/sys/class/net").unwrap() {
        let path = e.unwrap().path();
        let ifindex = std::fs::read_to_string(path.join("ifindex")).unwrap_or_default();
        if ifindex.trim() == index {
            return path.file_name().unwrap().to_string_lossy().into_owned();
        }
    }
    panic!("no interface with index {index} on this box for {machine}'s eth0");
}

/// Sends `n` chained requests (each crossing machines twice) while `interface` is captured.
fn captured_chain(lab: &Lab, interface: &str, n: usize) -> (usize, Captured) {
    let capture = Capture::start(interface);
    let mut ok = 0;
    for _ in 0..n {
        if chain(lab).is_ok_and(|l| l.len() == 3) {
            ok += 1;
        }
    }
    (ok, capture.finish())
}

/// Host ports the project's replicas publish on their machine's address: (machine, port).
fn published(lab: &Lab, project: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in lab.machine_names() {
        let ps = lab.docker_in(
            m,
            &[
                "ps",
                "--filter",
                &format!("label=io.hoist.project={project}"),
                "--filter",
                "label=io.hoist.slot",
                "--format",
                "{{.Names}} {{.Ports}}",
            ],
        );
        for line in ps.stdout.lines() {
            for part in line.split([' ', ',']) {
                // `172.31.77.12:32768->8080/tcp`
                if let Some((host, _)) = part.split_once("->")
                    && let Some((_, port)) = host.rsplit_once(':')
                {
                    out.push((m.to_string(), format!("{line} | {port}")));
                }
            }
        }
    }
    out
}

/// Whether a container on the lab network that is not part of the fleet (started on this
/// box) can open a TCP connection to `address:port`.
fn outsider_connects(address: &str, port: &str) -> bool {
    let out = run(std::process::Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "hoist-lab",
        "hoist-test/base:latest",
        "sh",
        "-c",
        &format!("nc -w 3 {address} {port} </dev/null"),
    ]));
    out.success()
}

/// The whole chain answered, all three tiers: one check of [`Load`].
fn chain_answers(lab: &Lab) -> Result<(), String> {
    match chain(lab)? {
        lines if lines.len() == 3 => Ok(()),
        lines => Err(format!("short answer: {lines:?}")),
    }
}

/// TLS clients of a gateway, started on this box on the lab network: an HAProxy that forwards
/// plain connections on its port 9000 to `gateway`:7443 over TLS asking for `sni`, verifying
/// nothing and showing no certificate, and on its port 9001 the same with a fleet machine's
/// certificate (`pem`, copied from a machine) — the control. Returns its address.
struct NoCertClient {
    name: String,
    dir: PathBuf,
}

impl NoCertClient {
    fn start(gateway: &str, sni: &str, pem: &str, ca: &str) -> (NoCertClient, String) {
        let name = format!("hoist-nocert-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fleet.pem"), pem).unwrap();
        std::fs::write(dir.join("ca.pem"), ca).unwrap();
        let here = "/usr/local/etc/haproxy";
        std::fs::write(
            dir.join("haproxy.cfg"),
            format!(
                "global\n    maxconn 64\ndefaults\n    mode tcp\n    timeout connect 3s\n    \
                 timeout client 10s\n    timeout server 10s\nlisten nocert\n    bind :9000\n    \
                 server gw {gateway}:7443 ssl verify none sni str({sni})\nlisten fleet\n    \
                 bind :9001\n    server gw {gateway}:7443 ssl crt {here}/fleet.pem ca-file \
                 {here}/ca.pem verify required sni str({sni})\n"
            ),
        )
        .unwrap();
        let _ = run(std::process::Command::new("docker").args(["rm", "-f", &name]));
        run(std::process::Command::new("docker").args([
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "hoist-lab",
            "-v",
            &format!("{}:/usr/local/etc/haproxy:ro", dir.display()),
            "hoist-test/haproxy:latest",
        ]))
        .expect_success("starting a TLS client without a certificate");
        let ip = run(std::process::Command::new("docker").args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &name,
        ]));
        let ip = ip.expect_success("its address").trim().to_string();
        (NoCertClient { name, dir }, ip)
    }
}

impl Drop for NoCertClient {
    fn drop(&mut self) {
        let _ = run(std::process::Command::new("docker").args(["rm", "-f", &self.name]));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// (container ID, machine) of the project's api replicas.
fn api_replicas(lab: &Lab, project: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in lab.machine_names() {
        let ps = lab.docker_in(
            m,
            &[
                "ps",
                "--filter",
                &format!("label=io.hoist.project={project}"),
                "--filter",
                "label=io.hoist.service=api",
                "--no-trunc",
                "-q",
            ],
        );
        out.extend(ps.stdout.lines().map(|id| (id.to_string(), m.to_string())));
    }
    out
}

#[test]
fn the_encrypted_mesh_carries_nothing_in_clear_between_machines() {
    let lab = Lab::get();
    // Exclusive: the gateways are fleet-wide (every project's), and the capture must see only
    // this test's requests.
    let _lease = lab.exclusive();
    remove_fleet_tls(lab);
    let _tls = FleetTls(lab);
    let tiers = Tiers::new(lab);
    let link = lab_link("m2");

    // Control: the plain mesh. The marker crosses m2's link in clear.
    tiers.write(false);
    let up = tiers.hoist(&[], &["up", "--yes"]);
    assert!(up.success(), "{up}");
    chain_until(lab, Duration::from_secs(30));
    let (ok, plain) = captured_chain(lab, &link, 20);
    eprintln!("plain mesh: {ok}/20 chained requests answered; capture on {link}: {plain:?}");
    assert_eq!(ok, 20);
    assert!(
        plain.marked > 0,
        "the control capture saw no marker: it would prove nothing ({plain:?})"
    );
    let plain_ports = published(lab, &tiers.project);
    assert!(
        !plain_ports.is_empty(),
        "the plain mesh publishes the replicas' ports"
    );

    // Encrypted: the plan shows the credentials and the gateways.
    tiers.write(true);
    let plan = tiers.hoist(&[], &["plan"]);
    assert!(plan.success(), "{plan}");
    assert!(
        plan.stdout
            .contains("+ fleet CA: new, kept on every machine"),
        "{plan}"
    );
    for m in ["m1", "m2", "m3"] {
        for line in [
            format!("+ credentials@{m}: machine certificate (no machine certificate)"),
            format!(
                "+ gateway@{m}: {}:7443 (mutual TLS from the fleet CA)",
                lab.ip(m)
            ),
        ] {
            assert!(plan.stdout.contains(&line), "plan lacks {line:?}:\n{plan}");
        }
    }
    let up = tiers.hoist(&[], &["up", "--yes"]);
    assert!(up.success(), "{up}");
    let again = tiers.hoist(&[], &["plan", "--detailed-exitcode"]);
    assert_eq!(
        again.code(),
        Some(0),
        "a second plan has nothing to do:\n{again}"
    );

    // Every hop still crosses machines.
    let lines = chain_until(lab, Duration::from_secs(30));
    assert!(lines[0].contains("machine=m1"), "{lines:?}");
    assert!(
        lines[1].contains("machine=m2") || lines[1].contains("machine=m3"),
        "{lines:?}"
    );
    assert!(lines[2].contains("machine=m1"), "{lines:?}");

    // The same requests: never the marker on m2's link, and traffic on the gateway port.
    let (ok, encrypted) = captured_chain(lab, &link, 20);
    eprintln!(
        "encrypted mesh: {ok}/20 chained requests answered; capture on {link}: {encrypted:?}"
    );
    assert_eq!(ok, 20);
    assert_eq!(
        encrypted.marked, 0,
        "the marker crossed m2's link in clear: {encrypted:?}"
    );
    assert!(
        encrypted.gateway > 0,
        "no traffic through the gateway port: {encrypted:?}"
    );

    // Nothing of the mesh listens on the machines' addresses any more: the replicas publish
    // only web's port (the file's own), and the ports they published before refuse a
    // container on the lab network.
    let now = published(lab, &tiers.project);
    assert!(
        now.iter()
            .all(|(_, line)| line.contains("->80/tcp") && line.contains("-web-")),
        "replicas publish more than web's port: {now:?}"
    );
    let mut refused = 0;
    for (m, line) in &plain_ports {
        if line.contains("-web-") {
            continue;
        }
        let port = line.rsplit(" | ").next().unwrap();
        assert!(
            !outsider_connects(lab.ip(m), port),
            "{m}:{port} (was {line}) still answers a container outside the fleet"
        );
        refused += 1;
    }
    eprintln!("{refused} former replica ports refuse a container outside the fleet");
    assert!(refused > 0);

    // A TLS client without a fleet certificate gets nothing from a gateway, even naming a
    // replica that runs there; the gateway port itself accepts TCP (it must, to answer TLS).
    let (id, machine) = api_replicas(lab, &tiers.project)
        .into_iter()
        .next()
        .expect("an api replica");
    let sni = hoist::mesh::tls::replica_sni(&id, 8080, &machine);
    let secret = |file: &str| {
        let out = lab.docker_in(
            "m1",
            &[
                "run",
                "--rm",
                "-v",
                "hoist-tls:/t:ro",
                "hoist-test/base:latest",
                "cat",
                &format!("/t/{file}"),
            ],
        );
        out.expect_success("reading m1's credentials").to_string()
    };
    let (client, ip) = NoCertClient::start(
        lab.ip(&machine),
        &sni,
        &secret("machine.pem"),
        &secret("ca.pem"),
    );
    // The control: with m1's certificate, the same name reaches the replica.
    let (code, _) = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http_get(&ip, 9001, "/") {
                Ok(answer) => break answer,
                Err(e) if Instant::now() > deadline => {
                    panic!("a client with a fleet certificate got no answer: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };
    assert!(code > 0, "the control answered {code}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempts = 0;
    let mut answers = Vec::new();
    while Instant::now() < deadline && attempts < 5 {
        attempts += 1;
        match http_get(&ip, 9000, "/") {
            Ok((code, body)) if code != 0 => answers.push(format!("{code}: {body}")),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(client);
    eprintln!("a TLS client without a fleet certificate: {attempts} tries, answers {answers:?}");
    assert!(
        answers.is_empty(),
        "the gateway of {machine} answered a client without a fleet certificate: {answers:?}"
    );

    // A rolling update of api under load: no failed request.
    let load = Load::start(move || chain_answers(lab));
    std::thread::sleep(Duration::from_millis(500));
    let update = tiers.hoist(&[("API_VERSION", "v2")], &["up", "--yes"]);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failures) = load.finish();
    assert!(update.success(), "{update}");
    eprintln!(
        "rolling update of api, encrypted: {ok} chained requests answered, {} failed",
        failures.len()
    );
    assert!(ok > 20, "too few requests to mean anything: {ok}");
    assert!(
        failures.is_empty(),
        "failed during the update: {failures:?}"
    );
    let lines = chain_until(lab, Duration::from_secs(10));
    assert!(lines[1].contains("version=v2"), "{lines:?}");

    // The keys stay on the machines: root's files, mode 0600; in no label and no output.
    for m in lab.machine_names() {
        for volume in ["hoist-tls", "hoist-tls-ca"] {
            let files = lab.docker_in(
                m,
                &[
                    "run",
                    "--rm",
                    "-v",
                    &format!("{volume}:/t:ro"),
                    "hoist-test/base:latest",
                    "sh",
                    "-c",
                    "stat -c '%a %u %n' /t/*",
                ],
            );
            let listing = files.expect_success("listing the credentials");
            assert!(!listing.trim().is_empty(), "{m}: {volume} is empty");
            for line in listing.lines() {
                assert!(line.starts_with("600 0 "), "{m}: {volume}: {line}");
            }
        }
        let all = lab.docker_in(m, &["ps", "-aq"]);
        let ids: Vec<&str> = all.stdout.lines().collect();
        let mut args = vec!["inspect"];
        args.extend(ids);
        let inspected = lab.docker_in(m, &args);
        assert!(
            !inspected.stdout.contains("PRIVATE KEY"),
            "{m}: a key in a container's configuration"
        );
    }
    for out in [&up, &update] {
        assert!(!out.stdout.contains("PRIVATE KEY") && !out.stderr.contains("PRIVATE KEY"));
    }

    // A machine joining (m3, made to forget the encrypted mesh: no credentials, no gateway, no
    // proxies) gets the fleet's CA and its own certificate at `up`, and serves again.
    for name in [
        "hoist-gateway".to_string(),
        "hoist-tls".to_string(),
        "hoist-tls-ca".to_string(),
        format!("{}-mesh-api", tiers.project),
        format!("{}-mesh-db", tiers.project),
        format!("{}-mesh-web", tiers.project),
    ] {
        lab.docker_in("m3", &["rm", "-f", &name]);
    }
    let removed = lab.docker_in("m3", &["volume", "rm", "hoist-tls", "hoist-tls-ca"]);
    assert!(removed.success(), "{removed}");
    // `machines` reports it.
    let machines = tiers.hoist(&[], &["machines"]);
    assert!(machines.success(), "{machines}");
    let row = |m: &str| {
        machines
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{m} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row("m3").contains("no machine certificate"), "{machines}");
    assert!(row("m1").contains("ok until"), "{machines}");
    assert!(
        machines.stderr.contains("lack the fleet's TLS credentials"),
        "{machines}"
    );
    let plan = tiers.hoist(&[("API_VERSION", "v2")], &["plan"]);
    assert!(plan.success(), "{plan}");
    for line in [
        "+ fleet CA: copied to m3".to_string(),
        "+ credentials@m3: machine certificate (no machine certificate)".to_string(),
        format!(
            "+ gateway@m3: {}:7443 (mutual TLS from the fleet CA)",
            lab.ip("m3")
        ),
    ] {
        assert!(plan.stdout.contains(&line), "plan lacks {line:?}:\n{plan}");
    }
    assert!(
        !plan.stdout.contains("credentials@m1") && !plan.stdout.contains("credentials@m2"),
        "{plan}"
    );
    let up = tiers.hoist(&[("API_VERSION", "v2")], &["up", "--yes"]);
    assert!(up.success(), "{up}");
    let mut served = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while served.len() < 2 && Instant::now() < deadline {
        if let Ok(lines) = chain(lab)
            && lines.len() == 3
        {
            for m in ["m2", "m3"] {
                if lines[1].contains(&format!("machine={m}")) {
                    served.insert(m);
                }
            }
        }
    }
    assert_eq!(
        served.len(),
        2,
        "api answered only from {served:?} after m3 rejoined"
    );

    // Renewal without a deploy: m2's certificate is made to look 10 days from its end; a
    // `watch` round issues a new one and reloads m2's gateway and proxies on it.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 10 * 86_400
        - 3_600;
    let tamper = lab.docker_in(
        "m2",
        &[
            "run",
            "--rm",
            "-v",
            "hoist-tls:/t",
            "hoist-test/base:latest",
            "sed",
            "-i",
            &format!("s/\"not_after\":[0-9]*/\"not_after\":{soon}/"),
            "/t/machine.json",
        ],
    );
    tamper.expect_success("editing m2's certificate record");
    let machines = tiers.hoist(&[], &["machines"]);
    assert!(
        machines
            .stdout
            .lines()
            .any(|l| l.starts_with("m2 ") && l.contains("expires in 9 days")),
        "{machines}"
    );
    let watch = tiers.hoist(&[("API_VERSION", "v2")], &["watch", "--rounds", "2"]);
    assert!(watch.success(), "{watch}");
    eprintln!("watch after m2's certificate aged: {}", watch.stderr.trim());
    let machines = tiers.hoist(&[], &["machines"]);
    assert!(
        machines
            .stdout
            .lines()
            .any(|l| l.starts_with("m2 ") && l.contains("ok until")),
        "m2's certificate was not renewed:\n{machines}\n{watch}"
    );
    let (ok, _) = captured_chain(lab, &link, 10);
    assert_eq!(ok, 10, "the chain after m2's renewal");
}

/// The ingress through the encrypted path: web runs on m1 only; a request to m2's ingress
/// reaches it through m2's mesh proxy and m1's gateway. The control (the plain mesh) sends the
/// marker across m1's link in clear (m2's Caddy to web's published port on m1); encrypted, it
/// never crosses in clear, and the request is still answered.
#[test]
fn the_ingress_reaches_other_machines_through_the_gateways() {
    let lab = Lab::get();
    let _lease = lab.exclusive();
    remove_fleet_tls(lab);
    let _tls = FleetTls(lab);
    let dir = std::env::temp_dir().join(format!("hoist-meshenc-ing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let project = format!("meshencing{}", std::process::id());
    let write = |encrypt: bool| {
        std::fs::write(
            dir.join("compose.yaml"),
            format!(
                "x-hoist:\n  mesh: {{image: hoist-test/haproxy:latest, encrypt: {encrypt}}}\n  \
                 ingress: {{image: hoist-test/caddy:latest, http_port: 18095, https_port: 18096}}\n\
                 services:\n  web:\n    image: hoist-test/app:v1\n    ports: [\"80\"]\n    \
                 deploy: {{placement: {{constraints: [\"node.hostname == m1\"]}}}}\n"
            ),
        )
        .unwrap();
    };
    let hoist = |args: &[&str]| {
        run(hoist_command()
            .current_dir(&dir)
            .args([
                "-m",
                lab.machines_file().to_str().unwrap(),
                "-p",
                project.as_str(),
            ])
            .args(args))
    };
    struct Down<'a, F: Fn(&[&str]) -> Output>(F, &'a std::path::Path);
    impl<F: Fn(&[&str]) -> Output> Drop for Down<'_, F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "--volumes", "--yes"]);
            let _ = std::fs::remove_dir_all(self.1);
        }
    }
    let _down = Down(&hoist, &dir);
    let link = lab_link("m1");
    let path = format!("/?{MARKER}");
    let through_m2 = |n: usize| {
        let capture = Capture::start(&link);
        let mut ok = 0;
        for _ in 0..n {
            if matches!(http_get(lab.ip("m2"), 18095, &path), Ok((200, _))) {
                ok += 1;
            }
        }
        (ok, capture.finish())
    };
    let until_answered = || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http_get(lab.ip("m2"), 18095, &path) {
                Ok((200, _)) => return,
                other if Instant::now() > deadline => {
                    panic!("m2's ingress does not answer: {other:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };

    write(false);
    let up = hoist(&["up", "--yes"]);
    assert!(up.success(), "{up}");
    until_answered();
    let (ok, plain) = through_m2(10);
    eprintln!("ingress, plain mesh: {ok}/10 answered through m2; capture on {link}: {plain:?}");
    assert_eq!(ok, 10);
    assert!(plain.marked > 0, "the control saw no marker: {plain:?}");

    write(true);
    let up = hoist(&["up", "--yes"]);
    assert!(up.success(), "{up}");
    until_answered();
    let (ok, encrypted) = through_m2(10);
    eprintln!(
        "ingress, encrypted mesh: {ok}/10 answered through m2; capture on {link}: {encrypted:?}"
    );
    assert_eq!(ok, 10);
    assert_eq!(
        encrypted.marked, 0,
        "the marker crossed m1's link in clear: {encrypted:?}"
    );
    assert!(encrypted.gateway > 0, "{encrypted:?}");
}
