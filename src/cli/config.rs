//! `hoist config`: print the project as hoist reads it, like `docker compose config`.
//!
//! The quickest way to see what interpolation, merging, extends and profiles made of the
//! compose files, and the check a CI job runs before `plan`.

use super::project_args::ProjectArgs;
use crate::load;
use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Args, Debug)]
#[command(
    about = "Parse, resolve and print the compose project (like `docker compose config`)",
    after_help = "Examples:\n  hoist config                      # normalized YAML of ./compose.yaml (+ override)\n  hoist config -f a.yaml -f b.yaml --format json\n  hoist config -q && echo valid     # exit code 0 = valid, 1 = error\n  hoist config --services --profile debug\n  hoist config --no-interpolate     # the merged files with ${VAR} left as written"
)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Only validate; print nothing
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't interpolate variables: print the merged files with `${VAR}` as written, in
    /// the reference's partially resolved form (docs/compose.md)
    #[arg(long)]
    pub no_interpolate: bool,
    /// Pin every service's image to its manifest digest (`name:tag@sha256:…`), asked of the
    /// registry through this computer's Docker engine, as `docker compose` does (docs/compose.md)
    #[arg(long)]
    pub resolve_image_digests: bool,
    /// Only these services and their dependencies (enabled whatever their profiles)
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
}

