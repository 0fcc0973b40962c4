//! Writing to stdout and stderr without ever dying of it.
//!
//! `println!` and `eprintln!` panic when the write fails, and a closed pipe (`hoist up | head -1`)
//! or a closed terminal makes every later write fail. A deploy must never stop halfway because
//! nobody reads its output any more, so the verbs that change the fleet write through these
//! macros, which drop what cannot be written. (Those verbs also ignore SIGPIPE and SIGHUP; see
//! `cli::main`.)

/// Like `println!`, but a failed write is ignored.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// Like `eprintln!`, but a failed write is ignored.
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// Like `eprint!` (no newline), but a failed write is ignored.
#[macro_export]
macro_rules! tell_raw {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut err = ::std::io::stderr().lock();
        let _ = ::std::write!(err, $($arg)*);
        let _ = err.flush();
    }};
}

/// Bytes as a short binary-unit figure: `512MiB`, `23.4GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 100.0 || (v - v.round()).abs() < 0.05 {
        format!("{:.0}{}", v, UNITS[u])
    } else {
        format!("{:.1}{}", v, UNITS[u])
    }
}

/// With `HOIST_TRACE` set, one line on stderr per milestone of a command, in milliseconds since
/// the process started: where the time of a deploy goes (see BENCHMARKS.md). Off by default.
pub fn trace(what: std::fmt::Arguments<'_>) {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os("HOIST_TRACE").is_some()) {
        return;
    }
    tell!("trace {:>6}ms {what}", started().elapsed().as_millis());
}

/// When the process started, for [`trace`]; `main` fixes it first thing.
pub fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// `trace!("what {}", x)`: see [`trace`].
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        $crate::output::trace(::std::format_args!($($arg)*))
    };
}
