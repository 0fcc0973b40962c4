//! What the engines report that the compose file does not explain: unreachable machines,
//! duplicates, removed services; and the guarantees of the output (determinism, JSON).

use super::fixtures::*;
use super::{Case, plan_text, run};
use crate::core::diff::diff;
use crate::core::schedule::schedule;

const DOWN: &str = "ssh: connect to host 10.0.0.3 port 22: Connection timed out";

#[test]
fn unreachable_machines() {
    let web = |image| svc("web", image).replicas(3);
    run(vec![
        Case {
            name: "unreachable machine: its replica is unknown, never duplicated elsewhere",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web("app:1")],
            observed: fleet(&["m1", "m2"]).down("m3", DOWN).run(&web("app:1"), 1, "m1").run(&web("app:1"), 2, "m2").0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 2 unchanged, across 3 machines (1 unreachable)
warning: m3 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there
warning: web.3 is not placed: it may be running on unreachable m3
",
        },
        Case {
            name: "unreachable machine during an update: the reachable replicas roll",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web("app:2")],
            observed: fleet(&["m1", "m2"]).down("m3", DOWN).run(&web("app:1"), 1, "m1").run(&web("app:1"), 2, "m2").0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image app:1 → app:2
  m2
    ~ replace web.2 (start-first: hoist's default when update_config.order is unset)
        image app:1 → app:2

0 to create, 2 to replace, 0 to remove, 0 unchanged, across 3 machines (1 unreachable)
warning: m3 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there
warning: web.3 is not placed: it may be running on unreachable m3
",
        },
        Case {
            name: "two unreachable machines: either may hold the slot",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![svc("web", "app:1").replicas(2)],
            observed: fleet(&["m1"]).down("m2", "ssh: no route to host").down("m3", DOWN).run(&web("app:1"), 1, "m1").0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 1 unchanged, across 3 machines (2 unreachable)
warning: m2 is unreachable (ssh: no route to host): its containers are unknown, nothing is planned there
warning: m3 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there
warning: web.2 is not placed: it may be running on unreachable m2 or m3
",
        },
        Case {
            name: "unreachable machine that the constraints exclude cannot hold the slot: placed",
            machines: vec![machine("m1").label("zone", "eu"), machine("m2").label("zone", "eu"), machine("m3").label("zone", "us")],
            workloads: vec![svc("web", "app:1").replicas(2).constraint("node.labels.zone == eu")],
            observed: fleet(&["m1", "m2"]).down("m3", DOWN).run(&svc("web", "app:1"), 1, "m1").network("m2", "shop_default").0,
            want: "
web
  m2
    + create web.2
        2 replicas wanted, 1 found

1 to create, 0 to replace, 0 to remove, 1 unchanged, across 3 machines (1 unreachable)
warning: m3 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there
",
        },
        Case {
            name: "scale down with an unreachable machine: only what can be seen is removed",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![svc("web", "app:1")],
            observed: fleet(&["m1", "m2"]).down("m3", DOWN).run(&web("app:1"), 1, "m1").run(&web("app:1"), 2, "m2").0,
            want: "
web
  m2
    - remove web.2 (container shop-web-2)
        scale down: 1 replica wanted

0 to create, 0 to replace, 1 to remove, 1 unchanged, across 3 machines (1 unreachable)
warning: m3 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there
",
        },
        Case {
            name: "global service with an unreachable machine: the others are served",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![svc("agent", "agent:2").global()],
            observed: fleet(&["m1", "m2"]).down("m3", DOWN).run_global(&svc("agent", "agent:1"), "m1").network("m2", "shop_default").0,
            want: "
agent
  m1
    ~ replace agent (start-first: hoist's default when update_config.order is unset)
        image agent:1 → agent:2
  m2
    + create agent
        global: none on m2 yet

1 to create, 1 to replace, 0 to remove, 0 unchanged, across 3 machines (1 unreachable)
warning: m3 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there
",
        },
    ]);
}

