//! The fleet's credentials for the encrypted mesh (`x-hoist: {mesh: {encrypt: true}}`), as
//! data: a fleet CA, one key and certificate per machine, the names the gateways route by, and
//! what `up` must do to give every machine what it lacks. Pure: keys and certificates are made
//! in memory with rcgen (no openssl on the machines or in the proxy image), the clock is an
//! argument, and `decide` is a table-tested function of what each machine holds.
//! `credentials` keeps them on the machines; docs/networking.md has the design.

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// How long a machine certificate is valid, and how long before its end `up` renews it.
pub const MACHINE_DAYS: i64 = 90;
pub const RENEW_DAYS: i64 = 30;
/// How long the fleet CA is valid.
const CA_DAYS: i64 = 3650;
const DAY: i64 = 86_400;

/// The fleet CA: its certificate and key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Ca {
    // The key never reaches a log or an error message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ca({})", self.id())
    }
}

impl Ca {
    /// A new CA (ECDSA P-256), valid from `now` (Unix seconds) for ten years.
    pub fn generate(now: i64) -> Result<Ca> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params(&key);
        params.not_before = at(now - DAY)?;
        params.not_after = at(now + CA_DAYS * DAY)?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A short name of the CA for plans and messages: the start of its certificate's digest.
    pub fn id(&self) -> String {
        fingerprint(&self.cert_pem)
    }

    /// A key and certificate for `machine`, reached at `address`, valid from `now` for
    /// [`MACHINE_DAYS`]: CN and SAN `<machine>.hoist` and `*.<machine>.hoist` (the gateway's
    /// names, one per replica), plus the address; server and client authentication.
    pub fn issue(&self, machine: &str, address: &str, now: i64) -> Result<MachineCert> {
        let ca_key = KeyPair::from_pem(&self.key_pem).context("the fleet CA's key")?;
        let issuer = Issuer::new(ca_params(&ca_key), ca_key);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let host = machine_host(machine);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host.clone());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::DnsName(host.clone().try_into()?),
            SanType::DnsName(format!("*.{host}").try_into()?),
        ];
        if let Ok(ip) = address.parse::<std::net::IpAddr>() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = at(now - DAY)?;
        let not_after = now + MACHINE_DAYS * DAY;
        params.not_after = at(not_after)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(MachineCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            record: MachineRecord {
                machine: machine.to_string(),
                address: address.to_string(),
                ca: self.id(),
                not_after,
            },
        })
    }
}

