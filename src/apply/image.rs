//! Images on machines: make sure each machine has the image a replica needs,
//! pulling it with the user's own registry credentials (the docker config's
//! `auths`, `credsStore` and `credHelpers`, exactly where `docker pull` looks).

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use serde_json::Value;
use std::path::PathBuf;

/// Compose's `pull_policy`, as far as machines are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only when the machine lacks the image (Compose's default).
    Missing,
    Always,
    /// Never pull: the image must be there (shipped or preloaded).
    Never,
}

impl PullPolicy {
    pub fn from_compose(v: Option<&str>) -> Result<PullPolicy> {
        Ok(match v {
            None | Some("missing") | Some("if_not_present") | Some("build") => PullPolicy::Missing,
            Some("always") => PullPolicy::Always,
            Some("never") => PullPolicy::Never,
            Some(other) => {
                bail!("pull_policy {other:?} is not supported (use missing, always or never)")
            }
        })
    }
}

/// The registry host an image reference points at, as the docker config keys it.
pub fn registry_host(image: &str) -> String {
    let first = image.split('/').next().unwrap_or("");
    if image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        first.to_string()
    } else {
        "https://index.docker.io/v1/".to_string()
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Where the credentials come from, for messages.
pub fn docker_config_shown() -> String {
    docker_config_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "no docker config: neither DOCKER_CONFIG nor HOME is set".into())
}

/// The user's credentials for `host`, or None to pull anonymously.
pub fn credentials(host: &str) -> Result<Option<DockerCredentials>> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let cfg: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let short = host.trim_start_matches("https://").trim_end_matches("/v1/");
    let helper = cfg
        .get("credHelpers")
        .and_then(|h| h.get(host).or_else(|| h.get(short)))
        .or_else(|| cfg.get("credsStore"))
        .and_then(Value::as_str);
    if let Some(helper) = helper {
        return from_helper(helper, host);
    }
    let auths = cfg.get("auths");
    let entry = auths.and_then(|a| a.get(host).or_else(|| a.get(short)));
    let Some(entry) = entry else {
        return Ok(None);
    };
    if let Some(token) = entry.get("identitytoken").and_then(Value::as_str) {
        return Ok(Some(DockerCredentials {
            identitytoken: Some(token.to_string()),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }));
    }
    let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .with_context(|| format!("{}: auths.{host}.auth is not base64", path.display()))?;
    let decoded = String::from_utf8_lossy(&decoded);
    let (user, pass) = decoded
        .split_once(':')
        .with_context(|| format!("{}: auths.{host}.auth is not user:password", path.display()))?;
    Ok(Some(DockerCredentials {
        username: Some(user.to_string()),
        password: Some(pass.to_string()),
        serveraddress: Some(host.to_string()),
        ..Default::default()
    }))
}

fn from_helper(helper: &str, host: &str) -> Result<Option<DockerCredentials>> {
    use std::io::Write;
    let program = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("running the credential helper {program} (from your docker config)")
        })?;
    child
        .stdin
        .take()
        .context("credential helper stdin")?
        .write_all(host.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        // "credentials not found" is an anonymous pull, not an error.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{program} answered with invalid JSON"))?;
    let user = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    Ok(Some(if user == "<token>" {
        DockerCredentials {
            identitytoken: Some(secret.to_string()),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }
    } else {
        DockerCredentials {
            username: Some(user.to_string()),
            password: Some(secret.to_string()),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }
    }))
}

/// Makes sure the machine has `image` according to `policy`.
pub async fn ensure(docker: &Docker, machine: &str, image: &str, policy: PullPolicy) -> Result<()> {
    let present = docker.inspect_image(image).await.is_ok();
    match policy {
        PullPolicy::Missing if present => return Ok(()),
        PullPolicy::Never if present => return Ok(()),
        PullPolicy::Never => bail!(
            "{machine}: image {image} is not on the machine and pull_policy is never; ship it with `hoist build` or load it there"
        ),
        _ => {}
    }
    let creds = credentials(&registry_host(image))?;
    let (repo, tag) = split_tag(image);
    let mut stream = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        }),
        None,
        creds,
    );
    while let Some(item) = stream.next().await {
        let message = match item {
            Err(e) => Some(e.to_string()),
            Ok(info) => info.error_detail.and_then(|d| d.message),
        };
        if let Some(e) = message {
            let host = registry_host(image);
            let host = if host.contains("index.docker.io") {
                "docker.io"
            } else {
                host.as_str()
            };
            bail!(
                "{machine}: pulling {image} from registry {host} failed: {e}\n  the machine must reach {host} and trust its certificate; hoist sends the credentials your docker config ({}) has for it",
                docker_config_shown()
            );
        }
    }
    Ok(())
}

/// `repo:tag` or `repo@digest` → (repo, tag-or-digest); `latest` when untagged.
pub fn split_tag(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_host("nginx"), "https://index.docker.io/v1/");
        assert_eq!(
            registry_host("library/nginx:1"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(registry_host("ghcr.io/acme/app:1"), "ghcr.io");
        assert_eq!(registry_host("localhost:5000/app"), "localhost:5000");
    }

    #[test]
    fn tags() {
        assert_eq!(split_tag("app"), ("app", "latest"));
        assert_eq!(split_tag("app:1.2"), ("app", "1.2"));
        assert_eq!(split_tag("reg:5000/app"), ("reg:5000/app", "latest"));
        assert_eq!(split_tag("app@sha256:ab"), ("app", "sha256:ab"));
    }

    #[test]
    fn reads_auths_from_the_docker_config() {
        let dir = std::env::temp_dir().join(format!("hoist-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"}}}"#,
        )
        .unwrap();
        // SAFETY: this test alone reads DOCKER_CONFIG in this process.
        unsafe { std::env::set_var("DOCKER_CONFIG", &dir) };
        let c = credentials("ghcr.io").unwrap().unwrap();
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some("pass"));
        assert!(credentials("quay.io").unwrap().is_none());
        unsafe { std::env::remove_var("DOCKER_CONFIG") };
        std::fs::remove_dir_all(dir).unwrap();
    }
}
