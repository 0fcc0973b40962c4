//! Autoscaling on CPU: `x-hoist: {autoscale: {min, max, cpu, cooldown}}` on a service.
//!
//! Each round watch samples every running replica's CPU from its engine (one-shot stats;
//! the usage delta between two rounds), averages it over the service's replicas, and
//! chooses a replica count the way Kubernetes' HPA does: `ceil(current × average / target)`,
//! at least one more when above the target, never beyond `max`; below the target it waits
//! for `cooldown` before scaling down (to `min` once the load is gone). The count is an input
//! of the plan (`pipeline::Inputs::replicas`), never a rewrite of the compose file, and each
//! decision is recorded on the machines (`apply::scale_record`) with its reason.
//!
//! This module is the pure part — policies from the file, and the decision from measured
//! CPU; `watch::autoscale` samples the CPU.

use crate::model::Project;
use anyhow::{Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One service's autoscale settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min: u32,
    pub max: u32,
    /// Target CPU per replica, in percent of one CPU (as `docker stats` shows it).
    pub cpu: f64,
    /// How long the average must stay below the target before scaling down.
    pub cooldown: Duration,
}

const DEFAULT_CPU: f64 = 70.0;
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);

/// The autoscaled services of `project` and their policies; every mistake is reported.
pub fn policies(project: &Project) -> Result<BTreeMap<String, Policy>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, svc) in &project.services {
        let Some(a) = svc.extension("x-hoist").and_then(|x| x.get("autoscale")) else {
            continue;
        };
        let global = svc
            .deploy
            .as_ref()
            .and_then(|d| d.mode.as_deref())
            .is_some_and(|m| m == "global");
        match parse(a, global) {
            Ok(p) => {
                out.insert(name.clone(), p);
            }
            Err(e) => problems.push(format!("services.{name}.x-hoist.autoscale: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(out)
}

fn parse(v: &Value, global: bool) -> Result<Policy> {
    if global {
        bail!(
            "a global service runs one replica per machine; autoscale needs deploy.mode: replicated"
        );
    }
    let Some(map) = v.as_object() else {
        bail!("expected a mapping with min, max, cpu, cooldown");
    };
    for key in map.keys() {
        if !["min", "max", "cpu", "cooldown"].contains(&key.as_str()) {
            bail!("unknown key {key:?} (min, max, cpu, cooldown)");
        }
    }
    let count = |key: &str| -> Result<Option<u32>> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => match v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(n) if n <= 10_000 => Ok(Some(n as u32)),
                _ => bail!("{key}: {v} is not a replica count"),
            },
        }
    };
    let min = count("min")?.unwrap_or(1);
    let Some(max) = count("max")? else {
        bail!("max is required");
    };
    if max == 0 || min > max {
        bail!("min {min} and max {max}: need 1 ≤ max and min ≤ max");
    }
    let cpu = match map.get("cpu") {
        None => DEFAULT_CPU,
        Some(v) => match v.as_f64().or_else(|| {
            v.as_str()
                .and_then(|s| s.trim_end_matches('%').trim().parse().ok())
        }) {
            Some(c) if c > 0.0 && c.is_finite() => c,
            _ => bail!("cpu: {v} is not a percentage above 0"),
        },
    };
    let cooldown = match map.get("cooldown") {
        None => DEFAULT_COOLDOWN,
        Some(Value::String(s)) => {
            crate::duration::parse(s).map_err(|e| anyhow::anyhow!("cooldown: {e}"))?
        }
        Some(v) => match v.as_f64() {
            Some(s) if s >= 0.0 => Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| *d <= crate::duration::MAX)
                .ok_or_else(|| anyhow::anyhow!("cooldown: {v} seconds is too long"))?,
            _ => bail!("cooldown: {v} is not a duration"),
        },
    };
    Ok(Policy {
        min,
        max,
        cpu,
        cooldown,
    })
}

/// The compose file's replica count of `service` (1 when unset).
pub fn declared(project: &Project, service: &str) -> u32 {
    project
        .services
        .get(service)
        .and_then(|s| s.deploy.as_ref().and_then(|d| d.replicas).or(s.scale))
        .unwrap_or(1)
        .clamp(0, 10_000) as u32
}

/// The replica counts `plan` and `up` use for autoscaled services: the recorded count (or the
/// file's), kept within the service's current min and max. A service without a valid policy
/// keeps its file's count.
pub fn recorded_replicas(
    project: &Project,
    records: &BTreeMap<String, Record>,
) -> BTreeMap<String, u32> {
    let Ok(policies) = policies(project) else {
        return BTreeMap::new();
    };
    policies
        .iter()
        .map(|(service, p)| {
            let n = records
                .get(service)
                .map(|r| r.replicas)
                .unwrap_or_else(|| declared(project, service));
            (service.clone(), n.clamp(p.min, p.max))
        })
        .collect()
}

