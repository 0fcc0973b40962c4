//! Short syntax → long syntax, and compose-go's defaults, on the merged tree.
//!
//! After this stage every key has the one shape `docker compose config --format json`
//! prints (ports one entry per port, volumes as mount objects, durations as Go strings,
//! byte sizes as decimal strings, ...), so the typed model deserializes without guessing.
//! Type errors found here carry the key path.

mod deploy;
mod mounts;
mod ports;
mod shellwords;
mod values;

use deploy::*;
use mounts::*;
use ports::*;
use values::*;

pub use mounts::split_volume_spec;

/// A host path resolved as compose-go does (see `values::abs_path`).
pub fn host_path(dir: &Path, p: &str) -> String {
    abs_path(dir, p)
}

/// A build context: remote ones (`https://`, `git@`, `docker-image://`, ...) as written.
pub fn context_path(dir: &Path, c: &str) -> String {
    if is_remote_context(c) || c.starts_with("service:") {
        c.to_string()
    } else {
        abs_path(dir, c)
    }
}

/// A short-syntax volume as a mount object (compose-go's `ParseVolume`).
pub fn short_volume_spec(ctx: &Ctx, path: &str, spec: &str) -> Result<Value, Fail> {
    short_volume(ctx, path, spec)
}

/// Adds the `depends_on` entries `links`, `service:` namespaces and `volumes_from` imply.
pub fn add_implicit_dependencies(svc: &mut Map<String, Value>) {
    implicit_dependencies(svc)
}
pub use ports::short_port;
pub use values::{clean, string};

use serde_json::{Map, Value, json};
use std::path::Path;

/// A type or syntax error at a key path.
pub type Fail = (String, String);
type R<T> = Result<T, Fail>;

fn fail<T>(path: &str, msg: impl Into<String>) -> R<T> {
    Err((path.to_string(), msg.into()))
}

/// What normalizing needs besides the tree.
pub struct Ctx<'a> {
    pub dir: &'a Path,
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Reads `env_file`s (off when only checking one file of several).
    pub read_env_files: bool,
}

