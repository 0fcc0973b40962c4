//! What `hoist machines init` runs on a machine that has no working engine: pure, from what the
//! probe found (`Host`), the engine the machines file asks for and the socket hoist will use.
//!
//! Every command is built from constants and values checked before they get here (the socket
//! path by `safe::socket_path` when the machines file is read, the user name by the alphabet
//! below) and quoted word by word, and every command is idempotent: a machine left halfway by an
//! interrupted run is finished by the next one. `--dry-run` prints exactly these lines.

use super::host::Host;
use crate::inventory::EngineKind;
use crate::safe::shell_word;

/// The releases `init` installs on: their own packages of docker.io and podman are recent
/// enough for hoist (API 1.40+). Others get an error naming the machine and its OS.
const SUPPORTED: &[(&str, &[&str])] = &[
    ("debian", &["12", "13"]),
    ("ubuntu", &["22.04", "24.04", "26.04"]),
];

/// Unattended, and keeping any configuration file already on the machine.
const APT_INSTALL: &[&str] = &[
    "env",
    "DEBIAN_FRONTEND=noninteractive",
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
];

/// Where `podman system service` logs when init starts it by hand (no systemd).
const PODMAN_SERVICE_LOG: &str = "/var/log/podman-service.log";

/// One command and what it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub what: String,
    /// The command line exactly as it runs (through the ssh user's shell).
    pub command: String,
}

/// Everything init does on one machine, in order, and how the engine starts from now on.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub steps: Vec<Step>,
    /// How the engine was started and whether it comes back after a reboot, in words.
    pub start: String,
    /// The ssh user was added to a group: logins already open do not have it yet.
    pub adds_group: bool,
}

/// The steps that give `host` a running `engine` answering on `socket` for the ssh user.
pub fn recipe(host: &Host, engine: EngineKind, socket: &str) -> Result<Recipe, String> {
    supported(host)?;
    let root = |argv: &[&str]| -> String {
        let line = argv
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ");
        if host.is_root() {
            line
        } else {
            format!("sudo -n {line}")
        }
    };
    if !host.is_root() && !host.sudo {
        return Err(format!(
            "the ssh user {} is not root and `sudo -n` asks for a password (or sudo is missing); init installs packages as root: connect as root (`user: root`), or allow {} passwordless sudo",
            host.user, host.user
        ));
    }
    let mut steps = Vec::new();
    let (package, installed) = match engine {
        EngineKind::Docker => (
            "docker.io",
            host.packages.contains_key("docker.io")
                || host.packages.contains_key("docker-ce")
                || host.has_dockerd,
        ),
        EngineKind::Podman => (
            "podman",
            host.packages.contains_key("podman") || host.has_podman,
        ),
    };
    if !installed {
        steps.push(Step {
            what: "refresh the package lists".into(),
            command: root(&["apt-get", "update", "-q"]),
        });
        let mut argv: Vec<&str> = APT_INSTALL.to_vec();
        match engine {
            EngineKind::Docker => {
                argv.extend(["docker.io", "ca-certificates"]);
                if host.apparmor {
                    // docker.io recommends it; an AppArmor kernel refuses containers without it.
                    argv.push("apparmor");
                }
            }
            EngineKind::Podman => {
                if host.os_id == "ubuntu" && host.os_version == "22.04" {
                    return Err("Ubuntu 22.04's Podman (3.4, CNI networks without name resolution) is too old for hoist: use Ubuntu 24.04 or later, Debian 12 or later, or `engine: docker` on this machine".to_string());
                }
                // What podman and netavark only recommend but a deploy needs: names on
                // networks (aardvark-dns), published ports (netavark's nftables driver) and an
                // init process for `init: true` (catatonit).
                argv.extend([
                    "podman",
                    "aardvark-dns",
                    "nftables",
                    "catatonit",
                    "ca-certificates",
                ]);
            }
        }
        steps.push(Step {
            what: format!("install {package} from {}'s packages", distribution(host)),
            command: root(&argv),
        });
    }
    let start = match (engine, host.systemd) {
        (EngineKind::Docker, true) => {
            steps.push(Step {
                what: "enable docker at boot and start it (systemd)".into(),
                command: root(&["systemctl", "enable", "--now", "docker.service"]),
            });
            "started and enabled at boot with systemd (docker.service)".to_string()
        }
        (EngineKind::Docker, false) => {
            // Debian's docker.io ships a sysvinit script; the package's own postinst enables it
            // (update-rc.d) but starts nothing where no init system runs.
            if installed && !host.sysv_docker {
                return Err(
                    "docker is installed but there is neither systemd nor /etc/init.d/docker to start it: start dockerd with this machine's init system, then run `hoist machines` to check"
                        .to_string(),
                );
            }
            steps.push(Step {
                what: "enable docker at boot (sysvinit: no systemd runs here)".into(),
                command: root(&["update-rc.d", "docker", "defaults"]),
            });
            steps.push(Step {
                what: "start docker with Debian's init script".into(),
                command: root(&["/etc/init.d/docker", "start"]),
            });
            "no systemd here: started with /etc/init.d/docker, enabled at boot with update-rc.d"
                .to_string()
        }
        (EngineKind::Podman, true) => {
            steps.push(Step {
                what: "enable Podman's API socket at boot and start it (systemd)".into(),
                command: root(&["systemctl", "enable", "--now", "podman.socket"]),
            });
            // Podman has no daemon to restart containers after a reboot: this unit starts
            // those with a restart policy (hoist's replicas have one) at boot.
            steps.push(Step {
                what: "start containers with a restart policy at boot (podman-restart.service)"
                    .into(),
                command: root(&["systemctl", "enable", "podman-restart.service"]),
            });
            "Podman's API socket started and enabled at boot with systemd (podman.socket, podman-restart.service)"
                .to_string()
        }
        (EngineKind::Podman, false) => {
            let dir = socket.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
            let dir = if dir.is_empty() { "/" } else { dir };
            let script = format!(
                "mkdir -p {} && setsid -f podman system service --time=0 {} >>{PODMAN_SERVICE_LOG} 2>&1 </dev/null",
                shell_word(dir),
                shell_word(&format!("unix://{socket}")),
            );
            steps.push(Step {
                what: "start Podman's API service (`podman system service`; no systemd runs here)"
                    .into(),
                command: root(&["sh", "-c", &script]),
            });
            format!(
                "no systemd here: `podman system service` started by hand (log: {PODMAN_SERVICE_LOG}); it does not start at boot — add it to this machine's init system"
            )
        }
    };
    // 30 s at most; the step's failure says what it waited for.
    let wait = format!(
        "i=0; while [ ! -S {s} ] && [ $i -lt 60 ]; do sleep 0.5; i=$((i+1)); done; [ -S {s} ]",
        s = shell_word(socket)
    );
    steps.push(Step {
        what: format!("wait for the engine's socket {socket}"),
        command: root(&["sh", "-c", &wait]),
    });
    let mut adds_group = false;
    if !host.is_root() {
        match engine {
            EngineKind::Docker => {
                if !host.groups.iter().any(|g| g == "docker") {
                    check_user(&host.user)?;
                    steps.push(Step {
                        what: format!("let {} use docker (the docker group)", host.user),
                        command: root(&["usermod", "-aG", "docker", &host.user]),
                    });
                    adds_group = true;
                }
            }
            EngineKind::Podman => {
                return Err(format!(
                    "the ssh user {} is not root, and rootful Podman's socket is root's alone: connect as root (`user: root`), or run rootless Podman as {} and set docker_socket to its socket (/run/user/UID/podman/podman.sock)",
                    host.user, host.user
                ));
            }
        }
    }
    Ok(Recipe {
        steps,
        start,
        adds_group,
    })
}

