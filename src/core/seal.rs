//! Sealing: the values of a container spec that may carry a secret (environment values, the
//! content of secrets and configs) are recorded on the machines only as keyed hashes.
//!
//! A container's recorded spec (`io.hoist.spec`) and spec hash are labels, and labels are read
//! by far more than hoist: `docker ps`, monitoring agents that export them as metric labels,
//! anything with read access to the engine's container list. A plain value there is a leaked
//! password; a plain SHA-256 of it lets a guessable value be confirmed offline. So each such
//! value is replaced by an HMAC-SHA-256 under a random key kept only on the machines
//! (`src/seal.rs`): equal values still compare equal (so the plan can say
//! `environment DB_PASSWORD changed`), and nothing can be learnt from the label without the key.

use hmac::{KeyInit, Mac};
use serde_json::Value;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Bytes of a sealing key.
pub const KEY_LEN: usize = 32;

/// A project's sealing key. Never printed: `Debug` shows only its ID.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; KEY_LEN]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", self.id())
    }
}

impl SealKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads the form [`SealKey::to_text`] writes: 64 hex digits, surrounding whitespace
    /// ignored.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != KEY_LEN * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "not a sealing key ({} characters; expected {} hex digits)",
                text.len(),
                KEY_LEN * 2
            ));
        }
        let mut out = [0u8; KEY_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("not a sealing key: {e}"))?;
        }
        Ok(Self(out))
    }

    /// The key as stored on a machine: hex and a newline.
    pub fn to_text(&self) -> String {
        let mut s = hex(&self.0);
        s.push('\n');
        s
    }

    /// A public name for the key (16 hex digits of a MAC of a fixed text): which key sealed
    /// a spec, told without telling the key.
    pub fn id(&self) -> String {
        hex(&self.mac(&[b"hoist sealing key id"])[..8])
    }

    /// `hmac:` and 32 hex digits (128 bits) for `value` of `key` in `attribute`. The attribute
    /// and key name are part of the input, so two variables holding the same value do not show
    /// equal seals.
    pub fn seal(&self, attribute: &str, key: &str, value: &Value) -> String {
        let text = serde_json::to_string(value).expect("a JSON value always serializes");
        let mac = self.mac(&[attribute.as_bytes(), key.as_bytes(), text.as_bytes()]);
        format!("hmac:{}", hex(&mac[..16]))
    }

    /// HMAC-SHA-256 of `parts`, each preceded by its length (no two inputs collide).
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn text_round_trips_and_bad_text_is_refused() {
        let k = key(7);
        assert_eq!(SealKey::from_text(&k.to_text()).unwrap(), k);
        assert_eq!(k.to_text().len(), 65);
        for bad in ["", "abc", &"g".repeat(64), &"0".repeat(63), &"0".repeat(66)] {
            assert!(SealKey::from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seals_depend_on_key_attribute_name_and_value() {
        let v = json!("hunter2");
        let a = key(1).seal("environment", "DB_PASSWORD", &v);
        assert!(a.starts_with("hmac:") && a.len() == 5 + 32, "{a}");
        assert_eq!(a, key(1).seal("environment", "DB_PASSWORD", &v));
        assert_ne!(a, key(2).seal("environment", "DB_PASSWORD", &v));
        assert_ne!(a, key(1).seal("environment", "OTHER", &v));
        assert_ne!(a, key(1).seal("secrets", "DB_PASSWORD", &v));
        assert_ne!(
            a,
            key(1).seal("environment", "DB_PASSWORD", &json!("hunter3"))
        );
        // Lengths are framed: moving a byte between parts changes the seal.
        assert_ne!(
            key(1).seal("environment", "AB", &json!("C")),
            key(1).seal("environment", "A", &json!("BC"))
        );
    }

    #[test]
    fn the_key_never_shows_in_debug_or_its_id() {
        let k = key(0xab);
        let shown = format!("{k:?} {}", k.id());
        assert!(!shown.contains("abab"), "{shown}");
        assert_eq!(k.id().len(), 16);
        assert_ne!(k.id(), key(0xac).id());
    }
}
