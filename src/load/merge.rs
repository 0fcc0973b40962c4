//! Merging compose files (and `extends` bases) the way compose-go does.
//!
//! Maps merge recursively and the later scalar wins, but many keys have their own rule:
//! `command`, `entrypoint` and `healthcheck.test` replace; environment-like keys merge by
//! variable name; ports, volumes, secrets, configs, devices... merge by their unique key;
//! `!reset` removes a value and `!override` replaces it without merging.

use super::normalize;
use super::yaml::{OVERRIDE, RESET, tag_of};
use serde_json::{Map, Value};

/// Merges `over` onto `base` (both whole compose documents).
pub fn merge_documents(base: Value, over: Value) -> Value {
    let mut path = Vec::new();
    merge_at(&mut path, Some(base), over).unwrap_or(Value::Null)
}

/// Removes the tag markers of a document that is not merged onto anything.
pub fn strip_tags(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if m.len() == 1 && m.contains_key(RESET) {
                return Value::Null;
            }
            if m.len() == 1 && m.contains_key(OVERRIDE) {
                return strip_tags(m.into_iter().next().map(|(_, v)| v).unwrap_or_default());
            }
            let mut out = Map::new();
            for (k, v) in m {
                if let Some((RESET, _)) = tag_of(&v) {
                    continue;
                }
                out.insert(k, strip_tags(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(strip_tags).collect()),
        other => other,
    }
}

fn matches(pattern: &str, path: &[String]) -> bool {
    let mut n = 0;
    for (i, p) in pattern.split('.').enumerate() {
        n += 1;
        match path.get(i) {
            Some(k) if p == "*" || p == k => {}
            _ => return false,
        }
    }
    n == path.len()
}

const REPLACE: &[&str] = &[
    "services.*.command",
    "services.*.entrypoint",
    "services.*.healthcheck.test",
];

/// Keys that take a single string or a list of them.
const STRING_OR_LIST: &[&str] = &[
    "services.*.dns",
    "services.*.dns_search",
    "services.*.dns_opt",
    "services.*.tmpfs",
    "services.*.env_file",
    "services.*.label_file",
];

/// Keys written either as a `k=v` list or a map; merged by key.
const KEY_VALUE: &[&str] = &[
    "services.*.environment",
    "services.*.labels",
    "services.*.annotations",
    "services.*.sysctls",
    "services.*.build.args",
    "services.*.build.labels",
    "services.*.deploy.labels",
    "networks.*.labels",
    "volumes.*.labels",
    "services.*.extra_hosts",
];

/// Lists made unique after merging: later entries replace earlier ones with the same key.
fn unique_key(path: &[String], item: &Value) -> Option<String> {
    let p = |pat: &str| matches(pat, path);
    if p("services.*.ports") {
        // Short and long spellings of the same port are the same entry.
        let long = match item {
            Value::Object(m) => Some(m.clone()),
            Value::String(_) | Value::Number(_) => {
                match normalize::short_port("", &scalar(Some(item))) {
                    Ok(mut entries) if entries.len() == 1 => {
                        entries.pop().and_then(|e| e.as_object().cloned())
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        return Some(match long {
            Some(m) => format!(
                "{}:{}:{}/{}",
                scalar(m.get("host_ip")),
                scalar(m.get("published")),
                scalar(m.get("target")),
                m.get("protocol").and_then(Value::as_str).unwrap_or("tcp")
            ),
            None => scalar(Some(item)),
        });
    }
    if p("services.*.volumes") || p("services.*.devices") {
        return Some(match item {
            Value::Object(m) => scalar(m.get("target")),
            Value::String(s) => {
                let parts = normalize::split_volume_spec(s);
                let target = parts.get(1).unwrap_or(&parts[0]);
                // The reference compares short-syntax volumes after cleaning their target
                // (`/x/` and `/x` are one mount); long-syntax targets as written.
                if p("services.*.volumes") {
                    normalize::clean(std::path::Path::new(target))
                } else {
                    target.to_string()
                }
            }
            other => scalar(Some(other)),
        });
    }
    if p("services.*.secrets") || p("services.*.configs") {
        let dir = if p("services.*.secrets") {
            "/run/secrets"
        } else {
            ""
        };
        return Some(match item {
            Value::Object(m) => match m.get("target") {
                Some(t) => scalar(Some(t)),
                None => format!("{dir}/{}", scalar(m.get("source"))),
            },
            other => format!("{dir}/{}", scalar(Some(other))),
        });
    }
    let kv = [
        "services.*.cap_add",
        "services.*.cap_drop",
        "services.*.dns",
        "services.*.dns_opt",
        "services.*.dns_search",
        "services.*.expose",
        "services.*.links",
        "services.*.profiles",
        "services.*.tmpfs",
        "services.*.networks.*.aliases",
        "services.*.build.platforms",
        "services.*.env_file",
    ];
    if kv.iter().any(|k| p(k)) || KEY_VALUE.iter().any(|k| p(k)) {
        let s = match item {
            Value::Object(m) => scalar(m.get("path")),
            other => scalar(Some(other)),
        };
        return Some(s.split('=').next().unwrap_or_default().to_string());
    }
    None
}

fn scalar(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `{K: v}` / `[K=v]` → `[K=v]` so both spellings merge by key.
/// A map form becomes `k=v` entries sorted as the reference sorts them (the list form
/// keeps its order).
fn to_sequence(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<Value> = m
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Null => Value::String(k),
                    Value::String(s) => Value::String(format!("{k}={s}")),
                    Value::Array(items) => Value::String(format!(
                        "{k}={}",
                        items
                            .iter()
                            .map(|i| scalar(Some(i)))
                            .collect::<Vec<_>>()
                            .join(",")
                    )),
                    other => Value::String(format!("{k}={other}")),
                })
                .collect();
            entries.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            Value::Array(entries)
        }
        Value::String(s) => Value::Array(vec![Value::String(s)]),
        other => other,
    }
}

/// List forms of `depends_on` and service `networks` → map forms.
fn to_map(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Object(
            items
                .into_iter()
                .map(|i| (scalar(Some(&i)), Value::Null))
                .collect(),
        ),
        other => other,
    }
}

/// Makes every list of `doc` unique by its key, as compose-go does after loading each
/// file (so duplicates inside one file collapse too, the later entry winning in place).
pub fn enforce_unicity(doc: Value) -> Value {
    fn walk(path: &mut Vec<String>, v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| {
                        path.push(k.clone());
                        let v = walk(path, v);
                        path.pop();
                        (k, v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(dedupe(path, items)),
            other => other,
        }
    }
    walk(&mut Vec::new(), doc)
}

fn dedupe(path: &[String], items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in items {
        match unique_key(path, &item) {
            Some(k) => match seen.get(&k) {
                Some(&i) => out[i] = item,
                None => {
                    seen.insert(k, out.len());
                    out.push(item);
                }
            },
            None => out.push(item),
        }
    }
    out
}

/// Merges `over` onto `base` at `path`; `None` = the key is removed (`!reset`).
fn merge_at(path: &mut Vec<String>, base: Option<Value>, over: Value) -> Option<Value> {
    match tag_of(&over) {
        Some((RESET, _)) => return None,
        Some((_, inner)) => return Some(strip_tags(inner.clone())),
        None => {}
    }
    let Some(base) = base else {
        let over = strip_tags(over);
        return Some(normalize_for_merge(path, over));
    };
    if REPLACE.iter().any(|p| matches(p, path)) {
        return Some(strip_tags(over));
    }
    if matches("services.*.build", path) {
        let wrap = |v: Value| match v {
            Value::String(s) => serde_json::json!({ "context": s }),
            o => o,
        };
        return merge_maps(path, wrap(base), wrap(over));
    }
    if matches("services.*.depends_on", path) || matches("services.*.networks", path) {
        return merge_maps(path, to_map(base), to_map(over));
    }
    if matches("services.*.ulimits.*", path) && (!base.is_object() || !over.is_object()) {
        return Some(strip_tags(over));
    }
    if matches("services.*.logging", path) {
        let driver = |v: &Value| v.get("driver").cloned();
        if let (Some(a), Some(b)) = (driver(&base), driver(&over))
            && a != b
        {
            return Some(strip_tags(over));
        }
    }
    if KEY_VALUE.iter().any(|p| matches(p, path)) {
        // `key: !reset` on one entry removes it (the reference ignores it for environment).
        let mut over = over;
        let mut reset_keys = Vec::new();
        if let Value::Object(m) = &mut over {
            m.retain(|k, v| {
                let reset = matches!(tag_of(v), Some((RESET, _)));
                if reset {
                    reset_keys.push(k.clone());
                }
                !reset
            });
        }
        let (Value::Array(mut a), Value::Array(b)) = (to_sequence(base), to_sequence(over)) else {
            return Some(Value::Null);
        };
        if !matches("services.*.environment", path) {
            a.retain(|item| {
                let key = scalar(Some(item));
                let key = key.split('=').next().unwrap_or_default();
                !reset_keys.iter().any(|k| k == key)
            });
        }
        a.extend(b.into_iter().map(strip_tags));
        return Some(Value::Array(dedupe(path, a)));
    }
    match (base, over) {
        (b @ Value::Object(_), o @ Value::Object(_)) => merge_maps(path, b, o),
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b.into_iter().map(strip_tags));
            Some(Value::Array(dedupe(path, a)))
        }
        // `dns: 1.1.1.1` is short for `dns: [1.1.1.1]`: either spelling appends.
        (a @ (Value::String(_) | Value::Array(_)), b @ (Value::String(_) | Value::Array(_)))
            if STRING_OR_LIST.iter().any(|p| matches(p, path)) =>
        {
            let as_list = |v: Value| match v {
                Value::Array(items) => items,
                other => vec![other],
            };
            let mut items = as_list(a);
            items.extend(as_list(b));
            Some(Value::Array(dedupe(path, items)))
        }
        (_, o) => Some(strip_tags(o)),
    }
}

