//! Typed reading of tree values: each helper checks one shape and reports the key path.
//!
//! Shared by the normalizers so type errors read the same everywhere
//! (`expected an integer, got "three"`), plus path helpers.

use super::{R, fail};
use crate::model::{Bytes, GoDuration};
use serde_json::{Map, Value, json};
use std::path::Path;

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub(super) fn expected<T>(path: &str, what: &str, v: &Value) -> R<T> {
    let got = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    };
    fail(path, format!("expected {what}, got {got}"))
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn string(path: &str, v: &Value) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => expected(path, "a string", other),
    }
}

/// Scalars printed as strings (labels, env values, sysctls accept numbers and booleans).
pub(super) fn scalar_string(path: &str, v: &Value) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => expected(path, "a string, number or boolean", other),
    }
}

pub(super) fn int(path: &str, v: &Value) -> R<i64> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        Value::Number(n) if n.is_u64() => expected(path, "a smaller integer", v),
        other => expected(path, "an integer", other),
    }
}

pub(super) fn uint(path: &str, v: &Value) -> R<i64> {
    let n = int(path, v)?;
    if n < 0 {
        return fail(path, format!("expected a non-negative integer, got {n}"));
    }
    Ok(n)
}

pub(super) fn float(path: &str, v: &Value) -> R<f64> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or_default()),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(f),
            _ => expected(path, "a number", v),
        },
        other => expected(path, "a number", other),
    }
}

pub(super) fn boolean(path: &str, v: &Value) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => expected(path, "a boolean", other),
    }
}

pub(super) fn object<'v>(path: &str, v: &'v Value) -> R<&'v Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => expected(path, "a mapping", other),
    }
}

pub(super) fn list<'v>(path: &str, v: &'v Value) -> R<&'v Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => expected(path, "a list", other),
    }
}

/// A string from a fixed set.
pub(super) fn one_of(path: &str, v: &str, allowed: &[&str]) -> R<()> {
    if allowed.contains(&v) {
        return Ok(());
    }
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    fail(
        path,
        format!("value must be one of {}, got {v:?}", quoted.join(", ")),
    )
}

pub(super) fn string_list(path: &str, v: &Value) -> R<Value> {
    let items = list(path, v)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(Value::String(string(&format!("{path}[{i}]"), item)?));
    }
    Ok(Value::Array(out))
}

/// `x` or `[x, y]` → `[x, y]`.
pub(super) fn string_or_list(path: &str, v: &Value) -> R<Value> {
    match v {
        Value::String(s) => Ok(json!([s])),
        other => string_list(path, other),
    }
}

pub(super) fn duration(path: &str, v: &Value) -> R<Value> {
    let s = string(path, v)?;
    match GoDuration::parse(&s) {
        // Every Compose duration is an interval, a timeout or a wait: none can be negative.
        Some(d) if d.0 < 0 => fail(
            path,
            format!("invalid duration {s:?}: it must not be negative"),
        ),
        Some(d) => Ok(Value::String(d.to_string())),
        None => fail(path, format!("invalid duration {s:?}")),
    }
}

pub(super) fn bytes(path: &str, v: &Value) -> R<Value> {
    let b = match v {
        Value::Number(n) if n.is_i64() => Bytes(n.as_i64().unwrap_or_default()),
        Value::String(s) => match Bytes::parse(s) {
            Some(b) => b,
            None => return fail(path, format!("invalid byte size {s:?}")),
        },
        other => return expected(path, "a byte size", other),
    };
    Ok(Value::String(b.0.to_string()))
}

/// `[K=v, K]` or `{K: v}` → `{K: v|null}`; `null_is_empty` turns valueless keys into "".
pub(super) fn key_values(path: &str, v: &Value, null_is_empty: bool) -> R<Map<String, Value>> {
    let mut out = Map::new();
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let val = match val {
                    Value::Null if null_is_empty => Value::String(String::new()),
                    Value::Null => Value::Null,
                    other => Value::String(scalar_string(&join(path, k), other)?),
                };
                out.insert(k.clone(), val);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let s = string(&format!("{path}[{i}]"), item)?;
                match s.split_once('=') {
                    Some((k, val)) => out.insert(k.to_string(), Value::String(val.to_string())),
                    None if null_is_empty => out.insert(s, Value::String(String::new())),
                    None => out.insert(s, Value::Null),
                };
            }
        }
        other => return expected(path, "a list or mapping", other),
    }
    Ok(out)
}

pub(super) fn string_map(path: &str, v: &Value) -> R<Value> {
    Ok(Value::Object(key_values(path, v, true)?))
}

pub(super) fn command(path: &str, v: &Value) -> R<Value> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::String(s) => Ok(json!(super::shellwords::split(path, s)?)),
        other => string_list(path, other),
    }
}

/// Resolves a host path from the files against the project directory, as compose-go:
/// `~` is the home directory, a relative path is joined and cleaned, and an absolute
/// path is kept exactly as written (`/srv//data/` stays; the engine resolves it).
pub(super) fn abs_path(dir: &Path, p: &str) -> String {
    let expanded = match p.strip_prefix('~') {
        Some(rest) => match std::env::var("HOME") {
            Ok(h) => clean(&Path::new(&h).join(rest.trim_start_matches('/'))),
            Err(_) => p.to_string(),
        },
        None => p.to_string(),
    };
    if expanded.starts_with('/') || is_windows_path(&expanded) {
        return expanded;
    }
    clean(&dir.join(expanded))
}

/// Lexically cleans a path (`a/./b/../c` → `a/c`), like Go's filepath.Clean.
pub fn clean(p: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<String> = Vec::new();
    let abs = p.is_absolute();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if parts.last().is_some_and(|l| l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..".to_string());
                }
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    let body = parts.join("/");
    match (abs, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// `c:/x` or `c:\x`: absolute on Windows, left as written.
pub(super) fn is_windows_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'/' | b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("/a/./b/../c")), "/a/c");
        assert_eq!(clean(Path::new("/../x")), "/x");
        assert_eq!(clean(Path::new("a/../../b")), "../b");
    }

    #[test]
    fn type_errors_name_the_value() {
        let err = int("services.web.deploy.replicas", &json!("three")).unwrap_err();
        assert_eq!(err.1, "expected an integer, got \"three\"");
        assert_eq!(
            key_values("l", &json!(["a=1", "b"]), true).unwrap(),
            *json!({"a": "1", "b": ""}).as_object().unwrap()
        );
    }
}
