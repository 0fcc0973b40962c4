//! Which compose files, which project directory, which project name.
//!
//! Mirrors docker compose: `-f` files (or `COMPOSE_FILE`), else `compose.yaml` & co. found
//! in the working directory or a parent, plus its override file; the project directory is
//! `--project-directory` or the first file's folder; the name comes from `-p`,
//! `COMPOSE_PROJECT_NAME`, the top-level `name`, or the folder, normalized.

use std::path::{Path, PathBuf};

pub const FILE_NAMES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
pub const OVERRIDE_NAMES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// Finds the default compose file (and its override) in `start` or the nearest parent.
pub fn find_default(start: &Path) -> Option<Vec<PathBuf>> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if let Some(main) = FILE_NAMES.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
            let mut files = vec![main];
            if let Some(o) = OVERRIDE_NAMES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Some(files);
        }
        dir = d.parent();
    }
    None
}

/// compose-go's normalization: lowercase, keep `[a-z0-9_-]`, no leading `_` or `-`.
pub fn normalize_project_name(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

/// Whether an explicitly given name is already valid (explicit names are not rewritten).
pub fn is_valid_project_name(s: &str) -> bool {
    !s.is_empty() && normalize_project_name(s) == s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("_-x"), "x");
        assert!(is_valid_project_name("web-1_a"));
        assert!(!is_valid_project_name("Web"));
        assert!(!is_valid_project_name(""));
    }
}
