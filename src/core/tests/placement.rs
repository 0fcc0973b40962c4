//! Where replicas go: new projects, scaling, machines joining and leaving, constraints.

use super::fixtures::*;
use super::{Case, run};

#[test]
fn new_projects_and_scaling() {
    let db = || svc("db", "postgres:16").volume("shop_db", "/var/lib/postgresql/data");
    let web = || {
        svc("web", "app:1.2")
            .replicas(2)
            .port(80, 8080)
            .depends_on("db")
    };
    run(vec![
        Case {
            name: "new project: the stateful db first, web spread over the less loaded machine",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web(), db()],
            observed: fleet(&["m1", "m2"]).0,
            want: "
networks and volumes
  m1
    + create network shop_default
    + create volume shop_db
  m2
    + create network shop_default

db
  m1
    + create db.1
        new service

web
  m1
    + create web.2
        new service
  m2
    + create web.1
        new service

3 to create, 0 to replace, 0 to remove, 0 unchanged, 2 networks to create, 1 volume to create, across 2 machines
",
        },
        Case {
            name: "no-op: everything runs where it should",
            machines: machines(&["m1", "m2"]),
            workloads: vec![db(), web()],
            observed: fleet(&["m1", "m2"]).run(&db(), 1, "m1").run(&web(), 1, "m2").run(&web(), 2, "m1").0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 3 unchanged, across 2 machines
",
        },
        Case {
            name: "scale up: new slots go where the service has fewest, networks follow",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![svc("web", "app:1.2").replicas(4)],
            observed: fleet(&["m1", "m2", "m3"]).run(&svc("web", "app:1.2"), 1, "m1").run(&svc("web", "app:1.2"), 2, "m2").0,
            want: "
networks and volumes
  m3
    + create network shop_default

web
  m1
    + create web.4
        4 replicas wanted, 2 found
  m3
    + create web.3
        4 replicas wanted, 2 found

2 to create, 0 to replace, 0 to remove, 2 unchanged, 1 network to create, across 3 machines
",
        },
        Case {
            name: "scale down: highest slots go first, wherever they are",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![svc("web", "app:1.2").replicas(2)],
            observed: fleet(&["m1", "m2", "m3"])
                .run(&svc("web", "app:1.2"), 1, "m1")
                .run(&svc("web", "app:1.2"), 2, "m2")
                .run(&svc("web", "app:1.2"), 3, "m3")
                .run(&svc("web", "app:1.2"), 4, "m1")
                .0,
            want: "
web
  m1
    - remove web.4 (container shop-web-4)
        scale down: 2 replicas wanted
  m3
    - remove web.3 (container shop-web-3)
        scale down: 2 replicas wanted

0 to create, 0 to replace, 2 to remove, 2 unchanged, across 3 machines
",
        },
        Case {
            name: "scale to one replica says so in the singular",
            machines: machines(&["m1", "m2"]),
            workloads: vec![svc("web", "app:1.2")],
            observed: fleet(&["m1", "m2"]).run(&svc("web", "app:1.2"), 1, "m1").run(&svc("web", "app:1.2"), 2, "m2").0,
            want: "
web
  m2
    - remove web.2 (container shop-web-2)
        scale down: 1 replica wanted

0 to create, 0 to replace, 1 to remove, 1 unchanged, across 2 machines
",
        },
        Case {
            name: "depends_on orders services, not their names",
            machines: machines(&["m1"]),
            workloads: vec![
                svc("web", "web:1").depends_on("api"),
                svc("api", "api:1").depends_on("db").depends_on("cache"),
                svc("db", "postgres:16"),
                svc("cache", "redis:7"),
                svc("admin", "admin:1").depends_on("db"),
            ],
            observed: fleet(&["m1"]).network("m1", "shop_default").0,
            want: "
cache
  m1
    + create cache.1
        new service

db
  m1
    + create db.1
        new service

admin
  m1
    + create admin.1
        new service

api
  m1
    + create api.1
        new service

web
  m1
    + create web.1
        new service

5 to create, 0 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
    ]);
}

