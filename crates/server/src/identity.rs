//! Who the client is: taken once per connection from the verified certificate, then handed to
//! handlers as plain data (they never touch OpenSSL types). Access lists are a pure function of it.

use actix_web::dev::Extensions;
use openssl::ssl::SslRef;

/// The verified client certificate, as JSON for `/whoami` (parsed in the pki crate, where it
/// can be fuzzed without the web stack).
pub use pki::identity::ClientIdentity;

/// What the handshake established for a connection; stored in the connection's extensions.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The verified client, if a certificate was presented.
    pub client: Option<ClientIdentity>,
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
        Some(leaf) => ClientIdentity::from_cert(leaf),
        None => ssl
            .peer_certificate()
            .filter(|_| ssl.verify_result() == openssl::x509::X509VerifyResult::OK)
            .and_then(|c| ClientIdentity::from_cert(&c)),
    };
    ext.insert(Connection {
        client,
        resumed: ssl.session_reused(),
        protocol: ssl.version_str(),
    });
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
    pub fn allows(&self, client: Option<&ClientIdentity>) -> bool {
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

    fn id(cn: &str, sans: &[&str]) -> ClientIdentity {
        ClientIdentity {
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
