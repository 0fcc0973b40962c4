//! The reference's consistency checks on the merged, profile-filtered project that are not
//! plain references (those are `validate::references`): settings that contradict each
//! other, values out of range, mounts that collide. Each message is the reference's, with
//! the key path hoist reports.

use serde_json::{Map, Value};
use std::collections::HashMap;

type Fail = (String, String);

fn err<T>(path: impl Into<String>, msg: impl Into<String>) -> Result<T, Fail> {
    Err((path.into(), msg.into()))
}

fn str_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

/// Checks every service, then the top-level secrets.
pub fn check(project: &Map<String, Value>) -> Result<(), Fail> {
    let empty = Map::new();
    let services = project
        .get("services")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let secrets = project
        .get("secrets")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, svc) in services {
        let p = format!("services.{name}");
        if let Some(build) = svc.get("build") {
            build_settings(&p, name, build, svc, services, secrets)?;
        }
        let network_mode = str_of(svc.get("network_mode"));
        let has_networks = svc
            .get("networks")
            .and_then(Value::as_object)
            .is_some_and(|n| !n.is_empty());
        if !network_mode.is_empty() && has_networks {
            return err(
                format!("{p}.network_mode"),
                format!(
                    "service {name} declares mutually exclusive `network_mode` and `networks`: use one of them"
                ),
            );
        }
        if let Some(Value::Array(test)) = svc.get("healthcheck").and_then(|h| h.get("test"))
            && let Some(first) = test.first()
            && !matches!(first.as_str(), Some("CMD" | "CMD-SHELL" | "NONE"))
        {
            return err(
                format!("{p}.healthcheck.test"),
                r#"healthcheck.test must start either by "CMD", "CMD-SHELL" or "NONE""#,
            );
        }
        for (key, value) in [
            ("scale", svc.get("scale")),
            (
                "deploy.replicas",
                svc.get("deploy").and_then(|d| d.get("replicas")),
            ),
        ] {
            if value.and_then(Value::as_i64).is_some_and(|n| n < 0) {
                return err(format!("{p}.{key}"), "must be greater than or equal to 0");
            }
        }
        let reservation = svc
            .get("deploy")
            .and_then(|d| d.get("resources"))
            .and_then(|r| r.get("reservations"))
            .and_then(|r| r.get("memory"));
        if let (Some(a), Some(b)) = (svc.get("mem_reservation"), reservation)
            && a != b
        {
            return err(
                p,
                "can't set distinct values on 'mem_reservation' and 'deploy.resources.reservations.memory'",
            );
        }
        for (i, w) in svc
            .get("develop")
            .and_then(|d| d.get("watch"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let action = str_of(w.get("action"));
            if str_of(w.get("target")).is_empty() && !matches!(action, "rebuild" | "restart") {
                return err(
                    format!("{p}.develop.watch[{i}]"),
                    "target is required for non-rebuild actions",
                );
            }
        }
        mount_targets(&p, svc)?;
    }
    for (name, s) in secrets {
        let external = s.get("external").and_then(Value::as_bool).unwrap_or(false);
        if !external && str_of(s.get("file")).is_empty() && str_of(s.get("environment")).is_empty()
        {
            return err(
                format!("secrets.{name}"),
                format!("secret {name:?} must declare either `file` or `environment`"),
            );
        }
    }
    Ok(())
}

fn build_settings(
    p: &str,
    name: &str,
    build: &Value,
    svc: &Value,
    services: &Map<String, Value>,
    secrets: &Map<String, Value>,
) -> Result<(), Fail> {
    if !str_of(build.get("dockerfile")).is_empty()
        && !str_of(build.get("dockerfile_inline")).is_empty()
    {
        return err(
            format!("{p}.build"),
            format!(
                "service {name:?} declares mutually exclusive dockerfile and dockerfile_inline: keep one"
            ),
        );
    }
    if let Some(Value::Object(contexts)) = build.get("additional_contexts") {
        for (key, c) in contexts {
            let Some(target) = str_of(Some(c)).strip_prefix("service:") else {
                continue;
            };
            match services.get(target) {
                None => {
                    return err(
                        format!("{p}.build.additional_contexts.{key}"),
                        format!(
                            "service {name:?} declares unknown service {target:?} as additional contexts {key}"
                        ),
                    );
                }
                Some(t) if t.get("build").is_none() => {
                    return err(
                        format!("{p}.build.additional_contexts.{key}"),
                        format!(
                            "service {name:?} declares non-buildable service {target:?} as additional contexts {key}"
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
    let platform = str_of(svc.get("platform"));
    if let Some(Value::Array(platforms)) = build.get("platforms")
        && !platforms.is_empty()
        && !platform.is_empty()
        && !platforms.iter().any(|x| x.as_str() == Some(platform))
    {
        return err(
            format!("{p}.build.platforms"),
            format!("service.build.platforms MUST include service.platform {platform:?}"),
        );
    }
    for (i, s) in build
        .get("secrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let source = str_of(s.get("source"));
        if !secrets.contains_key(source) {
            return err(
                format!("{p}.build.secrets[{i}]"),
                format!("service {name:?} refers to undefined build secret {source}"),
            );
        }
    }
    Ok(())
}

/// Two mounts (tmpfs entries, then volumes) may not share a container path.
fn mount_targets(p: &str, svc: &Value) -> Result<(), Fail> {
    let mut mounts: HashMap<String, String> = HashMap::new();
    let tmpfs = svc.get("tmpfs").and_then(Value::as_array);
    for (i, t) in tmpfs.into_iter().flatten().enumerate() {
        let loc = format!("{p}.tmpfs[{i}]");
        let target = str_of(Some(t)).split(':').next().unwrap_or_default();
        if let Some(prev) = mounts.insert(target.to_string(), loc.clone()) {
            return err(loc, format!("target {target} already mounted as {prev}"));
        }
    }
    let volumes = svc.get("volumes").and_then(Value::as_array);
    for (i, v) in volumes.into_iter().flatten().enumerate() {
        let loc = format!("{p}.volumes[{i}]");
        let target = str_of(v.get("target"));
        if let Some(prev) = mounts.insert(target.to_string(), loc.clone()) {
            return err(loc, format!("target {target} already mounted as {prev}"));
        }
    }
    Ok(())
}
