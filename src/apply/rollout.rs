//! Rollout: carry out the container changes of a plan, service by service in
//! dependency order, in batches (update_config.parallelism, delay), each new
//! replica gated on its health, with failure_action (rollback by default) when
//! too many fail. Changes on different machines run concurrently.
//!
//! A replaced container is not removed: it is stopped and kept as the slot's
//! previous release, so `hoist rollback` (and an automatic rollback) can start it
//! again without the old compose file or the old image tag.
//!
//! A [`Hook`] lets a load balancer follow the rollout: a replica joins only once
//! it is ready, and leaves before it is stopped.
//!
//! Nothing waits that need not (Swarm's semantics, docs/rollouts.md): a replica counts as
//! updated once it is ready (healthy, or running without a healthcheck); from then on it is
//! watched in the background for update_config.monitor, and a failure there counts toward
//! max_failure_ratio like one at start. With start-first, the replica it replaces leaves every
//! pool, then drains and stops in the background while the next batch starts; the rollout
//! still waits for every stop and every watch before it reports.

use super::ops::{self, HealthGate, Ready};
use super::progress::Progress;
use anyhow::{Result, anyhow};
use bollard::Docker;
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::FuturesUnordered;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What to do when more replicas fail than max_failure_ratio allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// hoist's default when update_config says nothing: undo this service's changes.
    Rollback,
    /// Stop the rollout where it is and fail.
    Pause,
    /// Keep going; report the failures at the end.
    Continue,
}

/// update_config (or rollback_config) of one service, resolved to defaults.
#[derive(Debug, Clone)]
pub struct UpdatePolicy {
    /// Replicas changed at once; 0 means all at once.
    pub parallelism: usize,
    pub delay: Duration,
    pub failure_action: FailureAction,
    pub max_failure_ratio: f64,
}

/// One container change, as planned.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new replica for a slot that has none.
    Create {
        machine: String,
        slot: u32,
        name: String,
        request: Value,
        extra_networks: Vec<(String, Value)>,
    },
    /// The slot's container exists with the right spec but is stopped.
    Start {
        machine: String,
        slot: u32,
        id: String,
    },
    /// The slot's container has another spec: bring up the new one, retire the old.
    Replace {
        machine: String,
        slot: u32,
        old_id: String,
        name: String,
        request: Value,
        extra_networks: Vec<(String, Value)>,
        /// Start the new replica before stopping the old (no downtime) — only when
        /// both can run at once (no fixed host port, no single-writer volume).
        start_first: bool,
    },
    /// A container the file no longer wants (scale down, removed service, duplicate,
    /// or a previous release beyond the one kept for rollback).
    Remove {
        machine: String,
        slot: u32,
        id: String,
        stop_first: bool,
    },
}

impl Change {
    pub fn machine(&self) -> &str {
        match self {
            Change::Create { machine, .. }
            | Change::Start { machine, .. }
            | Change::Replace { machine, .. }
            | Change::Remove { machine, .. } => machine,
        }
    }

    fn slot(&self) -> u32 {
        match self {
            Change::Create { slot, .. }
            | Change::Start { slot, .. }
            | Change::Replace { slot, .. }
            | Change::Remove { slot, .. } => *slot,
        }
    }
}

/// One service's part of a rollout.
#[derive(Debug, Clone)]
pub struct ServiceRollout {
    pub service: String,
    pub update: UpdatePolicy,
    pub rollback: UpdatePolicy,
    pub gate: HealthGate,
    /// stop_grace_period.
    pub stop_grace: Duration,
    /// Services that must have rolled out for this one to go (depends_on with
    /// `required: true`); if one failed, this one is skipped.
    pub needs: Vec<String>,
    /// Every service it depends on: it starts only after they are done.
    pub after: Vec<String>,
    /// Secrets and configs placed in every new container before it starts.
    pub files: Vec<ops::FileInContainer>,
    pub changes: Vec<Change>,
}

/// How one change ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub machine: String,
    pub slot: u32,
    pub result: Result<String, String>,
}

/// The end of a rollout, service by service.
#[derive(Debug, Default)]
pub struct Report {
    pub services: Vec<(String, Vec<Outcome>, Verdict)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Failed, and this service's changes were undone.
    RolledBack(String),
    /// Failed and stopped there (failure_action: pause).
    Paused(String),
    /// Failed replicas remain (failure_action: continue).
    Degraded(String),
    /// Not attempted because an earlier service failed.
    Skipped,
    /// Stopped on request (SIGINT, SIGTERM) before its last batch; what was done stays.
    Interrupted(String),
}

impl Report {
    pub fn ok(&self) -> bool {
        self.services.iter().all(|(_, _, v)| *v == Verdict::Done)
    }
}

/// What was done to a slot, so it can be undone.
enum Done {
    Created {
        machine: String,
        id: String,
    },
    Replaced {
        machine: String,
        old_id: String,
        new_id: String,
    },
    Nothing,
}

