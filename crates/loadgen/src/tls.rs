//! The load generator's TLS clients: OpenSSL (tokio-openssl) and rustls, both verifying the
//! server's chain against `--ca` and its name or IP address, with no way to turn that off.
//!
//! `resume` needs rustls: the openssl crate offers a saved session only through the `unsafe`
//! `SslRef::set_session`, which this workspace forbids. rustls is the default elsewhere too:
//! its client costs less CPU per handshake, and it shares the cores with the server measured.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::{io, tls, Error, Result};
use crate::http::Http;

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
    /// The protocol the server chose by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
}

/// Whether an I/O error on an established stream comes from the TLS layer (e.g. the peer's
/// alert refusing our certificate), not from the connection: both TLS streams wrap their
/// library's error in the `io::Error` they return.
pub fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>() || inner.is::<openssl::ssl::Error>())
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
    std::fs::read(path).map_err(io(format!("read the {what} {}", path.display())))
}

fn openssl_connector(
    files: &TlsFiles,
    id: Option<(&Path, &Path)>,
    http: Http,
) -> Result<SslConnector> {
    let setup = || tls("cannot set up the OpenSSL client");
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(setup())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup())?;
    let alpn = http.alpn();
    let wire: Vec<u8> = std::iter::once(alpn.len() as u8)
        .chain(alpn.iter().copied())
        .collect();
    b.set_alpn_protos(&wire).map_err(setup())?;
    let ca = &files.ca;
    b.set_ca_file(ca)
        .map_err(tls(format!("cannot load the CA {}", ca.display())))?;
    if let Some((cert, key)) = id {
        let (c, k) = (cert.display(), key.display());
        b.set_certificate_chain_file(cert)
            .map_err(tls(format!("cannot load {c}")))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(tls(format!("cannot load {k}")))?;
        b.check_private_key()
            .map_err(tls(format!("{k} does not match {c}")))?;
    }
    Ok(b.build())
}

fn rustls_config(
    files: &TlsFiles,
    id: Option<(&Path, &Path)>,
    http: Http,
) -> Result<rustls::ClientConfig> {
    let not_pem = |p: &Path| tls(format!("{} is not PEM", p.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read("CA certificate", &files.ca)?) {
        roots
            .add(c.map_err(not_pem(&files.ca))?)
            .map_err(tls("the CA certificate is not usable"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls("no TLS version in common with ring"))?
        .with_root_certificates(roots);
    let mut config = match id {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&read("certificate", cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(not_pem(cert))?;
            let key = PrivateKeyDer::from_pem_slice(&read("key", key)?).map_err(not_pem(key))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(tls("the client certificate and key are not usable"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![http.alpn().to_vec()];
    config.resumption = Resumption::disabled();
    Ok(config)
}

impl Connector {
    /// A connector for `backend` offering `http` by ALPN; `resume` asks for session resumption
    /// (rustls only).
    pub fn new(backend: Backend, files: &TlsFiles, resume: bool, http: Http) -> Result<Connector> {
        let id = match (&files.cert, &files.key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => return Err(Error::Usage("--cert and --key go together".into())),
        };
        match backend {
            Backend::Openssl if resume => Err(Error::Usage(
                "the openssl backend cannot offer a saved session without unsafe code; \
                 use --tls rustls for --mode resume"
                    .into(),
            )),
            Backend::Openssl => Ok(Connector::Openssl(openssl_connector(files, id, http)?)),
            Backend::Rustls => Ok(Connector::Rustls {
                config: Arc::new(rustls_config(files, id, http)?),
                resume,
            }),
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
                let alpn = s.ssl().selected_alpn_protocol().map(<[u8]>::to_vec);
                Ok(Connected {
                    stream: Box::new(s),
                    resumed,
                    alpn,
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
                let alpn = s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                Ok(Connected {
                    stream: Box::new(s),
                    resumed,
                    alpn,
                })
            }
        }
    }
}
