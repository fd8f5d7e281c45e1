//! The load generator's TLS clients: OpenSSL (tokio-openssl) and rustls, both verifying the
//! server's chain against `--ca` and its name or IP address. There is no way to turn that off.
//!
//! Session resumption needs the client to offer a saved session. The openssl crate does that
//! only through `SslRef::set_session`, which is `unsafe` (the session must come from the same
//! `SSL_CTX`), and OpenSSL's client-side session cache never offers sessions by itself
//! (`SSL_SESS_CACHE_CLIENT` only stores them). This workspace forbids unsafe code, so the
//! `resume` mode uses rustls, whose client resumes from its own cache safely; the server side
//! does exactly the same work either way.
//!
//! rustls is also the default for the other modes: on this machine its client spends about
//! 450 µs of CPU per mutual EC handshake against OpenSSL 3.0's 1,200 µs, and the load generator
//! shares the cores with the server it measures.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Which TLS library the load generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// OpenSSL through tokio-openssl (the same library as both servers).
    Openssl,
    /// rustls with ring (the only one that can resume sessions without unsafe code).
    Rustls,
}

/// Where the client's trust anchor and identity come from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate(s) the server must chain to.
    pub ca: PathBuf,
    /// Client certificate chain (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
}

/// A byte stream after the handshake.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A finished handshake.
pub struct Connected {
    /// The encrypted stream.
    pub stream: Box<dyn Stream>,
    /// Whether the server accepted the session we offered.
    pub resumed: bool,
}

/// Builds connections for all workers.
#[derive(Clone)]
pub enum Connector {
    /// OpenSSL.
    Openssl(SslConnector),
    /// rustls, with session resumption on or off.
    Rustls {
        /// Shared settings; each worker gets its own session cache.
        config: Arc<rustls::ClientConfig>,
        /// Keep sessions and offer them on new connections.
        resume: bool,
    },
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

impl Connector {
    /// A connector for `backend`; `resume` asks for session resumption (rustls only).
    pub fn new(backend: Backend, files: &TlsFiles, resume: bool) -> Result<Connector> {
        let (cert, key) = match (&files.cert, &files.key) {
            (Some(c), Some(k)) => (Some(c.as_path()), Some(k.as_path())),
            (None, None) => (None, None),
            _ => bail!("--cert and --key go together"),
        };
        match backend {
            Backend::Openssl => {
                if resume {
                    bail!(
                        "the openssl backend cannot offer a saved session without unsafe code; \
                         use --tls rustls for --mode resume"
                    );
                }
                let mut b = SslConnector::builder(SslMethod::tls_client())?;
                b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
                b.set_ca_file(&files.ca)
                    .with_context(|| format!("cannot load the CA {}", files.ca.display()))?;
                if let (Some(cert), Some(key)) = (cert, key) {
                    b.set_certificate_chain_file(cert)
                        .with_context(|| format!("cannot load {}", cert.display()))?;
                    b.set_private_key_file(key, SslFiletype::PEM)
                        .with_context(|| format!("cannot load {}", key.display()))?;
                    b.check_private_key()
                        .context("the client key does not match the certificate")?;
                }
                b.set_alpn_protos(b"\x08http/1.1")?;
                Ok(Connector::Openssl(b.build()))
            }
            Backend::Rustls => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&read("CA certificate", &files.ca)?) {
                    roots
                        .add(c.context("the CA file is not PEM")?)
                        .context("the CA certificate is not usable")?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let builder = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots);
                let mut config = match (cert, key) {
                    (Some(cert), Some(key)) => {
                        let chain = CertificateDer::pem_slice_iter(&read("certificate", cert)?)
                            .collect::<Result<Vec<_>, _>>()
                            .with_context(|| format!("{} is not PEM", cert.display()))?;
                        let key = PrivateKeyDer::from_pem_slice(&read("key", key)?)
                            .with_context(|| format!("{} is not a PEM key", key.display()))?;
                        builder.with_client_auth_cert(chain, key)?
                    }
                    _ => builder.with_no_client_auth(),
                };
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                config.resumption = Resumption::disabled();
                Ok(Connector::Rustls {
                    config: Arc::new(config),
                    resume,
                })
            }
        }
    }

    /// The connector one worker uses: with resumption, a session cache of its own, so each
    /// worker offers the session (ticket) of its own previous connection.
    pub fn for_worker(&self) -> Connector {
        match self {
            Connector::Rustls {
                config,
                resume: true,
            } => {
                let mut own = (**config).clone();
                own.resumption = Resumption::in_memory_sessions(4);
                Connector::Rustls {
                    config: Arc::new(own),
                    resume: true,
                }
            }
            other => other.clone(),
        }
    }

    /// TLS handshake over `tcp` with the server `host` (a DNS name or an IP address, checked
    /// against the certificate's subjectAltName).
    pub async fn handshake(&self, tcp: TcpStream, host: &str) -> Result<Connected, String> {
        match self {
            Connector::Openssl(c) => {
                let ssl = c
                    .configure()
                    .and_then(|cfg| cfg.into_ssl(host))
                    .map_err(|e| e.to_string())?;
                let mut s = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
                std::pin::Pin::new(&mut s)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let resumed = s.ssl().session_reused();
                Ok(Connected {
                    stream: Box::new(s),
                    resumed,
                })
            }
            Connector::Rustls { config, .. } => {
                let name = match host.parse::<IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?,
                };
                let s = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| e.to_string())?;
                let resumed =
                    s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                Ok(Connected {
                    stream: Box::new(s),
                    resumed,
                })
            }
        }
    }
}
