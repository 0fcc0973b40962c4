//! Bad input, table-driven (issue 17): malformed compose files, machines files, `.env` files,
//! CLI values and environment variables, each run through the hoist binary. Every case asserts
//! that hoist does not panic, exits with the expected code, and says where the problem is: the
//! file and the key (and the machine, for a machines file) or the option.
//!
//! None of these reaches a machine: each is refused while loading, before hoist connects to
//! anything or takes a lock (`up` included), so the suite needs no lab.

use std::path::Path;
use std::process::Command;

/// One malformed input.
struct Case {
    name: String,
    /// Files written into a fresh folder: (name, text).
    files: Vec<(&'static str, String)>,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    code: i32,
    /// Each must appear in stderr.
    want: Vec<String>,
    /// None may appear in stderr (a secret that must not be echoed).
    not: Vec<String>,
}

const GOOD_WEB: &str = "services:\n  web:\n    image: app\n    ports: ['80']\n";

fn compose_case(name: &str, compose: String, want: &[&str]) -> Case {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.push("compose.yaml".into());
    Case {
        name: format!("compose: {name}"),
        files: vec![("compose.yaml", compose)],
        args: ["-f", "compose.yaml", "config", "-q"]
            .map(String::from)
            .to_vec(),
        env: vec![],
        code: 1,
        want,
        not: vec![],
    }
}

/// A service `web` publishing port 80 with `x-hoist: {ingress: ROUTE}`.
fn route(route: &str) -> String {
    format!(
        "name: p\nservices:\n  web:\n    image: app\n    ports: ['80']\n    x-hoist:\n      ingress: {route}\n"
    )
}

/// `x-hoist: {ingress: TOP}` with one service publishing port 80.
fn top(ingress: &str) -> String {
    format!("name: p\nx-hoist:\n  ingress: {ingress}\n{GOOD_WEB}")
}

fn machines_case(name: &str, machines_yaml: String, want: &[&str]) -> Case {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.push("hoist.yaml: ".into());
    Case {
        name: format!("machines: {name}"),
        files: vec![
            ("hoist.yaml", machines_yaml),
            ("compose.yaml", GOOD_WEB.into()),
        ],
        args: ["-m", "hoist.yaml", "machines"].map(String::from).to_vec(),
        env: vec![],
        code: 1,
        want,
        not: vec![],
    }
}

/// A machines file with one machine `m1` given as the YAML flow mapping `body`.
fn m1(body: &str) -> String {
    format!("machines:\n  m1: {body}\n")
}

fn cli_case(name: &str, args: &[&str], code: i32, want: &[&str]) -> Case {
    Case {
        name: format!("cli: {name}"),
        files: vec![
            ("compose.yaml", GOOD_WEB.into()),
            ("hoist.yaml", "machines:\n  here: {local: true}\n".into()),
        ],
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        code,
        want: want.iter().map(|s| s.to_string()).collect(),
        not: vec![],
    }
}

/// Characters and sequences that would end a token, a line or a block, or expand something,
/// in a Caddyfile, haproxy.cfg or a shell.
const HOSTILE: [(&str, &str); 14] = [
    ("newline", "a\\nb"),
    ("tab", "a\\tb"),
    ("space", "a b"),
    ("open brace", "a{"),
    ("close brace", "a}"),
    ("hash", "a#b"),
    ("double quote", "a\\\"b"),
    ("single quote", "a'b"),
    ("backslash", "a\\\\b"),
    ("dollar", "a$b"),
    ("backtick", "a`b"),
    ("semicolon", "a;b"),
    ("placeholder", "{env.HOME}"),
    (
        "global block",
        "a {\\n}\\n{\\n\\tadmin 0.0.0.0:2019\\n}\\nb",
    ),
];

const BAD_DURATIONS: [&str; 10] = [
    "1e30",
    "18446744073709551615",
    "99999999999999999999h",
    "8761h",
    "-5s",
    "inf",
    "NaN",
    "3x",
    "",
    "1..2s",
];

fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // Ingress route values (finding 2) and durations (finding 6).
    for (what, bad) in HOSTILE {
        // `$$` is a literal `$` after Compose's interpolation.
        let bad = bad.replace('$', "$$");
        out.push(compose_case(
            &format!("route host with a {what}"),
            route(&format!("{{hosts: [\"{bad}\"]}}")),
            &["services.web.x-hoist.ingress.hosts[0]"],
        ));
        out.push(compose_case(
            &format!("route path with a {what}"),
            route(&format!("{{paths: [\"/{bad}\"]}}")),
            &["services.web.x-hoist.ingress.paths[0]"],
        ));
        out.push(compose_case(
            &format!("health path with a {what}"),
            route(&format!("{{health: {{path: \"/{bad}\"}}}}")),
            &["services.web.x-hoist.ingress.health.path"],
        ));
        out.push(compose_case(
            &format!("email with a {what}"),
            top(&format!("{{email: \"ops@{bad}.example\"}}")),
            &["x-hoist.ingress.email"],
        ));
    }
    for bad in [
        "",
        "-a.example",
        "a-.example",
        "a..example",
        "*.*.example",
        "a/b",
        "a:80",
        "é.example",
    ] {
        out.push(compose_case(
            &format!("route host {bad:?}"),
            route(&format!("{{hosts: [\"{bad}\"]}}")),
            &["services.web.x-hoist.ingress.hosts[0]"],
        ));
    }
    out.push(compose_case(
        "second route host bad",
        route("{hosts: [ok.example, \"x y\"]}"),
        &["services.web.x-hoist.ingress.hosts[1]"],
    ));
    for bad in ["api", "", "/a*", "/a?b", "/%zz", "/%4"] {
        out.push(compose_case(
            &format!("route path {bad:?}"),
            route(&format!("{{paths: [\"{bad}\"]}}")),
            &["services.web.x-hoist.ingress.paths[0]"],
        ));
    }
    for bad in ["ops", "@example.com", "ops@", "a b@example.com"] {
        out.push(compose_case(
            &format!("email {bad:?}"),
            top(&format!("{{email: \"{bad}\"}}")),
            &["x-hoist.ingress.email"],
        ));
    }
    for bad in BAD_DURATIONS {
        for key in ["interval", "timeout"] {
            out.push(compose_case(
                &format!("health {key} {bad:?}"),
                route(&format!("{{health: {{{key}: \"{bad}\"}}}}")),
                &[&format!("services.web.x-hoist.ingress.health.{key}")],
            ));
        }
        out.push(compose_case(
            &format!("drain {bad:?}"),
            top(&format!("{{drain: \"{bad}\"}}")),
            &["x-hoist.ingress.drain"],
        ));
    }
    for bad in ["abc", "70000", "-1", "[80]", "80x"] {
        out.push(compose_case(
            &format!("route port {bad}"),
            route(&format!("{{port: {bad}}}")),
            &["services.web.x-hoist.ingress", "port"],
        ));
        out.push(compose_case(
            &format!("http_port {bad}"),
            top(&format!("{{http_port: {bad}}}")),
            &["x-hoist.ingress", "port"],
        ));
    }
    out.push(compose_case(
        "tls maybe",
        top("{tls: maybe}"),
        &["x-hoist.ingress.tls"],
    ));
    out.push(compose_case(
        "unknown top-level ingress key",
        top("{colour: red}"),
        &["x-hoist.ingress", "colour"],
    ));
    out.push(compose_case(
        "unknown route key",
        route("{hostz: [a.example]}"),
        &["services.web.x-hoist.ingress", "hostz"],
    ));
    out.push(compose_case(
        "route port not published",
        route("{port: 81}"),
        &["services.web.x-hoist.ingress.port"],
    ));

