//! The `load` stage: compose files → typed, normalized [`Project`], exactly as
//! docker compose v2 (compose-go) reads them.
//!
//! Pipeline per file: YAML (tags, merge keys) → interpolation (+ type casts) → key checks →
//! `extends` → `include`; then files merge in order, short syntax becomes long syntax,
//! profiles filter services, references are checked, and compose-go's defaults (default
//! network, resource names) are applied. Each step lives in its own module.

pub mod consistency;
pub mod discovery;
pub mod dotenv;
pub mod error;
pub mod extends;
pub mod include;
pub mod interpolate;
pub mod merge;
pub mod normalize;
pub mod project;
pub mod raw;
pub mod validate;
pub mod x_hoist;
pub mod yaml;
pub mod zero;

pub use error::LoadError;

use crate::model::Project;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Everything `docker compose` reads from its command line and environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f` files in order; empty = discovery. `-` reads `stdin`.
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub project_directory: Option<PathBuf>,
    /// `--env-file`s; empty = `.env` in the project directory.
    pub env_files: Vec<PathBuf>,
    /// `--profile`s; empty = `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// The directory relative `-f`/`--env-file` paths start from.
    pub working_dir: PathBuf,
    /// The process environment (wins over `.env`).
    pub environment: HashMap<String, String>,
    /// The text of `-f -`.
    pub stdin: Option<String>,
    /// Services named on the command line: only they and their dependencies are kept,
    /// and they are enabled whatever their profiles.
    pub services: Vec<String>,
}

impl LoadOptions {
    /// Options for the current process: its working directory and environment.
    pub fn from_process() -> Self {
        LoadOptions {
            working_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            environment: std::env::vars().collect(),
            ..Default::default()
        }
    }
}

/// A loaded project and the warnings met on the way (unset variables, ...).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: Project,
    pub warnings: Vec<String>,
}

