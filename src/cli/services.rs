//! Which services a verb that names them (`exec`, `logs`) can mean: those the
//! machines run for the project and those its compose file declares. A name in
//! neither is a typo, and is reported as one instead of printing nothing.

use super::project_args::ProjectArgs;
use crate::observe::{self, Observation};
use anyhow::{Result, bail};
use std::collections::BTreeSet;

/// Fails, naming every unknown service and the known ones, unless each of
/// `wanted` is run by some machine or declared in the compose file.
pub fn check_known(
    project_args: &ProjectArgs,
    project: &str,
    seen: &Observation,
    wanted: &[String],
) -> Result<()> {
    let mut known = observed(seen);
    let unknown = |known: &BTreeSet<String>| -> Vec<String> {
        wanted
            .iter()
            .filter(|w| !known.contains(*w))
            .cloned()
            .collect()
    };
    if unknown(&known).is_empty() {
        return Ok(());
    }
    known.extend(declared(project_args));
    let unknown = unknown(&known);
    if unknown.is_empty() {
        return Ok(());
    }
    let names = unknown
        .iter()
        .map(|u| format!("`{u}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let noun = if unknown.len() == 1 {
        "no service named"
    } else {
        "no services named"
    };
    let unreachable: Vec<&str> = seen
        .machines
        .iter()
        .filter(|(_, s)| s.is_err())
        .map(|(m, _)| m.as_str())
        .collect();
    let also = if unreachable.is_empty() {
        String::new()
    } else {
        format!(
            " (not counting {}, which could not be reached)",
            unreachable.join(", ")
        )
    };
    if known.is_empty() {
        bail!(
            "{noun} {names}: project {project} runs nothing on the machines{also} and no compose \
             file declares a service; check the project name (-p) or run `hoist up`"
        );
    }
    let list = known.into_iter().collect::<Vec<_>>().join(", ");
    bail!(
        "{noun} {names} in project {project}{also}; its services are: {list}. Check the name, or \
         see `hoist ps`"
    )
}

fn observed(seen: &Observation) -> BTreeSet<String> {
    seen.machines
        .iter()
        .filter_map(|(_, s)| s.as_ref().ok())
        .flat_map(|s| observe::current(&s.containers))
        .map(|c| c.service.clone())
        .collect()
}

/// The services of the compose file, when there is one to read; none otherwise
/// (a verb run with only `-p`, away from the file, still works from the machines).
fn declared(project_args: &ProjectArgs) -> BTreeSet<String> {
    if project_args.files.iter().any(|f| f.as_os_str() == "-") {
        // Reading the file would eat the stdin meant for the command.
        return BTreeSet::new();
    }
    let Ok(opts) = project_args.load_options() else {
        return BTreeSet::new();
    };
    match crate::load::load(&opts) {
        Ok(loaded) => loaded.project.services.into_keys().collect(),
        Err(_) => BTreeSet::new(),
    }
}
