//! Prometheus metrics of the trust path, in the Prometheus text format (the `prometheus`
//! crate's encoder: nothing hand-written).
//!
//! [`Metrics`] holds the server's figures; they are collected only when the operator exposes
//! them (`metrics_bind` or `metrics_allow_cn`/`metrics_allow_san`), so an unexposed server pays
//! nothing. The exposition itself ([`register`], [`build_info`], [`encode`], [`endpoint`],
//! [`Exporter`]) lives in the `exposition` crate, which the `ca` service uses too; it is
//! re-exported here:
//!
//! ```
//! use server::metrics::{self, prometheus::{IntCounterVec, Opts, Registry}};
//! let registry = Registry::new();
//! metrics::build_info(&registry, "ca", env!("CARGO_PKG_VERSION")).expect("build info");
//! let enrollments = metrics::register(
//!     &registry,
//!     IntCounterVec::new(Opts::new("https_ca_enrollments_total", "Enrollments by result."), &["result"])
//!         .expect("valid name"),
//! )
//! .expect("registered once");
//! enrollments.with_label_values(&["issued"]).inc();
//! assert!(String::from_utf8(metrics::encode(&registry)).expect("text")
//!     .contains("https_ca_enrollments_total{result=\"issued\"} 1"));
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
pub use prometheus;
use prometheus::local::{LocalHistogram, LocalIntCounter};
pub use prometheus::Registry;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

use crate::crl_fetch::FetchFailure;
use crate::refusal::Reason;
use crate::trust::CertInfo;

pub use exposition::{build_info, encode, endpoint, register, Exporter, CONTENT_TYPE};

const DAY: f64 = 86_400.0;

/// How a handshake ended: the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeResult {
    /// Completed with a verified client certificate, or with none where none is needed.
    Accepted,
    /// Completed without a usable client certificate (`optional` mode): served as anonymous.
    Anonymous,
    /// Refused (the reason says why).
    Refused,
    /// Ended by the client on purpose before it was judged (reason `user_canceled`): a probe
    /// such as `client diagnose`, neither accepted nor refused.
    Canceled,
}

impl HandshakeResult {
    fn label(self) -> &'static str {
        match self {
            HandshakeResult::Accepted => "accepted",
            HandshakeResult::Anonymous => "anonymous",
            HandshakeResult::Refused => "refused",
            HandshakeResult::Canceled => "canceled",
        }
    }
}

/// What a `/login1` came to: the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// Right user name and password.
    Success,
    /// Wrong user name or password (or a field missing).
    Failure,
    /// Refused: the client is locked out.
    Locked,
    /// Refused: the hashing queue is full.
    Busy,
    /// Not a readable form.
    Invalid,
}

impl LoginResult {
    fn label(self) -> &'static str {
        match self {
            LoginResult::Success => "success",
            LoginResult::Failure => "failure",
            LoginResult::Locked => "locked",
            LoginResult::Busy => "busy",
            LoginResult::Invalid => "invalid",
        }
    }
}

/// The notAfter of the soonest-expiring client certificate verified today or yesterday (a
/// device that renewed stops counting after a day; no label per device).
#[derive(Debug, Default)]
struct Soonest {
    /// Per day parity: (day number, soonest notAfter that day).
    slots: [(AtomicI64, AtomicI64); 2],
}

impl Soonest {
    fn see(&self, not_after: i64, now: i64) {
        let day = now.div_euclid(86_400);
        let (seen_day, soonest) = &self.slots[day.rem_euclid(2) as usize];
        // A racing reset may lose one observation of the day's first second: harmless.
        if seen_day.swap(day, Ordering::Relaxed) != day {
            soonest.store(not_after, Ordering::Relaxed);
        }
        soonest.fetch_min(not_after, Ordering::Relaxed);
    }

    fn get(&self, now: i64) -> Option<i64> {
        let today = now.div_euclid(86_400);
        self.slots
            .iter()
            .filter(|(day, _)| today - day.load(Ordering::Relaxed) <= 1)
            .map(|(_, soonest)| soonest.load(Ordering::Relaxed))
            .filter(|&t| t != 0)
            .min()
    }
}

