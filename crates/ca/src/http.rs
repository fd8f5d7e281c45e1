//! The routes: EST under `/.well-known/est/` (RFC 7030 §3.2.2), the CRL, and a health check.
//! Every refusal is one line of text with its status, logged with the client's address.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use openssl::x509::X509;

use crate::enroll::{Ca, Peer};
use crate::error::{refuse, Refusal};
use crate::guard::TokenGuard;
use crate::metrics::CaMetrics;
use crate::wire;

/// Limits on request bodies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body accepted.
    pub max_body: usize,
    /// Time to receive it.
    pub body_timeout: Duration,
}

/// The EST answer for `cacerts`, made once at start-up.
#[derive(Debug, Clone)]
pub struct CaCerts(pub Arc<String>);

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/.well-known/est/cacerts").get(cacerts))
        .service(web::resource("/.well-known/est/simpleenroll").post(simpleenroll))
        .service(web::resource("/.well-known/est/simplereenroll").post(simplereenroll))
        .service(web::resource("/.well-known/est/csrattrs").get(csrattrs))
        .service(web::resource("/revoke-superseded").post(revoke_superseded))
        .service(web::resource("/crl").get(crate::crl::serve))
        .service(web::resource("/crl.pem").get(crate::crl::serve))
        .service(web::resource("/healthz").get(healthz))
        .service(web::resource("/fleet").get(crate::fleet::page))
        .service(web::resource("/fleet.json").get(crate::fleet::json))
        .service(web::resource("/metrics").get(crate::fleet::metrics))
        .default_service(web::to(not_found));
}

/// `GET cacerts` (RFC 7030 §4.1): the CA chain, certs-only, base64.
async fn cacerts(body: web::Data<CaCerts>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(wire::PKCS7)
        .insert_header(("Content-Transfer-Encoding", "base64"))
        .body(body.0.as_str().to_owned())
}

/// `GET csrattrs` (RFC 7030 §4.5): nothing asked beyond what the profile decides.
async fn csrattrs() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// `ok` while the records answer; 503 and why (with `Retry-After`) while they do not, so a
/// load balancer sends devices to a replica that can enroll them.
async fn healthz(ca: web::Data<Ca>) -> HttpResponse {
    let checked = web::block(move || ca.authority.records().with(|db| db.generation())).await;
    match checked {
        Ok(Ok(_)) => HttpResponse::Ok()
            .content_type("text/plain")
            .body("ok\nrecords: reachable\n"),
        Ok(Err(e)) => {
            let r = Refusal::from_pki(e);
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, r.retry_after.unwrap_or(1).to_string()))
                .content_type("text/plain")
                .body(format!("records: unreachable: {}\n", r.reason))
        }
        Err(e) => HttpResponse::InternalServerError().body(format!("{e}\n")),
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    refuse(
        &req,
        Refusal::new(
            StatusCode::NOT_FOUND,
            "no such route: EST is under /.well-known/est/ (cacerts, simpleenroll, \
             simplereenroll, csrattrs), the CRL at /crl, a renewed device's predecessor \
             revoked at POST /revoke-superseded",
        ),
    )
}

/// `POST simpleenroll` (RFC 7030 §4.2.1).
async fn simpleenroll(
    req: HttpRequest,
    body: web::Payload,
    ca: web::Data<Ca>,
    limits: web::Data<Limits>,
    guard: web::Data<TokenGuard>,
) -> HttpResponse {
    let auth = match wire::basic(req.headers()) {
        Ok(a) => a,
        Err(r) => return refuse(&req, r),
    };
    let ip = req.peer_addr().map(|a| a.ip());
    let with_token = auth.is_some();
    if let (true, Some(ip)) = (with_token, ip) {
        if let Err(r) = guard.check(ip) {
            return refuse(&req, r);
        }
    }
    let res = est_post(req, body, ca, limits, move |ca, peer, der| {
        ca.enroll(auth, peer, der)
    })
    .await;
    // A token that is unknown, used, expired or another name's: one more wrong one.
    let wrong = matches!(
        res.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    );
    if let (true, true, Some(ip)) = (with_token, wrong, ip) {
        guard.wrong(ip);
    }
    res
}

/// `POST simplereenroll` (RFC 7030 §4.2.2).
async fn simplereenroll(
    req: HttpRequest,
    body: web::Payload,
    ca: web::Data<Ca>,
    limits: web::Data<Limits>,
) -> HttpResponse {
    est_post(req, body, ca, limits, |ca, peer, der| {
        ca.reenroll(peer, der)
    })
    .await
}

