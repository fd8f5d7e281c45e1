//! subjectAltName entries (RFC 5280 §4.2.1.6) as openssl writes them on a command line:
//! `DNS:localhost`, `IP:127.0.0.1`, `email:a@b`, `URI:spiffe://x`. Parsed once, here, for the
//! CLI, the profiles, the name constraints and the records alike.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// One subjectAltName entry, written as openssl does: `DNS:localhost`, `IP:127.0.0.1`,
/// `email:a@b`, `URI:spiffe://x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectAltName {
    /// A host name (`*.example.com` allowed).
    Dns(String),
    /// An IPv4 or IPv6 address, encoded as iPAddress (never as a DNS name: verifiers would not match it).
    Ip(IpAddr),
    /// An e-mail address (rfc822Name).
    Email(String),
    /// A URI, for example a SPIFFE ID.
    Uri(String),
}

impl SubjectAltName {
    /// The server names `make certs` uses: `DNS:localhost, IP:127.0.0.1, IP:::1`.
    pub fn localhost() -> Vec<SubjectAltName> {
        vec![
            SubjectAltName::Dns("localhost".into()),
            SubjectAltName::Ip(IpAddr::from([127, 0, 0, 1])),
            SubjectAltName::Ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        ]
    }

    /// The value without its type prefix, as used for a CN.
    pub fn value(&self) -> String {
        match self {
            SubjectAltName::Dns(v) | SubjectAltName::Email(v) | SubjectAltName::Uri(v) => v.clone(),
            SubjectAltName::Ip(ip) => ip.to_string(),
        }
    }
}

impl fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectAltName::Dns(v) => write!(f, "DNS:{v}"),
            SubjectAltName::Ip(v) => write!(f, "IP:{v}"),
            SubjectAltName::Email(v) => write!(f, "email:{v}"),
            SubjectAltName::Uri(v) => write!(f, "URI:{v}"),
        }
    }
}

impl FromStr for SubjectAltName {
    type Err = Error;

    /// Parses `TYPE:VALUE` (types DNS, IP, email, URI, case-insensitive), or a bare value: an IP
    /// address if it parses as one, else a DNS name.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidName {
            value: s.to_owned(),
            reason,
        };
        let (kind, value) = match s.split_once(':') {
            Some((k, v))
                if ["dns", "ip", "email", "uri"].contains(&k.to_ascii_lowercase().as_str()) =>
            {
                (k.to_ascii_lowercase(), v)
            }
            _ => (String::new(), s),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(bad("empty value"));
        }
        match kind.as_str() {
            "ip" => value
                .parse()
                .map(SubjectAltName::Ip)
                .map_err(|_| bad("not an IPv4 or IPv6 address")),
            "email" if value.contains('@') => Ok(SubjectAltName::Email(value.into())),
            "email" => Err(bad("an e-mail address needs an @")),
            "uri" if value.contains(':') => Ok(SubjectAltName::Uri(value.into())),
            "uri" => Err(bad("a URI needs a scheme (for example spiffe://...)")),
            "dns" if value.parse::<IpAddr>().is_ok() => Err(bad(
                "an IP address must be given as IP:..., verifiers never match it as a DNS name",
            )),
            _ => match value.parse::<IpAddr>() {
                Ok(ip) => Ok(SubjectAltName::Ip(ip)),
                Err(_) => check_dns(value)
                    .map(|()| SubjectAltName::Dns(value.to_ascii_lowercase()))
                    .map_err(bad),
            },
        }
    }
}

/// RFC 1034 preferred syntax, with an optional leading `*.` wildcard label.
fn check_dns(name: &str) -> std::result::Result<(), &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if name.len() > 253 {
        return Err("a DNS name is at most 253 characters");
    }
    for label in rest.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each DNS label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err("a DNS label holds letters, digits and inner hyphens only");
        }
    }
    Ok(())
}
