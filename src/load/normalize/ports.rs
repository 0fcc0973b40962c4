//! Port syntax: `[ip:][published:]target[/proto]` and the long form, one entry per port.
//!
//! Ranges are expanded the way compose-go does, so the published ports hoist schedules are
//! exactly the ones `docker compose` would bind.

use super::values::*;
use super::{R, fail};
use serde_json::{Map, Value, json};

pub(super) fn port_number(path: &str, s: &str) -> R<u32> {
    match s.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(n),
        _ => fail(path, format!("invalid port {s:?}")),
    }
}

pub(super) fn port_range(path: &str, s: &str) -> R<(u32, u32)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_number(path, a)?, port_number(path, b)?);
            if b < a {
                return fail(path, format!("invalid port range {s:?}"));
            }
            Ok((a, b))
        }
        None => {
            let n = port_number(path, s)?;
            Ok((n, n))
        }
    }
}

/// `[ip:][published:]target[/proto]` → one long-form entry per target port.
pub fn short_port(path: &str, spec: &str) -> R<Vec<Value>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    protocol(path, &proto)?;
    // IPv6 host addresses are bracketed: [::1]:80:80
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        match r.split_once("]:") {
            Some((ip, after)) => (Some(ip.to_string()), after),
            None => return fail(path, format!("invalid port {spec:?}")),
        }
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0].to_string()), &rest[parts[0].len() + 1..]),
            _ => {
                // Unbracketed IPv6: everything before the last two fields.
                let n = parts.len();
                let ip_len = rest.len() - parts[n - 2].len() - parts[n - 1].len() - 2;
                (Some(rest[..ip_len].to_string()), &rest[ip_len + 1..])
            }
        }
    };
    if let Some(ip) = host_ip.as_deref().filter(|ip| !ip.is_empty())
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return fail(path, format!("invalid IP address: {ip}"));
    }
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (Some(p), t),
        None => (None, rest),
    };
    let (t0, t1) = port_range(path, target)?;
    let published_range = match published {
        Some(p) if !p.is_empty() => Some((p, port_range(path, p)?)),
        _ => None,
    };
    let count = t1 - t0 + 1;
    let mut out = Vec::new();
    for i in 0..count {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if let Some(ip) = &host_ip
            && !ip.is_empty()
        {
            m.insert("host_ip".into(), json!(ip));
        }
        m.insert("target".into(), json!(t0 + i));
        if let Some((text, (p0, p1))) = published_range {
            let published = if count == 1 {
                text.to_string()
            } else if p1 - p0 + 1 == count {
                (p0 + i).to_string()
            } else {
                return fail(path, format!("port ranges don't match in {spec:?}"));
            };
            m.insert("published".into(), json!(published));
        }
        m.insert("protocol".into(), json!(proto));
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// The protocols a port can be published for (the engine refuses others).
fn protocol(path: &str, proto: &str) -> R<()> {
    match proto {
        "tcp" | "udp" | "sctp" => Ok(()),
        other => fail(
            path,
            format!("{other:?} is not a port protocol: use tcp, udp or sctp"),
        ),
    }
}

pub(super) fn ports(path: &str, v: &Value) -> R<Value> {
    let mut out = Vec::new();
    for (i, item) in list(path, v)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match item {
            Value::Number(n) => out.extend(short_port(&p, &n.to_string())?),
            Value::String(s) => out.extend(short_port(&p, s)?),
            Value::Object(m) => {
                let mut e = Map::new();
                for (k, val) in m {
                    let kp = join(&p, k);
                    let val = match k.as_str() {
                        "target" => json!(uint(&kp, val)?),
                        "published" => json!(scalar_string(&kp, val)?),
                        "host_ip" => {
                            let ip = string(&kp, val)?;
                            if ip.parse::<std::net::IpAddr>().is_err() {
                                return fail(&kp, format!("invalid IP address: {ip:?}"));
                            }
                            json!(ip)
                        }
                        "protocol" | "mode" | "name" | "app_protocol" => {
                            json!(string(&kp, val)?)
                        }
                        _ => val.clone(),
                    };
                    e.insert(k.clone(), val);
                }
                e.entry("mode").or_insert(json!("ingress"));
                e.entry("protocol").or_insert(json!("tcp"));
                if let Some(proto) = e["protocol"].as_str() {
                    protocol(&join(&p, "protocol"), proto)?;
                }
                if !e.contains_key("target") {
                    return fail(&p, "missing target port");
                }
                out.push(Value::Object(e));
            }
            other => return expected(&p, "a port", other),
        }
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Vec<String> {
        short_port("p", spec)
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}|{}|{}|{}",
                    e.get("host_ip").and_then(Value::as_str).unwrap_or(""),
                    e.get("published").and_then(Value::as_str).unwrap_or(""),
                    e["target"],
                    e["protocol"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn short_ports() {
        assert_eq!(one("80"), ["||80|tcp"]);
        assert_eq!(one("8080:80/udp"), ["|8080|80|udp"]);
        assert_eq!(
            one("127.0.0.1:9000-9001:9000-9001"),
            ["127.0.0.1|9000|9000|tcp", "127.0.0.1|9001|9001|tcp"]
        );
        assert_eq!(one("[::1]:53:53/udp"), ["::1|53|53|udp"]);
        assert_eq!(one("3000-3001:3000"), ["|3000-3001|3000|tcp"]);
        assert_eq!(one("127.0.0.1::80"), ["127.0.0.1||80|tcp"]);
        assert!(short_port("p", "70000").is_err());
        assert!(short_port("p", "1-2:3-5").is_err());
    }
}
