//! The OpenSSL `SslConnector` the client uses: our CA only, TLS 1.2+, hostname verification on,
//! and optionally a client certificate (PEM pair or PKCS#12).

use std::path::PathBuf;
use std::time::Duration;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;

use crate::error::Failure;
pub use crate::revocation::CrlCheck;

/// A PKCS#12 password. Its `Debug` says `<redacted>`: whatever holds one (an [`Identity`], a
/// config) can be logged with `{:?}` without printing it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Where the client certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No client certificate (one-way TLS).
    None,
    /// A PEM certificate (chain) and its key.
    Pem {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// A PKCS#12 bundle and its password.
    Pkcs12 {
        /// The bundle.
        path: PathBuf,
        /// Its password (redacted in `Debug`, never logged).
        password: Password,
    },
}

/// Everything TLS needs to know.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The CA the server's certificate must chain to.
    pub ca: PathBuf,
    /// The client certificate, if any.
    pub identity: Identity,
    /// Verify the server as this name instead of the URL's host (connect to the URL's host).
    pub server_name: Option<String>,
    /// Limit for connecting plus the handshake, and for each request.
    pub timeout: Duration,
    /// Whether the server's certificate is checked against the CRL it names.
    pub crl_check: CrlCheck,
}

/// A loaded client certificate.
pub struct Loaded {
    /// Leaf first, then any intermediates.
    pub chain: Vec<X509>,
    /// Its private key.
    pub key: PKey<Private>,
    /// Where it came from, for messages.
    pub source: String,
}

/// A PKI file problem as a local failure (exit code 2), with a hint for the client's flags.
pub(crate) fn local_file(e: x509::Error, hint: &str) -> Failure {
    Failure::local(common::error_chain(&e), hint)
}

/// Loads the client certificate of `identity` and checks that the key matches it.
pub fn load_identity(identity: &Identity) -> Result<Option<Loaded>, Failure> {
    let loaded = match identity {
        Identity::None => return Ok(None),
        Identity::Pem { cert, key } => {
            let chain = x509::cert::load_certs("client certificate", cert)
                .map_err(|e| local_file(e, "pass the client's .crt file with --cert"))?;
            let k = x509::key::load("client key", key)
                .map_err(|e| local_file(e, "pass the client's .key file with --key"))?;
            Loaded {
                chain,
                key: k,
                source: format!("{} + {}", cert.display(), key.display()),
            }
        }
        Identity::Pkcs12 { path, password } => {
            let der = x509::files::read("PKCS#12 bundle", path)
                .map_err(|e| local_file(e, "pass the bundle with --p12"))?;
            let parsed = Pkcs12::from_der(&der)
                .and_then(|p| p.parse2(password.expose()))
                .map_err(|_| {
                    Failure::local(
                        format!(
                            "cannot open {}: wrong password, or not a PKCS#12 file",
                            path.display()
                        ),
                        "check CLIENT_P12_PASSWORD (or the client.p12.pass file next to it)",
                    )
                })?;
            let (Some(cert), Some(key)) = (parsed.cert, parsed.pkey) else {
                return Err(Failure::local(
                    format!("{} holds no certificate and key", path.display()),
                    "export it again with `pki export-p12`",
                ));
            };
            Loaded {
                chain: vec![cert],
                key,
                source: path.display().to_string(),
            }
        }
    };
    let public = loaded.chain[0]
        .public_key()
        .map_err(|e| Failure::local(format!("unreadable certificate key ({e})"), ""))?;
    if !public.public_eq(&loaded.key) {
        return Err(Failure::local(
            format!("the key does not match the certificate ({})", loaded.source),
            "use the .key file made together with that .crt",
        ));
    }
    Ok(Some(loaded))
}

/// A connector builder with our trust and identity; ALPN as given.
pub fn builder(options: &TlsOptions, alpn: &[u8]) -> Result<SslConnectorBuilder, Failure> {
    let internal =
        |e: openssl::error::ErrorStack| Failure::local(format!("TLS set-up failed: {e}"), "");
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(internal)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(internal)?;
    // Trust exactly the given CA, not the system store: this is a private PKI.
    let cas = x509::cert::load_certs("CA certificate", &options.ca)
        .map_err(|e| local_file(e, "pass the CA's ca.crt with --ca"))?;
    for ca in &cas {
        b.cert_store_mut().add_cert(ca.clone()).map_err(internal)?;
    }
    if options.crl_check != CrlCheck::Off {
        let (mode, timeout) = (options.crl_check, options.timeout);
        b.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
            crate::revocation::verify(ok, ctx, mode, &cas, timeout)
        });
    }
    if let Some(id) = load_identity(&options.identity)? {
        b.set_certificate(&id.chain[0]).map_err(internal)?;
        for extra in &id.chain[1..] {
            b.add_extra_chain_cert(extra.clone()).map_err(internal)?;
        }
        b.set_private_key(&id.key).map_err(internal)?;
    }
    b.set_alpn_protos(alpn).map_err(internal)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FailureClass;

    #[test]
    fn an_identity_in_debug_output_hides_its_password() {
        let identity = Identity::Pkcs12 {
            path: PathBuf::from("certs/client/client.p12"),
            password: Password::new("hunter2-correct-horse"),
        };
        for shown in [format!("{identity:?}"), format!("{identity:#?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("client.p12") && shown.contains("<redacted>"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_a_local_failure() {
        let dir = tempfile::tempdir().expect("tmp");
        let folder = pki::Folder::new(common::Layout::new(dir.path()));
        folder.init(&pki::InitOptions::default()).expect("init");
        let layout = folder.layout();
        let mismatched = Identity::Pem {
            cert: layout.client_cert(),
            key: layout.server_key(),
        };
        let f = load_identity(&mismatched).err().expect("refused");
        assert_eq!(f.class, FailureClass::LocalFiles, "{f}");
        assert!(f.message.contains("does not match the certificate"), "{f}");
        let f = load_identity(&Identity::Pkcs12 {
            path: layout.client_p12("client"),
            password: Password::new("wrong"),
        })
        .err()
        .expect("refused");
        assert!(f.message.contains("wrong password"), "{f}");
    }
}