fn supported(host: &Host) -> Result<(), String> {
    let ok = SUPPORTED
        .iter()
        .any(|(id, versions)| *id == host.os_id && versions.contains(&host.os_version.as_str()));
    if ok && host.apt {
        return Ok(());
    }
    let list = SUPPORTED
        .iter()
        .map(|(id, versions)| format!("{} {}", capitalised(id), versions.join("/")))
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!(
        "{} ({} {}) is not supported by `hoist machines init`, which installs engines from the packages of {list}; install Docker or Podman by hand, then `hoist machines` checks it",
        host.os(),
        if host.os_id.is_empty() {
            "no ID"
        } else {
            &host.os_id
        },
        if host.os_version.is_empty() {
            "no VERSION_ID"
        } else {
            &host.os_version
        },
    ))
}

fn distribution(host: &Host) -> String {
    capitalised(&host.os_id)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The user name `usermod` gets: `id -un` on the machine, in the alphabet of login names.
fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the machine calls the ssh user {:?}, which is not a plain login name; add it to the docker group by hand",
            user.chars().take(40).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{DEFAULT_DOCKER_SOCKET, DEFAULT_PODMAN_SOCKET};

    fn debian12_root() -> Host {
        Host {
            os_id: "debian".into(),
            os_version: "12".into(),
            os_name: "Debian GNU/Linux 12 (bookworm)".into(),
            uid: 0,
            user: "root".into(),
            groups: vec!["root".into()],
            apt: true,
            ..Host::default()
        }
    }

    fn lines(r: &Recipe) -> String {
        r.steps
            .iter()
            .map(|s| format!("# {}\n{}\n", s.what, s.command))
            .collect()
    }

    #[test]
    fn a_bare_debian_machine_without_systemd() {
        let r = recipe(&debian12_root(), EngineKind::Docker, DEFAULT_DOCKER_SOCKET).unwrap();
        assert_eq!(
            lines(&r),
            "# refresh the package lists
apt-get update -q
# install docker.io from Debian's packages
env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold docker.io ca-certificates
# enable docker at boot (sysvinit: no systemd runs here)
update-rc.d docker defaults
# start docker with Debian's init script
/etc/init.d/docker start
# wait for the engine's socket /var/run/docker.sock
sh -c 'i=0; while [ ! -S /var/run/docker.sock ] && [ $i -lt 60 ]; do sleep 0.5; i=$((i+1)); done; [ -S /var/run/docker.sock ]'
"
        );
        assert!(!r.adds_group);
        assert!(r.start.starts_with("no systemd here"));
    }

    #[test]
    fn ubuntu_with_systemd_a_sudo_user_and_apparmor() {
        let host = Host {
            os_id: "ubuntu".into(),
            os_version: "24.04".into(),
            uid: 1000,
            user: "deploy".into(),
            groups: vec!["deploy".into()],
            systemd: true,
            apt: true,
            sudo: true,
            apparmor: true,
            ..Host::default()
        };
        let r = recipe(&host, EngineKind::Docker, DEFAULT_DOCKER_SOCKET).unwrap();
        let text = lines(&r);
        assert!(
            text.contains("sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install"),
            "{text}"
        );
        assert!(
            text.contains("docker.io ca-certificates apparmor\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsudo -n systemctl enable --now docker.service\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "# let deploy use docker (the docker group)\nsudo -n usermod -aG docker deploy\n"
            ),
            "{text}"
        );
        assert!(r.adds_group);
    }

    #[test]
    fn installed_but_stopped_only_starts() {
        let mut host = debian12_root();
        host.packages.insert("docker.io".into(), "20.10.24".into());
        host.has_dockerd = true;
        host.sysv_docker = true;
        let r = recipe(&host, EngineKind::Docker, DEFAULT_DOCKER_SOCKET).unwrap();
        let whats: Vec<&str> = r.steps.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "enable docker at boot (sysvinit: no systemd runs here)",
                "start docker with Debian's init script",
                "wait for the engine's socket /var/run/docker.sock"
            ]
        );
    }

    #[test]
    fn podman_without_systemd_runs_the_service_by_hand() {
        let mut host = debian12_root();
        host.os_version = "13".into();
        let r = recipe(&host, EngineKind::Podman, DEFAULT_PODMAN_SOCKET).unwrap();
        let text = lines(&r);
        assert!(
            text.contains(
                "--force-confold podman aardvark-dns nftables catatonit ca-certificates\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("sh -c 'mkdir -p /run/podman && setsid -f podman system service --time=0 unix:///run/podman/podman.sock >>/var/log/podman-service.log 2>&1 </dev/null'"),
            "{text}"
        );
        assert!(r.start.contains("does not start at boot"));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut fedora = debian12_root();
        fedora.os_id = "fedora".into();
        fedora.os_version = "41".into();
        fedora.os_name = "Fedora Linux 41 (Server Edition)".into();
        fedora.apt = false;
        assert_eq!(
            recipe(&fedora, EngineKind::Docker, DEFAULT_DOCKER_SOCKET).unwrap_err(),
            "Fedora Linux 41 (Server Edition) (fedora 41) is not supported by `hoist machines init`, which installs engines from the packages of Debian 12/13, Ubuntu 22.04/24.04/26.04; install Docker or Podman by hand, then `hoist machines` checks it"
        );
        let mut old = debian12_root();
        old.os_version = "10".into();
        assert!(recipe(&old, EngineKind::Docker, DEFAULT_DOCKER_SOCKET).is_err());
        let mut no_sudo = debian12_root();
        no_sudo.uid = 1000;
        no_sudo.user = "deploy".into();
        assert!(
            recipe(&no_sudo, EngineKind::Docker, DEFAULT_DOCKER_SOCKET)
                .unwrap_err()
                .starts_with("the ssh user deploy is not root and `sudo -n` asks for a password")
        );
        let mut sudo_podman = no_sudo.clone();
        sudo_podman.sudo = true;
        assert!(
            recipe(&sudo_podman, EngineKind::Podman, DEFAULT_PODMAN_SOCKET)
                .unwrap_err()
                .contains("rootful Podman's socket is root's alone")
        );
        let mut odd_user = sudo_podman.clone();
        odd_user.user = "x;rm".into();
        assert!(
            recipe(&odd_user, EngineKind::Docker, DEFAULT_DOCKER_SOCKET)
                .unwrap_err()
                .contains("not a plain login name")
        );
    }
}
