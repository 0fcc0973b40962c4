//! What happens to a container that stays in its slot: replaced (why, and in which order),
//! started, or left alone.

use super::fixtures::*;
use super::{Case, run};
use crate::core::workload::UpdateOrder::{StartFirst, StopFirst};
use serde_json::json;

#[test]
fn spec_changes() {
    let two = || machines(&["m1", "m2"]);
    let up = |old: &crate::core::workload::Workload| fleet(&["m1", "m2"]).run(old, 1, "m1");
    run(vec![
        Case {
            name: "image change: every replica, start-first by default",
            machines: two(),
            workloads: vec![svc("web", "app:1.3").replicas(2)],
            observed: fleet(&["m1", "m2"])
                .run(&svc("web", "app:1.2"), 1, "m1")
                .run(&svc("web", "app:1.2"), 2, "m2")
                .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image app:1.2 → app:1.3
  m2
    ~ replace web.2 (start-first: hoist's default when update_config.order is unset)
        image app:1.2 → app:1.3

0 to create, 2 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "environment change: names only, never values",
            machines: two(),
            workloads: vec![
                svc("web", "app:1")
                    .env("DB_URL", "postgres://app:swordfish@db/shop")
                    .env("FOO", "bar"),
            ],
            observed: up(&svc("web", "app:1")
                .env("DB_URL", "postgres://app:hunter2@db/shop")
                .env("OLD", "x"))
            .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        environment DB_URL changed
        environment FOO added
        environment OLD removed

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "published port change: shown, and stop-first because of the fixed port",
            machines: two(),
            workloads: vec![svc("web", "app:1").port(8081, 80)],
            observed: up(&svc("web", "app:1").port(8080, 80)).0,
            want: "
web
  m1
    ~ replace web.1 (stop-first: publishes host port 8081/tcp)
        ports changed: 8080:80/tcp → 8081:80/tcp

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "command, healthcheck and secret changes: named, not shown",
            machines: two(),
            workloads: vec![
                svc("web", "app:1")
                    .attr("command", json!(["serve", "--workers=8"]))
                    .attr(
                        "healthcheck",
                        json!({"test": ["CMD", "curl", "-f", "http://localhost/health"]}),
                    )
                    .attr("secrets", json!({"api_key": "sha256:222"})),
            ],
            observed: up(&svc("web", "app:1")
                .attr("command", json!(["serve", "--workers=4"]))
                .attr(
                    "healthcheck",
                    json!({"test": ["CMD", "curl", "-f", "http://localhost/"]}),
                )
                .attr("secrets", json!({"api_key": "sha256:111"})))
            .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        command changed
        secrets api_key changed
        healthcheck changed

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "build context edited: up will build anew, so plan replaces",
            machines: two(),
            workloads: vec![
                svc("web", "shop-web")
                    .attr("image_id", json!(format!("sha256:{}", "a".repeat(64))))
                    .attr("build_context", json!(format!("sha256:{}", "d".repeat(64)))),
            ],
            observed: up(&svc("web", "shop-web")
                .attr("image_id", json!(format!("sha256:{}", "a".repeat(64))))
                .attr("build_context", json!(format!("sha256:{}", "c".repeat(64)))))
            .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image shop-web will be rebuilt: its build context changed (sha256:cccccccccccc → sha256:dddddddddddd)

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "built from an edited context: one reason, the new image",
            machines: two(),
            workloads: vec![
                svc("web", "shop-web")
                    .attr("image_id", json!(format!("sha256:{}", "b".repeat(64))))
                    .attr("build_context", json!(format!("sha256:{}", "d".repeat(64)))),
            ],
            observed: up(&svc("web", "shop-web")
                .attr("image_id", json!(format!("sha256:{}", "a".repeat(64))))
                .attr("build_context", json!(format!("sha256:{}", "c".repeat(64)))))
            .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image shop-web rebuilt: sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "same tag, new image ID (rebuilt or re-pulled)",
            machines: two(),
            workloads: vec![
                svc("web", "app:latest")
                    .attr("image_id", json!(format!("sha256:{}", "b".repeat(64)))),
            ],
            observed: up(&svc("web", "app:latest")
                .attr("image_id", json!(format!("sha256:{}", "a".repeat(64)))))
            .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image app:latest rebuilt: sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "registry tag moved to new bits: the digest it resolved to changed",
            machines: two(),
            workloads: vec![
                svc("web", "reg:5000/app:1")
                    .attr("image_digest", json!(format!("sha256:{}", "d".repeat(64))))
                    .replicas(2),
            ],
            observed: fleet(&["m1", "m2"])
                .run(
                    &svc("web", "reg:5000/app:1")
                        .attr("image_digest", json!(format!("sha256:{}", "c".repeat(64)))),
                    1,
                    "m1",
                )
                .run(
                    &svc("web", "reg:5000/app:1")
                        .attr("image_digest", json!(format!("sha256:{}", "c".repeat(64)))),
                    2,
                    "m2",
                )
                .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image reg:5000/app:1 moved: sha256:cccccccccccc → sha256:dddddddddddd
  m2
    ~ replace web.2 (start-first: hoist's default when update_config.order is unset)
        image reg:5000/app:1 moved: sha256:cccccccccccc → sha256:dddddddddddd

0 to create, 2 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "registry tag resolved to the digest that runs: nothing to do",
            machines: two(),
            workloads: vec![
                svc("web", "reg:5000/app:1")
                    .attr("image_digest", json!(format!("sha256:{}", "c".repeat(64)))),
            ],
            observed: up(&svc("web", "reg:5000/app:1")
                .attr("image_digest", json!(format!("sha256:{}", "c".repeat(64)))))
            .0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 1 unchanged, across 2 machines
",
        },
        Case {
            name: "new tag of a pinned image: tag and digest in one line",
            machines: two(),
            workloads: vec![
                svc("web", "reg:5000/app:2")
                    .attr("image_digest", json!(format!("sha256:{}", "d".repeat(64)))),
            ],
            observed: up(&svc("web", "reg:5000/app:1")
                .attr("image_digest", json!(format!("sha256:{}", "c".repeat(64)))))
            .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image reg:5000/app:1 (sha256:cccccccccccc) → reg:5000/app:2 (sha256:dddddddddddd)

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "a tag pinned for the first time (deployed before hoist pinned tags)",
            machines: two(),
            workloads: vec![
                svc("web", "reg:5000/app:1")
                    .attr("image_digest", json!(format!("sha256:{}", "c".repeat(64)))),
            ],
            observed: up(&svc("web", "reg:5000/app:1")).0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image reg:5000/app:1 pinned to sha256:cccccccccccc

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "a new replica of a pinned image says which bits it runs",
            machines: two(),
            workloads: vec![
                svc("web", "reg:5000/app:1")
                    .attr("image_digest", json!(format!("sha256:{}", "c".repeat(64)))),
            ],
            observed: fleet(&["m1", "m2"]).network("m1", "shop_default").0,
            want: "
web
  m1
    + create web.1
        new service
        image reg:5000/app:1 (sha256:cccccccccccc)

1 to create, 0 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "no recorded spec: the hash differs, the plan says it cannot say more",
            machines: two(),
            workloads: vec![svc("web", "app:2")],
            observed: fleet(&["m1", "m2"])
                .run_unrecorded(&svc("web", "app:1"), 1, "m1")
                .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        spec changed (the container has no recorded spec to compare)

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "placement-only change (replicas, constraints) recreates nothing",
            machines: two(),
            workloads: vec![
                svc("web", "app:1")
                    .order(StopFirst)
                    .constraint("node.platform.os == linux")
                    .reserve(0.5, 64 * MIB),
            ],
            observed: up(&svc("web", "app:1")).0,
            want: "
No changes.
0 to create, 0 to replace, 0 to remove, 1 unchanged, across 2 machines
",
        },
    ]);
}

#[test]
fn update_order() {
    let one = || machines(&["m1"]);
    let old = |w: crate::core::workload::Workload| fleet(&["m1"]).run(&w, 1, "m1").0;
    run(vec![
        Case {
            name: "start-first requested and safe",
            machines: one(),
            workloads: vec![svc("web", "app:2").order(StartFirst)],
            observed: old(svc("web", "app:1").order(StartFirst)),
            want: "
web
  m1
    ~ replace web.1 (start-first: requested by update_config.order)
        image app:1 → app:2

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
        Case {
            name: "start-first requested but a fixed host port would clash",
            machines: one(),
            workloads: vec![svc("web", "app:2").order(StartFirst).port(80, 8080)],
            observed: old(svc("web", "app:1").port(80, 8080)),
            want: "
web
  m1
    ~ replace web.1 (stop-first: publishes host port 80/tcp, so not the requested start-first)
        image app:1 → app:2

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
        Case {
            name: "stop-first requested",
            machines: one(),
            workloads: vec![svc("web", "app:2").order(StopFirst)],
            observed: old(svc("web", "app:1")),
            want: "
web
  m1
    ~ replace web.1 (stop-first: requested by update_config.order)
        image app:1 → app:2

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
        Case {
            name: "unset with a read-only volume: start-first is still safe",
            machines: one(),
            workloads: vec![svc("web", "app:2").ro_volume("shop_assets", "/srv")],
            observed: old(svc("web", "app:1").ro_volume("shop_assets", "/srv")),
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image app:1 → app:2

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
        Case {
            name: "start-first requested with a read-write volume: two writers are never allowed",
            machines: one(),
            workloads: vec![
                svc("db", "postgres:17")
                    .order(StartFirst)
                    .volume("shop_db", "/data"),
            ],
            observed: fleet(&["m1"])
                .run(
                    &svc("db", "postgres:16").volume("shop_db", "/data"),
                    1,
                    "m1",
                )
                .0,
            want: "
db
  m1
    ~ replace db.1 (stop-first: mounts volume shop_db read-write, so not the requested start-first)
        image postgres:16 → postgres:17

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
    ]);
}

#[test]
fn container_states() {
    let web = || svc("web", "app:1").replicas(2);
    run(vec![
        Case {
            name: "stopped container with the current spec: start it",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2"])
                .with_state(&web(), 1, "m1", "exited")
                .with_state(&web(), 2, "m2", "created")
                .0,
            want: "
web
  m1
    ^ start web.1
        exited, spec unchanged
  m2
    ^ start web.2
        created, spec unchanged

0 to create, 2 to start, 0 to replace, 0 to remove, 0 unchanged, across 2 machines
",
        },
        Case {
            name: "stopped container with an old spec: replace, not start",
            machines: machines(&["m1"]),
            workloads: vec![svc("web", "app:2")],
            observed: fleet(&["m1"])
                .with_state(&svc("web", "app:1"), 1, "m1", "exited")
                .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        image app:1 → app:2

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
        Case {
            name: "dead container: replaced in place",
            machines: machines(&["m1"]),
            workloads: vec![svc("web", "app:1")],
            observed: fleet(&["m1"])
                .with_state(&svc("web", "app:1"), 1, "m1", "dead")
                .0,
            want: "
web
  m1
    ~ replace web.1 (start-first: hoist's default when update_config.order is unset)
        container is dead

0 to create, 1 to replace, 0 to remove, 0 unchanged, across 1 machine
",
        },
        Case {
            name: "a paused container is unpaused; a restarting one is left to the engine",
            machines: machines(&["m1", "m2"]),
            workloads: vec![web()],
            observed: fleet(&["m1", "m2"])
                .with_state(&web(), 1, "m1", "paused")
                .with_state(&web(), 2, "m2", "restarting")
                .0,
            want: "
web
  m1
    ^ start web.1
        paused, spec unchanged: unpause it

0 to create, 1 to start, 0 to replace, 0 to remove, 1 unchanged, across 2 machines
",
        },
    ]);
}
