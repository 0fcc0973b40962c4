//! `hoist watch`: keep the machines at the plan, for as long as it runs.
//!
//! A reconcile loop over the same pipeline as `plan` and `up`: every round it observes every
//! machine (each bounded by a short timeout), decides which machines are lost (`heal`) and
//! how many replicas autoscaled services want (`autoscale`), computes the plan with
//! `pipeline::plan_observed`, and — only when it has changes — applies it with
//! `pipeline::apply::apply_plan` under the deploy lock. When another deploy holds the lock,
//! the round is skipped and says so. Every decision is logged with its time and reason.
//!
//! No state outside the engines: a restarted watch reads the scale records and the labels and
//! carries on.

pub mod autoscale;
pub mod heal;

use crate::apply::progress::Progress;
use crate::apply::rollout::Verdict;
use crate::apply::{lock, scale_record};
use crate::core::autoscale as policy;
use crate::core::observed::SlotName;
use crate::core::plan::Action;
use crate::engine::{Connections, MachineError};
use crate::inventory::Fleet;
use crate::model::Project;
use crate::observe::{self, Observation};
use crate::pipeline::{self, Inputs};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How watch runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between the starts of two rounds.
    pub interval: Duration,
    /// How long each machine may take to answer a round's questions.
    pub probe: Duration,
    /// How long a machine may not answer before it is lost.
    pub grace: Duration,
    /// How long one attempt to connect again to a machine may take (in the background).
    pub connect: Duration,
    /// Rounds in a row a lost machine must answer before it is trusted again.
    pub trust_after: u32,
    /// Stop after this many rounds (tests, one-shot use); `None`: until stopped.
    pub rounds: Option<u64>,
}

/// Prints one decision with a UTC timestamp (to the millisecond) on stderr.
pub fn log(message: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = crate::apply::time::rfc3339(now.as_secs());
    let stamp = stamp.trim_end_matches('Z');
    tell!("{stamp}.{:03}Z {message}", now.subsec_millis());
}

