//! Volume data: list a project's volumes, back one up to a file, restore a file into one.
//!
//! Named volumes are the one thing hoist deploys whose content is the user's, so these
//! operations are careful in a fixed way: a backup is consistent (the service's replicas on the
//! machine are stopped for the copy and started again, or a command the service declares in
//! `x-hoist.backup` is run first and they keep running), compressed and checksummed; a restore
//! verifies the whole file before it touches anything and never replaces what a non-empty
//! volume holds unless asked to. The bytes stream between the engine and the local file; the
//! machine keeps no copy (see `data` and `archive`).

pub mod archive;
pub mod data;
pub mod delta;
pub mod moves;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a backup command may run when `x-hoist.backup.timeout` is unset.
const DEFAULT_BACKUP_TIMEOUT: Duration = Duration::from_secs(300);

/// A service's `x-hoist.backup`: the command that makes its volume consistent while it runs
/// (e.g. a database's checkpoint or dump into the volume), run in a running replica before the
/// copy instead of stopping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCommand {
    /// Exec form; a string in the file becomes `/bin/sh -c STRING`.
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// Every service's `x-hoist.backup`, each mistake named by its key.
pub fn backup_commands(project: &crate::model::Project) -> Result<BTreeMap<String, BackupCommand>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, svc) in &project.services {
        let Some(b) = svc.extension("x-hoist").and_then(|x| x.get("backup")) else {
            continue;
        };
        match parse_backup(b) {
            Ok(c) => {
                out.insert(name.clone(), c);
            }
            Err(e) => problems.push(format!("services.{name}.x-hoist.backup: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(out)
}

fn parse_backup(v: &Value) -> Result<BackupCommand> {
    let Some(map) = v.as_object() else {
        bail!("expected a mapping with command and timeout");
    };
    for key in map.keys() {
        if !["command", "timeout"].contains(&key.as_str()) {
            bail!("unknown key {key:?} (command, timeout)");
        }
    }
    let command = match map.get("command") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            vec!["/bin/sh".to_string(), "-c".to_string(), s.clone()]
        }
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(s.clone()),
                other => bail!("command[{i}]: expected a string, got {other}"),
            })
            .collect::<Result<_>>()?,
        None => bail!("command is required (a string for /bin/sh -c, or a list)"),
        Some(other) => bail!("command: expected a non-empty string or list, got {other}"),
    };
    let timeout = match map.get("timeout") {
        None => DEFAULT_BACKUP_TIMEOUT,
        Some(Value::String(s)) => {
            crate::duration::parse(s).map_err(|e| anyhow::anyhow!("timeout: {e}"))?
        }
        Some(v) => match v.as_f64() {
            Some(s) if s > 0.0 => Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| *d <= crate::duration::MAX)
                .with_context(|| format!("timeout: {v} is too long"))?,
            _ => bail!("timeout: {v} is not a duration"),
        },
    };
    if timeout.is_zero() {
        bail!("timeout: must be above 0");
    }
    Ok(BackupCommand { command, timeout })
}

/// Which volume a `VOLUME|SERVICE` argument names among the volumes seen: the engine's name,
/// the compose key (`data` for `shop_data`), or a service that mounts exactly one volume.
/// Returns the volume's engine name, or why none or several fit.
pub fn resolve_name(project: &str, what: &str, seen: &[data::SeenVolume]) -> Result<String> {
    let mut names: Vec<&str> = seen.iter().map(|v| v.name.as_str()).collect();
    names.sort();
    names.dedup();
    let prefixed = format!("{project}_{what}");
    for n in &names {
        if *n == what || *n == prefixed {
            return Ok(n.to_string());
        }
    }
    let mut of_service: Vec<&str> = seen
        .iter()
        .filter(|v| v.services.iter().any(|s| s == what))
        .map(|v| v.name.as_str())
        .collect();
    of_service.sort();
    of_service.dedup();
    match of_service.as_slice() {
        [one] => Ok(one.to_string()),
        [] if names.is_empty() => bail!(
            "project {project} has no volume on any reachable machine (`hoist volumes ls` lists them)"
        ),
        [] => bail!(
            "no volume or service {what:?} in project {project}; its volumes: {}",
            names.join(", ")
        ),
        many => bail!(
            "service {what} mounts several volumes ({}); name one of them",
            many.join(", ")
        ),
    }
}

