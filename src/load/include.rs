//! Top-level `include`: other compose projects pulled into this one.
//!
//! Each entry is loaded as a project of its own (its own directory, `.env` or `env_file`,
//! the including project's variables winning), then its resources join the including
//! project; a resource defined on both sides is a conflict unless identical.

use super::error::LoadError;
use super::{Source, display_name, load_tree, normalize, read_env_files};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Loads the projects a top-level `include` names, each from its own directory.
pub fn load(
    file: &str,
    file_dir: &Path,
    inc: &Value,
    parent_env: &HashMap<String, String>,
    warned: &mut BTreeSet<String>,
    depth: usize,
) -> Result<Vec<Map<String, Value>>, LoadError> {
    let err = |p: String, m: &str| LoadError::new(file, p, m);
    let Value::Array(items) = inc else {
        return Err(err("include".into(), "expected a list"));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("include[{i}]");
        let strings = |v: &Value, key: &str| -> Result<Vec<String>, LoadError> {
            match v {
                Value::String(s) => Ok(vec![s.clone()]),
                Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| err(format!("{p}.{key}"), "expected a string"))
                    })
                    .collect(),
                _ => Err(err(format!("{p}.{key}"), "expected a string or list")),
            }
        };
        let (paths, project_directory, env_files) = match item {
            Value::String(s) => (vec![s.clone()], None, None),
            Value::Object(m) => {
                for k in m.keys() {
                    if !["path", "project_directory", "env_file"].contains(&k.as_str()) {
                        return Err(err(
                            p.clone(),
                            &format!("additional property {k:?} is not allowed"),
                        ));
                    }
                }
                let paths = strings(m.get("path").unwrap_or(&Value::Null), "path")?;
                let pd = match m.get("project_directory") {
                    Some(Value::String(s)) => Some(s.clone()),
                    None => None,
                    Some(_) => {
                        return Err(err(format!("{p}.project_directory"), "expected a string"));
                    }
                };
                let ef = m
                    .get("env_file")
                    .map(|v| strings(v, "env_file"))
                    .transpose()?;
                (paths, pd, ef)
            }
            _ => return Err(err(p, "expected a string or mapping")),
        };
        // docker compose can fetch includes from git or OCI; hoist reads local files only,
        // so `config` and `plan` never depend on the network (docs/compose.md says why).
        if let Some(remote) = paths.iter().find(|f| is_remote(f)) {
            return Err(LoadError::new(
                file,
                p,
                format!(
                    "remote include {remote:?} is not supported: vendor the file (a git submodule or a copy) and include it by its path"
                ),
            ));
        }
        let files: Vec<PathBuf> = paths
            .iter()
            .map(|f| PathBuf::from(normalize::clean(&file_dir.join(f))))
            .collect();
        let dir = match &project_directory {
            Some(d) => PathBuf::from(normalize::clean(&file_dir.join(d))),
            None => files
                .first()
                .and_then(|f| f.parent())
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let env_list: Vec<(PathBuf, bool)> = match env_files {
            Some(list) => list.iter().map(|f| (file_dir.join(f), true)).collect(),
            None => vec![(dir.join(".env"), false)],
        };
        let env = read_env_files(&env_list, parent_env, file_dir)?;
        let sources: Vec<Source> = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    err(
                        p.clone(),
                        &format!("cannot read included file {}: {e}", f.display()),
                    )
                })?;
                Ok(Source {
                    name: display_name(f, file_dir),
                    path: f.clone(),
                    text,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        out.push(load_tree(&sources, &dir, &env, warned, depth + 1)?);
    }
    Ok(out)
}

/// Sources docker compose would fetch: OCI artifacts and git repositories.
fn is_remote(path: &str) -> bool {
    [
        "oci://",
        "git@",
        "git://",
        "ssh://",
        "http://",
        "https://",
        "github.com/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::is_remote;

    #[test]
    fn remote_sources_are_recognised() {
        for r in [
            "oci://docker.io/acme/stack:1",
            "git@github.com:acme/stack.git",
            "https://github.com/acme/stack.git#main:compose.yaml",
            "github.com/acme/stack",
        ] {
            assert!(is_remote(r), "{r}");
        }
        for local in [
            "./base.yaml",
            "../shared/compose.yaml",
            "/srv/compose.yaml",
            "oci.yaml",
        ] {
            assert!(!is_remote(local), "{local}");
        }
    }
}
