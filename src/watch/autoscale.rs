//! CPU sampling for the autoscaler (`core::autoscale` decides from what this measures).

use bollard::Docker;
use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// CPU counters of one container at one sample.
#[derive(Debug, Clone, Copy)]
struct Counters {
    total: u64,
    system: u64,
    cpus: u32,
}

/// Turns one-shot stats (cumulative counters) into CPU percentages between rounds.
#[derive(Default)]
pub struct Sampler {
    previous: HashMap<String, Counters>,
}

/// One round's samples: CPU percent by container, and the containers that gave no figure
/// with why (the engine did not answer in time, or answered without CPU counters).
#[derive(Debug, Default)]
pub struct Samples {
    pub cpu: HashMap<String, f64>,
    pub unmeasured: Vec<(String, String)>,
}

impl Sampler {
    /// CPU percent (of one CPU) of each container given (machine engine, container id) since
    /// its last sample; a container sampled for the first time gives none yet. A container
    /// that misses a round keeps its last counters, so one slow answer costs one round, not two.
    pub async fn sample(&mut self, containers: &[(Docker, String)], within: Duration) -> Samples {
        let reads = containers.iter().map(|(docker, id)| async move {
            let opts = StatsOptions {
                stream: false,
                one_shot: true,
            };
            let read = async {
                let mut s = docker.stats(id, Some(opts));
                s.next().await
            };
            let counters = match tokio::time::timeout(within, read).await {
                Ok(Some(Ok(stats))) => stats
                    .cpu_stats
                    .and_then(|c| {
                        Some(Counters {
                            total: c.cpu_usage?.total_usage?,
                            system: c.system_cpu_usage?,
                            cpus: c.online_cpus.unwrap_or(1).max(1),
                        })
                    })
                    // An engine that cannot read the container's cgroups answers with zeroed
                    // counters (and logs "no metrics received"): no figure, not 0 %.
                    .filter(|c| c.system > 0)
                    .ok_or_else(|| {
                        "its engine reports no CPU counters for it (can the engine read its cgroups? `docker stats` shows the same)".to_string()
                    }),
                Ok(Some(Err(e))) => Err(format!("its engine refused stats: {e}")),
                Ok(None) => Err("its engine sent no stats".to_string()),
                Err(_) => Err(format!(
                    "its engine gave no stats within {} ms",
                    within.as_millis()
                )),
            };
            (id.clone(), counters)
        });
        let mut out = Samples::default();
        let mut next = HashMap::new();
        for (id, counters) in futures_util::future::join_all(reads).await {
            match counters {
                Ok(now) => {
                    if let Some(before) = self.previous.get(&id)
                        && let Some(p) = percent(before, &now)
                    {
                        out.cpu.insert(id.clone(), p);
                    }
                    next.insert(id, now);
                }
                Err(why) => {
                    if let Some(before) = self.previous.get(&id) {
                        next.insert(id.clone(), *before);
                    }
                    out.unmeasured.push((id, why));
                }
            }
        }
        self.previous = next;
        out
    }
}

fn percent(before: &Counters, now: &Counters) -> Option<f64> {
    let used = now.total.checked_sub(before.total)?;
    let system = now.system.checked_sub(before.system)?;
    if system == 0 {
        return None;
    }
    Some(used as f64 / system as f64 * now.cpus as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_from_counters() {
        let a = Counters {
            total: 0,
            system: 0,
            cpus: 2,
        };
        let b = Counters {
            total: 500,
            system: 1000,
            cpus: 2,
        };
        assert_eq!(percent(&a, &b), Some(100.0));
        assert_eq!(percent(&b, &a), None);
    }
}