fn is_remote_context(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn build(ctx: &Ctx, path: &str, v: &Value) -> R<Value> {
    let mut m = match v {
        Value::String(s) => {
            let mut m = Map::new();
            m.insert("context".into(), Value::String(s.clone()));
            m
        }
        other => object(path, other)?.clone(),
    };
    let context = match m.get("context") {
        Some(c) => string(&join(path, "context"), c)?,
        None => ".".to_string(),
    };
    let context = if is_remote_context(&context) {
        context
    } else {
        abs_path(ctx.dir, &context)
    };
    m.insert("context".into(), Value::String(context));
    if !m.contains_key("dockerfile") && !m.contains_key("dockerfile_inline") {
        m.insert("dockerfile".into(), json!("Dockerfile"));
    }
    for (k, v) in m.iter_mut() {
        let p = join(path, k);
        *v = match k.as_str() {
            "args" => {
                let mut out = Map::new();
                for (name, val) in key_values(&p, v, false)? {
                    match val {
                        Value::Null => {
                            if let Some(env) = (ctx.lookup)(&name) {
                                out.insert(name, Value::String(env));
                            }
                        }
                        other => {
                            out.insert(name, other);
                        }
                    }
                }
                Value::Object(out)
            }
            "labels" => string_map(&p, v)?,
            "platforms" | "tags" | "cache_from" | "cache_to" => string_list(&p, v)?,
            "dockerfile" | "dockerfile_inline" | "target" | "network" | "context" => {
                Value::String(string(&p, v)?)
            }
            "shm_size" => bytes(&p, v)?,
            "additional_contexts" => {
                let mut out = Map::new();
                for (name, val) in key_values(&p, v, true)? {
                    let s = val.as_str().unwrap_or_default().to_string();
                    let s = if s.contains("://") || s.contains(':') && !s.starts_with('.') {
                        s
                    } else {
                        abs_path(ctx.dir, &s)
                    };
                    out.insert(name, json!(s));
                }
                Value::Object(out)
            }
            "secrets" => file_refs(&p, v, None)?,
            "extra_hosts" => extra_hosts(&p, v)?,
            _ => v.clone(),
        };
    }
    Ok(Value::Object(m))
}

/// `develop.watch` paths resolve against the project directory.
fn develop(ctx: &Ctx, path: &str, v: &Value) -> R<Value> {
    let mut out = object(path, v)?.clone();
    if let Some(Value::Array(watch)) = out.get_mut("watch") {
        for (i, w) in watch.iter_mut().enumerate() {
            let wp = format!("{path}.watch[{i}]");
            let Value::Object(m) = w else {
                return expected(&wp, "a mapping", w);
            };
            if let Some(p) = m.get("path") {
                let p = abs_path(ctx.dir, &string(&join(&wp, "path"), p)?);
                m.insert("path".into(), json!(p));
            }
            if let Some(a) = m.get("action") {
                let ap = join(&wp, "action");
                let a = string(&ap, a)?;
                one_of(
                    &ap,
                    &a,
                    &["rebuild", "sync", "restart", "sync+restart", "sync+exec"],
                )?;
            }
            m.entry("exec").or_insert(json!({"command": null}));
        }
    }
    Ok(Value::Object(out))
}

/// `post_start` / `pre_stop` hooks: `command` in list form.
fn hooks(path: &str, v: &Value) -> R<Value> {
    let mut out = Vec::new();
    for (i, h) in list(path, v)?.iter().enumerate() {
        let hp = format!("{path}[{i}]");
        let mut m = object(&hp, h)?.clone();
        if let Some(c) = m.get("command") {
            let c = command(&join(&hp, "command"), c)?;
            m.insert("command".into(), c);
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

fn env_files(ctx: &Ctx, path: &str, v: &Value) -> R<Map<String, Value>> {
    let entries: Vec<Value> = match v {
        Value::String(_) => vec![v.clone()],
        Value::Array(a) => a.clone(),
        other => return expected(path, "a string or list", other),
    };
    let mut out = Map::new();
    for (i, e) in entries.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let (file, required, format) = match e {
            Value::String(s) => (s.clone(), true, None),
            Value::Object(m) => {
                let file = string(&join(&p, "path"), m.get("path").unwrap_or(&Value::Null))?;
                let required = match m.get("required") {
                    Some(r) => boolean(&join(&p, "required"), r)?,
                    None => true,
                };
                let format = match m.get("format") {
                    Some(f) => Some(string(&join(&p, "format"), f)?),
                    None => None,
                };
                (file, required, format)
            }
            other => return expected(&p, "a string or mapping", other),
        };
        if !ctx.read_env_files {
            continue;
        }
        let full = abs_path(ctx.dir, &file);
        let text = match std::fs::read_to_string(&full) {
            Ok(t) => t,
            Err(_) if !required => continue,
            Err(e) => return fail(&p, format!("env file {full} not found: {e}")),
        };
        // `raw` is `docker run --env-file`'s format; the default is compose's dotenv. Like
        // the reference, an unknown format only matters once there is a file to read.
        let parse = match format.as_deref() {
            Some("raw") => super::dotenv::parse_raw,
            None | Some("" | ".env") => super::dotenv::parse,
            Some(other) => {
                return fail(
                    &join(&p, "format"),
                    format!(
                        "unsupported env_file format {other:?}: use \"raw\" (docker run --env-file) or leave it out (.env syntax)"
                    ),
                );
            }
        };
        let vars = parse(&text, ctx.lookup).map_err(|e| (p.clone(), format!("{full}: {e}")))?;
        for (k, val) in vars {
            out.insert(k, Value::String(val));
        }
    }
    Ok(out)
}

/// `labels`, on top of the `label_file`s (dotenv syntax, read in order, later files win;
/// `${x}` in a file refers to labels read before it, not to the environment).
fn labels(ctx: &Ctx, path: &str, svc: &Map<String, Value>) -> R<Value> {
    let mut out = Map::new();
    if let Some(v) = svc.get("label_file") {
        let p = join(path, "label_file");
        let files = match v {
            Value::String(s) => vec![s.clone()],
            other => {
                let mut files = Vec::new();
                for (i, f) in list(&p, other)?.iter().enumerate() {
                    files.push(string(&format!("{p}[{i}]"), f)?);
                }
                files
            }
        };
        for file in files.iter().filter(|_| ctx.read_env_files) {
            let full = abs_path(ctx.dir, file);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| (p.clone(), format!("label file {full} not found: {e}")))?;
            let known = out.clone();
            let lookup = |k: &str| known.get(k).and_then(Value::as_str).map(str::to_string);
            let vars = super::dotenv::parse(&text, &lookup)
                .map_err(|e| (p.clone(), format!("{full}: {e}")))?;
            for (k, val) in vars {
                out.insert(k, Value::String(val));
            }
        }
    }
    if let Some(v) = svc.get("labels") {
        for (k, val) in key_values(&join(path, "labels"), v, true)? {
            out.insert(k, val);
        }
    }
    Ok(Value::Object(out))
}

fn environment(ctx: &Ctx, path: &str, svc: &Map<String, Value>) -> R<Option<Value>> {
    let mut env = match svc.get("env_file") {
        Some(v) => env_files(ctx, &join(path, "env_file"), v)?,
        None => Map::new(),
    };
    if let Some(v) = svc.get("environment") {
        for (k, val) in key_values(&join(path, "environment"), v, false)? {
            let val = match val {
                Value::Null => (ctx.lookup)(&k).map_or(Value::Null, Value::String),
                other => other,
            };
            env.insert(k, val);
        }
    }
    Ok((!env.is_empty() || svc.contains_key("environment")).then_some(Value::Object(env)))
}

fn depends_on(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = string(&format!("{path}[{i}]"), item)?;
                out.insert(
                    name,
                    json!({"condition": "service_started", "required": true}),
                );
            }
        }
        Value::Object(m) => {
            for (name, d) in m {
                let p = join(path, name);
                let mut dm = match d {
                    Value::Null => Map::new(),
                    other => object(&p, other)?.clone(),
                };
                for (k, val) in dm.iter_mut() {
                    match k.as_str() {
                        "restart" | "required" => *val = json!(boolean(&join(&p, k), val)?),
                        "condition" => {
                            let c = string(&join(&p, k), val)?;
                            one_of(
                                &join(&p, k),
                                &c,
                                &[
                                    "service_started",
                                    "service_healthy",
                                    "service_completed_successfully",
                                ],
                            )?;
                            *val = json!(c);
                        }
                        _ => {}
                    }
                }
                dm.entry("condition").or_insert(json!("service_started"));
                dm.entry("required").or_insert(json!(true));
                out.insert(name.clone(), Value::Object(dm));
            }
        }
        other => return expected(path, "a list or mapping", other),
    }
    Ok(Value::Object(out))
}

