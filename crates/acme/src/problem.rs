//! Problem documents (RFC 8555 §6.7, RFC 7807): every refusal is one of these, with the
//! status the RFC gives its type and a one-line detail that says what to do.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

/// The ACME error types this server sends (`urn:ietf:params:acme:error:…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The request is malformed.
    Malformed,
    /// The request's content type is not `application/jose+json`.
    UnsupportedMediaType,
    /// The nonce is unknown, used or too old: the client takes the fresh one and retries.
    BadNonce,
    /// The JWS algorithm is not one this server accepts.
    BadSignatureAlgorithm,
    /// The account key is refused (too weak, unknown type).
    BadPublicKey,
    /// The client is not allowed to do this.
    Unauthorized,
    /// No account has this key (`onlyReturnExisting`).
    AccountDoesNotExist,
    /// Accounts must be bound to an external account (EAB).
    ExternalAccountRequired,
    /// The server will not issue for this name.
    RejectedIdentifier,
    /// The identifier type is not supported.
    UnsupportedIdentifier,
    /// The order is not ready to be finalized.
    OrderNotReady,
    /// The CSR is unacceptable.
    BadCsr,
    /// The revocation reason is not allowed.
    BadRevocationReason,
    /// The certificate was revoked already.
    AlreadyRevoked,
    /// The certificate named by `replaces` was replaced already (RFC 9773).
    AlreadyReplaced,
    /// The profile is not offered or not allowed (draft-ietf-acme-profiles).
    InvalidProfile,
    /// Too many requests: wait `Retry-After`.
    RateLimited,
    /// Validation: the server could not connect to the client.
    Connection,
    /// Validation: the DNS look-up failed.
    Dns,
    /// Validation: the TLS handshake failed.
    Tls,
    /// Validation: the response did not match.
    IncorrectResponse,
    /// The resource does not exist.
    NotFound,
    /// The method is not allowed on the resource.
    MethodNotAllowed,
    /// The server's records are unreachable for now: retry after `Retry-After`.
    Unavailable,
    /// Something failed inside the server.
    ServerInternal,
}

impl Kind {
    /// The type's URN.
    pub fn urn(self) -> &'static str {
        match self {
            Kind::Malformed
            | Kind::UnsupportedMediaType
            | Kind::NotFound
            | Kind::MethodNotAllowed => "urn:ietf:params:acme:error:malformed",
            Kind::BadNonce => "urn:ietf:params:acme:error:badNonce",
            Kind::BadSignatureAlgorithm => "urn:ietf:params:acme:error:badSignatureAlgorithm",
            Kind::BadPublicKey => "urn:ietf:params:acme:error:badPublicKey",
            Kind::Unauthorized => "urn:ietf:params:acme:error:unauthorized",
            Kind::AccountDoesNotExist => "urn:ietf:params:acme:error:accountDoesNotExist",
            Kind::ExternalAccountRequired => "urn:ietf:params:acme:error:externalAccountRequired",
            Kind::RejectedIdentifier => "urn:ietf:params:acme:error:rejectedIdentifier",
            Kind::UnsupportedIdentifier => "urn:ietf:params:acme:error:unsupportedIdentifier",
            Kind::OrderNotReady => "urn:ietf:params:acme:error:orderNotReady",
            Kind::BadCsr => "urn:ietf:params:acme:error:badCSR",
            Kind::BadRevocationReason => "urn:ietf:params:acme:error:badRevocationReason",
            Kind::AlreadyRevoked => "urn:ietf:params:acme:error:alreadyRevoked",
            Kind::AlreadyReplaced => "urn:ietf:params:acme:error:alreadyReplaced",
            Kind::InvalidProfile => "urn:ietf:params:acme:error:invalidProfile",
            Kind::RateLimited => "urn:ietf:params:acme:error:rateLimited",
            Kind::Connection => "urn:ietf:params:acme:error:connection",
            Kind::Dns => "urn:ietf:params:acme:error:dns",
            Kind::Tls => "urn:ietf:params:acme:error:tls",
            Kind::IncorrectResponse => "urn:ietf:params:acme:error:incorrectResponse",
            Kind::Unavailable | Kind::ServerInternal => "urn:ietf:params:acme:error:serverInternal",
        }
    }

    /// The HTTP status that goes with it.
    pub fn status(self) -> StatusCode {
        match self {
            Kind::Unauthorized | Kind::OrderNotReady => StatusCode::FORBIDDEN,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A short label for logs and metrics (`badNonce`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::UnsupportedMediaType => "unsupportedMediaType",
            Kind::NotFound => "notFound",
            Kind::MethodNotAllowed => "methodNotAllowed",
            Kind::Unavailable => "unavailable",
            other => other.urn().rsplit(':').next().unwrap_or("malformed"),
        }
    }
}

