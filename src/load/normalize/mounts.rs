//! Mount syntax: `source:target[:options]` and the long form; devices.
//!
//! Decides bind vs named volume like compose-go (paths start with `.`, `/`, `~` or a drive
//! letter) and resolves bind sources against the project directory.

use super::values::*;
use super::{Ctx, R};
use serde_json::{Map, Value, json};

pub(super) fn is_path_like(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~') || is_windows_path(s)
}

/// Splits on `:` but keeps Windows drive letters (`c:/x`) inside their part, as compose-go.
pub fn split_volume_spec(spec: &str) -> Vec<&str> {
    let b = spec.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' {
            let drive = i == start + 1
                && b[start].is_ascii_alphabetic()
                && matches!(b.get(i + 1), Some(b'/' | b'\\'));
            if !drive {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
        }
        i += 1;
    }
    parts.push(&spec[start..]);
    parts
}

/// `source:target[:options]` → mount object.
pub(super) fn short_volume(ctx: &Ctx, path: &str, spec: &str) -> R<Value> {
    let parts = split_volume_spec(spec);
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, o] => (Some(*s), *t, Some(*o)),
        _ => return fail(path, format!("invalid volume specification {spec:?}")),
    };
    if target.is_empty() {
        return fail(path, format!("invalid volume specification {spec:?}"));
    }
    let mut m = Map::new();
    let mut bind = Map::new();
    let mut volume = Map::new();
    let is_bind = source.is_some_and(is_path_like);
    m.insert(
        "type".into(),
        json!(match source {
            Some(_) if is_bind => "bind",
            _ => "volume",
        }),
    );
    if let Some(s) = source {
        let s = if is_bind {
            abs_path(ctx.dir, s)
        } else {
            s.to_string()
        };
        m.insert("source".into(), json!(s));
    }
    m.insert("target".into(), json!(target));
    for opt in opts
        .unwrap_or_default()
        .split(',')
        .filter(|o| !o.is_empty())
    {
        match opt {
            "ro" => {
                m.insert("read_only".into(), json!(true));
            }
            "rw" => {}
            "z" | "Z" => {
                bind.insert("selinux".into(), json!(opt));
            }
            "nocopy" => {
                volume.insert("nocopy".into(), json!(true));
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                bind.insert("propagation".into(), json!(opt));
            }
            // Accepted for Docker Desktop files; the reference drops them too.
            "consistent" | "cached" | "delegated" => {}
            // The reference ignores options it does not know.
            _ => {}
        }
    }
    if is_bind {
        bind.insert("create_host_path".into(), json!(true));
        m.insert("bind".into(), Value::Object(bind));
    } else {
        m.insert("volume".into(), Value::Object(volume));
    }
    Ok(Value::Object(m))
}

pub(super) fn long_volume(ctx: &Ctx, path: &str, m: &Map<String, Value>) -> R<Value> {
    let mut out = Map::new();
    let ty = string(&join(path, "type"), m.get("type").unwrap_or(&Value::Null))?;
    one_of(
        &join(path, "type"),
        &ty,
        &["bind", "volume", "tmpfs", "cluster", "npipe", "image"],
    )?;
    for (k, v) in m {
        let p = join(path, k);
        let v = match k.as_str() {
            "source" if ty == "bind" => json!(abs_path(ctx.dir, &string(&p, v)?)),
            "source" | "target" | "consistency" | "type" => json!(string(&p, v)?),
            "read_only" => json!(boolean(&p, v)?),
            "bind" => {
                let mut b = object(&p, v)?.clone();
                for (bk, bv) in b.iter_mut() {
                    let bp = join(&p, bk);
                    match bk.as_str() {
                        "create_host_path" => {
                            *bv = json!(boolean(&bp, bv)?);
                        }
                        "propagation" | "selinux" => {
                            *bv = json!(string(&bp, bv)?);
                        }
                        _ => {}
                    }
                }
                Value::Object(b)
            }
            "volume" => {
                let mut o = object(&p, v)?.clone();
                if let Some(n) = o.get("nocopy") {
                    let n = boolean(&join(&p, "nocopy"), n)?;
                    o.insert("nocopy".into(), json!(n));
                }
                Value::Object(o)
            }
            "tmpfs" => {
                let mut o = object(&p, v)?.clone();
                if let Some(s) = o.get("size") {
                    let at = join(&p, "size");
                    let s = bytes(&at, s)?;
                    if s.as_str().is_some_and(|n| n.starts_with('-')) {
                        return fail(&at, "a tmpfs size must not be negative");
                    }
                    o.insert("size".into(), s);
                }
                if let Some(mode) = o.get("mode") {
                    let mode = match mode {
                        Value::String(s) => i64::from_str_radix(s, 8)
                            .map_err(|_| (join(&p, "mode"), format!("invalid file mode {s:?}")))?,
                        other => int(&join(&p, "mode"), other)?,
                    };
                    o.insert("mode".into(), json!(mode));
                }
                Value::Object(o)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Ok(Value::Object(out))
}

pub(super) fn volumes(ctx: &Ctx, path: &str, v: &Value) -> R<Value> {
    let mut out = Vec::new();
    for (i, item) in list(path, v)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        out.push(match item {
            Value::String(s) => short_volume(ctx, &p, s)?,
            Value::Object(m) => long_volume(ctx, &p, m)?,
            other => return expected(&p, "a volume", other),
        });
    }
    Ok(Value::Array(out))
}

pub(super) fn devices(path: &str, v: &Value) -> R<Value> {
    let mut out = Vec::new();
    for (i, item) in list(path, v)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        out.push(match item {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let (src, dst, perm) = match parts.as_slice() {
                    [a] => (*a, *a, "rwm"),
                    [a, b] => (*a, *b, "rwm"),
                    [a, b, c] => (*a, *b, *c),
                    _ => return fail(&p, format!("invalid device {s:?}")),
                };
                json!({"source": src, "target": dst, "permissions": perm})
            }
            other => Value::Object(object(&p, other)?.clone()),
        });
    }
    Ok(Value::Array(out))
}