/// The server's figures (see the README's "Monitoring" section for each name).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    handshakes: IntCounterVec,
    requests: IntCounterVec,
    latency: HistogramVec,
    logins: IntCounterVec,
    lockouts: IntCounter,
    pub(crate) connections_open: IntGauge,
    pub(crate) connections_lingering: IntGauge,
    trust: TrustFigures,
    client_validity: Histogram,
    client_soonest: IntGaugeVec,
    soonest: Soonest,
    crl_fetch_success: IntGauge,
    crl_fetch_failures: IntCounterVec,
}

/// Buckets of the request latency, seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0,
];

/// Buckets of the client certificates' remaining validity: 1 day to 2 years, in seconds.
const VALIDITY_BUCKETS_DAYS: [f64; 10] =
    [1.0, 3.0, 7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0, 730.0];

mod trust;
use trust::{counter, gauge, gauge_vec, TrustFigures};

impl Metrics {
    /// Every figure of the server, registered in a new registry with the build info.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        build_info(&r, "server", env!("CARGO_PKG_VERSION"))?;
        let counter = |name: &str, help: &str, labels: &[&str]| counter(&r, name, help, labels);
        let gauge = |name: &str, help: &str| gauge(&r, name, help);
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| gauge_vec(&r, name, help, labels);
        Ok(Metrics {
            trust: TrustFigures::register(&r)?,
            handshakes: counter(
                "https_tls_handshakes_total",
                "TLS handshakes by result (accepted, anonymous, refused, canceled), reason and \
                 session (full, resumed).",
                &["result", "reason", "session"],
            )?,
            requests: counter(
                "https_http_requests_total",
                "HTTP requests by route pattern and status.",
                &["route", "status"],
            )?,
            latency: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "https_http_request_duration_seconds",
                        "Time from request head to response head, by route pattern.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route"],
                )?,
            )?,
            logins: counter(
                "https_login_attempts_total",
                "POST /login1 by result.",
                &["result"],
            )?,
            lockouts: register(
                &r,
                IntCounter::new(
                    "https_login_lockouts_total",
                    "Clients locked out after too many failed logins.",
                )?,
            )?,
            connections_open: gauge("https_connections_open", "TCP connections open.")?,
            connections_lingering: gauge(
                "https_connections_lingering",
                "Refused connections being drained before they are closed.",
            )?,
            client_validity: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "https_client_certificate_remaining_validity_seconds",
                        "Time left before notAfter of the client certificates verified in full \
                         handshakes.",
                    )
                    .buckets(VALIDITY_BUCKETS_DAYS.iter().map(|d| d * DAY).collect()),
                )?,
            )?,
            client_soonest: gauge_vec(
                "https_client_certificate_soonest_not_after_timestamp_seconds",
                "notAfter of the soonest-expiring client certificate verified today or yesterday.",
                &[],
            )?,
            soonest: Soonest::default(),
            crl_fetch_success: gauge(
                "https_crl_fetch_last_success_timestamp_seconds",
                "When the CA last answered a CRL poll (--crl-url) with a CRL or 304; 0: never \
                 (or no --crl-url).",
            )?,
            crl_fetch_failures: counter(
                "https_crl_fetch_failures_total",
                "Failed CRL polls (--crl-url) by reason (the CRL in use stays).",
                &["reason"],
            )?,
            registry: r,
        }
        .with_closed_sets_at_zero())
    }

    /// Every series whose labels come from a closed set, at 0: each figure the README lists is
    /// in the first scrape, and a rate over it has a start.
    fn with_closed_sets_at_zero(self) -> Metrics {
        for result in [
            LoginResult::Success,
            LoginResult::Failure,
            LoginResult::Locked,
            LoginResult::Busy,
            LoginResult::Invalid,
        ] {
            self.logins.with_label_values(&[result.label()]);
        }
        for reason in FetchFailure::ALL {
            self.crl_fetch_failures.with_label_values(&[reason.label()]);
        }
        self
    }

    /// The registry, to add an app's own figures beside the server's.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The exposition, with the figures computed at scrape time brought up to date.
    pub fn encode(&self) -> Vec<u8> {
        let now = x509::time::now();
        match self.soonest.get(now) {
            Some(t) => self.client_soonest.with_label_values::<&str>(&[]).set(t),
            None => self.client_soonest.reset(),
        }
        encode(&self.registry)
    }

    /// One handshake's end.
    pub fn handshake(&self, result: HandshakeResult, reason: Reason, resumed: bool) {
        let session = if resumed { "resumed" } else { "full" };
        self.handshakes
            .with_label_values(&[result.label(), reason.label(), session])
            .inc();
    }

    /// One login's result.
    pub fn login(&self, result: LoginResult) {
        self.logins.with_label_values(&[result.label()]).inc();
    }

    /// The CA answered a CRL poll (a new CRL, or the same one) at `at`, Unix seconds.
    pub(crate) fn crl_fetched(&self, at: i64) {
        self.crl_fetch_success.set(at);
    }

    /// A CRL poll failed (the CRL in use stays).
    pub(crate) fn crl_fetch_failed(&self, reason: FetchFailure) {
        self.crl_fetch_failures
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// A client was just locked out.
    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    /// A client certificate verified in a full handshake, with its notAfter.
    pub fn client_certificate(&self, not_after: i64) {
        let now = x509::time::now();
        self.client_validity
            .observe((not_after - now).max(0) as f64);
        self.soonest.see(not_after, now);
    }

    /// The TLS files were (re)loaded: the expiry gauges follow what is served now.
    pub fn loaded(&self, info: &CertInfo) {
        self.trust.reload_time.set(x509::time::now());
        self.trust.reload_ok.set(1);
        self.trust.server_not_after.set(info.not_after);
        self.trust.ca_not_after.reset();
        for ca in &info.cas {
            self.trust
                .ca_not_after
                .with_label_values(&[&ca.subject])
                .set(ca.not_after);
        }
        let crl = info.crl.as_ref();
        let number = crl
            .and_then(|c| c.number)
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        for (gauge, value) in [
            (&self.trust.crl_this_update, crl.map(|c| c.this_update)),
            (&self.trust.crl_next_update, crl.and_then(|c| c.next_update)),
            (&self.trust.crl_number, number),
        ] {
            match value {
                Some(v) => gauge.with_label_values::<&str>(&[]).set(v),
                None => gauge.reset(),
            }
        }
    }

    /// A reload (not the start-up load) was tried; [`Metrics::loaded`] follows a success.
    pub fn reload(&self, ok: bool) {
        if !ok {
            self.trust.reload_time.set(x509::time::now());
            self.trust.reload_ok.set(0);
        }
        self.trust
            .reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }
}

