//! The CRL as a service. `GET /crl` serves the newest CRL on record (DER, or PEM from
//! `/crl.pem` or to `Accept: application/x-pem-file`) with `ETag` and `Last-Modified`, so a
//! poller's conditional GET costs a 304. A revocation (`pki revoke`) signs a CRL in its own
//! transaction, so it is served from the next request on; and each replica re-signs the CRL
//! before it is due, without cron, under a lock that lets one replica sign each time
//! ([`crate::lock`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, EntityTag, HttpDate};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use openssl::x509::X509Crl;
use pki::store::CrlRecord;

use crate::enroll::Ca;
use crate::error::{CaError, Refusal};
use crate::lock;

/// When and how the CRL is re-signed.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// Re-sign when nextUpdate is closer than this.
    pub before: Duration,
    /// Check this often (± 10 %).
    pub every: Duration,
}

/// Signs a CRL if the one on record is due (or there is none), holding the replicas' lock;
/// a replica that finds the lock taken leaves it to the holder. Returns whether it signed.
pub fn refresh_once(ca: &Ca, refresh: &Refresh, lock_timeout: Duration) -> Result<bool, CaError> {
    let Some(_lease) = lock::try_acquire(ca, lock_timeout)? else {
        return Ok(false);
    };
    // Read under the lock: a CRL another replica signed a moment ago counts.
    Ok(ca.folder.crl_if_due(&ca.authority, refresh.before)?)
}

/// Re-checks every `refresh.every` (jittered, so replicas started together drift apart).
pub fn spawn_refresher(ca: Arc<Ca>, refresh: Refresh, lock_timeout: Duration) {
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(jittered(refresh.every)).await;
            let (ca2, r2) = (ca.clone(), refresh.clone());
            match web::block(move || refresh_once(&ca2, &r2, lock_timeout)).await {
                Ok(Ok(true)) => log_signed(&ca, "it was due"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(
                    error = %common::error_chain(&e),
                    "cannot re-sign the CRL; the one on record is still served, retrying"
                ),
                Err(e) => tracing::error!(error = %e, "the CRL check did not run"),
            }
        }
    });
}

/// Logs the newest CRL's number and dates.
pub fn log_signed(ca: &Ca, why: &str) {
    if let Ok(Some(c)) = ca.records.latest_crl(&ca.aki) {
        tracing::info!(
            number = c.number,
            next_update = %pki::inspect::date(c.next_update),
            why,
            "signed a new CRL"
        );
    }
}

/// `d` ± 10 %.
fn jittered(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = openssl::rand::rand_bytes(&mut b).map_or(0.5, |()| {
        f64::from(u16::from_be_bytes(b)) / f64::from(u16::MAX)
    });
    d.mul_f64(0.9 + 0.2 * r)
}

/// `GET /crl` and `GET /crl.pem`.
pub async fn serve(req: HttpRequest, ca: web::Data<Ca>) -> HttpResponse {
    let ca2 = ca.clone();
    let latest = match web::block(move || ca2.records.latest_crl(&ca2.aki)).await {
        Ok(Ok(Some(c))) => c,
        Ok(Ok(None)) => {
            return crate::http::refuse(
                &req,
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no CRL has been signed yet: retry in a moment",
                ),
            )
        }
        Ok(Err(e)) => return crate::http::refuse(&req, Refusal::from_pki(e)),
        Err(e) => return crate::http::refuse(&req, Refusal::internal(e)),
    };
    let pem = req.path().ends_with(".pem") || wants_pem(&req);
    respond(&req, &latest, pem)
}

fn wants_pem(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-pem-file"))
}

fn respond(req: &HttpRequest, crl: &CrlRecord, pem: bool) -> HttpResponse {
    let form = if pem { "pem" } else { "der" };
    let tag = EntityTag::new_strong(format!(
        "{}-{}-{form}",
        &crl.aki[..8.min(crl.aki.len())],
        crl.number
    ));
    let modified = HttpDate::from(UNIX_EPOCH + Duration::from_secs(crl.this_update.max(0) as u64));
    if not_modified(req, &tag, crl.this_update) {
        return HttpResponse::NotModified()
            .insert_header(header::ETag(tag))
            .insert_header(header::LastModified(modified))
            .finish();
    }
    let (body, kind) = if pem {
        match X509Crl::from_der(&crl.der).and_then(|c| c.to_pem()) {
            Ok(p) => (p, "application/x-pem-file"),
            Err(e) => return crate::http::refuse(req, Refusal::internal(e)),
        }
    } else {
        (crl.der.clone(), "application/pkix-crl")
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(header::ETag(tag))
        .insert_header(header::LastModified(modified))
        // Caches must ask again: a revocation must reach every verifier at its next poll.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "accept"))
        .body(body)
}

/// RFC 9110 §13.1: `If-None-Match` decides when present, else `If-Modified-Since`.
fn not_modified(req: &HttpRequest, tag: &EntityTag, this_update: i64) -> bool {
    let headers = req.headers();
    if let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return v
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == tag.to_string());
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<HttpDate>().ok())
        .map(SystemTime::from)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|since| i64::try_from(since.as_secs()).is_ok_and(|s| s >= this_update))
}
