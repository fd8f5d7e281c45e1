//! `server`: parses flags and `SERVER_*` variables into a [`server::Config`] and runs the
//! library. The defaults shown by `--help` are the library's own ([`Config::default`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use server::log::LogFormat;
use server::{ClientAuth, Config, CrlStale, TlsProfile, Upstream};

mod openssl_alloc;

/// mimalloc for Rust's allocations, and OpenSSL's through [`openssl_alloc`]. Not with the
/// crate's `override` feature (every `malloc` of the process): that build crashes at start under
/// an LD_PRELOAD library such as `faketime`, which the clock tests and operators use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What was typed (flags and `SERVER_*` variables); [`Args::into_config`] makes it a [`Config`].
#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    about = "HTTPS server with one-way or mutual TLS from a private CA"
)]
struct Args {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, env = "SERVER_BIND", default_value_t = defaults().bind)]
    bind: SocketAddr,

    /// Folder of the PKI; the file flags below default to its layout.
    #[arg(long, env = "SERVER_PKI_DIR", default_value_os_t = defaults().pki_dir)]
    pki_dir: PathBuf,

    /// Server certificate (PEM, leaf first, then any intermediates) [default: PKI/server/server.crt].
    #[arg(long, env = "SERVER_CERT")]
    cert: Option<PathBuf>,

    /// Server private key (PEM) [default: PKI/server/server.key].
    #[arg(long, env = "SERVER_KEY")]
    key: Option<PathBuf>,

    /// CA that client certificates must chain to [default: PKI/ca/ca.crt].
    #[arg(long, env = "SERVER_CA")]
    ca: Option<PathBuf>,

    /// CRL to check client certificates against [default: PKI/ca/ca.crl when it exists].
    #[arg(long, env = "SERVER_CRL")]
    crl: Option<PathBuf>,

    /// Fetch the CRL from the CA's service (ca's https://HOST:PORT/crl) and poll it; kept in
    /// --crl [default: PKI/server/fetched.crl].
    #[arg(long, env = "SERVER_CRL_URL", value_name = "URL")]
    crl_url: Option<String>,

    /// Seconds between polls of --crl-url (± 10 %).
    #[arg(long, env = "SERVER_CRL_POLL_SECS", default_value_t = defaults().crl_poll_secs)]
    crl_poll_secs: u64,

    /// Client certificate policy: none (one-way), optional, required (mutual).
    #[arg(long, env = "SERVER_CLIENT_AUTH", value_enum,
          default_value_t = AuthArg::from(defaults().client_auth))]
    client_auth: AuthArg,

    /// TLS profile: intermediate (TLS 1.2 + 1.3) or modern (TLS 1.3 only).
    #[arg(long, env = "SERVER_TLS_PROFILE", value_enum,
          default_value_t = ProfileArg::from(defaults().tls_profile))]
    tls_profile: ProfileArg,

    /// htpasswd-style users file (bcrypt or argon2id) [default: the seed's user name/pwd1].
    #[arg(long, env = "SERVER_USERS")]
    users: Option<PathBuf>,

    /// Allow only clients with this certificate CN (repeatable).
    #[arg(long = "allow-cn", env = "SERVER_ALLOW_CN", value_delimiter = ',')]
    allow_cn: Vec<String>,

    /// Allow only clients with this subjectAltName value, e.g. `URI:spiffe://x/y` (repeatable).
    #[arg(long = "allow-san", env = "SERVER_ALLOW_SAN", value_delimiter = ',')]
    allow_san: Vec<String>,

    /// Failed logins in a row before a client (certificate, else IP) gets 429 (0: never).
    #[arg(long, env = "SERVER_LOGIN_MAX_FAILURES", default_value_t = defaults().login_max_failures)]
    login_max_failures: u32,

    /// Seconds a client stays locked out after too many failed logins.
    #[arg(long, env = "SERVER_LOGIN_LOCKOUT", default_value_t = defaults().login_lockout_secs)]
    login_lockout_secs: u64,

    /// Seconds a verified (user, password) is remembered, skipping the slow hash (0: never).
    #[arg(long, env = "SERVER_LOGIN_CACHE", default_value_t = defaults().login_cache_secs)]
    login_cache_secs: u64,

    /// Password hashes run at once [default: half the cores, at least 1].
    #[arg(long, env = "SERVER_HASH_THREADS")]
    hash_threads: Option<usize>,

    /// TLS sessions kept for resumption, oldest out (0: no resumption). A session from a
    /// mutual handshake holds the client certificate: about 6.5 KiB each, ~6.5 MiB at 1,024.
    #[arg(long, env = "SERVER_SESSION_CACHE", default_value_t = defaults().session_cache)]
    session_cache: u32,

    /// Longest accepted chain below the CA (OpenSSL verify depth).
    #[arg(long, env = "SERVER_VERIFY_DEPTH", default_value_t = defaults().verify_depth)]
    verify_depth: u32,

    /// Seconds between checks of the certificate files for changes (0: reload on SIGHUP only).
    #[arg(long, env = "SERVER_WATCH_SECS", default_value_t = defaults().watch_secs)]
    watch_secs: u64,

    /// Worker threads [default: number of cores].
    #[arg(long, env = "SERVER_WORKERS")]
    workers: Option<usize>,

    /// Seconds a TLS handshake may take.
    #[arg(long, env = "SERVER_HANDSHAKE_TIMEOUT", default_value_t = defaults().handshake_timeout_secs)]
    handshake_timeout_secs: u64,

    /// Seconds to receive a request's headers.
    #[arg(long, env = "SERVER_REQUEST_TIMEOUT", default_value_t = defaults().request_timeout_secs)]
    request_timeout_secs: u64,

    /// Seconds an idle keep-alive connection is kept.
    #[arg(long, env = "SERVER_KEEP_ALIVE", default_value_t = defaults().keep_alive_secs)]
    keep_alive_secs: u64,

    /// Most concurrent connections per worker.
    #[arg(long, env = "SERVER_MAX_CONNECTIONS", default_value_t = defaults().max_connections)]
    max_connections: usize,

    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "SERVER_SHUTDOWN_TIMEOUT", default_value_t = defaults().shutdown_timeout_secs)]
    shutdown_timeout_secs: u64,

    /// Be the front door of this HTTP application (http://host:port): every request is
    /// forwarded to it, with the verified client in headers, instead of the seed's routes.
    #[arg(long, env = "SERVER_UPSTREAM", value_name = "URL")]
    upstream: Option<Upstream>,

    /// Seconds the upstream gets to send its response headers (then 504), and at most between
    /// two pieces of its body.
    #[arg(long, env = "SERVER_UPSTREAM_TIMEOUT", default_value_t = defaults().upstream_timeout_secs)]
    upstream_timeout_secs: u64,

    /// Prefix of the headers that tell the upstream who the client is (then Verify, Subject,
    /// CN, SAN, Serial, SHA256, Not-After); the client's own headers under it are removed.
    #[arg(long, env = "SERVER_IDENTITY_HEADER_PREFIX", default_value_t = defaults().identity_header_prefix)]
    identity_header_prefix: String,

    /// The upstream's login route: POSTs to it get the login brakes ("" for none).
    #[arg(long, env = "SERVER_UPSTREAM_LOGIN_PATH",
          default_value_t = defaults().upstream_login_path.unwrap_or_default())]
    upstream_login_path: String,

    /// The server's own health route ("" for none): answered by the server itself, also in
    /// front of an upstream, and on the --metrics-bind port.
    #[arg(long, env = "SERVER_HEALTHZ_PATH",
          default_value_t = defaults().healthz_path.unwrap_or_default())]
    healthz_path: String,

    /// What a CRL past its nextUpdate does: refuse every client certificate (fail closed), or
    /// warn (keep refusing the serials it lists, accept the rest, log each such handshake).
    #[arg(long, env = "SERVER_CRL_STALE", value_enum,
          default_value_t = CrlStaleArg::from(defaults().crl_stale))]
    crl_stale: CrlStaleArg,

    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP: keep it on loopback or a
    /// monitoring network). Off unless given.
    #[arg(long, env = "SERVER_METRICS_BIND", value_name = "ADDR")]
    metrics_bind: Option<SocketAddr>,

    /// Serve /metrics on the TLS port to clients with this certificate CN (repeatable).
    #[arg(
        long = "metrics-allow-cn",
        env = "SERVER_METRICS_ALLOW_CN",
        value_delimiter = ','
    )]
    metrics_allow_cn: Vec<String>,

    /// Serve /metrics on the TLS port to clients with this subjectAltName value (repeatable).
    #[arg(
        long = "metrics-allow-san",
        env = "SERVER_METRICS_ALLOW_SAN",
        value_delimiter = ','
    )]
    metrics_allow_san: Vec<String>,

    /// Log lines as text, or as one JSON object per line (time, level, event, fields).
    #[arg(long, env = "SERVER_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
}

