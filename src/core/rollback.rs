//! `hoist rollback` as a plan: which slot goes back to which kept release, decided from what
//! the engines report, before anything is touched. Pure, like the rest of the core.
//!
//! Which stopped container is a slot's previous release is decided once, where `up` decides
//! it (`pipeline::observed` sets the previous releases aside); here the newest of a slot's
//! kept releases is the one it goes back to. Rolling back twice returns to where you were:
//! after a rollback the replaced release is the stopped one.

use super::observed::{Slot, SlotName};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// One container of a slot, as much as the rollback needs of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Release {
    pub machine: String,
    pub id: String,
    pub name: String,
    pub service: String,
    #[serde(serialize_with = "slot_label")]
    pub slot: Slot,
    /// `io.hoist.release`: the deploy that created it.
    pub release: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// It publishes host ports: it leaves before its previous release starts (see
    /// [`Swap::stop_first`]).
    pub fixed_ports: bool,
}

fn slot_label<S: serde::Serializer>(slot: &Slot, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&slot.label_value())
}

/// A slot switched from its current release back to its previous one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Swap {
    pub current: Release,
    pub previous: Release,
}

impl Swap {
    /// Stop the current replica before the previous one starts when it publishes host ports
    /// (a port written in the file cannot be held twice; the balancers drain it first).
    /// Otherwise the previous one starts first and proves itself ready.
    pub fn stop_first(&self) -> bool {
        self.current.fixed_ports
    }

