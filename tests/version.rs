//! `hoist --version` names the commit it was built from (build.rs), so an installed binary
//! says which code it is.

use std::process::Command;

#[test]
fn version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .arg("--version")
        .output()
        .expect("running hoist --version");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let want = format!("hoist {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "{text:?} starts with {want:?}");
    // Built from this checkout (as tests are), it is this checkout's commit.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git rev-parse");
    if std::env::var_os("HOIST_GIT_COMMIT").is_none() && head.status.success() {
        let head = String::from_utf8(head.stdout).unwrap();
        assert!(
            text.contains(&format!("(commit {} ", head.trim())),
            "{text:?} names HEAD {head}"
        );
    }
}
