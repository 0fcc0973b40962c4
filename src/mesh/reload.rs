//! HAProxy in a container, as the mesh runs it (the proxies and the gateways): its
//! configuration file, written through the archive API, and the graceful reload.

use crate::apply::ops::{self, FileInContainer};
use anyhow::{Context, Result};
use bollard::Docker;
use bollard::query_parameters::KillContainerOptions;
use std::time::Duration;

/// Where the configuration lives inside a proxy container (the official image's path).
pub const CONFIG_PATH: &str = "/usr/local/etc/haproxy/haproxy.cfg";

pub fn config_file(text: &str) -> FileInContainer {
    FileInContainer {
        target: CONFIG_PATH.to_string(),
        content: text.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// Writes the configuration into a proxy and reloads HAProxy gracefully: SIGUSR2 to its
/// master (PID 1, `haproxy -W`) starts new workers on the new configuration while the old
/// ones finish their connections.
pub async fn apply_config(docker: &Docker, container: &str, text: &str) -> Result<()> {
    ops::copy_files(docker, container, &[config_file(text)]).await?;
    // A proxy started a moment ago may not handle SIGUSR2 yet, and the signal's default action
    // would end it: wait (briefly) until PID 1 catches it. It then reads the file just written.
    // One that is not running answers no exec; the 409 below starts it.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        match catches_usr2(docker, container).await {
            Some(false) => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => break,
        }
    }
    let reload = docker
        .kill_container(
            container,
            Some(KillContainerOptions {
                signal: "SIGUSR2".to_string(),
            }),
        )
        .await;
    match reload {
        Ok(()) => Ok(()),
        // Not running: started on the new configuration — or, when its restart policy is
        // between two tries (the engine refuses a start then), restarted on it by the engine.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            let _ = ops::start(docker, container).await;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("reloading {container}")),
    }
}

/// Whether PID 1 of `container` has a handler for SIGUSR2 (bit 12 of `SigCgt` in /proc/1/status).
/// None when that cannot be read (the container is not running).
async fn catches_usr2(docker: &Docker, container: &str) -> Option<bool> {
    match crate::apply::ops::exec(docker, container, &["cat", "/proc/1/status"]).await {
        Ok((0, status)) => Some(sig_caught(&status, 12)),
        _ => None,
    }
}

/// Whether the `SigCgt:` mask of a /proc/PID/status text has signal `signo`.
fn sig_caught(status: &str, signo: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signo - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigusr2_handler_from_proc_status() {
        assert!(sig_caught(
            "Name:\thaproxy\nSigCgt:\t0000000000004a07\n",
            12
        ));
        assert!(!sig_caught("SigCgt:\t0000000000000000\n", 12));
        assert!(!sig_caught("Name: x\n", 12));
    }
}
