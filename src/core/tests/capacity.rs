//! Limits on where replicas go: spread preferences, max_replicas_per_node, fixed host ports,
//! reservations, and local volumes that pin a service to its data.

use super::fixtures::*;
use super::{Case, run};

#[test]
fn spread_and_max_replicas_per_node() {
    let zones = || {
        vec![
            machine("a1").label("zone", "a"),
            machine("a2").label("zone", "a"),
            machine("b1").label("zone", "b"),
        ]
    };
    let racks = || {
        vec![
            machine("e1").label("zone", "eu").label("rack", "r1"),
            machine("e2").label("zone", "eu").label("rack", "r1"),
            machine("e3").label("zone", "eu").label("rack", "r2"),
            machine("u1").label("zone", "us").label("rack", "r3"),
        ]
    };
    let net = |names: &[&str]| {
        let mut f = fleet(names);
        for n in names {
            f = f.network(n, "shop_default");
        }
        f.0
    };
    run(vec![
        Case {
            name: "spread over zones: evenly over zones, not machines",
            machines: zones(),
            workloads: vec![svc("web", "app:1").replicas(4).spread("node.labels.zone")],
            observed: net(&["a1", "a2", "b1"]),
            want: "
web
  a1
    + create web.1
        new service
  a2
    + create web.3
        new service
  b1
    + create web.2
        new service
    + create web.4
        new service

4 to create, 0 to replace, 0 to remove, 0 unchanged, across 3 machines
",
        },
        Case {
            name: "nested spread: zones, then racks within a zone, then machines",
            machines: racks(),
            workloads: vec![
                svc("web", "app:1")
                    .replicas(5)
                    .spread("node.labels.zone")
                    .spread("node.labels.rack"),
            ],
            observed: net(&["e1", "e2", "e3", "u1"]),
            want: "
web
  e1
    + create web.1
        new service
  e2
    + create web.5
        new service
  e3
    + create web.3
        new service
  u1
    + create web.2
        new service
    + create web.4
        new service

5 to create, 0 to replace, 0 to remove, 0 unchanged, across 4 machines
",
        },
        Case {
            name: "spread: machines without the label form their own group",
            machines: vec![machine("a1").label("zone", "a"), machine("n1")],
            workloads: vec![svc("web", "app:1").replicas(2).spread("node.labels.zone")],
            observed: net(&["a1", "n1"]),
            want: "
web
  a1
    + create web.1
        new service
  n1
    + create web.2
        new service

2 to create, 0 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "spread with existing replicas: new ones fill the emptiest zone",
            machines: zones(),
            workloads: vec![svc("web", "app:1").replicas(3).spread("node.labels.zone")],
            observed: fleet(&["a1", "a2", "b1"])
                .run(&svc("web", "app:1"), 1, "a1")
                .run(&svc("web", "app:1"), 2, "a2")
                .network("b1", "shop_default")
                .0,
            want: "
web
  b1
    + create web.3
        3 replicas wanted, 2 found

1 to create, 0 to replace, 0 to remove, 2 unchanged, across 3 machines
",
        },
        Case {
            name: "max_replicas_per_node: a full machine sends the spread to the next one",
            machines: zones(),
            workloads: vec![
                svc("web", "app:1")
                    .replicas(3)
                    .spread("node.labels.zone")
                    .max_per_node(1),
            ],
            observed: net(&["a1", "a2", "b1"]),
            want: "
web
  a1
    + create web.1
        new service
  a2
    + create web.3
        new service
  b1
    + create web.2
        new service

3 to create, 0 to replace, 0 to remove, 0 unchanged, across 3 machines
",
        },
        Case {
            name: "max_replicas_per_node: too few machines",
            machines: machines(&["m1", "m2"]),
            workloads: vec![svc("web", "app:1").replicas(5).max_per_node(2)],
            observed: fleet(&["m1", "m2"]).0,
            want: "
error:
web: wants 5 replicas, could place 4:
  m1: already runs 2 of web (max_replicas_per_node 2)
  m2: already runs 2 of web (max_replicas_per_node 2)
",
        },
        Case {
            name: "max_replicas_per_node lowered: the surplus replica moves",
            machines: machines(&["m1", "m2"]),
            workloads: vec![svc("web", "app:1").replicas(3).max_per_node(2)],
            observed: fleet(&["m1", "m2"])
                .run(&svc("web", "app:1"), 1, "m1")
                .run(&svc("web", "app:1"), 2, "m1")
                .run(&svc("web", "app:1"), 3, "m1")
                .network("m2", "shop_default")
                .0,
            want: "
web
  m2
    > move web.3 from m1
        placement: m1 already runs 2 of web (max_replicas_per_node 2)

0 to create, 0 to replace, 1 to move, 0 to remove, 2 unchanged, across 2 machines
",
        },
    ]);
}

