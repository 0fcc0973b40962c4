//! Drained machines (`hoist drain`): their replicas move off, nothing new goes there, and a
//! service whose data is only there is refused with the reason.

use super::fixtures::*;
use super::{Case, run};

#[test]
fn drained_machines() {
    let web = || svc("web", "app:1").replicas(3);
    let agent = || svc("agent", "agent:1").global();
    let db = || svc("db", "db:1").volume("shop_data", "/data");
    run(vec![
        Case {
            name: "drained: its replica moves to the machine with fewest",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2", "m3"]).drained("m1").run(&web(), 1, "m1").run(&web(), 2, "m2").run(&web(), 3, "m3").0,
            want: "
web
  m2
    > move web.1 from m1
        placement: machine m1 is drained

0 to create, 0 to replace, 1 to move, 0 to remove, 2 unchanged, across 3 machines (m1 drained)
",
        },
        Case {
            name: "drained: a global service leaves it",
            machines: machines(&["m1", "m2"]),
            workloads: vec![agent()],
            observed: fleet(&["m1", "m2"]).drained("m2").run_global(&agent(), "m1").run_global(&agent(), "m2").0,
            want: "
agent
  m2
    - remove agent (container shop-agent-m2)
        placement: machine m2 is drained

0 to create, 0 to replace, 1 to remove, 1 unchanged, across 2 machines (m2 drained)
",
        },
        Case {
            name: "drained: new replicas never go there",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2"]).drained("m1").0,
            want: "
networks and volumes
  m2
    + create network shop_default

web
  m2
    + create web.1
        new service
    + create web.2
        new service
    + create web.3
        new service

3 to create, 0 to replace, 0 to remove, 0 unchanged, 1 network to create, across 2 machines (m1 drained)
",
        },
        Case {
            name: "drained: a service whose volume is only there moves with it (up --move-volumes)",
            machines: machines(&["m1", "m2"]),
            workloads: vec![db()],
            observed: fleet(&["m1", "m2"]).drained("m1").run(&db(), 1, "m1").volume("m1", "shop_data").0,
            want: "
networks and volumes
  m2
    + create network shop_default
    + create volume shop_data

db
  m2
    » move db.1 m1 → m2 with volume shop_data
        placement: machine m1 is drained
        downtime: db.1 runs on m1 while its data is copied, stops there for what changed since and a checksum check, and runs again once healthy on m2; the source volume stays

0 to create, 0 to replace, 1 to move, 0 to remove, 0 unchanged, 1 network to create, 1 volume to create, across 2 machines (m1 drained)
warning: db.1 moves with its data: only `hoist up --move-volumes` carries it out (it copies volume shop_data from m1 to m2)
",
        },
        Case {
            name: "drained: a service whose volume was copied elsewhere follows it there",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![db()],
            observed: fleet(&["m1", "m2", "m3"]).drained("m1").run(&db(), 1, "m1").volume("m1", "shop_data").volume("m3", "shop_data").0,
            want: "
networks and volumes
  m3
    + create network shop_default

db
  m3
    > move db.1 from m1
        placement: machine m1 is drained

0 to create, 0 to replace, 1 to move, 0 to remove, 0 unchanged, 1 network to create, across 3 machines (m1 drained)
",
        },
    ]);
}
