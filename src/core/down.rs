//! `hoist down` as a plan: what it removes on each machine, computed from the observation
//! before anything is touched, shown by `down --dry-run` (and `--json`), then carried out as
//! shown. Pure.
//!
//! Volumes — the data — are removed only with `--volumes`; without it the plan names the ones
//! that stay. The deploy lock's volume is never in the plan: `down` holds that lock while it
//! works and releases it (removing the volume) last.

use serde_json::{Value, json};

/// What the project has on one machine, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnMachine {
    /// (name, id) of every container of the project: replicas of every release, its ingress
    /// and proxies, leftovers of interrupted runs.
    pub containers: Vec<(String, String)>,
    pub networks: Vec<String>,
    /// Every volume labelled for the project: data, and hoist's own records and markers.
    pub volumes: Vec<String>,
}

/// The removals of one `down`, by machine (a machine not reached: why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownPlan {
    pub project: String,
    pub with_volumes: bool,
    pub machines: Vec<(String, Result<OnMachine, String>)>,
    /// (machine, volume) left in place because `--volumes` was not given.
    pub kept_volumes: Vec<(String, String)>,
}

/// The lock volume `down` itself holds (`apply::lock`).
fn lock_volume(project: &str) -> String {
    format!("hoist-lock-{project}")
}

pub fn plan(
    project: &str,
    machines: Vec<(String, Result<OnMachine, String>)>,
    with_volumes: bool,
) -> DownPlan {
    let lock = lock_volume(project);
    let mut kept_volumes = Vec::new();
    let machines = machines
        .into_iter()
        .map(|(m, state)| {
            let state = state.map(|mut s| {
                // The lock and a takeover of it (`hoist-lock-<project>.takeover-…`).
                s.volumes.retain(|v| !v.starts_with(&lock));
                if !with_volumes {
                    // Named as staying: the data; hoist's own records and markers (`hoist-…`)
                    // are no one's data and not worth a line.
                    kept_volumes.extend(
                        s.volumes
                            .drain(..)
                            .filter(|v| !v.starts_with("hoist-"))
                            .map(|v| (m.clone(), v)),
                    );
                }
                s.containers.sort();
                s.networks.sort();
                s.volumes.sort();
                s
            });
            (m, state)
        })
        .collect();
    DownPlan {
        project: project.to_string(),
        with_volumes,
        machines,
        kept_volumes,
    }
}

