//! `deploy`, `healthcheck` and `gpus`: durations, byte sizes and counts in their printed form.
//!
//! These are the keys the scheduler and rollout read, so they are normalized strictly.

use super::R;
use super::values::*;
use serde_json::{Map, Value, json};

pub(super) fn healthcheck(path: &str, v: &Value) -> R<Value> {
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

pub(super) fn update_config(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    for (k, v) in object(path, v)? {
        let p = join(path, k);
        let v = match k.as_str() {
            "parallelism" => json!(uint(&p, v)?),
            "delay" | "monitor" => duration(&p, v)?,
            "max_failure_ratio" => json!(float(&p, v)?),
            "failure_action" => json!(string(&p, v)?),
            "order" => {
                let o = string(&p, v)?;
                one_of(&p, &o, &["start-first", "stop-first"])?;
                json!(o)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Ok(Value::Object(out))
}

pub(super) fn resource(path: &str, v: &Value) -> R<Value> {
    let mut out = Map::new();
    for (k, v) in object(path, v)? {
        let p = join(path, k);
        let v = match k.as_str() {
            "cpus" => json!(float(&p, v)?),
            "memory" => bytes(&p, &Value::String(string(&p, v)?))?,
            "pids" => match v {
                Value::String(s) => match s.trim().parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => return expected(&p, "an integer", v),
                },
                other => json!(int(&p, other)?),
            },
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

pub(super) fn deploy(path: &str, v: &Value) -> R<Value> {
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

/// `gpus: all` or a list of device requests.
pub(super) fn gpus(path: &str, v: &Value) -> R<Value> {
    match v {
        Value::String(s) if s == "all" => Ok(json!([{"count": -1}])),
        other => {
            let wrapped = json!({ "devices": other });
            let r = resource(path, &wrapped)?;
            Ok(r["devices"].clone())
        }
    }
}
