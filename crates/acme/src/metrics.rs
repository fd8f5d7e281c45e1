//! What the ACME service counts, as handles into the registry of the service that mounts it
//! (the `ca` registers them, beside EST's, under one name per figure). The default handles
//! are registered nowhere: counting into them costs little and shows nowhere.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// The figures the ACME service moves.
#[derive(Clone)]
pub struct Metrics {
    /// `https_ca_enrollments_total{protocol, result, reason}`: finalizations, issued or refused.
    pub enrollments: IntCounterVec,
    /// `https_ca_issuance_duration_seconds{protocol}`: signing and recording one certificate.
    pub issuance: HistogramVec,
    /// `https_ca_database_errors_total`: a records operation that failed.
    pub database_errors: IntCounter,
    /// `https_ca_acme_orders_total{result}`: new orders, created or refused.
    pub orders: IntCounterVec,
    /// `https_ca_acme_validations_total{challenge, result}`: validations, valid or invalid.
    pub validations: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The protocol label of ACME's figures.
pub const PROTOCOL: &str = "acme";

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new().unwrap_or_else(|_| unreachable!("the names are valid"))
    }
}

impl Metrics {
    /// Fresh handles, registered nowhere (the caller registers them).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        Ok(Metrics {
            enrollments: IntCounterVec::new(
                Opts::new(
                    "https_ca_enrollments_total",
                    "Enrollments (EST simpleenroll/simplereenroll, ACME finalize) by protocol, result and reason.",
                ),
                &["protocol", "result", "reason"],
            )?,
            issuance: HistogramVec::new(
                HistogramOpts::new(
                    "https_ca_issuance_duration_seconds",
                    "Time to sign and record one certificate, by protocol.",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
                &["protocol"],
            )?,
            database_errors: IntCounter::new(
                "https_ca_database_errors_total",
                "Records operations that failed (database unreachable or busy).",
            )?,
            orders: IntCounterVec::new(
                Opts::new("https_ca_acme_orders_total", "ACME new orders by result."),
                &["result"],
            )?,
            validations: IntCounterVec::new(
                Opts::new(
                    "https_ca_acme_validations_total",
                    "ACME challenge validations by challenge type and result.",
                ),
                &["challenge", "result"],
            )?,
        })
    }

    /// Every ACME series of a closed label set at 0, so a rate or an alert has one from the
    /// first scrape.
    pub fn touch(&self) {
        self.enrollments
            .with_label_values(&[PROTOCOL, "issued", "none"])
            .inc_by(0);
        self.issuance.with_label_values(&[PROTOCOL]);
        for r in ["created", "refused"] {
            self.orders.with_label_values(&[r]).inc_by(0);
        }
        for c in [
            crate::model::HTTP_01,
            crate::model::TLS_ALPN_01,
            crate::model::DNS_01,
        ] {
            for r in ["valid", "invalid"] {
                self.validations.with_label_values(&[c, r]).inc_by(0);
            }
        }
    }

    /// A refusal: counted as a database error when the records failed.
    pub(crate) fn problem(&self, p: &crate::Problem) {
        if p.kind == crate::Kind::Unavailable {
            self.database_errors.inc();
        }
    }
}
