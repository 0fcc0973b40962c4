//! A request to stop, made by a signal, that long operations honour at safe points.
//!
//! A deploy killed between two engine calls can leave a slot with two containers or none, and
//! its lock behind. So the verbs that change the fleet do not end on the first SIGINT or
//! SIGTERM: `cli::main` records it here, the rollout starts no new batch (it finishes the one
//! under way, or undoes it), the lock is released, and the verb exits 130 (SIGINT) or 143
//! (SIGTERM). A second signal ends the process at once.

use std::sync::atomic::{AtomicI32, Ordering};

static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// Records that `signal` (libc::SIGINT or libc::SIGTERM) asked us to stop. Returns whether a
/// stop had already been requested.
pub fn request(signal: i32) -> bool {
    REQUESTED
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
}

/// The signal that asked us to stop, if one did.
pub fn requested() -> Option<i32> {
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code for a stop requested by `signal`: 128 + its number, as shells report it.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(130)
}

/// Why a stop was requested, in words.
pub fn describe(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT (Ctrl-C)",
        _ => "a signal",
    }
}

/// Resolves once a stop has been requested (polled: a signal is rare, and this keeps the module
/// free of a runtime's global state).
pub async fn wait() -> i32 {
    loop {
        if let Some(s) = requested() {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
