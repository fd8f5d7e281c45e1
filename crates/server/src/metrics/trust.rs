//! The figures of the trust path: the served certificate, the CA bundle, the CRL in use and
//! the reloads, registered once.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::register;

/// The figures of what the server trusts and serves: its certificate, the CA bundle, the CRL,
/// and the reloads that change them.
#[derive(Debug)]
pub(super) struct TrustFigures {
    pub(super) server_not_after: IntGauge,
    pub(super) ca_not_after: IntGaugeVec,
    pub(super) crl_this_update: IntGaugeVec,
    pub(super) crl_next_update: IntGaugeVec,
    pub(super) crl_number: IntGaugeVec,
    pub(super) reload_time: IntGauge,
    pub(super) reload_ok: IntGauge,
    pub(super) reloads: IntCounterVec,
}

impl TrustFigures {
    pub(super) fn register(r: &Registry) -> Result<TrustFigures, prometheus::Error> {
        let figures = TrustFigures {
            server_not_after: gauge(
                r,
                "https_server_certificate_not_after_timestamp_seconds",
                "notAfter of the server certificate being served.",
            )?,
            ca_not_after: gauge_vec(
                r,
                "https_trust_ca_not_after_timestamp_seconds",
                "notAfter of each CA of the client-certificate trust bundle.",
                &["subject"],
            )?,
            // Label-less vectors: absent, rather than 0, while no CRL is in use.
            crl_this_update: gauge_vec(
                r,
                "https_crl_this_update_timestamp_seconds",
                "thisUpdate of the CRL in use.",
                &[],
            )?,
            crl_next_update: gauge_vec(
                r,
                "https_crl_next_update_timestamp_seconds",
                "nextUpdate of the CRL in use.",
                &[],
            )?,
            crl_number: gauge_vec(r, "https_crl_number", "cRLNumber of the CRL in use.", &[])?,
            reload_time: gauge(
                r,
                "https_tls_last_reload_timestamp_seconds",
                "When the TLS files were last (re)loaded, or a reload was last tried.",
            )?,
            reload_ok: gauge(
                r,
                "https_tls_last_reload_successful",
                "1 when the last reload of the TLS files succeeded, 0 when it failed.",
            )?,
            reloads: counter(
                r,
                "https_tls_reloads_total",
                "Reloads of the TLS files by result.",
                &["result"],
            )?,
        };
        // Both results exist from the first scrape, at 0: an alert on a rate needs a series.
        for result in ["success", "failure"] {
            figures.reloads.with_label_values(&[result]);
        }
        Ok(figures)
    }
}

pub(super) fn counter(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    register(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

pub(super) fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    register(r, IntGauge::new(name, help)?)
}

pub(super) fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    register(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}
