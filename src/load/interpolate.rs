//! Variable interpolation (`$VAR`, `${VAR:-default}`, ...) in compose values.
//!
//! Compose substitutes variables in values only (never keys), before files are merged, and
//! then casts the strings at a fixed set of paths to the integer, float or boolean the
//! schema wants — so `replicas: ${N}` works. Unset variables become "" with a warning.

use serde_json::Value;

/// Replaces variables in `s`. `warn` is called once per unset variable used without a default.
pub fn substitute(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(&str),
) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = s[i..].find('$').map_or(s.len(), |n| i + n);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let end = matching_brace(s, i + 2).ok_or_else(invalid)?;
                out.push_str(&braced(&s[i + 2..end], lookup, warn)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let end = name_end(s, i + 1);
                let name = &s[i + 1..end];
                out.push_str(&value_of(name, lookup, warn));
                i = end;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn invalid() -> String {
    "invalid interpolation format".to_string()
}

fn name_end(s: &str, from: usize) -> usize {
    s[from..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(s.len(), |n| from + n)
}

/// Index of the `}` closing the `${` whose body starts at `from`, honouring nesting.
fn matching_brace(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn value_of(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(&str),
) -> String {
    lookup(name).unwrap_or_else(|| {
        warn(name);
        String::new()
    })
}

fn braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(&str),
) -> Result<String, String> {
    let end = name_end(body, 0);
    let name = &body[..end];
    if name.is_empty() || !(name.as_bytes()[0].is_ascii_alphabetic() || name.starts_with('_')) {
        return Err(invalid());
    }
    let op = &body[end..];
    if op.is_empty() {
        return Ok(value_of(name, lookup, warn));
    }
    let value = lookup(name);
    let (colon, rest) = match op.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, op),
    };
    let Some(kind) = rest.chars().next() else {
        return Err(invalid());
    };
    let arg = &rest[kind.len_utf8()..];
    // With a colon an empty value counts as unset.
    let set = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    match kind {
        '-' => {
            if set {
                Ok(value.unwrap_or_default())
            } else {
                substitute(arg, lookup, warn)
            }
        }
        '+' => {
            if set {
                substitute(arg, lookup, warn)
            } else {
                Ok(String::new())
            }
        }
        '?' => {
            if set {
                Ok(value.unwrap_or_default())
            } else {
                let msg = substitute(arg, lookup, warn)?;
                if msg.is_empty() {
                    Err(format!("required variable {name} is missing a value"))
                } else {
                    Err(format!(
                        "required variable {name} is missing a value: {msg}"
                    ))
                }
            }
        }
        _ => Err(invalid()),
    }
}

/// Interpolates every string value in `tree`; `path` prefixes error messages.
pub fn interpolate_tree(
    tree: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(&str),
) -> Result<(), (String, String)> {
    let mut path = Vec::new();
    walk(tree, &mut path, lookup, warn)
}

