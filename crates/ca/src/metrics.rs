//! The CA's own figures, in the Prometheus text format (the `exposition` crate, shared with
//! the server): enrollments by protocol, result and reason; issuance latency; database errors;
//! token refusals; and what the records hold (certificates by role and status, those ending
//! soon or overdue for renewal, leaves per CA in force, each CA's CRL), read on a timer by
//! [`spawn_refresher`], never per scrape. Every series of a closed label set exists from the
//! first scrape.

use std::sync::Arc;
use std::time::Duration;

use exposition::prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
use exposition::Registry;

use crate::enroll::Ca;
use crate::error::Refusal;

/// The protocol label of EST's figures.
pub const EST: &str = "est";

/// The CA's figures: handles into one registry.
#[derive(Clone)]
pub struct CaMetrics {
    registry: Registry,
    /// ACME's handles (the same enrollment, issuance and database families as EST's).
    pub acme: acme::Metrics,
    token_refusals: IntCounterVec,
    certificates: IntGaugeVec,
    ending: IntGaugeVec,
    overdue: IntGauge,
    leaves: IntGaugeVec,
    crl_number: IntGaugeVec,
    crl_this_update: IntGaugeVec,
    crl_next_update: IntGaugeVec,
    records_up: IntGauge,
    refreshed: IntGauge,
}

impl std::fmt::Debug for CaMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaMetrics")
    }
}

