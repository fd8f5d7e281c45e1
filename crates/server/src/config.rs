//! What the server does, as a plain struct: built with [`Config::default`] or
//! [`Config::for_pki`] and changed field by field. It never reads argv or the environment; the
//! binary's flags and `SERVER_*` variables are parsed in `main.rs` and land here.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use actix_web::http::Uri;
use common::Layout;

/// Whether and how the server asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProfile {
    /// TLS 1.2 and 1.3, ECDHE with AEAD ciphers only.
    Intermediate,
    /// TLS 1.3 only.
    Modern,
}

/// What the server does once the CRL is past its nextUpdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlStale {
    /// Fail closed: every client certificate is refused until a fresh CRL is loaded
    /// (OpenSSL's own behaviour).
    Refuse,
    /// Keep enforcing the revocations the stale CRL lists, accept the rest, and log each
    /// handshake that relied on it.
    Warn,
}

/// Everything the server needs to start. [`Config::default`] is what `cargo run -p server`
/// does with no flags; each field's doc gives its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8091`: loopback unless told otherwise.
    pub bind: SocketAddr,
    /// Folder of the PKI; the file fields below default to its layout. Default `certs`.
    pub pki_dir: PathBuf,
    /// Server certificate (PEM, leaf first, then any intermediates) [default: PKI/server/server.crt].
    pub cert: Option<PathBuf>,
    /// Server private key (PEM) [default: PKI/server/server.key].
    pub key: Option<PathBuf>,
    /// CA that client certificates must chain to [default: PKI/ca/ca.crt].
    pub ca: Option<PathBuf>,
    /// CRL to check client certificates against [default: PKI/ca/ca.crl when it exists;
    /// with `crl_url`, where the fetched CRL is kept: PKI/server/fetched.crl].
    pub crl: Option<PathBuf>,
    /// Fetch the CRL from the CA's service here, and poll it (`ca`'s `/crl`). Default none.
    pub crl_url: Option<String>,
    /// Seconds between polls of `crl_url` (± 10 %). Default 60.
    pub crl_poll_secs: u64,
    /// Client certificate policy. Default [`ClientAuth::Required`].
    pub client_auth: ClientAuth,
    /// What a CRL past its nextUpdate does. Default [`CrlStale::Refuse`] (SECURITY.md says why).
    pub crl_stale: CrlStale,
    /// TLS profile. Default [`TlsProfile::Intermediate`].
    pub tls_profile: TlsProfile,
    /// htpasswd-style users file (bcrypt or argon2id) [default: the seed's user name/pwd1].
    pub users: Option<PathBuf>,
    /// Allow only clients with one of these certificate CNs (with `allow_san`: either matches).
    pub allow_cn: Vec<String>,
    /// Allow only clients with one of these subjectAltName values, e.g. `URI:spiffe://x/y`.
    pub allow_san: Vec<String>,
    /// Failed logins in a row before a client (certificate, else IP) gets 429 (0: never). Default 5.
    pub login_max_failures: u32,
    /// Seconds a client stays locked out after too many failed logins. Default 60.
    pub login_lockout_secs: u64,
    /// Seconds a verified (user, password) is remembered, skipping the slow hash (0: never).
    /// Default 60.
    pub login_cache_secs: u64,
    /// Password hashes run at once [default: half the cores, at least 1].
    pub hash_threads: Option<usize>,
    /// TLS sessions kept for resumption, oldest out (0: no resumption). A session from a
    /// mutual handshake holds the parsed client certificate: about 6.5 KiB each (measured),
    /// ~6.5 MiB at the default 1,024.
    pub session_cache: u32,
    /// Longest accepted chain below the CA (OpenSSL verify depth). Default 2.
    pub verify_depth: u32,
    /// Seconds between checks of the certificate files for changes (0: reload on SIGHUP only).
    /// Default 2.
    pub watch_secs: u64,
    /// Worker threads [default: number of cores].
    pub workers: Option<usize>,
    /// Seconds a TLS handshake may take. Default 5.
    pub handshake_timeout_secs: u64,
    /// Seconds to receive a request's headers. Default 10.
    pub request_timeout_secs: u64,
    /// Seconds an idle keep-alive connection is kept. Default 30.
    pub keep_alive_secs: u64,
    /// Most concurrent connections per worker. Default 25,000.
    pub max_connections: usize,
    /// Seconds in-flight requests get to finish on shutdown. Default 30.
    pub shutdown_timeout_secs: u64,
    /// Forward every request to this HTTP application instead of serving the seed's routes
    /// (the front door). Default none.
    pub upstream: Option<Upstream>,
    /// Seconds the upstream gets to send its response headers (then 504), and at most between
    /// two pieces of its body (then the answer is cut). Default 30.
    pub upstream_timeout_secs: u64,
    /// Names of the headers that tell the upstream who the client is: this prefix, then
    /// `Verify`, `Subject`, `CN`, `SAN`, `Serial`, `SHA256`, `Not-After`. Every header the
    /// client sent whose name starts with it (`_` counted as `-`) is removed first.
    /// Default `X-Client-Cert-`.
    pub identity_header_prefix: String,
    /// The upstream's login route: a `POST` to it is held to the login brakes (a `false` or
    /// 401 answer counts as a failure, `true` resets). `None`: no brakes. Default `/login1`.
    pub upstream_login_path: Option<String>,
    /// The server's own health route, answered by the server whatever the app (the seed's
    /// routes, an upstream behind the front door, or an app of yours) and on the metrics port:
    /// `ok`, the CRL's state and, with `crl_url`, the feed's. `None`: the app's own, if any.
    /// Default `/healthz`.
    pub healthz_path: Option<String>,
    /// Serve `/metrics` (and the health route) on this plain-HTTP address too. Default none.
    pub metrics_bind: Option<SocketAddr>,
    /// Serve `/metrics` on the TLS port to clients with one of these certificate CNs (or
    /// `metrics_allow_san`); every other client gets 403. Default none: not on the TLS port.
    pub metrics_allow_cn: Vec<String>,
    /// Serve `/metrics` on the TLS port to clients with one of these subjectAltName values.
    pub metrics_allow_san: Vec<String>,
}

