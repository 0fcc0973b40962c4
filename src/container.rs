//! What one replica's container looks like to the Docker Engine.
//!
//! Input is a service in Compose's normalized form (the JSON `docker compose
//! config --format json` prints, which is what the loader's model serializes
//! to) plus the replica's place (project, slot, machine, networks). Output is the
//! Engine API create request. Keys hoist cannot honour are reported by
//! `unsupported`, so a plan fails up front instead of silently dropping them.

use crate::labels;
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Where a replica goes and what it is called there.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub project: &'a str,
    pub service: &'a str,
    /// The slot as its label reads: `3`, or `global`.
    pub slot: &'a str,
    pub machine: &'a str,
    pub release: &'a str,
    pub spec_hash: &'a str,
    /// The canonical spec JSON, recorded so later plans can explain changes.
    pub spec_json: &'a str,
    /// Compose network key → engine network name (`default` → `proj_default`).
    pub networks: &'a BTreeMap<String, String>,
    /// Compose volume key → engine volume name (`data` → `proj_data`).
    pub volumes: &'a BTreeMap<String, String>,
    /// When the service is meshed (src/mesh): the machine's address, where the replica
    /// publishes the ports other services use (so the proxies on every machine reach it);
    /// its names on the networks then belong to the proxies.
    pub mesh: Option<MeshPorts<'a>>,
}

/// A meshed replica's share of the mesh: its machine's address and the ports it serves.
#[derive(Debug, Clone, Copy)]
pub struct MeshPorts<'a> {
    pub address: &'a str,
    pub ports: &'a [u16],
    /// The encrypted mesh: the replica publishes nothing for it (its machine's gateway
    /// reaches it at its container address) and is labelled for the gateway
    /// (`labels::GATEWAY_PORTS`).
    pub encrypt: bool,
}

/// Service keys that shape the container and that hoist turns into the create
/// request. Everything else that is not scheduling or ordering is refused.
const HONOURED: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "labels",
    "ports",
    "expose",
    "volumes",
    "tmpfs",
    "healthcheck",
    "restart",
    "user",
    "working_dir",
    "hostname",
    "domainname",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "cap_add",
    "cap_drop",
    "security_opt",
    "sysctls",
    "ulimits",
    "logging",
    "init",
    "read_only",
    "tty",
    "stdin_open",
    "shm_size",
    "devices",
    "stop_signal",
    "stop_grace_period",
    "privileged",
    "pid",
    "ipc",
    "networks",
    "mem_limit",
    "memswap_limit",
    "mem_reservation",
    "cpus",
    "cpu_shares",
    "cpuset",
    "pids_limit",
    "group_add",
    "oom_score_adj",
    "platform",
    "pull_policy",
    "labels",
    "annotations",
    "runtime",
    "userns_mode",
    "cgroup",
    "cgroup_parent",
    "storage_opt",
];

/// Keys that decide where and when containers run, not what they are.
const ORCHESTRATION: &[&str] = &[
    "deploy",
    "depends_on",
    "profiles",
    "scale",
    "build",
    "secrets",
    "configs",
    "env_file",
    "x-hoist",
];

/// Keys the service has that hoist would have to drop; each entry says why.
pub fn unsupported(service: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(map) = service.as_object() else {
        return vec!["the service is not a mapping".into()];
    };
    for (key, value) in map {
        if value.is_null() || key.starts_with("x-") {
            continue;
        }
        if HONOURED.contains(&key.as_str()) || ORCHESTRATION.contains(&key.as_str()) {
            continue;
        }
        let why = match key.as_str() {
            "container_name" => {
                "a fixed container name cannot be spread over replicas and machines; remove it"
            }
            "network_mode" => {
                "network_mode would cut the replica off the project's networks; hoist does not support it yet"
            }
            "links" | "external_links" => {
                "links are legacy; services reach each other by name on the project network"
            }
            "volumes_from" => {
                "volumes_from ties a container to another on the same machine; hoist does not support it"
            }
            "extends" | "include" => "should have been resolved by the loader",
            _ => "hoist does not support this key yet",
        };
        out.push(format!("{key}: {why}"));
    }
    out
}

/// The container name of a replica on its machine. The spec hash is part of the
/// name so a start-first replacement can run beside the replica it replaces.
pub fn container_name(project: &str, service: &str, slot: &str, spec_hash: &str) -> String {
    let short = &spec_hash[..spec_hash.len().min(8)];
    format!("{project}-{service}-{slot}-{short}")
}

