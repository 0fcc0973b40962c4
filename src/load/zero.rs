//! Drops the zero values the reference never prints.
//!
//! compose-go decodes the project into Go structs whose scalar fields are `omitempty`, so
//! `platform: ${PLATFORM:-}`, `user: ""`, `cpu_shares: 0` or `privileged: false` vanish
//! from `docker compose config` — and from what docker compose then runs: an empty value is
//! the same as no value. hoist keeps the normalized tree untyped until the very end, so this
//! step removes them there, field by field as compose-go's types declare them. It runs
//! after the project-level defaults, which (like the reference's) look at which keys are
//! present: `network_mode: ""` still keeps a service off the default network, and a
//! resource with `name: ""` gets no default name.
//!
//! Pointer fields (`init`, `scale`, `stop_grace_period`, `deploy.replicas`, secret `mode`,
//! ...) keep their zero: `init: false` means something.

use serde_json::{Map, Value};

/// Struct paths (`*` = every entry of a map, `[]` = every item of a list) and the fields
/// there that are omitted when "", 0 or false.
const SCALARS: &[(&str, &[&str])] = &[
    (
        "services.*",
        &[
            "cgroup",
            "cgroup_parent",
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
            "dockerfile",
            "domainname",
            "hostname",
            "image",
            "ipc",
            "isolation",
            "log_driver",
            "mac_address",
            "net",
            "network_mode",
            "oom_kill_disable",
            "oom_score_adj",
            "pid",
            "pids_limit",
            "platform",
            "privileged",
            "pull_policy",
            "read_only",
            "restart",
            "runtime",
            "stdin_open",
            "stop_signal",
            "tty",
            "use_api_socket",
            "user",
            "userns_mode",
            "uts",
            "volume_driver",
            "working_dir",
        ],
    ),
    (
        "services.*.build",
        &[
            "context",
            "dockerfile",
            "dockerfile_inline",
            "isolation",
            "network",
            "no_cache",
            "privileged",
            "provenance",
            "pull",
            "sbom",
            "target",
        ],
    ),
    (
        "services.*.credential_spec",
        &["config", "file", "registry"],
    ),
    ("services.*.depends_on.*", &["condition", "restart"]),
    ("services.*.deploy", &["endpoint_mode", "mode"]),
    ("services.*.deploy.placement", &["max_replicas_per_node"]),
    ("services.*.deploy.placement.preferences[]", &["spread"]),
    ("services.*.deploy.resources.limits", &["cpus", "pids"]),
    (
        "services.*.deploy.resources.reservations",
        &["cpus", "pids"],
    ),
    ("services.*.deploy.restart_policy", &["condition"]),
    (
        "services.*.deploy.update_config",
        &["failure_action", "max_failure_ratio", "order"],
    ),
    (
        "services.*.deploy.rollback_config",
        &["failure_action", "max_failure_ratio", "order"],
    ),
    ("services.*.devices[]", &["permissions", "source", "target"]),
    ("services.*.healthcheck", &["disable"]),
    ("services.*.logging", &["driver"]),
    (
        "services.*.networks.*",
        &[
            "gw_priority",
            "interface_name",
            "ipv4_address",
            "ipv6_address",
            "mac_address",
            "priority",
        ],
    ),
    (
        "services.*.ports[]",
        &[
            "app_protocol",
            "host_ip",
            "mode",
            "name",
            "protocol",
            "published",
            "target",
        ],
    ),
    ("services.*.secrets[]", &["gid", "source", "target", "uid"]),
    ("services.*.configs[]", &["gid", "source", "target", "uid"]),
    (
        "services.*.volumes[]",
        &["consistency", "read_only", "source", "target", "type"],
    ),
    (
        "services.*.volumes[].bind",
        &["propagation", "recursive", "selinux"],
    ),
    ("services.*.volumes[].volume", &["nocopy", "subpath"]),
    ("services.*.volumes[].image", &["subpath"]),
    ("services.*.volumes[].tmpfs", &["mode"]),
    (
        "services.*.post_start[]",
        &["image", "per_replica", "privileged", "user", "working_dir"],
    ),
    (
        "services.*.pre_stop[]",
        &["image", "per_replica", "privileged", "user", "working_dir"],
    ),
    ("services.*.develop.watch[]", &["initial_sync", "target"]),
    (
        "networks.*",
        &["attachable", "driver", "external", "internal", "name"],
    ),
    ("networks.*.ipam", &["driver"]),
    (
        "networks.*.ipam.config[]",
        &["gateway", "ip_range", "subnet"],
    ),
    ("volumes.*", &["driver", "external", "name"]),
    (
        "secrets.*",
        &[
            "content",
            "driver",
            "environment",
            "external",
            "file",
            "name",
            "template_driver",
        ],
    ),
    (
        "configs.*",
        &[
            "content",
            "driver",
            "environment",
            "external",
            "file",
            "name",
            "template_driver",
        ],
    ),
];

