//! Wall-clock text for labels and logs, without a date crate: hoist formats
//! "now" in UTC, and reads the dates a user gives (`hoist logs --since`).

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `YYYY-MM-DD[THH:MM[:SS[.frac]]][Z|±HH:MM]` → seconds since the epoch (the
/// fraction is dropped). Without a zone the time is local, as `docker logs --since`
/// reads it. The error says which part is wrong.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let (date, rest) = s.split_at(s.len().min(10));
    let num = |t: &str, what: &str, lo: u32, hi: u32| -> Result<u32, String> {
        match t.parse::<u32>() {
            Ok(n) if t.len() >= 2 && (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!("{what} {t:?} is not {lo}..{hi}")),
        }
    };
    let mut d = date.split('-');
    let (Some(y), Some(mo), Some(da), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err("the date is not YYYY-MM-DD".into());
    };
    let y = num(y, "year", 1970, 9999)?;
    let mo = num(mo, "month", 1, 12)?;
    let da = num(da, "day", 1, days_in_month(y, mo))?;
    let (time, zone) = match rest.find(['Z', 'z', '+']).or_else(|| rest.rfind('-')) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (mut h, mut mi, mut sec) = (0, 0, 0);
    if !time.is_empty() {
        let Some(time) = time.strip_prefix(['T', 't', ' ']) else {
            return Err("the time must follow the date after a `T`".into());
        };
        let time = time.split_once('.').map_or(time, |(whole, _)| whole);
        let mut t = time.split(':');
        h = num(t.next().unwrap_or(""), "hour", 0, 23)?;
        mi = num(
            t.next().ok_or("the time is not HH:MM[:SS]")?,
            "minute",
            0,
            59,
        )?;
        if let Some(x) = t.next() {
            sec = num(x, "second", 0, 60)?;
        }
        if t.next().is_some() {
            return Err("the time is not HH:MM[:SS]".into());
        }
    }
    let days = days_from_civil(i64::from(y), mo, da);
    let wall = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec);
    match zone {
        Some("Z" | "z") => Ok(wall),
        Some(z) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let Some((zh, zm)) = z[1..].split_once(':') else {
                return Err(format!("the zone {z:?} is not Z or ±HH:MM"));
            };
            let offset = i64::from(
                num(zh, "zone hour", 0, 23)? * 3600 + num(zm, "zone minute", 0, 59)? * 60,
            );
            Ok(wall - sign * offset)
        }
        None => Ok(wall - local_offset(wall)),
    }
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The local zone's offset from UTC, in seconds, around `wall` (read as UTC).
fn local_offset(wall: i64) -> i64 {
    // SAFETY: localtime_r fills a tm we own from a time_t we own.
    unsafe {
        let t = wall as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

/// (year, month, day) → days since 1970-01-01; the inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's well-known civil-from-days algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_717_380), "2026-11-26T18:23:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn reads_rfc3339_back() {
        for secs in [0, 951_782_400, 1_795_717_380, 1_796_156_520] {
            assert_eq!(parse_timestamp(&rfc3339(secs)), Ok(secs as i64));
        }
        assert_eq!(
            parse_timestamp("2026-12-01T20:22:00.999999999Z"),
            Ok(1_796_156_520)
        );
        assert_eq!(
            parse_timestamp("2026-12-01T22:22:00+02:00"),
            Ok(1_796_156_520)
        );
        assert_eq!(parse_timestamp("2026-12-01T20:22Z"), Ok(1_796_156_520));
        assert_eq!(parse_timestamp("2026-12-01Z"), Ok(1_796_083_200));
        assert!(
            parse_timestamp("2026-02-29T00:00:00Z")
                .unwrap_err()
                .contains("day")
        );
        assert!(
            parse_timestamp("2026-12-01T24:00:00Z")
                .unwrap_err()
                .contains("hour")
        );
        assert!(parse_timestamp("2026-12-01X20:22:00Z").is_err());
        assert!(parse_timestamp("2026-12-01T20:22:00+0100").is_err());
    }
}