fn gauges(
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, exposition::prometheus::Error> {
    IntGaugeVec::new(Opts::new(name, help), labels)
}

impl CaMetrics {
    /// The figures, registered in a registry of their own, every closed series at 0.
    pub fn new() -> Result<CaMetrics, exposition::prometheus::Error> {
        let registry = Registry::new();
        let reg = |m: Box<dyn exposition::prometheus::core::Collector>| registry.register(m);
        exposition::build_info(&registry, "ca", env!("CARGO_PKG_VERSION"))?;
        let acme = acme::Metrics::new()?;
        reg(Box::new(acme.enrollments.clone()))?;
        reg(Box::new(acme.issuance.clone()))?;
        reg(Box::new(acme.database_errors.clone()))?;
        reg(Box::new(acme.orders.clone()))?;
        reg(Box::new(acme.validations.clone()))?;
        let m = CaMetrics {
            token_refusals: exposition::register(&registry, IntCounterVec::new(
                Opts::new("https_ca_token_refusals_total", "Enrollment tokens refused, by reason."),
                &["reason"],
            )?)?,
            certificates: exposition::register(&registry, gauges(
                "https_ca_certificates",
                "Certificates on record by role and status (valid, expired, revoked), as pki list judges them.",
                &["role", "status"],
            )?)?,
            ending: exposition::register(&registry, gauges(
                "https_ca_certificates_ending",
                "Valid certificates whose notAfter is within 7 or 30 days.",
                &["within"],
            )?)?,
            overdue: exposition::register(&registry, IntGauge::new(
                "https_ca_certificates_overdue",
                "Valid certificates, current under their name, past two thirds of their lifetime: renewals not happening.",
            )?)?,
            leaves: exposition::register(&registry, gauges(
                "https_ca_leaves_in_force",
                "Valid certificates per CA in force; during a rotation the old CA's (issuing=false) falls to 0.",
                &["ca", "issuing"],
            )?)?,
            crl_number: exposition::register(&registry, gauges(
                "https_ca_crl_number",
                "The number of each CA's newest CRL on record.",
                &["ca", "issuing"],
            )?)?,
            crl_this_update: exposition::register(&registry, gauges(
                "https_ca_crl_this_update_timestamp_seconds",
                "thisUpdate of each CA's newest CRL, Unix seconds.",
                &["ca", "issuing"],
            )?)?,
            crl_next_update: exposition::register(&registry, gauges(
                "https_ca_crl_next_update_timestamp_seconds",
                "nextUpdate of each CA's newest CRL, Unix seconds.",
                &["ca", "issuing"],
            )?)?,
            records_up: exposition::register(&registry, IntGauge::new(
                "https_ca_records_up",
                "1 while the last read of the records succeeded, 0 otherwise.",
            )?)?,
            refreshed: exposition::register(&registry, IntGauge::new(
                "https_ca_records_read_timestamp_seconds",
                "When the figures from the records were last read, Unix seconds.",
            )?)?,
            acme,
            registry,
        };
        m.touch();
        Ok(m)
    }

    fn touch(&self) {
        self.acme
            .enrollments
            .with_label_values(&[EST, "issued", "none"])
            .inc_by(0);
        self.acme.issuance.with_label_values(&[EST]);
        for r in ["unknown", "used", "expired", "other_name"] {
            self.token_refusals.with_label_values(&[r]).inc_by(0);
        }
        for role in ["server", "client"] {
            for status in ["valid", "expired", "revoked"] {
                self.certificates.with_label_values(&[role, status]).set(0);
            }
        }
        for w in ["7d", "30d"] {
            self.ending.with_label_values(&[w]).set(0);
        }
    }

    /// The registry, for `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// One EST enrollment's outcome.
    pub fn est(&self, outcome: Result<(), &Refusal>, seconds: f64) {
        self.acme
            .issuance
            .with_label_values(&[EST])
            .observe(seconds);
        let reason = match outcome {
            Ok(()) => "none",
            Err(r) => r.label,
        };
        let result = if outcome.is_ok() { "issued" } else { "refused" };
        self.acme
            .enrollments
            .with_label_values(&[EST, result, reason])
            .inc();
        if let Some(token) = reason.strip_prefix("token_") {
            self.token_refusals.with_label_values(&[token]).inc();
        }
        if reason == "unavailable" {
            self.acme.database_errors.inc();
        }
    }

    /// Reads the records' figures once (blocking: call it off the runtime).
    pub fn refresh(&self, ca: &Ca) {
        let at = x509::time::now();
        let counts = ca.authority.records().with(|db| db.fleet_counts(at));
        let counts = match counts {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %common::error_chain(&e), "metrics: the records are unreachable");
                self.records_up.set(0);
                self.acme.database_errors.inc();
                return;
            }
        };
        self.records_up.set(1);
        self.refreshed.set(at);
        for (role, status, n) in &counts.by_role_status {
            if matches!(role.as_str(), "server" | "client") {
                self.certificates.with_label_values(&[role, status]).set(*n);
            }
        }
        self.ending.with_label_values(&["7d"]).set(counts.ending_7d);
        self.ending
            .with_label_values(&["30d"])
            .set(counts.ending_30d);
        self.overdue.set(counts.overdue);
        for (i, aki) in ca.authority.akis().iter().enumerate() {
            let labels = [short(aki), if i == 0 { "true" } else { "false" }];
            let leaves = counts
                .per_ca
                .iter()
                .find(|(a, _)| a == aki)
                .map_or(0, |(_, n)| *n);
            self.leaves.with_label_values(&labels).set(leaves);
            if let Ok(Some(crl)) = ca.authority.records().latest_crl(aki) {
                self.crl_number.with_label_values(&labels).set(crl.number);
                self.crl_this_update
                    .with_label_values(&labels)
                    .set(crl.this_update);
                self.crl_next_update
                    .with_label_values(&labels)
                    .set(crl.next_update);
            }
        }
    }
}

/// A CA's label: the start of its key identifier (enough to tell the CAs in force apart).
fn short(aki: &str) -> &str {
    &aki[..aki.len().min(16)]
}

/// Reads the records' figures now and every `every` after, on the blocking pool (the records'
/// client may block), for as long as the service's runtime runs.
pub fn spawn_refresher(metrics: CaMetrics, ca: Arc<Ca>, every: Duration) {
    actix_web::rt::spawn(async move {
        loop {
            let (m, c) = (metrics.clone(), ca.clone());
            if let Err(e) = actix_web::web::block(move || m.refresh(&c)).await {
                tracing::error!(error = %e, "metrics: the records' figures were not read");
            }
            tokio::time::sleep(every).await;
        }
    });
}