/// Runs the loop on `conns` (connected to `fleet`) until stopped or `opts.rounds` are done.
pub async fn run(
    project: &Project,
    fleet: &Fleet,
    conns: &mut Connections,
    opts: &Options,
) -> Result<()> {
    let policies = policy::policies(project)?;
    let local = pipeline::local::engine().await;
    // What the local engine says of the images, as at the start; where it cannot say (no
    // local copy, no build context here), what runs is kept (see local::keep_running_ids).
    let built = pipeline::local::local_images(local.as_ref(), project)
        .await
        .unwrap_or_default();
    let start = Instant::now();
    let mut machines = heal::Machines::new(
        fleet.machines.iter().map(|m| m.name.as_str()),
        opts.grace,
        opts.trust_after,
        start,
    );
    let mut backoff = heal::Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    let records = scale_record::read(conns, &project.name).await;
    let mut scale: BTreeMap<String, policy::State> = BTreeMap::new();
    for (service, p) in &policies {
        let n = records
            .get(service)
            .map(|r| r.replicas)
            .unwrap_or_else(|| policy::declared(project, service))
            .clamp(p.min, p.max);
        log(&format!(
            "{service}: autoscale {}…{} replicas at {:.0}% cpu, cooldown {}s; now {n}{}",
            p.min,
            p.max,
            p.cpu,
            p.cooldown.as_secs(),
            records
                .get(service)
                .map(|r| format!(" (recorded {}: {})", r.at, r.reason))
                .unwrap_or_default()
        ));
        scale.insert(service.clone(), policy::State::new(n));
    }
    // Scale decisions not yet recorded on the machines, with the count before them.
    let mut pending: BTreeMap<String, (u32, policy::Record)> = BTreeMap::new();
    let mut sampler = autoscale::Sampler::default();
    let mut said_unmeasured: BTreeSet<String> = BTreeSet::new();
    log(&format!(
        "watching project {} on {} machines: every {:.1}s, lost after {:.1}s without an answer, trusted again after {} rounds",
        project.name,
        fleet.machines.len(),
        opts.interval.as_secs_f64(),
        opts.grace.as_secs_f64(),
        opts.trust_after
    ));
    let mut round: u64 = 0;
    let mut reconnects = Reconnects::default();
    let mut quiet_since = Instant::now();
    // The mesh check reads every proxy's file and takes the deploy lock: not every round.
    let mut mesh_checked: Option<Instant> = None;
    // Slots reported as possibly on an unreachable machine, so each is said once.
    let mut held: BTreeSet<String> = BTreeSet::new();
    // The last planning error, said once until it changes.
    let mut last_error: Option<String> = None;
    loop {
        round += 1;
        let began = Instant::now();
        let mut observation =
            observe_and_reconnect(conns, &mut reconnects, &project.name, opts, round).await;
        let answers: BTreeMap<String, Result<(), String>> = observation
            .machines
            .iter()
            .map(|(m, r)| (m.clone(), r.as_ref().map(|_| ()).map_err(Clone::clone)))
            .collect();
        for line in machines.update(Instant::now(), &answers) {
            log(&line);
        }
        let probation = machines.on_probation();
        for (m, state) in observation.machines.iter_mut() {
            if let Some(why) = probation.get(m) {
                *state = Err(why.clone());
            }
        }
        // Autoscale.
        if !policies.is_empty() {
            // Stats take their own bound: an engine that answered the observation may still
            // take a moment for stats on a busy machine, and a missed sample costs a round.
            let within = opts.probe.max(STATS_WITHIN);
            let (cpu, unmeasured) =
                sample_cpu(&mut sampler, conns, &observation, &policies, within).await;
            // Each problem is said once, and again only after it went away and came back.
            for line in unmeasured.difference(&said_unmeasured) {
                log(line);
            }
            said_unmeasured = unmeasured;
            for (service, p) in &policies {
                let state = scale.get_mut(service).expect("one state per policy");
                let before = state.replicas;
                let values = cpu.get(service).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(d) = policy::decide(p, state, values, Instant::now()) {
                    log(&format!(
                        "{service}: scale {before} → {} replicas: {}",
                        d.replicas, d.reason
                    ));
                    state.replicas = d.replicas;
                    pending
                        .entry(service.clone())
                        .or_insert((before, new_record(service, &d)))
                        .1 = new_record(service, &d);
                }
            }
        }
        let inputs = Inputs {
            replicas: scale
                .iter()
                .map(|(s, st)| (s.clone(), st.replicas))
                .collect(),
            lost: machines.lost(),
        };
        // Replicas keep the digest their tag was pinned to at the last deploy (healing
        // restores the same bits; only `hoist up` moves a tag); a service without one
        // (new, or a new tag in the file) is resolved from the registry.
        let known = pipeline::pin::from_observation(project, &observation);
        // Only machines that answered this round are asked.
        let answering: Vec<(&str, &bollard::Docker)> = pipeline::pin::connected(conns)
            .into_iter()
            .filter(|(m, _)| {
                answers.get(*m).is_some_and(|a| a.is_ok()) && !probation.contains_key(*m)
            })
            .collect();
        let resolving =
            pipeline::pin::resolve_on(project, &answering, local.as_ref(), &known, None);
        let pins = match tokio::time::timeout(Duration::from_secs(60), resolving).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!(
                "resolving the image tags of new services took over 60s (a registry that does not answer?)"
            )),
        };
        // The sealing key, read each round like everything else (a machine may have joined,
        // or lost it), each machine bounded like the observation. Only machines that answered
        // this round count (`seal::choose` skips the others).
        let keys = crate::seal::read_all_within(conns, &project.name, opts.probe).await;
        let planned = match pins {
            Ok(pins) => pipeline::plan_observed(
                project,
                fleet,
                conns,
                &built,
                &pins.pins,
                &observation,
                &keys,
                &inputs,
            ),
            Err(e) => Err(e),
        };
        match planned {
            Err(e) => {
                let text = format!("{e:#}");
                if last_error.as_deref() != Some(text.as_str()) {
                    log(&format!("round {round}: no plan: {text}"));
                    last_error = Some(text);
                }
                // A scale the machines cannot hold is taken back.
                for (service, (before, _)) in std::mem::take(&mut pending) {
                    if let Some(st) = scale.get_mut(&service) {
                        log(&format!("{service}: back to {before} replicas"));
                        st.replicas = before;
                    }
                }
            }
            Ok(mut planned) => {
                if last_error.take().is_some() {
                    log(&format!("round {round}: planning works again"));
                }
                let now = Instant::now();
                planned.plan.steps.retain(|s| {
                    let (Some(service), Some(slot)) = (&s.service, &s.slot) else {
                        return true;
                    };
                    if matches!(s.action, Action::Remove { .. } | Action::Unchanged { .. }) {
                        return true;
                    }
                    let key = format!("{service}.{}@{}", slot.label_value(), s.machine);
                    match backoff.wait(&slot_key(service, slot, &s.machine), now) {
                        None => true,
                        Some(wait) => {
                            log(&format!(
                                "{key}: keeps failing; next try in {:.0}s",
                                wait.as_secs_f64()
                            ));
                            false
                        }
                    }
                });
                let unknown: BTreeSet<String> = planned
                    .plan
                    .unknown
                    .iter()
                    .map(|u| format!("{}.{}", u.service, u.slot.label_value()))
                    .collect();
                held.retain(|k| unknown.contains(k));
                for w in &planned.plan.unknown {
                    if held.insert(format!("{}.{}", w.service, w.slot.label_value())) {
                        log(&format!(
                            "{}.{}: may be running on unreachable {}: {}",
                            w.service,
                            w.slot.label_value(),
                            w.machines.join(", "),
                            if w.volumes.is_empty() {
                                "not placed elsewhere until that machine is lost".to_string()
                            } else {
                                format!("stateful (volume {}), never moved", w.volumes.join(", "))
                            }
                        ));
                    }
                }
                if planned.plan.has_changes() || !pending.is_empty() {
                    quiet_since = Instant::now();
                    apply(
                        project,
                        fleet,
                        conns,
                        &planned,
                        &mut pending,
                        &mut backoff,
                        local.as_ref(),
                        round,
                    )
                    .await;
                } else {
                    if mesh_checked.is_none_or(|t| t.elapsed() >= MESH_CHECK_EVERY) {
                        mesh_checked = Some(Instant::now());
                        refresh_mesh(project, fleet, conns, &planned, round).await;
                    }
                    if quiet_since.elapsed() >= Duration::from_secs(300) {
                        quiet_since = Instant::now();
                        log(&format!("round {round}: all as planned"));
                    }
                }
            }
        }
        if opts.rounds.is_some_and(|n| round >= n) {
            return Ok(());
        }
        // A stop request (SIGINT, SIGTERM) ends the loop between rounds; one that comes during
        // a round lets its rollout finish the batch under way first.
        tokio::select! {
            _ = tokio::time::sleep_until((began + opts.interval).into()) => {}
            _ = crate::interrupt::wait() => {}
        }
        if crate::interrupt::requested().is_some() {
            return Ok(());
        }
    }
}

