//! Scale records on the machines: the replica count the autoscaler chose for a service, and why, kept on
//! the machines like every other piece of hoist's state.
//!
//! A record is a small labelled volume `hoist-scale-<project>-<service>` on every reachable
//! machine (volume labels cannot change, so a new decision replaces the volume). Reading
//! takes the newest record across machines, so a machine that was down with an old record
//! does not win. `plan`, `up` and `ps` read them, so a deploy keeps the scale watch chose and
//! `ps` shows it; `down --volumes` removes them with the project's other volumes.

use crate::core::autoscale::Record;
use crate::engine::Connections;
use crate::labels;
use bollard::Docker;
use bollard::query_parameters::ListVolumesOptions;
use std::collections::{BTreeMap, HashMap};

/// The service a scale record is for.
const SERVICE: &str = "io.hoist.scale.service";
const REPLICAS: &str = "io.hoist.scale.replicas";
const REASON: &str = "io.hoist.scale.reason";
/// RFC 3339, for people.
const AT: &str = "io.hoist.scale.at";
/// Milliseconds since the epoch, to find the newest record.
const SEQ: &str = "io.hoist.scale.seq";

pub fn volume_name(project: &str, service: &str) -> String {
    format!("hoist-scale-{project}-{service}")
}

/// The newest record of each service of `project`, over every connected machine.
pub async fn read(conns: &Connections, project: &str) -> BTreeMap<String, Record> {
    let lists = conns
        .results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|e| read_one(&e.docker, project));
    let mut newest: BTreeMap<String, Record> = BTreeMap::new();
    for list in futures_util::future::join_all(lists).await {
        for r in list {
            if newest.get(&r.service).is_none_or(|n| n.seq < r.seq) {
                newest.insert(r.service.clone(), r);
            }
        }
    }
    newest
}

async fn read_one(docker: &Docker, project: &str) -> Vec<Record> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}={project}", labels::PROJECT),
            SERVICE.to_string(),
        ],
    )]);
    let Ok(list) = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters),
        }))
        .await
    else {
        return Vec::new();
    };
    list.volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            let l = &v.labels;
            Some(Record {
                service: l.get(SERVICE)?.clone(),
                replicas: l.get(REPLICAS)?.parse().ok()?,
                reason: l.get(REASON).cloned().unwrap_or_default(),
                at: l.get(AT).cloned().unwrap_or_default(),
                seq: l.get(SEQ).and_then(|s| s.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// Writes `record` on every engine given (the caller holds the deploy lock). Returns the
/// machines where it could not be written, with why.
pub async fn write(
    engines: &[(String, Docker)],
    project: &str,
    record: &Record,
) -> Vec<(String, String)> {
    let name = volume_name(project, &record.service);
    let labels = HashMap::from([
        (labels::PROJECT.to_string(), project.to_string()),
        (SERVICE.to_string(), record.service.clone()),
        (REPLICAS.to_string(), record.replicas.to_string()),
        (REASON.to_string(), record.reason.clone()),
        (AT.to_string(), record.at.clone()),
        (SEQ.to_string(), record.seq.to_string()),
    ]);
    super::ops::put_labelled_volume(engines, &name, &labels, |_| false).await
}
