//! What a probe learns, as typed facts: where it connected, the certificates it saw, and what
//! ended a failed handshake ([`Cause`], read from OpenSSL's error codes, never from its
//! English). The words come later, in `classify`.

use std::io::ErrorKind;

use openssl::ssl::{ErrorCode, SslAlert};
use openssl::x509::{X509Ref, X509VerifyResult};
use serde::Serialize;
use x509::verify::Problem;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::wire;

/// `ERR_LIB_SSL` (<openssl/err.h>): the library number of the SSL routines' errors.
const ERR_LIB_SSL: i32 = 20;

/// The `SSL_R_*` reasons (<openssl/sslerr.h>) the client tells apart; openssl-sys names none.
mod reason {
    pub const NO_CIPHERS_AVAILABLE: i32 = 181;
    pub const NO_PROTOCOLS_AVAILABLE: i32 = 191;
    pub const NO_SHARED_CIPHER: i32 = 193;
    pub const PACKET_LENGTH_TOO_LONG: i32 = 198;
    pub const UNSUPPORTED_PROTOCOL: i32 = 258;
    pub const WRONG_VERSION_NUMBER: i32 = 267;
    pub const UNEXPECTED_EOF_WHILE_READING: i32 = 294;
    pub const VERSION_TOO_LOW: i32 = 396;
}

/// Where to connect, and which name the certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host (name or IP) to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Name sent as SNI and verified against the certificate.
    pub name: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A certificate, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct CertSummary {
    /// Subject (one-line form).
    pub subject: String,
    /// Issuer (one-line form).
    pub issuer: String,
    /// subjectAltName entries.
    pub names: Vec<String>,
    /// notBefore (UTC date and time).
    pub not_before: String,
    /// notAfter (UTC date and time).
    pub not_after: String,
    /// Whole days until notAfter.
    pub days_left: i64,
    /// Key type.
    pub key: String,
}

impl CertSummary {
    /// Summarises one certificate.
    pub fn of(cert: &X509Ref) -> CertSummary {
        let der = cert.to_der().unwrap_or_default();
        let names = X509Certificate::from_der(&der)
            .map(|(_, c)| x509::inspect::names(&c))
            .unwrap_or_default();
        let (nb, na) = dates(cert);
        CertSummary {
            subject: x509::cert::one_line(cert.subject_name()),
            issuer: x509::cert::one_line(cert.issuer_name()),
            names,
            not_before: x509::time::date(nb),
            not_after: x509::time::date(na),
            days_left: (na - x509::time::now()).div_euclid(86_400),
            key: cert
                .public_key()
                .ok()
                .and_then(|k| x509::KeyAlgorithm::of(&k))
                .map_or_else(|| "unknown".into(), |a| a.to_string()),
        }
    }
}

/// notBefore and notAfter as Unix times (0 when unreadable).
pub fn dates(cert: &X509Ref) -> (i64, i64) {
    let unix = |t| x509::time::unix_time(t).unwrap_or(0);
    (unix(cert.not_before()), unix(cert.not_after()))
}

/// What ended a failed handshake (or came right after one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No answer within the timeout.
    Timeout,
    /// The port speaks plain HTTP (or at least not TLS).
    PlainHttp,
    /// We refused the server's certificate.
    ServerCert(Problem),
    /// The server sent this fatal alert.
    Alert(SslAlert),
    /// No protocol version or cipher suite in common, found on our side.
    NoCommonProtocol,
    /// The server reset the connection.
    Reset,
    /// The server closed the connection without an alert.
    Closed,
    /// None of the above; the detail text says what.
    Unknown,
}

/// The facts one OpenSSL error holds, apart from OpenSSL's types so they can be decided on
/// (and tested) as plain values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFacts {
    /// The I/O error's kind, if the error was one.
    pub io: Option<ErrorKind>,
    /// Our verification of the server's certificate, if it failed.
    pub verify: Option<Problem>,
    /// The `SSL_R_*` reason codes on OpenSSL's error queue.
    pub reasons: Vec<i32>,
    /// The socket hit end-of-file without a TLS close (OpenSSL 1.1's `SSL_ERROR_SYSCALL`).
    pub eof: bool,
    /// The server's bytes look like HTTP.
    pub http: bool,
}

