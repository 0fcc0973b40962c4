//! `hoist up --json`: what a deploy did, in one documented, stable shape
//! (docs/up-json.md, schema 1). A deploy with nothing to change has every key a
//! real rollout has, so a consumer never checks for absent keys.

use crate::apply::rollout::{Outcome, Report, Verdict};
use serde::Serialize;
use serde_json::Value;

/// The whole `up --json` document.
#[derive(Debug, Serialize)]
pub struct UpReport {
    pub schema: u32,
    pub project: String,
    /// Every service's rollout went through (`up` exits 0).
    pub ok: bool,
    /// Whether the plan had changes, i.e. a rollout ran.
    pub changes: bool,
    /// The release the rollout created; null when nothing was rolled out.
    pub release: Option<String>,
    /// The plan that was carried out, as `plan --json` prints it (docs/plan-json.md).
    pub plan: Value,
    /// Images shipped from the local engine.
    pub shipped: Vec<Value>,
    /// One entry per service the rollout touched, in rollout order.
    pub services: Vec<ServiceResult>,
    /// Old previous releases removed (one per slot is kept for rollback).
    pub pruned: usize,
    /// The warning lines `up` printed, without `warning: `.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ServiceResult {
    pub service: String,
    /// `done`, `rolled_back`, `paused`, `degraded`, `skipped` or `interrupted` (stopped by
    /// SIGINT/SIGTERM before its last batch; `up` exits 130/143).
    pub verdict: &'static str,
    /// Why it is not `done`, in words; null when done or skipped.
    pub reason: Option<String>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Serialize)]
pub struct Change {
    pub machine: String,
    pub slot: u32,
    pub ok: bool,
    /// What happened (`replaced (start-first)`) or what failed.
    pub message: String,
}

/// The verdict's name in the schema, and its reason.
pub fn verdict(v: &Verdict) -> (&'static str, Option<String>) {
    match v {
        Verdict::Done => ("done", None),
        Verdict::RolledBack(why) => ("rolled_back", Some(why.clone())),
        Verdict::Paused(why) => ("paused", Some(why.clone())),
        Verdict::Degraded(why) => ("degraded", Some(why.clone())),
        Verdict::Skipped => ("skipped", None),
        Verdict::Interrupted(why) => ("interrupted", Some(why.clone())),
    }
}

fn change(o: &Outcome) -> Change {
    let (ok, message) = match &o.result {
        Ok(m) => (true, m.clone()),
        Err(m) => (false, m.clone()),
    };
    Change {
        machine: o.machine.clone(),
        slot: o.slot,
        ok,
        message,
    }
}

impl UpReport {
    /// A deploy whose plan had no changes.
    pub fn unchanged(project: &str, plan: Value, pruned: usize, warnings: Vec<String>) -> Self {
        UpReport {
            schema: 1,
            project: project.to_string(),
            ok: true,
            changes: false,
            release: None,
            plan,
            shipped: Vec::new(),
            services: Vec::new(),
            pruned,
            warnings,
        }
    }

    /// A deploy that rolled out `report` as `release`.
    pub fn rolled_out(
        project: &str,
        plan: Value,
        release: &str,
        report: &Report,
        shipped: Vec<Value>,
        pruned: usize,
        warnings: Vec<String>,
    ) -> Self {
        let services = report
            .services
            .iter()
            .map(|(service, outcomes, v)| {
                let (verdict, reason) = verdict(v);
                ServiceResult {
                    service: service.clone(),
                    verdict,
                    reason,
                    changes: outcomes.iter().map(change).collect(),
                }
            })
            .collect();
        UpReport {
            schema: 1,
            project: project.to_string(),
            ok: report.ok(),
            changes: true,
            release: Some(release.to_string()),
            plan,
            shipped,
            services,
            pruned,
            warnings,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an UpReport always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(v: &Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn a_no_op_has_every_key_a_rollout_has() {
        let plan = json!({"schema": 1, "changes": false});
        let noop: Value =
            serde_json::from_str(&UpReport::unchanged("shop", plan.clone(), 0, vec![]).to_json())
                .unwrap();
        let report = Report {
            services: vec![(
                "web".into(),
                vec![Outcome {
                    machine: "m1".into(),
                    slot: 1,
                    result: Err("unhealthy".into()),
                }],
                Verdict::RolledBack("1 of 1 replicas failed (max_failure_ratio 0)".into()),
            )],
        };
        let real: Value = serde_json::from_str(
            &UpReport::rolled_out("shop", plan, "20261201-2022", &report, vec![], 1, vec![])
                .to_json(),
        )
        .unwrap();
        assert_eq!(keys(&noop), keys(&real));
        assert_eq!(
            keys(&real),
            [
                "schema", "project", "ok", "changes", "release", "plan", "shipped", "services",
                "pruned", "warnings"
            ]
        );
        assert_eq!(noop["release"], Value::Null);
        assert_eq!(
            real["services"],
            json!([{
                "service": "web",
                "verdict": "rolled_back",
                "reason": "1 of 1 replicas failed (max_failure_ratio 0)",
                "changes": [{"machine": "m1", "slot": 1, "ok": false, "message": "unhealthy"}]
            }])
        );
        assert_eq!(real["ok"], false);
    }
}