/// How often a quiet watch compares the mesh's proxies with what runs.
const MESH_CHECK_EVERY: Duration = Duration::from_secs(10);

/// A round with nothing to deploy still keeps the mesh's proxies in step with what runs
/// (`Mesh::refresh`): replicas an engine restarted have new host ports, and a machine that
/// comes back has proxies with an old view. Under the deploy lock, skipped when it is held.
async fn refresh_mesh(
    project: &Project,
    fleet: &Fleet,
    conns: &Connections,
    planned: &pipeline::Planned,
    round: u64,
) {
    let engines = conns.engines();
    let mesh = match pipeline::apply::mesh_for_project(project, &planned.resolved, fleet, &engines)
    {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(e) => {
            log(&format!("round {round}: mesh: {e:#}"));
            return;
        }
    };
    let Ok(held) = lock::acquire(
        &engines,
        &project.name,
        &lock::describe_self("watch"),
        Duration::ZERO,
    )
    .await
    else {
        return;
    };
    match mesh.refresh().await {
        Ok(0) => {}
        Ok(n) => log(&format!(
            "round {round}: mesh: {n} prox{} reloaded to follow what runs",
            if n == 1 { "y" } else { "ies" }
        )),
        Err(e) => log(&format!("round {round}: mesh: {e:#}")),
    }
    held.release().await;
}

