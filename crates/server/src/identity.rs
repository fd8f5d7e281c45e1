//! Who the client is: taken once per connection from the verified certificate, then handed to
//! handlers as plain data through the [`ClientIdentity`] extractor (they never touch OpenSSL
//! types). Access lists are a pure function of it.

use std::future::{ready, Ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::{Extensions, Payload};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use openssl::ssl::SslRef;
use openssl::x509::X509VerifyResult;
use serde::Serialize;
use x509::verify::Problem;

use crate::metrics::{HandshakeResult, Shared};
use crate::refusal::{Reason, Refusal};
use crate::tls;

/// The verified client certificate (parsed in the pki crate, where it can be fuzzed without the
/// web stack).
type Certificate = x509::identity::ClientIdentity;

/// What the handshake established for a connection; stored in the connection's extensions.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The verified client, if a certificate was presented.
    pub client: Option<Arc<Certificate>>,
    /// Why a certificate that was presented was not taken (`optional` mode serves the client as
    /// anonymous).
    pub refusal: Option<Refusal>,
    /// Whether the access list lets this client in (judged once per connection).
    pub allowed: bool,
    /// Whether the TLS session was resumed.
    pub resumed: bool,
    /// Negotiated protocol ("TLSv1.3").
    pub protocol: &'static str,
}

/// What `on_connect` judges a connection with.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The access list.
    pub acl: Arc<Acl>,
    /// Whether a client certificate is asked for.
    pub client_auth: crate::config::ClientAuth,
    /// Where handshakes are counted.
    pub metrics: Shared,
}

/// The `on_connect` hook: reads the verified leaf (not the last certificate the client sent),
/// or why the certificate was not taken; judges the access list; counts the handshake.
pub fn on_connect(ssl: &SslRef, ext: &mut Extensions, gate: &Gate) {
    let verified = ssl.verify_result() == X509VerifyResult::OK;
    let verdict = tls::verdict(ssl);
    // The verified chain starts with the leaf; a resumed session keeps only the peer certificate,
    // which was verified when the session was made.
    let leaf = match ssl.verified_chain().and_then(|c| c.iter().next()) {
        Some(leaf) => Some(leaf.to_owned()),
        None => ssl.peer_certificate(),
    };
    let client = leaf
        .as_ref()
        .filter(|_| verified)
        .and_then(|c| Certificate::from_cert(c));
    let refusal = (!verified)
        .then_some(leaf.as_ref())
        .flatten()
        .map(|cert| Refusal::new(problem_of(ssl, verdict, cert), Some(cert)));
    let allowed = gate.acl.allows(client.as_ref());
    let resumed = ssl.session_reused();
    let stale = verdict.is_some_and(|v| v.stale_crl.load(std::sync::atomic::Ordering::Relaxed));
    if stale && client.is_some() {
        tracing::warn!(
            client = %client.as_ref().map_or("", |c| c.subject.as_str()),
            "client certificate accepted on a CRL past its nextUpdate (--crl-stale warn): run `pki crl`"
        );
    }
    if let Some(m) = &gate.metrics {
        let asked = gate.client_auth != crate::config::ClientAuth::None;
        let (result, reason) = match (&refusal, allowed, stale) {
            (_, false, _) => (HandshakeResult::Refused, Reason::AccessList),
            (Some(r), _, _) => (HandshakeResult::Anonymous, r.reason()),
            (None, _, _) if asked && client.is_none() => {
                (HandshakeResult::Anonymous, Reason::NoCertificate)
            }
            (None, _, true) => (HandshakeResult::Accepted, Reason::CrlStale),
            (None, _, false) => (HandshakeResult::Accepted, Reason::None),
        };
        m.handshake(result, reason, resumed);
        if let (Some(leaf), true, false) = (&leaf, client.is_some(), resumed) {
            if let Ok(t) = x509::time::unix_time(leaf.not_after()) {
                m.client_certificate(t);
            }
        }
    }
    ext.insert(Connection {
        client: client.map(Arc::new),
        refusal,
        allowed,
        resumed,
        protocol: ssl.version_str(),
    });
}

/// The first problem the verify callback kept, else the one of the session's verify result
/// (a resumed session), with our own leaf checks behind OpenSSL's "application verification".
fn problem_of(
    ssl: &SslRef,
    verdict: Option<&tls::Verdict>,
    cert: &openssl::x509::X509Ref,
) -> Problem {
    if let Some(p) = verdict.and_then(|v| v.first.get()) {
        return *p;
    }
    let result = ssl.verify_result();
    if result == X509VerifyResult::APPLICATION_VERIFICATION {
        let own = cert.to_der().ok().and_then(|der| tls::leaf_refusal(&der));
        if let Some((p, _)) = own {
            return p;
        }
    }
    Problem::of(result).unwrap_or(Problem::Other(result.as_raw()))
}

