//! YAML text → a JSON-like tree, the way compose-go reads it.
//!
//! Reads every document of a file, applies merge keys (`<<`, also with a list of maps),
//! keeps the Compose tags `!reset` / `!override` as marker objects for the merge stage, and
//! stops alias bombs with a node budget (serde_yaml_ng replays aliases without a limit).

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

/// Marker key for a `!reset` node: `{"!reset": value}`.
pub const RESET: &str = "!reset";
/// Marker key for an `!override` node: `{"!override": value}`.
pub const OVERRIDE: &str = "!override";

/// Whether an object key is one of the tag markers above.
pub fn is_tag_key(k: &str) -> bool {
    k == RESET || k == OVERRIDE
}

/// The tag marker of a node, if it is one.
pub fn tag_of(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    let (k, inner) = m.iter().next()?;
    is_tag_key(k).then_some((k.as_str(), inner))
}

/// Parses all documents of `text`. A file of only comments gives no document; an
/// explicit `null` document is refused as the reference does.
/// Errors are `line L column C: message`.
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    let budget = Cell::new(1_000_000usize.saturating_add(text.len().saturating_mul(50)));
    let mut docs = Vec::new();
    let text = yaml11_octals(text);
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let seed = Node { budget: &budget };
        // The document iterator repeats a syntax error forever: stop at the first one.
        let v = seed.deserialize(doc).map_err(|e| {
            let msg = e.to_string();
            match e.location() {
                Some(l) => format!("line {} column {}: {msg}", l.line(), l.column()),
                None => msg,
            }
        })?;
        if !v.is_null() {
            docs.push(v);
        } else if !is_blank(&text) {
            return Err("top-level object must be a mapping".to_string());
        }
    }
    Ok(docs)
}

/// Whether a YAML stream holds nothing but comments, blank lines and document markers.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    })
}

/// compose-go reads YAML with YAML 1.1's integers, where `0400` is octal (256);
/// serde_yaml_ng follows YAML 1.2, where it is 400. File modes (`mode: 0400`) are
/// the common case. This rewrites plain (unquoted) mapping and sequence values
/// made only of octal digits with a leading zero to YAML 1.2's `0o400`, outside
/// block scalars, so both readers agree.
fn yaml11_octals(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    // Indentation of the line that opened a block scalar (`key: |`), while in one.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start().len();
        if let Some(open) = block {
            if body.trim().is_empty() || indent > open {
                out.push_str(line);
                continue;
            }
            block = None;
        }
        let trimmed = body.trim_end();
        let value_start = trimmed
            .rfind(": ")
            .map(|i| i + 2)
            .or_else(|| trimmed.trim_start().starts_with("- ").then(|| indent + 2));
        if let Some(start) = value_start {
            let value = trimmed[start..].trim_start();
            if value.starts_with(['|', '>']) {
                block = Some(indent);
            } else if value.len() >= 2
                && value.starts_with('0')
                && value.bytes().all(|b| (b'0'..=b'7').contains(&b))
            {
                let at = trimmed.len() - value.len();
                out.push_str(&trimmed[..at]);
                out.push_str("0o");
                out.push_str(&value[1..]);
                out.push_str(&line[trimmed.len()..]);
                changed = true;
                continue;
            }
        }
        out.push_str(line);
    }
    if changed {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[derive(Clone, Copy)]
struct Node<'a> {
    budget: &'a Cell<usize>,
}

impl Node<'_> {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        let left = self.budget.get();
        if left == 0 {
            return Err(E::custom(
                "document contains excessive aliasing (alias bomb?)",
            ));
        }
        self.budget.set(left - 1);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn key_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML node")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.spend()?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut out = Map::new();
        let mut merges: Vec<Value> = Vec::new();
        while let Some(k) = map.next_key_seed(self)? {
            let v = map.next_value_seed(self)?;
            let k = key_string(k);
            if k == "<<" {
                merges.push(v);
                continue;
            }
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!(
                    "mapping key {k:?} already defined"
                )));
            }
            out.insert(k, v);
        }
        for m in merges {
            let sources = match m {
                Value::Array(items) => items,
                other => vec![other],
            };
            for src in sources {
                let Value::Object(src) = src else {
                    return Err(de::Error::custom(
                        "map merge requires map or sequence of maps as the value",
                    ));
                };
                for (k, v) in src {
                    out.entry(k).or_insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, variant): (String, _) = data.variant()?;
        let inner = variant.newtype_variant_seed(self)?;
        let tag = tag.trim_start_matches('!');
        match tag {
            "reset" => Ok(marker(RESET, inner)),
            "override" => Ok(marker(OVERRIDE, inner)),
            _ => Ok(inner),
        }
    }
}

fn marker(key: &str, inner: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), inner);
    Value::Object(m)
}

#[cfg(test)]
mod octal_tests {
    use super::*;

    #[test]
    fn leading_zero_integers_are_octal_as_in_compose() {
        let docs = parse("a:\n  mode: 0400\n  b: '0400'\n  c: 0\n  d: 089\n  l:\n    - 0755\n  s: |\n    mode: 0400\n").unwrap();
        let a = &docs[0]["a"];
        assert_eq!(a["mode"], 256);
        assert_eq!(a["b"], "0400");
        assert_eq!(a["c"], 0);
        assert_eq!(a["l"][0], 493);
        assert_eq!(a["s"], "mode: 0400\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keys_and_tags() {
        let docs = parse(
            "a: &x {p: 1, q: 1}\nb: {<<: *x, q: 2}\nc: {<<: [{r: 1}, {r: 2, s: 2}]}\nd: !reset []\ne: !override {z: 1}\n",
        )
        .unwrap();
        assert_eq!(
            docs[0],
            json!({"a": {"p": 1, "q": 1}, "b": {"q": 2, "p": 1}, "c": {"r": 1, "s": 2},
                   "d": {"!reset": []}, "e": {"!override": {"z": 1}}})
        );
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..9 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            let items = vec![format!("*{prev}"); 10].join(",");
            text.push_str(&format!("{cur}: &{cur} [{items}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(
            err.contains("aliasing") || err.contains("repetition limit"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_have_positions_and_do_not_loop() {
        let err = parse("a: 1\n---\nb: [\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
    }
}