fn slot_key(service: &str, slot: &crate::core::observed::Slot, machine: &str) -> String {
    match slot {
        crate::core::observed::Slot::Global => format!("{service}@{machine}"),
        s => format!("{service}.{}", s.label_value()),
    }
}

fn new_record(service: &str, d: &policy::Decision) -> policy::Record {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    policy::Record {
        service: service.to_string(),
        replicas: d.replicas,
        reason: d.reason.clone(),
        at: crate::apply::time::rfc3339(now.as_secs()),
        seq: now.as_millis() as u64,
    }
}

/// Connections being made again in the background, by machine index.
#[derive(Default)]
struct Reconnects {
    running: tokio::task::JoinSet<(usize, Result<crate::engine::Engine, MachineError>)>,
    pending: BTreeSet<usize>,
}

/// Observes every connected machine (bounded by `opts.probe`); a machine that does not answer
/// is disconnected and dialled again in the background, never holding up a round.
async fn observe_and_reconnect(
    conns: &mut Connections,
    reconnects: &mut Reconnects,
    project: &str,
    opts: &Options,
    round: u64,
) -> Observation {
    while let Some(done) = reconnects.running.try_join_next() {
        let Ok((i, result)) = done else { continue };
        reconnects.pending.remove(&i);
        if result.is_ok() {
            log(&format!("{}: connected again", conns.results[i].0.name));
        }
        conns.set(i, result);
    }
    let observation = observe::observe_within(conns, project, opts.probe).await;
    for (i, (_, state)) in observation.machines.iter().enumerate() {
        if let Err(why) = state
            && conns.results[i].1.is_ok()
        {
            conns.disconnect(i, MachineError::Docker(why.clone()));
        }
    }
    let n = conns.results.len();
    for i in 0..n {
        if conns.results[i].1.is_err() && reconnects.pending.insert(i) {
            let socket = n * round as usize + i;
            let attempt = conns.connect_again(i, socket, opts.connect);
            reconnects.running.spawn(async move { (i, attempt.await) });
        }
    }
    observation
}

/// The least time a round gives the engines for CPU stats.
const STATS_WITHIN: Duration = Duration::from_secs(5);

/// CPU percent of each running replica of the autoscaled services, by service, and a line
/// for each replica that could not be measured (`burn.1 on m1: …`).
async fn sample_cpu(
    sampler: &mut autoscale::Sampler,
    conns: &Connections,
    observation: &Observation,
    policies: &BTreeMap<String, policy::Policy>,
    within: Duration,
) -> (BTreeMap<String, Vec<f64>>, BTreeSet<String>) {
    let mut targets = Vec::new();
    let mut replica_of: HashMap<String, (String, String)> = HashMap::new();
    for (machine, state) in &observation.machines {
        let Ok(state) = state else { continue };
        let Some(docker) = conns
            .results
            .iter()
            .find(|(m, _)| &m.name == machine)
            .and_then(|(_, r)| r.as_ref().ok())
            .map(|e| e.docker.clone())
        else {
            continue;
        };
        for c in observe::current(&state.containers) {
            if c.state == "running" && policies.contains_key(&c.service) {
                targets.push((docker.clone(), c.id.clone()));
                let replica = match &c.slot {
                    Some(slot) => SlotName(&c.service, slot).to_string(),
                    None => c.name.clone(),
                };
                replica_of.insert(
                    c.id.clone(),
                    (c.service.clone(), format!("{replica} on {machine}")),
                );
            }
        }
    }
    let samples = sampler.sample(&targets, within).await;
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (id, cpu) in samples.cpu {
        if let Some((service, _)) = replica_of.get(&id) {
            out.entry(service.clone()).or_default().push(cpu);
        }
    }
    let unmeasured = samples
        .unmeasured
        .iter()
        .filter_map(|(id, why)| {
            let (service, replica) = replica_of.get(id)?;
            Some(format!(
                "{service}: cannot measure the cpu of {replica}: {why}; autoscale decides from the replicas it can measure"
            ))
        })
        .collect();
    (out, unmeasured)
}

