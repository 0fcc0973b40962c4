//! The container spec: what one replica runs, reduced to data that can be hashed and compared.
//!
//! The spec hash is hoist's whole notion of "changed": a container whose recorded hash equals
//! the hash of the spec it should run is left alone. The attribute diff exists so the plan can
//! say *why* a hash changed, without ever printing the value of an environment variable or a
//! secret.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Well-known attribute names. The adapter from the compose model should use these so that the
/// plan can explain changes; any other attribute is hashed too, and reported as `NAME changed`.
pub mod attr {
    /// Image reference as written (`app:1.2`, `registry/app@sha256:…`).
    pub const IMAGE: &str = "image";
    /// Image ID the reference resolved to (`sha256:…`), when known.
    pub const IMAGE_ID: &str = "image_id";
    /// Manifest digest (`sha256:…`) a registry tag was resolved to for this deploy: every
    /// machine pulls and runs exactly these bits, whatever the tag points at later.
    pub const IMAGE_DIGEST: &str = "image_digest";
    /// Digest of what a `build:` service's build reads (context files, Dockerfile, args,
    /// target): it changes before the image is rebuilt, so `plan` knows `up` will build anew.
    pub const BUILD_CONTEXT: &str = "build_context";
    /// Array of strings.
    pub const COMMAND: &str = "command";
    /// Array of strings.
    pub const ENTRYPOINT: &str = "entrypoint";
    /// Object name → value (values from `env_file` included). Sensitive.
    pub const ENVIRONMENT: &str = "environment";
    /// Object name → hash of the secret's content. Sensitive.
    pub const SECRETS: &str = "secrets";
    /// Object name → hash of the config's content.
    pub const CONFIGS: &str = "configs";
    /// Array of strings like `shop_data:/var/lib/postgresql/data` or `./conf:/etc/app:ro`.
    pub const MOUNTS: &str = "mounts";
    /// Array of strings like `8080:80/tcp`, `127.0.0.1:53:53/udp`, `80/tcp` (unpublished).
    pub const PORTS: &str = "ports";
    /// Object, opaque to the plan.
    pub const HEALTHCHECK: &str = "healthcheck";
    /// Object name → value (the user's labels, not hoist's own `io.hoist.*`).
    pub const LABELS: &str = "labels";
    /// Object, e.g. `{"memory": 536870912, "nano_cpus": 500000000}`.
    pub const RESOURCES: &str = "resources";
    /// String.
    pub const USER: &str = "user";
    /// Array of the ports the mesh forwards to (src/mesh); absent when the service is not meshed.
    pub const MESH: &str = "mesh";
    /// `true` when the mesh is encrypted (the replica publishes nothing for it and is reached
    /// through its machine's TLS gateway); absent otherwise.
    pub const MESH_ENCRYPT: &str = "mesh_encrypt";
    /// The ID of the key the spec's secret-bearing values were sealed with
    /// (`core::seal`); absent in a spec recorded in the clear by an older hoist.
    pub const SEAL: &str = "seal";
}

/// How the plan may talk about an attribute's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// Old and new values may be printed (`image app:1.2 → app:1.3`).
    Values,
    /// An object whose key names may be printed but never its values
    /// (`environment DB_URL changed`).
    KeysOnly,
    /// Only the attribute name may be printed (`command changed`).
    NameOnly,
}

/// The attributes whose values must never be printed, only the names of their keys.
pub const SENSITIVE: &[&str] = &[attr::ENVIRONMENT, attr::SECRETS];

use super::seal::SealKey;

/// The attributes whose values are sealed. Their key names stay readable (the plan names
/// them), their values never.
pub const SEALED: &[&str] = &[
    attr::ENVIRONMENT,
    attr::SECRETS,
    attr::CONFIGS,
    attr::HEALTHCHECK,
];

