//! `--crl-url`: the CRL comes from the CA's service instead of a file someone copies. The
//! server fetches it at start-up, then polls (a conditional GET, a bounded timeout, ± 10 %
//! jitter so replicas do not poll in step). A new CRL is checked once (signed by our CA, a CRL
//! number not older than the one in use) and swapped in from memory by
//! [`TlsReloader::swap_crl`]: one parse, one signature check, one new context; open
//! connections keep theirs, new handshakes see the new CRL. The CRL file is the copy the next
//! start reads. On any failure the last good CRL stays in use, on disk and in memory, and its
//! age is logged and shown by `/healthz`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use openssl::x509::{X509Crl, X509};

use crate::config::Config;
use crate::error::ServerError;
use crate::metrics::Shared;
use crate::tls::TlsReloader;

/// Why a CRL poll failed: the `reason` label of `https_crl_fetch_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchFailure {
    /// No answer: the CA is down, unreachable, its TLS refused, or too slow.
    Unreachable,
    /// The CA answered with a status other than 200 or 304.
    HttpStatus,
    /// The body could not be read whole (cut, or over the size limit).
    Body,
    /// The answer is not a CRL (DER or PEM).
    NotACrl,
    /// A CRL not signed by our CA.
    NotSignedByCa,
    /// A CRL without a CRL number.
    NoNumber,
    /// A CRL older than the one in use (a lower CRL number).
    Older,
    /// A good CRL that could not be written to its file or loaded into the TLS context.
    Load,
}

impl FetchFailure {
    /// Every reason, in label order.
    pub(crate) const ALL: [FetchFailure; 8] = [
        FetchFailure::Unreachable,
        FetchFailure::HttpStatus,
        FetchFailure::Body,
        FetchFailure::NotACrl,
        FetchFailure::NotSignedByCa,
        FetchFailure::NoNumber,
        FetchFailure::Older,
        FetchFailure::Load,
    ];

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FetchFailure::Unreachable => "unreachable",
            FetchFailure::HttpStatus => "http_status",
            FetchFailure::Body => "body",
            FetchFailure::NotACrl => "not_a_crl",
            FetchFailure::NotSignedByCa => "not_signed_by_ca",
            FetchFailure::NoNumber => "no_number",
            FetchFailure::Older => "older",
            FetchFailure::Load => "load",
        }
    }
}

/// A failed poll: why, as a label, and the words of the log and `/healthz`.
#[derive(Debug, Clone)]
struct Failed {
    reason: FetchFailure,
    detail: String,
}

