//! `.env` files: the variables interpolation reads, and the `env_file` of a service.
//!
//! Compose has its own dialect (compose-go's dotenv): `export` prefixes, single quotes are
//! literal, double quotes take escapes and may span lines, unquoted values end at ` #`, and
//! `${VAR}` inside a value is expanded from the environment and earlier lines.
//!
//! `env_file` entries with `format: raw` use `docker run --env-file`'s format instead
//! ([`parse_raw`]): every value is taken literally.

use super::interpolate;
use std::collections::HashMap;

/// Parses an env file in `docker run --env-file`'s format (`env_file` with `format: raw`):
/// leading whitespace and `#` comment lines are skipped, `KEY=value` keeps the value
/// byte for byte (quotes, `$`, trailing spaces and ` #` included), and a bare `KEY`
/// passes the variable through from `lookup` (or is left out when it is unset).
pub fn parse_raw(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        match value {
            Some(v) => out.push((key.to_string(), v.to_string())),
            None => {
                if let Some(v) = lookup(key) {
                    out.push((key.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

/// Parses `.env` text. `lookup` resolves variables not defined earlier in the file.
/// Errors carry the 1-based line number.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rest = text;
    let mut line_no = 1usize;
    while !rest.is_empty() {
        let (line, after) = split_line(rest);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            line_no += 1;
            rest = after;
            continue;
        }
        let body = trimmed
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let sep = body.find(['=', ':']);
        let Some(sep) = sep else {
            // A bare name passes the variable through from the environment.
            let key = body.trim();
            check_key(key, line_no)?;
            if let Some(v) = lookup(key) {
                seen.insert(key.to_string(), v.clone());
                out.push((key.to_string(), v));
            }
            line_no += 1;
            rest = after;
            continue;
        };
        let key = body[..sep].trim();
        check_key(key, line_no)?;
        // The value starts right after the separator on the original (untrimmed) text.
        let offset = line.len() - line.trim_start().len() + (trimmed.len() - body.len()) + sep + 1;
        let value_src = &rest[offset..];
        let value_src = value_src.trim_start_matches([' ', '\t']);
        let local =
            |name: &str| -> Option<String> { lookup(name).or_else(|| seen.get(name).cloned()) };
        let (value, consumed_lines, remaining) = match value_src.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &value_src[1..];
                let end = find_closing(body, q)
                    .ok_or_else(|| format!("line {line_no}: unterminated quoted value"))?;
                let raw = &body[..end];
                let lines = raw.matches('\n').count();
                let after_quote = &body[end + 1..];
                let (tail, next) = split_line(after_quote);
                let tail = tail.trim();
                if !tail.is_empty() && !tail.starts_with('#') {
                    return Err(format!(
                        "line {}: unexpected character after quoted value",
                        line_no + lines
                    ));
                }
                let value = if q == '\'' {
                    raw.to_string()
                } else {
                    let unescaped = unescape(raw);
                    expand(&unescaped, &local, line_no)?
                };
                (value, lines + 1, next)
            }
            _ => {
                let (v, next) = split_line(value_src);
                let v = strip_inline_comment(v).trim();
                (expand(v, &local, line_no)?, 1, next)
            }
        };
        seen.insert(key.to_string(), value.clone());
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
        line_no += consumed_lines;
        rest = remaining;
    }
    Ok(out)
}

fn split_line(s: &str) -> (&str, &str) {
    match s.find('\n') {
        Some(i) => (s[..i].trim_end_matches('\r'), &s[i + 1..]),
        None => (s, ""),
    }
}

fn check_key(key: &str, line: usize) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']');
    match key.find(|c: char| !allowed(c)) {
        None if !key.is_empty() => Ok(()),
        None => Err(format!(
            "line {line}: a line with no variable name; write NAME=value"
        )),
        // Only the valid start of the name is shown: the rest of a malformed line is often
        // its value, a secret (issue 17, finding 13: `DB_PASSWORD hunter2`).
        Some(i) => Err(format!(
            "line {line}: invalid variable name starting {:?} (character {} is not a letter, digit or _.-[]; \
             the rest of the line is not shown, it may hold a secret); write NAME=value",
            &key[..i],
            key[..i].chars().count() + 1
        )),
    }
}

fn find_closing(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Some(i);
        }
    }
    None
}

fn strip_inline_comment(v: &str) -> &str {
    let bytes = v.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'#' && i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return &v[..i];
        }
    }
    v
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn expand(v: &str, lookup: &dyn Fn(&str) -> Option<String>, line: usize) -> Result<String, String> {
    interpolate::substitute(v, lookup, &mut |_| {}).map_err(|e| format!("line {line}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Vec<(String, String)> {
        parse(text, &|k| (k == "HOME").then(|| "/home/me".to_string())).unwrap()
    }

    #[test]
    fn plain_quoted_and_exported_values() {
        let got =
            p("# c\nA=1\nexport B = two \nC='lit $HOME'\nD=\"x\\ny\"\nE=a # comment\nF=a#b\n");
        let want = [
            ("A", "1"),
            ("B", "two"),
            ("C", "lit $HOME"),
            ("D", "x\ny"),
            ("E", "a"),
            ("F", "a#b"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn interpolation_and_multiline() {
        let got = p("A=${HOME}/x\nB=$A-y\nC=\"line1\nline2\"\nD=${NOPE:-dflt}\n");
        assert_eq!(got[0].1, "/home/me/x");
        assert_eq!(got[1].1, "/home/me/x-y");
        assert_eq!(got[2].1, "line1\nline2");
        assert_eq!(got[3].1, "dflt");
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("A=1\nB=\"open\n", &|_| None).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse("A B=1\n", &|_| None).is_err());
    }

    #[test]
    fn raw_format_keeps_values_literally() {
        let lookup = |k: &str| (k == "BARE").then(|| "from-env".to_string());
        let text =
            "\u{feff}A=1\n  B=2 \n# comment\nC=\"q\"\nE=${A} $X # kept\nBARE\nUNSET\nG=a=b\nI=\n";
        assert_eq!(
            parse_raw(text, &lookup).unwrap(),
            [
                ("A", "1"),
                ("B", "2 "),
                ("C", "\"q\""),
                ("E", "${A} $X # kept"),
                ("BARE", "from-env"),
                ("G", "a=b"),
                ("I", ""),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(
            parse_raw("K V=1", &lookup).unwrap_err(),
            "variable 'K V' contains whitespaces"
        );
        assert_eq!(
            parse_raw("=2", &lookup).unwrap_err(),
            "no variable name on line '=2'"
        );
    }

    /// Issue 17, finding 13: a malformed line's value never reaches the message.
    #[test]
    fn a_bad_line_does_not_echo_its_value() {
        for line in [
            "DB_PASSWORD hunter2",
            "DB_PASSWORD hunter2=x",
            "DB PASSWORD=hunter2",
            "export DB_PASSWORD hunter2",
        ] {
            let err = parse(&format!("A=1\n{line}\n"), &|_| None).unwrap_err();
            assert!(
                err.starts_with("line 2: invalid variable name starting \"DB"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = parse("=x\n", &|_| None).unwrap_err();
        assert!(
            err.contains("line 1: a line with no variable name"),
            "{err}"
        );
    }
}
