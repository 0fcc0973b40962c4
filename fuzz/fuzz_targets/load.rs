//! Fuzzes the whole loader on arbitrary bytes given as `-f -`: it must return a project or
//! an error, never panic, hang or blow up memory (alias bombs, deep nesting, odd templates).
//! The hoist crate is a binary, so the loader's modules are compiled in by path.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/model.rs"]
mod model;

#[allow(dead_code)]
#[path = "../../src/load/mod.rs"]
mod load;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = std::env::temp_dir().join("hoist-fuzz-project");
    let _ = std::fs::create_dir_all(&dir);
    let opts = load::LoadOptions {
        files: vec!["-".into()],
        stdin: Some(text.to_string()),
        working_dir: dir,
        environment: [("SET".to_string(), "value".to_string())].into_iter().collect(),
        ..Default::default()
    };
    if let Ok(loaded) = load::load(&opts) {
        // What loads must also print.
        let _ = serde_json::to_string(&loaded.project).expect("serialize");
        let _ = serde_yaml_ng::to_string(&loaded.project).expect("serialize yaml");
    }
});
