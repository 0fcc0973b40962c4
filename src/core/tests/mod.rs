//! Table tests of the pure core: (machines, workloads, observed) → the full plan text (or the
//! scheduling error), compared byte for byte. The expected texts were written as what a user
//! should read, then the code was made to print them.

mod capacity;
mod converge;
mod drain;
mod fixtures;
mod placement;
mod rollout;
mod state;
mod watch;

use super::diff::diff;
use super::fleet_view::MachineView;
use super::observed::Observed;
use super::schedule::schedule;
use super::workload::Workload;

/// One row of a table: the fleet, the compose services, what runs, and what the user reads.
pub struct Case {
    pub name: &'static str,
    pub machines: Vec<MachineView>,
    pub workloads: Vec<Workload>,
    pub observed: Observed,
    pub want: &'static str,
}

/// What `hoist plan` would print: the plan, or `error:` and the scheduling error.
pub fn plan_text(machines: &[MachineView], workloads: &[Workload], observed: &Observed) -> String {
    match schedule(workloads, machines, observed) {
        Ok(desired) => diff(&desired, observed, workloads).render_text(),
        Err(e) => format!("error:\n{e}\n"),
    }
}

/// Runs every row and reports all mismatches at once, each with both texts.
pub fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in &cases {
        let got = plan_text(&case.machines, &case.workloads, &case.observed);
        let want = case.want.strip_prefix('\n').unwrap_or(case.want);
        if got != want {
            failures.push(format!("--- {} ---\nwant:\n{want}\ngot:\n{got}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
