//! Every check of the compose file's `x-hoist` values that `plan` and `up` would make
//! later, made right after loading: `config` reports them, and `up` refuses before it
//! connects or takes the deploy lock (issue 17, finding 6: a route's `health.interval:
//! "1e30"` passed `config` and `plan`, then panicked in `up` while holding the lock).
//! Pure: a Project (and the fleet's mesh setting) in, the first problem out.

use crate::model::Project;
use anyhow::Result;
use std::collections::BTreeMap;

/// Checks the ingress routes, the mesh and the autoscale policies of `project`: hoist's own
/// `x-hoist` values, which `config` reports too. Standard Compose keys hoist cannot deploy are
/// left to [`deployable`], so that `config` stays `docker compose config`.
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
    crate::core::autoscale::policies(project)?;
    crate::volume::backup_commands(project)?;
    Ok(())
}

/// [`project`], then what `plan` resolves from each service (keys hoist does not support,
/// update order, failure action, mode …) and its placement constraints: everything `plan`
/// would refuse in the file, refused before `plan` or `up` contacts a machine.
pub fn deployable(
    project: &Project,
    fleet_mesh: Option<&crate::inventory::FleetMesh>,
) -> Result<()> {
    self::project(project, fleet_mesh)?;
    // Without built image IDs or registry digests: what resolves here resolves in `plan`.
    super::resolve::resolve(project, &BTreeMap::new(), &BTreeMap::new(), fleet_mesh)?;
    for (name, svc) in &project.services {
        let Some(placement) = svc.deploy.as_ref().map(|d| &d.placement) else {
            continue;
        };
        for (i, c) in placement.constraints.iter().enumerate() {
            crate::core::constraint::Constraint::parse(c).map_err(|e| {
                anyhow::anyhow!("services.{name}.deploy.placement.constraints[{i}]: {e}")
            })?;
        }
        for (i, p) in placement.preferences.iter().enumerate() {
            if let Some(spread) = &p.spread {
                crate::core::constraint::parse_spread(spread).map_err(|e| {
                    anyhow::anyhow!("services.{name}.deploy.placement.preferences[{i}].spread: {e}")
                })?;
            }
        }
    }
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
            (
                "name: p\nservices:\n  web: {image: x, deploy: {update_config: {order: sideways}}}\n",
                "services.web.deploy.update_config.order",
            ),
            (
                "name: p\nservices:\n  web: {image: x, deploy: {placement: {constraints: ['node.foo = x']}}}\n",
                "services.web.deploy.placement.constraints[0]: ",
            ),
            (
                "name: p\nservices:\n  web: {image: x, deploy: {placement: {preferences: [{spread: node.nope}]}}}\n",
                "services.web.deploy.placement.preferences[0].spread: ",
            ),
        ];
        for (yaml, want) in cases {
            let e = format!("{:#}", deployable(&project(yaml), None).unwrap_err());
            assert!(e.contains(want), "{yaml}: {e}");
        }
        // What Compose accepts and hoist cannot deploy is `plan`'s to refuse, not `config`'s.
        let external = "name: p\nnetworks:\n  n: {external: true}\nservices:\n  web: {image: x, networks: {n: {}}}\n";
        assert!(super::project(&project(external), None).is_ok());
        assert!(deployable(&project(external), None).is_err());
        let fine = "name: p\nservices:\n  web: {image: x, ports: [{target: 80}]}\n";
        assert!(super::project(&project(fine), None).is_ok());
    }
}