/// A replica as a [`Hook`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaRef<'a> {
    pub service: &'a str,
    pub slot: u32,
    pub machine: &'a str,
    /// The container ID.
    pub id: &'a str,
}

/// Called by the rollout around each replica's life, and awaited: the rollout
/// goes on only when the hook returns. `after_ready`: the replica has proven
/// itself (healthy, or running without a healthcheck) and may take traffic.
/// `leave`: the replica is about to be stopped and must take no new request;
/// those already sent to it may take `drain` to finish.
/// The ingress and the mesh (src/ingress, src/mesh) re-render and reload every load balancer.
pub trait Hook: Send + Sync {
    fn after_ready<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()>;
    fn leave<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()>;
    /// How long a replica of `service` that left may still be finishing requests.
    fn drain(&self, _service: &str) -> Duration {
        Duration::ZERO
    }
    /// `new` joins and `old` leaves, in one change of the pools where the balancer can.
    fn swap<'a>(&'a self, new: ReplicaRef<'a>, old: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.after_ready(new).await;
            self.leave(old).await;
        })
    }
    /// Leaves every pool and waits out the drain: after this the replica may be stopped.
    fn before_stop<'a>(&'a self, replica: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.leave(replica).await;
            let drain = self.drain(replica.service);
            if !drain.is_zero() {
                tokio::time::sleep(drain).await;
            }
        })
    }
}

/// No load balancer to tell.
pub struct NoHook;

impl Hook for NoHook {
    fn after_ready<'a>(&'a self, _: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn leave<'a>(&'a self, _: ReplicaRef<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Runs the services' changes in waves: every service whose dependencies are
/// done goes at once (independent services roll out side by side, as Swarm
/// does); a service waits for all it `depends_on`. A service that fails stops
/// the services that need it; the others go on. The report keeps the given order.
pub async fn run(
    services: &[ServiceRollout],
    engines: &HashMap<String, Docker>,
    progress: &Progress,
) -> Report {
    run_with(services, engines, progress, &NoHook).await
}

/// [`run`], telling `hook` when replicas become ready and before they stop.
pub async fn run_with(
    services: &[ServiceRollout],
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
) -> Report {
    let names: HashSet<&str> = services.iter().map(|s| s.service.as_str()).collect();
    let mut finished: HashMap<&str, (Vec<Outcome>, Verdict)> = HashMap::new();
    let mut pending: Vec<&ServiceRollout> = services.iter().collect();
    while !pending.is_empty() {
        let ready_now = |s: &&ServiceRollout| {
            s.after
                .iter()
                .all(|d| !names.contains(d.as_str()) || finished.contains_key(d.as_str()))
        };
        let (mut wave, rest): (Vec<&ServiceRollout>, Vec<&ServiceRollout>) =
            pending.iter().copied().partition(|s| ready_now(s));
        let mut rest = rest;
        if wave.is_empty() {
            // A dependency cycle (the scheduler refuses those): go in the given order.
            wave.push(rest.remove(0));
        }
        pending = rest;
        let runs = wave.iter().map(|svc| {
            let blocked = svc.needs.iter().any(|n| {
                finished
                    .get(n.as_str())
                    .is_some_and(|(_, v)| !matches!(v, Verdict::Done | Verdict::Degraded(_)))
            });
            async move {
                if let Some(signal) = crate::interrupt::requested() {
                    let why = format!(
                        "not started: stopped by {}",
                        crate::interrupt::describe(signal)
                    );
                    (
                        svc.service.as_str(),
                        (Vec::new(), Verdict::Interrupted(why)),
                    )
                } else if blocked {
                    (svc.service.as_str(), (Vec::new(), Verdict::Skipped))
                } else {
                    (
                        svc.service.as_str(),
                        run_service(svc, engines, progress, hook).await,
                    )
                }
            }
        });
        for (name, result) in futures_util::future::join_all(runs).await {
            finished.insert(name, result);
        }
    }
    let mut report = Report::default();
    for svc in services {
        let (outcomes, verdict) = finished
            .remove(svc.service.as_str())
            .unwrap_or((Vec::new(), Verdict::Skipped));
        report
            .services
            .push((svc.service.clone(), outcomes, verdict));
    }
    report
}

/// Work a change leaves to the background, so the next change need not wait for it.
#[derive(Default)]
struct Followup {
    /// The replica this one replaced (start-first): in one change of the pools the new replica
    /// (`.1`) takes its place; then the old one (`.0`) drains and stops.
    retire: Option<(String, String)>,
    /// The new replica, to watch for update_config.monitor.
    watch: Option<String>,
}

/// Background work of a service's rollout, each item tagged with the index of its outcome.
type Background<'a> = FuturesUnordered<BoxFuture<'a, (usize, Result<(), String>)>>;

/// What finished in the background while the rollout was busy with something else.
#[derive(Default)]
struct Finished {
    stops: Vec<(usize, Result<(), String>)>,
    watches: Vec<(usize, Result<(), String>)>,
}

/// Runs `work` to its end while the background stops and watches go on; returns what it gave
/// and what finished meanwhile.
async fn drive<'a, T>(
    work: impl std::future::Future<Output = T>,
    stops: &mut Background<'a>,
    watches: &mut Background<'a>,
) -> (T, Finished) {
    let mut work = std::pin::pin!(work);
    let mut finished = Finished::default();
    loop {
        tokio::select! {
            biased;
            Some(done) = stops.next(), if !stops.is_empty() => finished.stops.push(done),
            Some(done) = watches.next(), if !watches.is_empty() => finished.watches.push(done),
            out = &mut work => return (out, finished),
        }
    }
}