/// One refusal: its type, a one-line detail, and when to retry (429, 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {detail}", kind.label(), kind.status().as_u16())]
pub struct Problem {
    /// Its type.
    pub kind: Kind,
    /// What went wrong and what to do, in one line.
    pub detail: String,
    /// Seconds after which the request may succeed.
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `kind`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Problem {
        // One line: a client prints it as is.
        let detail = detail.into().replace('\n', " ");
        let retry_after = match kind {
            Kind::Unavailable => Some(5),
            Kind::RateLimited => Some(60),
            _ => None,
        };
        Problem {
            kind,
            detail,
            retry_after,
        }
    }

    /// `malformed`.
    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Malformed, detail)
    }

    /// `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(Kind::Unauthorized, detail)
    }

    /// The document, as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind.urn(),
            "detail": self.detail,
            "status": self.kind.status().as_u16(),
        })
    }

    /// A failure of the records or of signing, as the client should see it: the database
    /// unreachable or busy is 503 with `Retry-After` (nothing was changed); a refusal by the
    /// profile rules is the request's fault.
    pub fn from_pki(e: pki::Error) -> Problem {
        match e {
            pki::Error::Database { .. } | pki::Error::Busy(_) => Problem::new(
                Kind::Unavailable,
                format!("the CA's records are unreachable ({e}); nothing was changed: retry"),
            ),
            pki::Error::KeyStore(_) => {
                tracing::error!(error = %e, "ACME: the CA's signing key is unavailable");
                Problem::new(
                    Kind::Unavailable,
                    "the CA cannot reach its signing key right now; nothing was issued: retry",
                )
            }
            pki::Error::Refused(why) => Problem::new(Kind::RejectedIdentifier, why),
            pki::Error::X509(x509::Error::Refused(why)) => Problem::new(Kind::BadCsr, why),
            pki::Error::Eab(why) => Problem::unauthorized(why.to_string()),
            other => {
                tracing::error!(error = %other, "ACME: the CA failed");
                Problem::new(Kind::ServerInternal, "the CA failed; see its log")
            }
        }
    }
}

impl From<pki::Error> for Problem {
    fn from(e: pki::Error) -> Problem {
        Problem::from_pki(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_the_rfcs_status_and_type() {
        let p = Problem::new(Kind::BadNonce, "old\nnonce");
        assert_eq!(p.to_json()["type"], "urn:ietf:params:acme:error:badNonce");
        assert_eq!(p.to_json()["status"], 400);
        assert_eq!(p.detail, "old nonce");
        assert_eq!(Kind::OrderNotReady.status(), StatusCode::FORBIDDEN);
        assert_eq!(Kind::RateLimited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Problem::new(Kind::RateLimited, "x").retry_after, Some(60));
        assert_eq!(Kind::BadCsr.label(), "badCSR");
    }

    #[test]
    fn an_unreachable_database_is_503_and_changes_nothing() {
        let p = Problem::from_pki(pki::Error::Busy("ca.db".into()));
        assert_eq!(p.kind.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(p.retry_after, Some(5));
    }
}