impl Default for Config {
    /// The defaults of `cargo run -p server` with no flags (and no `SERVER_*` variables).
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], common::DEFAULT_PORT)),
            pki_dir: common::DEFAULT_PKI_DIR.into(),
            cert: None,
            key: None,
            ca: None,
            crl: None,
            crl_url: None,
            crl_poll_secs: 60,
            client_auth: ClientAuth::Required,
            crl_stale: CrlStale::Refuse,
            tls_profile: TlsProfile::Intermediate,
            users: None,
            allow_cn: Vec::new(),
            allow_san: Vec::new(),
            login_max_failures: 5,
            login_lockout_secs: 60,
            login_cache_secs: 60,
            hash_threads: None,
            session_cache: 1024,
            verify_depth: 2,
            watch_secs: 2,
            workers: None,
            handshake_timeout_secs: 5,
            request_timeout_secs: 10,
            keep_alive_secs: 30,
            max_connections: 25_000,
            shutdown_timeout_secs: 30,
            upstream: None,
            upstream_timeout_secs: 30,
            identity_header_prefix: "X-Client-Cert-".into(),
            upstream_login_path: Some("/login1".into()),
            healthz_path: Some("/healthz".into()),
            metrics_bind: None,
            metrics_allow_cn: Vec::new(),
            metrics_allow_san: Vec::new(),
        }
    }
}

impl Config {
    /// What a deployed server uses: listening on `bind`, the PKI at `pki_dir`, a worker per
    /// core, the certificate, key, CA and CRL files watched for changes (every 2 s), and every
    /// other field at its default. [`Config::for_pki`] is the tests' counterpart.
    ///
    /// ```
    /// use server::{ClientAuth, Config};
    /// let config = Config::new(([0, 0, 0, 0], 8443).into(), "certs", ClientAuth::Required);
    /// assert_eq!((config.workers, config.watch_secs), (None, 2));
    /// ```
    pub fn new(bind: SocketAddr, pki_dir: impl Into<PathBuf>, client_auth: ClientAuth) -> Config {
        Config {
            bind,
            pki_dir: pki_dir.into(),
            client_auth,
            ..Config::default()
        }
    }