#[test]
fn leftovers() {
    let web = || svc("web", "app:2").replicas(2);
    run(vec![
        Case {
            name: "service removed from the file: its containers go first",
            machines: machines(&["m1", "m2"]),
            workloads: vec![svc("web", "app:1")],
            observed: fleet(&["m1", "m2"])
                .run(&svc("web", "app:1"), 1, "m1")
                .run(&svc("worker", "worker:1").replicas(2), 1, "m2")
                .run(&svc("worker", "worker:1").replicas(2), 2, "m1")
                .0,
            want: "
worker
  m1
    - remove worker.2 (container shop-worker-2)
        service no longer in the compose file
  m2
    - remove worker.1 (container shop-worker-1)
        service no longer in the compose file

0 to create, 0 to replace, 2 to remove, 1 unchanged, across 2 machines
",
        },
        Case {
            name: "duplicate containers for one slot on two machines: keep the current one",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2"])
                .run(&svc("web", "app:1"), 1, "m1")
                .run(&web(), 1, "m2")
                .run(&web(), 2, "m2")
                .0,
            want: "
web
  m1
    - remove web.1 (container shop-web-1)
        duplicate of web.1: keeping shop-web-1 on m2

0 to create, 0 to replace, 1 to remove, 2 unchanged, across 2 machines
",
        },
        Case {
            name: "duplicate containers for one slot on one machine: keep the running one",
            machines: machines(&["m1"]),
            workloads: vec![web()],
            observed: fleet(&["m1"])
                .duplicate(&web(), 1, "m1", "exited", "-a")
                .run(&web(), 1, "m1")
                .run(&web(), 2, "m1")
                .0,
            want: "
web
  m1
    - remove web.1 (container shop-web-1-a)
        duplicate of web.1: keeping shop-web-1 on m1

0 to create, 0 to replace, 1 to remove, 2 unchanged, across 1 machine
",
        },
        Case {
            name: "duplicate containers of a global service on one machine",
            machines: machines(&["m1"]),
            workloads: vec![svc("agent", "agent:1").global()],
            observed: fleet(&["m1"])
                .duplicate_global(&svc("agent", "agent:1"), "m1", "exited", "-b")
                .run_global(&svc("agent", "agent:1"), "m1")
                .0,
            want: "
agent
  m1
    - remove agent (container shop-agent-m1-b)
        duplicate of agent: keeping shop-agent-m1 on m1

0 to create, 0 to replace, 1 to remove, 1 unchanged, across 1 machine
",
        },
        Case {
            name: "a service defined twice is refused",
            machines: machines(&["m1"]),
            workloads: vec![svc("web", "app:1"), svc("web", "app:2")],
            observed: fleet(&["m1"]).0,
            want: "
error:
web: defined twice
",
        },
    ]);
}

/// A fleet with a bit of everything, to check the output's guarantees.
fn busy() -> (
    Vec<crate::core::fleet_view::MachineView>,
    Vec<crate::core::workload::Workload>,
    crate::core::observed::Observed,
) {
    let machines = vec![
        machine("m1").label("zone", "eu"),
        machine("m2").label("zone", "us"),
        machine("m3").label("zone", "eu"),
        machine("m4").label("zone", "us"),
    ];
    let workloads = vec![
        svc("web", "app:2")
            .replicas(3)
            .port(80, 8080)
            .depends_on("api")
            .env("SECRET", "new-secret-value"),
        svc("api", "api:1")
            .replicas(4)
            .constraint("node.labels.zone == eu")
            .depends_on("db"),
        svc("cache", "redis:7"),
        svc("db", "postgres:16").volume("shop_db", "/data"),
        svc("agent", "agent:1").global(),
    ];
    let old_web = svc("web", "app:1")
        .replicas(3)
        .port(80, 8080)
        .env("SECRET", "old-secret-value");
    let observed = fleet(&["m1", "m2", "m3"])
        .down("m4", DOWN)
        .run(&old_web, 1, "m1")
        .run(&old_web, 2, "m2")
        .run(&old_web, 3, "m3")
        .run(
            &svc("db", "postgres:16").volume("shop_db", "/data"),
            1,
            "m2",
        )
        .run(&svc("gone", "gone:1"), 1, "m3")
        .0;
    (machines, workloads, observed)
}

#[test]
fn same_inputs_same_bytes_whatever_the_input_order() {
    let (machines, workloads, observed) = busy();
    let text = plan_text(&machines, &workloads, &observed);
    let json = {
        let desired = schedule(&workloads, &machines, &observed).unwrap();
        diff(&desired, &observed, &workloads).to_json()
    };
    for _ in 0..3 {
        assert_eq!(plan_text(&machines, &workloads, &observed), text);
    }
    let (mut machines, mut workloads, mut observed) = (machines, workloads, observed);
    machines.reverse();
    workloads.reverse();
    observed.containers.reverse();
    observed.networks.reverse();
    observed.volumes.reverse();
    assert_eq!(plan_text(&machines, &workloads, &observed), text);
    let desired = schedule(&workloads, &machines, &observed).unwrap();
    assert_eq!(diff(&desired, &observed, &workloads).to_json(), json);
    assert!(
        !text.contains("secret-value") && !json.contains("secret-value"),
        "{text}\n{json}"
    );
}

