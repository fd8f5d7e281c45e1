//! Name constraints (RFC 5280 §4.2.1.10): what an issuing CA may sign for. A browser that
//! trusts our CA then trusts it for `.internal` and `10.0.0.0/8`, not for every site on the
//! internet (mkcert#302). `pki issue`/`sign` check a name against them first, so a certificate
//! that verifiers would refuse is never made.

use std::fmt;
use std::net::IpAddr;

use openssl::x509::{X509Extension, X509Ref, X509v3Context};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::error::{CryptoContext, Error, Result};
use crate::san::SubjectAltName;

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address.
    pub addr: IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl IpNet {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a single host).
    pub fn parse(s: &str) -> Result<IpNet> {
        let bad = || Error::InvalidName {
            value: s.to_owned(),
            reason: "not an IP network such as 10.0.0.0/8 or fd00::/8",
        };
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.trim().parse::<u8>().map_err(|_| bad())?
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }

    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(&self) -> u128 {
        let (_, width) = IpNet::bits(self.addr);
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (width - self.prefix)) & (u128::MAX >> (128 - u32::from(width)))
        }
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (net, _) = IpNet::bits(self.addr);
        let (host, _) = IpNet::bits(ip);
        net & self.mask() == host & self.mask()
    }

    /// The mask in address form, as OpenSSL's configuration syntax wants it.
    fn mask_addr(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::from((self.mask() as u32).to_be_bytes()),
            IpAddr::V6(_) => IpAddr::from(self.mask().to_be_bytes()),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The permitted subtrees of an issuing CA. Empty: no constraint (the extension is left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraints {
    /// DNS subtrees: `.internal` (any name below it), `localhost` (that name and below).
    pub dns: Vec<String>,
    /// IP networks.
    pub ip: Vec<IpNet>,
}

impl NameConstraints {
    /// True when nothing is constrained.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ip.is_empty()
    }

    /// The critical nameConstraints extension, for the CA certificate being built in `ctx`.
    pub fn extension(&self, ctx: &X509v3Context<'_>) -> Result<X509Extension> {
        let mut parts = vec!["critical".to_owned()];
        parts.extend(self.dns.iter().map(|d| format!("permitted;DNS:{d}")));
        parts.extend(
            self.ip
                .iter()
                .map(|n| format!("permitted;IP:{}/{}", n.addr, n.mask_addr())),
        );
        // rust-openssl has no builder for this extension; the configuration-string
        // constructor is deprecated only in favour of builders that do not exist for it.
        #[allow(deprecated)]
        X509Extension::new_nid(
            None,
            Some(ctx),
            openssl::nid::Nid::NAME_CONSTRAINTS,
            &parts.join(","),
        )
        .step("x509 -extfile nameConstraints")
    }

    /// The permitted subtrees a CA certificate carries (empty when it has none).
    pub fn of(cert: &X509Ref) -> Result<NameConstraints> {
        let der = cert.to_der().step("x509 -outform DER")?;
        let Ok((_, parsed)) = x509_parser::certificate::X509Certificate::from_der(&der) else {
            return Ok(NameConstraints::default());
        };
        let mut out = NameConstraints::default();
        for ext in parsed.extensions() {
            let ParsedExtension::NameConstraints(nc) = ext.parsed_extension() else {
                continue;
            };
            for subtree in nc.permitted_subtrees.iter().flatten() {
                match &subtree.base {
                    GeneralName::DNSName(d) => out.dns.push(d.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Some(net) = net_of(b) {
                            out.ip.push(net);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Whether `name` is inside the permitted subtrees of its type (a type with no subtree is
    /// not constrained, as RFC 5280 says).
    pub fn allows(&self, name: &SubjectAltName) -> bool {
        match name {
            SubjectAltName::Dns(d) if !self.dns.is_empty() => {
                self.dns.iter().any(|c| dns_within(d, c))
            }
            SubjectAltName::Ip(ip) if !self.ip.is_empty() => {
                self.ip.iter().any(|n| n.contains(*ip))
            }
            _ => true,
        }
    }

    /// Refuses the first of `names` outside the constraints, and a CN that verifiers read as a
    /// host name (`cn`, when there is no DNS name) outside them.
    pub fn check(&self, names: &[SubjectAltName], cn: &str) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut all: Vec<SubjectAltName> = names.to_vec();
        // OpenSSL checks a CN that looks like a host name when no DNS name is given.
        let has_dns = names.iter().any(|n| matches!(n, SubjectAltName::Dns(_)));
        if !has_dns && cn.contains('.') {
            if let Ok(n) = cn.parse::<SubjectAltName>() {
                all.push(n);
            }
        }
        match all.iter().find(|n| !self.allows(n)) {
            None => Ok(()),
            Some(n) => Err(Error::Refused(format!(
                "{n} is outside the CA's name constraints ({self}): verifiers would refuse \
                 the certificate; pick a name inside them"
            ))),
        }
    }
}

impl fmt::Display for NameConstraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self
            .dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(self.ip.iter().map(|n| format!("IP:{n}")))
            .collect();
        f.write_str(&all.join(", "))
    }
}

/// RFC 5280: `.example.com` covers the names below it; `example.com` covers itself and below.
fn dns_within(name: &str, constraint: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let c = constraint.trim_end_matches('.').to_ascii_lowercase();
    match c.strip_prefix('.') {
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => name == c || name.ends_with(&format!(".{c}")),
    }
}

/// An iPAddress constraint: address then mask, 8 or 32 bytes.
fn net_of(b: &[u8]) -> Option<IpNet> {
    let (addr, mask): (IpAddr, u32) = match b.len() {
        8 => {
            let a: [u8; 4] = b[..4].try_into().ok()?;
            let m: [u8; 4] = b[4..].try_into().ok()?;
            (IpAddr::from(a), u32::from_be_bytes(m).count_ones())
        }
        32 => {
            let a: [u8; 16] = b[..16].try_into().ok()?;
            let m: [u8; 16] = b[16..].try_into().ok()?;
            (IpAddr::from(a), u128::from_be_bytes(m).count_ones())
        }
        _ => return None,
    };
    Some(IpNet {
        addr,
        prefix: u8::try_from(mask).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nc() -> NameConstraints {
        NameConstraints {
            dns: vec![".internal".into(), "localhost".into()],
            ip: vec![
                IpNet::parse("10.0.0.0/8").expect("net"),
                IpNet::parse("127.0.0.1").expect("host"),
                IpNet::parse("::1").expect("host"),
            ],
        }
    }

    #[test]
    fn names_inside_pass_and_outside_are_refused() {
        let n = |s: &str| s.parse::<SubjectAltName>().expect(s);
        for ok in [
            "api.internal",
            "a.b.internal",
            "localhost",
            "IP:10.2.3.4",
            "IP:127.0.0.1",
            "IP:::1",
        ] {
            assert!(nc().allows(&n(ok)), "{ok}");
        }
        for bad in [
            "internal",
            "example.com",
            "localhost.evil",
            "IP:11.0.0.1",
            "IP:127.0.0.2",
            "xinternal",
        ] {
            assert!(!nc().allows(&n(bad)), "{bad}");
        }
        assert!(nc().check(&[n("api.internal")], "api").is_ok());
        assert!(
            nc().check(&[], "bank.example.com").is_err(),
            "a host-like CN counts"
        );
        assert!(
            nc().check(&[], "client").is_ok(),
            "a device CN is not a host name"
        );
        assert!(NameConstraints::default()
            .check(&[n("example.com")], "x")
            .is_ok());
    }

    #[test]
    fn networks_parse_and_refuse_nonsense() {
        assert_eq!(
            IpNet::parse("10.0.0.0/8").expect("ok").to_string(),
            "10.0.0.0/8"
        );
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("ten/8").is_err());
        assert!(IpNet::parse("fd00::/8")
            .expect("v6")
            .contains("fd12::1".parse().expect("ip")));
    }
}
