//! Mount syntax: `source:target[:options]` and the long form; devices.
//!
//! Decides bind vs named volume like compose-go (paths start with `.`, `/`, `~` or a drive
//! letter) and resolves bind sources against the project directory.

use super::values::*;
use super::{Ctx, R, fail};
use serde_json::{Map, Value, json};

/// compose-go's `isFilePath`: a short-syntax source starting with `.`, `/`, `~`, `\\` (a
/// Windows named pipe) or a drive letter is a bind mount; anything else names a volume.
pub(super) fn is_path_like(s: &str) -> bool {
    let b = s.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    s.starts_with(['.', '/', '~']) || s.starts_with(r"\\") || drive
}

/// Splits on `:` as compose-go's volume parser does: a drive letter (`c:/x`) stays inside
/// its part (a one-letter part before `:` is taken for a drive, slash or not), and so does a
/// `${...}` left uninterpolated (`--no-interpolate`).
pub fn split_volume_spec(spec: &str) -> Vec<&str> {
    let b = spec.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for i in 0..b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 => {
                let drive = i == start + 1 && b[start].is_ascii_alphabetic();
                if !drive {
                    parts.push(&spec[start..i]);
                    start = i + 1;
                }
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

/// A container path as the reference prints it: lexically cleaned (`/var/www/html/` →
/// `/var/www/html`), for every mount type and both syntaxes.
pub(super) fn clean_target(target: &str) -> String {
    clean(std::path::Path::new(target))
}

/// `source:target[:options]` → mount object, as compose-go's `ParseVolume`.
///
/// Options are not tied to the mount type: `:Z` or `:rshared` on a named volume still
/// lands in `bind` (the engine applies SELinux labels to volumes too), and `:nocopy` on a
/// bind mount in `volume`; `rw` after `ro` makes it writable again.
pub(super) fn short_volume(ctx: &Ctx, path: &str, spec: &str) -> R<Value> {
    let mut m = Map::new();
    if spec.is_empty() {
        return fail(path, "invalid empty volume spec");
    }
    // One or two bytes can only be a target.
    if spec.len() <= 2 {
        m.insert("type".into(), json!("volume"));
        m.insert("target".into(), json!(clean_target(spec)));
        return Ok(Value::Object(m));
    }
    let parts = split_volume_spec(spec);
    if parts.iter().any(|p| p.is_empty()) {
        return fail(
            path,
            format!("invalid spec: {spec}: empty section between colons"),
        );
    }
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, o] => (Some(*s), *t, Some(*o)),
        _ => return fail(path, format!("invalid spec: {spec}: too many colons")),
    };
    let mut bind: Option<Map<String, Value>> = None;
    let mut volume: Option<Map<String, Value>> = None;
    let mut read_only = false;
    for opt in opts.unwrap_or_default().split(',') {
        match opt {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => volume = Some(Map::from_iter([("nocopy".into(), json!(true))])),
            "z" | "Z" => {
                bind.get_or_insert_default()
                    .insert("selinux".into(), json!(opt));
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                bind.get_or_insert_default()
                    .insert("propagation".into(), json!(opt));
            }
            // The reference ignores options it does not know (`cached`, `delegated`, ...).
            _ => {}
        }
    }
    let is_bind = source.is_some_and(is_path_like);
    m.insert(
        "type".into(),
        json!(if is_bind { "bind" } else { "volume" }),
    );
    if let Some(s) = source {
        let s = if is_bind {
            abs_path(ctx.dir, s)
        } else {
            s.to_string()
        };
        m.insert("source".into(), json!(s));
    }
    m.insert("target".into(), json!(clean_target(target)));
    if read_only {
        m.insert("read_only".into(), json!(true));
    }
    if is_bind {
        // Docker-compose v1 created missing host paths for the short syntax; compose keeps it.
        bind.get_or_insert_default()
            .insert("create_host_path".into(), json!(true));
    } else {
        volume.get_or_insert_default();
    }
    if let Some(b) = bind {
        m.insert("bind".into(), Value::Object(b));
    }
    if let Some(v) = volume {
        m.insert("volume".into(), Value::Object(v));
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
            // An empty source is an anonymous volume, printed without one.
            "source" if v.as_str() == Some("") => continue,
            "target" => json!(clean_target(&string(&p, v)?)),
            "source" | "consistency" | "type" => json!(string(&p, v)?),
            "read_only" => json!(boolean(&p, v)?),
            "bind" => {
                let mut b = object(&p, v)?.clone();
                for (bk, bv) in b.iter_mut() {
                    let bp = join(&p, bk);
                    match bk.as_str() {
                        "create_host_path" => {
                            *bv = json!(boolean(&bp, bv)?);
                        }
                        "propagation" => {
                            *bv = json!(string(&bp, bv)?);
                        }
                        "selinux" => {
                            let s = string(&bp, bv)?;
                            one_of(&bp, &s, &["z", "Z"])?;
                            *bv = json!(s);
                        }
                        "recursive" => {
                            let r = string(&bp, bv)?;
                            one_of(&bp, &r, &["enabled", "disabled", "writable", "readonly"])?;
                            *bv = json!(r);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn splitting_keeps_drives_and_variables_whole() {
        assert_eq!(split_volume_spec("./a:/b:ro"), ["./a", "/b", "ro"]);
        assert_eq!(split_volume_spec("c:/data:/data"), ["c:/data", "/data"]);
        // One letter before `:` is a drive, slash or not (compose-go's rule).
        assert_eq!(split_volume_spec("a:/g"), ["a:/g"]);
        assert_eq!(
            split_volume_spec("${DATA:-./data}:/data"),
            ["${DATA:-./data}", "/data"]
        );
    }

    #[test]
    fn short_volumes_follow_parse_volume() {
        let lookup = |_: &str| None;
        let ctx = Ctx {
            dir: Path::new("/p"),
            lookup: &lookup,
            read_env_files: false,
        };
        let v = |s: &str| short_volume(&ctx, "v", s).unwrap();
        assert_eq!(
            v("data:/var/lib/data/:Z"),
            json!({"type": "volume", "source": "data", "target": "/var/lib/data",
                   "bind": {"selinux": "Z"}, "volume": {}})
        );
        assert_eq!(
            v("/srv//www/:/www:ro,rw,nocopy"),
            json!({"type": "bind", "source": "/srv//www/", "target": "/www",
                   "bind": {"create_host_path": true}, "volume": {"nocopy": true}})
        );
        assert_eq!(v("ab"), json!({"type": "volume", "target": "ab"}));
        assert!(short_volume(&ctx, "v", "ab::c").is_err());
        assert!(short_volume(&ctx, "v", "./a:/b:ro:x").is_err());
    }
}