impl DownPlan {
    /// (containers, networks, volumes) to remove, over every reached machine.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.machines
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .fold((0, 0, 0), |(c, n, v), s| {
                (
                    c + s.containers.len(),
                    n + s.networks.len(),
                    v + s.volumes.len(),
                )
            })
    }

    /// Whether some machine could not be read: nothing is removed there.
    pub fn unreached(&self) -> Vec<&str> {
        self.machines
            .iter()
            .filter(|(_, s)| s.is_err())
            .map(|(m, _)| m.as_str())
            .collect()
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for (m, state) in &self.machines {
            match state {
                Err(why) => out.push_str(&format!(
                    "{m}: not reached, nothing there is removed: {why}\n"
                )),
                Ok(s)
                    if s.containers.is_empty() && s.networks.is_empty() && s.volumes.is_empty() =>
                {
                    out.push_str(&format!("{m}: nothing of {}\n", self.project))
                }
                Ok(s) => {
                    out.push_str(&format!("{m}\n"));
                    for (name, _) in &s.containers {
                        out.push_str(&format!("  - remove container {name}\n"));
                    }
                    for n in &s.networks {
                        out.push_str(&format!("  - remove network {n}\n"));
                    }
                    for v in &s.volumes {
                        out.push_str(&format!("  - remove volume {v} and its data\n"));
                    }
                }
            }
        }
        let (c, n, v) = self.counts();
        let reached = self.machines.len() - self.unreached().len();
        out.push_str(&format!(
            "{c} containers, {n} networks, {v} volumes to remove across {reached} machines"
        ));
        if !self.kept_volumes.is_empty() {
            out.push_str(&format!(
                "; {} volumes stay (down --volumes removes them, and their data)",
                self.kept_volumes.len()
            ));
        }
        out.push('\n');
        out
    }

    /// The plan as JSON (`down --dry-run --json`); `outcome`, when given, says per machine
    /// what happened (`down --json`).
    pub fn to_json(&self, outcome: Option<&[(String, Result<(), String>)]>) -> Value {
        let machines: Vec<Value> = self
            .machines
            .iter()
            .map(|(m, state)| {
                let mut v = match state {
                    Ok(s) => json!({
                        "name": m,
                        "reached": true,
                        "containers": s.containers.iter().map(|(name, id)| json!({"name": name, "id": id})).collect::<Vec<_>>(),
                        "networks": s.networks,
                        "volumes": s.volumes,
                    }),
                    Err(why) => json!({"name": m, "reached": false, "error": why}),
                };
                if let Some(done) = outcome.and_then(|o| o.iter().find(|(x, _)| x == m)) {
                    v["removed"] = json!(done.1.is_ok());
                    if let Err(e) = &done.1 {
                        v["error"] = json!(e);
                    }
                }
                v
            })
            .collect();
        let (c, n, v) = self.counts();
        json!({
            "project": self.project,
            "volumes": self.with_volumes,
            "machines": machines,
            "counts": {"containers": c, "networks": n, "volumes": v},
            "kept_volumes": self.kept_volumes.iter().map(|(m, v)| json!({"machine": m, "volume": v})).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(containers: &[&str], networks: &[&str], volumes: &[&str]) -> OnMachine {
        OnMachine {
            containers: containers
                .iter()
                .map(|c| (c.to_string(), format!("id-{c}")))
                .collect(),
            networks: networks.iter().map(|s| s.to_string()).collect(),
            volumes: volumes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn volumes_stay_unless_asked_and_the_lock_is_never_in_the_plan() {
        let machines = || {
            vec![
                (
                    "m1".to_string(),
                    Ok(on(
                        &["shop-web-1", "shop-ingress"],
                        &["shop_default"],
                        &[
                            "shop_data",
                            "hoist-lock-shop",
                            "hoist-lock-shop.takeover-1-2",
                            "hoist-fleet-shop",
                        ],
                    )),
                ),
                ("m2".to_string(), Ok(on(&[], &[], &[]))),
                ("m3".to_string(), Err("ssh: connection refused".to_string())),
            ]
        };
        let kept = plan("shop", machines(), false);
        assert_eq!(kept.counts(), (2, 1, 0));
        assert_eq!(
            kept.kept_volumes,
            [("m1".to_string(), "shop_data".to_string())]
        );
        assert_eq!(kept.unreached(), ["m3"]);
        assert_eq!(
            kept.render_text(),
            "m1\n  - remove container shop-ingress\n  - remove container shop-web-1\n  - remove network shop_default\n\
             m2: nothing of shop\n\
             m3: not reached, nothing there is removed: ssh: connection refused\n\
             2 containers, 1 networks, 0 volumes to remove across 2 machines; 1 volumes stay (down --volumes removes them, and their data)\n"
        );
        let all = plan("shop", machines(), true);
        // With --volumes hoist's records go too; the lock and its takeover never.
        assert_eq!(all.counts(), (2, 1, 2));
        assert!(all.kept_volumes.is_empty());
        assert!(
            all.render_text()
                .contains("  - remove volume shop_data and its data\n")
        );
        assert!(!all.render_text().contains("hoist-lock-shop"));
        let v = all.to_json(Some(&[
            ("m1".to_string(), Ok(())),
            ("m3".to_string(), Err("not reached".to_string())),
        ]));
        assert_eq!(v["counts"]["volumes"], 2);
        assert_eq!(v["machines"][0]["removed"], true);
        assert_eq!(v["machines"][2]["reached"], false);
        assert_eq!(v["machines"][2]["removed"], false);
    }
}