/// The CA's parameters; its name follows from its key, so a CA read back from a machine (key
/// and certificate) signs as the same issuer without parsing its certificate.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let digest = Sha256::digest(key.public_key_raw());
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    dn.push(DnType::CommonName, format!("hoist fleet CA {short}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn at(unix: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix).context("a time out of range")
}

/// The first 16 hex digits of the SHA-256 of `text`.
pub fn fingerprint(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One machine's key and certificate, and the record kept beside them.
#[derive(Clone)]
pub struct MachineCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub record: MachineRecord,
}

/// What a machine's certificate was issued for, kept beside it (no secret in it): `decide`
/// compares it with the fleet without parsing certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub machine: String,
    pub address: String,
    /// [`Ca::id`] of the CA that issued it.
    pub ca: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// `<machine>.hoist` as a DNS name: the machine's inventory name when it is one DNS label
/// (letters, digits, hyphens; lowercased), else a label made from its digest.
pub fn machine_host(machine: &str) -> String {
    let lower = machine.to_ascii_lowercase();
    let label = if is_dns_label(&lower) {
        lower
    } else {
        format!("m{}", &fingerprint(machine)[..12])
    };
    format!("{label}.hoist")
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The name (TLS SNI) a proxy asks `machine`'s gateway for to reach port `port` of the
/// replica container `container` (its engine ID): one DNS label from their digest, under
/// `<machine>.hoist`. By container, not by slot: during a start-first update the slot's old
/// and new replicas run side by side on one machine, and the proxies must reach the new one
/// only. No name of the user's enters it, so none can break it.
pub fn replica_sni(container: &str, port: u16, machine: &str) -> String {
    let key = format!("{container}\0{port}");
    format!(
        "r{}.{}",
        &hex(&Sha256::digest(key.as_bytes()))[..24],
        machine_host(machine)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one machine holds of the fleet's credentials, as read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Held {
    /// The CA (certificate and key), when the machine keeps it.
    pub ca: Option<Ca>,
    /// Its own certificate's record and the CA certificate it trusts, when it has both
    /// (with its key and certificate).
    pub machine: Option<(MachineRecord, String)>,
}

/// What `up` does to the fleet's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Where the CA comes from: a machine that holds it, or none (a new one).
    pub ca_from: Option<String>,
    /// Machines to give the CA to (they lack it).
    pub copy_ca: Vec<String>,
    /// Machines to issue a certificate to, with why.
    pub issue: Vec<(String, String)>,
}

impl Decision {
    pub fn is_empty(&self) -> bool {
        self.ca_from.is_some() && self.copy_ca.is_empty() && self.issue.is_empty()
    }
}

/// What to do so that every machine of `held` keeps the one fleet CA and a valid certificate
/// for its name and address (`addresses`) from it, at `now`. Machines holding two different
/// CAs are an error: hoist does not pick one (rotation is not built yet).
pub fn decide(
    held: &BTreeMap<String, Held>,
    addresses: &BTreeMap<String, String>,
    now: i64,
) -> Result<Decision> {
    let mut cas: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (m, h) in held {
        if let Some(ca) = &h.ca {
            cas.entry(ca.id()).or_default().push(m);
        }
    }
    if cas.len() > 1 {
        let list: Vec<String> = cas
            .iter()
            .map(|(id, ms)| format!("CA {id} on {}", ms.join(", ")))
            .collect();
        bail!(
            "the machines hold different fleet CAs ({}): each machine must trust one CA. Remove \
             the volumes hoist-tls-ca and hoist-tls on the machines of the CA to drop (`docker \
             volume rm hoist-tls-ca hoist-tls` after `docker rm -f hoist-tls-ca hoist-tls \
             hoist-gateway`), then run `hoist up` again to give them the other",
            list.join("; ")
        );
    }
    let current = cas.keys().next().cloned();
    let ca_from = cas.values().next().map(|ms| ms[0].to_string());
    let copy_ca: Vec<String> = held
        .iter()
        .filter(|(_, h)| h.ca.is_none())
        .map(|(m, _)| m.clone())
        .collect();
    let mut issue = Vec::new();
    for (m, h) in held {
        let address = addresses.get(m).map(String::as_str).unwrap_or_default();
        let why = match (&h.machine, &current) {
            (None, _) => Some("no machine certificate".to_string()),
            (Some(_), None) => Some("a new fleet CA".to_string()),
            (Some((record, trusted)), Some(id)) => {
                if &record.ca != id || &fingerprint(trusted) != id {
                    Some(format!("issued by another CA ({})", record.ca))
                } else if record.machine != *m {
                    Some(format!("issued for machine {}", record.machine))
                } else if record.address != address {
                    Some(format!("issued for address {}", record.address))
                } else if record.not_after - now < RENEW_DAYS * DAY {
                    Some(format!(
                        "expires in {} days",
                        ((record.not_after - now) / DAY).max(0)
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(why) = why {
            issue.push((m.clone(), why));
        }
    }
    Ok(Decision {
        ca_from,
        copy_ca,
        issue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn record(machine: &str, address: &str, ca: &str, not_after: i64) -> MachineRecord {
        MachineRecord {
            machine: machine.into(),
            address: address.into(),
            ca: ca.into(),
            not_after,
        }
    }

    #[test]
    fn a_ca_issues_machine_certificates_and_signs_as_itself_when_read_back() {
        let ca = Ca::generate(NOW).unwrap();
        assert!(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key_pem.contains("PRIVATE KEY"));
        // The key never shows in Debug output.
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        let read_back = Ca {
            cert_pem: ca.cert_pem.clone(),
            key_pem: ca.key_pem.clone(),
        };
        let m = read_back.issue("m2", "172.31.77.12", NOW).unwrap();
        assert!(m.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(m.record.ca, ca.id());
        assert_eq!(m.record.not_after, NOW + MACHINE_DAYS * DAY);
        // Two certificates get two keys.
        let again = ca.issue("m2", "172.31.77.12", NOW).unwrap();
        assert_ne!(again.key_pem, m.key_pem);
    }

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(machine_host("m1"), "m1.hoist");
        assert_eq!(machine_host("Web-1"), "web-1.hoist");
        let odd = machine_host("web_1@eu");
        assert!(odd.starts_with('m') && odd.ends_with(".hoist"), "{odd}");
        assert!(is_dns_label(odd.trim_end_matches(".hoist")));
        let sni = replica_sni("4f2a", 8080, "m2");
        assert!(sni.ends_with(".m2.hoist"), "{sni}");
        assert_eq!(sni.split('.').next().unwrap().len(), 25);
        assert!(crate::safe::is_config_token(&sni));
        // Each part changes the name.
        for o in [
            replica_sni("4f2b", 8080, "m2"),
            replica_sni("4f2a", 8081, "m2"),
            replica_sni("4f2a", 8080, "m3"),
        ] {
            assert_ne!(o, sni);
        }
    }

    #[test]
    fn decide_table() {
        let ca = Ca::generate(NOW).unwrap();
        let other = Ca::generate(NOW).unwrap();
        let id = ca.id();
        let addrs: BTreeMap<String, String> = [("m1", "10.0.0.1"), ("m2", "10.0.0.2")]
            .iter()
            .map(|(m, a)| (m.to_string(), a.to_string()))
            .collect();
        let full = |m: &str, a: &str| Held {
            ca: Some(ca.clone()),
            machine: Some((record(m, a, &id, NOW + 80 * DAY), ca.cert_pem.clone())),
        };
        let held = |pairs: Vec<(&str, Held)>| -> BTreeMap<String, Held> {
            pairs.into_iter().map(|(m, h)| (m.to_string(), h)).collect()
        };
        let issue = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(m, w)| (m.to_string(), w.to_string()))
                .collect()
        };
        let names = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };

        // A new fleet: a new CA for everyone.
        let d = decide(
            &held(vec![("m1", Held::default()), ("m2", Held::default())]),
            &addrs,
            NOW,
        )
        .unwrap();
        assert_eq!(d.ca_from, None);
        assert_eq!(d.copy_ca, names(&["m1", "m2"]));
        assert_eq!(
            d.issue,
            issue(&[
                ("m1", "no machine certificate"),
                ("m2", "no machine certificate")
            ])
        );
        assert!(!d.is_empty());

        // All set: nothing to do.
        let d = decide(
            &held(vec![
                ("m1", full("m1", "10.0.0.1")),
                ("m2", full("m2", "10.0.0.2")),
            ]),
            &addrs,
            NOW,
        )
        .unwrap();
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.ca_from.as_deref(), Some("m1"));

        // A machine joins: it gets the CA and a certificate from it.
        let d = decide(
            &held(vec![
                ("m1", full("m1", "10.0.0.1")),
                ("m2", Held::default()),
            ]),
            &addrs,
            NOW,
        )
        .unwrap();
        assert_eq!(d.ca_from.as_deref(), Some("m1"));
        assert_eq!(d.copy_ca, names(&["m2"]));
        assert_eq!(d.issue, issue(&[("m2", "no machine certificate")]));

        // Wrong address, soon expired, issued by another CA.
        let mut soon = full("m2", "10.0.0.2");
        soon.machine.as_mut().unwrap().0.not_after = NOW + 10 * DAY;
        let d = decide(
            &held(vec![("m1", full("m1", "10.9.9.9")), ("m2", soon)]),
            &addrs,
            NOW,
        )
        .unwrap();
        assert_eq!(
            d.issue,
            issue(&[
                ("m1", "issued for address 10.9.9.9"),
                ("m2", "expires in 10 days")
            ])
        );
        let mut foreign = full("m2", "10.0.0.2");
        foreign.machine = Some((
            record("m2", "10.0.0.2", &other.id(), NOW + 80 * DAY),
            other.cert_pem.clone(),
        ));
        let d = decide(
            &held(vec![("m1", full("m1", "10.0.0.1")), ("m2", foreign)]),
            &addrs,
            NOW,
        )
        .unwrap();
        assert_eq!(
            d.issue,
            issue(&[("m2", &format!("issued by another CA ({})", other.id()))])
        );

        // Two CAs in one fleet: refused, naming both.
        let mut split = full("m2", "10.0.0.2");
        split.ca = Some(other.clone());
        let e = decide(
            &held(vec![("m1", full("m1", "10.0.0.1")), ("m2", split)]),
            &addrs,
            NOW,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(&id) && e.contains(&other.id()), "{e}");
        assert!(e.contains("hoist-tls-ca"), "{e}");
    }
}