/// The running tally of one service's rollout.
struct Tally {
    outcomes: Vec<Outcome>,
    done: Vec<Done>,
    failures: usize,
    total: usize,
    /// Previous replicas that could not be stopped (the slot then runs two until the next `up`).
    stop_errors: Vec<String>,
}

impl Tally {
    /// Takes in what finished in the background.
    fn absorb(&mut self, svc: &ServiceRollout, finished: Finished, progress: &Progress) {
        for (i, r) in finished.stops {
            if let Err(e) = r {
                let o = &self.outcomes[i];
                progress.note(&format!(
                    "{}: stopping the previous replica of {}: {e}",
                    o.machine,
                    key(&svc.service, o.slot, &o.machine)
                ));
                self.stop_errors
                    .push(format!("slot {} on {}: {e}", o.slot, o.machine));
            }
        }
        for (i, r) in finished.watches {
            if let Err(e) = r {
                let o = &mut self.outcomes[i];
                progress.finish(
                    &key(&svc.service, o.slot, &o.machine),
                    &format!("FAILED: {e}"),
                );
                if o.result.is_ok() {
                    self.failures += 1;
                }
                o.result = Err(e);
            }
        }
    }

    /// Whether the failures so far exceed max_failure_ratio; with the reason.
    fn over_limit(&self, svc: &ServiceRollout) -> Option<String> {
        let ratio = self.failures as f64 / self.total.max(1) as f64;
        (self.failures > 0 && ratio > svc.update.max_failure_ratio).then(|| {
            format!(
                "{} of {} replicas failed (max_failure_ratio {})",
                self.failures, self.total, svc.update.max_failure_ratio
            )
        })
    }
}

async fn run_service(
    svc: &ServiceRollout,
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
) -> (Vec<Outcome>, Verdict) {
    let (removals, updates): (Vec<&Change>, Vec<&Change>) = svc
        .changes
        .iter()
        .partition(|c| matches!(c, Change::Remove { .. }));
    let total = updates.len();
    // New replicas replace nothing, so they all start at once (as Swarm does);
    // update_config.parallelism paces the replacements of running replicas.
    let (fresh, replacing): (Vec<&Change>, Vec<&Change>) = updates
        .into_iter()
        .partition(|c| !matches!(c, Change::Replace { .. }));
    let width = if svc.update.parallelism == 0 {
        replacing.len().max(1)
    } else {
        svc.update.parallelism
    };
    let mut tally = Tally {
        outcomes: Vec::new(),
        done: Vec::new(),
        failures: 0,
        total,
        stop_errors: Vec::new(),
    };
    let mut stops: Background = FuturesUnordered::new();
    let mut watches: Background = FuturesUnordered::new();
    let mut stopped_by: Option<Verdict> = None;
    let phases = [
        (fresh.len().max(1), fresh),
        (width, across_machines(replacing)),
    ];
    for (width, changes) in phases {
        let mut run = Window {
            svc,
            engines,
            progress,
            hook,
            tally: &mut tally,
            stops: &mut stops,
            watches: &mut watches,
        };
        match run.go(&changes, width).await {
            Flow::Done => {}
            Flow::Interrupted(v) => {
                stopped_by = Some(v);
                break;
            }
            Flow::Failed(v) => return (tally.outcomes, v),
        }
    }
    if stopped_by.is_none() {
        // What the file no longer wants goes once the new replicas are up, all at once.
        let work = futures_util::future::join_all(
            removals
                .iter()
                .map(|c| apply_change(svc, c, engines, progress, hook, None)),
        );
        let (results, finished) = drive(work, &mut stops, &mut watches).await;
        tally.absorb(svc, finished, progress);
        for (change, (outcome, _, _)) in removals.iter().zip(results) {
            tally.outcomes.push(Outcome {
                machine: change.machine().to_string(),
                slot: change.slot(),
                result: outcome,
            });
        }
    }
    // Every stop, and every watch that still matters, ends before the report.
    if stopped_by.is_some() {
        watches.clear();
    }
    while !stops.is_empty() || !watches.is_empty() {
        let mut finished = Finished::default();
        tokio::select! {
            Some(done) = stops.next(), if !stops.is_empty() => finished.stops.push(done),
            Some(done) = watches.next(), if !watches.is_empty() => finished.watches.push(done),
        }
        tally.absorb(svc, finished, progress);
        if stopped_by.is_none()
            && let Some(why) = tally.over_limit(svc)
            && let Some(v) = fail(svc, why, &mut tally, &mut stops, engines, progress, hook).await
        {
            return (tally.outcomes, v);
        }
    }
    if let Some(v) = stopped_by {
        return (tally.outcomes, v);
    }
    if tally.failures > 0 {
        let why = format!("{} of {total} replicas failed", tally.failures);
        return (tally.outcomes, Verdict::Degraded(why));
    }
    if !tally.stop_errors.is_empty() {
        let why = format!(
            "previous replicas still running (the next `hoist up` removes them): {}",
            tally.stop_errors.join("; ")
        );
        return (tally.outcomes, Verdict::Degraded(why));
    }
    (tally.outcomes, Verdict::Done)
}

