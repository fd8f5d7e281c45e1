//! The client's one configuration struct: flags, `CLIENT_*` environment variables, and defaults
//! that match what `make certs` writes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use common::Layout;

use crate::error::Failure;
use crate::tls::{Identity, TlsOptions};

/// Environment variable with the PKCS#12 password.
pub const P12_PASSWORD_ENV: &str = "CLIENT_P12_PASSWORD";

/// HTTPS client for a private CA: verifies everything, explains every failure.
///
/// Exit codes: 0 ok; 1 the server answered with an error (HTTP >= 400, or login false);
/// 2 local files or usage; 10 nothing listening; 11 timeout; 12 plain HTTP on the port;
/// 13 server certificate from an unknown CA; 14 name not in the server certificate;
/// 15 server certificate expired or not yet valid; 16 the server requires a client certificate;
/// 17 the server refused our client certificate; 18 no common TLS version or cipher; 19 other.
#[derive(Debug, Clone, Parser)]
#[command(name = "client", version, verbatim_doc_comment)]
pub struct Config {
    /// Server base URL.
    #[arg(
        long,
        global = true,
        env = "CLIENT_URL",
        default_value = "https://127.0.0.1:8091"
    )]
    pub url: String,

    /// Folder of the PKI; --ca/--cert/--key default to its layout.
    #[arg(long, global = true, env = "CLIENT_PKI_DIR", default_value = common::DEFAULT_PKI_DIR)]
    pub pki_dir: PathBuf,

    /// CA the server's certificate must chain to [default: PKI/ca/ca.crt].
    #[arg(long, global = true, env = "CLIENT_CA")]
    pub ca: Option<PathBuf>,

    /// Client certificate (PEM) [default: PKI/client/client.crt when it exists].
    #[arg(long, global = true, env = "CLIENT_CERT", requires = "key")]
    pub cert: Option<PathBuf>,

    /// Client private key (PEM) [default: PKI/client/client.key when it exists].
    #[arg(long, global = true, env = "CLIENT_KEY", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Client certificate and key as PKCS#12 (password from CLIENT_P12_PASSWORD, the
    /// .p12.pass file next to it, or a prompt).
    #[arg(long, global = true, env = "CLIENT_P12", conflicts_with_all = ["cert", "key"])]
    pub p12: Option<PathBuf>,

    /// Send no client certificate (one-way TLS).
    #[arg(long, global = true)]
    pub no_client_cert: bool,

    /// Verify the server as this name instead of the URL's host (still connecting to the URL's host).
    #[arg(long, global = true, env = "CLIENT_SERVER_NAME")]
    pub server_name: Option<String>,

    /// Seconds for connecting, the handshake, and each request.
    #[arg(long, global = true, env = "CLIENT_TIMEOUT", default_value_t = 10.0)]
    pub timeout: f64,

    /// One JSON object per result, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do [default: the seed's sequence, GET /login then POST /login1].
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// GET a path (or a full https:// URL).
    Get {
        /// `/path` on --url, or `https://host:port/path`.
        target: String,
    },
    /// POST /login1 with a username and a password.
    Login {
        /// The user.
        #[arg(long, default_value = "name")]
        username: String,
        /// Read the password from this environment variable.
        #[arg(long)]
        password_env: Option<String>,
        /// The password itself (visible to other users in `ps` and in shell history: avoid).
        #[arg(long)]
        password: Option<String>,
    },
    /// GET /whoami: who the server thinks we are.
    Whoami,
    /// Connect and report protocol, cipher, chain, names, client-certificate policy and local files.
    Diagnose {
        /// The server [default: --url].
        url: Option<String>,
    },
}

impl Config {
    fn layout(&self) -> Layout {
        Layout::new(&self.pki_dir)
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.clamp(0.1, 3600.0))
    }

    /// TLS options from the flags and the PKI layout. Reads a PKCS#12 password from the
    /// environment, the `.pass` file next to the bundle, or a prompt.
    pub fn tls_options(&self) -> Result<TlsOptions, Failure> {
        let layout = self.layout();
        let identity = if self.no_client_cert {
            Identity::None
        } else if let Some(p12) = &self.p12 {
            Identity::Pkcs12 {
                path: p12.clone(),
                password: p12_password(p12)?,
            }
        } else if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            Identity::Pem {
                cert: cert.clone(),
                key: key.clone(),
            }
        } else if layout.client_cert().exists() && layout.client_key().exists() {
            Identity::Pem {
                cert: layout.client_cert(),
                key: layout.client_key(),
            }
        } else {
            Identity::None
        };
        Ok(TlsOptions {
            ca: self.ca.clone().unwrap_or_else(|| layout.ca_cert()),
            identity,
            server_name: self.server_name.clone(),
            timeout: self.timeout(),
        })
    }
}

fn p12_password(p12: &std::path::Path) -> Result<String, Failure> {
    if let Ok(p) = std::env::var(P12_PASSWORD_ENV) {
        return Ok(p);
    }
    let pass_file = PathBuf::from(format!("{}.pass", p12.display()));
    if let Ok(p) = std::fs::read_to_string(&pass_file) {
        return Ok(p.trim_end_matches(['\n', '\r']).to_owned());
    }
    rpassword::prompt_password(format!("password for {}: ", p12.display())).map_err(|e| {
        Failure::local(
            format!("cannot read the PKCS#12 password ({e})"),
            format!("set {P12_PASSWORD_ENV}"),
        )
    })
}
