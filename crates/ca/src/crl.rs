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
    Ok(ca.authority.crl_if_due(refresh.before)?)
}

/// Re-checks every `refresh.every` (jittered, so replicas started together drift apart).
pub fn spawn_refresher(ca: Arc<Ca>, refresh: Refresh, lock_timeout: Duration) {
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(x509::time::jittered(refresh.every)).await;
            let (ca2, r2) = (ca.clone(), refresh.clone());
            // The records' client may block (PostgreSQL): off the runtime's thread.
            let checked = web::block(move || {
                let signed = refresh_once(&ca2, &r2, lock_timeout)?;
                if signed {
                    log_signed(&ca2, "it was due");
                }
                Ok::<_, CaError>(())
            });
            match checked.await {
                Ok(Ok(())) => {}
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
    if let Ok(Some(c)) = ca.authority.records().latest_crl(ca.authority.aki()) {
        tracing::info!(
            number = c.number,
            next_update = %x509::time::date(c.next_update),
            why,
            "signed a new CRL"
        );
    }
}

/// `GET /crl` and `GET /crl.pem`.
pub async fn serve(req: HttpRequest, ca: web::Data<Ca>) -> HttpResponse {
    let ca2 = ca.clone();
    let latest =
        match web::block(move || ca2.authority.records().latest_crl(ca2.authority.aki())).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => {
                return crate::error::refuse(
                    &req,
                    Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no CRL has been signed yet: retry in a moment",
                    ),
                )
            }
            Ok(Err(e)) => return crate::error::refuse(&req, Refusal::from_pki(e)),
            Err(e) => return crate::error::refuse(&req, Refusal::internal(e)),
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
            Err(e) => return crate::error::refuse(req, Refusal::internal(e)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use pki::DbUrl;

    /// Two replicas find the CRL due at the same instant: one signs, the other sees its CRL.
    fn race(config: &crate::Config) {
        let replicas = [
            crate::service::load(config).expect("replica a").0,
            crate::service::load(config).expect("replica b").0,
        ];
        // A CRL is due 2 s after it was signed.
        let refresh = Refresh {
            before: Duration::from_secs(u64::from(pki::folder::CRL_DAYS) * 86_400 - 2),
            every: Duration::from_secs(60),
        };
        let next = || {
            let authority = &replicas[0].authority;
            authority
                .records()
                .with(|db| db.next_crl_number(authority.aki()))
                .expect("next")
        };
        for round in 0..2 {
            std::thread::sleep(Duration::from_millis(2100));
            let before = next();
            let barrier = std::sync::Barrier::new(2);
            let signed: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = replicas
                    .iter()
                    .map(|ca| {
                        let (b, r) = (&barrier, &refresh);
                        s.spawn(move || {
                            b.wait();
                            refresh_once(ca, r, Duration::from_secs(10)).expect("refresh")
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("join"))
                    .collect()
            });
            assert_eq!(
                signed.iter().filter(|s| **s).count(),
                1,
                "round {round}: {signed:?}"
            );
            assert_eq!(next(), before + 1, "round {round}: one CRL number used");
        }
    }

    #[test]
    fn replicas_that_check_at_once_on_sqlite_sign_one_crl() {
        let pki = testkit::TestPki::new();
        race(&crate::Config::for_pki(pki.dir()));
    }

    /// The same with the PostgreSQL advisory lock.
    #[test]
    fn replicas_that_check_at_once_on_postgresql_sign_one_crl() {
        let Some(pg) = testkit::postgres::PgDatabase::create("the CRL lock") else {
            return;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let db = DbUrl::Postgres(pg.url().to_owned());
        pki::Folder::new(common::Layout::new(tmp.path()))
            .with_db(db.clone())
            .init(&pki::InitOptions::default())
            .expect("init");
        let mut config = crate::Config::for_pki(tmp.path());
        config.db = db;
        race(&config);
    }
}
