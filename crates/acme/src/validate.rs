//! Challenge validation (RFC 8555 §8, RFC 8737, RFC 8738): the CA connects to the name being
//! ordered and checks it answers with the key authorization. Everything is bounded, so an
//! order cannot turn the CA against the network: names are looked up through the resolver the
//! operator chose, connections go only to the configured ports (80 and 443 unless told), each
//! step has a timeout, an http-01 answer is read up to 8 KiB, and redirects are not followed.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::jws::b64_encode;
use crate::model::{Identifier, DNS_01, HTTP_01, TLS_ALPN_01};
use crate::problem::{Kind, Problem};

/// The ALPN protocol of tls-alpn-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// id-pe-acmeIdentifier (RFC 8737 §6.1).
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

/// Largest http-01 answer read.
const MAX_HTTP_ANSWER: usize = 8 * 1024;

/// Where and how long validation may reach.
#[derive(Debug, Clone)]
pub struct Validator {
    /// The DNS server names are looked up at (`None`: the system's).
    pub resolver: Option<SocketAddr>,
    /// The port http-01 connects to.
    pub http_port: u16,
    /// The port tls-alpn-01 connects to.
    pub tls_port: u16,
    /// Each connection, handshake, look-up and read.
    pub timeout: Duration,
}

impl Default for Validator {
    fn default() -> Validator {
        Validator {
            resolver: None,
            http_port: 80,
            tls_port: 443,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Validator {
    /// Checks challenge `kind` for `id`: the answer must be `key_auth`.
    pub async fn check(&self, kind: &str, id: &Identifier, key_auth: &str) -> Result<(), Problem> {
        match kind {
            HTTP_01 => self.http_01(id, key_auth).await,
            TLS_ALPN_01 => self.tls_alpn_01(id, key_auth).await,
            DNS_01 => self.dns_01(id, key_auth).await,
            other => Err(Problem::malformed(format!("no challenge type {other}"))),
        }
    }

    fn resolver(&self) -> Result<TokioResolver, Problem> {
        let failed = |e: hickory_resolver::net::NetError| {
            Problem::new(Kind::Dns, format!("the CA's resolver cannot start: {e}"))
        };
        let builder = match self.resolver {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(failed)?,
        };
        let mut opts = ResolverOpts::default();
        // Each validation sees the zone as it is now: a client fixes its record and retries.
        opts.cache_size = 0;
        opts.timeout = self.timeout;
        opts.attempts = 2;
        builder.with_options(opts).build().map_err(failed)
    }

    /// The addresses of `id`: itself for an IP, else its A and AAAA records.
    async fn addresses(&self, id: &Identifier) -> Result<Vec<IpAddr>, Problem> {
        if let Ok(ip) = id.value.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let found = self
            .resolver()?
            .lookup_ip(format!("{}.", id.value))
            .await
            .map_err(|e| Problem::new(Kind::Dns, format!("{}: no address: {e}", id.value)))?;
        let ips: Vec<IpAddr> = found.iter().collect();
        if ips.is_empty() {
            return Err(Problem::new(Kind::Dns, format!("{}: no address", id.value)));
        }
        Ok(ips)
    }

    async fn http_01(&self, id: &Identifier, key_auth: &str) -> Result<(), Problem> {
        let token = key_auth.split('.').next().unwrap_or_default();
        let mut last = None;
        for ip in self.addresses(id).await? {
            let addr = SocketAddr::new(ip, self.http_port);
            match self.http_01_at(addr, id, token, key_auth).await {
                Ok(()) => return Ok(()),
                Err(p) => last = Some(p),
            }
        }
        Err(last.unwrap_or_else(|| Problem::new(Kind::Connection, "no address answered")))
    }

    async fn http_01_at(
        &self,
        addr: SocketAddr,
        id: &Identifier,
        token: &str,
        key_auth: &str,
    ) -> Result<(), Problem> {
        let url = format!("http://{addr}/.well-known/acme-challenge/{token}");
        let host = match id.value.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => id.value.clone(),
        };
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(self.timeout)
            .finish();
        let mut answer = client
            .get(&url)
            .insert_header(("Host", host))
            .send()
            .await
            .map_err(|e| {
                Problem::new(
                    Kind::Connection,
                    format!("http-01: {} at {addr}: {e}", id.value),
                )
            })?;
        let status = answer.status();
        if status.is_redirection() {
            return Err(Problem::new(
                Kind::IncorrectResponse,
                format!("http-01: {addr} answered {status} (a redirect); serve /.well-known/acme-challenge/ on port {} itself", self.http_port),
            ));
        }
        if !status.is_success() {
            return Err(Problem::new(
                Kind::IncorrectResponse,
                format!("http-01: {url} answered {status}"),
            ));
        }
        let body =
            answer.body().limit(MAX_HTTP_ANSWER).await.map_err(|e| {
                Problem::new(Kind::IncorrectResponse, format!("http-01: {url}: {e}"))
            })?;
        let got = String::from_utf8_lossy(&body);
        if got.trim() == key_auth {
            return Ok(());
        }
        Err(Problem::new(
            Kind::IncorrectResponse,
            format!("http-01: {url} answered something else than the key authorization"),
        ))
    }

    async fn tls_alpn_01(&self, id: &Identifier, key_auth: &str) -> Result<(), Problem> {
        let expected = openssl::sha::sha256(key_auth.as_bytes());
        let mut last = None;
        for ip in self.addresses(id).await? {
            let addr = SocketAddr::new(ip, self.tls_port);
            let (id2, timeout) = (id.clone(), self.timeout);
            let tried = actix_web::web::block(move || tls_alpn_at(addr, &id2, &expected, timeout))
                .await
                .unwrap_or_else(|e| Err(Problem::new(Kind::ServerInternal, e.to_string())));
            match tried {
                Ok(()) => return Ok(()),
                Err(p) => last = Some(p),
            }
        }
        Err(last.unwrap_or_else(|| Problem::new(Kind::Connection, "no address answered")))
    }

    async fn dns_01(&self, id: &Identifier, key_auth: &str) -> Result<(), Problem> {
        if id.kind != "dns" {
            return Err(Problem::malformed("dns-01 validates DNS names only"));
        }
        let expected = b64_encode(openssl::sha::sha256(key_auth.as_bytes()));
        let name = format!("_acme-challenge.{}.", id.value);
        // The resolver follows a CNAME at the name to where the record is (a delegated zone).
        let found = self
            .resolver()?
            .lookup(name.as_str(), RecordType::TXT)
            .await
            .map_err(|e| {
                Problem::new(Kind::Dns, format!("dns-01: no TXT record at {name}: {e}"))
            })?;
        let values: Vec<String> = found
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        if values.iter().any(|v| v == &expected) {
            return Ok(());
        }
        Err(Problem::new(
            Kind::IncorrectResponse,
            format!("dns-01: the TXT records at {name} ({} found) do not hold the digest of the key authorization", values.len()),
        ))
    }
}

/// One tls-alpn-01 attempt (blocking: on the blocking pool).
fn tls_alpn_at(
    addr: SocketAddr,
    id: &Identifier,
    expected: &[u8; 32],
    timeout: Duration,
) -> Result<(), Problem> {
    let fail = |kind, why: String| {
        Problem::new(kind, format!("tls-alpn-01: {} at {addr}: {why}", id.value))
    };
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| fail(Kind::Connection, e.to_string()))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| fail(Kind::Tls, e.to_string()))?;
    // The certificate is self-signed by design; what it holds is checked below.
    builder.set_verify(SslVerifyMode::NONE);
    builder
        .set_alpn_protos(b"\x0aacme-tls/1")
        .map_err(|e| fail(Kind::Tls, e.to_string()))?;
    let connector = builder.build();
    let mut config = connector
        .configure()
        .map_err(|e| fail(Kind::Tls, e.to_string()))?;
    config.set_verify_hostname(false);
    let sni = sni_of(id);
    let stream = config
        .connect(&sni, tcp)
        .map_err(|e| fail(Kind::Tls, format!("the handshake failed: {e}")))?;
    if stream.ssl().selected_alpn_protocol() != Some(ACME_TLS_ALPN) {
        return Err(fail(Kind::Tls, "it did not select ALPN acme-tls/1".into()));
    }
    let cert = stream
        .ssl()
        .peer_certificate()
        .ok_or_else(|| fail(Kind::Tls, "no certificate".into()))?;
    let der = cert.to_der().map_err(|e| fail(Kind::Tls, e.to_string()))?;
    check_alpn_certificate(&der, id, expected).map_err(|why| fail(Kind::IncorrectResponse, why))
}

