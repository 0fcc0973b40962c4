//! Durations as users write them (`90s`, `1m30s`, `500ms`, bare seconds), parsed with
//! checked arithmetic and an upper bound.
//!
//! Every duration hoist reads ends up added to a clock (`Instant + d`), multiplied (grace
//! periods) or converted to nanoseconds for the engine; a value near `u64::MAX` seconds
//! panics there. So the parser refuses anything above [`MAX`] with an error, and never
//! panics itself (`Duration::from_secs_f64(1e30)` would). It sits at the bottom of the
//! crate: the CLI, the ingress and the transport all use it.

use std::time::Duration;

/// The longest duration hoist accepts anywhere: a year. Longer waits, intervals and timeouts
/// are mistakes, and a year still fits every clock and nanosecond count hoist computes.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// What [`MAX`] is called in messages.
const MAX_TEXT: &str = "8760h (a year)";

/// Parses `90s`, `1m30s`, `1h`, `500ms`, `1.5s`, `10us`, `0`, or bare (decimal) seconds.
/// Errors quote the input and say what is accepted.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration (write e.g. 10s, 1m30s or 500ms)".into());
    }
    if s.starts_with(['-', '+']) {
        return Err(format!("{s:?} is not a duration: it must not be signed"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        // `parse::<f64>` also takes `inf`, `NaN` and `1e30`.
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("{s:?} is not a duration"));
        }
        return bounded(s, Duration::try_from_secs_f64(secs).ok());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: missing unit (use ms, s, m or h)"))?;
        if num_len == 0 {
            return Err(format!(
                "{s:?} is not a duration (write e.g. 10s, 1m30s or 500ms)"
            ));
        }
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration"))?;
        let per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
        };
        let part = Duration::try_from_secs_f64(n * per_unit).ok();
        total = bounded(s, part.and_then(|p| total.checked_add(p)))?;
        rest = tail;
    }
    Ok(total)
}

fn bounded(s: &str, d: Option<Duration>) -> Result<Duration, String> {
    match d {
        Some(d) if d <= MAX => Ok(d),
        _ => Err(format!("{s:?} is too long: at most {MAX_TEXT}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for (text, want) in [
            ("10s", Duration::from_secs(10)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("3", Duration::from_secs(3)),
            ("1.5", Duration::from_millis(1500)),
            (" 2h ", Duration::from_secs(7200)),
            ("0", Duration::ZERO),
            ("10us", Duration::from_micros(10)),
            ("8760h", MAX),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    /// Finding 6 of issue 17: these panicked (from_secs_f64 overflow) instead of failing.
    #[test]
    fn huge_or_odd_values_are_errors_not_panics() {
        for text in [
            "1e30",
            "18446744073709551615",
            "18446744073709551615s",
            "99999999999999999999h",
            "8761h",
            "1e309",
            "inf",
            "NaN",
            "-5s",
            "-5",
            "+5s",
            "",
            "3x",
            "s",
            "1..5s",
            "5sm",
            ".",
            "1e3s",
        ] {
            let e = parse(text).expect_err(text);
            assert!(!e.is_empty(), "{text}");
        }
        assert!(parse("1e30").unwrap_err().contains("too long"));
        assert!(
            parse("18446744073709551615")
                .unwrap_err()
                .contains("too long")
        );
    }
}
