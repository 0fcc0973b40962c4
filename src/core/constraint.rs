//! Placement constraints and spread preferences, with Swarm's syntax and meaning.
//!
//! Users already know `node.labels.zone == eu` from Swarm; hoist keeps the syntax and the
//! matching rules (case-insensitive, a missing label never equals anything) and refuses, with
//! a message, what has no meaning on a hoist fleet (`node.role`, `node.id`, engine labels).

use super::fleet_view::MachineView;
use std::fmt;

/// What a constraint looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// `node.hostname`: the engine host's hostname.
    Hostname,
    /// `node.labels.<name>`: an inventory label.
    Label(String),
    /// `node.platform.os`.
    Os,
    /// `node.platform.arch`.
    Arch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
}

/// One parsed `deploy.placement.constraints` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub key: Key,
    pub op: Op,
    pub value: String,
    key_text: String,
}

/// Why a constraint or preference was refused; `Display` is the whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConstraintError {
    /// The entry as written.
    pub text: String,
    pub reason: String,
}

impl fmt::Display for ConstraintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.text, self.reason)
    }
}

const KNOWN_KEYS: &str = "node.hostname, node.labels.<name>, node.platform.os, node.platform.arch";

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, ConstraintError> {
        let fail = |reason: String| ConstraintError {
            text: text.to_string(),
            reason,
        };
        let (at, op) = match (text.find("=="), text.find("!=")) {
            (Some(e), Some(n)) if n < e => (n, Op::Ne),
            (Some(e), _) => (e, Op::Eq),
            (None, Some(n)) => (n, Op::Ne),
            (None, None) => {
                return Err(fail(
                    "expected `==` or `!=`, as in `node.labels.zone == eu`".into(),
                ));
            }
        };
        let key_text = text[..at].trim();
        let value = text[at + 2..].trim();
        if key_text.is_empty() {
            return Err(fail("missing key before the operator".into()));
        }
        if value.is_empty() {
            return Err(fail("missing value after the operator".into()));
        }
        if value.contains("==") || value.contains("!=") || value.starts_with('=') {
            return Err(fail("more than one operator".into()));
        }
        if key_text.contains(char::is_whitespace) {
            return Err(fail(format!("`{key_text}` is not a key ({KNOWN_KEYS})")));
        }
        let lower = key_text.to_ascii_lowercase();
        let key = match lower.as_str() {
            "node.hostname" => Key::Hostname,
            "node.platform.os" => Key::Os,
            "node.platform.arch" => Key::Arch,
            "node.role" => {
                return Err(fail(
                    "node.role has no meaning in hoist: there are no manager or worker machines; \
                     put a label on the machines in the inventory and use node.labels.<name>"
                        .into(),
                ));
            }
            "node.id" => {
                return Err(fail(
                    "hoist machines have no node ID; use node.hostname".into(),
                ));
            }
            _ => match key_text.split_at_checked("node.labels.".len()) {
                Some((prefix, name)) if prefix.eq_ignore_ascii_case("node.labels.") => {
                    if name.is_empty() {
                        return Err(fail("missing label name after node.labels.".into()));
                    }
                    Key::Label(name.to_string())
                }
                _ => {
                    return Err(fail(format!(
                        "unknown key `{key_text}` (hoist knows {KNOWN_KEYS})"
                    )));
                }
            },
        };
        Ok(Constraint {
            key,
            op,
            value: value.to_string(),
            key_text: key_text.to_string(),
        })
    }

    /// Whether the machine meets the constraint; `None` when the fact it needs is unknown
    /// (an unreachable machine's hostname or platform).
    pub fn matches(&self, machine: &MachineView) -> Option<bool> {
        let fact = match &self.key {
            Key::Hostname => machine.hostname.as_deref().map(str::to_ascii_lowercase),
            Key::Os => machine.os.as_deref().map(str::to_ascii_lowercase),
            Key::Arch => machine.arch.as_deref().map(normalize_arch),
            // A missing label is a known fact: it equals nothing.
            Key::Label(name) => Some(
                machine
                    .labels
                    .get(name)
                    .map(|v| v.to_ascii_lowercase())
                    .unwrap_or_default(),
            ),
        };
        let fact = fact?;
        let wanted = match &self.key {
            Key::Arch => normalize_arch(&self.value),
            _ => self.value.to_ascii_lowercase(),
        };
        let equal = !fact.is_empty() && fact == wanted;
        Some(match self.op {
            Op::Eq => equal,
            Op::Ne => !equal,
        })
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Eq => "==",
            Op::Ne => "!=",
        };
        write!(f, "{} {op} {}", self.key_text, self.value)
    }
}

/// Engines and users spell architectures differently (`uname -m` vs Go's GOARCH).
fn normalize_arch(arch: &str) -> String {
    match arch.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64".to_string(),
        "aarch64" | "arm64" => "arm64".to_string(),
        "armv7l" | "armhf" | "arm" => "arm".to_string(),
        other => other.to_string(),
    }
}