/// The SNI of a tls-alpn-01 handshake: the name, or for an address its reverse-DNS name
/// (RFC 8738 §6).
fn sni_of(id: &Identifier) -> String {
    match id.value.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        Ok(IpAddr::V6(v6)) => {
            let nibbles: Vec<String> = v6
                .octets()
                .iter()
                .rev()
                .flat_map(|b| [b & 0x0f, b >> 4])
                .map(|n| format!("{n:x}"))
                .collect();
            format!("{}.ip6.arpa", nibbles.join("."))
        }
        Err(_) => id.value.clone(),
    }
}

/// RFC 8737 §3: exactly the identifier as its subjectAltName, and a critical acmeIdentifier
/// extension holding SHA-256 of the key authorization.
fn check_alpn_certificate(der: &[u8], id: &Identifier, expected: &[u8; 32]) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("its certificate: {e}"))?;
    let mut names = Vec::new();
    let mut digest_ok = false;
    for ext in cert.extensions() {
        if ext.oid.to_id_string() == ACME_IDENTIFIER_OID {
            if !ext.critical {
                return Err("its acmeIdentifier extension is not critical".into());
            }
            // The value is an OCTET STRING of 32 bytes: 04 20 || digest.
            digest_ok = ext.value.len() == 34
                && ext.value[..2] == [0x04, 0x20]
                && ext.value[2..] == expected[..];
        }
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for n in &san.general_names {
                // An address must be an iPAddress entry (RFC 8738 §6), a name a dNSName.
                names.push(match n {
                    GeneralName::DNSName(d) => Identifier::dns(&d.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => Identifier {
                        kind: "ip".into(),
                        value: ip_text(b),
                    },
                    other => Identifier::dns(&format!("{other:?}")),
                });
            }
        }
    }
    if names != [id.clone()] {
        let listed: Vec<String> = names
            .iter()
            .map(|n| format!("{}:{}", n.kind, n.value))
            .collect();
        return Err(format!(
            "its certificate names [{}], not just {}:{} (an address must be an iPAddress entry)",
            listed.join(", "),
            id.kind,
            id.value
        ));
    }
    if !digest_ok {
        return Err("its acmeIdentifier does not hold the digest of the key authorization".into());
    }
    Ok(())
}

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(b).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(b).unwrap_or_default()).to_string(),
        _ => format!("{b:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_reached_by_its_reverse_name() {
        assert_eq!(sni_of(&Identifier::dns("web1.test")), "web1.test");
        assert_eq!(
            sni_of(&Identifier::ip("127.0.0.1".parse().expect("ip"))),
            "1.0.0.127.in-addr.arpa"
        );
        assert!(sni_of(&Identifier::ip("::1".parse().expect("ip"))).starts_with("1.0.0.0.0.0.0.0"));
    }
}
