//! Values that reach a shell, a configuration file or a template: the alphabets hoist
//! accepts for them, shell quoting, and the guard every rendered configuration goes through.
//!
//! Two layers on purpose (issue 17): the loaders (compose file, machines file) refuse a bad
//! value with an error naming the file and key, and the renderers refuse again — through
//! [`template_env`], whose formatter lets no value into a Caddyfile or haproxy.cfg unless it
//! is one plain token. A value that slips past a loader (a new key, a default computed
//! elsewhere, `ssh -G` output) still cannot add a site, a backend or a global option.

/// `s` quoted for a POSIX shell: one word, whatever it contains.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` as one shell word: as it is when it is made of plain characters (letters, digits and
/// `_./:=@%+,-`), else quoted with [`shell_quote`]. For command lines a user reads
/// (`hoist machines init --dry-run`).
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b));
    if plain { s.to_string() } else { shell_quote(s) }
}

/// A DNS host name: dot-separated labels of letters, digits, `-` and `_` (not at a label's
/// ends), at most 253 characters. `wildcard` also takes one leading `*.` label.
pub fn host_name(s: &str, wildcard: bool) -> Result<(), String> {
    let body = match s.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => s,
    };
    let why = if s.is_empty() {
        Some("it is empty")
    } else if s.len() > 253 {
        Some("it is longer than 253 characters")
    } else if body.split('.').any(|label| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        Some(if wildcard {
            "use letters, digits, '-' and dots (and an optional leading '*.')"
        } else {
            "use letters, digits, '-' and dots"
        })
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(format!("{} is not a host name: {why}", shown(s))),
    }
}

/// A host name, an IPv4 address or an IPv6 address (bare or in brackets): where another
/// machine reaches this one.
pub fn network_address(s: &str) -> Result<(), String> {
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if unbracketed.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    host_name(s, false).map_err(|_| {
        format!(
            "{} is not an address: use a host name, an IPv4 or an IPv6 address",
            shown(s)
        )
    })
}

/// A URL path (`/api/v2`): starts with `/`, letters, digits and `-._~/!+,=:@`, `%XX`
/// escapes; `query` also allows `?`, `&` (a health check URI). No spaces, quotes, braces or
/// `#`, which would end or open something in a proxy's configuration.
pub fn url_path(s: &str, query: bool) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("{} must start with /", shown(s)));
    }
    if s.len() > 1024 {
        return Err(format!("{} is longer than 1024 characters", shown(s)));
    }
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = b.is_ascii_alphanumeric()
            || b"-._~/!+,=:@".contains(&b)
            || (query && (b == b'?' || b == b'&'))
            || (b == b'%'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        if !ok {
            return Err(format!(
                "{} is not a plain URL path: {:?} is not allowed (use letters, digits, -._~/!+,=:@{} and %XX escapes)",
                shown(s),
                char_at(s, i),
                if query { "?&" } else { "" }
            ));
        }
    }
    Ok(())
}

/// A mail address for ACME notices: `local@host`, the local part of letters, digits and
/// `._%+-`.
pub fn email(s: &str) -> Result<(), String> {
    let bad = || format!("{} is not a mail address like ops@example.com", shown(s));
    let (local, host) = s.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
    {
        return Err(bad());
    }
    host_name(host, false).map_err(|_| bad())
}

/// A docker socket path on a machine: absolute, at most 107 bytes (a unix socket path), of
/// letters, digits and `/._-+@:,=`. It is forwarded by sshd and, when the engine does not
/// answer, named in a shell probe (quoted there too).
pub fn socket_path(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty; give the absolute path of the engine's unix socket, e.g. /var/run/docker.sock".into());
    }
    if !s.starts_with('/') {
        return Err(format!(
            "{} is relative; give the absolute path of the engine's unix socket, e.g. /var/run/docker.sock",
            shown(s)
        ));
    }
    if s.len() > 107 {
        return Err(format!(
            "{} is longer than a unix socket path can be (107 bytes)",
            shown(s)
        ));
    }
    if let Some(i) = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b"/._-+@:,=".contains(&b)))
    {
        return Err(format!(
            "{} contains {:?}; a socket path may hold letters, digits and /._-+@:,=",
            shown(s),
            char_at(s, i)
        ));
    }
    Ok(())
}

/// True when `s` can be written into a Caddyfile or haproxy.cfg as one token: not empty
/// (an empty host leaves a bare `{` that Caddy reads as a second global block; an empty
/// address drops a word from a `server` line — both found by the fuzz targets), and nothing
/// that separates tokens, quotes, escapes, opens or closes a block, starts a comment, or
/// expands a placeholder or environment variable.
pub fn is_config_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%!+,=:@&?*[]".contains(&b))
}

