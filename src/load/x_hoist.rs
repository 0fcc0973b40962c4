//! The keys hoist reads under `x-hoist`, so a typo there is refused like one in a
//! Compose key — by `config` and `plan`, naming the file and the key — instead of
//! being ignored (Compose itself accepts anything under `x-*`).
//!
//! Only keys are checked here; what the values mean is for the readers of each
//! setting (`ingress::spec`, `mesh::spec`, `watch::autoscale`), which also refuse
//! unknown fields, so the two lists cannot silently drift apart.

use serde_json::Value;

type Fail = (String, String);

/// What may stand under a key.
enum Shape {
    /// Any value; its reader checks it.
    Value,
    /// A mapping with these keys (another value is its reader's to refuse).
    Map(&'static [(&'static str, Shape)]),
}
use Shape::{Map, Value as Any};

const HEALTH: Shape = Map(&[("path", Any), ("interval", Any), ("timeout", Any)]);

/// Top-level `x-hoist`.
const TOP: Shape = Map(&[
    (
        "ingress",
        Map(&[
            ("image", Any),
            ("http_port", Any),
            ("https_port", Any),
            ("tls", Any),
            ("email", Any),
            ("drain", Any),
            ("enabled", Any),
        ]),
    ),
    (
        "mesh",
        Map(&[("image", Any), ("enabled", Any), ("encrypt", Any)]),
    ),
]);

/// A service's `x-hoist`.
const SERVICE: Shape = Map(&[
    (
        "ingress",
        Map(&[
            ("hosts", Any),
            ("paths", Any),
            ("port", Any),
            ("health", HEALTH),
        ]),
    ),
    ("mesh", Any),
    (
        "autoscale",
        Map(&[("min", Any), ("max", Any), ("cpu", Any), ("cooldown", Any)]),
    ),
    ("backup", Map(&[("command", Any), ("timeout", Any)])),
]);

/// Checks the top-level `x-hoist` of one file and each service's.
pub fn keys(doc: &Value) -> Result<(), Fail> {
    if let Some(x) = doc.get("x-hoist") {
        check("x-hoist", x, &TOP)?;
    }
    if let Some(Value::Object(services)) = doc.get("services") {
        for (name, svc) in services {
            if let Some(x) = svc.get("x-hoist") {
                check(&format!("services.{name}.x-hoist"), x, &SERVICE)?;
            }
        }
    }
    Ok(())
}

fn check(path: &str, v: &Value, shape: &Shape) -> Result<(), Fail> {
    let Map(fields) = shape else { return Ok(()) };
    let Value::Object(m) = v else {
        if v.is_null() {
            return Ok(());
        }
        return Err((path.to_string(), format!("expected a mapping, got {v}")));
    };
    for (k, sub) in m {
        match fields.iter().find(|(name, _)| name == k) {
            Some((_, inner)) => check(&format!("{path}.{k}"), sub, inner)?,
            None => {
                let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
                let hint = match closest(k, &known) {
                    Some(c) => format!("did you mean {c:?}? "),
                    None => String::new(),
                };
                return Err((
                    path.to_string(),
                    format!(
                        "unknown key {k:?}: {hint}hoist reads {} here",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The known key a typo most likely meant: at most two edits away.
fn closest<'a>(typo: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edits(typo, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counting once (`hots` → `host`).
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Value {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn every_key_hoist_reads_passes() {
        let ok = doc(r#"
x-hoist:
  ingress: {image: caddy:2, http_port: 80, https_port: 443, tls: acme, email: a@b.c, drain: 1s, enabled: true}
  mesh: {image: haproxy, enabled: true, encrypt: true}
services:
  web:
    x-hoist:
      ingress: {hosts: [a.example], paths: [/], port: 80, health: {path: /h, interval: 1s, timeout: 1s}}
      mesh: false
      autoscale: {min: 1, max: 3, cpu: 50, cooldown: 30s}
  db:
    x-hoist: {mesh: true}
  plain: {image: x}
"#);
        assert_eq!(keys(&ok), Ok(()));
        assert_eq!(
            keys(&doc("x-hoist: {ingress: {}, mesh: {}}\nservices: {}\n")),
            Ok(())
        );
    }

    #[test]
    fn a_typo_is_refused_with_its_key_path() {
        let cases = [
            (
                "services: {web: {x-hoist: {ingress: {hots: [a]}}}}",
                "services.web.x-hoist.ingress",
                "unknown key \"hots\": did you mean \"hosts\"? hoist reads hosts, paths, port, health here",
            ),
            (
                "x-hoist: {ingres: {}}",
                "x-hoist",
                "unknown key \"ingres\": did you mean \"ingress\"? hoist reads ingress, mesh here",
            ),
            (
                "x-hoist: {ingress: {http-port: 80}}",
                "x-hoist.ingress",
                "unknown key \"http-port\": did you mean \"http_port\"? hoist reads image, http_port, https_port, tls, email, drain, enabled here",
            ),
            (
                "x-hoist: {mesh: {imag: x}}",
                "x-hoist.mesh",
                "unknown key \"imag\": did you mean \"image\"? hoist reads image, enabled, encrypt here",
            ),
            (
                "services: {web: {x-hoist: {ingress: {health: {pth: /}}}}}",
                "services.web.x-hoist.ingress.health",
                "unknown key \"pth\": did you mean \"path\"? hoist reads path, interval, timeout here",
            ),
            (
                "services: {web: {x-hoist: {autoscale: {max: 3, target: 50}}}}",
                "services.web.x-hoist.autoscale",
                "unknown key \"target\": hoist reads min, max, cpu, cooldown here",
            ),
            (
                "services: {web: {x-hoist: {autoscaling: {}}}}",
                "services.web.x-hoist",
                "unknown key \"autoscaling\": hoist reads ingress, mesh, autoscale, backup here",
            ),
            (
                "x-hoist: [ingress]",
                "x-hoist",
                "expected a mapping, got [\"ingress\"]",
            ),
        ];
        for (yaml, path, message) in cases {
            assert_eq!(
                keys(&doc(yaml)),
                Err((path.to_string(), message.to_string())),
                "{yaml}"
            );
        }
    }
}