    // Autoscale and mesh values that only `watch` or `plan` read (checked at load now).
    let autoscale = |policy: &str| {
        format!(
            "name: p\nservices:\n  web:\n    image: app\n    x-hoist:\n      autoscale: {policy}\n"
        )
    };
    for (what, policy) in [
        ("min above max", "{min: 5, max: 2}"),
        ("max 0", "{max: 0}"),
        ("no max", "{min: 1}"),
        ("cpu below zero", "{max: 3, cpu: -1}"),
        ("cooldown 1e30 as text", "{max: 3, cooldown: '1e30'}"),
        ("cooldown 1e30 as a number", "{max: 3, cooldown: 1e30}"),
        ("cooldown -5s", "{max: 3, cooldown: '-5s'}"),
        ("unknown key", "{max: 3, colour: red}"),
        ("not a mapping", "[1, 2]"),
    ] {
        out.push(compose_case(
            &format!("autoscale {what}"),
            autoscale(policy),
            &["services.web.x-hoist.autoscale"],
        ));
    }
    out.push(compose_case(
        "autoscale on a global service",
        "name: p\nservices:\n  web:\n    image: app\n    deploy: {mode: global}\n    x-hoist:\n      autoscale: {max: 3}\n".into(),
        &["services.web.x-hoist.autoscale"],
    ));
    out.push(compose_case(
        "mesh maybe",
        "name: p\nx-hoist: {mesh: {}}\nservices:\n  web: {image: app, x-hoist: {mesh: maybe}}\n"
            .into(),
        &["services.web.x-hoist.mesh"],
    ));
    out.push(compose_case(
        "mesh encrypt not a boolean",
        "name: p\nx-hoist: {mesh: {encrypt: sometimes}}\nservices:\n  web: {image: app, expose: ['80']}\n"
            .into(),
        &["x-hoist.mesh.encrypt", "true or false"],
    ));
    out.push(compose_case(
        "mesh unknown key",
        "name: p\nx-hoist: {mesh: {colour: red}}\nservices:\n  web: {image: app}\n".into(),
        &["x-hoist.mesh", "colour"],
    ));

