//! `extends`: a service built on another service, in the same file or another one.
//!
//! The base is resolved first (chains are followed, cycles refused), then the extending
//! service is merged onto it with the same rules as multi-file merging. A base from another
//! folder keeps pointing at its own files: its relative paths are rebased first.

use super::error::LoadError;
use super::merge;
use super::normalize::clean;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Loads another compose file as an interpolated tree (shared with the main loader).
pub type FileLoader<'a> = dyn FnMut(&Path) -> Result<Value, LoadError> + 'a;

/// Resolves every `extends` in `doc` (a file read from `file`).
pub fn resolve(doc: &mut Value, file: &Path, load: &mut FileLoader) -> Result<(), LoadError> {
    let Some(services) = doc.get("services").and_then(Value::as_object) else {
        return Ok(());
    };
    let names: Vec<String> = services.keys().cloned().collect();
    let snapshot = doc.clone();
    for name in names {
        let mut stack = Vec::new();
        let resolved = resolve_service(&snapshot, file, &name, load, &mut stack)?;
        if let Some(s) = doc.get_mut("services").and_then(Value::as_object_mut) {
            s.insert(name, resolved);
        }
    }
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn resolve_service(
    doc: &Value,
    file: &Path,
    name: &str,
    load: &mut FileLoader,
    stack: &mut Vec<(PathBuf, String)>,
) -> Result<Value, LoadError> {
    let path = format!("services.{name}");
    let svc = doc
        .get("services")
        .and_then(|s| s.get(name))
        .ok_or_else(|| {
            LoadError::new(
                display(file),
                path.clone(),
                format!("cannot extend service {name:?}: not found"),
            )
        })?
        .clone();
    let key = (file.to_path_buf(), name.to_string());
    if stack.contains(&key) {
        return Err(LoadError::new(
            display(file),
            format!("{path}.extends"),
            format!("circular reference with extends on service {name:?}"),
        ));
    }
    let Some(ext) = svc.get("extends").cloned() else {
        return Ok(svc);
    };
    stack.push(key);
    let (base_name, base_file) = match &ext {
        Value::String(s) => (s.clone(), None),
        Value::Object(m) => {
            let service = match m.get("service") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(LoadError::new(
                        display(file),
                        format!("{path}.extends.service"),
                        "expected a service name",
                    ));
                }
            };
            let f = match m.get("file") {
                Some(Value::String(f)) => Some(f.clone()),
                None => None,
                Some(_) => {
                    return Err(LoadError::new(
                        display(file),
                        format!("{path}.extends.file"),
                        "expected a string",
                    ));
                }
            };
            (service, f)
        }
        _ => {
            return Err(LoadError::new(
                display(file),
                format!("{path}.extends"),
                "expected a service name or a mapping",
            ));
        }
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut base = match base_file {
        None => resolve_service(doc, file, &base_name, load, stack)?,
        Some(f) => {
            let other = PathBuf::from(clean(&dir.join(&f)));
            let other_doc = load(&other)?;
            let mut b = resolve_service(&other_doc, &other, &base_name, load, stack)?;
            let other_dir = other.parent().unwrap_or(Path::new("."));
            if other_dir != dir {
                rebase(&mut b, other_dir);
            }
            b
        }
    };
    stack.pop();
    if let Some(m) = base.as_object_mut() {
        m.remove("extends");
    }
    let mut over = svc;
    if let Some(m) = over.as_object_mut() {
        m.remove("extends");
    }
    let merged = merge::merge_documents(
        json!({ "services": { name: base } }),
        json!({ "services": { name: over } }),
    );
    Ok(merged["services"][name].clone())
}

fn abs(dir: &Path, p: &str) -> String {
    if Path::new(p).is_absolute() || p.starts_with('~') || p.contains("://") {
        p.to_string()
    } else {
        clean(&dir.join(p))
    }
}

/// Makes the relative paths of a base service from another folder absolute.
fn rebase(svc: &mut Value, dir: &Path) {
    let Some(m) = svc.as_object_mut() else { return };
    match m.get_mut("build") {
        Some(Value::String(s)) => *s = abs(dir, s),
        Some(Value::Object(b)) => {
            let ctx = b
                .get("context")
                .and_then(Value::as_str)
                .unwrap_or(".")
                .to_string();
            b.insert("context".into(), json!(abs(dir, &ctx)));
        }
        _ => {}
    }
    match m.get_mut("env_file") {
        Some(Value::String(s)) => *s = abs(dir, s),
        Some(Value::Array(items)) => {
            for i in items {
                match i {
                    Value::String(s) => *s = abs(dir, s),
                    Value::Object(o) => {
                        if let Some(Value::String(p)) = o.get_mut("path") {
                            *p = abs(dir, p);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(vols)) = m.get_mut("volumes") {
        for v in vols {
            match v {
                Value::String(s) if s.starts_with('.') => {
                    let (src, rest) = s.split_once(':').unwrap_or((s.as_str(), ""));
                    let new = if rest.is_empty() {
                        abs(dir, src)
                    } else {
                        format!("{}:{rest}", abs(dir, src))
                    };
                    *s = new;
                }
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("bind") => {
                    if let Some(Value::String(src)) = o.get_mut("source") {
                        *src = abs(dir, src);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Whether a tree mentions `extends` at all (most files do not: skip the work).
pub fn any(doc: &Value) -> bool {
    doc.get("services")
        .and_then(Value::as_object)
        .is_some_and(|s: &Map<String, Value>| s.values().any(|v| v.get("extends").is_some()))
}
