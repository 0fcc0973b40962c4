//! Every check of the compose file's `x-hoist` values that `plan` and `up` would make
//! later, made right after loading: `config` reports them, and `up` refuses before it
//! connects or takes the deploy lock (issue 17, finding 6: a route's `health.interval:
//! "1e30"` passed `config` and `plan`, then panicked in `up` while holding the lock).
//! Pure: a Project (and the fleet's mesh setting) in, the first problem out.

use crate::model::Project;
use anyhow::Result;
use std::collections::BTreeMap;

/// Checks the ingress routes, the mesh and the autoscale policies of `project`.
pub fn project(project: &Project, fleet_mesh: Option<&crate::inventory::FleetMesh>) -> Result<()> {
    crate::ingress::spec::from_project(project)?;
    // Engine network names do not matter here, only that every network a service joins is
    // declared.
    let mut networks: BTreeMap<String, String> = project
        .networks
        .keys()
        .map(|k| (k.clone(), k.clone()))
        .collect();
    networks.insert("default".into(), "default".into());
    crate::mesh::spec::from_project(project, &networks, fleet_mesh)?;
    crate::watch::autoscale::policies(project)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let v: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn values_plan_and_up_would_refuse_are_refused_now() {
        let cases = [
            (
                "name: p\nservices:\n  web: {image: x, ports: [{target: 80}], x-hoist: {ingress: {health: {interval: '1e30'}}}}\n",
                "services.web.x-hoist.ingress.health.interval: \"1e30\" is too long",
            ),
            (
                "name: p\nservices:\n  web: {image: x, ports: [{target: 80}], x-hoist: {ingress: {hosts: ['a {']}}}\n",
                "services.web.x-hoist.ingress.hosts[0]",
            ),
            (
                "name: p\nservices:\n  web: {image: x, x-hoist: {autoscale: {min: 5, max: 2}}}\n",
                "min 5 and max 2",
            ),
            (
                "name: p\nservices:\n  web: {image: x, x-hoist: {mesh: maybe}}\nx-hoist: {mesh: {}}\n",
                "services.web.x-hoist.mesh",
            ),
        ];
        for (yaml, want) in cases {
            let e = format!("{:#}", super::project(&project(yaml), None).unwrap_err());
            assert!(e.contains(want), "{yaml}: {e}");
        }
        let fine = "name: p\nservices:\n  web: {image: x, ports: [{target: 80}]}\n";
        assert!(super::project(&project(fine), None).is_ok());
    }
}
