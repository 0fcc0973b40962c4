//! `hoist machines init` on the lab's bare machine (`lab.sh bare`: Debian 12 with sshd and no
//! engine, a fresh one per run): `hoist machines` sees it without an engine and suggests init;
//! an unsupported OS is refused by name; `--dry-run` prints the commands and changes nothing;
//! init installs docker.io from Debian's mirror and starts it the way the machine allows (no
//! systemd there: Debian's init script); `up` then ships an image to it and it serves; a second
//! init changes nothing.

mod common;

use common::lab::{Lab, Output, http_get_until, run};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BARE_IP: &str = "172.31.77.201";
/// Only this test uses the bare machine; the port is its own anyway.
const PORT: u16 = 18431;

fn hoist_m(machines: &Path, dir: &Path, args: &[&str]) -> Output {
    run(common::lab::hoist_command()
        .current_dir(dir)
        .args(["-m", machines.to_str().unwrap()])
        .args(args))
}

/// The engine's process on the machine, as the box sees it (empty when none runs).
fn dockerd_pid(lab: &Lab) -> String {
    let out = run(std::process::Command::new("docker").args([
        "exec",
        "bare",
        "sh",
        "-c",
        "cat /var/run/docker.pid 2>/dev/null || true",
    ]));
    let _ = lab;
    out.stdout.trim().to_string()
}