/// The verified client of this request's connection, as a handler argument: the subject, CN,
/// SANs, serial, SHA-256 fingerprint and notAfter of its certificate (through `Deref`), and
/// the JSON of `/whoami` (through `Serialize`).
///
/// Without a verified certificate the request is answered 401 before the handler runs; take
/// `Option<ClientIdentity>` to serve anonymous clients too (with `ClientAuth::Optional` or
/// `None`).
///
/// ```
/// use server::ClientIdentity;
/// async fn hello(client: ClientIdentity) -> String {
///     format!("hello, {}", client.common_name.as_deref().unwrap_or(&client.subject))
/// }
/// async fn maybe(client: Option<ClientIdentity>) -> String {
///     client.map_or_else(|| "hello, stranger".into(), |c| format!("hello, {}", c.subject))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity(Arc<Certificate>);

impl Serialize for ClientIdentity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl Deref for ClientIdentity {
    type Target = x509::identity::ClientIdentity;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for ClientIdentity {
    type Error = NoClientCertificate;
    type Future = Ready<Result<ClientIdentity, NoClientCertificate>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let conn = req.conn_data::<Connection>();
        let client = conn.and_then(|c| c.client.clone());
        ready(client.map(ClientIdentity).ok_or(NoClientCertificate {
            refused: conn.and_then(|c| c.refusal),
        }))
    }
}

/// Why a [`ClientIdentity`] could not be extracted: no certificate, or one that was refused
/// (`optional` mode). Answered 401 with a JSON `error` in plain words (and the `reason` label
/// of a refused one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoClientCertificate {
    /// Why the certificate that was presented was refused; `None` when there was none.
    pub refused: Option<Refusal>,
}

impl std::fmt::Display for NoClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.refused {
            Some(r) => write!(f, "your client certificate was refused: {}", r.plain()),
            None => f.write_str("no client certificate was presented"),
        }
    }
}

impl std::error::Error for NoClientCertificate {}

impl ResponseError for NoClientCertificate {
    fn status_code(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self.refused {
            Some(r) => {
                serde_json::json!({ "error": self.to_string(), "reason": r.reason().label() })
            }
            None => serde_json::json!({ "error": self.to_string() }),
        };
        HttpResponse::Unauthorized().json(body)
    }
}

/// Access lists in the style of ghostunnel: a client passes if its CN is in `cns` or any of its
/// SANs is in `sans`. With both lists empty, every verified (or anonymous) client passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// Allowed common names.
    pub cns: Vec<String>,
    /// Allowed subjectAltName values, with or without their `TYPE:` prefix.
    pub sans: Vec<String>,
}

impl Acl {
    /// True when no list was given.
    pub fn is_open(&self) -> bool {
        self.cns.is_empty() && self.sans.is_empty()
    }

    /// Whether `client` may proceed.
    pub fn allows(&self, client: Option<&Certificate>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(c) = client else {
            return false;
        };
        let cn_ok = c
            .common_name
            .as_ref()
            .is_some_and(|cn| self.cns.iter().any(|a| a == cn));
        let san_ok = c.sans.iter().any(|san| {
            let bare = san.split_once(':').map_or(san.as_str(), |(_, v)| v);
            self.sans
                .iter()
                .any(|a| a.eq_ignore_ascii_case(san) || a == bare)
        });
        cn_ok || san_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(cn: &str, sans: &[&str]) -> Certificate {
        Certificate {
            subject: format!("/CN={cn}"),
            common_name: Some(cn.into()),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            serial: "01".into(),
            sha256: String::new(),
            not_after: String::new(),
        }
    }

    #[test]
    fn open_acl_lets_everyone_in() {
        assert!(Acl::default().allows(None));
        assert!(Acl::default().allows(Some(&id("x", &[]))));
    }

    #[test]
    fn cn_or_san_must_match() {
        let acl = Acl {
            cns: vec!["sensor-1".into()],
            sans: vec!["URI:spiffe://lab/dev/2".into(), "dev3.lab".into()],
        };
        assert!(acl.allows(Some(&id("sensor-1", &[]))));
        assert!(acl.allows(Some(&id("other", &["URI:spiffe://lab/dev/2"]))));
        assert!(acl.allows(Some(&id("other", &["DNS:dev3.lab"]))));
        assert!(!acl.allows(Some(&id("sensor-2", &["DNS:dev4.lab"]))));
        assert!(!acl.allows(None), "no certificate, no entry");
    }
}