/// A value merged onto nothing still gets its list made unique.
fn normalize_for_merge(path: &[String], v: Value) -> Value {
    match v {
        Value::Array(items) if !path.is_empty() => Value::Array(dedupe(path, items)),
        other => other,
    }
}

fn merge_maps(path: &mut Vec<String>, base: Value, over: Value) -> Option<Value> {
    let (Value::Object(mut out), Value::Object(over)) = (base, over) else {
        return None;
    };
    for (k, v) in over {
        path.push(k.clone());
        let old = out.remove(&k);
        if let Some(new) = merge_at(path, old, v) {
            out.insert(k, new);
        }
        path.pop();
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(a: Value, b: Value) -> Value {
        merge_documents(a, b)
    }

    #[test]
    fn maps_recurse_scalars_replace_lists_append() {
        let got = m(
            json!({"services": {"web": {"image": "a", "cap_add": ["X"], "deploy": {"replicas": 1, "mode": "replicated"}}}}),
            json!({"services": {"web": {"image": "b", "cap_add": ["Y", "X"], "deploy": {"replicas": 2}}}}),
        );
        assert_eq!(
            got,
            json!({"services": {"web": {"image": "b", "cap_add": ["X", "Y"], "deploy": {"replicas": 2, "mode": "replicated"}}}})
        );
    }

    #[test]
    fn command_replaces_environment_merges_by_key() {
        let got = m(
            json!({"services": {"web": {"command": ["a", "b"], "environment": {"A": 1, "B": "x"}}}}),
            json!({"services": {"web": {"command": ["c"], "environment": ["B=y", "C"]}}}),
        );
        assert_eq!(got["services"]["web"]["command"], json!(["c"]));
        assert_eq!(
            got["services"]["web"]["environment"],
            json!(["A=1", "B=y", "C"])
        );
    }

    #[test]
    fn ports_and_volumes_by_unique_key() {
        let got = m(
            json!({"services": {"web": {"ports": ["80:80"], "volumes": ["va:/data", "vb:/other"]}}}),
            json!({"services": {"web": {"ports": ["80:80", "443:443"], "volumes": ["vc:/data"]}}}),
        );
        assert_eq!(got["services"]["web"]["ports"], json!(["80:80", "443:443"]));
        assert_eq!(
            got["services"]["web"]["volumes"],
            json!(["vc:/data", "vb:/other"])
        );
    }

    #[test]
    fn reset_and_override() {
        let got = m(
            json!({"services": {"web": {"ports": ["80:80"], "labels": {"a": "1"}, "image": "x"}}}),
            json!({"services": {"web": {"ports": {"!reset": []}, "labels": {"!override": {"b": "2"}}}}}),
        );
        assert_eq!(
            got,
            json!({"services": {"web": {"labels": {"b": "2"}, "image": "x"}}})
        );
    }

    #[test]
    fn depends_on_list_merges_with_map() {
        let got = m(
            json!({"services": {"web": {"depends_on": ["db"]}}}),
            json!({"services": {"web": {"depends_on": {"cache": {"condition": "service_healthy"}}}}}),
        );
        assert_eq!(
            got["services"]["web"]["depends_on"],
            json!({"db": null, "cache": {"condition": "service_healthy"}})
        );
    }
}