/// The changes in an order that spreads the replicas changed at once over the machines: the
/// first change of every machine, then the second of every machine, and so on (otherwise in
/// the plan's order). Replicas that start together are then started by different engines,
/// which start containers one after another much faster than side by side.
fn across_machines(changes: Vec<&Change>) -> Vec<&Change> {
    let mut by_machine: Vec<(&str, std::collections::VecDeque<&Change>)> = Vec::new();
    for c in changes {
        match by_machine.iter_mut().find(|(m, _)| *m == c.machine()) {
            Some((_, list)) => list.push_back(c),
            None => by_machine.push((c.machine(), [c].into())),
        }
    }
    let mut out = Vec::new();
    while by_machine.iter().any(|(_, list)| !list.is_empty()) {
        for (_, list) in &mut by_machine {
            out.extend(list.pop_front());
        }
    }
    out
}

/// How a [`Window`] ended.
enum Flow {
    /// Every change was made (some may have failed within max_failure_ratio).
    Done,
    /// A signal asked to start no more; what was under way finished.
    Interrupted(Verdict),
    /// Too many failed: failure_action was carried out.
    Failed(Verdict),
}

/// A change the window finished, with what it left to do.
type Made<'a> = (&'a Change, (Result<String, String>, Done, Followup));

/// What woke a window up.
enum Event<'a> {
    Stopped((usize, Result<(), String>)),
    Watched((usize, Result<(), String>)),
    Made(Made<'a>),
    Rested,
    /// A container was created ahead of its turn.
    Created,
}

/// Swarm's update workers: `width` changes are under way at any time, each of which takes the
/// next change as soon as its own is ready (after `update_config.delay`), so one slow replica
/// holds up only its own place, not a whole batch. Background stops and watches are taken in as
/// they end; failures past max_failure_ratio stop new changes and, once those under way are
/// done, trigger failure_action.
struct Window<'a, 'r> {
    svc: &'a ServiceRollout,
    engines: &'a HashMap<String, Docker>,
    progress: &'a Progress,
    hook: &'a dyn Hook,
    tally: &'r mut Tally,
    stops: &'r mut Background<'a>,
    watches: &'r mut Background<'a>,
}