impl Failed {
    fn new(reason: FetchFailure, detail: impl Into<String>) -> Failed {
        Failed {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The longest a fetch may take, whatever the poll interval.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest CRL accepted (a million revoked serials is about 40 MiB; ours are far smaller).
const MAX_CRL_BYTES: usize = 16 << 20;

/// Where the CRL comes from and what is known of the one in use.
pub(crate) struct CrlFeed {
    url: String,
    path: PathBuf,
    cas: Vec<X509>,
    every: Duration,
    state: Mutex<InUse>,
    metrics: Shared,
}

/// The CRL in use, and the last poll.
#[derive(Debug, Clone, Default)]
struct InUse {
    number: Option<u64>,
    this_update: i64,
    next_update: Option<i64>,
    revoked: usize,
    etag: Option<String>,
    last_modified: Option<String>,
    /// When the CA last answered with this CRL or a 304 (Unix seconds).
    confirmed_at: Option<i64>,
    /// The last poll's failure, and when.
    failure: Option<(i64, Failed)>,
}

/// With `config.crl_url` set: points `config.crl` at the file the fetched CRL is kept in
/// (`--crl`, else `PKI/server/fetched.crl`), fetches it once, and returns the feed to poll.
/// Without any CRL (none fetched, no earlier copy on disk), the server does not start. Polls
/// are counted in `metrics`, the first one included.
pub(crate) fn prepare(
    config: &mut Config,
    metrics: Shared,
) -> Result<Option<Arc<CrlFeed>>, ServerError> {
    let Some(url) = config.crl_url.clone() else {
        return Ok(None);
    };
    let path = config.crl.clone().unwrap_or_else(|| {
        common::Layout::new(&config.pki_dir)
            .dir(common::Role::Server)
            .join("fetched.crl")
    });
    config.crl = Some(path.clone());
    let feed = Arc::new(CrlFeed {
        url,
        cas: x509::cert::load_certs("CA certificate", &config.ca_path())?,
        path,
        every: Duration::from_secs(config.crl_poll_secs.max(1)),
        state: Mutex::default(),
        metrics,
    });
    let kept = feed.adopt_file();
    // start() may run inside a runtime, which must not block: the first fetch gets its own.
    let first = feed.clone();
    let fetched = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move { first.poll().await })
    })
    .join()
    .unwrap_or_else(|_| Err(Failed::new(FetchFailure::Unreachable, "the fetch crashed")))
    // At start-up the TLS context is built from the file: the new CRL goes there first.
    .and_then(|new| new.map_or(Ok(()), |f| feed.keep(f)));
    match (fetched, kept) {
        (Ok(()), _) => feed.log_in_use("CRL fetched"),
        (Err(e), Ok(())) => {
            let (crl_number, crl_age_secs) = feed.in_use();
            tracing::warn!(
                url = %feed.url, error = %e, reason = e.reason.label(), crl_number, crl_age_secs,
                "cannot fetch the CRL at start-up; serving with the last one fetched"
            );
        }
        (Err(e), Err(why)) => {
            return Err(ServerError::Invalid {
                what: "CRL",
                path: feed.path.clone(),
                detail: format!(
                    "none could be fetched from {} ({e}), and no earlier copy is usable ({why}); \
                     start the CA, or check --crl-url",
                    feed.url
                ),
            })
        }
    }
    Ok(Some(feed))
}

/// Registers the feed as app data (for `/healthz`) around the app's own services.
pub(crate) fn with_feed(
    app: Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>,
    feed: Option<Arc<CrlFeed>>,
) -> Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync> {
    match feed {
        None => app,
        Some(feed) => Arc::new(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::from(feed.clone()));
            app(cfg);
        }),
    }
}

/// Polls for as long as the server runs; each new CRL is swapped in with `tls.reload()`.
pub(crate) fn spawn(feed: Option<Arc<CrlFeed>>, tls: Arc<TlsReloader>) {
    let Some(feed) = feed else {
        return;
    };
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(x509::time::jittered(feed.every)).await;
            match feed.poll().await {
                Ok(Some(fetched)) => feed.swap_in(&tls, fetched),
                Ok(None) => {
                    let (crl_number, crl_age_secs) = feed.in_use();
                    tracing::debug!(crl_number, crl_age_secs, "CRL unchanged");
                }
                Err(e) => {
                    let (crl_number, crl_age_secs) = feed.in_use();
                    tracing::warn!(
                        url = %feed.url, error = %e, reason = e.reason.label(), crl_number,
                        crl_age_secs, "CRL poll failed; keeping the CRL in use"
                    );
                }
            }
        }
    });
}

/// The feed's lines of `/healthz`: the CRL in use, its age, and the last failed poll.
pub(crate) fn health(req: &HttpRequest) -> Option<String> {
    let feed = req.app_data::<web::Data<CrlFeed>>()?;
    let s = feed.snapshot();
    let now = x509::time::now();
    let stale = s.next_update.is_some_and(|n| n <= now);
    let mut text = format!(
        "crl feed{}: number={} revoked={} age_secs={} next_update_in_secs={} confirmed_secs_ago={} url={}\n",
        if stale { " STALE (past its nextUpdate)" } else { "" },
        s.number.map_or("none".into(), |n| n.to_string()),
        s.revoked,
        now - s.this_update,
        s.next_update.map_or("none".into(), |n| (n - now).to_string()),
        s.confirmed_at.map_or("never".into(), |t| (now - t).to_string()),
        feed.url,
    );
    if let Some((at, why)) = &s.failure {
        text.push_str(&format!(
            "crl feed: last poll failed {} s ago ({}): {why}\n",
            now - at,
            why.reason.label()
        ));
    }
    Some(text)
}