/// The server's figures, shared by its parts; `None` when metrics are off.
pub type Shared = Option<Arc<Metrics>>;

/// How often a worker adds its request figures to the shared ones.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// One worker's request figures, counted without atomics (a shared counter's cache line would
/// travel between the cores on every request) and added to the shared ones every
/// [`FLUSH_EVERY`] by a timer on the worker: a scrape sees them that much later.
pub(crate) struct WorkerRequests {
    shared: Arc<Metrics>,
    local: RefCell<HashMap<(String, u16), (LocalIntCounter, LocalHistogram)>>,
    timer: Cell<bool>,
}

impl WorkerRequests {
    /// A worker's figures over `shared`.
    pub(crate) fn new(shared: Arc<Metrics>) -> Rc<WorkerRequests> {
        Rc::new(WorkerRequests {
            shared,
            local: RefCell::new(HashMap::new()),
            timer: Cell::new(false),
        })
    }

    /// One request's end: `route` is the pattern it matched (never the raw path).
    pub(crate) fn request(self: &Rc<Self>, route: String, status: StatusCode, elapsed: Duration) {
        if !self.timer.replace(true) {
            self.start_timer();
        }
        let mut local = self.local.borrow_mut();
        let (count, latency) =
            local
                .entry((route, status.as_u16()))
                .or_insert_with_key(|(route, _)| {
                    (
                        self.shared
                            .requests
                            .with_label_values(&[route.as_str(), status.as_str()])
                            .local(),
                        self.shared.latency.with_label_values(&[route]).local(),
                    )
                });
        count.inc();
        latency.observe(elapsed.as_secs_f64());
    }

