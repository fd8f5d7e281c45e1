//! What the CA service does, as a plain struct: [`Config::default`] is `cargo run -p ca` with
//! no flags, [`Config::for_pki`] the same on an ephemeral port for tests. It never reads argv
//! or the environment; the binary's flags and `CA_*` variables land here (`main.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::Layout;
use pki::{DbUrl, SubjectAltName};

/// The CA service's own port: beside the server's 8091, where EST deployments usually listen.
pub const DEFAULT_PORT: u16 = 8443;

/// File stem of the CA service's own TLS certificate under `server/` (made at first start).
pub const OWN_CERT_NAME: &str = "est";

/// Everything the CA service needs to start. Each field's doc gives its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8443`: loopback unless told otherwise.
    pub bind: SocketAddr,
    /// Folder of the PKI (`make certs` layout). Default `certs`.
    pub pki_dir: PathBuf,
    /// Where the records live. Default `PKI/ca/ca.db` (SQLite).
    pub db: DbUrl,
    /// The service's TLS certificate chain [default: PKI/server/est.crt, issued by the CA at
    /// first start, and again when due or when its names no longer cover the ones asked for].
    pub cert: Option<PathBuf>,
    /// Its key [default: PKI/server/est.key].
    pub key: Option<PathBuf>,
    /// The URL clients reach the service at (`https://ca.example:8443`): its host joins the
    /// service certificate's names, and every certificate issued names `URL/crl` as its CRL
    /// distribution point. Default none (no distribution point).
    pub public_url: Option<String>,
    /// More names for the service certificate, besides localhost and the public URL's host.
    pub sans: Vec<SubjectAltName>,
    /// Validity of issued device certificates, in days [default: the client profile's 365].
    pub days: Option<u32>,
    /// Let a valid device certificate of this CA authenticate `simpleenroll` for its own name
    /// (RFC 7030 §3.3.2), besides a token. Default false: first enrollment takes a token.
    pub enroll_with_certificate: bool,
    /// The CRL is re-signed when its nextUpdate is closer than this. Default 7 days (of 30).
    pub crl_refresh_before: Duration,
    /// How often each replica checks whether the CRL is due (± 10 % jitter). Default 10 min.
    pub crl_check_every: Duration,
    /// Largest request body accepted (a CSR is 1-2 KiB). Default 64 KiB.
    pub max_body: usize,
    /// Time a client gets to send a request's body. Default 10 s.
    pub body_timeout: Duration,
    /// Time a client gets to send a request's headers. Default 10 s.
    pub request_timeout: Duration,
    /// Time a TLS handshake may take. Default 5 s.
    pub handshake_timeout: Duration,
    /// Worker threads [default: number of cores].
    pub workers: Option<usize>,
    /// How long a command waits for the records' lock. Default 10 s.
    pub lock_timeout: Duration,
    /// Wrong enrollment tokens a peer address may send in a minute before it hears 429 for
    /// the rest of that minute (0: no limit). Default 10.
    pub wrong_token_limit: u32,
    /// ACME (`/acme/directory`): external account binding required, 7-day certificates,
    /// validation on ports 80/443 through the system's resolver (see [`acme::Config`]).
    pub acme: acme::Config,
    /// Who may open `/fleet`, `/fleet.json` and `/metrics` on the service's port: client
    /// certificates of this CA with one of these CNs or subjectAltNames. Default: nobody.
    pub admin: crate::admin::AdminAllow,
    /// A plain-HTTP `/metrics` listener besides (loopback or a monitoring network). Default none.
    pub metrics_bind: Option<SocketAddr>,
    /// How often the figures from the records are read. Default 60 s.
    pub metrics_refresh: Duration,
}

impl Default for Config {
    /// The defaults of `cargo run -p ca` with no flags.
    fn default() -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            pki_dir: common::DEFAULT_PKI_DIR.into(),
            db: DbUrl::Default,
            cert: None,
            key: None,
            public_url: None,
            sans: Vec::new(),
            days: None,
            enroll_with_certificate: false,
            crl_refresh_before: Duration::from_secs(7 * 86_400),
            crl_check_every: Duration::from_secs(600),
            max_body: 64 * 1024,
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            workers: None,
            lock_timeout: pki::folder::DEFAULT_LOCK_TIMEOUT,
            wrong_token_limit: 10,
            acme: acme::Config::default(),
            admin: crate::admin::AdminAllow::default(),
            metrics_bind: None,
            metrics_refresh: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// The PKI at `pki_dir` on an ephemeral loopback port with one worker (tests, examples).
    pub fn for_pki(pki_dir: impl Into<PathBuf>) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            pki_dir: pki_dir.into(),
            workers: Some(1),
            ..Config::default()
        }
    }

    /// The PKI's layout.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.pki_dir)
    }

    /// Where the CRL is published: `PUBLIC_URL/crl`.
    pub fn crl_url(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{}/crl", u.trim_end_matches('/')))
    }

    /// The SQLite file of [`DbUrl::Default`].
    pub fn default_db_path(&self) -> PathBuf {
        self.layout().dir(common::Role::Ca).join("ca.db")
    }

    /// The public URL's host, as a name for the service certificate.
    pub fn public_host(&self) -> Option<String> {
        let rest = self.public_url.as_deref()?.split_once("://")?.1;
        let authority = rest.split('/').next()?;
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        (!host.is_empty()).then(|| host.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_gives_the_crl_url_and_a_host() {
        let mut c = Config::default();
        assert_eq!((c.crl_url(), c.public_host()), (None, None));
        c.public_url = Some("https://ca.example:8443/".into());
        assert_eq!(c.crl_url().as_deref(), Some("https://ca.example:8443/crl"));
        assert_eq!(c.public_host().as_deref(), Some("ca.example"));
        c.public_url = Some("https://[::1]:8443".into());
        assert_eq!(c.public_host().as_deref(), Some("::1"));
        c.public_url = Some("https://10.0.0.7".into());
        assert_eq!(c.public_host().as_deref(), Some("10.0.0.7"));
    }
}