impl ErrorFacts {
    /// The facts of a handshake error: OpenSSL's error, our verify result, the server's bytes.
    pub fn of(err: &openssl::ssl::Error, verify: X509VerifyResult, flight: &[u8]) -> ErrorFacts {
        let reasons = err.ssl_error().map_or_else(Vec::new, |stack| {
            let ssl = stack
                .errors()
                .iter()
                .filter(|e| e.library_code() == ERR_LIB_SSL);
            ssl.map(openssl::error::Error::reason_code).collect()
        });
        ErrorFacts {
            io: err.io_error().map(std::io::Error::kind),
            verify: Problem::of(verify),
            eof: err.code() == ErrorCode::SYSCALL && err.io_error().is_none(),
            reasons,
            http: wire::looks_like_http(flight),
        }
    }

    /// What ended the handshake, most telling fact first.
    pub fn cause(&self) -> Cause {
        let has = |r: &[i32]| self.reasons.iter().any(|x| r.contains(x));
        if matches!(self.io, Some(ErrorKind::WouldBlock | ErrorKind::TimedOut)) {
            return Cause::Timeout;
        }
        if self.http || has(&[reason::WRONG_VERSION_NUMBER, reason::PACKET_LENGTH_TOO_LONG]) {
            return Cause::PlainHttp;
        }
        if let Some(problem) = self.verify {
            return Cause::ServerCert(problem);
        }
        if let Some(alert) = self
            .reasons
            .iter()
            .find_map(|r| SslAlert::from_reason_code(*r))
        {
            return Cause::Alert(alert);
        }
        if has(&[
            reason::NO_PROTOCOLS_AVAILABLE,
            reason::UNSUPPORTED_PROTOCOL,
            reason::VERSION_TOO_LOW,
            reason::NO_SHARED_CIPHER,
            reason::NO_CIPHERS_AVAILABLE,
        ]) {
            return Cause::NoCommonProtocol;
        }
        match self.io {
            Some(
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe,
            ) => Cause::Reset,
            _ if self.eof || has(&[reason::UNEXPECTED_EOF_WHILE_READING]) => Cause::Closed,
            _ => Cause::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(facts: ErrorFacts) -> Cause {
        facts.cause()
    }

    #[test]
    fn a_received_alert_is_its_reason_code_minus_1000() {
        // SSL_R_TLSV1_ALERT_UNKNOWN_CA, SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED,
        // SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED.
        for (code, alert) in [
            (1048, SslAlert::UNKNOWN_CA),
            (1045, SslAlert::CERTIFICATE_EXPIRED),
            (1116, SslAlert::CERTIFICATE_REQUIRED),
        ] {
            let facts = ErrorFacts {
                reasons: vec![code],
                ..ErrorFacts::default()
            };
            assert_eq!(cause(facts), Cause::Alert(alert), "{code}");
        }
    }

    #[test]
    fn the_most_telling_fact_wins() {
        let all = ErrorFacts {
            io: Some(ErrorKind::ConnectionReset),
            verify: Some(Problem::Expired),
            reasons: vec![1048],
            ..ErrorFacts::default()
        };
        assert_eq!(cause(all.clone()), Cause::ServerCert(Problem::Expired));
        let timed_out = ErrorFacts {
            io: Some(ErrorKind::WouldBlock),
            ..all.clone()
        };
        assert_eq!(cause(timed_out), Cause::Timeout);
        let no_verify = ErrorFacts {
            verify: None,
            ..all.clone()
        };
        assert_eq!(cause(no_verify), Cause::Alert(SslAlert::UNKNOWN_CA));
        let reset = ErrorFacts {
            verify: None,
            reasons: vec![],
            ..all
        };
        assert_eq!(cause(reset), Cause::Reset);
    }

    #[test]
    fn local_reasons_name_plain_http_no_common_protocol_and_eof() {
        let with = |reasons: Vec<i32>| {
            cause(ErrorFacts {
                reasons,
                ..ErrorFacts::default()
            })
        };
        assert_eq!(with(vec![reason::WRONG_VERSION_NUMBER]), Cause::PlainHttp);
        assert_eq!(
            with(vec![reason::NO_PROTOCOLS_AVAILABLE]),
            Cause::NoCommonProtocol
        );
        assert_eq!(
            with(vec![reason::UNEXPECTED_EOF_WHILE_READING]),
            Cause::Closed
        );
        assert_eq!(with(vec![]), Cause::Unknown);
        let http = ErrorFacts {
            http: true,
            ..ErrorFacts::default()
        };
        assert_eq!(cause(http), Cause::PlainHttp);
    }
}
