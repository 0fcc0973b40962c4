//! What `hoist watch` asks of the core: machines declared lost (their stateless slots placed
//! elsewhere, stateful ones held), a lost machine back with copies of slots now filled
//! elsewhere (each slot ends with exactly one), and unhealthy replicas replaced.

use super::Case;
use super::fixtures::*;
use super::run;
use crate::core::diff::diff;
use crate::core::fleet_view::MachineView;
use crate::core::observed::{Health, Observed};
use crate::core::schedule::schedule_with;
use crate::core::workload::Workload;
use std::collections::BTreeSet;

const DOWN: &str = "no answer within 2s";

fn lost_plan(
    machines: &[MachineView],
    workloads: &[Workload],
    observed: &Observed,
    lost: &[&str],
) -> String {
    let lost: BTreeSet<String> = lost.iter().map(|m| m.to_string()).collect();
    match schedule_with(workloads, machines, observed, &lost) {
        Ok(desired) => diff(&desired, observed, workloads).render_text(),
        Err(e) => format!("error:\n{e}\n"),
    }
}

#[track_caller]
fn check(got: String, want: &str) {
    let want = want.strip_prefix('\n').unwrap_or(want);
    assert_eq!(got, want, "\nwant:\n{want}\ngot:\n{got}");
}

#[test]
fn a_lost_machine_gives_up_its_stateless_slots() {
    let web = svc("web", "app:1").replicas(3);
    let observed = fleet(&["m1", "m3"])
        .down("m2", DOWN)
        .run(&web, 1, "m1")
        .run(&web, 3, "m3")
        .0;
    check(
        lost_plan(&machines(&["m1", "m2", "m3"]), std::slice::from_ref(&web), &observed, &["m2"]),
        "
web
  m1
    + create web.2
        3 replicas wanted, 2 found

1 to create, 0 to replace, 0 to remove, 2 unchanged, across 3 machines (1 unreachable)
warning: m2 is unreachable (no answer within 2s): its containers are unknown, nothing is planned there
",
    );
}

#[test]
fn a_lost_machine_keeps_its_stateful_slots() {
    let db = svc("db", "db:1").volume("shop_data", "/data");
    let web = svc("web", "app:1").replicas(2);
    let observed = fleet(&["m1"])
        .down("m2", DOWN)
        .run(&web, 1, "m1")
        .volume("m1", "other")
        .0;
    check(
        lost_plan(
            &machines(&["m1", "m2"]),
            &[db, web.clone()],
            &observed,
            &["m2"],
        ),
        "
web
  m1
    + create web.2
        2 replicas wanted, 1 found

1 to create, 0 to replace, 0 to remove, 1 unchanged, across 2 machines (1 unreachable)
warning: m2 is unreachable (no answer within 2s): its containers are unknown, nothing is planned there
warning: db.1 is not placed: it may be running on unreachable m2, with its volume shop_data
",
    );
}

#[test]
fn a_lost_machine_back_leaves_one_copy_per_slot() {
    let web = svc("web", "app:1").replicas(2);
    run(vec![
        Case {
            name: "back with its replica exited: the copy that kept serving stays",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web.clone()],
            observed: fleet(&["m1", "m2", "m3"])
                .run(&web, 1, "m1")
                .with_state(&web, 2, "m2", "exited")
                .run(&web, 2, "m3")
                .0,
            want: "
web
  m2
    - remove web.2 (container shop-web-2)
        duplicate of web.2: keeping shop-web-2 on m3

0 to create, 0 to replace, 1 to remove, 2 unchanged, across 3 machines
",
        },
        Case {
            name: "back with its replica restarted by a restart policy: still one copy",
            machines: machines(&["m1", "m2", "m3"]),
            workloads: vec![web.clone()],
            observed: fleet(&["m1", "m2", "m3"])
                .run(&web, 1, "m1")
                .run(&web, 2, "m2")
                .run(&web, 2, "m3")
                .0,
            want: "
web
  m3
    - remove web.2 (container shop-web-2)
        duplicate of web.2: keeping shop-web-2 on m2

0 to create, 0 to replace, 1 to remove, 2 unchanged, across 3 machines
",
        },
    ]);
}

#[test]
fn an_unhealthy_replica_is_replaced() {
    let web = svc("web", "app:1").replicas(2);
    let mut observed = fleet(&["m1", "m2"]).run(&web, 1, "m1").run(&web, 2, "m2").0;
    observed.containers[1].health = Health::Unhealthy;
    check(
        super::plan_text(
            &machines(&["m1", "m2"]),
            std::slice::from_ref(&web),
            &observed,
        ),
        "
web
  m2
    ~ replace web.2 (start-first: hoist's default when update_config.order is unset)
        container is unhealthy, spec unchanged

0 to create, 1 to replace, 0 to remove, 1 unchanged, across 2 machines
",
    );
}
