//! Short syntax → long syntax, and compose-go's defaults, on the merged tree.
//!
//! After this stage every key has the one shape `docker compose config --format json`
//! prints (ports one entry per port, volumes as mount objects, durations as Go strings,
//! byte sizes as decimal strings, ...), so the typed model deserializes without guessing.
//! Type errors found here carry the key path.

use crate::model::{Bytes, GoDuration};
use serde_json::{Map, Value, json};
use std::path::Path;

/// A type or syntax error at a key path.
pub type Fail = (String, String);
type R<T> = Result<T, Fail>;

/// What normalizing needs besides the tree.
pub struct Ctx<'a> {
    pub dir: &'a Path,
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Reads `env_file`s (off when only checking one file of several).
    pub read_env_files: bool,
}

fn fail<T>(path: &str, msg: impl Into<String>) -> R<T> {
    Err((path.to_string(), msg.into()))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn expected<T>(path: &str, what: &str, v: &Value) -> R<T> {
    let got = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    };
    fail(path, format!("expected {what}, got {got}"))
}

fn join(path: &str, key: &str) -> String {
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
fn scalar_string(path: &str, v: &Value) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => expected(path, "a string, number or boolean", other),
    }
}

fn int(path: &str, v: &Value) -> R<i64> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        Value::Number(n) if n.is_u64() => expected(path, "a smaller integer", v),
        other => expected(path, "an integer", other),
    }
}

fn uint(path: &str, v: &Value) -> R<i64> {
    let n = int(path, v)?;
    if n < 0 {
        return fail(path, format!("expected a non-negative integer, got {n}"));
    }
    Ok(n)
}

fn float(path: &str, v: &Value) -> R<f64> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or_default()),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(f),
            _ => expected(path, "a number", v),
        },
        other => expected(path, "a number", other),
    }
}

fn boolean(path: &str, v: &Value) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => expected(path, "a boolean", other),
    }
}

fn object<'v>(path: &str, v: &'v Value) -> R<&'v Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => expected(path, "a mapping", other),
    }
}

fn list<'v>(path: &str, v: &'v Value) -> R<&'v Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => expected(path, "a list", other),
    }
}

fn string_list(path: &str, v: &Value) -> R<Value> {
    let items = list(path, v)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(Value::String(string(&format!("{path}[{i}]"), item)?));
    }
    Ok(Value::Array(out))
}

/// `x` or `[x, y]` → `[x, y]`.
fn string_or_list(path: &str, v: &Value) -> R<Value> {
    match v {
        Value::String(s) => Ok(json!([s])),
        other => string_list(path, other),
    }
}

fn duration(path: &str, v: &Value) -> R<Value> {
    let s = string(path, v)?;
    match GoDuration::parse(&s) {
        Some(d) => Ok(Value::String(d.to_string())),
        None => fail(path, format!("invalid duration {s:?}")),
    }
}

fn bytes(path: &str, v: &Value) -> R<Value> {
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
fn key_values(path: &str, v: &Value, null_is_empty: bool) -> R<Map<String, Value>> {
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
                let s = scalar_string(&format!("{path}[{i}]"), item)?;
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

fn string_map(path: &str, v: &Value) -> R<Value> {
    Ok(Value::Object(key_values(path, v, true)?))
}

/// Splits a command line like a POSIX shell (quotes and backslashes), no expansion.
pub fn shell_split(path: &str, s: &str) -> R<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return fail(path, "unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => cur.push(n),
                            Some('\n') => {}
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return fail(path, "unterminated double quote"),
                        },
                        Some(n) => cur.push(n),
                        None => return fail(path, "unterminated double quote"),
                    }
                }
            }
            other => {
                in_word = true;
                cur.push(other);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn command(path: &str, v: &Value) -> R<Value> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::String(s) => Ok(json!(shell_split(path, s)?)),
        other => string_list(path, other),
    }
}

