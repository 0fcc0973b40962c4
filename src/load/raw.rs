//! The model `config --no-interpolate` prints: the files merged with `${VAR}` left as
//! written, as the reference's `ToModel` road makes it.
//!
//! That is not the normalized project with variables put back. The reference stops
//! earlier: short syntax becomes long only where it parses without the variables
//! (`"${PORT}:80"` stays a string), `env_file` is listed rather than read, `labels`,
//! `ulimits`, `extra_hosts`, durations and sizes stay as written, profiles are not applied,
//! unused resources stay, and none of the typed defaults (`command: null`, `ipam: {}`) are
//! added. Paths are still resolved, the default network and resource names still set, and
//! the dependencies `links` & co. imply still made explicit. This module does exactly those
//! steps on the merged, uninterpolated tree; hoist never deploys from it. `include` is not
//! followed here (refused with a pointer to plain `config`).

use super::{LoadError, LoadOptions, Source, discovery, merge, normalize, validate};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

type Fail = (String, String);

/// Loads the files of `opts` without interpolation and returns the reference's raw model.
pub fn load(opts: &LoadOptions) -> Result<Value, LoadError> {
    let files = super::compose_files(opts)?;
    if files.is_empty() {
        return Err(LoadError::new(
            "",
            "",
            "no configuration file provided: not found",
        ));
    }
    let cwd = &opts.working_dir;
    let project_dir = match &opts.project_directory {
        Some(d) => PathBuf::from(normalize::clean(&cwd.join(d))),
        None => match files.first() {
            Some(f) if f.as_os_str() != "-" => {
                f.parent().map(Path::to_path_buf).unwrap_or_default()
            }
            _ => cwd.clone(),
        },
    };
    let env = super::environment(opts, &project_dir)?;
    let sources: Vec<Source> = files
        .iter()
        .map(|f| Source::read(f, opts))
        .collect::<Result<_, _>>()?;
    let main_file = sources.first().map(|s| s.name.clone()).unwrap_or_default();
    let mut merged: Option<Value> = None;
    for src in &sources {
        let mut warned = BTreeSet::new();
        for doc in super::read_documents(src, &env, &mut warned, 0, false)? {
            if doc.get("include").is_some() {
                return Err(LoadError::new(
                    src.name.clone(),
                    "include",
                    "--no-interpolate does not follow include: run `hoist config` to see the included files resolved",
                ));
            }
            merged = Some(merge::enforce_unicity(match merged {
                None => merge::strip_tags(doc),
                Some(base) => merge::merge_documents(base, doc),
            }));
        }
    }
    let Some(Value::Object(mut tree)) = merged else {
        return Err(LoadError::new(main_file, "", "empty compose file"));
    };
    tree.remove("version");
    if tree.is_empty() {
        return Err(LoadError::new(main_file, "", "empty compose file"));
    }
    let name = project_name(opts, &env, &tree, &project_dir)
        .map_err(|(p, m)| LoadError::new(main_file.clone(), p, m))?;
    validate::keys(&Value::Object(tree.clone()))
        .map_err(|(p, m)| LoadError::new(main_file.clone(), p, m))?;
    canonical(&mut tree, &project_dir).map_err(|(p, m)| LoadError::new(main_file.clone(), p, m))?;
    // Without interpolation the reference looks no variable up: `environment: [FOO]` stays
    // valueless and a build arg without a value is dropped.
    finish(&mut tree, &name, &|_| None);
    Ok(Value::Object(tree))
}

/// The model as the reference's JSON prints it (its YAML prints every empty list as `[]`).
pub fn json_view(mut model: Value) -> Value {
    empty_lists_as_null(&mut model, &mut Vec::new());
    model
}