    // Compose values that were accepted and should not be (issue 17's list).
    let service = |body: &str| format!("services:\n  web:\n    image: app\n{body}");
    for (what, body, key) in [
        (
            "healthcheck interval -5s",
            "    healthcheck: {test: [CMD, x], interval: -5s}\n",
            "services.web.healthcheck.interval",
        ),
        (
            "healthcheck timeout -1s",
            "    healthcheck: {test: [CMD, x], timeout: -1s}\n",
            "services.web.healthcheck.timeout",
        ),
        (
            "healthcheck start_period -1m",
            "    healthcheck: {test: [CMD, x], start_period: -1m}\n",
            "services.web.healthcheck.start_period",
        ),
        (
            "stop_grace_period -5s",
            "    stop_grace_period: -5s\n",
            "services.web.stop_grace_period",
        ),
        (
            "update_config delay -5s",
            "    deploy: {update_config: {delay: -5s}}\n",
            "services.web.deploy.update_config.delay",
        ),
        (
            "restart_policy window -5s",
            "    deploy: {restart_policy: {window: -5s}}\n",
            "services.web.deploy.restart_policy.window",
        ),
        (
            "port protocol xyz",
            "    ports: [{target: 80, protocol: xyz}]\n",
            "services.web.ports[0].protocol",
        ),
        (
            "short port protocol xyz",
            "    ports: ['80/xyz']\n",
            "services.web.ports[0]",
        ),
        (
            "restart sometimes",
            "    restart: sometimes\n",
            "services.web.restart",
        ),
        (
            "restart on-failure:x",
            "    restart: on-failure:x\n",
            "services.web.restart",
        ),
        (
            "tmpfs size -5",
            "    volumes: [{type: tmpfs, target: /x, tmpfs: {size: -5}}]\n",
            "services.web.volumes[0].tmpfs.size",
        ),
    ] {
        out.push(compose_case(what, service(body), &[key]));
    }

    out.push(compose_case(
        "a file that includes itself",
        "include: [compose.yaml]\nservices:\n  a: {image: x}\n".into(),
        &["include: more than 16 nested includes"],
    ));
    out.push(compose_case(
        "extends cycle",
        "services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n".into(),
        &["services.", ".extends: circular reference"],
    ));

