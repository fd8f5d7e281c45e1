//! Time as certificates and CRLs carry it: Unix seconds, read from ASN.1 and written for people.

use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};

use crate::error::{CryptoContext, Result};

/// How far notBefore is set in the past, so a peer whose clock runs a little behind still
/// accepts a certificate made a moment ago.
pub const CLOCK_SKEW_SECS: i64 = 5 * 60;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An ASN.1 time as Unix seconds.
pub fn unix_time(t: &Asn1TimeRef) -> Result<i64> {
    let epoch = Asn1Time::from_unix(0).step("asn1 time")?;
    let d = epoch.diff(t).step("asn1 time")?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Unix seconds as `2026-12-06 01:38:37 UTC`, for people.
pub fn date(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// A random fraction in [0, 1] from OpenSSL's generator (0.5 if it fails): spreads polls
/// and renewals of replicas or devices that started together.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 2];
    openssl::rand::rand_bytes(&mut b).map_or(0.5, |()| {
        f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX)
    })
}

/// `d` ± 10 %, at random.
pub fn jittered(d: std::time::Duration) -> std::time::Duration {
    d.mul_f64(0.9 + 0.2 * random_unit())
}