/// [`CrlStale`] as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum CrlStaleArg {
    /// Fail closed: every client certificate is refused until a fresh CRL is loaded.
    Refuse,
    /// Enforce the revocations the stale CRL lists, accept the rest, log each such handshake.
    Warn,
}

impl From<CrlStale> for CrlStaleArg {
    fn from(mode: CrlStale) -> CrlStaleArg {
        match mode {
            CrlStale::Refuse => CrlStaleArg::Refuse,
            CrlStale::Warn => CrlStaleArg::Warn,
        }
    }
}

impl From<CrlStaleArg> for CrlStale {
    fn from(mode: CrlStaleArg) -> CrlStale {
        match mode {
            CrlStaleArg::Refuse => CrlStale::Refuse,
            CrlStaleArg::Warn => CrlStale::Warn,
        }
    }
}

/// [`LogFormat`] as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> LogFormat {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// The library's defaults, shown by `--help` and used when neither flag nor variable is set.
fn defaults() -> Config {
    Config::default()
}

/// [`ClientAuth`] as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AuthArg {
    /// One-way TLS, the seed's first section: no client certificate is asked for.
    None,
    /// A client certificate is asked for and verified if sent; `/whoami` answers 401 without one.
    Optional,
    /// Mutual TLS: the handshake fails without a valid client certificate.
    Required,
}