fn service_networks(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                out.insert(string(&format!("{path}[{i}]"), item)?, Value::Null);
            }
        }
        Value::Object(m) => {
            for (name, n) in m {
                let p = join(path, name);
                let n = match n {
                    Value::Null => Value::Null,
                    other => {
                        let mut nm = object(&p, other)?.clone();
                        for (k, val) in nm.iter_mut() {
                            let kp = join(&p, k);
                            match k.as_str() {
                                "aliases" | "link_local_ips" => *val = string_list(&kp, val)?,
                                "ipv4_address" | "ipv6_address" | "mac_address" => {
                                    *val = json!(string(&kp, val)?)
                                }
                                "priority" | "gw_priority" => *val = json!(int(&kp, val)?),
                                _ => {}
                            }
                        }
                        Value::Object(nm)
                    }
                };
                out.insert(name.clone(), n);
            }
        }
        other => return expected(path, "a list or mapping", other),
    }
    Ok(Value::Object(out))
}

fn file_refs(path: &str, v: &Value, default_dir: Option<&str>) -> R<Value> {
    let mut out = Vec::new();
    for (i, item) in list(path, v)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let mut m = match item {
            Value::String(s) => {
                let mut m = Map::new();
                m.insert("source".into(), json!(s));
                m
            }
            other => object(&p, other)?.clone(),
        };
        let source = string(&join(&p, "source"), m.get("source").unwrap_or(&Value::Null))?;
        for (k, val) in m.iter_mut() {
            let kp = join(&p, k);
            match k.as_str() {
                "mode" => {
                    let mode = match &*val {
                        Value::String(s) => i64::from_str_radix(s, 8)
                            .map_err(|_| (kp.clone(), format!("invalid file mode {s:?}")))?,
                        other => int(&kp, other)?,
                    };
                    *val = json!(format!("0{mode:o}"));
                }
                "uid" | "gid" => *val = json!(scalar_string(&kp, val)?),
                "target" => *val = json!(string(&kp, val)?),
                _ => {}
            }
        }
        if let Some(dir) = default_dir
            && !m.contains_key("target")
        {
            m.insert("target".into(), json!(format!("{dir}/{source}")));
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

/// `host:ip`, `host=ip` or `{host: ip|[ips]}` → `host=ip`, sorted by host as compose-go's
/// host list prints (brackets around IPv6 addresses dropped).
fn extra_hosts(path: &str, v: &Value) -> R<Value> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let ip_path = format!("{path}[{i}]");
                let s = string(&ip_path, item)?;
                let pair = s.split_once('=').or_else(|| s.split_once(':'));
                let Some((h, ip)) = pair else {
                    return fail(&ip_path, format!("invalid extra host {s:?}"));
                };
                pairs.push((h.to_string(), ip.to_string()));
            }
        }
        Value::Object(m) => {
            for (host, ips) in m {
                let p = join(path, host);
                match ips {
                    Value::Array(list) => {
                        for ip in list {
                            pairs.push((host.clone(), string(&p, ip)?));
                        }
                    }
                    other => pairs.push((host.clone(), string(&p, other)?)),
                }
            }
        }
        other => return expected(path, "a list or mapping", other),
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Array(
        pairs
            .into_iter()
            .map(|(h, ip)| {
                let ip = ip
                    .strip_prefix('[')
                    .and_then(|i| i.strip_suffix(']'))
                    .unwrap_or(&ip)
                    .to_string();
                json!(format!("{h}={ip}"))
            })
            .collect(),
    ))
}