impl<'a> Window<'a, '_> {
    async fn go(&mut self, changes: &[&'a Change], width: usize) -> Flow {
        let (svc, engines, progress, hook) = (self.svc, self.engines, self.progress, self.hook);
        let mut next = 0;
        let mut running: FuturesUnordered<BoxFuture<'a, Made<'a>>> = FuturesUnordered::new();
        // Places whose change is done, waiting out update_config.delay before the next.
        let mut resting: FuturesUnordered<tokio::time::Sleep> = FuturesUnordered::new();
        // The containers of the next changes, created while the current ones prove themselves:
        // a create is invisible (nothing starts), and their turn then begins with the start.
        let mut ahead: HashMap<usize, Ahead<'a>> = HashMap::new();
        let mut creating: FuturesUnordered<Ahead<'a>> = FuturesUnordered::new();
        let mut failing: Option<String> = None;
        let mut signal: Option<i32> = None;
        loop {
            while failing.is_none()
                && signal.is_none()
                && next < changes.len()
                && running.len() + resting.len() < width
            {
                if let Some(s) = crate::interrupt::requested() {
                    signal = Some(s);
                    break;
                }
                let change = changes[next];
                let made = ahead.remove(&next);
                next += 1;
                crate::trace!("{}: change of slot {} starts", svc.service, change.slot());
                running.push(Box::pin(async move {
                    let result = apply_change(svc, change, engines, progress, hook, made).await;
                    (change, result)
                }));
            }
            if failing.is_none() && signal.is_none() {
                for (i, change) in changes.iter().enumerate().skip(next).take(width) {
                    if let std::collections::hash_map::Entry::Vacant(slot) = ahead.entry(i)
                        && let Some(made) = self.create_ahead(change)
                    {
                        creating.push(made.clone());
                        slot.insert(made);
                    }
                }
            }
            let more = failing.is_none() && signal.is_none() && next < changes.len();
            if running.is_empty() && (resting.is_empty() || !more) {
                break;
            }
            let event = tokio::select! {
                biased;
                Some(done) = self.stops.next(), if !self.stops.is_empty() => Event::Stopped(done),
                Some(done) = self.watches.next(), if !self.watches.is_empty() => Event::Watched(done),
                Some(made) = running.next(), if !running.is_empty() => Event::Made(made),
                Some(()) = resting.next(), if !resting.is_empty() => Event::Rested,
                Some(_) = creating.next(), if !creating.is_empty() => Event::Created,
            };
            match event {
                Event::Stopped(done) => {
                    let finished = Finished {
                        stops: vec![done],
                        watches: Vec::new(),
                    };
                    self.tally.absorb(svc, finished, progress);
                }
                Event::Watched(done) => {
                    let finished = Finished {
                        stops: Vec::new(),
                        watches: vec![done],
                    };
                    self.tally.absorb(svc, finished, progress);
                }
                Event::Made((change, (outcome, record, followup))) => {
                    if outcome.is_err() {
                        self.tally.failures += 1;
                    }
                    let index = self.tally.outcomes.len();
                    self.tally.outcomes.push(Outcome {
                        machine: change.machine().to_string(),
                        slot: change.slot(),
                        result: outcome,
                    });
                    self.tally.done.push(record);
                    follow_up(
                        svc,
                        change,
                        followup,
                        index,
                        engines,
                        progress,
                        hook,
                        self.stops,
                        self.watches,
                    );
                    if !svc.update.delay.is_zero() && next < changes.len() {
                        resting.push(tokio::time::sleep(svc.update.delay));
                    }
                }
                Event::Rested | Event::Created => {}
            }
            if failing.is_none() && svc.update.failure_action != FailureAction::Continue {
                failing = self.tally.over_limit(svc);
            }
        }
        // Containers made for changes that will not run now: nothing may be left of them.
        for (i, made) in ahead {
            if let (Some(id), Some(docker)) = (made.await, engines.get(changes[i].machine())) {
                let _ = ops::remove(docker, &id).await;
            }
        }
        if let Some(why) = failing
            && let Some(v) = fail(svc, why, self.tally, self.stops, engines, progress, hook).await
        {
            return Flow::Failed(v);
        }
        match signal {
            Some(s) => Flow::Interrupted(interrupted(s, self.tally)),
            None => Flow::Done,
        }
    }

    /// Starts creating the container of a replacement ahead of its turn (see [`Ahead`]).
    fn create_ahead(&self, change: &'a Change) -> Option<Ahead<'a>> {
        let Change::Replace {
            machine,
            slot,
            name,
            request,
            extra_networks,
            ..
        } = change
        else {
            return None;
        };
        let docker = self.engines.get(machine)?;
        let (svc, progress) = (self.svc, self.progress);
        let k = key(&svc.service, *slot, machine);
        let made: BoxFuture<'a, Option<String>> = Box::pin(async move {
            crate::trace!("{k}: create ahead");
            let new = NewReplica {
                name,
                request,
                extra_networks,
                made: None,
            };
            match create_only(svc, docker, &new, 0).await {
                Ok(id) => {
                    crate::trace!("{k}: created ahead");
                    progress.step(&k, "created; starts when its turn comes");
                    Some(id)
                }
                Err((_, id)) => {
                    // Its turn tries again and reports the error.
                    if let Some(id) = id {
                        let _ = ops::remove(docker, &id).await;
                    }
                    None
                }
            }
        });
        Some(made.shared())
    }
}

/// The verdict of a rollout stopped on request before its last batch.
fn interrupted(signal: i32, tally: &Tally) -> Verdict {
    let done = tally.outcomes.iter().filter(|o| o.result.is_ok()).count();
    Verdict::Interrupted(format!(
        "stopped by {} after {done} of {} changes; run `hoist up` again to finish",
        crate::interrupt::describe(signal),
        tally.total
    ))
}

/// failure_action, once failures pass max_failure_ratio. `None`: keep going (continue).
async fn fail<'a>(
    svc: &'a ServiceRollout,
    why: String,
    tally: &mut Tally,
    stops: &mut Background<'a>,
    engines: &'a HashMap<String, Docker>,
    progress: &'a Progress,
    hook: &'a dyn Hook,
) -> Option<Verdict> {
    match svc.update.failure_action {
        FailureAction::Continue => None,
        FailureAction::Pause => {
            wait_stops(svc, tally, stops, progress).await;
            Some(Verdict::Paused(why))
        }
        FailureAction::Rollback => {
            progress.note(&format!("{}: {why}; rolling back", svc.service));
            // A previous replica still on its way down must be down before it is started again.
            wait_stops(svc, tally, stops, progress).await;
            undo(
                svc,
                std::mem::take(&mut tally.done),
                engines,
                progress,
                hook,
            )
            .await;
            Some(Verdict::RolledBack(why))
        }
    }
}