/// Loads the project the options describe.
pub fn load(opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let cwd = &opts.working_dir;
    let files = match compose_files(opts)? {
        files if files.is_empty() => {
            return Err(LoadError::new(
                "",
                "",
                "no configuration file provided: not found",
            ));
        }
        files => files,
    };
    let project_dir = match &opts.project_directory {
        Some(d) => PathBuf::from(normalize::clean(&cwd.join(d))),
        None => match files.first() {
            Some(f) if f.as_os_str() != "-" => {
                f.parent().map(Path::to_path_buf).unwrap_or_default()
            }
            _ => cwd.clone(),
        },
    };
    let env = environment(opts, &project_dir)?;
    let mut warned = BTreeSet::new();
    let sources: Vec<Source> = files
        .iter()
        .map(|f| Source::read(f, opts))
        .collect::<Result<_, _>>()?;
    let mut tree = load_tree(&sources, &project_dir, &env, &mut warned, 0)?;
    // Only the merged result must say something: an override of only comments (a
    // fork's customisation seam) is fine, as with the reference.
    if tree.is_empty() {
        let file = sources.first().map(|s| s.name.clone()).unwrap_or_default();
        return Err(LoadError::new(file, "", "empty compose file"));
    }
    let name = project_name(opts, &env, &tree, &project_dir, &sources)?;
    let profiles = if opts.profiles.is_empty() {
        env.get("COMPOSE_PROFILES")
            .map(|p| {
                p.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        opts.profiles.clone()
    };
    let main_file = sources.first().map(|s| s.name.clone()).unwrap_or_default();
    project::apply_profiles(&mut tree, &profiles, &opts.services);
    project::select(&mut tree, &opts.services)
        .map_err(|(p, m)| LoadError::new(main_file.clone(), p, m))?;
    validate::references(&tree).map_err(|(p, m)| LoadError::new(main_file.clone(), p, m))?;
    consistency::check(&tree).map_err(|(p, m)| LoadError::new(main_file.clone(), p, m))?;
    let project =
        project::finalize(tree, &name).map_err(|(p, m)| LoadError::new(main_file, p, m))?;
    let warnings = warned
        .into_iter()
        .map(|v| format!("the {v:?} variable is not set, defaulting to a blank string"))
        .collect();
    Ok(Loaded { project, warnings })
}

fn compose_files(opts: &LoadOptions) -> Result<Vec<PathBuf>, LoadError> {
    let cwd = &opts.working_dir;
    if !opts.files.is_empty() {
        return Ok(opts
            .files
            .iter()
            .map(|f| {
                if f.as_os_str() == "-" {
                    f.clone()
                } else {
                    PathBuf::from(normalize::clean(&cwd.join(f)))
                }
            })
            .collect());
    }
    let start = match &opts.project_directory {
        Some(d) => cwd.join(d),
        None => cwd.clone(),
    };
    // COMPOSE_FILE may also come from the `.env` of the starting folder.
    let env = environment(opts, &start)?;
    if let Some(list) = env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = env
            .get("COMPOSE_PATH_SEPARATOR")
            .cloned()
            .unwrap_or_else(|| ":".to_string());
        return Ok(list
            .split(sep.as_str())
            .filter(|s| !s.is_empty())
            .map(|f| PathBuf::from(normalize::clean(&cwd.join(f))))
            .collect());
    }
    Ok(discovery::find_default(&start).unwrap_or_default())
}

/// The variables interpolation sees: env files, overridden by the process environment.
fn environment(
    opts: &LoadOptions,
    project_dir: &Path,
) -> Result<HashMap<String, String>, LoadError> {
    // `--env-file`s, else `COMPOSE_ENV_FILES` (comma-separated, from the process
    // environment as docker compose reads it), else the project's optional `.env`.
    let from_env: Vec<PathBuf> = opts
        .environment
        .get("COMPOSE_ENV_FILES")
        .map(|l| {
            l.split(',')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let chosen = if opts.env_files.is_empty() {
        &from_env
    } else {
        &opts.env_files
    };
    let files: Vec<(PathBuf, bool)> = if chosen.is_empty() {
        vec![(project_dir.join(".env"), false)]
    } else {
        chosen
            .iter()
            .map(|f| (opts.working_dir.join(f), true))
            .collect()
    };
    read_env_files(&files, &opts.environment, &opts.working_dir)
}

/// Reads env files in order (later wins), then the process environment on top.
/// Errors name files relative to `cwd`.
pub(super) fn read_env_files(
    files: &[(PathBuf, bool)],
    os: &HashMap<String, String>,
    cwd: &Path,
) -> Result<HashMap<String, String>, LoadError> {
    let mut env: HashMap<String, String> = HashMap::new();
    for (path, required) in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(_) if !required => continue,
            Err(e) => {
                return Err(LoadError::new(
                    display_name(path, cwd),
                    "",
                    format!("cannot read env file: {e}"),
                ));
            }
        };
        if path.is_dir() {
            continue;
        }
        let snapshot = env.clone();
        let lookup = |k: &str| os.get(k).or_else(|| snapshot.get(k)).cloned();
        let vars = dotenv::parse(&text, &lookup)
            .map_err(|e| LoadError::new(display_name(path, cwd), "", e))?;
        env.extend(vars);
    }
    for (k, v) in os {
        env.insert(k.clone(), v.clone());
    }
    Ok(env)
}

fn project_name(
    opts: &LoadOptions,
    env: &HashMap<String, String>,
    tree: &Map<String, Value>,
    project_dir: &Path,
    sources: &[Source],
) -> Result<String, LoadError> {
    let explicit = opts
        .project_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .filter(|s| !s.is_empty())
                .cloned()
        });
    if let Some(n) = explicit {
        if !discovery::is_valid_project_name(&n) {
            return Err(LoadError::new(
                "",
                "",
                format!(
                    "invalid project name {n:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
                ),
            ));
        }
        return Ok(n);
    }
    // A name from the files is normalized like a folder name (`My App` → `myapp`), not
    // refused: only names given on the command line or in the environment must be exact.
    if let Some(Value::String(n)) = tree.get("name").filter(|n| n.as_str() != Some("")) {
        let normalized = discovery::normalize_project_name(n);
        if normalized.is_empty() {
            let file = sources.first().map(|s| s.name.clone()).unwrap_or_default();
            return Err(LoadError::new(
                file,
                "name",
                format!(
                    "project name must not be empty: {n:?} has no letter, digit, '-' or '_' to keep"
                ),
            ));
        }
        return Ok(normalized);
    }
    let base = project_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = discovery::normalize_project_name(&base);
    if n.is_empty() {
        return Err(LoadError::new("", "", "project name must not be empty"));
    }
    Ok(n)
}

/// One compose file's text and how errors name it.
pub(super) struct Source {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) text: String,
}