    /// A config for the PKI at `pki_dir`, listening on an ephemeral loopback port with one
    /// worker and no file watch: for tests (a production server takes [`Config::new`]).
    pub fn for_pki(pki_dir: impl Into<PathBuf>, client_auth: ClientAuth) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            pki_dir: pki_dir.into(),
            client_auth,
            watch_secs: 0,
            workers: Some(1),
            ..Config::default()
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

    /// Whether figures are collected: only when they are exposed somewhere.
    pub fn metrics_enabled(&self) -> bool {
        self.metrics_bind.is_some() || self.metrics_on_tls()
    }

    /// Whether `/metrics` is served on the TLS port (to the clients of its access list).
    pub fn metrics_on_tls(&self) -> bool {
        !self.metrics_allow_cn.is_empty() || !self.metrics_allow_san.is_empty()
    }

    /// TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
}

/// An upstream application's address: `http://host:port`, without path or query. A
/// `user:password@` in it is sent to the upstream as Basic credentials, and is never shown:
/// `Debug` and `Display` print `***` for the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    uri: Uri,
}

impl Upstream {
    /// The URL of `path_and_query` on the upstream (credentials left out).
    pub fn url(&self, path_and_query: &str) -> String {
        let host = self.uri.host().unwrap_or_default();
        match self.uri.port_u16() {
            Some(port) => format!("http://{host}:{port}{path_and_query}"),
            None => format!("http://{host}{path_and_query}"),
        }
    }

    /// The `user` and `password` of the URL, when it has them.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        let userinfo = self.uri.authority()?.as_str().rsplit_once('@')?.0;
        Some(userinfo.split_once(':').unwrap_or((userinfo, "")))
    }
}

impl FromStr for Upstream {
    type Err = crate::error::InvalidUpstream;

    fn from_str(s: &str) -> Result<Upstream, Self::Err> {
        use crate::error::InvalidUpstream as E;
        let uri: Uri = s.parse().map_err(|_| E::NotAUrl)?;
        if uri.scheme_str() != Some("http") {
            return Err(E::NotHttp);
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(E::NoHost);
        }
        let path_and_query = uri.path_and_query().map_or("", |p| p.as_str());
        if !matches!(path_and_query, "" | "/") {
            return Err(E::HasPath);
        }
        Ok(Upstream { uri })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url("");
        match self.credentials() {
            Some((user, _)) => write!(
                f,
                "{}",
                url.replacen("http://", &format!("http://{user}:***@"), 1)
            ),
            None => f.write_str(&url),
        }
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upstream({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InvalidUpstream;

    #[test]
    fn upstream_urls_are_http_host_port_only() {
        let u: Upstream = "http://127.0.0.1:5000".parse().expect("url");
        assert_eq!(u.url("/login?x=1"), "http://127.0.0.1:5000/login?x=1");
        assert_eq!(u.credentials(), None);
        let u: Upstream = "http://app.internal/".parse().expect("url");
        assert_eq!(u.url("/"), "http://app.internal/");
        for (bad, why) in [
            ("https://127.0.0.1:5000", InvalidUpstream::NotHttp),
            ("127.0.0.1:5000", InvalidUpstream::NotHttp),
            ("http://127.0.0.1:5000/app", InvalidUpstream::HasPath),
            ("http://127.0.0.1:5000/?q", InvalidUpstream::HasPath),
            ("http:// bad", InvalidUpstream::NotAUrl),
        ] {
            assert_eq!(bad.parse::<Upstream>(), Err(why), "{bad}");
        }
    }

    /// Whatever can hold a secret is redacted where a config is formatted.
    #[test]
    fn debug_and_display_never_show_the_upstream_password() {
        let u: Upstream = "http://front:s3cret-pw@127.0.0.1:5000"
            .parse()
            .expect("url");
        assert_eq!(u.credentials(), Some(("front", "s3cret-pw")));
        assert_eq!(u.url("/x"), "http://127.0.0.1:5000/x");
        let config = Config {
            upstream: Some(u.clone()),
            ..Config::default()
        };
        let shown = format!("{config:?} {config:#?} {u}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("http://front:***@127.0.0.1:5000"), "{shown}");
    }
}