/// The Engine API create request (in the API's own JSON shape) for one replica.
pub fn create_request(service: &Value, at: &Placement<'_>) -> Result<Value> {
    let s = service
        .as_object()
        .context("the service is not a mapping")?;
    // A built service without `image:` runs the image hoist built for it.
    let built = crate::build::image_name(at.project, at.service, None);
    let image = s
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or(built.as_str());
    let mut body = Map::new();
    let mut host = Map::new();
    body.insert("Image".into(), json!(image));
    if let Some(v) = string_list(s.get("command")) {
        body.insert("Cmd".into(), json!(v));
    }
    if let Some(v) = string_list(s.get("entrypoint")) {
        body.insert("Entrypoint".into(), json!(v));
    }
    if let Some(env) = s.get("environment").and_then(Value::as_object) {
        let list: Vec<String> = env
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Null => None,
                Value::String(s) => Some(format!("{k}={s}")),
                other => Some(format!("{k}={other}")),
            })
            .collect();
        body.insert("Env".into(), json!(list));
    }
    // Where the replica runs, for the app's own logs and answers (not part of the
    // spec hash: the same spec runs on every machine).
    let env = body.entry("Env").or_insert_with(|| json!([]));
    if let Some(list) = env.as_array_mut() {
        list.push(json!(format!("HOIST_MACHINE={}", at.machine)));
        list.push(json!(format!("HOIST_SLOT={}", at.slot)));
    }
    body.insert("Labels".into(), Value::Object(container_labels(s, at)));
    for (compose, api) in [
        ("user", "User"),
        ("working_dir", "WorkingDir"),
        ("domainname", "Domainname"),
        ("stop_signal", "StopSignal"),
    ] {
        if let Some(v) = s.get(compose).and_then(Value::as_str) {
            body.insert(api.into(), json!(v));
        }
    }
    if let Some(h) = s.get("hostname").and_then(Value::as_str) {
        body.insert("Hostname".into(), json!(h));
    }
    for (compose, api) in [("tty", "Tty"), ("stdin_open", "OpenStdin")] {
        if let Some(v) = s.get(compose).and_then(Value::as_bool) {
            body.insert(api.into(), json!(v));
        }
    }
    if let Some(d) = s.get("stop_grace_period") {
        body.insert("StopTimeout".into(), json!(duration_ns(d)? / 1_000_000_000));
    }
    if let Some(hc) = s.get("healthcheck").and_then(Value::as_object) {
        body.insert("Healthcheck".into(), healthcheck(hc)?);
    }

    // Ports: exposed and published.
    let mut exposed = Map::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in s
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let target = p
            .get("target")
            .and_then(Value::as_u64)
            .context("ports: target missing")?;
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
        let key = format!("{target}/{proto}");
        exposed.insert(key.clone(), json!({}));
        let published = match p.get("published") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let host_ip = p.get("host_ip").and_then(Value::as_str).unwrap_or("");
        bindings
            .entry(key)
            .or_default()
            .push(json!({"HostIp": host_ip, "HostPort": published}));
    }
    for e in s
        .get("expose")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let e = match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let key = if e.contains('/') {
            e
        } else {
            format!("{e}/tcp")
        };
        exposed.insert(key, json!({}));
    }
    // A meshed replica publishes every port the proxies forward to on its machine's address
    // (an ephemeral host port each), unless the file publishes that port already.
    if let Some(mesh) = &at.mesh {
        for port in mesh.ports {
            let key = format!("{port}/tcp");
            exposed.insert(key.clone(), json!({}));
            if !mesh.encrypt {
                bindings
                    .entry(key)
                    .or_insert_with(|| vec![json!({"HostIp": mesh.address, "HostPort": ""})]);
            }
        }
    }
    if !exposed.is_empty() {
        body.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    if !bindings.is_empty() {
        host.insert("PortBindings".into(), json!(bindings));
    }

    // Storage.
    let mut mounts = Vec::new();
    for v in s
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        mounts.push(mount(v, at)?);
    }
    if !mounts.is_empty() {
        host.insert("Mounts".into(), json!(mounts));
    }
    if let Some(t) = s.get("tmpfs") {
        let mut m = Map::new();
        for entry in string_list(Some(t)).unwrap_or_default() {
            let (path, opts) = entry.split_once(':').unwrap_or((entry.as_str(), ""));
            m.insert(path.to_string(), json!(opts));
        }
        host.insert("Tmpfs".into(), Value::Object(m));
    }

    // Restart: deploy.restart_policy wins over restart, as in Compose.
    if let Some(rp) = restart_policy(s)? {
        host.insert("RestartPolicy".into(), rp);
    }

    // Resources: deploy.resources.limits, then the legacy keys.
    let limits = s.pointer_get(&["deploy", "resources", "limits"]);
    if let Some(cpus) = limits.and_then(|l| l.get("cpus")).or(s.get("cpus")) {
        host.insert("NanoCpus".into(), json!((number(cpus)? * 1e9) as i64));
    }
    if let Some(mem) = limits.and_then(|l| l.get("memory")).or(s.get("mem_limit")) {
        host.insert("Memory".into(), json!(bytes(mem)?));
    }
    if let Some(p) = limits.and_then(|l| l.get("pids")).or(s.get("pids_limit")) {
        host.insert("PidsLimit".into(), json!(number(p)? as i64));
    }
    if let Some(m) = s.get("memswap_limit") {
        host.insert("MemorySwap".into(), json!(bytes(m)?));
    }
    // A memory reservation is also a soft limit on the container (the kernel reclaims
    // down to it under pressure), as docker compose sets it; a CPU reservation is only
    // the scheduler's (see core::schedule).
    let reservations = s.pointer_get(&["deploy", "resources", "reservations"]);
    if let Some(m) = reservations
        .and_then(|r| r.get("memory"))
        .or(s.get("mem_reservation"))
    {
        host.insert("MemoryReservation".into(), json!(bytes(m)?));
    }
    if let Some(m) = s.get("shm_size") {
        host.insert("ShmSize".into(), json!(bytes(m)?));
    }
    if let Some(v) = s.get("cpu_shares") {
        host.insert("CpuShares".into(), json!(number(v)? as i64));
    }
    if let Some(v) = s.get("oom_score_adj") {
        host.insert("OomScoreAdj".into(), json!(number(v)? as i64));
    }
    for (compose, api) in [
        ("cpuset", "CpusetCpus"),
        ("pid", "PidMode"),
        ("ipc", "IpcMode"),
        ("runtime", "Runtime"),
        ("userns_mode", "UsernsMode"),
        ("cgroup", "CgroupnsMode"),
        ("cgroup_parent", "CgroupParent"),
    ] {
        if let Some(v) = s.get(compose).and_then(Value::as_str) {
            host.insert(api.into(), json!(v));
        }
    }
    for (compose, api) in [
        ("init", "Init"),
        ("read_only", "ReadonlyRootfs"),
        ("privileged", "Privileged"),
    ] {
        if let Some(v) = s.get(compose).and_then(Value::as_bool) {
            host.insert(api.into(), json!(v));
        }
    }
    for (compose, api) in [
        ("cap_add", "CapAdd"),
        ("cap_drop", "CapDrop"),
        ("security_opt", "SecurityOpt"),
        ("dns", "Dns"),
        ("dns_search", "DnsSearch"),
        ("dns_opt", "DnsOptions"),
        ("group_add", "GroupAdd"),
    ] {
        if let Some(v) = string_list(s.get(compose)) {
            host.insert(api.into(), json!(v));
        }
    }
    if let Some(eh) = s.get("extra_hosts") {
        host.insert("ExtraHosts".into(), json!(extra_hosts(eh)));
    }
    if let Some(sc) = s.get("sysctls").and_then(Value::as_object) {
        let m: Map<String, Value> = sc
            .iter()
            .map(|(k, v)| (k.clone(), json!(scalar_text(v))))
            .collect();
        host.insert("Sysctls".into(), Value::Object(m));
    }
    if let Some(so) = s.get("storage_opt").and_then(Value::as_object) {
        let m: Map<String, Value> = so
            .iter()
            .map(|(k, v)| (k.clone(), json!(scalar_text(v))))
            .collect();
        host.insert("StorageOpt".into(), Value::Object(m));
    }
    if let Some(ul) = s.get("ulimits").and_then(Value::as_object) {
        let mut list = Vec::new();
        for (name, v) in ul {
            let (soft, hard) = match v {
                Value::Object(o) => (
                    o.get("soft").map(number).transpose()?.unwrap_or(0.0),
                    o.get("hard").map(number).transpose()?.unwrap_or(0.0),
                ),
                other => {
                    let n = number(other)?;
                    (n, n)
                }
            };
            list.push(json!({"Name": name, "Soft": soft as i64, "Hard": hard as i64}));
        }
        host.insert("Ulimits".into(), json!(list));
    }
    if let Some(log) = s.get("logging").and_then(Value::as_object) {
        let mut lc = Map::new();
        if let Some(d) = log.get("driver").and_then(Value::as_str) {
            lc.insert("Type".into(), json!(d));
        }
        if let Some(o) = log.get("options").and_then(Value::as_object) {
            let m: Map<String, Value> = o
                .iter()
                .map(|(k, v)| (k.clone(), json!(scalar_text(v))))
                .collect();
            lc.insert("Config".into(), Value::Object(m));
        }
        host.insert("LogConfig".into(), Value::Object(lc));
    }
    if let Some(devs) = s.get("devices").and_then(Value::as_array) {
        let mut list = Vec::new();
        for d in devs {
            let (src, tgt, perms) = match d {
                Value::String(s) => {
                    let mut it = s.splitn(3, ':');
                    let src = it.next().unwrap_or("").to_string();
                    let tgt = it.next().map(str::to_string).unwrap_or_else(|| src.clone());
                    (src, tgt, it.next().unwrap_or("rwm").to_string())
                }
                Value::Object(o) => (
                    o.get("source")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    o.get("target")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    o.get("permissions")
                        .and_then(Value::as_str)
                        .unwrap_or("rwm")
                        .to_string(),
                ),
                _ => bail!("devices: unexpected entry {d}"),
            };
            list.push(
                json!({"PathOnHost": src, "PathInContainer": tgt, "CgroupPermissions": perms}),
            );
        }
        host.insert("Devices".into(), json!(list));
    }

    // Networks: the first one is attached at create time (engines before API
    // 1.44 take only one endpoint there); the rest are connected before start.
    let (first, _rest) = endpoints(s, at)?;
    if let Some((net, endpoint)) = first {
        host.insert("NetworkMode".into(), json!(net));
        body.insert(
            "NetworkingConfig".into(),
            json!({"EndpointsConfig": {net: endpoint}}),
        );
    }
    body.insert("HostConfig".into(), Value::Object(host));
    Ok(Value::Object(body))
}

