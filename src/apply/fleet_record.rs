//! Which machines a project was deployed to, recorded on the machines: so that a machine taken
//! out of the machines file while it still runs the project's containers is noticed.
//!
//! hoist sees only the machines of the file. One deleted from it disappears from every plan,
//! and its containers would be orphaned without a word: its replicas are placed again
//! elsewhere, and it keeps running the old ones. So `up` records the machines of the file on
//! every reachable machine (a labelled volume `hoist-fleet-<project>`, replaced when the list
//! changes, as the scale records are), and `plan` warns about a recorded machine the file no
//! longer has, saying how to retire it (`hoist drain` first). A drained machine that runs
//! nothing of the project any more is left out of the record: it may leave the file quietly.

use crate::labels;
use bollard::Docker;
use bollard::query_parameters::RemoveVolumeOptions;
use std::collections::{BTreeSet, HashMap};

/// The machines, as JSON (a list of inventory names).
const MACHINES: &str = "io.hoist.fleet.machines";

pub fn volume_name(project: &str) -> String {
    format!("hoist-fleet-{project}")
}

/// Every machine any reachable machine recorded for `project`.
pub async fn read(engines: &[(String, Docker)], project: &str) -> BTreeSet<String> {
    let name = volume_name(project);
    let reads = engines.iter().map(|(_, d)| d.inspect_volume(&name));
    let mut out = BTreeSet::new();
    for v in futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
    {
        if let Some(list) = v.labels.get(MACHINES)
            && let Ok(names) = serde_json::from_str::<Vec<String>>(list)
        {
            out.extend(names);
        }
    }
    out
}

/// Records `machines` on every engine whose record differs. Best effort: a machine that
/// cannot be written keeps its older record (returned as (machine, error)).
pub async fn write(
    engines: &[(String, Docker)],
    project: &str,
    machines: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let list = serde_json::to_string(machines).expect("names serialize");
    let labels = HashMap::from([
        (labels::PROJECT.to_string(), project.to_string()),
        (MACHINES.to_string(), list.clone()),
    ]);
    super::ops::put_labelled_volume(engines, &volume_name(project), &labels, |have| {
        have.get(MACHINES) == Some(&list)
    })
    .await
}

/// Removes the record (`hoist down`: the project runs nowhere).
pub async fn clear(engines: &[(String, Docker)], project: &str) {
    let name = volume_name(project);
    let removes = engines
        .iter()
        .map(|(_, d)| d.remove_volume(&name, None::<RemoveVolumeOptions>));
    futures_util::future::join_all(removes).await;
}