    /// `web.1@m2`, as progress and errors name the slot.
    pub fn key(&self) -> String {
        format!(
            "{}.{}@{}",
            self.current.service,
            self.current.slot.label_value(),
            self.current.machine
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RollbackPlan {
    /// In the order they are carried out: by service, machine, slot.
    pub swaps: Vec<Swap>,
    /// Slots that have no previous release while others of their service go back (or whose
    /// service was named): `service.slot@machine`. They stay on their current release.
    pub left: Vec<String>,
}

/// The rollback of `services` (every service when empty): each current replica whose slot
/// keeps a previous release goes back to the newest one.
pub fn plan(current: &[Release], kept: &[Release], services: &[String]) -> RollbackPlan {
    let wanted = |service: &str| services.is_empty() || services.iter().any(|s| s == service);
    let mut newest: BTreeMap<(&str, &str, &Slot), &Release> = BTreeMap::new();
    for k in kept {
        let key = (k.service.as_str(), k.machine.as_str(), &k.slot);
        if newest
            .get(&key)
            .is_none_or(|n| (n.created, &n.id) < (k.created, &k.id))
        {
            newest.insert(key, k);
        }
    }
    let mut swaps = Vec::new();
    let mut without: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in current.iter().filter(|c| wanted(&c.service)) {
        match newest.get(&(c.service.as_str(), c.machine.as_str(), &c.slot)) {
            Some(previous) => swaps.push(Swap {
                current: c.clone(),
                previous: (*previous).clone(),
            }),
            None => without.entry(&c.service).or_default().push(format!(
                "{}.{}@{}",
                c.service,
                c.slot.label_value(),
                c.machine
            )),
        }
    }
    swaps.sort_by(|a, b| {
        (&a.current.service, &a.current.machine, &a.current.slot).cmp(&(
            &b.current.service,
            &b.current.machine,
            &b.current.slot,
        ))
    });
    // A service never updated and not named simply has nothing to roll back.
    let going: BTreeSet<&str> = swaps.iter().map(|s| s.current.service.as_str()).collect();
    let mut left: Vec<String> = without
        .into_iter()
        .filter(|(service, _)| services.iter().any(|s| s == service) || going.contains(service))
        .flat_map(|(_, slots)| slots)
        .collect();
    left.sort();
    RollbackPlan { swaps, left }
}

impl RollbackPlan {
    pub fn has_changes(&self) -> bool {
        !self.swaps.is_empty()
    }

    /// What `hoist rollback` will do, grouped like `hoist plan`: service, machine, slot.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let mut service = None;
        let mut machine = None;
        for s in &self.swaps {
            if service != Some(&s.current.service) {
                if service.is_some() {
                    out.push('\n');
                }
                let _ = writeln!(out, "{}", s.current.service);
                service = Some(&s.current.service);
                machine = None;
            }
            if machine != Some(&s.current.machine) {
                let _ = writeln!(out, "  {}", s.current.machine);
                machine = Some(&s.current.machine);
            }
            let _ = writeln!(
                out,
                "    « rollback {}: release {} → {} (start {}, stop {}{})",
                SlotName(&s.current.service, &s.current.slot),
                s.current.release,
                s.previous.release,
                s.previous.name,
                s.current.name,
                if s.stop_first() {
                    "; stop-first: it publishes host ports"
                } else {
                    ""
                }
            );
        }
        if !self.swaps.is_empty() {
            out.push('\n');
        }
        if self.swaps.is_empty() {
            out.push_str("No previous release to roll back to.\n");
        } else {
            let _ = writeln!(out, "Rollback: {} to switch back.", self.swaps.len());
        }
        if !self.left.is_empty() {
            let _ = writeln!(
                out,
                "warning: no previous release is kept for {} (never replaced, or its previous \
                 release was removed); they stay on their current release",
                self.left.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(service: &str, slot: u32, machine: &str, release: &str, created: i64) -> Release {
        Release {
            machine: machine.into(),
            id: format!("{service}{slot}{machine}{release}"),
            name: format!("p-{service}-{slot}-{release}"),
            service: service.into(),
            slot: Slot::Replica(slot),
            release: release.into(),
            created,
            fixed_ports: false,
        }
    }

    #[test]
    fn each_slot_goes_back_to_its_newest_kept_release() {
        let current = [rel("web", 1, "m1", "r3", 30), rel("web", 2, "m2", "r3", 30)];
        let kept = [
            rel("web", 1, "m1", "r1", 10),
            rel("web", 1, "m1", "r2", 20),
            rel("web", 2, "m2", "r2", 20),
        ];
        let p = plan(&current, &kept, &[]);
        let back: Vec<_> = p
            .swaps
            .iter()
            .map(|s| (s.key(), s.previous.release.as_str()))
            .collect();
        assert_eq!(
            back,
            [
                ("web.1@m1".to_string(), "r2"),
                ("web.2@m2".to_string(), "r2")
            ]
        );
        assert!(p.left.is_empty());
        assert_eq!(
            p.render_text(),
            "web\n  m1\n    « rollback web.1: release r3 → r2 (start p-web-1-r2, stop p-web-1-r3)\n  m2\n    « rollback web.2: release r3 → r2 (start p-web-2-r2, stop p-web-2-r3)\n\nRollback: 2 to switch back.\n"
        );
    }

    #[test]
    fn a_kept_release_on_another_machine_is_not_this_slots() {
        // The slot moved from m1 to m2: the copy left on m1 is no previous release of m2's.
        let p = plan(
            &[rel("web", 1, "m2", "r2", 20)],
            &[rel("web", 1, "m1", "r1", 10)],
            &[],
        );
        assert!(p.swaps.is_empty());
        assert!(
            p.left.is_empty(),
            "web was not named and nothing of it goes back"
        );
        assert!(!p.has_changes());
        assert_eq!(p.render_text(), "No previous release to roll back to.\n");
    }

    #[test]
    fn slots_left_behind_are_named_and_only_named_services_go_back() {
        let current = [
            rel("web", 1, "m1", "r2", 20),
            rel("web", 2, "m2", "r2", 20),
            rel("api", 1, "m1", "r2", 20),
        ];
        let kept = [rel("web", 1, "m1", "r1", 10), rel("api", 1, "m1", "r1", 10)];
        let p = plan(&current, &kept, &["web".to_string()]);
        assert_eq!(p.swaps.len(), 1);
        assert_eq!(p.swaps[0].key(), "web.1@m1");
        assert_eq!(p.left, ["web.2@m2"]);
        assert!(
            p.render_text()
                .contains("warning: no previous release is kept for web.2@m2")
        );
        // A service named that has nothing kept anywhere is reported too.
        let p = plan(&current[..2], &[], &["web".to_string()]);
        assert_eq!(p.left, ["web.1@m1", "web.2@m2"]);
    }

    #[test]
    fn a_fixed_host_port_means_stop_first() {
        let mut current = rel("db", 1, "m1", "r2", 20);
        current.fixed_ports = true;
        let p = plan(&[current], &[rel("db", 1, "m1", "r1", 10)], &[]);
        assert!(p.swaps[0].stop_first());
        assert!(
            p.render_text()
                .contains("stop-first: it publishes host ports")
        );
    }
}
