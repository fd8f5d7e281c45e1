//! Two kinds of failure: [`CaError`] stops the service from starting (each names the file or
//! address and what to do); [`Refusal`] answers one request (an HTTP status and a one-line
//! reason), and changes nothing.

use std::net::SocketAddr;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

/// What can stop the CA service from starting.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A PKI file or the records are missing, unreadable or refused (the message names them).
    #[error(transparent)]
    Pki(#[from] pki::Error),

    /// A certificate, key or name of the configuration is unreadable or refused.
    #[error(transparent)]
    X509(#[from] x509::Error),

    /// OpenSSL refused the TLS settings.
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] openssl::error::ErrorStack),

    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The reason (in use, permission...).
        source: std::io::Error,
    },

    /// The lock that lets one replica at a time re-sign the CRL could not be taken or read.
    #[error("the CRL signing lock at {place} failed: {detail}")]
    Lock {
        /// The lock file, or the database server (never with a password).
        place: String,
        /// What went wrong.
        detail: String,
    },

    /// A configuration value that cannot work.
    #[error("{0}")]
    Config(String),
}

/// What a device is told to wait while the records are unreachable: a database restart or a
/// fail-over takes seconds.
pub const RECORDS_RETRY_SECS: u32 = 5;

/// A request refused: the status and the one line that says why (sent as the body, logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why, in one line, with what to do.
    pub reason: String,
    /// Seconds after which a retry may succeed (`Retry-After`), for 503 and 429.
    pub retry_after: Option<u32>,
    /// Why, as a metric label from a closed set (`token_used`, `name_held`, …).
    pub label: &'static str,
}

impl Refusal {
    /// A refusal with `status`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            retry_after: None,
            label: label_of(status),
        }
    }

    /// With a more precise metric label than the status gives.
    pub fn labelled(mut self, label: &'static str) -> Refusal {
        self.label = label;
        self
    }

    /// 503: not now; a retry after `secs` may succeed.
    pub fn unavailable(reason: impl Into<String>, secs: u32) -> Refusal {
        Refusal {
            retry_after: Some(secs),
            ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, reason)
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad(reason: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 401: no usable credentials (answered with a Basic challenge).
    pub fn unauthorized(reason: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::UNAUTHORIZED, reason)
    }

    /// 403: the credentials are known but do not allow this.
    pub fn forbidden(reason: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::FORBIDDEN, reason)
    }

    /// 500: our fault; the detail goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Refusal {
        tracing::error!(%detail, "internal error");
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error of the CA; see its log",
        )
    }

    /// The status and reason for a refusal of the pki library (decided on its typed variants).
    pub fn from_pki(e: impl Into<pki::Error>) -> Refusal {
        use pki::Error as E;
        use pki::TokenRefusal;
        use x509::Error as X;
        match e.into() {
            E::Token(t @ (TokenRefusal::Unknown | TokenRefusal::Used | TokenRefusal::Expired)) => {
                Refusal::unauthorized(format!(
                    "{t}: make a new one with `pki token create --name NAME`"
                ))
                .labelled(token_label(t))
            }
            E::Token(t @ TokenRefusal::OtherName) => {
                Refusal::forbidden(format!("{t}: the request's CN must be the token's name"))
                    .labelled("token_other_name")
            }
            E::NameHeld {
                name,
                serial,
                not_after,
            } => Refusal::new(
                StatusCode::CONFLICT,
                format!(
                    "{name} holds a valid certificate (serial {serial}, until {}): renew it \
                     (`client renew`, EST simplereenroll), or the CA's operator runs \
                     `pki revoke {serial}` before it enrolls again",
                    x509::time::date(not_after)
                ),
            ),
            e @ (E::NameTaken { .. } | E::X509(X::Exists { .. })) => {
                Refusal::new(StatusCode::CONFLICT, common::error_chain(&e))
            }
            e @ E::Busy(_) => Refusal::unavailable(common::error_chain(&e), 1),
            e @ E::KeyStore(_) => {
                // The token (HSM) failed or restarted: the operator reads why; a device retries.
                tracing::error!(error = %common::error_chain(&e), "the CA's signing key is unavailable");
                Refusal::unavailable(
                    format!("the CA cannot reach its signing key right now: retry in {RECORDS_RETRY_SECS} s"),
                    RECORDS_RETRY_SECS,
                )
                .labelled("key_store")
            }
            e @ E::Database { .. } => {
                // The operator reads where and why in the log; the device, when to come back.
                tracing::error!(error = %common::error_chain(&e), "the records are unreachable");
                Refusal::unavailable(
                    format!(
                        "the CA cannot reach its records right now: retry in {RECORDS_RETRY_SECS} s"
                    ),
                    RECORDS_RETRY_SECS,
                )
            }
            e @ (E::Refused(_)
            | E::X509(
                X::Refused(_) | X::BadName { .. } | X::InvalidName { .. } | X::BadDays(_),
            )) => Refusal::bad(common::error_chain(&e)),
            e => Refusal::internal(common::error_chain(&e)),
        }
    }
}

/// The metric label of a status: a refusal's kind when nothing more precise is known.
fn label_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 411 | 415 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        408 => "timeout",
        409 => "name_held",
        413 => "too_large",
        429 => "rate_limited",
        503 => "unavailable",
        404 | 405 => "not_found",
        _ => "internal",
    }
}

fn token_label(t: pki::TokenRefusal) -> &'static str {
    match t {
        pki::TokenRefusal::Used => "token_used",
        pki::TokenRefusal::Expired => "token_expired",
        pki::TokenRefusal::OtherName => "token_other_name",
        _ => "token_unknown",
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.reason)
    }
}

/// The answer to a refused request, logged.
pub fn refuse(req: &HttpRequest, r: Refusal) -> HttpResponse {
    tracing::warn!(
        peer = %req.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
        request = %format!("{} {}", req.method(), req.path()),
        status = r.status.as_u16(),
        reason = %r.reason,
        "refused"
    );
    let mut res = HttpResponse::build(r.status);
    if r.status == StatusCode::UNAUTHORIZED {
        res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"EST\""));
    }
    let retry = r
        .retry_after
        .or((r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
    if let Some(secs) = retry {
        res.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    let unread_body = matches!(
        r.status,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT | StatusCode::LENGTH_REQUIRED
    );
    if unread_body && req.version() < actix_web::http::Version::HTTP_2 {
        // The rest of the body is not read: this HTTP/1 connection cannot carry another
        // request (HTTP/2 resets the one stream instead, and forbids the header).
        res.force_close();
    }
    res.content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", r.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_that_fails_is_a_503_to_retry_not_a_500() {
        let lost = pki::Error::KeyStore(pki::KeyStoreError::Module {
            path: "/usr/lib/softhsm/libsofthsm2.so".into(),
            detail: "the session was lost".into(),
        });
        let r = Refusal::from_pki(lost);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            (r.retry_after, r.label),
            (Some(RECORDS_RETRY_SECS), "key_store")
        );
        assert!(
            !r.reason.contains("softhsm"),
            "no module path to the device: {}",
            r.reason
        );
    }

    #[test]
    fn a_token_refusal_is_labelled_by_its_reason() {
        let r = Refusal::from_pki(pki::Error::Token(pki::TokenRefusal::Used));
        assert_eq!(
            (r.status, r.label),
            (StatusCode::UNAUTHORIZED, "token_used")
        );
        assert_eq!(Refusal::bad("x").label, "bad_request");
    }
}
