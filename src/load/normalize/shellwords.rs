//! Splits a string `command` / `entrypoint` into words exactly as the reference does.
//!
//! compose-go hands the string to mattn/go-shellwords (v1.0.12, no variable or command
//! expansion). That splitter is not a POSIX shell, and the differences change what a
//! container runs, so they are reproduced here rather than "fixed":
//! - it stops at the first unquoted `;`, `&`, `|`, `<` or `>`: `node x.mjs 2>&1` runs
//!   `node x.mjs`, and a word of digits right before `>` (the `2` of `2>`) is dropped too;
//! - a backslash escapes any character, inside double quotes as well (`"a\xb"` → `axb`);
//!   only single quotes keep it literally;
//! - backquoted and `$( … )` text stays in the word, spaces included, unexpanded;
//! - an unquoted `(` not preceded by `$` is an error, as are unterminated quotes.

use super::R;
use super::fail;

pub(super) fn split(path: &str, line: &str) -> R<Vec<String>> {
    let mut words = Vec::new();
    let mut buf = String::new();
    // `word` = buf holds a word, even an empty quoted one (`''`).
    let mut word = false;
    let (mut escaped, mut double, mut single, mut backquote, mut dollar) =
        (false, false, false, false, false);
    for c in line.chars() {
        if escaped {
            buf.push(c);
            escaped = false;
            word = true;
            continue;
        }
        if c == '\\' {
            if single {
                buf.push(c);
            } else {
                escaped = true;
            }
            continue;
        }
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if single || double || backquote || dollar {
                buf.push(c);
            } else if word {
                words.push(std::mem::take(&mut buf));
                word = false;
            }
            continue;
        }
        match c {
            // Both toggle a state and stay in the word.
            '`' if !single && !double && !dollar => backquote = !backquote,
            ')' if !single && !double && !backquote => dollar = !dollar,
            '(' if !single && !double && !backquote => {
                if !dollar && buf.ends_with('$') {
                    dollar = true;
                    buf.push(c);
                    continue;
                }
                return fail(path, format!("invalid command line string {line:?}"));
            }
            '"' if !single && !dollar => {
                if double {
                    word = true;
                }
                double = !double;
                continue;
            }
            '\'' if !double && !dollar => {
                if single {
                    word = true;
                }
                single = !single;
                continue;
            }
            ';' | '&' | '|' | '<' | '>' if !(single || double || backquote || dollar) => {
                // `2>` names a file descriptor: the digits go with the redirection.
                if c == '>' && buf.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                    word = false;
                }
                break;
            }
            _ => {}
        }
        word = true;
        buf.push(c);
    }
    if escaped || single || double || backquote || dollar {
        return fail(path, format!("invalid command line string {line:?}"));
    }
    if word {
        words.push(buf);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    fn ok(s: &str) -> Vec<String> {
        split("c", s).unwrap()
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            ok(r#"echo "a b" 'c d' e\ f "x\"y""#),
            ["echo", "a b", "c d", "e f", "x\"y"]
        );
        // A backslash escapes any character inside double quotes, none inside single ones.
        assert_eq!(ok(r#""a\xb" 'a\xb'"#), ["axb", r"a\xb"]);
        assert_eq!(ok(r#"a "" ''"#), ["a", "", ""]);
        assert_eq!(ok(""), Vec::<String>::new());
        assert_eq!(ok("  a\t\nb  "), ["a", "b"]);
    }

    #[test]
    fn stops_at_the_first_operator() {
        assert_eq!(ok("node x.mjs 8090 2>&1"), ["node", "x.mjs", "8090"]);
        assert_eq!(ok("run a>out"), ["run", "a"]);
        assert_eq!(ok("run 12>out"), ["run"]);
        assert_eq!(ok("a; b"), ["a"]);
        assert_eq!(ok("a && b"), ["a"]);
        assert_eq!(ok("a|b"), ["a"]);
        assert_eq!(ok("echo 'a;b' \"c|d\""), ["echo", "a;b", "c|d"]);
    }

    #[test]
    fn substitutions_stay_unexpanded() {
        assert_eq!(ok("echo $(date +%s) x"), ["echo", "$(date +%s)", "x"]);
        assert_eq!(ok("echo `a b` c"), ["echo", "`a b`", "c"]);
        assert_eq!(ok("echo $HOME"), ["echo", "$HOME"]);
    }

    #[test]
    fn errors() {
        for bad in [
            "echo 'open",
            "echo \"open",
            "echo (x)",
            "a\\",
            "echo `x",
            "echo a)",
        ] {
            assert!(split("c", bad).is_err(), "{bad}");
        }
    }
}