/// The services a drain of `leaving` would strand: a replicated service keeps its data in a
/// named volume on a leaving machine and no machine that stays holds a volume of that name
/// (global services keep per-machine data and simply leave). One message each, saying what to do.
pub fn stranded(
    seen: &[data::SeenVolume],
    leaving: &std::collections::BTreeSet<String>,
    global: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for v in seen.iter().filter(|v| leaving.contains(&v.machine)) {
        let services: Vec<&str> = v
            .services
            .iter()
            .filter(|s| !global.contains(*s))
            .map(String::as_str)
            .collect();
        if services.is_empty() {
            continue;
        }
        let copy_elsewhere = seen
            .iter()
            .any(|o| o.name == v.name && !leaving.contains(&o.machine));
        if copy_elsewhere {
            continue;
        }
        out.push(format!(
            "{} keeps its data in volume {} on {}{}, and no machine that stays holds a copy. Pass --move-volumes to move it with its data (stopped for a verified copy), or copy it yourself — `hoist volumes backup {} --machine {} -o {}.hoist`, then `hoist volumes restore {}.hoist --machine OTHER` (the service follows its data there) — and drain again.",
            services.join(", "),
            v.name,
            v.machine,
            v.size
                .map(|s| format!(" ({})", crate::output::bytes(s)))
                .unwrap_or_default(),
            v.name,
            v.machine,
            v.name,
            v.name
        ));
    }
    out
}

/// What a backup did.
#[derive(Debug, serde::Serialize)]
pub struct BackupReport {
    pub manifest: archive::Manifest,
    /// How long the service's replicas on the machine were stopped, if they were.
    pub stopped_for: Option<Duration>,
    pub took: Duration,
}

/// The replicas of `project` among `users` that run; refuses when a container that is not the
/// project's runs with the volume (hoist cannot make it consistent).
fn running_replicas<'a>(
    users: &'a [data::User],
    project: &str,
    machine: &str,
    volume: &str,
) -> Result<Vec<&'a data::User>> {
    if let Some(other) = users
        .iter()
        .find(|u| u.running && u.project.as_deref() != Some(project))
    {
        bail!(
            "{machine}: container {} uses volume {volume} and is not a replica of project {project}; stop it first (docker stop {})",
            other.name,
            other.name
        );
    }
    Ok(users.iter().filter(|u| u.running).collect())
}