/// `POST /revoke-superseded` (ours, not EST's: RFC 7030 has no revocation): the presented
/// certificate's predecessor revoked as superseded. The body is not read: the certificate is
/// the whole request.
async fn revoke_superseded(req: HttpRequest, ca: web::Data<Ca>) -> HttpResponse {
    let peer = req.conn_data::<Peer>().cloned();
    let outcome = web::block(move || ca.revoke_superseded(peer))
        .await
        .unwrap_or_else(|e| Err(Refusal::internal(e)));
    match outcome {
        Ok(ended) => HttpResponse::Ok().content_type("text/plain").body(format!(
            "{} {}\n",
            if ended.now {
                "revoked"
            } else {
                "already revoked"
            },
            ended.serial
        )),
        Err(r) => refuse(&req, r),
    }
}

/// An EST POST: the request read, `decide` run off the event loop (it signs and writes the
/// records), the answer made.
async fn est_post(
    req: HttpRequest,
    body: web::Payload,
    ca: web::Data<Ca>,
    limits: web::Data<Limits>,
    decide: impl FnOnce(&Ca, Option<Peer>, &[u8]) -> Result<X509, Refusal> + Send + 'static,
) -> HttpResponse {
    let peer = req.conn_data::<Peer>().cloned();
    let started = std::time::Instant::now();
    let outcome = match read_request(&req, body, &limits).await {
        Ok(der) => web::block(move || decide(&ca, peer, &der))
            .await
            .unwrap_or_else(|e| Err(Refusal::internal(e))),
        Err(r) => Err(r),
    };
    if let Some(m) = req.app_data::<web::Data<CaMetrics>>() {
        m.est(
            outcome.as_ref().map(|_| ()),
            started.elapsed().as_secs_f64(),
        );
    }
    answer(&req, outcome)
}

/// The issued certificate as certs-only PKCS#7 in base64 (RFC 7030 §4.2.3), or the refusal.
fn answer(req: &HttpRequest, outcome: Result<X509, Refusal>) -> HttpResponse {
    let cert = match outcome {
        Ok(c) => c,
        Err(r) => return refuse(req, r),
    };
    match wire::certs_only(&[&cert]) {
        Ok(der) => HttpResponse::Ok()
            .content_type(wire::PKCS7_CERTS_ONLY)
            .insert_header(("Content-Transfer-Encoding", "base64"))
            .body(wire::encode_base64(&der)),
        Err(e) => refuse(req, Refusal::internal(e)),
    }
}

/// The DER request of an EST POST: the content type checked, the body read within the
/// limits, its base64 decoded.
async fn read_request(
    req: &HttpRequest,
    body: web::Payload,
    limits: &Limits,
) -> Result<Vec<u8>, Refusal> {
    let kind = req.mime_type().ok().flatten();
    let is_pkcs10 = kind
        .as_ref()
        .is_some_and(|m| m.essence_str() == wire::PKCS10);
    let raw = read_body(req, body, limits).await?;
    if !is_pkcs10 {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body must be Content-Type: {} (base64 DER), not {}",
                wire::PKCS10,
                kind.map_or("none".into(), |m| m.to_string())
            ),
        ));
    }
    wire::decode_base64(&raw)
}

/// A body larger than the limit is still read, and dropped, up to this much: a client that
/// is still sending when the refusal comes would miss it (HTTP/2 resets the stream, HTTP/1
/// the connection).
const DRAIN_MAX: usize = 4 << 20;

/// Reads at most `limits.max_body` bytes within `limits.body_timeout`.
async fn read_body(
    req: &HttpRequest,
    mut body: web::Payload,
    limits: &Limits,
) -> Result<Bytes, Refusal> {
    let too_large = Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is larger than {} bytes: a PKCS#10 request is a few KiB",
            limits.max_body
        ),
    );
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let read = async {
        let mut buf = BytesMut::new();
        let mut seen = 0usize;
        while let Some(chunk) = body.next().await {
            // The framework's own words stay in the log; the client hears ours.
            let chunk = chunk.map_err(|e| {
                tracing::debug!(error = %e, "body not read");
                Refusal::bad("the body could not be read: it was cut off or malformed")
            })?;
            seen += chunk.len();
            if seen > DRAIN_MAX {
                break;
            }
            if seen <= limits.max_body {
                buf.extend_from_slice(&chunk);
            }
        }
        if seen > limits.max_body {
            return Err(too_large.clone());
        }
        Ok(buf.freeze())
    };
    // A Content-Length over the limit is refused before any of the body is read.
    if declared.is_some_and(|n| n > limits.max_body) {
        return Err(too_large.clone());
    }
    // A chunked HTTP/1.1 body could announce any size and then hold the connection: the
    // framework decodes chunks without showing their declared sizes, so a body must say its
    // length up front (RFC 9110 §15.5.12). Every EST client we know of sends one.
    let chunked = req
        .headers()
        .get(header::TRANSFER_ENCODING)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked && req.version() < actix_web::http::Version::HTTP_2 {
        return Err(Refusal::new(
            StatusCode::LENGTH_REQUIRED,
            "the body must come with a Content-Length, not chunked (curl --data-binary sends one)",
        ));
    }
    tokio::time::timeout(limits.body_timeout, read)
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    limits.body_timeout.as_secs_f32()
                ),
            )
        })?
}