/// A template environment for configuration files: every `{{ value }}` must be a number or
/// an [`is_config_token`] string, else rendering fails (the caller names the value's key).
pub fn template_env<'a>() -> minijinja::Environment<'a> {
    let mut env = minijinja::Environment::new();
    env.set_formatter(|out, _state, value| {
        if let Some(s) = value.as_str()
            && !is_config_token(s)
        {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("refusing to write {s:?} into a configuration file: not one plain token"),
            ));
        }
        write!(out, "{value}").map_err(minijinja::Error::from)
    });
    env
}

/// `s` quoted for a message, shortened so a pasted secret or a huge value stays out of it.
fn shown(s: &str) -> String {
    const LIMIT: usize = 80;
    if s.chars().count() <= LIMIT {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(LIMIT).collect();
        format!("{head:?}…")
    }
}

fn char_at(s: &str, byte: usize) -> char {
    s[byte..].chars().next().unwrap_or('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_word("Dpkg::Options::=--force-confold"),
            "Dpkg::Options::=--force-confold"
        );
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("$(x)"), "'$(x)'");
        assert_eq!(shell_word(""), "''");
        // Whatever it holds, the shell reads the word back as it was, and runs nothing.
        for s in [
            "plain",
            "a b",
            "it's",
            "$(touch /x)",
            "`id`",
            "a\nb",
            "*",
            "-o",
            "'\"'",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_word(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "{s:?}");
        }
    }

    #[test]
    fn shell_quoting_keeps_one_word() {
        assert_eq!(shell_quote("/run/docker.sock"), "'/run/docker.sock'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(
            shell_quote("'; touch /tmp/x; '"),
            r"''\''; touch /tmp/x; '\'''"
        );
        // The shell reads each back as the one word given.
        for s in [
            "plain",
            "a'b",
            "$(id)",
            "`id`",
            "x\ny",
            "'; rm -rf / #",
            "\\'",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

    #[test]
    fn host_names() {
        for ok in [
            "a",
            "shop.example.com",
            "xn--bcher-kva.example",
            "a-b.c_d",
            "10.0.0.1",
        ] {
            assert!(host_name(ok, false).is_ok(), "{ok}");
        }
        assert!(host_name("*.example.com", true).is_ok());
        for bad in [
            "",
            "*.example.com",
            "a b",
            "a\nb",
            "a{",
            "a}",
            "a#b",
            "a\"b",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a/b",
            "a:80",
            "a\tb",
            "é.com",
        ] {
            assert!(host_name(bad, false).is_err(), "{bad:?}");
        }
        assert!(host_name("*.*.example.com", true).is_err());
        assert!(host_name(&"a".repeat(64), false).is_err());
    }

    #[test]
    fn network_addresses() {
        for ok in ["10.0.1.12", "::1", "[fd00::1]", "web2.internal", "fd00::1"] {
            assert!(network_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "10.0.0.1 backup",
            "a\nserver x 1.2.3.4:80",
            "[::1",
            "a;b",
            "x:80",
        ] {
            assert!(network_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_and_mail() {
        for ok in [
            "/",
            "/api",
            "/api/v2/",
            "/a%20b",
            "/~u/x.y",
            "/a:b@c+d,e=g!",
        ] {
            assert!(url_path(ok, false).is_ok(), "{ok}");
        }
        assert!(url_path("/health?full=1&x=2", true).is_ok());
        for bad in [
            "api", "", "/a b", "/a\n}", "/{env.X}", "/a#", "/a\"", "/a'", "/%zz", "/%4", "/a\\",
            "/a*", "/a?b", "/a;b",
        ] {
            assert!(url_path(bad, false).is_err(), "{bad:?}");
        }
        assert!(email("ops@example.com").is_ok());
        assert!(email("o.p+s@mail.example.com").is_ok());
        for bad in [
            "ops",
            "@x.com",
            "ops@",
            "a b@x.com",
            "ops@x.com\n\tadmin 0.0.0.0:2019",
            "o{p}@x.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn socket_paths() {
        assert!(socket_path("/var/run/docker.sock").is_ok());
        assert!(socket_path("/run/user/1000/docker.sock").is_ok());
        for bad in [
            "",
            "docker.sock",
            "/tmp/x'; touch /tmp/pwned; '",
            "/a b",
            "/a$b",
            "/a\nb",
            &format!("/{}", "a".repeat(107)),
        ] {
            assert!(socket_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_template_guard_refuses_anything_but_one_token() {
        let env = template_env();
        let render = |v: &str| env.render_str("x {{ v }} y", minijinja::context! { v });
        assert_eq!(render("10.0.0.1:80").unwrap(), "x 10.0.0.1:80 y");
        assert_eq!(
            env.render_str("{{ n }}", minijinja::context! { n => 5 })
                .unwrap(),
            "5"
        );
        for bad in [
            "", "a b", "a\n}", "{", "}", "#", "\"", "'", "$X", "a\\b", "a;b", "\t",
        ] {
            assert!(render(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_do_not_carry_long_values() {
        let long = "x".repeat(10_000);
        assert!(host_name(&long, false).unwrap_err().len() < 200);
    }
}