impl From<ClientAuth> for AuthArg {
    fn from(auth: ClientAuth) -> AuthArg {
        match auth {
            ClientAuth::None => AuthArg::None,
            ClientAuth::Optional => AuthArg::Optional,
            ClientAuth::Required => AuthArg::Required,
        }
    }
}

impl From<AuthArg> for ClientAuth {
    fn from(auth: AuthArg) -> ClientAuth {
        match auth {
            AuthArg::None => ClientAuth::None,
            AuthArg::Optional => ClientAuth::Optional,
            AuthArg::Required => ClientAuth::Required,
        }
    }
}

/// [`TlsProfile`] as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProfileArg {
    /// TLS 1.2 and 1.3, ECDHE with AEAD ciphers only.
    Intermediate,
    /// TLS 1.3 only.
    Modern,
}

impl From<TlsProfile> for ProfileArg {
    fn from(profile: TlsProfile) -> ProfileArg {
        match profile {
            TlsProfile::Intermediate => ProfileArg::Intermediate,
            TlsProfile::Modern => ProfileArg::Modern,
        }
    }
}

impl From<ProfileArg> for TlsProfile {
    fn from(profile: ProfileArg) -> TlsProfile {
        match profile {
            ProfileArg::Intermediate => TlsProfile::Intermediate,
            ProfileArg::Modern => TlsProfile::Modern,
        }
    }
}

impl Args {
    /// The config these flags and variables ask for.
    fn into_config(self) -> Config {
        let mut c = Config::default();
        c.bind = self.bind;
        c.pki_dir = self.pki_dir;
        c.cert = self.cert;
        c.key = self.key;
        c.ca = self.ca;
        c.crl = self.crl;
        c.crl_url = self.crl_url;
        c.crl_poll_secs = self.crl_poll_secs;
        c.client_auth = self.client_auth.into();
        c.tls_profile = self.tls_profile.into();
        c.users = self.users;
        c.allow_cn = self.allow_cn;
        c.allow_san = self.allow_san;
        c.login_max_failures = self.login_max_failures;
        c.login_lockout_secs = self.login_lockout_secs;
        c.login_cache_secs = self.login_cache_secs;
        c.hash_threads = self.hash_threads;
        c.session_cache = self.session_cache;
        c.verify_depth = self.verify_depth;
        c.watch_secs = self.watch_secs;
        c.workers = self.workers;
        c.handshake_timeout_secs = self.handshake_timeout_secs;
        c.request_timeout_secs = self.request_timeout_secs;
        c.keep_alive_secs = self.keep_alive_secs;
        c.max_connections = self.max_connections;
        c.shutdown_timeout_secs = self.shutdown_timeout_secs;
        c.upstream = self.upstream;
        c.upstream_timeout_secs = self.upstream_timeout_secs;
        c.identity_header_prefix = self.identity_header_prefix;
        c.upstream_login_path = Some(self.upstream_login_path).filter(|p| !p.is_empty());
        c.healthz_path = Some(self.healthz_path).filter(|p| !p.is_empty());
        c.crl_stale = self.crl_stale.into();
        c.metrics_bind = self.metrics_bind;
        c.metrics_allow_cn = self.metrics_allow_cn;
        c.metrics_allow_san = self.metrics_allow_san;
        c
    }
}