/// A network a replica joins: (engine network name, endpoint settings).
pub type Endpoint = (String, Value);

/// The networks a replica joins. The first entry goes into the create request;
/// the others are connected after.
pub fn endpoints(
    s: &Map<String, Value>,
    at: &Placement<'_>,
) -> Result<(Option<Endpoint>, Vec<Endpoint>)> {
    let mut list = Vec::new();
    let nets = match s.get("networks") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>(),
        _ => vec![("default".to_string(), Value::Null)],
    };
    let mut sorted = nets;
    // Higher priority first, then by name, as Compose connects them.
    sorted.sort_by(|(ka, va), (kb, vb)| {
        let pa = va.get("priority").and_then(Value::as_i64).unwrap_or(0);
        let pb = vb.get("priority").and_then(Value::as_i64).unwrap_or(0);
        pb.cmp(&pa).then(ka.cmp(kb))
    });
    for (key, cfg) in sorted {
        let name = at.networks.get(&key).cloned().with_context(|| {
            format!(
                "services.{}.networks.{key}: network not defined",
                at.service
            )
        })?;
        // A meshed replica leaves its names to the mesh proxies: `api` must lead to a healthy
        // replica on any machine, not to this one whatever its state.
        let mut aliases = Vec::new();
        if at.mesh.is_none() {
            aliases.push(at.service.to_string());
            for a in cfg
                .get("aliases")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(a) = a.as_str() {
                    aliases.push(a.to_string());
                }
            }
        }
        let mut ep = Map::new();
        ep.insert("Aliases".into(), json!(aliases));
        let mut ipam = Map::new();
        if let Some(ip) = cfg.get("ipv4_address").and_then(Value::as_str) {
            ipam.insert("IPv4Address".into(), json!(ip));
        }
        if let Some(ip) = cfg.get("ipv6_address").and_then(Value::as_str) {
            ipam.insert("IPv6Address".into(), json!(ip));
        }
        if !ipam.is_empty() {
            ep.insert("IPAMConfig".into(), Value::Object(ipam));
        }
        list.push((name, Value::Object(ep)));
    }
    let mut it = list.into_iter();
    let first = it.next();
    Ok((first, it.collect()))
}

