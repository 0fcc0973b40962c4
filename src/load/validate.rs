//! What Compose refuses: unknown keys (outside `x-*`) and broken references.
//!
//! Key checks run on each file as written (so the error names that file); reference checks
//! (undefined networks/volumes/secrets/configs/services, dependency cycles, a container
//! name on a replicated service) run on the merged, normalized project.

use serde_json::{Map, Value};

type Fail = (String, String);

const TOP: &[&str] = &[
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

const SERVICE: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volume_driver",
    "volumes",
    "volumes_from",
    "working_dir",
];

const BUILD: &[&str] = &[
    "context",
    "dockerfile",
    "dockerfile_inline",
    "entitlements",
    "args",
    "ssh",
    "labels",
    "cache_from",
    "cache_to",
    "no_cache",
    "additional_contexts",
    "network",
    "provenance",
    "sbom",
    "pull",
    "target",
    "shm_size",
    "extra_hosts",
    "isolation",
    "privileged",
    "secrets",
    "tags",
    "ulimits",
    "platforms",
];

const DEPLOY: &[&str] = &[
    "mode",
    "endpoint_mode",
    "replicas",
    "labels",
    "rollback_config",
    "update_config",
    "resources",
    "restart_policy",
    "placement",
];
const UPDATE: &[&str] = &[
    "parallelism",
    "delay",
    "failure_action",
    "monitor",
    "max_failure_ratio",
    "order",
];
const RESOURCES: &[&str] = &["limits", "reservations"];
const RESOURCE: &[&str] = &["cpus", "memory", "pids", "devices", "generic_resources"];
const RESTART_POLICY: &[&str] = &["condition", "delay", "max_attempts", "window"];
const PLACEMENT: &[&str] = &["constraints", "preferences", "max_replicas_per_node"];
const HEALTHCHECK: &[&str] = &[
    "disable",
    "interval",
    "retries",
    "test",
    "timeout",
    "start_period",
    "start_interval",
];
const LOGGING: &[&str] = &["driver", "options"];
const DEPENDS_ON: &[&str] = &["condition", "restart", "required"];
const SERVICE_NETWORK: &[&str] = &[
    "aliases",
    "interface_name",
    "ipv4_address",
    "ipv6_address",
    "link_local_ips",
    "mac_address",
    "driver_opts",
    "priority",
    "gw_priority",
];
const PORT: &[&str] = &[
    "name",
    "mode",
    "host_ip",
    "target",
    "published",
    "protocol",
    "app_protocol",
];
const VOLUME_MOUNT: &[&str] = &[
    "type",
    "source",
    "target",
    "read_only",
    "consistency",
    "bind",
    "volume",
    "tmpfs",
    "image",
];
const FILE_REF: &[&str] = &["source", "target", "uid", "gid", "mode"];
const NETWORK: &[&str] = &[
    "name",
    "driver",
    "driver_opts",
    "ipam",
    "external",
    "internal",
    "enable_ipv4",
    "enable_ipv6",
    "attachable",
    "labels",
];
const VOLUME: &[&str] = &["name", "driver", "driver_opts", "external", "labels"];
const SECRET: &[&str] = &[
    "name",
    "environment",
    "file",
    "external",
    "labels",
    "driver",
    "driver_opts",
    "template_driver",
];
const CONFIG: &[&str] = &[
    "name",
    "content",
    "environment",
    "file",
    "external",
    "labels",
    "template_driver",
];

fn check_keys(path: &str, v: &Value, allowed: &[&str]) -> Result<(), Fail> {
    let Value::Object(m) = v else { return Ok(()) };
    for k in m.keys() {
        if !k.starts_with("x-") && !allowed.contains(&k.as_str()) {
            let at = if path.is_empty() { "(root)" } else { path };
            return Err((
                at.to_string(),
                format!("additional property {k:?} is not allowed"),
            ));
        }
    }
    Ok(())
}

fn each_entry(v: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    v.and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter())
}

fn each_item(v: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flat_map(|a| a.iter().enumerate())
}