#[test]
fn host_ports_and_resources() {
    let web = |n| svc("web", "app:1").replicas(n).port(80, 8080);
    run(vec![
        Case {
            name: "fixed host port: replicas never share a machine",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web(3)],
            observed: fleet(&["m1", "m2", "m3"])
                .network("m1", "shop_default")
                .network("m2", "shop_default")
                .network("m3", "shop_default")
                .0,
            want: "
web
  m1
    + create web.1
        new service
  m2
    + create web.2
        new service
  m3
    + create web.3
        new service

3 to create, 0 to replace, 0 to remove, 0 unchanged, across 3 machines
",
        },
        Case {
            name: "fixed host port: too few machines",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web(3)],
            observed: fleet(&["m1", "m2"]).0,
            want: "
error:
web: wants 3 replicas, could place 2:
  m1: host port 80/tcp already taken by web.1
  m2: host port 80/tcp already taken by web.2
",
        },
        Case {
            name: "fixed host port clash across services: the second service avoids the first",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web(2), svc("api", "api:1").port(80, 3000)],
            observed: fleet(&["m1", "m2", "m3"])
                .run(&svc("api", "api:1").port(80, 3000), 1, "m1")
                .network("m2", "shop_default")
                .network("m3", "shop_default")
                .0,
            want: "
web
  m2
    + create web.1
        new service
  m3
    + create web.2
        new service

2 to create, 0 to replace, 0 to remove, 1 unchanged, across 3 machines
",
        },
        Case {
            name: "a port freed by a scale down is reused: every removal runs first",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web(2), svc("api", "api:1").port(80, 3000)],
            observed: fleet(&["m1", "m2", "m3"])
                .run(&web(3), 1, "m1")
                .run(&web(3), 2, "m2")
                .run(&web(3), 3, "m3")
                .0,
            want: "
web
  m3
    - remove web.3 (container shop-web-3)
        scale down: 2 replicas wanted

api
  m3
    + create api.1
        new service

1 to create, 0 to replace, 1 to remove, 2 unchanged, across 3 machines
",
        },
        Case {
            name: "global service whose port is taken on one machine",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web(1), svc("proxy", "proxy:1").global().port(80, 80)],
            observed: fleet(&["m1", "m2"]).run(&web(1), 1, "m1").0,
            want: "
error:
proxy: global, wants 2 machines, could place 1:
  m1: host port 80/tcp already taken by web.1
",
        },
        Case {
            name: "memory exhausted: what each machine has left",
            machines: vec![machine("m1").memory(GIB), machine("m2").memory(GIB)],
            workloads: vec![
                svc("db", "postgres:16").reserve(0.0, 768 * MIB),
                svc("web", "app:1").replicas(3).reserve(0.0, 512 * MIB),
            ],
            observed: fleet(&["m1", "m2"]).0,
            want: "
error:
web: wants 3 replicas, could place 2:
  m1: not enough memory (wants 512MiB, 256MiB free)
  m2: not enough memory (wants 512MiB, 0B free)
",
        },
        Case {
            name: "CPU exhausted: running replicas hold their reservation",
            machines: vec![machine("m1").cpus(2.0), machine("m2").cpus(2.0)],
            workloads: vec![svc("web", "app:1").replicas(3).reserve(1.5, 0)],
            observed: fleet(&["m1", "m2"])
                .run(&svc("web", "app:1").replicas(3).reserve(1.5, 0), 1, "m1")
                .0,
            want: "
error:
web: wants 3 replicas, could place 2:
  m1: not enough CPU (wants 1.5 CPUs, 0.5 CPUs free)
  m2: not enough CPU (wants 1.5 CPUs, 0.5 CPUs free)
",
        },
        Case {
            name: "reservations of running replicas count: the big machine is full",
            machines: machines(&["m1", "m2"]),
            workloads: vec![
                svc("big", "big:1").reserve(0.0, 6 * GIB),
                svc("tiny", "tiny:1").replicas(2),
                svc("small", "small:1").reserve(0.0, 4 * GIB),
            ],
            observed: fleet(&["m1", "m2"])
                .run(&svc("big", "big:1").reserve(0.0, 6 * GIB), 1, "m1")
                .run(&svc("tiny", "tiny:1"), 1, "m2")
                .run(&svc("tiny", "tiny:1"), 2, "m2")
                .0,
            want: "
small
  m2
    + create small.1
        new service

1 to create, 0 to replace, 0 to remove, 3 unchanged, across 2 machines
",
        },
    ]);
}