fn replica_names(users: &[&data::User]) -> String {
    users
        .iter()
        .map(|u| match (&u.service, &u.slot) {
            (Some(s), Some(n)) if n != "global" => format!("{s}.{n}"),
            (Some(s), _) => s.clone(),
            _ => u.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn stop_all(docker: &Docker, users: &[&data::User]) -> Result<()> {
    let stops = users
        .iter()
        .map(|u| crate::apply::ops::stop(docker, &u.id, None));
    for r in futures_util::future::join_all(stops).await {
        r?;
    }
    Ok(())
}

async fn start_all(docker: &Docker, users: &[&data::User]) -> Result<()> {
    let starts = users
        .iter()
        .map(|u| crate::apply::ops::start(docker, &u.id));
    let mut failed = Vec::new();
    for (u, r) in users
        .iter()
        .zip(futures_util::future::join_all(starts).await)
    {
        if let Err(e) = r {
            failed.push(format!("{}: {e:#}", u.name));
        }
    }
    if !failed.is_empty() {
        bail!("could not start again: {}", failed.join("; "));
    }
    Ok(())
}

/// Backs `volume` on `machine` up into the file `out`. The service that uses it is given by
/// the volume's users; `commands` are the services' `x-hoist.backup`.
pub async fn backup(
    docker: &Docker,
    machine: &str,
    project: &str,
    volume: &str,
    commands: &BTreeMap<String, BackupCommand>,
    out: &Path,
) -> Result<BackupReport> {
    let started = Instant::now();
    let users = data::users(docker, volume).await?;
    let running = running_replicas(&users, project, machine, volume)?;
    let service = users.iter().find_map(|u| u.service.clone());
    let writer = archive::Writer::create(out)?;
    let image = data::helper_image(docker, &users).await?;
    let helper = data::Helper::create(docker, project, volume, &image)
        .await
        .with_context(|| format!("{machine}: volume {volume}"))?;

    // Consistency: the service's own command while it runs, else stop it for the copy.
    let command = service.as_ref().and_then(|s| commands.get(s));
    let (consistency, to_stop): (String, Vec<&data::User>) = match (command, running.first()) {
        (Some(cmd), Some(replica)) => {
            let argv: Vec<&str> = cmd.command.iter().map(String::as_str).collect();
            let ran = tokio::time::timeout(
                cmd.timeout,
                crate::apply::ops::exec(docker, &replica.id, &argv),
            )
            .await;
            let failure = match ran {
                Ok(Ok((0, _))) => None,
                Ok(Ok((code, text))) => Some(format!("exited with {code}: {}", text.trim())),
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some(format!(
                    "still running after {}s (x-hoist.backup.timeout)",
                    cmd.timeout.as_secs()
                )),
            };
            if let Some(why) = failure {
                let _ = helper.remove().await;
                writer.abandon();
                bail!(
                    "{machine}: the backup command of {} in {} {why}; nothing was backed up",
                    service.as_deref().unwrap_or_default(),
                    replica.name
                );
            }
            (
                format!(
                    "x-hoist.backup.command ran in {}; replicas kept running",
                    replica_names(&[replica])
                ),
                Vec::new(),
            )
        }
        (_, None) => ("no replica was running".to_string(), Vec::new()),
        (None, Some(_)) => (
            format!("{} stopped for the copy", replica_names(&running)),
            running.clone(),
        ),
    };
    let stop_began = Instant::now();
    if !to_stop.is_empty() {
        say!(
            "{machine}: stopping {} for a consistent copy of {volume}",
            replica_names(&to_stop)
        );
        if let Err(e) = stop_all(docker, &to_stop).await {
            let _ = start_all(docker, &to_stop).await;
            let _ = helper.remove().await;
            writer.abandon();
            return Err(e.context(format!("{machine}: stopping the users of {volume}")));
        }
    }
    let copied = copy_out(&helper, writer).await;
    let stopped_for = (!to_stop.is_empty()).then(|| stop_began.elapsed());
    let restarted = if to_stop.is_empty() {
        Ok(())
    } else {
        start_all(docker, &to_stop).await
    };
    let removed = helper.remove().await;
    let writer = copied.with_context(|| format!("{machine}: copying volume {volume}"))?;
    restarted.with_context(|| format!("{machine}: after the copy of {volume}"))?;
    removed?;
    let manifest = tokio::task::spawn_blocking({
        let about = archive::About {
            project: project.to_string(),
            volume: volume.to_string(),
            service,
            machine: machine.to_string(),
            consistency,
        };
        move || writer.finish(about)
    })
    .await
    .context("the backup writer stopped")??;
    Ok(BackupReport {
        manifest,
        stopped_for,
        took: started.elapsed(),
    })
}

/// Streams the helper's volume into the writer (compression and hashing on a blocking thread,
/// beside the network reads). On failure the partial file is removed.
async fn copy_out(helper: &data::Helper, writer: archive::Writer) -> Result<archive::Writer> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let sink = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = writer.feed(&chunk) {
                return (writer, Err(e));
            }
        }
        (writer, Ok(()))
    });
    let mut stream = helper.read();
    let mut read_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                read_error = Some(anyhow::Error::from(e).context("reading the volume"));
                break;
            }
        }
    }
    drop(tx);
    let (writer, written) = sink.await.context("the backup writer stopped")?;
    if let Some(e) = read_error.or(written.err()) {
        writer.abandon();
        return Err(e);
    }
    if writer.fed() == 0 {
        writer.abandon();
        bail!("the engine sent nothing");
    }
    Ok(writer)
}