/// Rejects unknown keys in one file (after interpolation).
pub fn keys(doc: &Value) -> Result<(), Fail> {
    if !doc.is_object() {
        return Err((
            String::new(),
            "top-level object must be a mapping".to_string(),
        ));
    }
    check_keys("", doc, TOP)?;
    super::x_hoist::keys(doc)?;
    for (name, svc) in each_entry(doc.get("services")) {
        let p = format!("services.{name}");
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid_name {
            return Err((
                "services".to_string(),
                format!("invalid service name {name:?}: use letters, digits, '.', '_' and '-'"),
            ));
        }
        check_keys(&p, svc, SERVICE)?;
        if let Some(b) = svc.get("build") {
            check_keys(&format!("{p}.build"), b, BUILD)?;
        }
        if let Some(d) = svc.get("deploy") {
            let dp = format!("{p}.deploy");
            check_keys(&dp, d, DEPLOY)?;
            for k in ["update_config", "rollback_config"] {
                if let Some(u) = d.get(k) {
                    check_keys(&format!("{dp}.{k}"), u, UPDATE)?;
                    if let Some(Value::String(o)) = u.get("order")
                        && !["start-first", "stop-first"].contains(&o.as_str())
                    {
                        return Err((
                            format!("{dp}.{k}.order"),
                            format!("{o:?} is not an order: write start-first or stop-first"),
                        ));
                    }
                }
            }
            if let Some(r) = d.get("resources") {
                check_keys(&format!("{dp}.resources"), r, RESOURCES)?;
                for k in ["limits", "reservations"] {
                    if let Some(x) = r.get(k) {
                        check_keys(&format!("{dp}.resources.{k}"), x, RESOURCE)?;
                    }
                }
            }
            if let Some(r) = d.get("restart_policy") {
                check_keys(&format!("{dp}.restart_policy"), r, RESTART_POLICY)?;
            }
            if let Some(r) = d.get("placement") {
                check_keys(&format!("{dp}.placement"), r, PLACEMENT)?;
            }
        }
        if let Some(h) = svc.get("healthcheck") {
            check_keys(&format!("{p}.healthcheck"), h, HEALTHCHECK)?;
        }
        if let Some(l) = svc.get("logging") {
            check_keys(&format!("{p}.logging"), l, LOGGING)?;
        }
        for (dep, d) in each_entry(svc.get("depends_on")) {
            check_keys(&format!("{p}.depends_on.{dep}"), d, DEPENDS_ON)?;
        }
        for (net, n) in each_entry(svc.get("networks")) {
            check_keys(&format!("{p}.networks.{net}"), n, SERVICE_NETWORK)?;
        }
        for (i, port) in each_item(svc.get("ports")) {
            check_keys(&format!("{p}.ports[{i}]"), port, PORT)?;
        }
        for (i, vol) in each_item(svc.get("volumes")) {
            check_keys(&format!("{p}.volumes[{i}]"), vol, VOLUME_MOUNT)?;
        }
        for k in ["secrets", "configs"] {
            for (i, r) in each_item(svc.get(k)) {
                check_keys(&format!("{p}.{k}[{i}]"), r, FILE_REF)?;
            }
        }
    }
    for (section, allowed) in [
        ("networks", NETWORK),
        ("volumes", VOLUME),
        ("secrets", SECRET),
        ("configs", CONFIG),
    ] {
        for (name, def) in each_entry(doc.get(section)) {
            check_keys(&format!("{section}.{name}"), def, allowed)?;
        }
    }
    Ok(())
}

/// Cross-reference checks on the normalized, profile-filtered project tree.
pub fn references(project: &Map<String, Value>) -> Result<(), Fail> {
    let empty = Map::new();
    let section = |k: &str| project.get(k).and_then(Value::as_object).unwrap_or(&empty);
    let services = section("services");
    for (name, svc) in services {
        let p = format!("services.{name}");
        let image = svc.get("image").and_then(Value::as_str).unwrap_or_default();
        if image.is_empty() && svc.get("build").is_none() {
            return Err((
                p,
                format!("service {name:?} has neither an image nor a build context specified"),
            ));
        }
        for (dep, d) in each_entry(svc.get("depends_on")) {
            let required = d.get("required").and_then(Value::as_bool).unwrap_or(true);
            if required && !services.contains_key(dep) {
                return Err((
                    format!("{p}.depends_on"),
                    format!("service {name:?} depends on undefined service {dep:?}"),
                ));
            }
        }
        for (net, _) in each_entry(svc.get("networks")) {
            if net != "default" && !section("networks").contains_key(net) {
                return Err((
                    format!("{p}.networks"),
                    format!("service {name:?} refers to undefined network {net}"),
                ));
            }
        }
        for (i, m) in each_item(svc.get("volumes")) {
            if m.get("type").and_then(Value::as_str) == Some("volume")
                && let Some(src) = m.get("source").and_then(Value::as_str)
                && !section("volumes").contains_key(src)
            {
                return Err((
                    format!("{p}.volumes[{i}]"),
                    format!("service {name:?} refers to undefined volume {src}"),
                ));
            }
        }
        for kind in ["secrets", "configs"] {
            let single = &kind[..kind.len() - 1];
            for (i, r) in each_item(svc.get(kind)) {
                let src = r.get("source").and_then(Value::as_str).unwrap_or_default();
                if !section(kind).contains_key(src) {
                    return Err((
                        format!("{p}.{kind}[{i}]"),
                        format!("service {name:?} refers to undefined {single} {src}"),
                    ));
                }
            }
        }
        let replicas = svc
            .get("deploy")
            .and_then(|d| d.get("replicas"))
            .and_then(Value::as_i64)
            .or_else(|| svc.get("scale").and_then(Value::as_i64));
        if let Some(r) = replicas.filter(|r| *r > 1)
            && svc.get("container_name").is_some()
        {
            return Err((
                format!("{p}.container_name"),
                format!(
                    "can't set container_name with {r} replicas: container names must be unique"
                ),
            ));
        }
    }
    dependency_cycles(services)
}

fn dependency_cycles(services: &Map<String, Value>) -> Result<(), Fail> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: std::collections::HashMap<&str, Mark> = std::collections::HashMap::new();
    fn visit<'a>(
        name: &'a str,
        services: &'a Map<String, Value>,
        marks: &mut std::collections::HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Result<(), Fail> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|s| *s == name).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[start..].to_vec();
                cycle.push(name);
                return Err((
                    format!("services.{name}.depends_on"),
                    format!("dependency cycle detected: {}", cycle.join(" -> ")),
                ));
            }
            None => {}
        }
        marks.insert(name, Mark::Visiting);
        stack.push(name);
        if let Some(svc) = services.get(name) {
            for (dep, _) in each_entry(svc.get("depends_on")) {
                if services.contains_key(dep) {
                    visit(dep, services, marks, stack)?;
                }
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
        Ok(())
    }
    for name in services.keys() {
        visit(name, services, &mut marks, &mut Vec::new())?;
    }
    Ok(())
}