#[test]
fn machines_come_and_go() {
    let web = || svc("web", "app:1.2").replicas(3);
    run(vec![
        Case {
            name: "machine added: stability, nothing moves to it",
            machines: machines(&["m1", "m2", "m3", "m4"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2", "m3", "m4"])
                .run(&web(), 1, "m1")
                .run(&web(), 2, "m2")
                .run(&web(), 3, "m3")
                .0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 3 unchanged, across 4 machines
",
        },
        Case {
            name: "machine removed from the inventory: its slot is placed again on the others",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2"])
                .run(&web(), 1, "m1")
                .run(&web(), 2, "m2")
                .0,
            want: "
web
  m1
    + create web.3
        3 replicas wanted, 2 found

1 to create, 0 to replace, 0 to remove, 2 unchanged, across 2 machines
",
        },
        Case {
            name: "machine left the inventory but still answers: its replica moves off it",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2", "m3"])
                .run(&web(), 1, "m1")
                .run(&web(), 2, "m2")
                .run(&web(), 3, "m3")
                .0,
            want: "
web
  m1
    > move web.3 from m3
        placement: machine m3 is no longer in the inventory

0 to create, 0 to replace, 1 to move, 0 to remove, 2 unchanged, across 3 machines
",
        },
        Case {
            name: "global service: a new machine gets its replica",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![svc("agent", "agent:1").global()],
            observed: fleet(&["m1", "m2", "m3"])
                .run_global(&svc("agent", "agent:1"), "m1")
                .run_global(&svc("agent", "agent:1"), "m2")
                .0,
            want: "
networks and volumes
  m3
    + create network shop_default

agent
  m3
    + create agent
        global: none on m3 yet

1 to create, 0 to replace, 0 to remove, 2 unchanged, 1 network to create, across 3 machines
",
        },
        Case {
            name: "global service with a constraint: only matching machines",
            machines: vec![
                machine("m1").label("edge", "true"),
                machine("m2"),
                machine("m3").label("edge", "true"),
            ],
            workloads: vec![
                svc("agent", "agent:1")
                    .global()
                    .constraint("node.labels.edge == true"),
            ],
            observed: fleet(&["m1", "m2", "m3"])
                .network("m1", "shop_default")
                .network("m3", "shop_default")
                .0,
            want: "
agent
  m1
    + create agent
        new service
  m3
    + create agent
        new service

2 to create, 0 to replace, 0 to remove, 0 unchanged, across 3 machines
",
        },
        Case {
            name: "global service: a machine that no longer matches loses its replica",
            machines: vec![
                machine("m1").label("edge", "true"),
                machine("m2"),
                machine("m3").label("edge", "true"),
            ],
            workloads: vec![
                svc("agent", "agent:1")
                    .global()
                    .constraint("node.labels.edge == true"),
            ],
            observed: fleet(&["m1", "m2", "m3"])
                .run_global(&svc("agent", "agent:1"), "m1")
                .run_global(&svc("agent", "agent:1"), "m2")
                .run_global(&svc("agent", "agent:1"), "m3")
                .0,
            want: "
agent
  m2
    - remove agent (container shop-agent-m2)
        placement: machine m2 no longer matches node.labels.edge == true

0 to create, 0 to replace, 1 to remove, 2 unchanged, across 3 machines
",
        },
        Case {
            name: "deploy mode changed from replicated to global",
            machines: machines(&["m1", "m2"]),
            workloads: vec![svc("agent", "agent:1").global()],
            observed: fleet(&["m1", "m2"])
                .run(&svc("agent", "agent:1"), 1, "m1")
                .run(&svc("agent", "agent:1"), 2, "m2")
                .0,
            want: "
agent
  m1
    - remove agent.1 (container shop-agent-1)
        deploy mode changed to global
    + create agent
        global: none on m1 yet
  m2
    - remove agent.2 (container shop-agent-2)
        deploy mode changed to global
    + create agent
        global: none on m2 yet

2 to create, 0 to replace, 2 to remove, 0 unchanged, across 2 machines
",
        },
    ]);
}

#[test]
fn constraints() {
    let zoned = || {
        vec![
            machine("m1").label("zone", "eu"),
            machine("m2").label("zone", "us"),
            machine("m3").label("zone", "eu"),
        ]
    };
    let web = || svc("web", "app:1.2").replicas(2);
    run(vec![
        Case {
            name: "constraint no longer met: the replica moves, with the reason",
            machines: zoned(),
            workloads: vec![web().constraint("node.labels.zone == eu")],
            observed: fleet(&["m1", "m2", "m3"]).run(&web(), 1, "m1").run(&web(), 2, "m2").0,
            want: "
networks and volumes
  m3
    + create network shop_default

web
  m3
    > move web.2 from m2
        placement: machine m2 no longer matches node.labels.zone == eu

0 to create, 0 to replace, 1 to move, 0 to remove, 1 unchanged, 1 network to create, across 3 machines
",
        },
        Case {
            name: "move and image change together: the moved replica starts with the new spec",
            machines: zoned(),
            workloads: vec![svc("web", "app:1.3").replicas(2).constraint("node.labels.zone == eu")],
            observed: fleet(&["m1", "m2", "m3"]).run(&web(), 1, "m1").run(&web(), 2, "m2").0,
            want: "
networks and volumes
  m3
    + create network shop_default

web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image app:1.2 → app:1.3
  m3
    > move web.2 from m2
        placement: machine m2 no longer matches node.labels.zone == eu
        image app:1.2 → app:1.3

0 to create, 1 to replace, 1 to move, 0 to remove, 0 unchanged, 1 network to create, across 3 machines
",
        },
        Case {
            name: "constraint relaxed: replicas that still qualify stay",
            machines: zoned(),
            workloads: vec![web().constraint("node.labels.zone != asia")],
            observed: fleet(&["m1", "m2", "m3"]).run(&web(), 1, "m1").run(&web(), 2, "m1").0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 2 unchanged, across 3 machines
",
        },
        Case {
            name: "hostname and platform constraints",
            machines: vec![machine("m1"), machine("m2"), {
                let mut m = machine("pi");
                m.arch = Some("aarch64".into());
                m
            }],
            workloads: vec![
                svc("arm", "arm:1").constraint("node.platform.arch == arm64").constraint("node.platform.os == linux"),
                svc("pinned", "p:1").constraint("node.hostname == m2"),
            ],
            observed: fleet(&["m1", "m2", "pi"]).network("m2", "shop_default").network("pi", "shop_default").0,
            want: "
arm
  pi
    + create arm.1
        new service

pinned
  m2
    + create pinned.1
        new service

2 to create, 0 to replace, 0 to remove, 0 unchanged, across 3 machines
",
        },
        Case {
            name: "no machine matches: every refusal named",
            machines: zoned(),
            workloads: vec![web().constraint("node.labels.zone == asia")],
            observed: fleet(&["m1", "m2", "m3"]).0,
            want: "
error:
web: wants 2 replicas, could place 0:
  m1: node.labels.zone == asia not met
  m2: node.labels.zone == asia not met
  m3: node.labels.zone == asia not met
",
        },
        Case {
            name: "bad constraints are reported all at once, by service",
            machines: zoned(),
            workloads: vec![
                web().constraint("node.role == manager"),
                svc("api", "api:1").constraint("node.zone == eu").spread("node.hostname"),
            ],
            observed: fleet(&["m1", "m2", "m3"]).0,
            want: "
error:
api: placement constraint `node.zone == eu`: unknown key `node.zone` (hoist knows node.hostname, node.labels.<name>, node.platform.os, node.platform.arch)
api: spread preference `node.hostname`: spread works over machine labels only: write node.labels.<name>
web: placement constraint `node.role == manager`: node.role has no meaning in hoist: there are no manager or worker machines; put a label on the machines in the inventory and use node.labels.<name>
",
        },
        Case {
            name: "depends_on mistakes",
            machines: machines(&["m1"]),
            workloads: vec![
                svc("a", "a:1").depends_on("b"),
                svc("b", "b:1").depends_on("a"),
                svc("c", "c:1").depends_on("nope"),
            ],
            observed: fleet(&["m1"]).0,
            want: "
error:
a: depends_on cycle among a, b
b: depends_on cycle among a, b
c: depends_on names `nope`, which is not a service of the project
",
        },
    ]);
}