fn container_labels(s: &Map<String, Value>, at: &Placement<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(l) = s.get("labels").and_then(Value::as_object) {
        for (k, v) in l {
            m.insert(k.clone(), json!(scalar_text(v)));
        }
    }
    m.insert(labels::PROJECT.into(), json!(at.project));
    m.insert(labels::SERVICE.into(), json!(at.service));
    m.insert(labels::SLOT.into(), json!(at.slot));
    m.insert(labels::MACHINE.into(), json!(at.machine));
    m.insert(labels::RELEASE.into(), json!(at.release));
    m.insert(labels::SPEC_HASH.into(), json!(at.spec_hash));
    m.insert(labels::SPEC.into(), json!(at.spec_json));
    if let Some(mesh) = at.mesh.filter(|m| m.encrypt) {
        let ports: Vec<String> = mesh.ports.iter().map(u16::to_string).collect();
        m.insert(labels::GATEWAY_PORTS.into(), json!(ports.join(",")));
    }
    m
}

fn healthcheck(hc: &Map<String, Value>) -> Result<Value> {
    if hc.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let mut out = Map::new();
    if let Some(t) = string_list(hc.get("test")) {
        out.insert("Test".into(), json!(t));
    }
    for (compose, api) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"),
    ] {
        if let Some(d) = hc.get(compose) {
            out.insert(api.into(), json!(duration_ns(d)?));
        }
    }
    if let Some(r) = hc.get("retries") {
        out.insert("Retries".into(), json!(number(r)? as i64));
    }
    Ok(Value::Object(out))
}