impl CrlFeed {
    fn snapshot(&self) -> InUse {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut InUse)) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The CRL in use as two log fields: its number and its age in seconds (`None`: no CRL).
    fn in_use(&self) -> (Option<u64>, Option<i64>) {
        let s = self.snapshot();
        let age = s.number.map(|_| x509::time::now() - s.this_update);
        (s.number, age)
    }

    fn log_in_use(&self, what: &str) {
        let s = self.snapshot();
        let (crl_number, crl_age_secs) = self.in_use();
        tracing::info!(
            url = %self.url,
            crl_number,
            revoked = s.revoked,
            crl_age_secs,
            file = %self.path.display(),
            "{what}"
        );
    }

    /// Takes the CRL file left by an earlier run as the one in use, if it checks out.
    fn adopt_file(&self) -> Result<(), String> {
        let pem = std::fs::read(&self.path).map_err(|e| e.to_string())?;
        let crl = self.check(&pem).map_err(|e| e.detail)?;
        self.update(|s| s.apply(&crl.state()));
        Ok(())
    }

    /// One conditional GET: the new CRL, checked; `None` when the CA has nothing newer.
    async fn poll(&self) -> Result<Option<Fetched>, Failed> {
        let outcome = self.fetch().await;
        let now = x509::time::now();
        match &outcome {
            Ok(_) => {
                self.update(|s| {
                    s.confirmed_at = Some(now);
                    s.failure = None;
                });
                if let Some(m) = &self.metrics {
                    m.crl_fetched(now);
                }
            }
            Err(e) => self.failed(now, e.clone()),
        }
        outcome
    }

    /// Keeps `e` for `/healthz` and counts it.
    fn failed(&self, at: i64, e: Failed) {
        if let Some(m) = &self.metrics {
            m.crl_fetch_failed(e.reason);
        }
        self.update(|s| s.failure = Some((at, e)));
    }

    async fn fetch(&self) -> Result<Option<Fetched>, Failed> {
        let unreachable = |e: String| Failed::new(FetchFailure::Unreachable, e);
        let client = self.client().map_err(unreachable)?;
        let known = self.snapshot();
        let mut req = client.get(&self.url);
        if let Some(tag) = &known.etag {
            req = req.insert_header(("If-None-Match", tag.as_str()));
        }
        if let Some(date) = &known.last_modified {
            req = req.insert_header(("If-Modified-Since", date.as_str()));
        }
        let mut res = req.send().await.map_err(|e| unreachable(e.to_string()))?;
        if res.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if res.status() != StatusCode::OK {
            return Err(Failed::new(
                FetchFailure::HttpStatus,
                format!("the CA answered HTTP {}", res.status().as_u16()),
            ));
        }
        let header = |name| {
            res.headers()
                .get(name)
                .and_then(|v: &actix_web::http::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (etag, last_modified) = (header("etag"), header("last-modified"));
        let body = res
            .body()
            .limit(MAX_CRL_BYTES)
            .await
            .map_err(|e| Failed::new(FetchFailure::Body, e.to_string()))?;
        let crl = self.check(&body)?;
        if let Some(n) = known.number {
            if crl.number < n {
                return Err(Failed::new(
                    FetchFailure::Older,
                    format!(
                        "the CA served CRL number {}, older than the {n} in use: ignored",
                        crl.number
                    ),
                ));
            }
        }
        if known.number == Some(crl.number) && known.this_update == crl.this_update {
            self.update(|s| {
                s.etag = etag;
                s.last_modified = last_modified;
            });
            return Ok(None);
        }
        Ok(Some(Fetched {
            pem: crl
                .crl
                .to_pem()
                .map_err(|e| Failed::new(FetchFailure::NotACrl, e.to_string()))?,
            checked: crl,
            etag,
            last_modified,
        }))
    }

    /// A new CRL into the TLS context, from memory; on failure the one in use stays.
    fn swap_in(&self, tls: &TlsReloader, f: Fetched) {
        let Fetched {
            checked,
            pem,
            etag,
            last_modified,
        } = f;
        let (state, crl, signer) = checked.split();
        match tls.swap_crl(crl, &signer, &pem) {
            Ok(_) => {
                self.update(|s| {
                    s.apply(&state);
                    s.etag = etag;
                    s.last_modified = last_modified;
                });
                self.log_in_use("new CRL in use");
            }
            Err(e) => {
                let (crl_number, crl_age_secs) = self.in_use();
                tracing::error!(
                    error = %e, crl_number, crl_age_secs,
                    "the new CRL did not load; keeping the previous one"
                );
                self.failed(
                    x509::time::now(),
                    Failed::new(FetchFailure::Load, e.to_string()),
                );
            }
        }
    }

    /// A CRL fetched at start-up: written to the file the TLS context is built from.
    fn keep(&self, f: Fetched) -> Result<(), Failed> {
        if let Err(e) = write_atomically(&self.path, &f.pem) {
            let e = Failed::new(FetchFailure::Load, e);
            self.failed(x509::time::now(), e.clone());
            return Err(e);
        }
        self.update(|s| {
            s.apply(&f.checked.state());
            s.etag = f.etag;
            s.last_modified = f.last_modified;
        });
        Ok(())
    }

    /// A CRL (DER or PEM) signed by one of our CAs, with its number and dates.
    fn check(&self, bytes: &[u8]) -> Result<Checked, Failed> {
        let not_a_crl = |e: String| Failed::new(FetchFailure::NotACrl, e);
        let crl = X509Crl::from_der(bytes)
            .or_else(|_| X509Crl::from_pem(bytes))
            .map_err(|_| not_a_crl("the answer is not a CRL (DER or PEM)".to_owned()))?;
        let signer = self
            .cas
            .iter()
            .find(|ca| {
                ca.public_key()
                    .is_ok_and(|k| crl.verify(&k).unwrap_or(false))
            })
            .ok_or_else(|| {
                Failed::new(
                    FetchFailure::NotSignedByCa,
                    "the CRL is not signed by our CA: ignored",
                )
            })?
            .clone();
        let number = x509::cert::crl_number(&crl)
            .ok_or_else(|| Failed::new(FetchFailure::NoNumber, "the CRL has no CRL number"))?;
        Ok(Checked {
            number,
            this_update: x509::time::unix_time(crl.last_update())
                .map_err(|e| not_a_crl(e.to_string()))?,
            next_update: crl
                .next_update()
                .and_then(|t| x509::time::unix_time(t).ok()),
            revoked: crl.get_revoked().map_or(0, |r| r.len()),
            crl,
            signer,
        })
    }

    /// A TLS client that trusts our CA only, TLS 1.2+, host name verified (awc's default).
    fn client(&self) -> Result<awc::Client, String> {
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| e.to_string())?;
        for ca in &self.cas {
            b.cert_store_mut()
                .add_cert(ca.clone())
                .map_err(|e| e.to_string())?;
        }
        b.set_alpn_protos(b"\x08http/1.1")
            .map_err(|e| e.to_string())?;
        let timeout = FETCH_TIMEOUT.min(self.every).max(Duration::from_secs(1));
        Ok(awc::Client::builder()
            .connector(
                awc::Connector::new()
                    .openssl(b.build())
                    .timeout(timeout)
                    .handshake_timeout(timeout),
            )
            .timeout(timeout)
            .finish())
    }
}