/// The lists the reference rebuilds while merging (its "unicity" pass): an empty one
/// prints as `[]` in JSON. Any other empty list is still YAML's nil list there and prints
/// as `null` (`entrypoint: []`, `security_opt: []`, an `x-*: []`; `environment` and
/// build `args` too, because resolving their variables rebuilds them from nothing).
const REBUILT_LISTS: &[&str] = &[
    "networks.*.labels",
    "networks.*.ipam.options",
    "services.*.annotations",
    "services.*.build.additional_contexts",
    "services.*.build.platform",
    "services.*.build.tags",
    "services.*.build.labels",
    "services.*.cap_add",
    "services.*.cap_drop",
    "services.*.configs",
    "services.*.deploy.labels",
    "services.*.devices",
    "services.*.dns",
    "services.*.dns_opt",
    "services.*.dns_search",
    "services.*.env_file",
    "services.*.expose",
    "services.*.labels",
    "services.*.links",
    "services.*.networks.*.aliases",
    "services.*.networks.*.link_local_ips",
    "services.*.ports",
    "services.*.profiles",
    "services.*.secrets",
    "services.*.sysctls",
    "services.*.tmpfs",
    "services.*.volumes",
];

fn empty_lists_as_null(v: &mut Value, path: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                path.push(k.clone());
                empty_lists_as_null(child, path);
                path.pop();
            }
        }
        Value::Array(items) if items.is_empty() => {
            let rebuilt = REBUILT_LISTS.iter().any(|pattern| {
                let steps: Vec<&str> = pattern.split('.').collect();
                steps.len() == path.len()
                    && steps
                        .iter()
                        .zip(path.iter())
                        .all(|(s, p)| *s == "*" || s == p)
            });
            if !rebuilt {
                *v = Value::Null;
            }
        }
        _ => {}
    }
}

