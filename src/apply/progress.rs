//! Progress output for long operations: indicatif spinners on a terminal, plain
//! timestamped lines otherwise (CI logs), and nothing on stdout when `--json`
//! owns it. `NO_COLOR` is honoured.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Where rollout events go.
pub struct Progress {
    mode: Mode,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

enum Mode {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

impl Progress {
    /// Bars on a TTY stderr, lines otherwise; `quiet` silences everything.
    pub fn new(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && std::env::var_os("HOIST_PLAIN").is_none() {
            Mode::Bars(MultiProgress::new())
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// A step of `key` (e.g. `web.2@m1`) moved on: `message` says to what.
    pub fn step(&self, key: &str, message: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => tell!("{} {key:<24} {message}", timestamp()),
            Mode::Bars(multi) => {
                let mut bars = self.bars.lock().expect("progress lock");
                let bar = bars.entry(key.to_string()).or_insert_with(|| {
                    let style = if std::env::var_os("NO_COLOR").is_some() {
                        ProgressStyle::with_template("{spinner} {prefix:24} {msg}")
                    } else {
                        ProgressStyle::with_template("{spinner:.cyan} {prefix:24.bold} {msg}")
                    }
                    .expect("valid template");
                    let b = multi.add(
                        ProgressBar::new_spinner()
                            .with_style(style)
                            .with_prefix(key.to_string()),
                    );
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                bar.set_message(message.to_string());
            }
        }
    }

    /// `key` is done; its last message stays on screen.
    pub fn finish(&self, key: &str, message: &str) {
        match &self.mode {
            Mode::Bars(_) => {
                self.step(key, message);
                if let Some(b) = self.bars.lock().expect("progress lock").remove(key) {
                    b.finish_with_message(message.to_string());
                }
            }
            _ => self.step(key, message),
        }
    }

    /// A line that is not about one replica (warnings, phase changes).
    pub fn note(&self, message: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => tell!("{} {message}", timestamp()),
            Mode::Bars(multi) => {
                let _ = multi.println(message);
            }
        }
    }
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::apply::time::rfc3339(now)
}