fn abs_path(dir: &Path, p: &str) -> String {
    let expanded = match p.strip_prefix("~/") {
        Some(rest) => match std::env::var("HOME") {
            Ok(h) => format!("{h}/{rest}"),
            Err(_) => p.to_string(),
        },
        None => p.to_string(),
    };
    if is_windows_path(&expanded) {
        return expanded;
    }
    let joined = if Path::new(&expanded).is_absolute() {
        std::path::PathBuf::from(expanded)
    } else {
        dir.join(expanded)
    };
    clean(&joined)
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

/// `gpus: all` or a list of device requests.
fn gpus(path: &str, v: &Value) -> R<Value> {
    match v {
        Value::String(s) if s == "all" => Ok(json!([{"count": -1}])),
        other => {
            let wrapped = json!({ "devices": other });
            let r = resource(path, &wrapped)?;
            Ok(r["devices"].clone())
        }
    }
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
        let (file, required) = match e {
            Value::String(s) => (s.clone(), true),
            Value::Object(m) => {
                let file = string(&join(&p, "path"), m.get("path").unwrap_or(&Value::Null))?;
                let required = match m.get("required") {
                    Some(r) => boolean(&join(&p, "required"), r)?,
                    None => true,
                };
                (file, required)
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
        let vars = super::dotenv::parse(&text, ctx.lookup)
            .map_err(|e| (p.clone(), format!("{full}: {e}")))?;
        for (k, val) in vars {
            out.insert(k, Value::String(val));
        }
    }
    Ok(out)
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

fn port_number(path: &str, s: &str) -> R<u32> {
    match s.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(n),
        _ => fail(path, format!("invalid port {s:?}")),
    }
}

fn port_range(path: &str, s: &str) -> R<(u32, u32)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(path, a)?, port_number(path, b)?);
            if b < a {
                return fail(path, format!("invalid port range {s:?}"));
            }
            Ok((a, b))
        }
        None => {
            let n = port_number(path, s)?;
            Ok((n, n))
        }
    }
}

/// `[ip:][published:]target[/proto]` → one long-form entry per target port.
pub fn short_port(path: &str, spec: &str) -> R<Vec<Value>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    // IPv6 host addresses are bracketed: [::1]:80:80
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        match r.split_once("]:") {
            Some((ip, after)) => (Some(ip.to_string()), after),
            None => return fail(path, format!("invalid port {spec:?}")),
        }
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0].to_string()), &rest[parts[0].len() + 1..]),
            _ => {
                // Unbracketed IPv6: everything before the last two fields.
                let n = parts.len();
                let ip_len = rest.len() - parts[n - 2].len() - parts[n - 1].len() - 2;
                (Some(rest[..ip_len].to_string()), &rest[ip_len + 1..])
            }
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (Some(p), t),
        None => (None, rest),
    };
    let (t0, t1) = port_range(path, target)?;
    let published_range = match published {
        Some(p) if !p.is_empty() => Some((p, port_range(path, p)?)),
        _ => None,
    };
    let count = t1 - t0 + 1;
    let mut out = Vec::new();
    for i in 0..count {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if let Some(ip) = &host_ip
            && !ip.is_empty()
        {
            m.insert("host_ip".into(), json!(ip));
        }
        m.insert("target".into(), json!(t0 + i));
        if let Some((text, (p0, p1))) = published_range {
            let published = if count == 1 {
                text.to_string()
            } else if p1 - p0 + 1 == count {
                (p0 + i).to_string()
            } else {
                return fail(path, format!("port ranges don't match in {spec:?}"));
            };
            m.insert("published".into(), json!(published));
        }
        m.insert("protocol".into(), json!(proto));
        out.push(Value::Object(m));
    }
    Ok(out)
}