    // Machines file values (findings 1, 3, 12 and the list of accepted inputs).
    for (what, bad) in HOSTILE {
        out.push(machines_case(
            &format!("docker_socket with a {what}"),
            m1(&format!("{{ssh: a, docker_socket: \"/run/{bad}.sock\"}}")),
            &["machines.m1.docker_socket"],
        ));
        out.push(machines_case(
            &format!("address with a {what}"),
            m1(&format!("{{ssh: a, address: \"10.0.0.1{bad}\"}}")),
            &["machines.m1.address"],
        ));
    }
    for (what, bad) in [
        (
            "a quote that ran a command",
            "/tmp/x'; touch /tmp/hoist-pwned; '",
        ),
        ("empty", ""),
        ("relative", "docker.sock"),
        (
            "too long",
            "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
        ),
        ("command substitution", "/run/$(id).sock"),
    ] {
        out.push(machines_case(
            &format!("docker_socket {what}"),
            m1(&format!("{{ssh: a, docker_socket: \"{bad}\"}}")),
            &["machines.m1.docker_socket"],
        ));
    }
    out.push(machines_case(
        "docker_socket of a local machine",
        m1("{local: true, docker_socket: 'run/docker.sock'}"),
        &["machines.m1.docker_socket"],
    ));
    for bad in ["10.0.0.1:80", "[::1", "-x", "a..b", ""] {
        out.push(machines_case(
            &format!("address {bad:?}"),
            m1(&format!("{{ssh: a, address: \"{bad}\"}}")),
            &["machines.m1.address"],
        ));
    }
    for (what, bad) in [
        (
            "url with a dash host",
            "ssh://u@-oProxyCommand=touch /tmp/p",
        ),
        ("url with a dash host, no space", "ssh://u@-oProxyCommand=x"),
        ("dash host after user", "u@-oProxyCommand=x"),
        ("leading dash", "-oProxyCommand=x"),
        ("url with a dash user", "ssh://-u@host"),
        ("url with a dash v6 host", "ssh://u@[-x]:22"),
        ("bracketed dash host", "root@[-61.0.0.1:2222"),
        ("url with port 0", "ssh://root@host:0"),
        ("url with port 70000", "ssh://root@host:70000"),
        ("space", "root@a b"),
        ("newline", "root@a\\nb"),
        ("empty", ""),
        ("only spaces", "   "),
        ("empty user", "@host"),
        ("empty host", "root@"),
    ] {
        out.push(machines_case(
            &format!("ssh {what}"),
            m1(&format!("{{ssh: \"{bad}\"}}")),
            &["machines.m1.ssh"],
        ));
    }
    for bad in ["-oProxyCommand=x", "a b", "", "root;id"] {
        out.push(machines_case(
            &format!("user {bad:?}"),
            m1(&format!("{{ssh: a, user: \"{bad}\"}}")),
            &["machines.m1.user"],
        ));
    }
    for (what, body, key) in [
        ("port 0", "{ssh: a, port: 0}", "machines.m1.port"),
        ("port abc", "{ssh: a, port: abc}", "machines.m1.port"),
        ("port 70000", "{ssh: a, port: 70000}", "machines.m1.port"),
        ("port -1", "{ssh: a, port: -1}", "machines.m1.port"),
        ("local and ssh", "{ssh: a, local: true}", "machines.m1"),
        (
            "local with a port",
            "{local: true, port: 22}",
            "machines.m1",
        ),
        ("no ssh", "{user: root}", "machines.m1: missing `ssh`"),
        (
            "unknown key",
            "{ssh: a, prot: 22}",
            "machines.m1: unknown field `prot`",
        ),
        (
            "label list",
            "{ssh: a, labels: {zone: [a]}}",
            "machines.m1.labels.zone",
        ),
        (
            "label map",
            "{ssh: a, labels: {zone: {a: b}}}",
            "machines.m1.labels.zone",
        ),
        ("local not a bool", "{local: maybe}", "machines.m1.local"),
    ] {
        out.push(machines_case(what, m1(body), &[key]));
    }
    out.push(machines_case(
        "two local machines",
        "machines:\n  a: {local: true}\n  b: {local: true}\n".into(),
        &["machines.b.local", "a is already the local engine"],
    ));
    for bad in ["-m1", "m 1", "m/1", "m$1"] {
        out.push(machines_case(
            &format!("machine name {bad:?}"),
            format!("machines:\n  \"{bad}\": {{ssh: a}}\n"),
            &["invalid machine name"],
        ));
    }
    out.push(machines_case(
        "duplicate machine",
        "machines:\n  m1: {ssh: a}\n  m1: {ssh: b}\n".into(),
        &["duplicate"],
    ));
    out.push(machines_case(
        "no machines",
        "machines: {}\n".into(),
        &["machines: no machines listed"],
    ));
    out.push(machines_case(
        "missing ssh_config",
        "ssh_config: nope\nmachines:\n  m1: {ssh: a}\n".into(),
        &["ssh_config: ", "does not exist"],
    ));
    out.push(machines_case(
        "unknown top-level key",
        "machine:\n  m1: {ssh: a}\n".into(),
        &["unknown field `machine`"],
    ));
    out.push(machines_case(
        "mesh unknown key",
        "mesh: {colour: red}\nmachines:\n  m1: {ssh: a}\n".into(),
        &["mesh", "colour"],
    ));
    out.push(machines_case("not YAML", "machines: [\n".into(), &[]));

