//! The protocol's objects as the records keep them (JSON bodies of `acme_objects`), and as
//! the client sees them (RFC 8555 §7.1). A row's status column is what replicas swap; the
//! body holds the rest.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use x509::SubjectAltName;

use crate::problem::{Kind, Problem};

/// An identifier: `dns` or `ip` (RFC 8738).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name or address.
    pub value: String,
}

impl Identifier {
    /// Checks and normalises a client's identifier: a DNS name (lower case, no trailing dot,
    /// no wildcard) or an IP address in its canonical text.
    pub fn checked(&self) -> Result<Identifier, Problem> {
        match self.kind.as_str() {
            // Clients older than RFC 8738 (lego 4.9) send an address as a dns identifier: it is
            // one, and is issued as an iPAddress.
            "dns" if self.value.parse::<IpAddr>().is_ok() => Identifier {
                kind: "ip".into(),
                value: self.value.clone(),
            }
            .checked(),
            "dns" => {
                let v = self.value.trim_end_matches('.').to_ascii_lowercase();
                if v.starts_with("*.") {
                    return Err(Problem::new(
                        Kind::RejectedIdentifier,
                        format!(
                            "{}: this CA issues no wildcard certificates; order each name",
                            self.value
                        ),
                    ));
                }
                if !is_dns_name(&v) {
                    return Err(Problem::new(
                        Kind::RejectedIdentifier,
                        format!("{:?} is not a DNS name", self.value),
                    ));
                }
                Ok(Identifier::dns(&v))
            }
            "ip" => {
                let ip: IpAddr = self.value.parse().map_err(|_| {
                    Problem::new(
                        Kind::RejectedIdentifier,
                        format!("{:?} is not an IP address", self.value),
                    )
                })?;
                Ok(Identifier::ip(ip))
            }
            other => Err(Problem::new(
                Kind::UnsupportedIdentifier,
                format!("identifier type {other:?}: this CA issues for dns and ip"),
            )),
        }
    }

    /// A DNS identifier.
    pub fn dns(name: &str) -> Identifier {
        Identifier {
            kind: "dns".into(),
            value: name.into(),
        }
    }

    /// An IP identifier.
    pub fn ip(ip: IpAddr) -> Identifier {
        Identifier {
            kind: "ip".into(),
            value: ip.to_string(),
        }
    }

    /// As a subjectAltName.
    pub fn san(&self) -> SubjectAltName {
        match self.value.parse::<IpAddr>() {
            Ok(ip) if self.kind == "ip" => SubjectAltName::Ip(ip),
            _ => SubjectAltName::Dns(self.value.clone()),
        }
    }

    /// The host a validation connects to or looks up (an IP as is).
    pub fn host(&self) -> &str {
        &self.value
    }
}

/// A host name of LDH labels, 1–63 characters each, 253 in all.
fn is_dns_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && v.parse::<IpAddr>().is_err()
}

/// The challenge types.
pub const HTTP_01: &str = "http-01";
/// TLS with ALPN `acme-tls/1` (RFC 8737).
pub const TLS_ALPN_01: &str = "tls-alpn-01";
/// A TXT record at `_acme-challenge.NAME`.
pub const DNS_01: &str = "dns-01";

/// One challenge of an authorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// `http-01`, `tls-alpn-01` or `dns-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its token (base64url, 128 bits).
    pub token: String,
    /// `pending`, `processing`, `valid` or `invalid`.
    pub status: String,
    /// When it was validated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<String>,
    /// Why it failed (a problem document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// An authorization's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authz {
    /// What it authorizes.
    pub identifier: Identifier,
    /// Its challenges (none when it was pre-authorized).
    pub challenges: Vec<Challenge>,
    /// When a replica began validating it (a claim that goes stale if that replica died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_since: Option<i64>,
}

/// An order's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The names ordered.
    pub identifiers: Vec<Identifier>,
    /// Its authorizations' ids.
    pub authorizations: Vec<String>,
    /// The profile (`tls-server`, `mtls-client`).
    pub profile: String,
    /// The serial of the certificate this order replaces (RFC 9773), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Why it became invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The certificate issued: (issuer key id, serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<(String, String)>,
    /// When a replica began finalizing it (a claim that goes stale if that replica died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_since: Option<i64>,
}

/// RFC 3339 in UTC, as every ACME timestamp.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The wire form of a challenge at `url`.
pub fn challenge_json(c: &Challenge, url: &str) -> Value {
    let mut v = json!({"type": c.kind, "url": url, "token": c.token, "status": c.status});
    if let Some(at) = &c.validated {
        v["validated"] = json!(at);
    }
    if let Some(e) = &c.error {
        v["error"] = e.clone();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_normalised_or_refused_with_the_rfcs_type() {
        let id = Identifier::dns("Web1.Test.").checked().expect("dns");
        assert_eq!(id, Identifier::dns("web1.test"));
        let ip = Identifier {
            kind: "ip".into(),
            value: "::0001".into(),
        };
        assert_eq!(ip.checked().expect("ip").value, "::1");
        let legacy = Identifier::dns("127.0.0.1")
            .checked()
            .expect("address as dns");
        assert_eq!(legacy, Identifier::ip("127.0.0.1".parse().expect("ip")));
        for bad in ["*.test", "a..b", "-a.test", "a_b.test", "a b.test"] {
            let err = Identifier::dns(bad).checked().expect_err(bad);
            assert_eq!(err.kind, Kind::RejectedIdentifier, "{bad}");
        }
        let email = Identifier {
            kind: "email".into(),
            value: "a@b".into(),
        };
        assert_eq!(
            email.checked().expect_err("email").kind,
            Kind::UnsupportedIdentifier
        );
    }

    #[test]
    fn timestamps_are_rfc_3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
