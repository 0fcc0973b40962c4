//! The last step: profiles, compose-go's project-level defaults, the typed model.
//!
//! Services outside the active profiles are dropped; services without networks join the
//! `default` network; networks, volumes, secrets and configs get their engine names
//! (`<project>_<key>` unless named or external); resources no service uses are left out,
//! as `docker compose config` does; zero values the reference does not print are dropped
//! (`zero`).

use crate::model::Project;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

type Fail = (String, String);

/// Drops services none of whose profiles is active (`*` activates all). Services named
/// on the command line stay, whatever their profiles.
pub fn apply_profiles(tree: &mut Map<String, Value>, active: &[String], named: &[String]) {
    let Some(Value::Object(services)) = tree.get_mut("services") else {
        return;
    };
    services.retain(|name, svc| {
        if named.contains(name) {
            return true;
        }
        let profiles: Vec<&str> = svc
            .get("profiles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        profiles.is_empty()
            || active
                .iter()
                .any(|a| a == "*" || profiles.contains(&a.as_str()))
    });
}

/// Keeps only the named services and what they depend on, transitively.
pub fn select(tree: &mut Map<String, Value>, named: &[String]) -> Result<(), Fail> {
    if named.is_empty() {
        return Ok(());
    }
    let Some(Value::Object(services)) = tree.get_mut("services") else {
        return Ok(());
    };
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<(String, bool)> = named.iter().map(|n| (n.clone(), true)).collect();
    while let Some((name, required)) = todo.pop() {
        if keep.contains(&name) {
            continue;
        }
        let Some(svc) = services.get(&name) else {
            if required {
                return Err((String::new(), format!("no such service: {name}")));
            }
            continue;
        };
        if let Some(Value::Object(deps)) = svc.get("depends_on") {
            for (dep, d) in deps {
                let req = d.get("required").and_then(Value::as_bool).unwrap_or(true);
                todo.push((dep.clone(), req));
            }
        }
        keep.insert(name);
    }
    services.retain(|k, _| keep.contains(k));
    Ok(())
}

fn used(services: &Map<String, Value>) -> [BTreeSet<String>; 4] {
    let mut networks = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut configs = BTreeSet::new();
    for svc in services.values() {
        if let Some(Value::Object(n)) = svc.get("networks") {
            networks.extend(n.keys().cloned());
        }
        for m in svc
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if m.get("type").and_then(Value::as_str) == Some("volume")
                && let Some(s) = m.get("source").and_then(Value::as_str)
            {
                volumes.insert(s.to_string());
            }
        }
        let build_secrets = svc.get("build").and_then(|b| b.get("secrets"));
        for (refs, set) in [
            (svc.get("secrets"), 0),
            (build_secrets, 0),
            (svc.get("configs"), 1),
        ] {
            let set = if set == 0 { &mut secrets } else { &mut configs };
            for r in refs.and_then(Value::as_array).into_iter().flatten() {
                if let Some(s) = r.get("source").and_then(Value::as_str) {
                    set.insert(s.to_string());
                }
            }
        }
    }
    [networks, volumes, secrets, configs]
}

/// Applies defaults and names, drops unused resources, and builds the typed project.
pub fn finalize(mut tree: Map<String, Value>, name: &str) -> Result<Project, Fail> {
    tree.insert("name".into(), json!(name));
    let mut services = match tree.remove("services") {
        Some(Value::Object(s)) => s,
        _ => Map::new(),
    };
    for svc in services.values_mut() {
        let Some(m) = svc.as_object_mut() else {
            continue;
        };
        let has_networks = m
            .get("networks")
            .and_then(Value::as_object)
            .is_some_and(|n| !n.is_empty());
        if !has_networks && !m.contains_key("network_mode") {
            m.insert("networks".into(), json!({"default": null}));
        }
    }
    let used = used(&services);
    if used[0].contains("default") {
        let nets = tree.entry("networks").or_insert_with(|| json!({}));
        if let Some(n) = nets.as_object_mut() {
            n.entry("default").or_insert_with(|| json!({"ipam": {}}));
        }
    }
    for (i, section) in ["networks", "volumes", "secrets", "configs"]
        .iter()
        .enumerate()
    {
        let Some(Value::Object(defs)) = tree.get_mut(*section) else {
            continue;
        };
        defs.retain(|k, _| used[i].contains(k));
        for (key, def) in defs.iter_mut() {
            let Some(d) = def.as_object_mut() else {
                continue;
            };
            if !d.contains_key("name") {
                let external = d.get("external").and_then(Value::as_bool).unwrap_or(false);
                let n = if external {
                    key.clone()
                } else {
                    format!("{name}_{key}")
                };
                d.insert("name".into(), json!(n));
            }
        }
        if defs.is_empty() {
            tree.remove(*section);
        }
    }
    tree.insert("services".into(), Value::Object(services));
    super::zero::drop_zero_values(&mut tree);
    serde_json::from_value(Value::Object(tree))
        .map_err(|e| (String::new(), format!("internal model error: {e}")))
}