fn main() -> ExitCode {
    // Before the runtime, the arguments and OpenSSL allocate.
    let openssl_on_mimalloc = openssl_alloc::install();
    let small_pages = openssl_alloc::huge_pages_off();
    actix_web::rt::System::new().block_on(serve(openssl_on_mimalloc, small_pages))
}

/// Parses the arguments, starts logging, and runs the server until it is stopped.
async fn serve(openssl_on_mimalloc: bool, small_pages: bool) -> ExitCode {
    let args = Args::parse();
    server::log::init(args.log_format.into(), "info");
    if !small_pages {
        tracing::debug!("the kernel kept transparent huge pages on");
    }
    if openssl_on_mimalloc {
        tracing::debug!("OpenSSL allocates through mimalloc");
    } else {
        tracing::warn!("OpenSSL had allocated before main: it keeps the system allocator");
    }
    let config = args.into_config();
    match server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: error: {}", common::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_flags_are_well_formed() {
        Args::command().debug_assert();
    }

    /// Every flag given (so no `SERVER_*` variable of the test's own environment counts), each
    /// with a value unlike its default: each must land in its own field.
    /// Every flag, each with a value of its own.
    const EVERY_FLAG: &[&str] = &[
        "server",
        "--bind=127.0.0.2:1",
        "--pki-dir=p",
        "--cert=c",
        "--key=k",
        "--ca=a",
        "--crl=r",
        "--crl-url=https://ca:8443/crl",
        "--crl-poll-secs=25",
        "--client-auth=optional",
        "--tls-profile=modern",
        "--users=u",
        "--allow-cn=x,y",
        "--allow-san=URI:s",
        "--login-max-failures=11",
        "--login-lockout-secs=12",
        "--login-cache-secs=13",
        "--hash-threads=14",
        "--session-cache=15",
        "--verify-depth=16",
        "--watch-secs=17",
        "--workers=18",
        "--handshake-timeout-secs=19",
        "--request-timeout-secs=20",
        "--keep-alive-secs=21",
        "--max-connections=22",
        "--shutdown-timeout-secs=23",
        "--upstream=http://127.0.0.1:5000",
        "--upstream-timeout-secs=24",
        "--identity-header-prefix=X-Who-",
        "--upstream-login-path=",
        "--crl-stale=warn",
        "--metrics-bind=127.0.0.3:9",
        "--metrics-allow-cn=prom",
        "--metrics-allow-san=URI:m",
        "--log-format=json",
    ];

    #[test]
    fn every_flag_lands_in_its_field() {
        let args = Args::try_parse_from(EVERY_FLAG).expect("parse");
        assert!(matches!(args.log_format, LogFormatArg::Json));
        let c = args.into_config();
        let path = |s: &str| Some(PathBuf::from(s));
        assert_eq!(c.bind, "127.0.0.2:1".parse().expect("addr"));
        assert_eq!(c.pki_dir, PathBuf::from("p"));
        assert_eq!(
            (c.cert, c.key, c.ca, c.crl),
            (path("c"), path("k"), path("a"), path("r"))
        );
        assert_eq!(c.crl_url.as_deref(), Some("https://ca:8443/crl"));
        assert_eq!(c.crl_poll_secs, 25);
        assert_eq!(c.client_auth, ClientAuth::Optional);
        assert_eq!(c.tls_profile, TlsProfile::Modern);
        assert_eq!(c.users, path("u"));
        assert_eq!(
            (c.allow_cn, c.allow_san),
            (vec!["x".into(), "y".into()], vec!["URI:s".into()])
        );
        let numbers = [
            u64::from(c.login_max_failures),
            c.login_lockout_secs,
            c.login_cache_secs,
            c.hash_threads.unwrap_or_default() as u64,
            u64::from(c.session_cache),
            u64::from(c.verify_depth),
            c.watch_secs,
            c.workers.unwrap_or_default() as u64,
            c.handshake_timeout_secs,
            c.request_timeout_secs,
            c.keep_alive_secs,
            c.max_connections as u64,
            c.shutdown_timeout_secs,
            c.upstream_timeout_secs,
        ];
        assert_eq!(
            numbers,
            [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]
        );
        assert_eq!(c.upstream, "http://127.0.0.1:5000".parse().ok());
        assert_eq!(c.identity_header_prefix, "X-Who-");
        assert_eq!(
            c.upstream_login_path, None,
            "an empty path turns the brakes off"
        );
        assert_eq!(c.crl_stale, CrlStale::Warn);
        assert_eq!(c.metrics_bind, "127.0.0.3:9".parse().ok());
        assert_eq!(
            (c.metrics_allow_cn, c.metrics_allow_san),
            (vec!["prom".into()], vec!["URI:m".into()])
        );
    }
}