async fn wait_stops(
    svc: &ServiceRollout,
    tally: &mut Tally,
    stops: &mut Background<'_>,
    progress: &Progress,
) {
    let mut finished = Finished::default();
    while let Some(done) = stops.next().await {
        finished.stops.push(done);
    }
    tally.absorb(svc, finished, progress);
}

/// Puts a change's followup in the background: the new replica takes the retired one's place
/// in every pool, the retired one drains and stops; the new one is watched for
/// update_config.monitor. The place of a start-first change frees as soon as its new replica is
/// ready: the old one keeps serving until the swap, so no slot is ever out of the pools.
#[allow(clippy::too_many_arguments)]
fn follow_up<'a>(
    svc: &'a ServiceRollout,
    change: &'a Change,
    followup: Followup,
    index: usize,
    engines: &'a HashMap<String, Docker>,
    progress: &'a Progress,
    hook: &'a dyn Hook,
    stops: &mut Background<'a>,
    watches: &mut Background<'a>,
) {
    let machine = change.machine();
    let Some(docker) = engines.get(machine) else {
        return;
    };
    let k = key(&svc.service, change.slot(), machine);
    if let Some((old, new)) = followup.retire {
        let k = k.clone();
        stops.push(Box::pin(async move {
            let at = |id| ReplicaRef {
                service: &svc.service,
                slot: change.slot(),
                machine,
                id,
            };
            hook.swap(at(&new), at(&old)).await;
            let drain = hook.drain(&svc.service);
            if !drain.is_zero() {
                tokio::time::sleep(drain).await;
            }
            let r = ops::stop(docker, &old, Some(svc.stop_grace))
                .await
                .map_err(|e| format!("{e:#}"));
            if r.is_ok() {
                progress.finish(&format!("{k} previous"), "stopped, kept for rollback");
            }
            (index, r)
        }));
    }
    if let Some(new) = followup.watch
        && !svc.gate.monitor.is_zero()
    {
        watches.push(Box::pin(async move {
            let r = ops::monitor(docker, &new, svc.gate.monitor)
                .await
                .map_err(|e| format!("{e:#}"));
            (index, r)
        }));
    }
}

fn key(service: &str, slot: u32, machine: &str) -> String {
    format!("{service}.{slot}@{machine}")
}

async fn apply_change(
    svc: &ServiceRollout,
    change: &Change,
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
    ahead: Option<Ahead<'_>>,
) -> (Result<String, String>, Done, Followup) {
    let machine = change.machine();
    let at = |id| ReplicaRef {
        service: &svc.service,
        slot: change.slot(),
        machine,
        id,
    };
    let k = key(&svc.service, change.slot(), machine);
    let Some(docker) = engines.get(machine) else {
        let e = format!("machine {machine} is not connected");
        progress.finish(&k, &format!("failed: {e}"));
        return (Err(e), Done::Nothing, Followup::default());
    };
    let (result, record, followup) = match change {
        Change::Create {
            name,
            request,
            extra_networks,
            ..
        } => {
            progress.step(&k, "creating");
            let new = NewReplica {
                name,
                request,
                extra_networks,
                made: None,
            };
            match create_and_prove(svc, docker, &new, &k, progress, hook, at("")).await {
                Ok((id, ready)) => (
                    Ok("created".to_string()),
                    Done::Created {
                        machine: machine.into(),
                        id: id.clone(),
                    },
                    // A healthy replica of a new slot has proven itself; one without a
                    // healthcheck is watched a while, as before it counted as ready.
                    Followup {
                        retire: None,
                        watch: (ready == Ready::Running).then_some(id),
                    },
                ),
                Err((e, id)) => (
                    Err(e),
                    id.map(|id| Done::Created {
                        machine: machine.into(),
                        id,
                    })
                    .unwrap_or(Done::Nothing),
                    Followup::default(),
                ),
            }
        }
        Change::Start { id, .. } => {
            progress.step(&k, "starting");
            let r = async {
                ops::start(docker, id).await?;
                let ready = ops::wait_ready(docker, id, svc.gate).await?;
                hook.after_ready(at(id)).await;
                Ok::<Ready, anyhow::Error>(ready)
            }
            .await;
            match r {
                Ok(ready) => (
                    Ok("started".to_string()),
                    Done::Nothing,
                    Followup {
                        retire: None,
                        watch: (ready == Ready::Running).then(|| id.clone()),
                    },
                ),
                Err(e) => (Err(format!("{e:#}")), Done::Nothing, Followup::default()),
            }
        }
        Change::Replace {
            old_id,
            name,
            request,
            extra_networks,
            start_first,
            ..
        } => {
            let made = match ahead {
                Some(ahead) => ahead.await,
                None => None,
            };
            let new = NewReplica {
                name,
                request,
                extra_networks,
                made,
            };
            replace(
                svc,
                docker,
                old_id,
                &new,
                *start_first,
                &k,
                progress,
                hook,
                at(""),
            )
            .await
        }
        Change::Remove { id, stop_first, .. } => {
            progress.step(&k, "removing");
            let r = async {
                if *stop_first {
                    hook.before_stop(at(id)).await;
                    ops::stop(docker, id, Some(svc.stop_grace)).await?;
                }
                ops::remove(docker, id).await
            }
            .await;
            (
                r.map(|_| "removed".to_string())
                    .map_err(|e| format!("{e:#}")),
                Done::Nothing,
                Followup::default(),
            )
        }
    };
    match &result {
        Ok(m) => progress.finish(&k, m),
        Err(e) => progress.finish(&k, &format!("FAILED: {e}")),
    }
    (result, record, followup)
}