/// Attributes whose values are safe and short enough to print, in the order reasons are listed.
/// Attributes not in this table or [`KEYED`] are reported by name only, after them, sorted.
const RANKED: &[(&str, Disclosure)] = &[
    (attr::IMAGE, Disclosure::Values),
    (attr::IMAGE_ID, Disclosure::Values),
    (attr::IMAGE_DIGEST, Disclosure::Values),
    (attr::BUILD_CONTEXT, Disclosure::Values),
    (attr::COMMAND, Disclosure::NameOnly),
    (attr::ENTRYPOINT, Disclosure::NameOnly),
    (attr::ENVIRONMENT, Disclosure::KeysOnly),
    (attr::SECRETS, Disclosure::KeysOnly),
    (attr::CONFIGS, Disclosure::KeysOnly),
    (attr::MOUNTS, Disclosure::Values),
    (attr::PORTS, Disclosure::Values),
    (attr::HEALTHCHECK, Disclosure::NameOnly),
    (attr::LABELS, Disclosure::KeysOnly),
    (attr::RESOURCES, Disclosure::NameOnly),
    (attr::USER, Disclosure::Values),
    (attr::SEAL, Disclosure::Values),
];

/// Further attributes whose values are printed (short, never secret).
const SHOWN: &[&str] = &[
    "cap_add",
    "cap_drop",
    "hostname",
    "init",
    "network_mode",
    "networks",
    "platform",
    "privileged",
    "read_only",
    "restart",
    "shm_size",
    "stop_grace_period",
    "stop_signal",
    "working_dir",
];

/// Further attributes that are objects whose keys (not values) are printed.
const KEYED: &[&str] = &["extra_hosts", "sysctls", "ulimits"];

/// A printed value longer than this is summarised as `NAME changed`.
const MAX_SHOWN: usize = 60;

/// How the plan may talk about `name`.
pub fn disclosure(name: &str) -> Disclosure {
    if let Some((_, d)) = RANKED.iter().find(|(n, _)| *n == name) {
        *d
    } else if SHOWN.contains(&name) {
        Disclosure::Values
    } else if KEYED.contains(&name) {
        Disclosure::KeysOnly
    } else {
        Disclosure::NameOnly
    }
}

/// The fully resolved, canonical spec of one container: attribute → JSON value.
///
/// It holds what makes a container what it is (image and its ID, command, environment with
/// `env_file` contents, mounts, ports, healthcheck, labels, resource limits, user, …) and
/// nothing that must not recreate it (replica count, placement, update_config, depends_on,
/// the slot number). Secret values go in as hashes only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerSpec(Map<String, Value>);

