//! `ca`: parses flags and `CA_*` variables (and `PKI_DB`, as `pki` does) into a
//! [`ca::Config`] and runs the library. The defaults shown by `--help` are the library's own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ca::Config;
use clap::Parser;
use pki::{DbUrl, SubjectAltName};

/// The online CA for device fleets: EST (RFC 7030) enrollment and renewal, and the CRL.
#[derive(Debug, Parser)]
#[command(name = "ca", version)]
struct Args {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, env = "CA_BIND", default_value_t = defaults().bind)]
    bind: SocketAddr,

    /// Folder of the PKI (`make certs` layout).
    #[arg(long, env = common::PKI_DIR_ENV, default_value_os_t = defaults().pki_dir)]
    pki_dir: PathBuf,

    /// Where the CA's records live: a SQLite file [default: PKI/ca/ca.db], or
    /// postgres://user@host/db for several replicas.
    #[arg(long, env = "PKI_DB", hide_env_values = true)]
    db: Option<String>,

    /// The service's TLS certificate [default: PKI/server/est.crt, issued at first start].
    #[arg(long, env = "CA_CERT", requires = "key")]
    cert: Option<PathBuf>,

    /// The service's TLS key [default: PKI/server/est.key].
    #[arg(long, env = "CA_KEY", requires = "cert")]
    key: Option<PathBuf>,

    /// The URL clients reach this service at (https://ca.example:8443): certificates issued
    /// name URL/crl as their CRL distribution point, and the host joins the service's names.
    #[arg(long, env = "CA_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// More names for the service's certificate (repeatable).
    #[arg(long = "san", env = "CA_SAN", value_delimiter = ',')]
    sans: Vec<SubjectAltName>,

    /// Validity of issued device certificates, in days [default: 365].
    #[arg(long, env = "CA_DAYS")]
    days: Option<u32>,

    /// Let a valid device certificate authenticate simpleenroll for its own name.
    #[arg(long, env = "CA_ENROLL_WITH_CERTIFICATE")]
    enroll_with_certificate: bool,

    /// Re-sign the CRL when its nextUpdate is closer than this.
    #[arg(long, env = "CA_CRL_REFRESH_BEFORE", value_parser = humantime::parse_duration,
          default_value = "7d")]
    crl_refresh_before: Duration,

    /// How often to check whether the CRL is due (± 10 %).
    #[arg(long, env = "CA_CRL_CHECK_EVERY", value_parser = humantime::parse_duration,
          default_value = "10m")]
    crl_check_every: Duration,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "CA_MAX_BODY", default_value_t = defaults().max_body)]
    max_body: usize,

    /// Time a client gets to send a request body.
    #[arg(long, env = "CA_BODY_TIMEOUT", value_parser = humantime::parse_duration,
          default_value = "10s")]
    body_timeout: Duration,

    /// Worker threads [default: number of cores].
    #[arg(long, env = "CA_WORKERS")]
    workers: Option<usize>,

    /// Wrong enrollment tokens a peer may send in a minute before it hears 429 (0: no limit).
    #[arg(long, env = "CA_WRONG_TOKEN_LIMIT", default_value_t = defaults().wrong_token_limit)]
    wrong_token_limit: u32,

    /// The DNS server ACME validation looks names up at (HOST:PORT) [default: the system's].
    #[arg(long, env = "CA_ACME_RESOLVER", value_name = "HOST:PORT")]
    acme_resolver: Option<SocketAddr>,

    /// The port ACME http-01 validation connects to.
    #[arg(long, env = "CA_ACME_HTTP_PORT", default_value_t = defaults().acme.validator.http_port)]
    acme_http_port: u16,

    /// The port ACME tls-alpn-01 validation connects to.
    #[arg(long, env = "CA_ACME_TLS_PORT", default_value_t = defaults().acme.validator.tls_port)]
    acme_tls_port: u16,

    /// Validity of ACME tls-server certificates, in days.
    #[arg(long, env = "CA_ACME_DAYS", default_value_t = defaults().acme.server_days)]
    acme_days: u32,

    /// Validity of ACME mtls-client certificates, in days.
    #[arg(long, env = "CA_ACME_CLIENT_DAYS", default_value_t = defaults().acme.client_days)]
    acme_client_days: u32,

    /// Orders an ACME account may make in an hour before it hears 429.
    #[arg(long, env = "CA_ACME_ORDERS_PER_HOUR", default_value_t = defaults().acme.orders_per_hour)]
    acme_orders_per_hour: i64,

    /// Failed validations an ACME account may have in an hour before its challenges hear 429.
    #[arg(long, env = "CA_ACME_FAILED_VALIDATIONS_PER_HOUR",
          default_value_t = defaults().acme.failed_validations_per_hour)]
    acme_failed_validations_per_hour: i64,

    /// Client certificate CNs allowed to open /fleet, /fleet.json and /metrics (repeatable).
    #[arg(
        long = "admin-allow-cn",
        env = "CA_ADMIN_ALLOW_CN",
        value_delimiter = ',',
        value_name = "CN"
    )]
    admin_allow_cn: Vec<String>,

    /// Client certificate subjectAltNames allowed the same (DNS:ops.example, or bare).
    #[arg(
        long = "admin-allow-san",
        env = "CA_ADMIN_ALLOW_SAN",
        value_delimiter = ',',
        value_name = "SAN"
    )]
    admin_allow_san: Vec<String>,

    /// Also serve /metrics in plain HTTP here (loopback or a monitoring network).
    #[arg(long, env = "CA_METRICS_BIND", value_name = "ADDR")]
    metrics_bind: Option<SocketAddr>,

    /// How often the figures from the records are read.
    #[arg(long, env = "CA_METRICS_REFRESH", value_parser = humantime::parse_duration,
          default_value = "60s")]
    metrics_refresh: Duration,

    /// Let ACME accounts register without an external account binding (anyone who reaches
    /// the CA may then order names that pass a challenge).
    #[arg(long, env = "CA_ACME_WITHOUT_EAB")]
    acme_without_eab: bool,
}

