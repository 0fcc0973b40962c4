//! The crate's layers, checked: every module of src/ imports only modules of a lower layer,
//! and no file of src/ is part of an import cycle.
//!
//! The layers follow the data flow (docs/architecture.md). A module that needs something
//! from a layer above it is a sign the thing lives in the wrong place: move it down (as the
//! scale records moved from watch to apply, and readiness from the ingress to observe).
//! A new top-level module must be given a layer in `LAYERS` below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. A module may import modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    // Plain values and helpers every layer uses.
    &["output", "duration", "safe", "labels", "interrupt", "model"],
    // Reading what the user wrote: the compose file, the machines file, build contexts.
    &["load", "inventory", "build"],
    // The pure core, the container request, and the SSH transport.
    &["core", "container", "transport"],
    // An engine per machine.
    &["engine"],
    // What runs (observe), images to machines (ship), carrying steps out (apply), preparing
    // machines before they have an engine (provision: `hoist machines init`).
    &["observe", "ship", "apply", "provision"],
    // The sealing key kept on the machines (read beside the observation); volume data read,
    // written and moved (backup, restore, stateful moves).
    &["seal", "volume"],
    // The balancers: the ingress, then the mesh (which reuses the ingress's addressing).
    &["ingress"],
    &["mesh"],
    // The road plan, up and watch share.
    &["pipeline"],
    &["watch"],
    // Parses, calls, renders.
    &["cli"],
];

/// A module as a path from the crate root (`["ingress", "live"]`); the crate root is `[]`.
type ModPath = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every .rs file of src/ by the module it defines.
fn modules() -> BTreeMap<ModPath, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src()).unwrap().with_extension("");
            let mut m: ModPath = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if m.last().is_some_and(|l| l == "mod") || m == ["lib"] || m == ["main"] {
                m.pop();
            }
            (m, p)
        })
        .collect()
}

/// The source with comments, string and character literals blanked out, so only code is
/// searched for paths.
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' if (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
                && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_')) =>
            {
                // A raw string: r"…" or r#"…"#.
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' => {
                // A character literal ('x', '\n', '\''), or a lifetime ('a), which stays.
                if c.get(i + 1) == Some(&'\\') {
                    let mut j = i + 2;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    i = j + 1;
                    out.push_str("' '");
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or("").trim();
        return vec![path.to_string()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::").trim();
    let close = tree.rfind('}').expect("balanced braces in a use tree");
    let inner = &tree[open + 1..close];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| match (prefix.is_empty(), p.as_str()) {
            (true, _) => p,
            (false, "self") => prefix.to_string(),
            (false, _) => format!("{prefix}::{p}"),
        })
        .collect()
}

/// Every `crate::…`, `super::…` and `self::…` path a file's code names, in `use` trees and
/// inline.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    // `use` trees (they may span lines).
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(k) = code[i..].find("use ") {
        let at = i + k;
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        i = at + 4;
        if !boundary {
            continue;
        }
        let Some(end) = code[i..].find(';') else {
            break;
        };
        let tree = &code[i..i + end];
        if tree.contains('{') == tree.contains('}') {
            found.extend(expand(tree));
        }
    }
    // Inline paths.
    for start in ["crate::", "super::", "self::"] {
        let mut i = 0;
        while let Some(k) = code[i..].find(start) {
            let at = i + k;
            i = at + start.len();
            if at > 0
                && (bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':')
            {
                continue;
            }
            let end = code[at..]
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == ':'))
                .map_or(code.len(), |e| at + e);
            let path = code[at..end].trim_end_matches(':');
            if path.contains("::") {
                found.push(path.to_string());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The module a path from `from` lands in: the longest prefix that is a file of src/.
fn target(from: &ModPath, path: &str, known: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut at: ModPath = match segs.first()? {
        &"crate" => Vec::new(),
        &"super" | &"self" => from.clone(),
        _ => return None,
    };
    let mut rest = &segs[..];
    if rest[0] == "crate" {
        rest = &rest[1..];
    }
    while let Some(&"super") = rest.first() {
        at.pop();
        rest = &rest[1..];
    }
    if let Some(&"self") = rest.first() {
        rest = &rest[1..];
    }
    at.extend(rest.iter().map(|s| s.to_string()));
    while !at.is_empty() {
        if known.contains_key(&at) {
            return Some(at);
        }
        at.pop();
    }
    None
}

/// Module → the modules it imports (itself and the crate root left out).
fn graph() -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let known = modules();
    known
        .iter()
        .map(|(m, file)| {
            let code = code_only(&std::fs::read_to_string(file).unwrap());
            let targets = paths(&code)
                .iter()
                .filter_map(|p| target(m, p, &known))
                .filter(|t| t != m && !t.is_empty())
                .collect();
            (m.clone(), targets)
        })
        .collect()
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

fn name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn every_module_has_a_layer() {
    let tops: BTreeSet<String> = modules()
        .keys()
        .filter_map(|m| m.first().cloned())
        .collect();
    let missing: Vec<_> = tops.iter().filter(|t| layer_of(t).is_none()).collect();
    assert!(
        missing.is_empty(),
        "give these modules a layer in tests/layers.rs: {missing:?}"
    );
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let mut wrong = Vec::new();
    for (m, targets) in graph() {
        let Some(from) = m.first().and_then(|t| layer_of(t)) else {
            continue;
        };
        for t in targets {
            let Some(to) = t.first().and_then(|x| layer_of(x)) else {
                continue;
            };
            if m.first() != t.first() && to >= from {
                wrong.push(format!("{} imports {}", name(&m), name(&t)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that climb a layer (or cross within one):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_cycle_among_files() {
    // Tarjan's strongly connected components; any component of two or more is a cycle.
    struct T<'g> {
        g: &'g BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<ModPath, usize>,
        low: BTreeMap<ModPath, usize>,
        stack: Vec<ModPath>,
        on: BTreeSet<ModPath>,
        cycles: Vec<Vec<String>>,
    }
    impl T<'_> {
        fn visit(&mut self, v: &ModPath) {
            let n = self.index.len();
            self.index.insert(v.clone(), n);
            self.low.insert(v.clone(), n);
            self.stack.push(v.clone());
            self.on.insert(v.clone());
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on.remove(&w);
                    comp.push(name(&w));
                    if &w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.cycles.push(comp);
                }
            }
        }
    }
    let g = graph();
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        cycles: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    assert!(
        t.cycles.is_empty(),
        "files that import each other (directly or around a circle): {:?}",
        t.cycles
    );
}

#[test]
fn the_checker_sees_imports() {
    // The checker itself: nested use trees, inline paths, super, and text that only looks
    // like a path (in strings and comments) ignored.
    let code = code_only(
        "use crate::{a::{b, c::{self, d}}, e};\nuse super::f::G;\n// crate::nope\nlet s = \"crate::nope2\";\nlet x = crate::h::i(1);\n",
    );
    assert_eq!(
        paths(&code),
        [
            "crate::a::b",
            "crate::a::c",
            "crate::a::c::d",
            "crate::e",
            "crate::h::i",
            "super::f::G"
        ]
    );
    // This very crate: the pipeline imports the ingress (a layer below it).
    let g = graph();
    let pipeline = &g[&vec!["pipeline".to_string(), "apply".to_string()]];
    assert!(
        pipeline
            .iter()
            .any(|t| t.first().is_some_and(|x| x == "ingress")),
        "{pipeline:?}"
    );
}
