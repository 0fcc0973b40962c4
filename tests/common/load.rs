//! Load from a thread: one check after another, without pause, until the test stops it —
//! for "no request failed while …" assertions.
#![allow(dead_code)] // each test binary uses its own subset of the helpers

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Runs `check` in a loop on a thread; [`Load::finish`] stops it and says how many passed and
/// why the others failed.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    pub fn start(check: impl Fn() -> Result<(), String> + Send + 'static) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let (s, o) = (Arc::clone(&stop), Arc::clone(&ok));
        let handle = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match check() {
                    Ok(()) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        });
        Load {
            stop,
            ok,
            handle: Some(handle),
        }
    }

    /// (passed, failures).
    pub fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.handle.take().unwrap().join().unwrap();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}
