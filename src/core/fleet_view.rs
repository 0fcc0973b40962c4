//! The facts about a machine that scheduling looks at.
//!
//! They come from the inventory (name, labels) and from the engine (hostname, platform,
//! capacity). For a machine that could not be reached, the engine facts are unknown: `None`
//! here, which constraints treat as "might match" so that nothing is placed twice.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct MachineView {
    /// Inventory name: the key everything else uses.
    pub name: String,
    /// The engine host's hostname (`node.hostname`).
    pub hostname: Option<String>,
    /// Inventory labels (`node.labels.*`).
    pub labels: BTreeMap<String, String>,
    /// `node.platform.os`, e.g. `linux`.
    pub os: Option<String>,
    /// `node.platform.arch`, e.g. `x86_64` (`amd64`, `aarch64`, `arm64` are understood).
    pub arch: Option<String>,
    /// CPUs × 10⁹.
    pub nano_cpus: u64,
    /// Bytes.
    pub memory: u64,
}

impl MachineView {
    /// A machine with engine facts unknown and no capacity: what is known of an unreachable one.
    pub fn unknown(name: &str) -> Self {
        MachineView {
            name: name.to_string(),
            hostname: None,
            labels: BTreeMap::new(),
            os: None,
            arch: None,
            nano_cpus: 0,
            memory: 0,
        }
    }
}

/// `512MiB`, `1.5GiB`, `300B`: binary units, at most one decimal.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    fmt_decimal(value, UNITS[unit])
}

/// `2 CPUs`, `0.5 CPUs`, `1 CPU`.
pub fn fmt_cpus(nano_cpus: u64) -> String {
    let cpus = nano_cpus as f64 / 1e9;
    let unit = if nano_cpus == 1_000_000_000 {
        " CPU"
    } else {
        " CPUs"
    };
    fmt_decimal(cpus, unit)
}

fn fmt_decimal(value: f64, unit: &str) -> String {
    let tenths = (value * 10.0).round() as u64;
    if tenths % 10 == 0 {
        format!("{}{unit}", tenths / 10)
    } else {
        format!("{}.{}{unit}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(fmt_bytes(300), "300B");
        assert_eq!(fmt_bytes(512 << 20), "512MiB");
        assert_eq!(fmt_bytes(3 << 29), "1.5GiB");
        assert_eq!(fmt_bytes(8 << 30), "8GiB");
        assert_eq!(fmt_cpus(500_000_000), "0.5 CPUs");
        assert_eq!(fmt_cpus(1_000_000_000), "1 CPU");
        assert_eq!(fmt_cpus(4_000_000_000), "4 CPUs");
    }
}
