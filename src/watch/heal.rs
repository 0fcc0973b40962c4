//! Healing decisions that need memory between rounds: when an unreachable machine counts as
//! lost, when a machine that came back is trusted again, and how long a slot that keeps
//! failing waits before the next try. Pure: the caller passes the time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// What watch knows of one machine's answers.
#[derive(Debug, Clone)]
struct Reachability {
    last_ok: Instant,
    down: bool,
    lost: bool,
    /// Rounds answered in a row since it was lost.
    ok_rounds: u32,
}

/// Every machine's reachability over time.
pub struct Machines {
    grace: Duration,
    trust_after: u32,
    by_name: BTreeMap<String, Reachability>,
}

impl Machines {
    /// `grace`: how long a machine may not answer before it is lost. `trust_after`: how many
    /// rounds in a row a lost machine must answer before its containers count again (its
    /// surplus replicas are then removed) — a flapping machine stays lost.
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        grace: Duration,
        trust_after: u32,
        now: Instant,
    ) -> Machines {
        Machines {
            grace,
            trust_after,
            by_name: names
                .into_iter()
                .map(|n| {
                    (
                        n.to_string(),
                        Reachability {
                            last_ok: now,
                            down: false,
                            lost: false,
                            ok_rounds: 0,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Takes one round's answers (machine → Ok, or why not) and returns what changed, as log
    /// lines.
    pub fn update(
        &mut self,
        now: Instant,
        answers: &BTreeMap<String, Result<(), String>>,
    ) -> Vec<String> {
        let mut log = Vec::new();
        for (name, r) in self.by_name.iter_mut() {
            match answers.get(name) {
                Some(Ok(())) => {
                    r.last_ok = now;
                    if r.down {
                        r.down = false;
                        log.push(if r.lost {
                            format!(
                                "{name} answers again; still lost until it answers {} rounds in a row",
                                self.trust_after
                            )
                        } else {
                            format!("{name} answers again")
                        });
                    }
                    if r.lost {
                        r.ok_rounds += 1;
                        if r.ok_rounds >= self.trust_after {
                            r.lost = false;
                            r.ok_rounds = 0;
                            log.push(format!(
                                "{name} is back (answered {} rounds in a row): its containers count again, surplus replicas will be removed",
                                self.trust_after
                            ));
                        }
                    }
                }
                other => {
                    let why = match other {
                        Some(Err(e)) => e.as_str(),
                        _ => "not observed",
                    };
                    r.ok_rounds = 0;
                    if !r.down {
                        r.down = true;
                        log.push(format!("{name} does not answer: {why}"));
                    }
                    let silent = now.duration_since(r.last_ok);
                    if !r.lost && silent >= self.grace {
                        r.lost = true;
                        log.push(format!(
                            "{name} is lost: no answer for {:.1}s (grace {:.1}s); its stateless replicas go to other machines",
                            silent.as_secs_f64(),
                            self.grace.as_secs_f64()
                        ));
                    }
                }
            }
        }
        log
    }

    /// Machines lost: unreachable past the grace period, or back but not trusted yet.
    pub fn lost(&self) -> BTreeSet<String> {
        self.by_name
            .iter()
            .filter(|(_, r)| r.lost)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Lost machines that answer but are not trusted yet: their containers stay unseen, so
    /// nothing is removed there while they may flap.
    pub fn on_probation(&self) -> BTreeMap<String, String> {
        self.by_name
            .iter()
            .filter(|(_, r)| r.lost && !r.down)
            .map(|(n, r)| {
                (
                    n.clone(),
                    format!(
                        "lost, answering again ({} of {} rounds before it is trusted)",
                        r.ok_rounds, self.trust_after
                    ),
                )
            })
            .collect()
    }
}

/// Exponential backoff per slot: a slot that needs healing again soon after the last try
/// waits `base`, then twice as long each time, up to `max`; a slot quiet for `reset` starts over.
pub struct Backoff {
    base: Duration,
    max: Duration,
    reset: Duration,
    slots: HashMap<String, (u32, Instant)>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, reset: Duration) -> Backoff {
        Backoff {
            base,
            max,
            reset,
            slots: HashMap::new(),
        }
    }

    /// `None` when `slot` may be worked on now, else how long it still waits.
    pub fn wait(&mut self, slot: &str, now: Instant) -> Option<Duration> {
        let (tries, last) = *self.slots.get(slot)?;
        if now.duration_since(last) >= self.reset {
            self.slots.remove(slot);
            return None;
        }
        let delay = self
            .base
            .saturating_mul(1u32 << (tries - 1).min(16))
            .min(self.max);
        (last + delay).checked_duration_since(now)
    }

    /// Records a try on `slot`.
    pub fn tried(&mut self, slot: &str, now: Instant) {
        let e = self.slots.entry(slot.to_string()).or_insert((0, now));
        e.0 += 1;
        e.1 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(down: &[&str]) -> BTreeMap<String, Result<(), String>> {
        ["m1", "m2"]
            .iter()
            .map(|m| {
                let r = if down.contains(m) {
                    Err("timeout".to_string())
                } else {
                    Ok(())
                };
                (m.to_string(), r)
            })
            .collect()
    }

    #[test]
    fn lost_after_grace_trusted_after_rounds() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut m = Machines::new(["m1", "m2"], s(3), 2, t0);
        m.update(t0 + s(1), &answers(&[]));
        let log = m.update(t0 + s(2), &answers(&["m2"]));
        assert_eq!(log, ["m2 does not answer: timeout"]);
        assert!(m.lost().is_empty());
        m.update(t0 + s(4), &answers(&["m2"]));
        assert_eq!(m.lost(), BTreeSet::from(["m2".to_string()]));
        // Back for one round: still lost, on probation; flaps: probation starts over.
        m.update(t0 + s(5), &answers(&[]));
        assert!(m.on_probation().contains_key("m2"));
        m.update(t0 + s(6), &answers(&["m2"]));
        m.update(t0 + s(7), &answers(&[]));
        assert!(m.lost().contains("m2"));
        let log = m.update(t0 + s(8), &answers(&[]));
        assert!(log[0].starts_with("m2 is back"), "{log:?}");
        assert!(m.lost().is_empty() && m.on_probation().is_empty());
    }

    #[test]
    fn failing_slots_back_off_exponentially() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(8), s(60));
        assert_eq!(b.wait("web.1", t0), None);
        b.tried("web.1", t0);
        assert_eq!(b.wait("web.1", t0), Some(s(1)));
        b.tried("web.1", t0 + s(1));
        assert_eq!(b.wait("web.1", t0 + s(2)), Some(s(1)));
        b.tried("web.1", t0 + s(3));
        b.tried("web.1", t0 + s(7));
        b.tried("web.1", t0 + s(15));
        assert_eq!(b.wait("web.1", t0 + s(15)), Some(s(8)), "capped");
        assert_eq!(
            b.wait("web.1", t0 + s(80)),
            None,
            "quiet long enough: starts over"
        );
    }
}