#[test]
fn busy_fleet_reads_well() {
    let (machines, workloads, observed) = busy();
    run(vec![Case {
        name: "a bit of everything",
        machines,
        workloads,
        observed,
        want: "
gone
  m3
    - remove gone.1 (container shop-gone-1)
        service no longer in the compose file

agent
  m1
    + create agent
        new service
  m2
    + create agent
        new service
  m3
    + create agent
        new service

api
  m1
    + create api.1
        new service
    + create api.3
        new service
  m3
    + create api.2
        new service
    + create api.4
        new service

web
  m1
    ~ replace web.1 (stop-first: publishes host port 80/tcp)
        image app:1 → app:2
        environment SECRET changed
  m2
    ~ replace web.2 (stop-first: publishes host port 80/tcp)
        image app:1 → app:2
        environment SECRET changed
  m3
    ~ replace web.3 (stop-first: publishes host port 80/tcp)
        image app:1 → app:2
        environment SECRET changed

7 to create, 3 to replace, 1 to remove, 1 unchanged, across 4 machines (1 unreachable)
warning: m4 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there
warning: cache.1 is not placed: it may be running on unreachable m4
",
    }]);
}

#[test]
fn json_schema_1() {
    let w = svc("web", "app:2").port(80, 8080).env("TOKEN", "t0ps3cret");
    let observed = fleet(&["m1"])
        .down("m2", DOWN)
        .run(
            &svc("web", "app:1").port(80, 8080).env("TOKEN", "old"),
            1,
            "m1",
        )
        .run(&svc("old", "old:1"), 1, "m1")
        .0;
    let machines = machines(&["m1", "m2"]);
    let workloads = vec![
        w,
        svc("api", "api:1")
            .volume("shop_api", "/data")
            .constraint("node.hostname == m1"),
    ];
    let desired = schedule(&workloads, &machines, &observed).unwrap();
    let plan = diff(&desired, &observed, &workloads);
    assert!(plan.has_changes());
    let want = r#"{
  "schema": 1,
  "changes": true,
  "summary": {
    "create": 1,
    "start": 0,
    "replace": 1,
    "move": 0,
    "remove": 1,
    "unchanged": 0,
    "create_network": 0,
    "create_volume": 1,
    "machines": 2,
    "unreachable": 1
  },
  "steps": [
    {
      "action": "create_volume",
      "machine": "m1",
      "service": null,
      "slot": null,
      "name": "shop_api",
      "container": null,
      "from_machine": null,
      "order": null,
      "order_reason": null,
      "reasons": []
    },
    {
      "action": "remove",
      "machine": "m1",
      "service": "old",
      "slot": 1,
      "name": null,
      "container": {
        "id": "m1/shop-old-1",
        "name": "shop-old-1"
      },
      "from_machine": null,
      "order": null,
      "order_reason": null,
      "reasons": [
        "service no longer in the compose file"
      ]
    },
    {
      "action": "create",
      "machine": "m1",
      "service": "api",
      "slot": 1,
      "name": null,
      "container": null,
      "from_machine": null,
      "order": null,
      "order_reason": null,
      "reasons": [
        "new service"
      ]
    },
    {
      "action": "replace",
      "machine": "m1",
      "service": "web",
      "slot": 1,
      "name": null,
      "container": {
        "id": "m1/shop-web-1",
        "name": "shop-web-1"
      },
      "from_machine": null,
      "order": "stop-first",
      "order_reason": "publishes host port 80/tcp",
      "reasons": [
        "image app:1 → app:2",
        "environment TOKEN changed"
      ]
    }
  ],
  "unknown": [],
  "unreachable": [
    {
      "machine": "m2",
      "reason": "ssh: connect to host 10.0.0.3 port 22: Connection timed out"
    }
  ],
  "warnings": [
    "m2 is unreachable (ssh: connect to host 10.0.0.3 port 22: Connection timed out): its containers are unknown, nothing is planned there"
  ],
  "drained": [],
  "volume_moves": []
}"#;
    assert_eq!(plan.to_json(), want);
}

#[test]
fn no_op_has_no_changes() {
    let w = svc("web", "app:1");
    let observed = fleet(&["m1"]).run(&w, 1, "m1").0;
    let workloads = vec![w];
    let desired = schedule(&workloads, &machines(&["m1"]), &observed).unwrap();
    assert!(!diff(&desired, &observed, &workloads).has_changes());
}