fn walk(
    v: &mut Value,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(&str),
) -> Result<(), (String, String)> {
    match v {
        Value::String(s) => {
            let new = substitute(s, lookup, warn).map_err(|e| (path.join("."), e))?;
            *v = cast(path, new).map_err(|e| (path.join("."), e))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                walk(item, path, lookup, warn)?;
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let pushed = !super::yaml::is_tag_key(k);
                if pushed {
                    path.push(k.clone());
                }
                walk(item, path, lookup, warn)?;
                if pushed {
                    path.pop();
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// The paths whose string values Compose converts after interpolation.
/// `*` matches any key, `[]` any list item.
const CASTS: &[(&str, Cast)] = &[
    ("services.*.configs.[].mode", Cast::Int),
    ("services.*.secrets.[].mode", Cast::Int),
    ("services.*.cpu_count", Cast::Int),
    ("services.*.cpu_percent", Cast::Float),
    ("services.*.cpu_period", Cast::Int),
    ("services.*.cpu_quota", Cast::Int),
    ("services.*.cpu_rt_period", Cast::Int),
    ("services.*.cpu_rt_runtime", Cast::Int),
    ("services.*.cpus", Cast::Float),
    ("services.*.cpu_shares", Cast::Int),
    ("services.*.init", Cast::Bool),
    ("services.*.depends_on.*.required", Cast::Bool),
    ("services.*.depends_on.*.restart", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Cast::Int,
    ),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.oom_kill_disable", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int),
    ("services.*.pids_limit", Cast::Int),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.read_only", Cast::Bool),
    ("services.*.scale", Cast::Int),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("networks.*.enable_ipv6", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

fn matches(pattern: &str, path: &[String]) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len()
        && parts.iter().zip(path).all(|(p, k)| match *p {
            "*" => !k.starts_with('['),
            "[]" => k.starts_with('['),
            _ => p == k,
        })
}

fn cast(path: &[String], s: String) -> Result<Value, String> {
    let Some((_, how)) = CASTS.iter().find(|(p, _)| matches(p, path)) else {
        return Ok(Value::String(s));
    };
    let fail = |what: &str| format!("expected {what}, got {s:?}");
    // YAML 1.1 octal (`mode: 0440`) arrives as a string: Go's YAML reads it as octal.
    if path.last().is_some_and(|k| k == "mode")
        && s.len() > 1
        && s.starts_with('0')
        && s.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Ok(Value::from(i64::from_str_radix(&s, 8).unwrap_or_default()));
    }
    match how {
        Cast::Int => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| fail("an integer")),
        Cast::Float => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| fail("a number")),
        Cast::Bool => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "n" | "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(fail("a boolean")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str) -> Result<String, String> {
        let env = |k: &str| match k {
            "A" => Some("a".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        substitute(s, &env, &mut |_| {})
    }

    #[test]
    fn forms() {
        assert_eq!(sub("$A ${A} x").unwrap(), "a a x");
        assert_eq!(sub("${NO:-d} ${EMPTY:-d} ${EMPTY-d}").unwrap(), "d d ");
        assert_eq!(
            sub("${A:+alt} ${EMPTY:+alt} ${EMPTY+alt}").unwrap(),
            "alt  alt"
        );
        assert_eq!(sub("$$A $$").unwrap(), "$A $");
        assert_eq!(sub("${NO:-${NO2:-${A}}}").unwrap(), "a");
        assert_eq!(sub("a$1 b$ c$-").unwrap(), "a$1 b$ c$-");
    }

    #[test]
    fn errors() {
        assert_eq!(
            sub("${NO:?boom}").unwrap_err(),
            "required variable NO is missing a value: boom"
        );
        assert_eq!(
            sub("${EMPTY?}").unwrap(),
            "",
            "without colon an empty value is set"
        );
        assert!(sub("${NO?}").unwrap_err().contains("missing a value"));
        assert!(sub("${}").is_err());
        assert!(sub("${A:x}").is_err());
        assert!(sub("${A").is_err());
        assert!(
            sub("${A:Ƹ}").is_err(),
            "found by fuzzing: multi-byte operator"
        );
    }

    #[test]
    fn lazy_defaults_do_not_warn() {
        let mut warned = Vec::new();
        let env = |k: &str| (k == "A").then(|| "1".to_string());
        substitute("${A:-$UNSET} $MISSING", &env, &mut |n| {
            warned.push(n.to_string())
        })
        .unwrap();
        assert_eq!(warned, ["MISSING"]);
    }

    #[test]
    fn casts_at_known_paths() {
        let mut tree: Value = serde_json::json!({"services": {"web": {
            "deploy": {"replicas": "${N}"}, "read_only": "yes", "image": "${N}"}}});
        let env = |k: &str| (k == "N").then(|| "3".to_string());
        interpolate_tree(&mut tree, &env, &mut |_| {}).unwrap();
        assert_eq!(tree["services"]["web"]["deploy"]["replicas"], 3);
        assert_eq!(tree["services"]["web"]["read_only"], true);
        assert_eq!(tree["services"]["web"]["image"], "3");
    }
}