    // Command-line values (finding 6): clap refuses them, naming the option (exit 2).
    for bad in ["1e30", "18446744073709551615", "-5s", "abc", "inf", "8761h"] {
        out.push(cli_case(
            &format!("--timeout {bad}"),
            &["-m", "hoist.yaml", &format!("--timeout={bad}"), "machines"],
            2,
            &["--timeout"],
        ));
    }
    for bad in ["1e30", "18446744073709551615", "NaN"] {
        out.push(cli_case(
            &format!("up --lock-wait {bad}"),
            &[
                "-m",
                "hoist.yaml",
                "up",
                "--yes",
                &format!("--lock-wait={bad}"),
            ],
            2,
            &["--lock-wait"],
        ));
        out.push(cli_case(
            &format!("rollback --timeout {bad}"),
            &["-m", "hoist.yaml", "rollback", &format!("--timeout={bad}")],
            2,
            &["--timeout"],
        ));
        out.push(cli_case(
            &format!("down --lock-wait {bad}"),
            &["-m", "hoist.yaml", "down", &format!("--lock-wait={bad}")],
            2,
            &["--lock-wait"],
        ));
    }
    for bad in ["a b", "Shop", "-x", "a\nb", "x;y", ""] {
        out.push(cli_case(
            &format!("unlock -p {bad:?}"),
            &[
                "-m",
                "hoist.yaml",
                &format!("--project-name={bad}"),
                "unlock",
                "--yes",
            ],
            1,
            &["-p ", "a project name is"],
        ));
    }
    for bad in ["1e30", "18446744073709551615", "-1s", "soon"] {
        let mut c = cli_case(
            &format!("HOIST_SSH_PERSIST={bad}"),
            &["-m", "hoist.yaml", "machines"],
            1,
            &["HOIST_SSH_PERSIST"],
        );
        c.env.push(("HOIST_SSH_PERSIST", bad.to_string()));
        out.push(c);
    }
    // `up` refuses a bad compose file before it connects or locks (finding 6).
    for (what, compose, key) in [
        (
            "health interval 1e30",
            route("{health: {interval: '1e30'}}"),
            "services.web.x-hoist.ingress.health.interval",
        ),
        (
            "host with a newline",
            route("{hosts: [\"a\\nb\"]}"),
            "services.web.x-hoist.ingress.hosts[0]",
        ),
        (
            "autoscale min above max",
            "name: p\nservices:\n  web: {image: app, x-hoist: {autoscale: {min: 5, max: 2}}}\n"
                .to_string(),
            "services.web.x-hoist.autoscale",
        ),
    ] {
        let mut c = cli_case(
            &format!("up with {what}"),
            &["-m", "hoist.yaml", "-f", "compose.yaml", "up", "--yes"],
            1,
            &[key, "compose.yaml"],
        );
        c.files[0].1 = compose.clone();
        out.push(c);
        let mut c = cli_case(
            &format!("plan with {what}"),
            &["-m", "hoist.yaml", "-f", "compose.yaml", "plan"],
            1,
            &[key, "compose.yaml"],
        );
        c.files[0].1 = compose;
        out.push(c);
    }