/// The engine's restart policy. Swarm's `any` and Compose's `always` become `unless-stopped`:
/// both restart a container that exits and come back after a reboot, but `always` would also
/// bring back the previous releases hoist stopped (kept for rollback) — two replicas in a slot.
fn restart_policy(s: &Map<String, Value>) -> Result<Option<Value>> {
    if let Some(rp) = s.pointer_get(&["deploy", "restart_policy"]) {
        let cond = rp.get("condition").and_then(Value::as_str).unwrap_or("any");
        let name = match cond {
            "none" => "no",
            "on-failure" => "on-failure",
            _ => "unless-stopped",
        };
        let mut v = json!({"Name": name});
        if let Some(n) = rp.get("max_attempts") {
            v["MaximumRetryCount"] = json!(number(n)? as i64);
        }
        return Ok(Some(v));
    }
    Ok(match s.get("restart").and_then(Value::as_str) {
        Some(r) => {
            let (name, count) = r.split_once(':').unwrap_or((r, ""));
            let name = if name == "always" {
                "unless-stopped"
            } else {
                name
            };
            let mut v = json!({"Name": name});
            if let Ok(n) = count.parse::<i64>() {
                v["MaximumRetryCount"] = json!(n);
            }
            Some(v)
        }
        None => None,
    })
}

fn mount(v: &Value, at: &Placement<'_>) -> Result<Value> {
    let typ = v.get("type").and_then(Value::as_str).unwrap_or("volume");
    let target = v
        .get("target")
        .and_then(Value::as_str)
        .context("volumes: target missing")?;
    let mut m = Map::new();
    m.insert("Target".into(), json!(target));
    m.insert("Type".into(), json!(typ));
    if v.get("read_only").and_then(Value::as_bool) == Some(true) {
        m.insert("ReadOnly".into(), json!(true));
    }
    let source = v.get("source").and_then(Value::as_str);
    match typ {
        "volume" => {
            if let Some(src) = source {
                let name = at
                    .volumes
                    .get(src)
                    .cloned()
                    .unwrap_or_else(|| src.to_string());
                m.insert("Source".into(), json!(name));
            }
            let mut opts = Map::new();
            if v.pointer("/volume/nocopy").and_then(Value::as_bool) == Some(true) {
                opts.insert("NoCopy".into(), json!(true));
            }
            if let Some(sp) = v.pointer("/volume/subpath").and_then(Value::as_str) {
                opts.insert("Subpath".into(), json!(sp));
            }
            if !opts.is_empty() {
                m.insert("VolumeOptions".into(), Value::Object(opts));
            }
        }
        "bind" => {
            m.insert(
                "Source".into(),
                json!(source.context("volumes: bind without source")?),
            );
            let mut opts = Map::new();
            if let Some(p) = v.pointer("/bind/propagation").and_then(Value::as_str) {
                opts.insert("Propagation".into(), json!(p));
            }
            if v.pointer("/bind/create_host_path").and_then(Value::as_bool) == Some(true) {
                opts.insert("CreateMountpoint".into(), json!(true));
            }
            if !opts.is_empty() {
                m.insert("BindOptions".into(), Value::Object(opts));
            }
        }
        "tmpfs" => {
            let mut opts = Map::new();
            if let Some(size) = v.pointer("/tmpfs/size") {
                opts.insert("SizeBytes".into(), json!(bytes(size)?));
            }
            if let Some(mode) = v.pointer("/tmpfs/mode") {
                opts.insert("Mode".into(), json!(number(mode)? as i64));
            }
            if !opts.is_empty() {
                m.insert("TmpfsOptions".into(), Value::Object(opts));
            }
        }
        other => bail!(
            "services.{}.volumes: mount type {other:?} is not supported",
            at.service
        ),
    }
    Ok(Value::Object(m))
}