    /// Started on the first request, on the worker's own runtime; ends with the worker.
    fn start_timer(self: &Rc<Self>) {
        let me = Rc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                me.flush();
            }
        });
    }

    fn flush(&self) {
        for (count, latency) in self.local.borrow().values() {
            count.flush();
            latency.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.encode()).expect("utf-8")
    }

    #[test]
    fn figures_are_named_with_their_units_and_labels() {
        let m = Metrics::new().expect("metrics");
        m.handshake(HandshakeResult::Refused, Reason::Expired, false);
        m.handshake(HandshakeResult::Refused, Reason::Expired, false);
        let worker = WorkerRequests::new(Arc::new(m));
        let m = &worker.shared;
        // Outside a runtime no timer runs: the figures are flushed by hand.
        worker.timer.set(true);
        worker.request("/whoami".into(), StatusCode::OK, Duration::from_millis(2));
        assert!(
            text(m).contains("https_http_requests_total{route=\"/whoami\",status=\"200\"} 0"),
            "counted locally first"
        );
        worker.flush();
        m.login(LoginResult::Failure);
        let t = text(m);
        for line in [
            "https_tls_handshakes_total{reason=\"expired\",result=\"refused\",session=\"full\"} 2",
            "https_http_requests_total{route=\"/whoami\",status=\"200\"} 1",
            "https_http_request_duration_seconds_bucket{route=\"/whoami\",le=\"0.0025\"} 1",
            "https_http_request_duration_seconds_bucket{route=\"/whoami\",le=\"0.001\"} 0",
            "https_login_attempts_total{result=\"failure\"} 1",
            "# TYPE https_tls_handshakes_total counter",
        ] {
            assert!(t.contains(line), "{line} not in:\n{t}");
        }
        assert!(t.contains("https_build_info{openssl=\"OpenSSL "), "{t}");
    }

    #[test]
    fn closed_label_sets_are_in_the_first_scrape_at_zero() {
        let t = text(&Metrics::new().expect("metrics"));
        for line in [
            "https_tls_reloads_total{result=\"success\"} 0",
            "https_tls_reloads_total{result=\"failure\"} 0",
            "https_login_attempts_total{result=\"locked\"} 0",
            "https_login_lockouts_total 0",
            "https_crl_fetch_failures_total{reason=\"unreachable\"} 0",
            "https_crl_fetch_failures_total{reason=\"not_signed_by_ca\"} 0",
            "https_crl_fetch_last_success_timestamp_seconds 0",
        ] {
            assert!(t.contains(line), "{line} not in:\n{t}");
        }
    }

    #[test]
    fn the_soonest_client_certificate_is_forgotten_after_a_day() {
        let s = Soonest::default();
        let day = 86_400;
        assert_eq!(s.get(10 * day), None);
        s.see(50 * day, 10 * day);
        s.see(40 * day, 10 * day + 5);
        s.see(60 * day, 10 * day + 9);
        assert_eq!(s.get(10 * day + 10), Some(40 * day));
        s.see(70 * day, 11 * day);
        assert_eq!(s.get(11 * day), Some(40 * day), "yesterday still counts");
        s.see(80 * day, 12 * day);
        assert_eq!(s.get(12 * day), Some(70 * day), "the day before is gone");
        assert_eq!(s.get(20 * day), None);
    }

    #[test]
    fn trust_gauges_follow_the_context_and_drop_what_left_it() {
        let m = Metrics::new().expect("metrics");
        let mut info = CertInfo {
            subject: "/CN=localhost".into(),
            serial: "01".into(),
            not_after: 2_000,
            revoked: None,
            cas: vec![crate::trust::CaInfo {
                subject: "/CN=old ca".into(),
                not_after: 3_000,
            }],
            crl: Some(crate::trust::CrlInfo {
                this_update: 100,
                next_update: Some(200),
                number: Some(7),
            }),
        };
        m.loaded(&info);
        let t = text(&m);
        assert!(
            t.contains("https_server_certificate_not_after_timestamp_seconds 2000"),
            "{t}"
        );
        assert!(
            t.contains("https_trust_ca_not_after_timestamp_seconds{subject=\"/CN=old ca\"} 3000")
        );
        assert!(t.contains("https_crl_number 7"), "{t}");
        assert!(
            t.contains("https_crl_next_update_timestamp_seconds 200"),
            "{t}"
        );
        info.cas[0].subject = "/CN=new ca".into();
        info.crl = None;
        m.loaded(&info);
        let t = text(&m);
        assert!(!t.contains("old ca") && t.contains("new ca"), "{t}");
        for gone in [
            "https_crl_number",
            "https_crl_this_update",
            "https_crl_next_update",
        ] {
            assert!(!t.contains(gone), "{gone} in {t}");
        }
    }
}
