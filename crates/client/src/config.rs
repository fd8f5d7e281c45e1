//! The client's configuration: a plain struct whose defaults match what `make certs` writes.
//! It reads neither argv nor the environment; the binary's flags and `CLIENT_*` variables
//! (`src/main.rs`) fill it in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Layout;

use crate::error::Failure;
use crate::tls::{CrlCheck, Identity, Password, TlsOptions};

/// Environment variable with the PKCS#12 password (read by the binary, never by the library).
pub const P12_PASSWORD_ENV: &str = "CLIENT_P12_PASSWORD";

/// The server the client talks to when told nothing else.
pub const DEFAULT_URL: &str = "https://127.0.0.1:8091";

/// Default limit for connecting, the handshake, and each request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which client certificate to present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientCert {
    /// The PKI folder's client pair when both files exist, else none.
    #[default]
    FromPki,
    /// This one (or, with [`Identity::None`], none).
    Given(Identity),
    /// A PKCS#12 bundle whose password is not known yet: the `.pass` file next to it, else a
    /// prompt on the terminal.
    Pkcs12(PathBuf),
}

/// Everything the library needs to reach one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Server base URL.
    pub url: String,
    /// Folder of the PKI; the CA and the client pair default to its layout.
    pub pki_dir: PathBuf,
    /// CA the server's certificate must chain to (default: the PKI's `ca/ca.crt`).
    pub ca: Option<PathBuf>,
    /// The client certificate.
    pub client_cert: ClientCert,
    /// Verify the server as this name instead of the URL's host.
    pub server_name: Option<String>,
    /// Limit for connecting, the handshake, and each request.
    pub timeout: Duration,
    /// Whether the server's certificate is checked against the CRL it names (default soft).
    pub crl_check: CrlCheck,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            url: DEFAULT_URL.to_owned(),
            pki_dir: PathBuf::from(common::DEFAULT_PKI_DIR),
            ca: None,
            client_cert: ClientCert::FromPki,
            server_name: None,
            timeout: DEFAULT_TIMEOUT,
            crl_check: CrlCheck::default(),
        }
    }
}

impl Config {
    /// TLS options from this config and the PKI layout. A PKCS#12 bundle without a password
    /// takes the `.pass` file next to it, or asks on the terminal.
    pub fn tls_options(&self) -> Result<TlsOptions, Failure> {
        let layout = Layout::new(&self.pki_dir);
        let identity = match &self.client_cert {
            ClientCert::Given(identity) => identity.clone(),
            ClientCert::Pkcs12(path) => Identity::Pkcs12 {
                path: path.clone(),
                password: p12_password(path)?,
            },
            ClientCert::FromPki
                if layout.client_cert().exists() && layout.client_key().exists() =>
            {
                Identity::Pem {
                    cert: layout.client_cert(),
                    key: layout.client_key(),
                }
            }
            ClientCert::FromPki => Identity::None,
        };
        Ok(TlsOptions {
            ca: self.ca.clone().unwrap_or_else(|| layout.ca_cert()),
            identity,
            server_name: self.server_name.clone(),
            timeout: self.timeout,
            crl_check: self.crl_check,
        })
    }
}

/// The `.pass` file `pki export-p12` writes next to the bundle, else a terminal prompt.
fn p12_password(p12: &Path) -> Result<Password, Failure> {
    let pass_file = PathBuf::from(format!("{}.pass", p12.display()));
    if let Ok(p) = std::fs::read_to_string(&pass_file) {
        return Ok(Password::new(p.trim_end_matches(['\n', '\r'])));
    }
    rpassword::prompt_password(format!("password for {}: ", p12.display()))
        .map(Password::new)
        .map_err(|e| {
            Failure::local(
                format!("cannot read the PKCS#12 password ({e})"),
                format!(
                    "set {P12_PASSWORD_ENV}, or write it to {}",
                    pass_file.display()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_pki_layout_and_leave_out_a_missing_client_pair() {
        let dir = tempfile::tempdir().expect("tmp");
        let config = Config {
            pki_dir: dir.path().to_owned(),
            ..Config::default()
        };
        assert_eq!(config.url, DEFAULT_URL);
        let tls = config.tls_options().expect("options");
        assert_eq!(tls.ca, Layout::new(dir.path()).ca_cert());
        assert_eq!(tls.identity, Identity::None);
        assert_eq!(tls.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn a_pkcs12_password_comes_from_the_pass_file_and_stays_out_of_debug() {
        let dir = tempfile::tempdir().expect("tmp");
        let p12 = dir.path().join("client.p12");
        std::fs::write(dir.path().join("client.p12.pass"), "s3cret-Pass\n").expect("write");
        let config = Config {
            client_cert: ClientCert::Pkcs12(p12.clone()),
            ..Config::default()
        };
        let tls = config.tls_options().expect("options");
        let Identity::Pkcs12 { password, .. } = &tls.identity else {
            panic!("not a PKCS#12 identity: {:?}", tls.identity);
        };
        assert_eq!(password.expose(), "s3cret-Pass");
        for shown in [format!("{tls:?}"), format!("{:?}", tls.identity)] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let given = Config {
            client_cert: ClientCert::Given(Identity::Pkcs12 {
                path: p12,
                password: Password::new("given-s3cret"),
            }),
            ..Config::default()
        };
        assert!(!format!("{given:?}").contains("given-s3cret"));
    }
}