pub async fn run(args: &ConfigArgs) -> ExitCode {
    match render(args).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hoist: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn render(args: &ConfigArgs) -> anyhow::Result<String> {
    if args.no_interpolate && args.resolve_image_digests {
        anyhow::bail!(
            "--resolve-image-digests needs the interpolated project (image names may hold \
             variables): leave out --no-interpolate"
        );
    }
    if args.no_interpolate {
        return render_raw(args);
    }
    let mut opts = args.project.load_options()?;
    // Like the reference, `--services`/`--volumes` list the whole project.
    if !(args.services || args.volumes) {
        opts.services = args.service_names.clone();
    }
    let mut loaded = load::load(&opts)?;
    for w in &loaded.warnings {
        eprintln!("hoist: warning: {w}");
    }
    super::check_project(&loaded.project, &args.project, None)?;
    if args.resolve_image_digests {
        resolve_digests(&mut loaded.project).await?;
    }
    let project = &loaded.project;
    if args.quiet {
        return Ok(String::new());
    }
    if args.services || args.volumes {
        let mut out = String::new();
        if args.services {
            project
                .services
                .keys()
                .for_each(|k| out.push_str(&format!("{k}\n")));
        }
        if args.volumes {
            project
                .volumes
                .keys()
                .for_each(|k| out.push_str(&format!("{k}\n")));
        }
        return Ok(out);
    }
    let text = match args.format {
        Format::Yaml => {
            let mut out = String::new();
            emit_yaml(&yaml_view(serde_json::to_value(project)?), 0, &mut out);
            out
        }
        Format::Json => serde_json::to_string_pretty(project)? + "\n",
    };
    // The printed project must load again with the same values: escape `$` as compose does.
    Ok(text.replace('$', "$$"))
}

/// `--resolve-image-digests`: each service's image pinned to the digest the registry gives
/// for it, asked through this computer's engine as the reference asks through its own
/// (`pipeline::pin::digests_for_config`). The digest comes from the registry, never from what
/// an engine has stored: with no engine here, or no registry reachable from here, it fails,
/// naming the service and the image.
async fn resolve_digests(project: &mut crate::model::Project) -> anyhow::Result<()> {
    let Some(local) = crate::pipeline::local::engine().await else {
        anyhow::bail!(
            "--resolve-image-digests asks each image's registry for its digest through this \
             computer's Docker engine (as docker compose does), and none answers here \
             (DOCKER_HOST or /var/run/docker.sock); start one, or drop the option: `hoist plan` \
             shows the digest the machines will run"
        );
    };
    let pinned =
        crate::pipeline::pin::digests_for_config(project, &local, "this computer's engine").await?;
    for (service, image) in pinned {
        if let Some(svc) = project.services.get_mut(&service) {
            svc.image = Some(image);
        }
    }
    Ok(())
}

/// `--no-interpolate`: the raw model (`load::raw`), printed without `$` escaping (its
/// variables are meant to stay variables), as the reference does.
fn render_raw(args: &ConfigArgs) -> anyhow::Result<String> {
    let opts = args.project.load_options()?;
    if !args.service_names.is_empty() {
        eprintln!(
            "hoist: warning: service filtering is not applied when --no-interpolate is set, the full model will be rendered"
        );
    }
    let model = load::raw::load(&opts)?;
    if args.quiet {
        return Ok(String::new());
    }
    let keys = |section: &str| -> String {
        model
            .get(section)
            .and_then(serde_json::Value::as_object)
            .map(|m| m.keys().map(|k| format!("{k}\n")).collect())
            .unwrap_or_default()
    };
    if args.services || args.volumes {
        let mut out = String::new();
        if args.services {
            out.push_str(&keys("services"));
        }
        if args.volumes {
            out.push_str(&keys("volumes"));
        }
        return Ok(out);
    }
    Ok(match args.format {
        Format::Yaml => {
            let mut out = String::new();
            emit_yaml(&model, 0, &mut out);
            out
        }
        Format::Json => serde_json::to_string_pretty(&load::raw::json_view(model))? + "\n",
    })
}

/// The reference's YAML leaves out a few empty values its JSON prints (`command: null`,
/// `placement: {}`, ...); drop them so both outputs match the reference's.
fn yaml_view(mut v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
    if let Some(Value::Object(services)) = v.get_mut("services") {
        for svc in services.values_mut() {
            let Some(m) = svc.as_object_mut() else {
                continue;
            };
            m.retain(|k, v| !(matches!(k.as_str(), "command" | "entrypoint") && v.is_null()));
            if let Some(Value::Object(d)) = m.get_mut("deploy") {
                d.retain(|k, v| !(matches!(k.as_str(), "placement" | "resources") && empty(v)));
            }
            if let Some(Value::Array(watch)) = m.get_mut("develop").and_then(|d| d.get_mut("watch"))
            {
                for w in watch.iter_mut().filter_map(Value::as_object_mut) {
                    if w.get("exec")
                        .is_some_and(|e| e.get("command").is_some_and(Value::is_null))
                    {
                        w.remove("exec");
                    }
                }
            }
        }
    }
    if let Some(Value::Object(networks)) = v.get_mut("networks") {
        for n in networks.values_mut().filter_map(Value::as_object_mut) {
            if n.get("ipam").is_some_and(empty) {
                n.remove("ipam");
            }
        }
    }
    v
}

/// Writes `v` as block YAML. Strings a YAML 1.1 reader could take for something else
/// (`yes`, `0440`, `1e3`, `~`, ...) are double-quoted, as the reference does.
fn emit_yaml(v: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                out.push_str(&pad);
                out.push_str(&yaml_scalar_str(k));
                out.push(':');
                emit_child(val, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push_str("  -");
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // The first key goes on the dash line, the rest align under it.
                        let mut first = true;
                        for (k, val) in m {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                out.push_str(&" ".repeat(indent + 4));
                            }
                            out.push_str(&yaml_scalar_str(k));
                            out.push(':');
                            emit_child(val, indent + 4, out);
                        }
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out.push('\n');
                        emit_yaml(item, indent + 2, out);
                    }
                    other => {
                        out.push(' ');
                        out.push_str(&yaml_scalar(other));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
}

fn emit_child(val: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    match val {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_yaml(val, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit_yaml(val, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
}

fn yaml_scalar(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_scalar_str(s),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
    }
}

fn yaml_scalar_str(s: &str) -> String {
    let plain_char = |c: char| c.is_ascii_alphanumeric() || "_./@%+-=()$,".contains(c);
    let ambiguous = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    ) || s.parse::<f64>().is_ok()
        || s.starts_with(['-', '.', '0'])
        || s.chars().next().is_some_and(|c| c.is_ascii_digit())
        || s.ends_with([':', '-']);
    let plain = !ambiguous
        && s.chars().all(|c| plain_char(c) || c == ':' || c == ' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.starts_with(' ')
        && !s.ends_with(' ');
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}
