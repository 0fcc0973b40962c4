//! A reader of the Caddyfile's block structure, as Caddy's lexer splits it: tokens separated
//! by whitespace, `"…"` strings with `\"` escapes, `#` at the start of a token opening a
//! comment, a line ending in `{` opening a block and a lone `}` closing one. Shared by
//! hoist's renderer tests and the `caddyfile` fuzz target (issue 17): a rendered Caddyfile
//! must read back as exactly the sites and routes hoist meant, whatever the routes held.
//! Anything this reader does not know (backticks, heredocs, a backslash outside a string,
//! an unbalanced brace) is an error: hoist never writes them.

/// One directive: its tokens, and its block when it opens one.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub tokens: Vec<String>,
    pub block: Option<Vec<Node>>,
}

/// The top-level nodes of `text`.
pub fn parse(text: &str) -> Result<Vec<Node>, String> {
    let mut stack: Vec<(Vec<String>, Vec<Node>)> = vec![(Vec::new(), Vec::new())];
    for (n, line) in text.lines().enumerate() {
        let tokens = tokens(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if tokens.is_empty() {
            continue;
        }
        if tokens == ["}"] {
            if stack.len() == 1 {
                return Err(format!("line {}: `}}` closes nothing", n + 1));
            }
            let (head, children) = stack.pop().expect("checked");
            let parent = &mut stack.last_mut().expect("root").1;
            parent.push(Node {
                tokens: head,
                block: Some(children),
            });
            continue;
        }
        if tokens.iter().any(|t| t == "}") || tokens[..tokens.len() - 1].iter().any(|t| t == "{") {
            return Err(format!("line {}: a brace inside a line: {line:?}", n + 1));
        }
        if tokens.last().map(String::as_str) == Some("{") {
            stack.push((tokens[..tokens.len() - 1].to_vec(), Vec::new()));
        } else {
            stack.last_mut().expect("root").1.push(Node {
                tokens,
                block: None,
            });
        }
    }
    if stack.len() != 1 {
        return Err(format!("{} blocks left open", stack.len() - 1));
    }
    Ok(stack.pop().expect("root").1)
}

fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '#' {
            break;
        }
        let mut token = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"') => token.push('"'),
                        _ => return Err("a backslash escape other than \\\"".into()),
                    },
                    Some(c) => token.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if matches!(c, '"' | '`' | '\\') {
                    return Err(format!("{c:?} inside a token"));
                }
                token.push(c);
                chars.next();
            }
            if token.starts_with("<<") {
                return Err("a heredoc".into());
            }
        }
        out.push(token);
    }
    Ok(out)
}

/// The address tokens of a site's head, commas between them dropped.
pub fn addresses(head: &[String]) -> Vec<String> {
    head.iter()
        .map(|t| t.trim_end_matches(',').to_string())
        .filter(|t| !t.is_empty())
        .collect()
}