/// The container a Create or Replace brings up.
struct NewReplica<'a> {
    name: &'a str,
    request: &'a Value,
    extra_networks: &'a [(String, Value)],
    /// Its container, when it was created ahead of its turn (see [`Window`]).
    made: Option<String>,
}

/// A container created ahead of its turn: its ID once made, `None` if that failed (the change
/// then creates it itself, and reports what goes wrong).
type Ahead<'a> = Shared<BoxFuture<'a, Option<String>>>;

/// Creates a new replica's container, with its secrets and configs in place, without starting
/// it. `attempt` picks its host ports (see `create_and_start`).
async fn create_only(
    svc: &ServiceRollout,
    docker: &Docker,
    new: &NewReplica<'_>,
    attempt: u32,
) -> Result<String, (String, Option<String>)> {
    let (name, extra_networks) = (new.name, new.extra_networks);
    let request = ops::fixed_host_ports(new.request, name, attempt);
    let id = ops::create(docker, name, &request, extra_networks)
        .await
        .map_err(|e| (format!("{e:#}"), None))?;
    if let Err(e) = ops::copy_files(docker, &id, &svc.files).await {
        return Err((format!("{e:#}"), Some(id)));
    }
    Ok(id)
}

/// Creates, starts and waits for a new container to be ready. On failure the error comes with
/// the new container's ID (if it got one) so the caller can clean up.
async fn create_and_start(
    svc: &ServiceRollout,
    docker: &Docker,
    new: &NewReplica<'_>,
    k: &str,
    progress: &Progress,
) -> Result<(String, Ready), (String, Option<String>)> {
    // Host ports are fixed at creation so a restarted replica keeps them (ops::fixed_host_ports);
    // one that something else on the machine holds is traded for another, a few times.
    let mut attempt = 0;
    let id = loop {
        let id = match (attempt, &new.made) {
            (0, Some(id)) => id.clone(),
            _ => create_only(svc, docker, new, attempt).await?,
        };
        progress.step(k, "starting");
        let started = ops::start(docker, &id).await;
        crate::trace!("{k}: started");
        match started {
            Ok(()) => break id,
            Err(e) if ops::port_clash(&e) && attempt < 4 => {
                let _ = ops::remove(docker, &id).await;
                attempt += 1;
            }
            Err(e) => return Err((format!("{e:#}"), Some(id))),
        }
    };
    progress.step(k, "waiting until ready");
    let ready = ops::wait_ready(docker, &id, svc.gate).await;
    crate::trace!("{k}: ready");
    match ready {
        Ok(ready) => Ok((id, ready)),
        Err(e) => Err((format!("{e:#}"), Some(id))),
    }
}

/// [`create_and_start`], then tells the hook the replica is ready (`at` names the slot; its id
/// is filled in here).
async fn create_and_prove(
    svc: &ServiceRollout,
    docker: &Docker,
    new: &NewReplica<'_>,
    k: &str,
    progress: &Progress,
    hook: &dyn Hook,
    at: ReplicaRef<'_>,
) -> Result<(String, Ready), (String, Option<String>)> {
    let (id, ready) = create_and_start(svc, docker, new, k, progress).await?;
    hook.after_ready(ReplicaRef { id: &id, ..at }).await;
    Ok((id, ready))
}