    // Standard Compose that `config` accepts (as docker compose does) and `plan` would refuse:
    // refused by `plan` and `up` before they connect, naming the file.
    for (what, deploy, key) in [
        (
            "constraint without ==",
            "{placement: {constraints: ['node.foo = x']}}",
            "services.web.deploy.placement.constraints[0]",
        ),
        (
            "spread on nothing",
            "{placement: {preferences: [{spread: node.nope}]}}",
            "services.web.deploy.placement.preferences[0].spread",
        ),
        (
            "update order sideways",
            "{update_config: {order: sideways}}",
            "services.web.deploy.update_config.order",
        ),
        (
            "failure_action explode",
            "{update_config: {failure_action: explode}}",
            "services.web.deploy.update_config.failure_action",
        ),
        (
            "mode everywhere",
            "{mode: everywhere}",
            "services.web.deploy.mode",
        ),
    ] {
        let compose = format!("name: p\nservices:\n  web:\n    image: app\n    deploy: {deploy}\n");
        for verb in [vec!["plan"], vec!["up", "--yes"]] {
            let mut args = vec!["-m", "hoist.yaml", "-f", "compose.yaml"];
            args.extend(verb.iter().copied());
            let mut c = cli_case(
                &format!("{} with {what}", verb[0]),
                &args,
                1,
                &[key, "compose.yaml: "],
            );
            c.files[0].1 = compose.clone();
            out.push(c);
        }
    }

    // The machines file's `engine:` (Docker or Podman) says the machine and the values known.
    for (what, bad) in [
        ("a made-up engine", "rocket"),
        ("a list", "[1]"),
        ("nothing", "\"\""),
    ] {
        out.push(machines_case(
            &format!("engine: {what}"),
            m1(&format!("{{ssh: x, engine: {bad}}}")),
            &["machines.m1.engine", "engine: podman"],
        ));
    }

    // `x-hoist.backup` (docs/volumes.md): the key, and what is expected there.
    for (what, bad, want) in [
        (
            "a number for command",
            "{command: 5}",
            "command: expected a non-empty string or list",
        ),
        (
            "an empty command",
            "{command: []}",
            "command: expected a non-empty string or list",
        ),
        ("an unknown key", "{nope: 1}", "unknown key \"nope\""),
        ("a string", "\"x\"", "expected a mapping"),
        (
            "a timeout that is no duration",
            "{command: [sync], timeout: forever}",
            "is not a duration",
        ),
    ] {
        out.push(compose_case(
            &format!("backup with {what}"),
            format!(
                "name: p\nservices:\n  db:\n    image: app\n    volumes: [d:/d]\n    x-hoist:\n      backup: {bad}\nvolumes: {{d: {{}}}}\n"
            ),
            &["services.db.x-hoist.backup", want],
        ));
    }

    // A malformed `.env` line (finding 13): the file and line, never the value.
    for line in [
        "DB_PASSWORD hunter2",
        "DB_PASSWORD hunter2=x",
        "export DB_PASSWORD hunter2",
    ] {
        out.push(Case {
            name: format!(".env line {line:?}"),
            files: vec![
                ("compose.yaml", GOOD_WEB.into()),
                (".env", format!("A=1\n{line}\n")),
            ],
            args: ["-f", "compose.yaml", "config", "-q"]
                .map(String::from)
                .to_vec(),
            env: vec![],
            code: 1,
            want: vec![".env".into(), "line 2".into(), "DB_PASSWORD".into()],
            not: vec!["hunter2".into()],
        });
    }
    out
}

fn run(case: &Case, dir: &Path) -> (Option<i32>, String) {
    for (name, text) in &case.files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoist"));
    cmd.current_dir(dir)
        .args(&case.args)
        .env("NO_COLOR", "1")
        .env("HOIST_SSH_PERSIST", "0")
        .env_remove("HOIST_MACHINES")
        .stdin(std::process::Stdio::null());
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_inputs_fail_cleanly_and_say_where() {
    let cases = cases();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    eprintln!("{} bad-input cases", cases.len());
    let root = std::env::temp_dir().join(format!("hoist-bad-input-{}", std::process::id()));
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = root.join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let (code, stderr) = run(case, &dir);
        let mut wrong = Vec::new();
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            wrong.push("panicked".to_string());
        }
        if code != Some(case.code) {
            wrong.push(format!("exit {code:?}, wanted {}", case.code));
        }
        for w in &case.want {
            if !stderr.contains(w.as_str()) {
                wrong.push(format!("no {w:?}"));
            }
        }
        for n in &case.not {
            if stderr.contains(n.as_str()) {
                wrong.push(format!("echoed {n:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n    {}",
                case.name,
                wrong.join(", "),
                stderr.trim().replace('\n', "\n    ")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