#[test]
fn init_turns_a_bare_machine_into_a_fleet_member() {
    let lab = Lab::get();
    let _lease = lab.shared();
    let machines: PathBuf = lab.bare();
    let dir = std::env::temp_dir().join(format!("hoist-e2e-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // sshd answers, no engine: `hoist machines` says so and what to run.
    let out = hoist_m(&machines, &dir, &["machines"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("no container engine is installed here")
            && out
                .stderr
                .contains("`hoist machines init bare` installs one"),
        "{out}"
    );

    // An OS init does not know is refused, naming the machine and the OS; nothing is run.
    // (ssh hands the remote shell one command line.)
    let fake = lab.ssh(
        "bare",
        &["mv /etc/os-release /etc/os-release.e2e && printf 'NAME=\"Alpine Linux\"\\nID=alpine\\nVERSION_ID=3.20.3\\nPRETTY_NAME=\"Alpine Linux v3.20\"\\n' >/etc/os-release"],
    );
    fake.expect_success("faking /etc/os-release");
    let out = hoist_m(&machines, &dir, &["machines", "init", "--yes"]);
    lab.ssh("bare", &["mv", "/etc/os-release.e2e", "/etc/os-release"])
        .expect_success("restoring /etc/os-release");
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(
            "hoist: bare: Alpine Linux v3.20 (alpine 3.20.3) is not supported by `hoist machines init`"
        ),
        "{out}"
    );

    // --dry-run: the exact commands, and nothing changes.
    let out = hoist_m(&machines, &dir, &["machines", "init", "--dry-run"]);
    out.expect_success("machines init --dry-run");
    for want in [
        "bare: Debian GNU/Linux 12 (bookworm), ssh user root; would run:",
        "  apt-get update -q\n",
        "--force-confold docker.io ca-certificates\n",
        "  update-rc.d docker defaults\n",
        "  /etc/init.d/docker start\n",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?}:\n{out}");
    }
    let installed = lab.ssh("bare", &["[ -e /usr/sbin/dockerd ] && echo yes || echo no"]);
    assert_eq!(
        installed.stdout.trim(),
        "no",
        "dry run installed docker: {installed}"
    );

    // Without a terminal and without --yes: a clear refusal, nothing changed.
    let out = hoist_m(&machines, &dir, &["machines", "init"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("pass --yes"), "{out}");

    // The real thing, from Debian's mirror.
    let out = hoist_m(&machines, &dir, &["machines", "init", "--yes"]);
    out.expect_success("machines init");
    for want in [
        "bare: install docker.io from Debian's packages",
        "bare: start docker with Debian's init script",
        "bare: docker 20.10.24",
        "installed and running (no systemd here: started with /etc/init.d/docker, enabled at boot with update-rc.d); hoist reaches it (API 1.41)",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?}:\n{out}");
    }
    eprintln!("first init:\n{}", out.stdout);
    let pid = dockerd_pid(lab);
    assert!(!pid.is_empty(), "no dockerd runs after init");

    // Again: nothing to do, nothing done (the same dockerd process).
    let out = hoist_m(&machines, &dir, &["machines", "init", "--yes"]);
    out.expect_success("second machines init");
    assert!(
        out.stdout
            .contains("bare: docker 20.10.24+dfsg1 already installed and running — nothing to do"),
        "{out}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
    assert_eq!(dockerd_pid(lab), pid, "the second init restarted dockerd");
    let out = hoist_m(&machines, &dir, &["machines", "init", "--dry-run"]);
    assert!(out.stdout.contains("nothing to do"), "{out}");

    // A fleet member now: `machines` reports it, `up` ships the image and it serves.
    hoist_m(&machines, &dir, &["machines"]).expect_success("machines after init");
    std::fs::write(
        dir.join("compose.yaml"),
        format!("services:\n  web:\n    image: hoist-test/app:v1\n    ports: [\"{PORT}:80\"]\n"),
    )
    .unwrap();
    let project = format!("e2einit{}", std::process::id());
    let out = hoist_m(&machines, &dir, &["-p", &project, "up", "--yes"]);
    out.expect_success("up on the initialised machine");
    let body = http_get_until(BARE_IP, PORT, "/", 200, Duration::from_secs(30));
    assert!(body.contains("version=v1 machine=bare"), "{body}");
    hoist_m(&machines, &dir, &["-p", &project, "down", "--yes"]).expect_success("down");

    non_root_user_through_sudo(lab, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh bare machine reached as `deploy`, a user with passwordless sudo: init runs every
/// command through `sudo -n`, puts deploy in the docker group, and hoist then reaches the engine
/// as deploy — with ssh masters kept between commands, as users have them, so the login kept from
/// before init (without the group) must not be reused.
fn non_root_user_through_sudo(lab: &Lab, dir: &Path) {
    lab.bare();
    // useradd leaves the password locked ("!"), which sshd refuses without PAM: "*" is none.
    lab.ssh(
        "bare",
        &["apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null \
           && useradd -m -s /bin/sh deploy && usermod -p '*' deploy \
           && echo 'deploy ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/deploy \
           && install -d -o deploy -m 700 /home/deploy/.ssh \
           && install -o deploy -m 600 /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys"],
    )
    .expect_success("making a sudo user on bare");
    let machines = dir.join("machines-deploy.yaml");
    std::fs::write(
        &machines,
        format!(
            "ssh_config: {}\nmachines:\n  bare: {{ssh: bare, user: deploy}}\n",
            lab.ssh_config().display()
        ),
    )
    .unwrap();
    let out = hoist_m(&machines, dir, &["machines", "init", "--dry-run"]);
    out.expect_success("dry run as deploy");
    for want in [
        "bare: Debian GNU/Linux 12 (bookworm), ssh user deploy (through sudo -n); would run:",
        "  sudo -n apt-get update -q\n",
        "  sudo -n /etc/init.d/docker start\n",
        "  # let deploy use docker (the docker group)\n  sudo -n usermod -aG docker deploy\n",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?}:\n{out}");
    }
    let kept = |args: &[&str]| {
        run(common::lab::hoist_command()
            .env_remove("HOIST_SSH_PERSIST")
            .current_dir(dir)
            .args(["-m", machines.to_str().unwrap()])
            .args(args))
    };
    let out = kept(&["machines", "init", "--yes"]);
    out.expect_success("machines init as deploy");
    assert!(
        out.stdout
            .contains("bare: let deploy use docker (the docker group)")
            && out.stdout.contains("installed and running"),
        "{out}"
    );
    let groups = lab.ssh("bare", &["id -Gn deploy"]);
    assert!(
        groups.stdout.split_whitespace().any(|g| g == "docker"),
        "{groups}"
    );
    let out = kept(&["machines", "--json"]);
    out.expect_success("machines as deploy after init");
    assert!(out.stdout.contains("\"reachable\": true"), "{out}");
    let out = kept(&["machines", "init", "--yes"]);
    assert!(
        out.stdout
            .contains("already installed and running — nothing to do"),
        "{out}"
    );
}