/// What a restore did.
#[derive(Debug, serde::Serialize)]
pub struct RestoreReport {
    pub machine: String,
    pub volume: String,
    /// The volume did not exist and was created.
    pub created: bool,
    /// It held data, which the backup replaced (`--overwrite`).
    pub replaced: bool,
    pub stopped_for: Option<Duration>,
    pub took: Duration,
}

/// Restores a verified backup into `volume` on `machine`: refuses a non-empty volume unless
/// `overwrite`, stops the project's replicas that use it, empties it, writes the files, checks
/// the stream against the manifest, starts the replicas again.
pub async fn restore(
    docker: &Docker,
    machine: &str,
    project: &str,
    volume: &str,
    backup: &archive::Verified,
    overwrite: bool,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let created = data::ensure(docker, project, volume)
        .await
        .with_context(|| format!("{machine}: volume {volume}"))?;
    let users = data::users(docker, volume).await?;
    let running = running_replicas(&users, project, machine, volume)?;
    let image = data::helper_image(docker, &users).await?;
    let helper = data::Helper::create(docker, project, volume, &image)
        .await
        .with_context(|| format!("{machine}: volume {volume}"))?;
    let held = match helper.first_entry().await {
        Ok(h) => h,
        Err(e) => {
            let _ = helper.remove().await;
            return Err(e.context(format!("{machine}: volume {volume}")));
        }
    };
    if let Some(entry) = &held
        && !overwrite
    {
        let _ = helper.remove().await;
        bail!(
            "{machine}: volume {volume} is not empty (it holds {entry}, …); nothing was changed. Pass --overwrite to replace its contents with the backup's (what it holds now is lost: back it up first)"
        );
    }
    let stop_began = Instant::now();
    if !running.is_empty() {
        say!(
            "{machine}: stopping {} to restore {volume}",
            replica_names(&running)
        );
        if let Err(e) = stop_all(docker, &running).await {
            let _ = start_all(docker, &running).await;
            let _ = helper.remove().await;
            return Err(e.context(format!("{machine}: stopping the users of {volume}")));
        }
    }
    let written = async {
        if held.is_some() {
            helper.clear().await?;
        }
        copy_in(&helper, backup).await
    }
    .await;
    let removed = helper.remove().await;
    if let Err(e) = written {
        // Half a volume must not serve: the replicas stay stopped until a restore succeeds.
        let stopped = if running.is_empty() {
            String::new()
        } else {
            format!(
                "; left stopped: {} (a run of the restore with --overwrite finishes it, `hoist up` starts them as they are)",
                replica_names(&running)
            )
        };
        return Err(e.context(format!(
            "{machine}: restoring {volume} failed part way: the volume holds part of the backup{stopped}"
        )));
    }
    let stopped_for = (!running.is_empty()).then(|| stop_began.elapsed());
    // Restored data is the service's data here, even where a move had left an old copy.
    moves::clear_moved_marker(docker, volume).await;
    start_all(docker, &running)
        .await
        .with_context(|| format!("{machine}: after restoring {volume}"))?;
    removed?;
    Ok(RestoreReport {
        machine: machine.to_string(),
        volume: volume.to_string(),
        created,
        replaced: held.is_some(),
        stopped_for,
        took: started.elapsed(),
    })
}

