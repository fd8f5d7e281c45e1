//! What a TLS context trusts and presents, as plain facts with their dates: the server
//! certificate, each CA of the trust bundle, the CRL. The start-up line, `/healthz`, the daily
//! warning and the expiry gauges read them.

use crate::config::CrlStale;

/// Days before the CRL's nextUpdate the server starts warning.
pub const CRL_WARN_DAYS: i64 = 7;

/// Days before a certificate's notAfter `/healthz` starts naming it.
pub const CERT_WARN_DAYS: i64 = 14;

const DAY: i64 = 86_400;

/// What a context was built from, for the start-up line, logs, `/healthz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject of the server certificate, one-line form.
    pub subject: String,
    /// Serial number (hex).
    pub serial: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Number of revoked serials in the CRL (None without CRL).
    pub revoked: Option<usize>,
    /// Each CA of the trust bundle.
    pub cas: Vec<CaInfo>,
    /// The CRL, when revocation is checked.
    pub crl: Option<CrlInfo>,
}

/// One CA of the trust bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    /// Subject, one-line form.
    pub subject: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

/// The CRL's dates and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlInfo {
    /// thisUpdate (lastUpdate), Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds (a CRL may lack it).
    pub next_update: Option<i64>,
    /// The cRLNumber extension.
    pub number: Option<u64>,
}

/// How current the CRL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// More than [`CRL_WARN_DAYS`] before nextUpdate (or no nextUpdate at all).
    Fresh,
    /// nextUpdate is within [`CRL_WARN_DAYS`]; `secs` left.
    Due {
        /// Seconds until nextUpdate.
        secs: i64,
    },
    /// Past nextUpdate by `secs`.
    Stale {
        /// Seconds since nextUpdate.
        secs: i64,
    },
}

impl CrlInfo {
    /// How current it is at `now`.
    pub fn freshness(&self, now: i64) -> Freshness {
        match self.next_update {
            Some(next) if next <= now => Freshness::Stale { secs: now - next },
            Some(next) if next - now <= CRL_WARN_DAYS * DAY => Freshness::Due { secs: next - now },
            _ => Freshness::Fresh,
        }
    }

    /// One line about it: its next update, and what to do when it is due or past.
    pub fn describe(&self, now: i64, mode: CrlStale) -> String {
        let next = self
            .next_update
            .map_or_else(|| "none".into(), x509::time::date);
        match self.freshness(now) {
            Freshness::Fresh => format!("crl: fresh, next update {next}"),
            Freshness::Due { secs } => format!(
                "crl: due, next update {next} (in {} days): run `pki crl` before then",
                secs.div_euclid(DAY)
            ),
            Freshness::Stale { secs } => format!(
                "crl: STALE since {next} ({} days): {}; run `pki crl`",
                secs.div_euclid(DAY),
                match mode {
                    CrlStale::Refuse => "every client certificate is refused (--crl-stale refuse)",
                    CrlStale::Warn => {
                        "client certificates are checked against the revocations it lists \
                         (--crl-stale warn)"
                    }
                }
            ),
        }
    }
}

impl CertInfo {
    /// What `/healthz` says after `ok`: the CRL, and each certificate within
    /// [`CERT_WARN_DAYS`] of its end (or past it).
    pub fn health(&self, now: i64, mode: CrlStale) -> Vec<String> {
        let mut lines: Vec<String> = self.crl.iter().map(|c| c.describe(now, mode)).collect();
        let soon = |what: &str, not_after: i64| {
            let left = not_after - now;
            (left <= CERT_WARN_DAYS * DAY).then(|| {
                let date = x509::time::date(not_after);
                if left <= 0 {
                    format!("{what}: EXPIRED on {date}")
                } else {
                    format!("{what}: expires {date} (in {} days)", left.div_euclid(DAY))
                }
            })
        };
        lines.extend(soon(
            &format!("server certificate {}", self.subject),
            self.not_after,
        ));
        for ca in &self.cas {
            lines.extend(soon(&format!("CA {}", ca.subject), ca.not_after));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(not_after: i64, next_update: Option<i64>) -> CertInfo {
        CertInfo {
            subject: "/CN=localhost".into(),
            serial: "01".into(),
            not_after,
            revoked: Some(0),
            cas: vec![CaInfo {
                subject: "/CN=ca".into(),
                not_after: 100 * DAY,
            }],
            crl: next_update.map(|n| CrlInfo {
                this_update: 0,
                next_update: Some(n),
                number: Some(1),
            }),
        }
    }

    #[test]
    fn a_crl_is_fresh_then_due_then_stale() {
        let crl = info(0, Some(30 * DAY)).crl.expect("crl");
        assert_eq!(crl.freshness(0), Freshness::Fresh);
        assert_eq!(crl.freshness(25 * DAY), Freshness::Due { secs: 5 * DAY });
        assert_eq!(crl.freshness(31 * DAY), Freshness::Stale { secs: DAY });
        let never = CrlInfo {
            next_update: None,
            ..crl
        };
        assert_eq!(never.freshness(1_000 * DAY), Freshness::Fresh);
    }

    #[test]
    fn health_names_what_ends_within_two_weeks_only() {
        let i = info(40 * DAY, Some(30 * DAY));
        assert_eq!(i.health(0, CrlStale::Refuse).len(), 1, "only the CRL line");
        let late = i.health(95 * DAY, CrlStale::Warn);
        assert!(
            late[0].contains("STALE") && late[0].contains("--crl-stale warn"),
            "{late:?}"
        );
        assert!(
            late[1].contains("server certificate /CN=localhost: EXPIRED"),
            "{late:?}"
        );
        assert!(late[2].contains("CA /CN=ca: expires") && late[2].contains("in 5 days"));
    }
}