fn ulimits(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    for (k, u) in object(path, v)? {
        let p = join(path, k);
        let u = match u {
            Value::Object(m) => {
                let soft = int(&join(&p, "soft"), m.get("soft").unwrap_or(&Value::Null))?;
                let hard = int(&join(&p, "hard"), m.get("hard").unwrap_or(&Value::Null))?;
                json!({"soft": soft, "hard": hard})
            }
            other => json!(int(&p, other)?),
        };
        out.insert(k.clone(), u);
    }
    Ok(Value::Object(out))
}

fn logging(path: &str, v: &Value) -> R<Value> {
    let mut out = object(path, v)?.clone();
    if let Some(d) = out.get("driver") {
        let d = string(&join(path, "driver"), d)?;
        out.insert("driver".into(), json!(d));
    }
    if let Some(o) = out.get("options") {
        let op = join(path, "options");
        for (k, val) in object(&op, o)? {
            if val.is_boolean() || val.is_array() || val.is_object() {
                return expected(&join(&op, k), "null, a number or a string", val);
            }
        }
        let o = key_values(&op, o, false)?;
        out.insert("options".into(), Value::Object(o));
    }
    Ok(Value::Object(out))
}

/// Normalizes one service (everything but cross-references).
pub fn service(ctx: &Ctx, path: &str, v: &Value) -> R<Value> {
    let svc = object(path, v)?;
    let mut out = Map::new();
    out.insert("command".into(), Value::Null);
    out.insert("entrypoint".into(), Value::Null);
    for (k, v) in svc {
        let p = join(path, k);
        let nv = match k.as_str() {
            "environment" | "env_file" | "extends" | "label_file" => continue,
            "build" => build(ctx, &p, v)?,
            "command" | "entrypoint" => command(&p, v)?,
            "labels" => labels(ctx, path, svc)?,
            "annotations" | "sysctls" => string_map(&p, v)?,
            "ports" => ports(&p, v)?,
            "expose" => {
                let mut e = Vec::new();
                for (i, x) in list(&p, v)?.iter().enumerate() {
                    e.push(json!(scalar_string(&format!("{p}[{i}]"), x)?));
                }
                Value::Array(e)
            }
            "volumes" => volumes(ctx, &p, v)?,
            "tmpfs" | "dns" | "dns_search" => string_or_list(&p, v)?,
            "dns_opt" => string_list(&p, v)?,
            "healthcheck" => healthcheck(&p, v)?,
            "deploy" => deploy(&p, v)?,
            "depends_on" => depends_on(&p, v)?,
            "networks" => service_networks(&p, v)?,
            "secrets" => file_refs(&p, v, Some("/run/secrets"))?,
            "configs" => file_refs(&p, v, None)?,
            "extra_hosts" => extra_hosts(&p, v)?,
            "devices" => devices(&p, v)?,
            "ulimits" => ulimits(&p, v)?,
            "logging" => logging(&p, v)?,
            "stop_grace_period" => duration(&p, v)?,
            "shm_size" | "mem_limit" | "mem_reservation" | "memswap_limit" | "mem_swappiness" => {
                bytes(&p, v)?
            }
            "develop" => develop(ctx, &p, v)?,
            "post_start" | "pre_stop" => hooks(&p, v)?,
            "gpus" => gpus(&p, v)?,
            "cpus" => json!(float(&p, v)?),
            "pids_limit" | "cpu_shares" | "scale" | "oom_score_adj" | "cpu_count"
            | "cpu_period" | "cpu_quota" | "cpu_rt_period" | "cpu_rt_runtime" => {
                json!(int(&p, v)?)
            }
            "init" | "read_only" | "tty" | "stdin_open" | "privileged" | "oom_kill_disable"
            | "use_api_socket" => json!(boolean(&p, v)?),
            "container_name" => {
                let n = string(&p, v)?;
                let b = n.as_bytes();
                let ok = b.len() >= 2
                    && b[0].is_ascii_alphanumeric()
                    && b[1..]
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
                if !ok {
                    return fail(
                        &p,
                        format!("{n:?} does not match pattern '[a-zA-Z0-9][a-zA-Z0-9_.-]+'"),
                    );
                }
                json!(n)
            }
            "pull_policy" => {
                let pp = string(&p, v)?;
                let every = pp.strip_prefix("every_").is_some_and(|d| {
                    d.len() > 1
                        && d[..d.len() - 1].bytes().all(|b| b.is_ascii_digit())
                        && d.ends_with(['w', 'd', 'h', 'm', 's'])
                });
                let fixed = [
                    "always",
                    "never",
                    "build",
                    "if_not_present",
                    "missing",
                    "refresh",
                    "daily",
                    "weekly",
                ];
                if !every && !fixed.contains(&pp.as_str()) {
                    return fail(&p, format!("{pp:?} is not a valid pull policy"));
                }
                json!(pp)
            }
            "cgroup" => {
                let c = string(&p, v)?;
                one_of(&p, &c, &["host", "private"])?;
                json!(c)
            }
            "restart" => {
                let r = string(&p, v)?;
                let on_failure_count = r
                    .strip_prefix("on-failure:")
                    .is_some_and(|n| n.parse::<u32>().is_ok());
                // Empty (`restart: ${POLICY:-}`) means unset, as in the reference.
                if !(matches!(
                    r.as_str(),
                    "" | "no" | "always" | "on-failure" | "unless-stopped"
                ) || on_failure_count)
                {
                    return fail(
                        &p,
                        format!(
                            "{r:?} is not a restart policy: use no, always, on-failure[:N] or unless-stopped"
                        ),
                    );
                }
                json!(r)
            }
            "image" | "user" | "working_dir" | "hostname" | "domainname" | "stop_signal"
            | "pid" | "ipc" | "network_mode" | "platform" | "cpuset" | "cgroup_parent"
            | "runtime" | "userns_mode" | "uts" | "isolation" | "mac_address" | "volume_driver" => {
                json!(string(&p, v)?)
            }
            "cap_add"
            | "cap_drop"
            | "security_opt"
            | "profiles"
            | "links"
            | "external_links"
            | "volumes_from"
            | "device_cgroup_rules" => string_list(&p, v)?,
            "group_add" => {
                let mut e = Vec::new();
                for (i, x) in list(&p, v)?.iter().enumerate() {
                    e.push(json!(scalar_string(&format!("{p}[{i}]"), x)?));
                }
                Value::Array(e)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), nv);
    }
    if let Some(env) = environment(ctx, path, svc)? {
        out.insert("environment".into(), env);
    }
    if svc.contains_key("label_file") && !svc.contains_key("labels") {
        let l = labels(ctx, path, svc)?;
        if l.as_object().is_some_and(|m| !m.is_empty()) {
            out.insert("labels".into(), l);
        }
    }
    implicit_dependencies(&mut out);
    legacy_consistency(path, &out)?;
    // compose-go copies `scale` into `deploy.replicas` when the service has a `deploy`.
    if let Some(scale) = out.get("scale").cloned()
        && let Some(Value::Object(d)) = out.get_mut("deploy")
    {
        d.insert("replicas".into(), scale);
    }
    Ok(Value::Object(out))
}