/// Byte sizes and durations, which the normalized tree holds in their printed form:
/// omitted when they amount to zero ("0", "0s").
const UNITS: &[(&str, &[&str])] = &[
    (
        "services.*",
        &[
            "mem_limit",
            "mem_reservation",
            "mem_swappiness",
            "memswap_limit",
            "shm_size",
        ],
    ),
    ("services.*.build", &["shm_size"]),
    ("services.*.deploy.resources.limits", &["memory"]),
    ("services.*.deploy.resources.reservations", &["memory"]),
    ("services.*.deploy.update_config", &["delay", "monitor"]),
    ("services.*.deploy.rollback_config", &["delay", "monitor"]),
    ("services.*.volumes[].tmpfs", &["size"]),
];

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn is_zero_unit(v: &Value) -> bool {
    is_zero(v) || matches!(v.as_str(), Some("0" | "0s"))
}

/// Removes the zero-valued fields of `SCALARS` and `UNITS` from a normalized project tree.
pub fn drop_zero_values(tree: &mut Map<String, Value>) {
    for (pattern, keys) in SCALARS {
        for_each_at(tree, pattern, &mut |m| {
            m.retain(|k, v| !(keys.contains(&k.as_str()) && is_zero(v)))
        });
    }
    for (pattern, keys) in UNITS {
        for_each_at(tree, pattern, &mut |m| {
            m.retain(|k, v| !(keys.contains(&k.as_str()) && is_zero_unit(v)))
        });
    }
}

/// Calls `f` on every mapping the pattern reaches.
fn for_each_at(
    tree: &mut Map<String, Value>,
    pattern: &str,
    f: &mut dyn FnMut(&mut Map<String, Value>),
) {
    let steps: Vec<&str> = pattern.split('.').collect();
    walk(tree, &steps, f);
}

fn walk(m: &mut Map<String, Value>, steps: &[&str], f: &mut dyn FnMut(&mut Map<String, Value>)) {
    let Some((step, rest)) = steps.split_first() else {
        f(m);
        return;
    };
    let (key, items) = match step.strip_suffix("[]") {
        Some(k) => (k, true),
        None => (*step, false),
    };
    let children: Vec<&mut Value> = if key == "*" {
        m.values_mut().collect()
    } else {
        m.get_mut(key).into_iter().collect()
    };
    for child in children {
        let targets: Vec<&mut Value> = match (items, child) {
            (true, Value::Array(list)) => list.iter_mut().collect(),
            (true, _) => Vec::new(),
            (false, c) => vec![c],
        };
        for t in targets {
            if let Value::Object(inner) = t {
                walk(inner, rest, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_only_zero_struct_fields() {
        let mut tree = json!({
            "services": {"web": {
                "image": "nginx", "platform": "", "user": "0", "cpu_shares": 0, "init": false,
                "privileged": false, "mem_limit": "0", "scale": 0,
                "environment": {"EMPTY": ""},
                "ports": [{"target": 80, "host_ip": "", "published": "0"}],
                "volumes": [{"type": "volume", "source": "", "target": "/x", "bind": {"selinux": ""}}],
                "deploy": {"mode": "", "update_config": {"delay": "0s", "monitor": "5s"}}
            }},
            "secrets": {"s": {"name": "", "file": "/s"}}
        });
        drop_zero_values(tree.as_object_mut().unwrap());
        assert_eq!(
            tree,
            json!({
                "services": {"web": {
                    "image": "nginx", "user": "0", "init": false, "scale": 0,
                    "environment": {"EMPTY": ""},
                    "ports": [{"target": 80, "published": "0"}],
                    "volumes": [{"type": "volume", "target": "/x", "bind": {}}],
                    "deploy": {"update_config": {"monitor": "5s"}}
                }},
                "secrets": {"s": {"file": "/s"}}
            })
        );
    }
}
