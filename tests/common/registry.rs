//! A real container registry for end-to-end tests: Debian's `docker-registry` (distribution
//! 2.8) as a process on the box, listening on the lab bridge's gateway address (which every
//! lab machine reaches), with TLS from a CA made here by openssl and htpasswd (bcrypt) basic
//! auth. The CA is trusted by each machine's engine and by the box's engine (for pushing)
//! through /etc/docker/certs.d/HOST:PORT/ca.crt, which dockerd reads at every pull, so no
//! engine restarts.
//!
//! Each fixture has its own port, folder, CA and certs.d entries, so tests that run at the
//! same time (on one lab, from several checkouts) do not meet. Dropping it stops the process
//! and removes all of that.
//!
//! Needs: docker-registry, apache2-utils (htpasswd -B), openssl — tests/all.sh installs them.
#![allow(dead_code)]

use super::lab::{Lab, run};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "hoist";
pub const PASSWORD: &str = "s3cret-pass";

pub struct Registry {
    /// `172.31.77.1:PORT`: the registry part of image names.
    pub host: String,
    pub dir: PathBuf,
    child: Option<Child>,
    machines: Vec<String>,
}

/// The lab bridge's gateway address: the box as the machines see it.
pub fn gateway() -> String {
    let out = run(Command::new("docker").args([
        "network",
        "inspect",
        "hoist-lab",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]));
    let gw = out
        .expect_success("docker network inspect hoist-lab")
        .trim();
    if !gw.is_empty() {
        return gw.to_string();
    }
    // Without an explicit gateway, dockerd takes the subnet's first address.
    let out = run(Command::new("docker").args([
        "network",
        "inspect",
        "hoist-lab",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
    ]));
    let subnet = out
        .expect_success("docker network inspect hoist-lab")
        .trim();
    let base = subnet.split('/').next().expect("a subnet");
    let mut octets: Vec<u8> = base.split('.').map(|o| o.parse().unwrap()).collect();
    octets[3] += 1;
    format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3])
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .expect("binding a port on the lab gateway")
        .local_addr()
        .unwrap()
        .port()
}

#[track_caller]
fn sh(script: &str, dir: &Path) {
    let out = run(Command::new("sh").args(["-euc", script]).current_dir(dir));
    out.expect_success(script);
}

impl Registry {
    /// Starts a registry, trusted by every lab machine and the box's engine.
    pub fn start(lab: &Lab, tag: &str) -> Registry {
        Registry::start_for(tag, &lab.machine_names())
    }

    /// Starts a registry trusted by these machines (e.g. with the opt-in `ctd`) and the box.
    pub fn start_for(tag: &str, machines: &[&str]) -> Registry {
        let ip = gateway();
        let port = free_port(&ip);
        let host = format!("{ip}:{port}");
        let dir = std::env::temp_dir().join(format!("hoist-registry-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("docker")).unwrap();
        sh(
            &format!(
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.crt \
                   -subj '/CN=hoist test CA {tag}' -addext basicConstraints=critical,CA:TRUE \
                   -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
                 openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
                   -subj '/CN={ip}' 2>/dev/null
                 printf 'subjectAltName=IP:{ip}\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
                 openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                   -days 2 -out server.crt -extfile ext.cnf 2>/dev/null
                 htpasswd -Bbn {USER} '{PASSWORD}' > htpasswd"
            ),
            &dir,
        );
        let d = dir.display();
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {d}/data
  delete:
    enabled: true
http:
  addr: {host}
  tls:
    certificate: {d}/server.crt
    key: {d}/server.key
auth:
  htpasswd:
    realm: hoist-test
    path: {d}/htpasswd
"
            ),
        )
        .unwrap();
        let machines: Vec<String> = machines.iter().map(|s| s.to_string()).collect();
        let mut registry = Registry {
            host,
            dir,
            child: None,
            machines,
        };
        registry.trust();
        registry.resume();
        registry.write_config(USER, PASSWORD);
        registry.login();
        registry
    }

    /// Trust the CA on each machine's engine and on the box's.
    fn trust(&self) {
        let certs = format!("/etc/docker/certs.d/{}", self.host);
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(self.dir.join("ca.crt"), format!("{certs}/ca.crt")).unwrap();
        for m in &self.machines {
            run(Command::new("docker").args(["exec", m, "mkdir", "-p", &certs]))
                .expect_success("mkdir certs.d");
            let out = run(Command::new("docker")
                .arg("cp")
                .arg(self.dir.join("ca.crt"))
                .arg(format!("{m}:{certs}/ca.crt")));
            out.expect_success("docker cp ca.crt");
        }
    }

    /// Starts (again) the registry process and waits until it answers.
    pub fn resume(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run docker-registry (apt-get install docker-registry): {e}")
            });
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(&self.host).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the registry did not listen on {}: {}",
                self.host,
                std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the registry process (it is down until `resume`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A docker config folder (for DOCKER_CONFIG) with these credentials for this registry.
    pub fn write_config(&self, user: &str, password: &str) -> PathBuf {
        self.config_with(&format!("docker-{user}-{}", password.len()), user, password)
    }

    fn config_with(&self, name: &str, user: &str, password: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let auth = base64(format!("{user}:{password}").as_bytes());
        std::fs::write(
            dir.join("config.json"),
            format!(
                "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
                self.host
            ),
        )
        .unwrap();
        dir
    }

    /// The docker config with the right credentials.
    pub fn config(&self) -> PathBuf {
        self.write_config(USER, PASSWORD)
    }

    /// A docker config whose password the registry refuses.
    pub fn wrong_config(&self) -> PathBuf {
        self.config_with("docker-wrong", USER, "not-the-password")
    }

    fn login(&self) {
        let out = run(Command::new("docker")
            .env("DOCKER_CONFIG", self.config())
            .args(["login", "-u", USER, "-p", PASSWORD, &self.host]));
        out.expect_success("docker login to the test registry");
    }

    /// `docker tag LOCAL HOST/NAME` and push it from the box; returns the pushed digest.
    pub fn push(&self, local: &str, name: &str) -> String {
        let remote = format!("{}/{name}", self.host);
        run(Command::new("docker").args(["tag", local, &remote])).expect_success("docker tag");
        let out = run(Command::new("docker")
            .env("DOCKER_CONFIG", self.config())
            .args(["push", &remote]));
        let text = out.expect_success("docker push");
        text.split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_else(|| panic!("no digest in the push output:\n{text}"))
            .to_string()
    }

    /// `HOST/NAME`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        let certs = format!("/etc/docker/certs.d/{}", self.host);
        for m in &self.machines {
            let _ = run(Command::new("docker").args(["exec", m, "rm", "-rf", &certs]));
            // Images pulled from this registry go with it.
            let _ = run(Command::new("docker").args([
                "exec",
                m,
                "sh",
                "-c",
                &format!(
                    "docker images --digests --format '{{{{.Repository}}}}@{{{{.Digest}}}}' | grep '^{}/' | xargs -r docker rmi -f",
                    self.host
                ),
            ]));
        }
        let _ = run(Command::new("sh").args([
            "-c",
            &format!(
                "docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{}/' | xargs -r docker rmi -f",
                self.host
            ),
        ]));
        let _ = std::fs::remove_dir_all(&certs);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