/// A service that uses another one through `links`, `network_mode`/`ipc`/`pid`/`uts`/
/// `cgroup: service:X` or `volumes_from` depends on it, as compose-go makes explicit: it
/// must exist and start first (restarted with it, except for `volumes_from`). A declared
/// `depends_on` entry wins.
fn implicit_dependencies(svc: &mut Map<String, Value>) {
    let strings = |k: &str| -> Vec<String> {
        svc.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let mut implied: Vec<(String, bool)> = Vec::new();
    for link in strings("links") {
        // `service:alias` names the service before the colon.
        let parts: Vec<&str> = link.split(':').collect();
        let name = if parts.len() == 2 { parts[0] } else { &link };
        implied.push((name.to_string(), true));
    }
    for ns in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(shared) = svc
            .get(ns)
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("service:"))
        {
            implied.push((shared.to_string(), true));
        }
    }
    for from in strings("volumes_from") {
        if !from.starts_with("container:") {
            let name = from.split(':').next().unwrap_or_default();
            implied.push((name.to_string(), false));
        }
    }
    if implied.is_empty() {
        return;
    }
    let deps = svc
        .entry("depends_on")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(deps) = deps.as_object_mut() else {
        return;
    };
    for (name, restart) in implied {
        deps.entry(name).or_insert_with(
            || json!({"condition": "service_started", "restart": restart, "required": true}),
        );
    }
}

