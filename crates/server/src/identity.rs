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
use serde::Serialize;

/// The verified client certificate (parsed in the pki crate, where it can be fuzzed without the
/// web stack).
type Certificate = pki::identity::ClientIdentity;

/// What the handshake established for a connection; stored in the connection's extensions.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The verified client, if a certificate was presented.
    pub client: Option<Arc<Certificate>>,
    /// Whether the TLS session was resumed.
    pub resumed: bool,
    /// Negotiated protocol ("TLSv1.3").
    pub protocol: &'static str,
}

/// The `on_connect` hook: reads the verified leaf (not the last certificate the client sent).
pub fn on_connect(ssl: &SslRef, ext: &mut Extensions) {
    // The verified chain starts with the leaf; a resumed session keeps only the peer certificate,
    // which was verified when the session was made.
    let client = match ssl.verified_chain().and_then(|c| c.iter().next()) {
        Some(leaf) => Certificate::from_cert(leaf),
        None => ssl
            .peer_certificate()
            .filter(|_| ssl.verify_result() == openssl::x509::X509VerifyResult::OK)
            .and_then(|c| Certificate::from_cert(&c)),
    };
    ext.insert(Connection {
        client: client.map(Arc::new),
        resumed: ssl.session_reused(),
        protocol: ssl.version_str(),
    });
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
    type Target = pki::identity::ClientIdentity;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for ClientIdentity {
    type Error = NoClientCertificate;
    type Future = Ready<Result<ClientIdentity, NoClientCertificate>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let client = req.conn_data::<Connection>().and_then(|c| c.client.clone());
        ready(client.map(ClientIdentity).ok_or(NoClientCertificate))
    }
}

/// Why a [`ClientIdentity`] could not be extracted; answered 401 with a JSON `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no client certificate was presented")]
pub struct NoClientCertificate;

impl ResponseError for NoClientCertificate {
    fn status_code(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::Unauthorized().json(serde_json::json!({ "error": self.to_string() }))
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