/// Parses a `spread` preference (`node.labels.zone`) into the label name it spreads over.
pub fn parse_spread(text: &str) -> Result<String, ConstraintError> {
    let fail = |reason: &str| ConstraintError {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let key = text.trim();
    match key.split_at_checked("node.labels.".len()) {
        Some((prefix, name)) if prefix.eq_ignore_ascii_case("node.labels.") && !name.is_empty() => {
            Ok(name.to_string())
        }
        _ => Err(fail(
            "spread works over machine labels only: write node.labels.<name>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> MachineView {
        let mut m = MachineView::unknown("m1");
        m.hostname = Some("Box-1".into());
        m.os = Some("linux".into());
        m.arch = Some("x86_64".into());
        m.labels.insert("zone".into(), "eu".into());
        m
    }

    #[test]
    fn parses_swarm_syntax() {
        let c = Constraint::parse("node.labels.zone==eu").unwrap();
        assert_eq!(
            (c.key.clone(), c.op, c.value.as_str()),
            (Key::Label("zone".into()), Op::Eq, "eu")
        );
        assert_eq!(c.to_string(), "node.labels.zone == eu");
        let c = Constraint::parse("  node.hostname  !=  box-2 ").unwrap();
        assert_eq!(
            (c.key, c.op, c.value.as_str()),
            (Key::Hostname, Op::Ne, "box-2")
        );
        assert_eq!(
            Constraint::parse("node.platform.os == linux").unwrap().key,
            Key::Os
        );
        assert_eq!(
            Constraint::parse("node.platform.arch == arm64")
                .unwrap()
                .key,
            Key::Arch
        );
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let cases = [
            (
                "node.labels.zone = eu",
                "`node.labels.zone = eu`: expected `==` or `!=`, as in `node.labels.zone == eu`",
            ),
            (
                "node.labels.zone",
                "`node.labels.zone`: expected `==` or `!=`, as in `node.labels.zone == eu`",
            ),
            ("== eu", "`== eu`: missing key before the operator"),
            (
                "node.hostname ==",
                "`node.hostname ==`: missing value after the operator",
            ),
            (
                "node.hostname == a == b",
                "`node.hostname == a == b`: more than one operator",
            ),
            (
                "node.hostname === a",
                "`node.hostname === a`: more than one operator",
            ),
            (
                "node.labels. == x",
                "`node.labels. == x`: missing label name after node.labels.",
            ),
            (
                "node.role == manager",
                "`node.role == manager`: node.role has no meaning in hoist: there are no manager or worker machines; put a label on the machines in the inventory and use node.labels.<name>",
            ),
            (
                "node.id == abc",
                "`node.id == abc`: hoist machines have no node ID; use node.hostname",
            ),
            (
                "engine.labels.disk == ssd",
                "`engine.labels.disk == ssd`: unknown key `engine.labels.disk` (hoist knows node.hostname, node.labels.<name>, node.platform.os, node.platform.arch)",
            ),
            (
                "node.zone == eu",
                "`node.zone == eu`: unknown key `node.zone` (hoist knows node.hostname, node.labels.<name>, node.platform.os, node.platform.arch)",
            ),
            (
                "node labels == eu",
                "`node labels == eu`: `node labels` is not a key (node.hostname, node.labels.<name>, node.platform.os, node.platform.arch)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                Constraint::parse(text).unwrap_err().to_string(),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn matching_follows_swarm() {
        let m = machine();
        let cases = [
            ("node.hostname == box-1", Some(true)),
            ("node.hostname != BOX-1", Some(false)),
            ("node.labels.zone == EU", Some(true)),
            ("node.labels.zone != eu", Some(false)),
            ("node.labels.rack == r1", Some(false)),
            ("node.labels.rack != r1", Some(true)),
            ("node.platform.os == linux", Some(true)),
            ("node.platform.arch == amd64", Some(true)),
            ("node.platform.arch == x86_64", Some(true)),
            ("node.platform.arch != arm64", Some(true)),
        ];
        for (text, want) in cases {
            assert_eq!(Constraint::parse(text).unwrap().matches(&m), want, "{text}");
        }
        let unknown = MachineView::unknown("m9");
        assert_eq!(
            Constraint::parse("node.hostname == x")
                .unwrap()
                .matches(&unknown),
            None
        );
        assert_eq!(
            Constraint::parse("node.labels.zone == eu")
                .unwrap()
                .matches(&unknown),
            Some(false)
        );
    }

    #[test]
    fn spread_preferences() {
        assert_eq!(parse_spread("node.labels.zone").unwrap(), "zone");
        assert_eq!(
            parse_spread("node.hostname").unwrap_err().to_string(),
            "`node.hostname`: spread works over machine labels only: write node.labels.<name>"
        );
        assert!(parse_spread("node.labels.").is_err());
    }
}
