//! Build: images for services with `build:`, built on the local engine (the
//! computer running hoist), then shipped to machines by `ship` — no registry.
//!
//! The context is sent to the engine as a tar, honouring `.dockerignore`; an
//! inline Dockerfile travels inside that tar.

use crate::model::Build;
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Name of the inline Dockerfile inside the context tar.
const INLINE_DOCKERFILE: &str = ".hoist-inline.Dockerfile";

/// The image a service builds into: its `image:` if set, else `<project>-<service>`
/// as docker compose names it.
pub fn image_name(project: &str, service: &str, image: Option<&str>) -> String {
    image
        .map(str::to_string)
        .unwrap_or_else(|| format!("{project}-{service}"))
}

/// Builds one service's image on `local`; returns the image ID.
pub async fn build(
    local: &Docker,
    service: &str,
    build: &Build,
    tag: &str,
    platform: Option<&str>,
) -> Result<String> {
    let context = PathBuf::from(&build.context);
    if !context.is_dir() {
        bail!(
            "services.{service}.build.context: {} is not a folder",
            context.display()
        );
    }
    let dockerfile = match (&build.dockerfile_inline, &build.dockerfile) {
        (Some(_), _) => INLINE_DOCKERFILE.to_string(),
        (None, Some(d)) => d.clone(),
        (None, None) => "Dockerfile".to_string(),
    };
    let tar = context_tar(&context, build.dockerfile_inline.as_deref()).with_context(|| {
        format!(
            "services.{service}.build: packing the context {}",
            context.display()
        )
    })?;
    let args: HashMap<String, String> = build
        .args
        .iter()
        .filter_map(|(k, v)| {
            v.clone()
                .or_else(|| std::env::var(k).ok())
                .map(|v| (k.clone(), v))
        })
        .collect();
    let labels: HashMap<String, String> = build
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let options = BuildImageOptions {
        dockerfile,
        t: Some(tag.to_string()),
        rm: true,
        buildargs: Some(args),
        labels: Some(labels),
        target: build.target.clone().unwrap_or_default(),
        platform: platform.unwrap_or_default().to_string(),
        ..Default::default()
    };
    let mut stream = local.build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut last_lines: Vec<String> = Vec::new();
    let mut id = None;
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("services.{service}: build failed"))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            bail!(
                "services.{service}: build failed: {err}\n{}",
                last_lines.join("")
            );
        }
        if let Some(s) = info.stream {
            last_lines.push(s);
            if last_lines.len() > 10 {
                last_lines.remove(0);
            }
        }
        if let Some(aux) = info.aux.and_then(|a| a.id) {
            id = Some(aux);
        }
    }
    match id {
        Some(id) => Ok(id),
        None => Ok(local
            .inspect_image(tag)
            .await
            .with_context(|| format!("services.{service}: built image {tag} not found"))?
            .id
            .unwrap_or_default()),
    }
}

/// What a build of `service` depends on, as one digest (`sha256:…`): every file of its context
/// that `.dockerignore` lets through (path, kind, executable bit and content — not times, so a
/// fresh checkout of the same commit gives the same digest), the Dockerfile's name or inline
/// text, the build args and the target. `plan` compares it with the digest recorded on the
/// running replicas to know that `up` will build something new, without building.
pub fn context_digest(service: &str, build: &Build) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let context = PathBuf::from(&build.context);
    if !context.is_dir() {
        bail!(
            "services.{service}.build.context: {} is not a folder",
            context.display()
        );
    }
    let mut h = Sha256::new();
    let mut field = |tag: &str, bytes: &[u8]| {
        h.update(tag.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    let mut files = context_files(&context).with_context(|| {
        format!(
            "services.{service}.build: reading the context {}",
            context.display()
        )
    })?;
    files.sort_by(|a, b| a.1.cmp(&b.1));
    for (path, rel) in &files {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("services.{service}.build: {}", path.display()))?;
        field("path", rel.as_bytes());
        if meta.is_symlink() {
            let target = std::fs::read_link(path)?;
            field("link", target.to_string_lossy().as_bytes());
        } else if meta.is_dir() {
            field("dir", b"");
        } else {
            let exec = meta.permissions().mode() & 0o111 != 0;
            field("mode", if exec { b"x" } else { b"-" });
            let content = std::fs::read(path)
                .with_context(|| format!("services.{service}.build: reading {}", path.display()))?;
            field("file", &content);
        }
    }
    field(
        "dockerfile",
        build
            .dockerfile
            .as_deref()
            .unwrap_or("Dockerfile")
            .as_bytes(),
    );
    if let Some(text) = &build.dockerfile_inline {
        field("inline", text.as_bytes());
    }
    for (k, v) in &build.args {
        let v = v
            .clone()
            .or_else(|| std::env::var(k).ok())
            .unwrap_or_default();
        field("arg", format!("{k}={v}").as_bytes());
    }
    field(
        "target",
        build.target.as_deref().unwrap_or_default().as_bytes(),
    );
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// The files and folders of a context that `.dockerignore` lets through: (path, path relative
/// to the context with `/` separators), folders before what they hold.
fn context_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let ignore = read_dockerignore(dir);
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
            if ignored(&ignore, &rel) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(path.clone());
            }
            files.push((path, rel));
        }
    }
    Ok(files)
}

/// The build context as a tar, without what `.dockerignore` excludes.
fn context_tar(dir: &Path, inline: Option<&str>) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for (path, rel) in context_files(dir)? {
        builder.append_path_with_name(&path, &rel)?;
    }
    if let Some(text) = inline {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        builder.append_data(&mut h, INLINE_DOCKERFILE, text.as_bytes())?;
    }
    Ok(builder.into_inner()?)
}

fn read_dockerignore(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(".dockerignore"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

/// `.dockerignore` matching: each pattern matches a path or any of its parents;
/// `*` matches within one path segment, `**` across segments; `!` re-includes.
fn ignored(patterns: &[String], path: &str) -> bool {
    let mut out = false;
    for p in patterns {
        let (negate, pat) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let mut prefix = String::new();
        let mut hit = false;
        for seg in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(seg);
            if glob(pat, &prefix) {
                hit = true;
                break;
            }
        }
        if hit {
            out = !negate;
        }
    }
    out
}

fn glob(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = p[2..].strip_prefix(b"/").unwrap_or(&p[2..]);
                (0..=t.len()).any(|i| rec(rest, &t[i..]))
            }
            Some(b'*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| rec(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && t[0] != b'/' && rec(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && rec(&p[1..], &t[1..]),
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns() {
        let pats: Vec<String> = ["target", "*.log", "docs/**/*.png", "!keep.log"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(ignored(&pats, "target"));
        assert!(ignored(&pats, "target/debug/x"));
        assert!(ignored(&pats, "a.log"));
        assert!(!ignored(&pats, "keep.log"));
        assert!(!ignored(&pats, "sub/a.log"));
        assert!(ignored(&pats, "docs/img/x/y.png"));
        assert!(!ignored(&pats, "src/main.rs"));
    }

    #[test]
    fn image_names_follow_compose() {
        assert_eq!(image_name("shop", "web", None), "shop-web");
        assert_eq!(image_name("shop", "web", Some("reg/web:1")), "reg/web:1");
    }
}