#[test]
fn stateful_services() {
    let db = || svc("db", "postgres:16").volume("shop_db", "/var/lib/postgresql/data");
    run(vec![
        Case {
            name: "stateful pin: the container is gone, it comes back where its volume is",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![db()],
            observed: fleet(&["m1", "m2", "m3"]).volume("m2", "shop_db").network("m2", "shop_default").0,
            want: "
db
  m2
    + create db.1
        new service
        placed with its data: volume shop_db is on m2

1 to create, 0 to replace, 0 to remove, 0 unchanged, across 3 machines
",
        },
        Case {
            name: "new stateful service with two replicas: both share the one volume",
            machines: machines(&["m1", "m2"]),
            workloads: vec![db().replicas(2)],
            observed: fleet(&["m1", "m2"]).network("m1", "shop_default").0,
            want: "
networks and volumes
  m1
    + create volume shop_db

db
  m1
    + create db.1
        new service
    + create db.2
        new service

2 to create, 0 to replace, 0 to remove, 0 unchanged, 1 volume to create, across 2 machines
",
        },
        Case {
            name: "stateful scale up: new replicas join the data, a clash is an error",
            machines: machines(&["m1", "m2"]),
            workloads: vec![db().replicas(2).port(5432, 5432)],
            observed: fleet(&["m1", "m2"]).run(&db().port(5432, 5432), 1, "m1").0,
            want: "
error:
db: wants 2 replicas, could place 1:
  m1: host port 5432/tcp already taken by db.1
  m2: does not hold volume shop_db (it is on m1)
",
        },
        Case {
            name: "stateful pin: an update stays on the volume's machine, stop-first",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![svc("db", "postgres:17").volume("shop_db", "/var/lib/postgresql/data")],
            observed: fleet(&["m1", "m2", "m3"]).run(&db(), 1, "m2").0,
            want: "
db
  m2
    ~ replace db.1 (stop-first: mounts volume shop_db read-write)
        image postgres:16 → postgres:17

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 3 machines
",
        },
        Case {
            name: "a new constraint moves a stateful service with its data, only with --move-volumes",
            machines: vec![machine("m1").label("zone", "eu"), machine("m2").label("zone", "us")],
            workloads: vec![db().constraint("node.labels.zone == us")],
            observed: fleet(&["m1", "m2"]).run(&db(), 1, "m1").0,
            want: "
networks and volumes
  m2
    + create network shop_default
    + create volume shop_db

db
  m2
    » move db.1 m1 → m2 with volume shop_db
        placement: machine m1 no longer matches node.labels.zone == us
        downtime: db.1 runs on m1 while its data is copied, stops there for what changed since and a checksum check, and runs again once healthy on m2; the source volume stays

0 to create, 0 to replace, 1 to move, 0 to remove, 0 unchanged, 1 network to create, 1 volume to create, across 2 machines
warning: db.1 moves with its data: only `hoist up --move-volumes` carries it out (it copies volume shop_db from m1 to m2)
",
        },
        Case {
            name: "volume maybe on an unreachable machine: nothing created elsewhere",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![db(), svc("web", "app:1")],
            observed: fleet(&["m1", "m2"]).down("m3", "ssh: connect to host m3 port 22: Connection timed out").run(&svc("web", "app:1"), 1, "m1").0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 1 unchanged, across 3 machines (1 unreachable)
warning: m3 is unreachable (ssh: connect to host m3 port 22: Connection timed out): its containers are unknown, nothing is planned there
warning: db.1 is not placed: it may be running on unreachable m3, with its volume shop_db
",
        },
    ]);
}