fn defaults() -> Config {
    Config::default()
}

impl Args {
    fn into_config(self) -> Config {
        let mut c = Config::default();
        c.bind = self.bind;
        c.pki_dir = self.pki_dir;
        c.db = self.db.as_deref().map_or(DbUrl::Default, DbUrl::parse);
        c.cert = self.cert;
        c.key = self.key;
        c.public_url = self.public_url;
        c.sans = self.sans;
        c.days = self.days;
        c.enroll_with_certificate = self.enroll_with_certificate;
        c.crl_refresh_before = self.crl_refresh_before;
        c.crl_check_every = self.crl_check_every;
        c.max_body = self.max_body;
        c.body_timeout = self.body_timeout;
        c.workers = self.workers;
        c.wrong_token_limit = self.wrong_token_limit;
        c.acme.validator.resolver = self.acme_resolver;
        c.acme.validator.http_port = self.acme_http_port;
        c.acme.validator.tls_port = self.acme_tls_port;
        c.acme.server_days = self.acme_days;
        c.acme.client_days = self.acme_client_days;
        c.acme.eab_required = !self.acme_without_eab;
        c.admin.cns = self.admin_allow_cn;
        c.admin.sans = self.admin_allow_san;
        c.metrics_bind = self.metrics_bind;
        c.metrics_refresh = self.metrics_refresh;
        c.acme.orders_per_hour = self.acme_orders_per_hour;
        c.acme.failed_validations_per_hour = self.acme_failed_validations_per_hour;
        c
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // PostgreSQL's NOTICEs (a migration that finds its table) are not news.
                .unwrap_or_else(|_| "info,actix_server=warn,tokio_postgres=warn".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Args::parse().into_config();
    let bind = config.bind;
    match ca::run(config)
        .await
        .with_context(|| format!("ca on {bind}"))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ca: error: {}", common::error_chain(e.as_ref()));
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

    #[test]
    fn every_flag_lands_in_its_field() {
        let c = Args::try_parse_from([
            "ca",
            "--bind=127.0.0.2:1",
            "--pki-dir=p",
            "--db=postgres://u@h/d",
            "--cert=c",
            "--key=k",
            "--public-url=https://ca.example:8443",
            "--san=DNS:ca.internal",
            "--days=2",
            "--enroll-with-certificate",
            "--crl-refresh-before=1d",
            "--crl-check-every=5s",
            "--max-body=9",
            "--body-timeout=3s",
            "--workers=4",
            "--wrong-token-limit=7",
            "--acme-resolver=127.0.0.1:8053",
            "--acme-http-port=5002",
            "--acme-tls-port=5001",
            "--acme-days=3",
            "--acme-client-days=2",
            "--acme-without-eab",
            "--acme-orders-per-hour=4",
            "--admin-allow-cn=ops",
            "--admin-allow-san=DNS:ops.example",
            "--metrics-bind=127.0.0.1:9465",
            "--metrics-refresh=5s",
            "--acme-failed-validations-per-hour=5",
        ])
        .expect("parse")
        .into_config();
        assert_eq!(c.bind, "127.0.0.2:1".parse().expect("addr"));
        assert_eq!(c.pki_dir, PathBuf::from("p"));
        assert_eq!(c.db, DbUrl::Postgres("postgres://u@h/d".into()));
        assert_eq!((c.cert, c.key), (Some("c".into()), Some("k".into())));
        assert_eq!(c.public_url.as_deref(), Some("https://ca.example:8443"));
        assert_eq!(c.sans, vec![SubjectAltName::Dns("ca.internal".into())]);
        assert_eq!(c.days, Some(2));
        assert!(c.enroll_with_certificate);
        assert_eq!(c.crl_refresh_before, Duration::from_secs(86_400));
        assert_eq!(c.crl_check_every, Duration::from_secs(5));
        assert_eq!((c.max_body, c.body_timeout), (9, Duration::from_secs(3)));
        assert_eq!(c.workers, Some(4));
        assert_eq!(c.wrong_token_limit, 7);
        let v = &c.acme.validator;
        assert_eq!(v.resolver, Some("127.0.0.1:8053".parse().expect("addr")));
        assert_eq!((v.http_port, v.tls_port), (5002, 5001));
        assert_eq!((c.acme.server_days, c.acme.client_days), (3, 2));
        assert!(!c.acme.eab_required);
        assert_eq!(
            (c.acme.orders_per_hour, c.acme.failed_validations_per_hour),
            (4, 5)
        );
    }
}