/// `mem_limit`/`cpus`/`pids_limit` and `deploy.resources.limits` must agree when both are set.
fn legacy_consistency(path: &str, svc: &Map<String, Value>) -> R<()> {
    let limits = svc
        .get("deploy")
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("limits"));
    let replicas = svc.get("deploy").and_then(|d| d.get("replicas"));
    if let (Some(a), Some(b)) = (svc.get("scale"), replicas)
        && a != b
    {
        return fail(
            path,
            "can't set distinct values on 'scale' and 'deploy.replicas'",
        );
    }
    let Some(limits) = limits else { return Ok(()) };
    for (legacy, key) in [
        ("mem_limit", "memory"),
        ("cpus", "cpus"),
        ("pids_limit", "pids"),
    ] {
        if let (Some(a), Some(b)) = (svc.get(legacy), limits.get(key))
            && a != b
        {
            return fail(
                path,
                format!(
                    "can't set distinct values on '{legacy}' and 'deploy.resources.limits.{key}'"
                ),
            );
        }
    }
    Ok(())
}

/// Normalizes a top-level network, volume, secret or config definition.
pub fn resource_def(ctx: &Ctx, section: &str, path: &str, v: &Value) -> R<Value> {
    let m = match v {
        Value::Null => Map::new(),
        other => object(path, other)?.clone(),
    };
    let mut out = Map::new();
    for (k, v) in m {
        let p = join(path, &k);
        let v = match k.as_str() {
            "labels" => string_map(&p, &v)?,
            "driver_opts" => {
                object(&p, &v)?;
                string_map(&p, &v)?
            }
            "external" => {
                // The legacy `external: {name: x}` form.
                match &v {
                    Value::Object(e) => {
                        if let Some(n) = e.get("name") {
                            out.insert("name".into(), json!(string(&join(&p, "name"), n)?));
                        }
                        json!(true)
                    }
                    other => json!(boolean(&p, other)?),
                }
            }
            "internal" | "attachable" | "enable_ipv6" | "enable_ipv4" => json!(boolean(&p, &v)?),
            "name" | "driver" | "environment" | "content" => json!(string(&p, &v)?),
            "file" => json!(abs_path(ctx.dir, &string(&p, &v)?)),
            _ => v,
        };
        out.insert(k, v);
    }
    // A local volume that binds a host folder: the folder resolves like a bind source.
    if section == "volumes"
        && out.get("driver").and_then(Value::as_str) == Some("local")
        && let Some(Value::Object(opts)) = out.get_mut("driver_opts")
        && opts.get("o").and_then(Value::as_str) == Some("bind")
        && let Some(Value::String(device)) = opts.get("device")
    {
        let device = abs_path(ctx.dir, device);
        opts.insert("device".into(), json!(device));
    }
    if section == "networks" {
        let ipam = out.entry("ipam").or_insert(json!({}));
        // compose-go's IPAM model has no `options`: the reference drops them.
        if let Some(m) = ipam.as_object_mut() {
            m.remove("options");
        }
    }
    Ok(Value::Object(out))
}
