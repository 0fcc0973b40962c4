//! What `hoist machines init` learns about a machine before it changes anything: the OS (from
//! /etc/os-release), the ssh user and whether it is root or may use `sudo -n`, the init system,
//! and the engine packages already there. The probe is one constant shell script that changes
//! nothing; reading its answer is pure, so it is tested with tables.

use std::collections::BTreeMap;

/// Run on the machine as the ssh user. Prints /etc/os-release as it is, then one `key=value`
/// line per fact. Nothing of the inventory or the user reaches it.
pub const PROBE: &str = r#"echo '--- os-release'
cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo '--- facts'
echo "uid=$(id -u)"
echo "user=$(id -un)"
echo "groups=$(id -Gn)"
if [ -d /run/systemd/system ]; then echo init=systemd; else echo init=other; fi
command -v apt-get >/dev/null 2>&1 && echo apt=yes
[ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && echo sudo=yes
[ -x /etc/init.d/docker ] && echo sysv.docker=yes
[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] && echo apparmor=yes
for p in docker.io docker-ce podman; do
  v=$(dpkg-query -W -f '${db:Status-Status} ${Version}' "$p" 2>/dev/null) && echo "pkg.$p=$v"
done
# /usr/sbin is not on a non-root user's PATH on Debian.
{ command -v dockerd || [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ]; } >/dev/null 2>&1 && echo bin.dockerd=yes
{ command -v podman || [ -x /usr/bin/podman ]; } >/dev/null 2>&1 && echo bin.podman=yes
true"#;

/// A machine as the probe found it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Host {
    /// os-release `ID` (`debian`, `ubuntu`, …), `VERSION_ID` (`12`, `24.04`), `PRETTY_NAME`.
    pub os_id: String,
    pub os_version: String,
    pub os_name: String,
    pub uid: u32,
    pub user: String,
    pub groups: Vec<String>,
    pub systemd: bool,
    pub apt: bool,
    /// A non-root user may run commands as root without a password (`sudo -n true` worked).
    pub sudo: bool,
    /// Debian's sysvinit script for docker.io is installed (/etc/init.d/docker).
    pub sysv_docker: bool,
    /// The kernel enforces AppArmor: Docker then needs the apparmor package to start containers.
    pub apparmor: bool,
    /// Installed packages among the engines' (docker.io, docker-ce, podman) and their versions.
    pub packages: BTreeMap<String, String>,
    pub has_dockerd: bool,
    pub has_podman: bool,
}

impl Host {
    /// `Debian GNU/Linux 12 (bookworm)`, or the ID and version when there is no pretty name.
    pub fn os(&self) -> String {
        if !self.os_name.is_empty() {
            return self.os_name.clone();
        }
        match (self.os_id.is_empty(), self.os_version.is_empty()) {
            (true, _) => "an OS without /etc/os-release".to_string(),
            (false, true) => self.os_id.clone(),
            (false, false) => format!("{} {}", self.os_id, self.os_version),
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Reads the probe's output.
pub fn parse(out: &str) -> Result<Host, String> {
    let (release, facts) = out
        .split_once("--- os-release\n")
        .and_then(|(_, rest)| rest.split_once("--- facts\n"))
        .ok_or_else(|| {
            format!(
                "the machine's answer to the probe is not what it prints: {:?}",
                out.chars().take(200).collect::<String>()
            )
        })?;
    let mut host = Host::default();
    for line in release.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = os_release_value(value);
        match key.trim() {
            "ID" => host.os_id = value,
            "VERSION_ID" => host.os_version = value,
            "PRETTY_NAME" => host.os_name = value,
            _ => {}
        }
    }
    let mut uid = None;
    for line in facts.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "uid" => uid = value.trim().parse::<u32>().ok(),
            "user" => host.user = value.trim().to_string(),
            "groups" => host.groups = value.split_whitespace().map(str::to_string).collect(),
            "init" => host.systemd = value == "systemd",
            "apt" => host.apt = true,
            "sudo" => host.sudo = true,
            "sysv.docker" => host.sysv_docker = true,
            "apparmor" => host.apparmor = true,
            "bin.dockerd" => host.has_dockerd = true,
            "bin.podman" => host.has_podman = true,
            _ => {
                if let Some(name) = key.strip_prefix("pkg.")
                    && let Some(version) = value.strip_prefix("installed ")
                {
                    host.packages
                        .insert(name.to_string(), version.trim().to_string());
                }
            }
        }
    }
    host.uid = uid.ok_or("the probe did not say the ssh user's uid (`id -u`)")?;
    Ok(host)
}

/// An os-release value: unquoted, or in double or single quotes with `\` escapes
/// (os-release(5)).
fn os_release_value(raw: &str) -> String {
    let raw = raw.trim();
    let inner = match raw.as_bytes().first() {
        Some(q @ (b'"' | b'\'')) if raw.len() >= 2 && raw.as_bytes()[raw.len() - 1] == *q => {
            &raw[1..raw.len() - 1]
        }
        _ => raw,
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKWORM_BARE: &str = "--- os-release\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n--- facts\nuid=0\nuser=root\ngroups=root\ninit=other\napt=yes\npkg.docker.io=config-files 20.10.24+dfsg1-1+deb12u1+b6\n";

    #[test]
    fn reads_a_bare_debian_machine() {
        let host = parse(BOOKWORM_BARE).unwrap();
        assert_eq!(host.os_id, "debian");
        assert_eq!(host.os_version, "12");
        assert_eq!(host.os(), "Debian GNU/Linux 12 (bookworm)");
        assert!(host.is_root() && host.apt && !host.systemd && !host.sudo);
        // A purged package leaves config files: it is not installed.
        assert!(host.packages.is_empty());
        assert!(!host.has_dockerd);
    }

    #[test]
    fn reads_an_ubuntu_machine_with_docker_and_a_sudo_user() {
        let out = "--- os-release\nNAME='Ubuntu'\nVERSION_ID='24.04'\nID=ubuntu\nID_LIKE=debian\n--- facts\nuid=1000\nuser=deploy\ngroups=deploy sudo docker\ninit=systemd\napt=yes\nsudo=yes\napparmor=yes\npkg.docker.io=installed 24.0.7-0ubuntu4\nbin.dockerd=yes\n";
        let host = parse(out).unwrap();
        assert_eq!(
            (host.os_id.as_str(), host.os_version.as_str()),
            ("ubuntu", "24.04")
        );
        assert_eq!(host.os(), "ubuntu 24.04");
        assert_eq!(host.uid, 1000);
        assert_eq!(host.groups, ["deploy", "sudo", "docker"]);
        assert!(host.systemd && host.sudo && host.apparmor && host.has_dockerd);
        assert_eq!(host.packages["docker.io"], "24.0.7-0ubuntu4");
    }

    #[test]
    fn os_release_quoting() {
        assert_eq!(os_release_value("\"a \\\"b\\\" c\""), "a \"b\" c");
        assert_eq!(os_release_value("'x y'"), "x y");
        assert_eq!(os_release_value("plain"), "plain");
        assert_eq!(os_release_value("\""), "\"");
    }

    #[test]
    fn an_answer_that_is_not_the_probes_is_an_error() {
        assert!(
            parse("Welcome to BusyBox\n")
                .unwrap_err()
                .contains("not what it prints")
        );
        assert!(
            parse("--- os-release\n--- facts\nuser=x\n")
                .unwrap_err()
                .contains("uid")
        );
    }
}