fn extra_hosts(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m
            .iter()
            .flat_map(|(host, ips)| match ips {
                Value::Array(a) => a
                    .iter()
                    .map(|ip| format!("{host}:{}", scalar_text(ip)))
                    .collect::<Vec<_>>(),
                other => vec![format!("{host}:{}", scalar_text(other))],
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(scalar_text)
            .map(|s| s.replacen('=', ":", 1))
            .collect(),
        _ => Vec::new(),
    }
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Null => None,
        Value::Array(a) => Some(a.iter().map(scalar_text).collect()),
        Value::String(s) => Some(vec![s.clone()]),
        other => Some(vec![scalar_text(other)]),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().context("not a number"),
        Value::String(s) => s
            .trim()
            .parse()
            .with_context(|| format!("{s:?} is not a number")),
        other => bail!("{other} is not a number"),
    }
}

/// Compose durations (`1m30s`, `500ms`, or nanoseconds as a number) in nanoseconds.
pub fn duration_ns(v: &Value) -> Result<i64> {
    match v {
        Value::Number(n) => n.as_i64().context("duration out of range"),
        Value::String(s) => crate::duration::parse(s)
            .map(|d| d.as_nanos() as i64)
            .map_err(|e| anyhow::anyhow!(e)),
        other => bail!("{other} is not a duration"),
    }
}

/// Compose byte sizes (`512m`, `1g`, `134217728`) in bytes.
pub fn bytes(v: &Value) -> Result<i64> {
    let text = match v {
        Value::Number(n) => return n.as_f64().map(|f| f as i64).context("size out of range"),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        other => bail!("{other} is not a byte size"),
    };
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits);
    let n: f64 = num
        .parse()
        .with_context(|| format!("{text:?} is not a byte size"))?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        _ => bail!("{text:?}: unknown size unit"),
    };
    Ok((n * mult) as i64)
}

/// Lookups through nested objects without a chain of `and_then`s.
trait PointerGet {
    fn pointer_get(&self, path: &[&str]) -> Option<&Value>;
}