/// A fetched CRL that checked out, and the CA whose key verified it.
struct Checked {
    crl: X509Crl,
    signer: X509,
    number: u64,
    this_update: i64,
    next_update: Option<i64>,
    revoked: usize,
}

/// What the feed knows of a CRL, without the CRL.
struct CrlState {
    number: u64,
    this_update: i64,
    next_update: Option<i64>,
    revoked: usize,
}

impl Checked {
    fn state(&self) -> CrlState {
        CrlState {
            number: self.number,
            this_update: self.this_update,
            next_update: self.next_update,
            revoked: self.revoked,
        }
    }

    fn split(self) -> (CrlState, X509Crl, X509) {
        (self.state(), self.crl, self.signer)
    }
}

/// A new CRL the CA answered with: checked, not yet in use.
struct Fetched {
    checked: Checked,
    pem: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl InUse {
    fn apply(&mut self, c: &CrlState) {
        self.number = Some(c.number);
        self.this_update = c.this_update;
        self.next_update = c.next_update;
        self.revoked = c.revoked;
    }
}

/// `bytes` into `path` by a synced temporary file and a rename: readers see the old CRL or
/// the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    x509::files::write(
        "CRL",
        path,
        bytes,
        x509::files::Secrecy::Public,
        x509::files::Overwrite::Replace,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_for(pki: &testkit::TestPki, path: PathBuf) -> CrlFeed {
        CrlFeed {
            url: "https://127.0.0.1:1/crl".into(),
            path,
            cas: x509::cert::load_certs("CA", &pki.layout().ca_cert()).expect("ca"),
            every: Duration::from_secs(60),
            state: Mutex::default(),
            metrics: None,
        }
    }