/// The name as the reference finds it without interpolation: `-p`, the environment, the
/// files' `name` as written (normalized), else the folder.
fn project_name(
    opts: &LoadOptions,
    env: &std::collections::HashMap<String, String>,
    tree: &Map<String, Value>,
    dir: &Path,
) -> Result<String, Fail> {
    let explicit = opts
        .project_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .filter(|s| !s.is_empty())
                .cloned()
        });
    if let Some(n) = explicit {
        if !discovery::is_valid_project_name(&n) {
            return Err((String::new(), format!("invalid project name {n:?}")));
        }
        return Ok(n);
    }
    let from_file = tree.get("name").and_then(Value::as_str).unwrap_or_default();
    let base = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = if from_file.is_empty() {
        discovery::normalize_project_name(&base)
    } else {
        discovery::normalize_project_name(from_file)
    };
    if n.is_empty() {
        return Err((String::new(), "project name must not be empty".to_string()));
    }
    Ok(n)
}

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Short syntax → long where it parses, and the paths resolved (compose-go's
/// `transform.Canonical`, `SetDefaultValues` and `ResolveRelativePaths`).
fn canonical(tree: &mut Map<String, Value>, dir: &Path) -> Result<(), Fail> {
    let lookup = |_: &str| None;
    let ctx = normalize::Ctx {
        dir,
        lookup: &lookup,
        read_env_files: false,
    };
    if let Some(Value::Object(services)) = tree.get_mut("services") {
        for (name, svc) in services.iter_mut() {
            let p = format!("services.{name}");
            let Some(s) = obj(svc) else { continue };
            s.remove("extends");
            service(&ctx, &p, s)?;
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        let Some(Value::Object(defs)) = tree.get_mut(section) else {
            continue;
        };
        for def in defs.values_mut() {
            let Some(d) = obj(def) else { continue };
            // The legacy `external: {name: x}` form.
            if let Some(Value::Object(ext)) = d.get("external").cloned() {
                d.insert("external".into(), json!(true));
                if let Some(n) = ext.get("name")
                    && !d.contains_key("name")
                {
                    d.insert("name".into(), n.clone());
                }
            }
            if matches!(section, "secrets" | "configs")
                && let Some(Value::String(f)) = d.get("file")
            {
                let f = normalize::host_path(dir, f);
                d.insert("file".into(), json!(f));
            }
            if section == "volumes"
                && d.get("driver").and_then(Value::as_str) == Some("local")
                && let Some(Value::Object(o)) = d.get_mut("driver_opts")
                && o.get("o").and_then(Value::as_str) == Some("bind")
                && let Some(Value::String(dev)) = o.get("device")
            {
                let dev = normalize::host_path(dir, dev);
                o.insert("device".into(), json!(dev));
            }
        }
    }
    Ok(())
}

fn service(ctx: &normalize::Ctx, p: &str, s: &mut Map<String, Value>) -> Result<(), Fail> {
    let dir = ctx.dir;
    if let Some(b) = s.get_mut("build") {
        if let Value::String(c) = b {
            *b = json!({ "context": c });
        }
        if let Some(m) = obj(b) {
            m.entry("context").or_insert(json!("."));
            if let Some(Value::String(c)) = m.get("context") {
                let c = normalize::context_path(dir, c);
                m.insert("context".into(), json!(c));
            }
            if let Some(Value::Array(items)) = m.get("additional_contexts") {
                let mut out = Map::new();
                for i in items {
                    if let Some((k, v)) = i.as_str().and_then(|s| s.split_once('=')) {
                        out.insert(k.to_string(), json!(v));
                    }
                }
                m.insert("additional_contexts".into(), Value::Object(out));
            }
            if let Some(Value::Object(ac)) = m.get_mut("additional_contexts") {
                for v in ac.values_mut() {
                    if let Value::String(c) = v {
                        *v = json!(normalize::context_path(dir, c));
                    }
                }
            }
            if let Some(Value::Array(secrets)) = m.get_mut("secrets") {
                file_mounts(secrets, None);
            }
            // `ssh: [default, id=path]` → `{default: null, id: path}`.
            if let Some(Value::Array(keys)) = m.get("ssh").cloned() {
                let mut out = Map::new();
                for k in keys.iter().filter_map(Value::as_str) {
                    match k.split_once('=') {
                        Some((id, path)) => out.insert(id.to_string(), json!(path)),
                        None => out.insert(k.to_string(), Value::Null),
                    };
                }
                m.insert("ssh".into(), Value::Object(out));
            }
        }
    }
    // Without interpolation nothing casts a string to a number: a ulimit must be one.
    if let Some(Value::Object(ulimits)) = s.get("ulimits") {
        for (k, u) in ulimits {
            if !(u.is_object() || u.is_i64() || u.is_u64()) {
                return Err((
                    format!("{p}.ulimits.{k}"),
                    "expected a number or a mapping of soft and hard (it is not interpolated with --no-interpolate)".to_string(),
                ));
            }
        }
    }
    if let Some(Value::Array(deps)) = s.get("depends_on").cloned() {
        let mut out = Map::new();
        for d in deps.iter().filter_map(Value::as_str) {
            out.insert(
                d.to_string(),
                json!({"condition": "service_started", "required": true}),
            );
        }
        s.insert("depends_on".into(), Value::Object(out));
    } else if let Some(Value::Object(deps)) = s.get_mut("depends_on") {
        for d in deps.values_mut() {
            // A list merged onto a map leaves entries without settings.
            if d.is_null() {
                *d = json!({});
            }
            if let Some(d) = obj(d) {
                d.entry("condition").or_insert(json!("service_started"));
                d.entry("required").or_insert(json!(true));
            }
        }
    }
    match s.get("env_file").cloned() {
        Some(Value::String(f)) => {
            s.insert("env_file".into(), json!([{"path": f, "required": true}]));
        }
        Some(Value::Array(items)) => {
            let items: Vec<Value> = items
                .into_iter()
                .map(|i| match i {
                    Value::String(f) => json!({"path": f, "required": true}),
                    Value::Object(mut m) => {
                        m.entry("required").or_insert(json!(true));
                        Value::Object(m)
                    }
                    other => other,
                })
                .collect();
            s.insert("env_file".into(), Value::Array(items));
        }
        _ => {}
    }
    if let Some(Value::Array(files)) = s.get_mut("env_file") {
        for f in files.iter_mut().filter_map(obj) {
            if let Some(Value::String(path)) = f.get("path") {
                let path = normalize::host_path(dir, path);
                f.insert("path".into(), json!(path));
            }
        }
    }
    if let Some(Value::String(f)) = s.get("label_file").cloned() {
        s.insert("label_file".into(), json!([f]));
    }
    if let Some(Value::Array(files)) = s.get_mut("label_file") {
        for f in files.iter_mut() {
            if let Value::String(path) = f {
                *f = json!(normalize::host_path(dir, path));
            }
        }
    }
    for key in ["networks", "models"] {
        if let Some(Value::Array(items)) = s.get(key).cloned() {
            let m: Map<String, Value> = items
                .iter()
                .filter_map(Value::as_str)
                .map(|n| (n.to_string(), Value::Null))
                .collect();
            s.insert(key.into(), Value::Object(m));
        }
    }
    if let Some(Value::String(d)) = s.get("dns").cloned() {
        s.insert("dns".into(), json!([d]));
    }
    if let Some(Value::Array(vols)) = s.get_mut("volumes") {
        for (i, v) in vols.iter_mut().enumerate() {
            match v {
                Value::String(spec) => {
                    *v = normalize::short_volume_spec(ctx, &format!("{p}.volumes[{i}]"), spec)?
                }
                Value::Object(m) => {
                    if m.get("type").and_then(Value::as_str) == Some("bind")
                        && let Some(Value::String(src)) = m.get("source")
                    {
                        let src = normalize::host_path(dir, src);
                        m.insert("source".into(), json!(src));
                    }
                    if let Some(b) = m.get_mut("bind").and_then(obj) {
                        b.entry("create_host_path").or_insert(json!(true));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Array(ports)) = s.get("ports").cloned() {
        // A list with an entry that does not parse (a variable) stays as written.
        let mut out = Vec::new();
        let mut parsed = true;
        for (i, e) in ports.iter().enumerate() {
            let text = match e {
                Value::Number(n) => n.to_string(),
                Value::String(t) => t.clone(),
                other => {
                    out.push(other.clone());
                    continue;
                }
            };
            match normalize::short_port(&format!("{p}.ports[{i}]"), &text) {
                Ok(entries) => out.extend(entries),
                Err(_) => {
                    parsed = false;
                    break;
                }
            }
        }
        if parsed {
            for e in out.iter_mut().filter_map(obj) {
                e.entry("protocol").or_insert(json!("tcp"));
                e.entry("mode").or_insert(json!("ingress"));
            }
            s.insert("ports".into(), Value::Array(out));
        }
    }
    if let Some(Value::Array(secrets)) = s.get_mut("secrets") {
        file_mounts(secrets, Some("/run/secrets"));
    }
    if let Some(Value::Array(configs)) = s.get_mut("configs") {
        file_mounts(configs, None);
    }
    if let Some(Value::Array(devices)) = s.get_mut("devices") {
        for d in devices.iter_mut() {
            if let Value::String(spec) = d {
                let parts: Vec<&str> = spec.split(':').collect();
                let (src, dst, perm) = match parts.as_slice() {
                    [a] => (*a, *a, "rwm"),
                    [a, b] => (*a, if b.is_empty() { *a } else { *b }, "rwm"),
                    [a, b, c] => (*a, if b.is_empty() { *a } else { *b }, *c),
                    _ => continue,
                };
                *d = json!({"source": src, "target": dst, "permissions": perm});
            }
        }
    }
    if let Some(Value::String(_)) = s.get("gpus") {
        s.insert("gpus".into(), json!([{"count": "all"}]));
    }
    if let Some(Value::Array(watch)) = s.get_mut("develop").and_then(|d| d.get_mut("watch")) {
        for w in watch.iter_mut().filter_map(obj) {
            if let Some(Value::String(path)) = w.get("path") {
                let path = normalize::host_path(dir, path);
                w.insert("path".into(), json!(path));
            }
            for key in ["ignore", "include"] {
                if let Some(Value::String(x)) = w.get(key).cloned() {
                    w.insert(key.into(), json!([x]));
                }
            }
        }
    }
    Ok(())
}

/// Secrets and configs in short form → `{source}`; secrets get their default target; a
/// YAML 1.1 octal `mode: 0400` is the number it means (256).
fn file_mounts(items: &mut [Value], default_dir: Option<&str>) {
    for i in items.iter_mut() {
        if let Value::String(src) = i {
            *i = json!({ "source": src });
        }
        if let Some(m) = obj(i)
            && let Some(Value::String(mode)) = m.get("mode")
            && let Ok(n) = i64::from_str_radix(mode, 8)
        {
            m.insert("mode".into(), json!(n));
        }
        if let (Some(dir), Some(m)) = (default_dir, obj(i))
            && !m.contains_key("target")
        {
            let src = m.get("source").and_then(Value::as_str).unwrap_or_default();
            let t = format!("{dir}/{src}");
            m.insert("target".into(), json!(t));
        }
    }
}

/// compose-go's `Normalize`: default network, `pull_policy`, build defaults, variables
/// without a value looked up, implied dependencies, cleaned mount targets, resource names.
fn finish(tree: &mut Map<String, Value>, name: &str, lookup: &dyn Fn(&str) -> Option<String>) {
    tree.insert("name".into(), json!(name));
    let mut uses_default = false;
    if let Some(Value::Object(services)) = tree.get_mut("services") {
        for svc in services.values_mut() {
            let Some(s) = obj(svc) else { continue };
            if !s.contains_key("provider") && !s.contains_key("network_mode") {
                match s.get("networks").and_then(Value::as_object) {
                    Some(n) if !n.is_empty() => uses_default |= n.contains_key("default"),
                    _ => {
                        s.insert("networks".into(), json!({"default": null}));
                        uses_default = true;
                    }
                }
            }
            if s.get("pull_policy").and_then(Value::as_str) == Some("if_not_present") {
                s.insert("pull_policy".into(), json!("missing"));
            }
            if let Some(b) = s.get_mut("build").and_then(obj) {
                if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
                    b.insert("dockerfile".into(), json!("Dockerfile"));
                }
                if let Some(args) = b.get_mut("args") {
                    resolve_unset(args, lookup, false);
                }
            }
            if let Some(e) = s.get_mut("environment") {
                resolve_unset(e, lookup, true);
            }
            if let Some(Value::Array(vols)) = s.get_mut("volumes") {
                for v in vols.iter_mut().filter_map(obj) {
                    if let Some(Value::String(t)) = v.get("target") {
                        let t = normalize::clean(Path::new(t));
                        v.insert("target".into(), json!(t));
                    }
                }
            }
            normalize::add_implicit_dependencies(s);
        }
    }
    if uses_default {
        let nets = tree.entry("networks").or_insert_with(|| json!({}));
        if let Some(n) = obj(nets) {
            n.entry("default").or_insert(Value::Null);
        }
    }
    for section in ["networks", "volumes", "configs", "secrets"] {
        let Some(Value::Object(defs)) = tree.get_mut(section) else {
            continue;
        };
        for (key, def) in defs.iter_mut() {
            if def.is_null() {
                *def = json!({});
            }
            let Some(d) = obj(def) else { continue };
            if d.get("name").is_none_or(Value::is_null) {
                let external = d.get("external").and_then(Value::as_bool) == Some(true);
                let n = if external {
                    key.clone()
                } else {
                    format!("{name}_{key}")
                };
                d.insert("name".into(), json!(n));
            }
        }
    }
}

/// Entries without a value (`- FOO`, `FOO:`) take the variable's value; unset ones stay
/// valueless (`keep`) or are dropped.
fn resolve_unset(v: &mut Value, lookup: &dyn Fn(&str) -> Option<String>, keep: bool) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                match lookup(&k) {
                    Some(val) => {
                        m.insert(k, json!(val));
                    }
                    None if keep => {}
                    None => {
                        m.remove(&k);
                    }
                }
            }
        }
        Value::Array(items) => {
            items.retain_mut(|i| {
                let Value::String(s) = i else { return true };
                if s.contains('=') {
                    return true;
                }
                match lookup(s) {
                    Some(val) => {
                        *i = json!(format!("{s}={val}"));
                        true
                    }
                    None => keep,
                }
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_nulls_only_lists_the_reference_leaves_nil() {
        let model = json!({
            "services": {"web": {
                "entrypoint": [], "cap_add": [], "security_opt": [], "ports": [],
                "environment": [], "x-ext": [], "command": ["a"]
            }},
            "x-top": []
        });
        assert_eq!(
            json_view(model),
            json!({
                "services": {"web": {
                    "entrypoint": null, "cap_add": [], "security_opt": null, "ports": [],
                    "environment": null, "x-ext": null, "command": ["a"]
                }},
                "x-top": null
            })
        );
    }

    #[test]
    fn unset_values_stay_or_go() {
        let lookup = |k: &str| (k == "SET").then(|| "v".to_string());
        let mut env = json!({"SET": null, "UNSET": null, "GIVEN": "x"});
        resolve_unset(&mut env, &lookup, true);
        assert_eq!(env, json!({"SET": "v", "UNSET": null, "GIVEN": "x"}));
        let mut args = json!(["SET", "UNSET", "A=1"]);
        resolve_unset(&mut args, &lookup, false);
        assert_eq!(args, json!(["SET=v", "A=1"]));
    }
}