impl ContainerSpec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder form of [`ContainerSpec::set`].
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.0.insert(name.to_string(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn attrs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The spec as compact JSON with every object's keys sorted: equal specs give equal text
    /// whatever order they were built in. This is also the form recorded on a container.
    pub fn canonical_json(&self) -> String {
        let value = canonical(&Value::Object(self.0.clone()));
        serde_json::to_string(&value).expect("a JSON value always serializes")
    }

    /// Reads a spec recorded by [`ContainerSpec::canonical_json`].
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The spec as it may be recorded and hashed: every value of the [`SEALED`] attributes
    /// (each value of an object, or the value itself) replaced by its seal under `key`, and
    /// the key's ID in [`attr::SEAL`]. Equal specs sealed with one key are equal; the result
    /// holds nothing from which a sealed value could be found or confirmed without the key.
    pub fn sealed(&self, key: &SealKey) -> ContainerSpec {
        let mut out = self.clone();
        for name in SEALED {
            let Some(value) = out.0.get_mut(*name) else {
                continue;
            };
            *value = match &*value {
                Value::Object(map) => Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), Value::String(key.seal(name, k, v))))
                        .collect(),
                ),
                other => Value::String(key.seal(name, "", other)),
            };
        }
        out.set(attr::SEAL, key.id());
        out
    }

    /// Lowercase hex SHA-256 of [`ContainerSpec::canonical_json`]. Of a [sealed] spec it is
    /// a function of the recorded label text alone, so it tells nothing the label does not.
    ///
    /// [sealed]: ContainerSpec::sealed
    pub fn hash(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Human reasons for going from `old` to `self`, one per changed attribute (or per changed
    /// key of a keyed attribute), in a fixed order. Values of [`SENSITIVE`] attributes, and of
    /// any attribute not known to be safe, are never included.
    pub fn changes_from(&self, old: &ContainerSpec) -> Vec<String> {
        let mut names: Vec<&str> = self
            .0
            .keys()
            .chain(old.0.keys())
            .map(String::as_str)
            .collect();
        names.sort_by_key(|n| (rank(n), *n));
        names.dedup();
        let mut reasons = Vec::new();
        let digests = (old.get(attr::IMAGE_DIGEST), self.get(attr::IMAGE_DIGEST));
        // Seals made with different keys (or none) cannot be compared: say why the spec reads
        // as changed once, instead of every sealed value.
        let resealed = old.get(attr::SEAL) != self.get(attr::SEAL);
        for name in names {
            let (before, after) = (old.get(name), self.get(name));
            if before == after || (resealed && SEALED.contains(&name)) {
                continue;
            }
            match name {
                attr::SEAL => reasons.push(match (before, after) {
                    (None, _) => "spec recorded in the clear by an older hoist: replaced once to \
                                  seal its values (docs/security.md)"
                        .to_string(),
                    (Some(b), Some(_)) => format!(
                        "spec sealed with key {}, which is not the machines' key now (it was \
                         lost, or they held different keys): replaced to reseal it",
                        shown(b)
                    ),
                    (Some(_), None) => "spec no longer sealed".to_string(),
                }),
                // A pinned image is one thing: its tag and the digest it was resolved to.
                attr::IMAGE if digests.0.is_some() || digests.1.is_some() => reasons.push(format!(
                    "image {} → {}",
                    pinned(before, digests.0),
                    pinned(after, digests.1)
                )),
                attr::IMAGE_DIGEST if old.get(attr::IMAGE) != self.get(attr::IMAGE) => {}
                // The same tag, another image: built (or loaded) again on this computer.
                attr::IMAGE_ID if old.get(attr::IMAGE) == self.get(attr::IMAGE) => {
                    let image = self.get(attr::IMAGE).map(shown).unwrap_or_default();
                    reasons.push(match before {
                        Some(b) => format!(
                            "image {image} rebuilt: {} → {}",
                            short_id(Some(b)),
                            short_id(after)
                        ),
                        None => format!("image {image} is now the local build {}", short_id(after)),
                    });
                }
                // Told with the image ID when both changed: a new context built a new image.
                attr::BUILD_CONTEXT if old.get(attr::IMAGE_ID) != self.get(attr::IMAGE_ID) => {}
                attr::BUILD_CONTEXT => {
                    let image = self.get(attr::IMAGE).map(shown).unwrap_or_default();
                    reasons.push(format!(
                        "image {image} will be rebuilt: its build context changed ({} → {})",
                        short_id(before),
                        short_id(after)
                    ));
                }
                attr::IMAGE_DIGEST => {
                    let image = self.get(attr::IMAGE).map(shown).unwrap_or_default();
                    reasons.push(match digests {
                        (Some(b), Some(a)) => format!(
                            "image {image} moved: {} → {}",
                            short_id(Some(b)),
                            short_id(Some(a))
                        ),
                        (None, a) => format!("image {image} pinned to {}", short_id(a)),
                        (b, None) => {
                            format!("image {image} no longer pinned (was {})", short_id(b))
                        }
                    });
                }
                _ => describe(name, before, after, &mut reasons),
            }
        }
        reasons
    }

    /// `app:1.2 (sha256:0123456789ab)` for an image pinned to a digest, else the image as
    /// written; None without an image.
    pub fn image_shown(&self) -> Option<String> {
        let image = self.get(attr::IMAGE)?;
        Some(pinned(Some(image), self.get(attr::IMAGE_DIGEST)))
    }
}

/// An image with the digest it is pinned to, if any.
fn pinned(image: Option<&Value>, digest: Option<&Value>) -> String {
    let image = image.map(shown).unwrap_or_else(|| "none".to_string());
    match digest {
        Some(d) => format!("{image} ({})", short_id(Some(d))),
        None => image,
    }
}

fn rank(name: &str) -> usize {
    RANKED
        .iter()
        .position(|(n, _)| *n == name)
        .unwrap_or(RANKED.len())
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn describe(name: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<String>) {
    match (disclosure(name), before, after) {
        (_, None, Some(_)) if name != attr::IMAGE_ID => out.push(format!("{name} added")),
        (_, Some(_), None) if name != attr::IMAGE_ID => out.push(format!("{name} removed")),
        (Disclosure::KeysOnly, Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                match (b.get(key), a.get(key)) {
                    (None, Some(_)) => out.push(format!("{name} {key} added")),
                    (Some(_), None) => out.push(format!("{name} {key} removed")),
                    (x, y) if x != y => out.push(format!("{name} {key} changed")),
                    _ => {}
                }
            }
        }
        (Disclosure::Values, Some(b), Some(a)) if name == attr::IMAGE => {
            out.push(format!("image {} → {}", shown(b), shown(a)));
        }
        (Disclosure::Values, b, a) if name == attr::IMAGE_ID => {
            out.push(format!("image ID {} → {}", short_id(b), short_id(a)));
        }
        (Disclosure::Values, Some(b), Some(a)) => {
            let (b, a) = (shown(b), shown(a));
            if b.chars().count() <= MAX_SHOWN && a.chars().count() <= MAX_SHOWN {
                out.push(format!("{name} changed: {b} → {a}"));
            } else {
                out.push(format!("{name} changed"));
            }
        }
        _ => out.push(format!("{name} changed")),
    }
}

/// A value as a user would write it: strings bare, lists joined by commas.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_string(),
        Value::Array(items) if items.is_empty() => "none".to_string(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// `sha256:0123456789ab…` shortened to 12 hex digits, as `docker images` does.
pub fn short_digest(id: &str) -> String {
    let (algo, hex) = id.split_once(':').unwrap_or(("sha256", id));
    format!("{algo}:{}", hex.get(..12).unwrap_or(hex))
}

fn short_id(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(id)) => short_digest(id),
        Some(other) => shown(other),
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_ignores_key_order_at_every_depth() {
        let a = ContainerSpec::new()
            .with("image", "app:1")
            .with("labels", json!({"a": "1", "b": {"x": 1, "y": 2}}));
        let b = ContainerSpec::new()
            .with("labels", json!({"b": {"y": 2, "x": 1}, "a": "1"}))
            .with("image", "app:1");
        assert_eq!(a.hash(), b.hash());
        assert_eq!(
            a.canonical_json(),
            r#"{"image":"app:1","labels":{"a":"1","b":{"x":1,"y":2}}}"#
        );
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn hash_changes_with_any_value_and_array_order() {
        let a = ContainerSpec::new().with("command", json!(["a", "b"]));
        let b = ContainerSpec::new().with("command", json!(["b", "a"]));
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn recorded_spec_round_trips() {
        let a = ContainerSpec::new()
            .with("image", "app:1")
            .with("environment", json!({"K": "v"}));
        let back = ContainerSpec::from_json(&a.canonical_json()).unwrap();
        assert_eq!(back.hash(), a.hash());
    }

    #[test]
    fn changes_are_ordered_and_never_leak_sensitive_values() {
        let old = ContainerSpec::new()
            .with("user", "1000")
            .with(
                "environment",
                json!({"DB_URL": "postgres://u:hunter2@db", "GONE": "x"}),
            )
            .with("secrets", json!({"db_password": "sha256:aaa"}))
            .with("image", "app:1.2")
            .with("x_custom", "secret-ish")
            .with("command", json!(["serve", "--token=abc"]));
        let new = ContainerSpec::new()
            .with("image", "app:1.3")
            .with(
                "environment",
                json!({"DB_URL": "postgres://u:swordfish@db", "FOO": "bar"}),
            )
            .with("secrets", json!({"db_password": "sha256:bbb"}))
            .with("user", "1001")
            .with("x_custom", "other")
            .with("command", json!(["serve", "--token=def"]))
            .with("ports", json!(["8080:80/tcp"]));
        let reasons = new.changes_from(&old);
        assert_eq!(
            reasons,
            [
                "image app:1.2 → app:1.3",
                "command changed",
                "environment DB_URL changed",
                "environment FOO added",
                "environment GONE removed",
                "secrets db_password changed",
                "ports added",
                "user changed: 1000 → 1001",
                "x_custom changed",
            ]
        );
        let all = reasons.join("\n");
        for secret in [
            "hunter2",
            "swordfish",
            "bar",
            "abc",
            "def",
            "sha256",
            "other",
        ] {
            assert!(!all.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn lists_print_as_written_and_long_values_are_summarised() {
        let old = ContainerSpec::new()
            .with("ports", json!(["8080:80/tcp", "443:443/tcp"]))
            .with("working_dir", "/a".repeat(40));
        let new = ContainerSpec::new()
            .with("ports", json!(["8081:80/tcp", "443:443/tcp"]))
            .with("working_dir", "/b");
        assert_eq!(
            new.changes_from(&old),
            [
                "ports changed: 8080:80/tcp, 443:443/tcp → 8081:80/tcp, 443:443/tcp",
                "working_dir changed"
            ]
        );
    }

    #[test]
    fn image_id_alone_reports_a_rebuilt_tag() {
        let old = ContainerSpec::new()
            .with("image", "app:latest")
            .with("image_id", format!("sha256:{}", "a".repeat(64)));
        let new = ContainerSpec::new()
            .with("image", "app:latest")
            .with("image_id", format!("sha256:{}", "b".repeat(64)));
        assert_eq!(
            new.changes_from(&old),
            ["image app:latest rebuilt: sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb"]
        );
    }

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes([b; crate::core::seal::KEY_LEN])
    }

    /// A spec with a password in its environment, a secret and a healthcheck.
    fn with_secrets(password: &str, secret_hash: &str) -> ContainerSpec {
        ContainerSpec::new()
            .with("image", "app:1")
            .with("command", json!(["serve"]))
            .with(
                "environment",
                json!({"DB_PASSWORD": password, "MODE": "prod", "EMPTY": null}),
            )
            .with(
                "secrets",
                json!({"/run/secrets/api_key": format!("sha256:{secret_hash} mode 444 uid 0 gid 0")}),
            )
            .with("healthcheck", json!({"test": ["CMD", "curl", "-u", format!("admin:{password}"), "http://localhost/"]}))
    }

    #[test]
    fn a_sealed_spec_holds_no_sensitive_value_and_compares_by_key_name() {
        let secret = "0123456789abcdef".repeat(4);
        let old = with_secrets("hunter2", &secret).sealed(&key(1));
        let text = old.canonical_json();
        for leaked in ["hunter2", "prod", secret.as_str(), "curl", "admin"] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
        }
        // What is not secret-bearing stays readable: the plan and other verbs use it.
        assert_eq!(old.get("image"), Some(&json!("app:1")));
        assert_eq!(old.get("command"), Some(&json!(["serve"])));
        assert_eq!(old.get(attr::SEAL), Some(&json!(key(1).id())));
        // Sealing is deterministic: an unchanged spec keeps its hash.
        assert_eq!(
            old.hash(),
            with_secrets("hunter2", &secret).sealed(&key(1)).hash()
        );
        let new = with_secrets("swordfish", &"f".repeat(64)).sealed(&key(1));
        assert_eq!(
            new.changes_from(&old),
            [
                "environment DB_PASSWORD changed",
                "secrets /run/secrets/api_key changed",
                "healthcheck changed",
            ]
        );
        assert_ne!(new.hash(), old.hash());
    }

    #[test]
    fn another_key_or_a_clear_spec_is_one_reason_not_every_value() {
        let spec = with_secrets("hunter2", &"a".repeat(64));
        let one = spec.sealed(&key(1));
        let two = spec.clone().with("user", "1000").sealed(&key(2));
        assert_eq!(
            two.changes_from(&one),
            [
                "user added",
                &format!(
                    "spec sealed with key {}, which is not the machines' key now (it was lost, \
                     or they held different keys): replaced to reseal it",
                    key(1).id()
                ),
            ]
        );
        assert_eq!(
            one.changes_from(&spec),
            [
                "spec recorded in the clear by an older hoist: replaced once to seal its values \
              (docs/security.md)"
            ]
        );
        assert_ne!(one.hash(), two.sealed(&key(1)).hash());
    }

    #[test]
    fn disclosure_table() {
        assert_eq!(disclosure("environment"), Disclosure::KeysOnly);
        assert_eq!(disclosure("secrets"), Disclosure::KeysOnly);
        assert_eq!(disclosure("healthcheck"), Disclosure::NameOnly);
        assert_eq!(disclosure("restart"), Disclosure::Values);
        assert_eq!(disclosure("anything_else"), Disclosure::NameOnly);
        for s in SENSITIVE {
            assert_ne!(disclosure(s), Disclosure::Values);
        }
    }
}