impl Source {
    fn read(path: &Path, opts: &LoadOptions) -> Result<Source, LoadError> {
        if path.as_os_str() == "-" {
            return Ok(Source {
                name: "-".to_string(),
                path: opts.working_dir.join("-"),
                text: opts.stdin.clone().unwrap_or_default(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            LoadError::new(
                path.display().to_string(),
                "",
                format!("cannot read compose file: {e}"),
            )
        })?;
        Ok(Source {
            name: display_name(path, &opts.working_dir),
            path: path.to_path_buf(),
            text,
        })
    }
}

pub(super) fn display_name(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Parses, interpolates and checks one file's documents; resolves `extends`.
fn read_documents(
    src: &Source,
    env: &HashMap<String, String>,
    warned: &mut BTreeSet<String>,
    depth: usize,
    interpolate: bool,
) -> Result<Vec<Value>, LoadError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(LoadError::new(
            src.name.clone(),
            "include",
            format!(
                "more than {MAX_INCLUDE_DEPTH} nested includes or extends: does a file include itself, directly or through others?"
            ),
        ));
    }
    let docs = yaml::parse(&src.text).map_err(|e| LoadError::new(src.name.clone(), "", e))?;
    let lookup = |k: &str| env.get(k).cloned();
    let mut out = Vec::with_capacity(docs.len());
    for mut doc in docs {
        if interpolate {
            interpolate::interpolate_tree(&mut doc, &lookup, &mut |v| {
                warned.insert(v.to_string());
            })
            .map_err(|(p, m)| LoadError::new(src.name.clone(), p, m))?;
        }
        let plain = merge::strip_tags(doc.clone());
        validate::keys(&plain).map_err(|(p, m)| LoadError::new(src.name.clone(), p, m))?;
        if extends::any(&doc) {
            let cwd = src.path.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut loader = |p: &Path| -> Result<Value, LoadError> {
                let other = Source {
                    name: display_name(p, &cwd),
                    path: p.to_path_buf(),
                    text: std::fs::read_to_string(p).map_err(|e| {
                        LoadError::new(
                            p.display().to_string(),
                            "",
                            format!("cannot read extended file: {e}"),
                        )
                    })?,
                };
                let mut inner = BTreeSet::new();
                let docs = read_documents(&other, env, &mut inner, depth + 1, interpolate)?;
                Ok(docs.into_iter().fold(Value::Null, |acc, d| {
                    if acc.is_null() {
                        merge::strip_tags(d)
                    } else {
                        merge::merge_documents(acc, d)
                    }
                }))
            };
            extends::resolve(&mut doc, &src.path, &mut loader)?;
        }
        out.push(doc);
    }
    Ok(out)
}

/// Loads files into one normalized tree (no profiles, names or defaults yet).
pub(super) fn load_tree(
    sources: &[Source],
    dir: &Path,
    env: &HashMap<String, String>,
    warned: &mut BTreeSet<String>,
    depth: usize,
) -> Result<Map<String, Value>, LoadError> {
    let lookup = |k: &str| env.get(k).cloned();
    let mut merged: Option<Value> = None;
    let mut included: Vec<(String, Map<String, Value>)> = Vec::new();
    for src in sources {
        for mut doc in read_documents(src, env, warned, depth, true)? {
            if let Some(inc) = doc.as_object_mut().and_then(|m| m.remove("include")) {
                let file_dir = src.path.parent().unwrap_or(dir);
                for tree in include::load(&src.name, file_dir, &inc, env, warned, depth)? {
                    included.push((src.name.clone(), tree));
                }
            }
            // Type errors are reported against the file that has them.
            let check = normalize::Ctx {
                dir,
                lookup: &lookup,
                read_env_files: false,
            };
            normalize_tree(&check, &merge::strip_tags(doc.clone()))
                .map_err(|(p, m)| LoadError::new(src.name.clone(), p, m))?;
            merged = Some(merge::enforce_unicity(match merged {
                None => merge::strip_tags(doc),
                Some(base) => merge::merge_documents(base, doc),
            }));
        }
    }
    let merged = merged.unwrap_or_else(|| Value::Object(Map::new()));
    let ctx = normalize::Ctx {
        dir,
        lookup: &lookup,
        read_env_files: true,
    };
    let main_file = sources.first().map(|s| s.name.clone()).unwrap_or_default();
    let mut tree =
        normalize_tree(&ctx, &merged).map_err(|(p, m)| LoadError::new(main_file, p, m))?;
    for (file, inc) in included {
        for (section, entries) in inc {
            let Value::Object(entries) = entries else {
                continue;
            };
            if section == "name" {
                continue;
            }
            let target = tree
                .entry(section.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(target) = target.as_object_mut() else {
                continue;
            };
            for (k, v) in entries {
                match target.get(&k) {
                    Some(existing) if *existing != v => {
                        return Err(LoadError::new(
                            file.clone(),
                            format!("{section}.{k}"),
                            "conflicts with imported resource",
                        ));
                    }
                    _ => {
                        target.insert(k, v);
                    }
                }
            }
        }
    }
    Ok(tree)
}

fn normalize_tree(
    ctx: &normalize::Ctx,
    doc: &Value,
) -> Result<Map<String, Value>, normalize::Fail> {
    let mut out = Map::new();
    let Value::Object(m) = doc else {
        return Err((
            String::new(),
            "top-level object must be a mapping".to_string(),
        ));
    };
    for (k, v) in m {
        let nv = match k.as_str() {
            "services" => {
                let mut s = Map::new();
                if let Value::Object(services) = v {
                    for (name, svc) in services {
                        s.insert(
                            name.clone(),
                            normalize::service(ctx, &format!("services.{name}"), svc)?,
                        );
                    }
                } else {
                    return Err(("services".to_string(), "must be a mapping".to_string()));
                }
                Value::Object(s)
            }
            "networks" | "volumes" | "secrets" | "configs" => {
                let mut s = Map::new();
                if let Value::Object(defs) = v {
                    for (name, def) in defs {
                        s.insert(
                            name.clone(),
                            normalize::resource_def(ctx, k, &format!("{k}.{name}"), def)?,
                        );
                    }
                } else {
                    return Err((k.clone(), "must be a mapping".to_string()));
                }
                Value::Object(s)
            }
            "name" => Value::String(normalize::string("name", v)?),
            "version" | "include" => continue,
            _ => v.clone(),
        };
        out.insert(k.clone(), nv);
    }
    Ok(out)
}