impl PointerGet for Map<String, Value> {
    fn pointer_get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.get(*first)?;
        for p in rest {
            v = v.get(*p)?;
        }
        (!v.is_null()).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement<'a>(
        nets: &'a BTreeMap<String, String>,
        vols: &'a BTreeMap<String, String>,
    ) -> Placement<'a> {
        Placement {
            project: "shop",
            service: "web",
            slot: "2",
            machine: "m1",
            release: "r1",
            spec_hash: "abcdef0123456789",
            spec_json: "{}",
            networks: nets,
            volumes: vols,
            mesh: None,
        }
    }

    /// Meshed: the plain mesh publishes the port on the machine's address; the encrypted one
    /// publishes nothing for the mesh (a port the file publishes stays) and labels the
    /// replica for its machine's gateway.
    #[test]
    fn meshed_replicas_publish_only_in_the_plain_mesh() {
        let nets = BTreeMap::from([("default".to_string(), "shop_default".to_string())]);
        let vols = BTreeMap::new();
        let svc = json!({
            "image": "app:1",
            "expose": ["8080"],
            "ports": [{"target": 80, "published": "8088", "protocol": "tcp"}],
        });
        let ports = [80, 8080];
        let mut at = placement(&nets, &vols);
        at.mesh = Some(MeshPorts {
            address: "10.0.0.11",
            ports: &ports,
            encrypt: false,
        });
        let plain = create_request(&svc, &at).unwrap();
        assert_eq!(
            plain["HostConfig"]["PortBindings"]["8080/tcp"],
            json!([{"HostIp": "10.0.0.11", "HostPort": ""}])
        );
        assert!(plain["Labels"].get(labels::GATEWAY_PORTS).is_none());
        at.mesh = Some(MeshPorts {
            address: "10.0.0.11",
            ports: &ports,
            encrypt: true,
        });
        let encrypted = create_request(&svc, &at).unwrap();
        let bindings = &encrypted["HostConfig"]["PortBindings"];
        assert!(bindings.get("8080/tcp").is_none(), "{bindings}");
        assert_eq!(
            bindings["80/tcp"][0]["HostPort"],
            json!("8088"),
            "{bindings}"
        );
        assert!(encrypted["ExposedPorts"].get("8080/tcp").is_some());
        assert_eq!(encrypted["Labels"][labels::GATEWAY_PORTS], json!("80,8080"));
    }

    #[test]
    fn maps_a_typical_service() {
        let nets = BTreeMap::from([("default".to_string(), "shop_default".to_string())]);
        let vols = BTreeMap::from([("data".to_string(), "shop_data".to_string())]);
        let svc = json!({
            "image": "app:1", "command": ["serve", "--port", "80"], "entrypoint": null,
            "environment": {"A": "1", "B": null},
            "ports": [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}],
            "volumes": [{"type": "volume", "source": "data", "target": "/data", "volume": {}},
                        {"type": "bind", "source": "/srv/x", "target": "/x", "read_only": true, "bind": {"create_host_path": true}}],
            "healthcheck": {"test": ["CMD-SHELL", "wget -q localhost"], "interval": "5s", "retries": 3},
            "stop_grace_period": "30s",
            "deploy": {"resources": {"limits": {"cpus": 0.5, "memory": "134217728"}, "reservations": {"cpus": 0.25, "memory": "33554432"}}, "restart_policy": {"condition": "on-failure", "max_attempts": 3}},
            "networks": {"default": null}
        });
        let req = create_request(&svc, &placement(&nets, &vols)).unwrap();
        assert_eq!(req["Image"], "app:1");
        assert_eq!(req["Cmd"], json!(["serve", "--port", "80"]));
        assert!(req.get("Entrypoint").is_none());
        assert_eq!(
            req["Env"],
            json!(["A=1", "HOIST_MACHINE=m1", "HOIST_SLOT=2"])
        );
        assert_eq!(req["StopTimeout"], 30);
        assert_eq!(req["Healthcheck"]["Interval"], 5_000_000_000i64);
        assert_eq!(req["Labels"][labels::SLOT], "2");
        assert_eq!(
            req["HostConfig"]["PortBindings"]["80/tcp"],
            json!([{"HostIp": "", "HostPort": "8080"}])
        );
        assert_eq!(req["HostConfig"]["Mounts"][0]["Source"], "shop_data");
        assert_eq!(req["HostConfig"]["Mounts"][1]["ReadOnly"], true);
        assert_eq!(req["HostConfig"]["NanoCpus"], 500_000_000i64);
        assert_eq!(req["HostConfig"]["Memory"], 134217728i64);
        assert_eq!(req["HostConfig"]["MemoryReservation"], 33554432i64);
        assert_eq!(
            req["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(req["HostConfig"]["NetworkMode"], "shop_default");
        assert_eq!(
            req["NetworkingConfig"]["EndpointsConfig"]["shop_default"]["Aliases"],
            json!(["web"])
        );
        // The request must be acceptable to bollard's typed body.
        let _: bollard::models::ContainerCreateBody = serde_json::from_value(req).unwrap();
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let svc = json!({"image": "x", "container_name": "one", "network_mode": "host", "deploy": {}, "x-foo": 1});
        let u = unsupported(&svc);
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(u[0].starts_with("container_name"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(&json!("512m")).unwrap(), 512 * 1024 * 1024);
        assert_eq!(bytes(&json!("1gb")).unwrap(), 1 << 30);
        assert_eq!(bytes(&json!(1000)).unwrap(), 1000);
        assert_eq!(duration_ns(&json!("1m30s")).unwrap(), 90_000_000_000);
        assert!(bytes(&json!("12q")).is_err());
    }
}