/// Decompresses the backup on a blocking thread and streams it into the helper's volume; the
/// stream is checked against the manifest at its end.
async fn copy_in(helper: &data::Helper, backup: &archive::Verified) -> Result<()> {
    let mut reader = backup.tar()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let source = tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Read;
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let text = e.to_string();
                    let _ = tx.blocking_send(Err(e));
                    bail!("reading the backup: {text}");
                }
            };
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                bail!("the engine stopped reading");
            }
        }
        reader.check()
    });
    let mut rx = rx;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let written = helper.write(stream).await;
    let read = source.await.context("the backup reader stopped")?;
    written?;
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str, services: &[&str]) -> data::SeenVolume {
        data::SeenVolume {
            machine: "m1".into(),
            name: name.into(),
            project: "shop".into(),
            labelled: true,
            driver: "local".into(),
            size: None,
            services: services.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_volume_is_named_by_engine_name_compose_key_or_service() {
        let vols = [
            seen("shop_data", &["db"]),
            seen("shop_a", &["multi"]),
            seen("shop_b", &["multi"]),
        ];
        assert_eq!(
            resolve_name("shop", "shop_data", &vols).unwrap(),
            "shop_data"
        );
        assert_eq!(resolve_name("shop", "data", &vols).unwrap(), "shop_data");
        assert_eq!(resolve_name("shop", "db", &vols).unwrap(), "shop_data");
        let e = resolve_name("shop", "multi", &vols)
            .unwrap_err()
            .to_string();
        assert!(e.contains("several volumes (shop_a, shop_b)"), "{e}");
        let e = resolve_name("shop", "nope", &vols).unwrap_err().to_string();
        assert!(e.contains("no volume or service \"nope\""), "{e}");
        assert!(e.contains("shop_a, shop_b, shop_data"), "{e}");
    }

    #[test]
    fn a_drain_refuses_to_strand_data() {
        let on = |m: &str, name: &str, services: &[&str]| {
            let mut v = seen(name, services);
            v.machine = m.into();
            v
        };
        let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        let vols = [
            on("m1", "shop_data", &["db"]),
            on("m1", "shop_agent", &["agent"]),
        ];
        let got = stranded(&vols, &set(&["m1"]), &set(&["agent"]));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("db keeps its data in volume shop_data on m1"),
            "{got:?}"
        );
        assert!(
            got[0].contains("hoist volumes backup shop_data --machine m1"),
            "{got:?}"
        );
        // A copy on a machine that stays: the service follows it.
        let copied = [on("m1", "shop_data", &["db"]), on("m2", "shop_data", &[])];
        assert!(stranded(&copied, &set(&["m1"]), &set(&[])).is_empty());
        // ...unless that machine leaves too.
        assert_eq!(stranded(&copied, &set(&["m1", "m2"]), &set(&[])).len(), 1);
        // Other machines' volumes are no concern.
        assert!(stranded(&vols, &set(&["m3"]), &set(&[])).is_empty());
    }

    #[test]
    fn backup_commands_are_checked() {
        let parse = |y: &str| parse_backup(&serde_yaml_ng::from_str::<Value>(y).unwrap());
        assert_eq!(
            parse("{command: 'sync'}").unwrap(),
            BackupCommand {
                command: vec!["/bin/sh".into(), "-c".into(), "sync".into()],
                timeout: DEFAULT_BACKUP_TIMEOUT
            }
        );
        assert_eq!(
            parse("{command: [pg_ctl, checkpoint], timeout: 30s}")
                .unwrap()
                .command,
            ["pg_ctl", "checkpoint"]
        );
        assert_eq!(
            parse("{command: x, timeout: 90}").unwrap().timeout,
            Duration::from_secs(90)
        );
        for (bad, says) in [
            ("{}", "command is required"),
            ("{command: ''}", "command: expected"),
            ("{command: []}", "command: expected"),
            ("{command: [1]}", "command[0]"),
            ("{command: x, timeout: 1e30}", "too long"),
            ("{command: x, timeout: '0s'}", "above 0"),
            ("{command: x, timeout: soon}", "timeout"),
            ("{command: x, when: now}", "unknown key \"when\""),
            ("[sync]", "expected a mapping"),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
