//! A reader of haproxy.cfg's sections, as HAProxy splits its lines: whitespace-separated
//! words, `#` starting a comment, a section keyword (`global`, `defaults`, `listen` …)
//! starting a section. Shared by hoist's mesh renderer tests and the `haproxy` fuzz target
//! (issue 17): a rendered configuration must read back as exactly the listeners and servers
//! hoist meant. Quotes, backslashes and `$` (which HAProxy would interpret) are errors: hoist
//! never writes them.

/// A section: its keyword line and the lines (words) inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub head: Vec<String>,
    pub lines: Vec<Vec<String>>,
}

const SECTION_KEYWORDS: [&str; 8] = [
    "global",
    "defaults",
    "listen",
    "frontend",
    "backend",
    "resolvers",
    "peers",
    "userlist",
];

pub fn parse(text: &str) -> Result<Vec<Section>, String> {
    let mut sections: Vec<Section> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        if code.contains(['"', '\'', '\\', '$']) {
            return Err(format!("line {}: a quote, backslash or $: {line:?}", n + 1));
        }
        let words: Vec<String> = code.split_whitespace().map(str::to_string).collect();
        let Some(first) = words.first() else { continue };
        if SECTION_KEYWORDS.contains(&first.as_str()) {
            sections.push(Section {
                head: words,
                lines: Vec::new(),
            });
        } else {
            match sections.last_mut() {
                Some(s) => s.lines.push(words),
                None => return Err(format!("line {}: outside any section", n + 1)),
            }
        }
    }
    Ok(sections)
}