/// What the autoscaler remembers of one service between rounds.
#[derive(Debug, Clone)]
pub struct State {
    pub replicas: u32,
    /// When the average last went below the target (and stayed there).
    below_since: Option<Instant>,
}

impl State {
    pub fn new(replicas: u32) -> State {
        State {
            replicas,
            below_since: None,
        }
    }
}

/// A new replica count and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replicas: u32,
    pub reason: String,
}

/// One round's decision for a service, from the CPU of the replicas measured (`cpu`, percent
/// of one CPU each). Scales up only when every replica reports, so replicas still starting
/// are not counted as idle; scales down only after `cooldown` below the target.
pub fn decide(policy: &Policy, state: &mut State, cpu: &[f64], now: Instant) -> Option<Decision> {
    let current = state.replicas;
    if current < policy.min || current > policy.max {
        let replicas = current.clamp(policy.min, policy.max);
        return Some(Decision {
            replicas,
            reason: format!(
                "{current} replicas is outside min {} … max {}",
                policy.min, policy.max
            ),
        });
    }
    if cpu.is_empty() {
        return None;
    }
    let avg = cpu.iter().sum::<f64>() / cpu.len() as f64;
    let wanted = (current as f64 * avg / policy.cpu).ceil() as u32;
    if avg > policy.cpu {
        state.below_since = None;
        if current >= policy.max || (cpu.len() as u32) < current {
            return None;
        }
        let replicas = wanted.clamp(current + 1, policy.max);
        return Some(Decision {
            replicas,
            reason: format!(
                "cpu {avg:.0}% average over {} replicas > target {:.0}% (max {})",
                cpu.len(),
                policy.cpu,
                policy.max
            ),
        });
    }
    let since = *state.below_since.get_or_insert(now);
    let replicas = wanted.clamp(policy.min, current);
    if replicas < current && now.duration_since(since) >= policy.cooldown {
        state.below_since = None;
        return Some(Decision {
            replicas,
            reason: format!(
                "cpu {avg:.0}% average over {} replicas ≤ target {:.0}% for {}s (cooldown; min {})",
                cpu.len(),
                policy.cpu,
                policy.cooldown.as_secs(),
                policy.min
            ),
        });
    }
    None
}

/// One scaling decision as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Record {
    pub service: String,
    pub replicas: u32,
    pub reason: String,
    pub at: String,
    #[serde(skip)]
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        parse(
            &json!({"min": 1, "max": 4, "cpu": 50, "cooldown": "10s"}),
            false,
        )
        .unwrap()
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(policy().cooldown, Duration::from_secs(10));
        let p = parse(&json!({"max": 3}), false).unwrap();
        assert_eq!((p.min, p.max, p.cpu), (1, 3, 70.0));
        for (bad, why) in [
            (json!({"min": 2}), "max is required"),
            (json!({"min": 5, "max": 2}), "min 5 and max 2"),
            (json!({"max": 2, "cpu": 0}), "cpu"),
            (json!({"max": 2, "memory": 3}), "unknown key"),
        ] {
            let e = parse(&bad, false).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(parse(&json!({"max": 2}), true).is_err());
    }

    #[test]
    fn scales_up_by_load_never_beyond_max() {
        let p = policy();
        let now = Instant::now();
        let mut s = State::new(1);
        let d = decide(&p, &mut s, &[100.0], now).unwrap();
        assert_eq!(d.replicas, 2, "{}", d.reason);
        s.replicas = 2;
        // A new replica not measured yet: wait for it.
        assert_eq!(decide(&p, &mut s, &[100.0], now), None);
        assert_eq!(
            decide(&p, &mut s, &[190.0, 190.0], now).unwrap().replicas,
            4
        );
        s.replicas = 4;
        assert_eq!(decide(&p, &mut s, &[100.0; 4], now), None);
    }

    #[test]
    fn scales_down_after_the_cooldown() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = State::new(4);
        assert_eq!(decide(&p, &mut s, &[1.0; 4], t0), None);
        assert_eq!(
            decide(&p, &mut s, &[1.0; 4], t0 + Duration::from_secs(9)),
            None
        );
        let d = decide(&p, &mut s, &[1.0; 4], t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(d.replicas, 1, "{}", d.reason);
        // Load back above the target in the cooldown resets it.
        let mut s = State::new(4);
        assert_eq!(decide(&p, &mut s, &[1.0; 4], t0), None);
        assert_eq!(
            decide(&p, &mut s, &[60.0; 4], t0 + Duration::from_secs(5)),
            None
        );
        assert_eq!(
            decide(&p, &mut s, &[1.0; 4], t0 + Duration::from_secs(12)),
            None
        );
    }
}