fn ports(path: &str, v: &Value) -> R<Value> {
    let mut out = Vec::new();
    for (i, item) in list(path, v)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match item {
            Value::Number(n) => out.extend(short_port(&p, &n.to_string())?),
            Value::String(s) => out.extend(short_port(&p, s)?),
            Value::Object(m) => {
                let mut e = Map::new();
                for (k, val) in m {
                    let kp = join(&p, k);
                    let val = match k.as_str() {
                        "target" => json!(uint(&kp, val)?),
                        "published" => json!(scalar_string(&kp, val)?),
                        "host_ip" | "protocol" | "mode" | "name" | "app_protocol" => {
                            json!(string(&kp, val)?)
                        }
                        _ => val.clone(),
                    };
                    e.insert(k.clone(), val);
                }
                e.entry("mode").or_insert(json!("ingress"));
                e.entry("protocol").or_insert(json!("tcp"));
                if !e.contains_key("target") {
                    return fail(&p, "missing target port");
                }
                out.push(Value::Object(e));
            }
            other => return expected(&p, "a port", other),
        }
    }
    Ok(Value::Array(out))
}

fn is_path_like(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~') || is_windows_path(s)
}

/// `c:/x` or `c:\x`: absolute on Windows, left as written.
fn is_windows_path(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'/' | b'\\')
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
fn short_volume(ctx: &Ctx, path: &str, spec: &str) -> R<Value> {
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
            other => return fail(path, format!("unknown volume option {other:?} in {spec:?}")),
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

fn long_volume(ctx: &Ctx, path: &str, m: &Map<String, Value>) -> R<Value> {
    let mut out = Map::new();
    let ty = string(&join(path, "type"), m.get("type").unwrap_or(&Value::Null))?;
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
                    let s = bytes(&join(&p, "size"), s)?;
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

fn volumes(ctx: &Ctx, path: &str, v: &Value) -> R<Value> {
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

fn healthcheck(path: &str, v: &Value) -> R<Value> {
    let m = object(path, v)?;
    let mut out = Map::new();
    for (k, v) in m {
        let p = join(path, k);
        let v = match k.as_str() {
            "test" => match v {
                Value::String(s) => json!(["CMD-SHELL", s]),
                other => string_list(&p, other)?,
            },
            "interval" | "timeout" | "start_period" | "start_interval" => duration(&p, v)?,
            "retries" => json!(uint(&p, v)?),
            "disable" => json!(boolean(&p, v)?),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Ok(Value::Object(out))
}

fn update_config(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    for (k, v) in object(path, v)? {
        let p = join(path, k);
        let v = match k.as_str() {
            "parallelism" => json!(uint(&p, v)?),
            "delay" | "monitor" => duration(&p, v)?,
            "max_failure_ratio" => json!(float(&p, v)?),
            "failure_action" | "order" => json!(string(&p, v)?),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Ok(Value::Object(out))
}

fn resource(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    for (k, v) in object(path, v)? {
        let p = join(path, k);
        let v = match k.as_str() {
            "cpus" => json!(float(&p, v)?),
            "memory" => bytes(&p, v)?,
            "pids" => json!(int(&p, v)?),
            "devices" => {
                let mut devs = Vec::new();
                for (i, d) in list(&p, v)?.iter().enumerate() {
                    let dp = format!("{p}[{i}]");
                    let mut dm = object(&dp, d)?.clone();
                    if let Some(c) = dm.get("count") {
                        let c = match c {
                            Value::String(s) if s == "all" => -1,
                            other => int(&join(&dp, "count"), other)?,
                        };
                        dm.insert("count".into(), json!(c));
                    }
                    devs.push(Value::Object(dm));
                }
                Value::Array(devs)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Ok(Value::Object(out))
}

fn deploy(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    for (k, v) in object(path, v)? {
        let p = join(path, k);
        let v = match k.as_str() {
            "mode" | "endpoint_mode" => json!(string(&p, v)?),
            "replicas" => json!(int(&p, v)?),
            "labels" => string_map(&p, v)?,
            "update_config" | "rollback_config" => update_config(&p, v)?,
            "resources" => {
                let mut r = Map::new();
                for (rk, rv) in object(&p, v)? {
                    let rp = join(&p, rk);
                    r.insert(rk.clone(), resource(&rp, rv)?);
                }
                Value::Object(r)
            }
            "restart_policy" => {
                let mut r = Map::new();
                for (rk, rv) in object(&p, v)? {
                    let rp = join(&p, rk);
                    let rv = match rk.as_str() {
                        "delay" | "window" => duration(&rp, rv)?,
                        "max_attempts" => json!(uint(&rp, rv)?),
                        "condition" => json!(string(&rp, rv)?),
                        _ => rv.clone(),
                    };
                    r.insert(rk.clone(), rv);
                }
                Value::Object(r)
            }
            "placement" => {
                let mut r = Map::new();
                for (rk, rv) in object(&p, v)? {
                    let rp = join(&p, rk);
                    let rv = match rk.as_str() {
                        "constraints" => string_list(&rp, rv)?,
                        "max_replicas_per_node" => json!(uint(&rp, rv)?),
                        _ => rv.clone(),
                    };
                    r.insert(rk.clone(), rv);
                }
                Value::Object(r)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    out.entry("resources").or_insert(json!({}));
    out.entry("placement").or_insert(json!({}));
    Ok(Value::Object(out))
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
                        "condition" => *val = json!(string(&join(&p, k), val)?),
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

fn extra_hosts(path: &str, v: &Value) -> R<Value> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let s = string(&format!("{path}[{i}]"), item)?;
                let entry = match s.split_once('=') {
                    Some(_) => s,
                    None => match s.split_once(':') {
                        Some((h, ip)) => format!("{h}={ip}"),
                        None => {
                            return fail(
                                &format!("{path}[{i}]"),
                                format!("invalid extra host {s:?}"),
                            );
                        }
                    },
                };
                out.push(json!(entry));
            }
        }
        Value::Object(m) => {
            for (host, ips) in m {
                let p = join(path, host);
                match ips {
                    Value::Array(list) => {
                        for ip in list {
                            out.push(json!(format!("{host}={}", string(&p, ip)?)));
                        }
                    }
                    other => out.push(json!(format!("{host}={}", string(&p, other)?))),
                }
            }
            out.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
        other => return expected(path, "a list or mapping", other),
    }
    Ok(Value::Array(out))
}

fn devices(path: &str, v: &Value) -> R<Value> {
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
        let o = key_values(&join(path, "options"), o, false)?;
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
            "environment" | "env_file" | "extends" => continue,
            "build" => build(ctx, &p, v)?,
            "command" | "entrypoint" => command(&p, v)?,
            "labels" | "annotations" | "sysctls" => string_map(&p, v)?,
            "ports" => ports(&p, v)?,
            "expose" => {
                let mut e = Vec::new();
                for (i, x) in list(&p, v)?.iter().enumerate() {
                    e.push(json!(scalar_string(&format!("{p}[{i}]"), x)?));
                }
                Value::Array(e)
            }
            "volumes" => volumes(ctx, &p, v)?,
            "tmpfs" | "dns" | "dns_search" | "dns_opt" => string_or_list(&p, v)?,
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
            "image" | "restart" | "user" | "working_dir" | "hostname" | "domainname"
            | "stop_signal" | "pid" | "ipc" | "network_mode" | "pull_policy" | "platform"
            | "cpuset" | "cgroup" | "cgroup_parent" | "runtime" | "userns_mode" | "uts"
            | "isolation" | "mac_address" | "volume_driver" => json!(string(&p, v)?),
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
    legacy_consistency(path, &out)?;
    Ok(Value::Object(out))
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
            "labels" | "driver_opts" => string_map(&p, &v)?,
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
    if section == "networks" {
        let ipam = out.entry("ipam").or_insert(json!({}));
        // compose-go's IPAM model has no `options`: the reference drops them.
        if let Some(m) = ipam.as_object_mut() {
            m.remove("options");
        }
    }
    Ok(Value::Object(out))
}