#[allow(clippy::too_many_arguments)]
async fn replace(
    svc: &ServiceRollout,
    docker: &Docker,
    old_id: &str,
    new: &NewReplica<'_>,
    start_first: bool,
    k: &str,
    progress: &Progress,
    hook: &dyn Hook,
    at: ReplicaRef<'_>,
) -> (Result<String, String>, Done, Followup) {
    let replaced = |new_id: String| Done::Replaced {
        machine: at.machine.into(),
        old_id: old_id.into(),
        new_id,
    };
    if start_first {
        progress.step(k, "starting new replica beside the old (start-first)");
        match create_and_start(svc, docker, new, k, progress).await {
            // One change of the pools, the new replica in and the old one out, then the old
            // one's drain and stop: in the background (see follow_up).
            Ok((new_id, _)) => (
                Ok("replaced (start-first)".into()),
                replaced(new_id.clone()),
                Followup {
                    retire: Some((old_id.to_string(), new_id.clone())),
                    watch: Some(new_id),
                },
            ),
            Err((e, new_id)) => {
                // The old replica never stopped: just drop the failed new one.
                if let Some(id) = new_id {
                    let _ = ops::remove(docker, &id).await;
                }
                (Err(e), Done::Nothing, Followup::default())
            }
        }
    } else {
        progress.step(k, "stopping the previous replica (stop-first)");
        hook.before_stop(ReplicaRef { id: old_id, ..at }).await;
        if let Err(e) = ops::stop(docker, old_id, Some(svc.stop_grace)).await {
            return (Err(format!("{e:#}")), Done::Nothing, Followup::default());
        }
        match create_and_prove(svc, docker, new, k, progress, hook, at).await {
            Ok((new_id, _)) => (
                Ok("replaced (stop-first)".into()),
                replaced(new_id.clone()),
                Followup {
                    retire: None,
                    watch: Some(new_id),
                },
            ),
            Err((e, new_id)) => {
                // Bring the old replica straight back; the service-level
                // rollback then has nothing left to do for this slot.
                if let Some(id) = new_id {
                    let _ = ops::remove(docker, &id).await;
                }
                if ops::start(docker, old_id).await.is_ok() {
                    hook.after_ready(ReplicaRef { id: old_id, ..at }).await;
                }
                (Err(e), Done::Nothing, Followup::default())
            }
        }
    }
}

/// Undoes this run's changes of one service: previous replicas started again,
/// new ones removed, following rollback_config's parallelism.
async fn undo(
    svc: &ServiceRollout,
    done: Vec<Done>,
    engines: &HashMap<String, Docker>,
    progress: &Progress,
    hook: &dyn Hook,
) {
    let batch = if svc.rollback.parallelism == 0 {
        done.len().max(1)
    } else {
        svc.rollback.parallelism
    };
    let items: Vec<Done> = done
        .into_iter()
        .filter(|d| !matches!(d, Done::Nothing))
        .collect();
    for (i, chunk) in items.chunks(batch).enumerate() {
        if i > 0 && !svc.rollback.delay.is_zero() {
            tokio::time::sleep(svc.rollback.delay).await;
        }
        futures_util::future::join_all(chunk.iter().map(|d| async move {
            let r: Result<()> = async {
                match d {
                    Done::Created { machine, id } => {
                        let docker = engines
                            .get(machine)
                            .ok_or_else(|| anyhow!("{machine} not connected"))?;
                        hook.before_stop(replica(svc, machine, id)).await;
                        ops::remove(docker, id).await
                    }
                    Done::Replaced {
                        machine,
                        old_id,
                        new_id,
                    } => {
                        let docker = engines
                            .get(machine)
                            .ok_or_else(|| anyhow!("{machine} not connected"))?;
                        ops::start(docker, old_id).await?;
                        ops::wait_ready(docker, old_id, svc.gate).await?;
                        hook.swap(replica(svc, machine, old_id), replica(svc, machine, new_id))
                            .await;
                        tokio::time::sleep(hook.drain(&svc.service)).await;
                        ops::stop(docker, new_id, Some(svc.stop_grace)).await?;
                        ops::remove(docker, new_id).await
                    }
                    Done::Nothing => Ok(()),
                }
            }
            .await;
            if let Err(e) = r {
                progress.note(&format!("{}: rollback step failed: {e:#}", svc.service));
            }
        }))
        .await;
    }
}

/// A replica undo touches; the slot is not known there, and a load balancer
/// needs only the container.
fn replica<'a>(svc: &'a ServiceRollout, machine: &'a str, id: &'a str) -> ReplicaRef<'a> {
    ReplicaRef {
        service: &svc.service,
        slot: 0,
        machine,
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(machine: &str, slot: u32) -> Change {
        Change::Replace {
            machine: machine.into(),
            slot,
            old_id: format!("old{slot}"),
            name: format!("web-{slot}"),
            request: Value::Null,
            extra_networks: Vec::new(),
            start_first: true,
        }
    }

    #[test]
    fn replicas_changed_together_are_on_different_machines() {
        type Case<'a> = (&'a [(&'a str, u32)], &'a [u32]);
        let cases: [Case; 4] = [
            // The plan lists slots machine by machine; a window of 2 would start two on m1.
            (
                &[
                    ("m1", 1),
                    ("m1", 4),
                    ("m2", 2),
                    ("m2", 5),
                    ("m3", 3),
                    ("m3", 6),
                ],
                &[1, 2, 3, 4, 5, 6],
            ),
            // Uneven: the machine with more slots finishes last.
            (&[("m1", 1), ("m1", 2), ("m1", 3), ("m2", 4)], &[1, 4, 2, 3]),
            (&[("m1", 7)], &[7]),
            (&[], &[]),
        ];
        for (input, want) in cases {
            let changes: Vec<Change> = input.iter().map(|(m, s)| replace(m, *s)).collect();
            let order: Vec<u32> = across_machines(changes.iter().collect())
                .into_iter()
                .map(Change::slot)
                .collect();
            assert_eq!(order, want, "{input:?}");
        }
    }
}