/// Applies one round's plan under the deploy lock, or skips the round when another deploy
/// holds it.
#[allow(clippy::too_many_arguments)]
async fn apply(
    project: &Project,
    fleet: &Fleet,
    conns: &Connections,
    planned: &pipeline::Planned,
    pending: &mut BTreeMap<String, (u32, policy::Record)>,
    backoff: &mut heal::Backoff,
    local: Option<&bollard::Docker>,
    round: u64,
) {
    let engines = conns.engines();
    let held = match lock::acquire(
        &engines,
        &project.name,
        &lock::describe_self("watch"),
        Duration::ZERO,
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            log(&format!("round {round}: skipped, {e:#}"));
            return;
        }
    };
    for (_, r) in pending.values() {
        for (m, e) in scale_record::write(&engines, &project.name, r).await {
            log(&format!(
                "{}: cannot record the scale on {m}: {e}",
                r.service
            ));
        }
    }
    pending.clear();
    if planned.plan.has_changes() {
        let now = Instant::now();
        for s in &planned.plan.steps {
            let (Some(service), Some(slot)) = (&s.service, &s.slot) else {
                continue;
            };
            if matches!(s.action, Action::Unchanged { .. }) {
                continue;
            }
            if !matches!(s.action, Action::Remove { .. }) {
                backoff.tried(&slot_key(service, slot, &s.machine), now);
            }
            log(&format!(
                "{} {service}.{} on {}: {}",
                s.action.kind(),
                slot.label_value(),
                s.machine,
                s.reasons.join("; ")
            ));
        }
        let progress = Progress::new(false);
        // The load balancers follow what watch changes, as they follow `up`.
        let hosting = pipeline::apply::hosting(&engines, &planned.observed);
        let balancers = match pipeline::apply::Balancers::for_project(
            project,
            &planned.resolved,
            fleet,
            &hosting,
        ) {
            Ok(b) => b,
            Err(e) => {
                log(&format!("round {round}: ingress/mesh: {e:#}"));
                pipeline::apply::Balancers::default()
            }
        };
        match pipeline::apply::apply_plan(planned, conns, local, &progress, &balancers).await {
            Err(e) => log(&format!("round {round}: apply failed: {e:#}")),
            Ok(applied) => {
                for (service, outcomes, verdict) in &applied.report.services {
                    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
                    let line = match verdict {
                        Verdict::Done => format!("{service}: {ok} changes done"),
                        Verdict::RolledBack(why) => {
                            format!("{service}: FAILED, rolled back: {why}")
                        }
                        Verdict::Paused(why) => format!("{service}: FAILED, paused: {why}"),
                        Verdict::Degraded(why) => format!("{service}: done with failures: {why}"),
                        Verdict::Interrupted(why) => format!("{service}: {why}"),
                        Verdict::Skipped => {
                            format!("{service}: skipped (an earlier service failed)")
                        }
                    };
                    log(&line);
                }
                log(&format!(
                    "round {round}: release {} {}",
                    applied.release,
                    if applied.report.ok() {
                        "applied"
                    } else {
                        "failed"
                    }
                ));
            }
        }
    }
    held.release().await;
}