    #[test]
    fn a_crl_of_another_ca_or_no_crl_is_refused() {
        let ours = testkit::TestPki::new();
        let other = testkit::TestPki::new();
        let feed = feed_for(&ours, ours.scratch().join("x.crl"));
        let crl = std::fs::read(other.layout().ca_crl()).expect("crl");
        let e = feed.check(&crl).err().expect("refused");
        assert!(e.detail.contains("not signed by our CA"), "{e}");
        assert_eq!(e.reason, FetchFailure::NotSignedByCa);
        let e = feed.check(b"junk").err().expect("refused");
        assert!(e.detail.contains("not a CRL"), "{e}");
        assert_eq!(e.reason, FetchFailure::NotACrl);
        let mine = std::fs::read(ours.layout().ca_crl()).expect("crl");
        assert!(feed.check(&mine).is_ok());
    }

    #[test]
    fn without_a_ca_nor_a_copy_the_server_does_not_start() {
        let pki = testkit::TestPki::new();
        let mut config = Config::for_pki(pki.dir(), crate::ClientAuth::Required);
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        config.crl_url = Some(format!("https://127.0.0.1:{port}/crl"));
        let metrics = Some(Arc::new(crate::metrics::Metrics::new().expect("metrics")));
        let e = prepare(&mut config, metrics.clone())
            .err()
            .expect("refused");
        let text = e.to_string();
        assert!(text.contains("none could be fetched"), "{text}");
        assert_eq!(
            config.crl,
            Some(pki.layout().dir(common::Role::Server).join("fetched.crl"))
        );
        // With a copy from an earlier run, it starts on that copy.
        std::fs::copy(pki.layout().ca_crl(), config.crl.as_ref().expect("path")).expect("copy");
        let feed = prepare(&mut config, metrics.clone())
            .expect("starts")
            .expect("feed");
        assert_eq!(feed.snapshot().number, Some(1), "{:?}", feed.snapshot());
        assert!(feed.snapshot().failure.is_some());
        // Each failed poll counted, under why it failed; never a success.
        let text = String::from_utf8(metrics.as_ref().expect("on").encode()).expect("utf-8");
        for line in [
            "https_crl_fetch_failures_total{reason=\"unreachable\"} 2",
            "https_crl_fetch_failures_total{reason=\"not_a_crl\"} 0",
            "https_crl_fetch_last_success_timestamp_seconds 0",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }
}
