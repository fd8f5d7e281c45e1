//! The server's one configuration struct: flags, `SERVER_*` environment variables, and defaults
//! that match what `make certs` writes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use common::Layout;

/// Whether and how the server asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientAuth {
    /// One-way TLS, the seed's first section: no client certificate is asked for.
    None,
    /// A client certificate is asked for and verified if sent; `/whoami` answers 401 without one.
    Optional,
    /// Mutual TLS: the handshake fails without a valid client certificate.
    Required,
}

impl ClientAuth {
    /// Words for the start-up line.
    pub fn describe(self) -> &'static str {
        match self {
            ClientAuth::None => "one-way TLS (no client certificate)",
            ClientAuth::Optional => "TLS with an optional client certificate",
            ClientAuth::Required => "mutual TLS (client certificate required)",
        }
    }
}

/// Mozilla's server-side TLS profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsProfile {
    /// TLS 1.2 and 1.3, ECDHE with AEAD ciphers only.
    Intermediate,
    /// TLS 1.3 only.
    Modern,
}

/// Everything the server needs to start.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "server",
    version,
    about = "HTTPS server with one-way or mutual TLS from a private CA"
)]
pub struct Config {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, env = "SERVER_BIND", default_value = common::DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// Folder of the PKI; the file flags below default to its layout.
    #[arg(long, env = "SERVER_PKI_DIR", default_value = common::DEFAULT_PKI_DIR)]
    pub pki_dir: PathBuf,

    /// Server certificate (PEM, leaf first, then any intermediates) [default: PKI/server/server.crt].
    #[arg(long, env = "SERVER_CERT")]
    pub cert: Option<PathBuf>,

    /// Server private key (PEM) [default: PKI/server/server.key].
    #[arg(long, env = "SERVER_KEY")]
    pub key: Option<PathBuf>,

    /// CA that client certificates must chain to [default: PKI/ca/ca.crt].
    #[arg(long, env = "SERVER_CA")]
    pub ca: Option<PathBuf>,

    /// CRL to check client certificates against [default: PKI/ca/ca.crl when it exists].
    #[arg(long, env = "SERVER_CRL")]
    pub crl: Option<PathBuf>,

    /// Client certificate policy: none (one-way), optional, required (mutual).
    #[arg(long, env = "SERVER_CLIENT_AUTH", value_enum, default_value_t = ClientAuth::Required)]
    pub client_auth: ClientAuth,

    /// TLS profile: intermediate (TLS 1.2 + 1.3) or modern (TLS 1.3 only).
    #[arg(long, env = "SERVER_TLS_PROFILE", value_enum, default_value_t = TlsProfile::Intermediate)]
    pub tls_profile: TlsProfile,

    /// htpasswd-style users file (bcrypt or argon2id) [default: the seed's user name/pwd1].
    #[arg(long, env = "SERVER_USERS")]
    pub users: Option<PathBuf>,

    /// Allow only clients with this certificate CN (repeatable).
    #[arg(long = "allow-cn", env = "SERVER_ALLOW_CN", value_delimiter = ',')]
    pub allow_cn: Vec<String>,

    /// Allow only clients with this subjectAltName value, e.g. `URI:spiffe://x/y` (repeatable).
    #[arg(long = "allow-san", env = "SERVER_ALLOW_SAN", value_delimiter = ',')]
    pub allow_san: Vec<String>,

    /// Failed logins in a row before a client (certificate, else IP) gets 429 (0: never).
    #[arg(long, env = "SERVER_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Seconds a client stays locked out after too many failed logins.
    #[arg(long, env = "SERVER_LOGIN_LOCKOUT", default_value_t = 60)]
    pub login_lockout_secs: u64,

    /// Seconds a verified (user, password) is remembered, skipping the slow hash (0: never).
    #[arg(long, env = "SERVER_LOGIN_CACHE", default_value_t = 60)]
    pub login_cache_secs: u64,

    /// Password hashes run at once [default: half the cores, at least 1].
    #[arg(long, env = "SERVER_HASH_THREADS")]
    pub hash_threads: Option<usize>,

    /// TLS sessions kept for resumption, oldest out (0: no resumption). A session from a
    /// mutual handshake holds the client certificate: about 6.5 KiB each, ~26 MiB at 4,096.
    #[arg(long, env = "SERVER_SESSION_CACHE", default_value_t = 4096)]
    pub session_cache: u32,

    /// Longest accepted chain below the CA (OpenSSL verify depth).
    #[arg(long, env = "SERVER_VERIFY_DEPTH", default_value_t = 2)]
    pub verify_depth: u32,

    /// Seconds between checks of the certificate files for changes (0: reload on SIGHUP only).
    #[arg(long, env = "SERVER_WATCH_SECS", default_value_t = 2)]
    pub watch_secs: u64,

    /// Worker threads [default: number of cores].
    #[arg(long, env = "SERVER_WORKERS")]
    pub workers: Option<usize>,

    /// Seconds a TLS handshake may take.
    #[arg(long, env = "SERVER_HANDSHAKE_TIMEOUT", default_value_t = 5)]
    pub handshake_timeout_secs: u64,

    /// Seconds to receive a request's headers.
    #[arg(long, env = "SERVER_REQUEST_TIMEOUT", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// Seconds an idle keep-alive connection is kept.
    #[arg(long, env = "SERVER_KEEP_ALIVE", default_value_t = 30)]
    pub keep_alive_secs: u64,

    /// Most concurrent connections per worker.
    #[arg(long, env = "SERVER_MAX_CONNECTIONS", default_value_t = 25_000)]
    pub max_connections: usize,

    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "SERVER_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
}

impl Default for Config {
    /// The defaults of `cargo run -p server` with no flags.
    fn default() -> Self {
        Config::parse_from(["server"])
    }
}

impl Config {
    /// A config for the PKI at `pki_dir`, listening on an ephemeral loopback port (for tests
    /// and examples).
    pub fn for_pki(pki_dir: impl Into<PathBuf>, client_auth: ClientAuth) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            pki_dir: pki_dir.into(),
            client_auth,
            watch_secs: 0,
            workers: Some(1),
            ..Config::parse_from(["server"])
        }
    }

    fn layout(&self) -> Layout {
        Layout::new(&self.pki_dir)
    }

    /// The server certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.cert
            .clone()
            .unwrap_or_else(|| self.layout().server_cert())
    }

    /// The server key file.
    pub fn key_path(&self) -> PathBuf {
        self.key
            .clone()
            .unwrap_or_else(|| self.layout().server_key())
    }

    /// The CA file for client certificates.
    pub fn ca_path(&self) -> PathBuf {
        self.ca.clone().unwrap_or_else(|| self.layout().ca_cert())
    }

    /// The CRL file, if one is configured or the default one exists.
    pub fn crl_path(&self) -> Option<PathBuf> {
        self.crl.clone().or_else(|| {
            let p = self.layout().ca_crl();
            p.exists().then_some(p)
        })
    }

    /// TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
}
