//! `hoist machines init`: a fresh server reachable over SSH becomes a fleet member — an engine
//! installed from its distribution's packages (Docker, or Podman where the machines file says
//! `engine: podman`), started and enabled the way the machine's init system allows, and usable
//! by the ssh user.
//!
//! Same shape as a deploy: look first (does hoist reach an engine already? what is the
//! machine? — `host`), decide purely (`recipe`), show it (`--dry-run`) or carry it out step by
//! step, then check with hoist's own engine connection that it worked. A machine whose engine
//! answers is left alone, so a second run changes nothing.

pub mod host;
pub mod recipe;

use crate::engine::{self, Facts};
use crate::inventory::{Address, EngineKind, Fleet, Machine};
use crate::transport::{Shell, Workdir};
use host::Host;
use recipe::Recipe;
use std::time::{Duration, Instant};

/// Every chosen machine as init found it, with the ssh sessions to act on them.
pub struct Survey {
    pub machines: Vec<Surveyed>,
    /// Holds the sessions' control sockets; dropped last.
    _workdir: Workdir,
}

pub struct Surveyed {
    pub machine: Machine,
    pub state: State,
}

pub enum State {
    /// hoist reaches an engine on the machine's socket: nothing to do.
    Running(Facts),
    /// No engine answers; these steps give the machine one.
    ToDo {
        host: Host,
        recipe: Recipe,
        shell: Shell,
    },
    /// init cannot or will not act on this machine, and why.
    Refused(String),
}

/// What carrying out a machine's steps came to.
pub enum Outcome {
    /// The engine answers hoist now; how it was started.
    Done {
        facts: Facts,
        start: String,
        took: Duration,
    },
    Failed(String),
}

/// Looks at every machine of `fleet` in parallel: hoist's own engine connection first, and for
/// the machines it does not reach, the probe over ssh and the recipe.
pub async fn survey(fleet: &Fleet, timeout: Duration) -> anyhow::Result<Survey> {
    let conns = engine::connect_all(fleet, timeout).await?;
    let answered: Vec<Option<Facts>> = conns
        .results
        .iter()
        .map(|(_, r)| r.as_ref().ok().map(|e| e.facts.clone()))
        .collect();
    conns.close().await;
    let workdir = Workdir::new()
        .map_err(|e| anyhow::anyhow!("cannot create a private folder for ssh sockets: {e}"))?;
    let wd = &workdir;
    let states = futures_util::future::join_all(fleet.machines.iter().zip(answered).map(
        |(m, facts)| async move {
            match facts {
                Some(f) => State::Running(f),
                None => look(m, wd, timeout).await,
            }
        },
    ))
    .await;
    Ok(Survey {
        machines: fleet
            .machines
            .iter()
            .cloned()
            .zip(states)
            .map(|(machine, state)| Surveyed { machine, state })
            .collect(),
        _workdir: workdir,
    })
}

async fn look(machine: &Machine, workdir: &Workdir, timeout: Duration) -> State {
    let Address::Ssh(target) = &machine.address else {
        return State::Refused(format!(
            "this is the local engine ({}) and none answers there; init works over ssh: install {} on this computer yourself",
            machine.docker_socket, machine.engine
        ));
    };
    let shell = match tokio::time::timeout(timeout, Shell::open(target, workdir, timeout)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return State::Refused(e.to_string()),
        Err(_) => {
            return State::Refused(format!("no answer over ssh within {}s", timeout.as_secs()));
        }
    };
    let host = match shell.run(host::PROBE).await {
        Ok((0, out, _)) => host::parse(&out),
        Ok((code, out, err)) => Err(format!(
            "the probe failed (exit {code}): {}",
            last_lines(&format!("{out}{err}"))
        )),
        Err(e) => Err(format!("ssh: {e}")),
    };
    let host = match host {
        Ok(h) => h,
        Err(e) => {
            shell.close().await;
            return State::Refused(e);
        }
    };
    match recipe::recipe(&host, machine.engine, &machine.docker_socket) {
        Ok(recipe) => State::ToDo {
            host,
            recipe,
            shell,
        },
        Err(e) => {
            shell.close().await;
            State::Refused(e)
        }
    }
}

impl Survey {
    /// Closes every ssh session without doing anything (`--dry-run`, or the user said no).
    pub async fn close(self) {
        let Survey { machines, _workdir } = self;
        futures_util::future::join_all(machines.into_iter().filter_map(|m| match m.state {
            State::ToDo { shell, .. } => Some(shell.close()),
            _ => None,
        }))
        .await;
    }

    /// Carries out every machine's steps, machines in parallel, each step announced as it
    /// starts; returns each acted-on machine's outcome (in inventory order).
    pub async fn carry_out(self, timeout: Duration) -> Vec<(String, Outcome)> {
        let Survey { machines, _workdir } = self;
        futures_util::future::join_all(machines.into_iter().filter_map(|m| match m.state {
            State::ToDo { recipe, shell, .. } => {
                let machine = m.machine;
                Some(async move {
                    let outcome = apply(&machine, &recipe, shell, timeout).await;
                    (machine.name, outcome)
                })
            }
            _ => None,
        }))
        .await
    }
}

async fn apply(machine: &Machine, recipe: &Recipe, shell: Shell, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let name = &machine.name;
    for step in &recipe.steps {
        say!("{name}: {}", step.what);
        match shell.run(&step.command).await {
            Ok((0, _, _)) => {}
            Ok((code, out, err)) => {
                shell.close().await;
                return Outcome::Failed(format!(
                    "{} failed (exit {code}): {}\n  the command was: {}",
                    step.what,
                    last_lines(&format!("{out}{err}")),
                    step.command
                ));
            }
            Err(e) => {
                shell.close().await;
                return Outcome::Failed(format!("{}: ssh: {e}", step.what));
            }
        }
    }
    shell.close().await;
    if recipe.adds_group
        && let Address::Ssh(target) = &machine.address
    {
        // The next command must log in afresh to have the new group.
        crate::transport::end_kept_master(target, timeout).await;
    }
    // Proof that it worked: hoist's own connection, as `up` will make it.
    let fleet = Fleet {
        source: "machines init".to_string(),
        machines: vec![machine.clone()],
        mesh: None,
    };
    let conns = match engine::connect_all(&fleet, timeout).await {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("{e:#}")),
    };
    let result = match &conns.results[0].1 {
        Ok(e) => Ok(e.facts.clone()),
        Err(e) => Err(e.to_string()),
    };
    conns.close().await;
    match result {
        Ok(facts) => Outcome::Done {
            facts,
            start: recipe.start.clone(),
            took: started.elapsed(),
        },
        Err(e) => Outcome::Failed(format!(
            "every step ran, but hoist does not reach the engine on {}: {e}",
            machine.docker_socket
        )),
    }
}

/// The engine as a user names it: `docker 20.10.24+dfsg1`, `podman 4.3.1`.
pub fn engine_words(facts: &Facts) -> String {
    let kind = if facts.podman {
        EngineKind::Podman
    } else {
        EngineKind::Docker
    };
    format!("{kind} {}", facts.engine_version)
}

/// The last few lines of a command's output, for an error.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(5)..];
    if tail.is_empty() {
        "no output".to_string()
    } else {
        tail.join(" | ")
    }
}
