//! Why a handshake or a client certificate was refused, as typed facts: [`Reason`] is the
//! bounded label of the metrics, [`Refusal`] what an `optional` server keeps of a certificate
//! it let through as anonymous, with its sentence for the page and `/whoami`.

use std::convert::Infallible;

use actix_tls::accept::TlsError;
use x509::verify::Problem;

/// `SSL_R_*` reason codes of <openssl/sslerr.h> (stable across OpenSSL 3.x; openssl-sys does
/// not name them).
mod ssl_r {
    pub const CERTIFICATE_VERIFY_FAILED: i32 = 134;
    pub const PEER_DID_NOT_RETURN_A_CERTIFICATE: i32 = 199;
    pub const UNEXPECTED_EOF_WHILE_READING: i32 = 294;
    /// `SSL_R_TLSV1_ALERT_USER_CANCELLED`: the peer sent `user_canceled` (alert 90).
    pub const TLSV1_ALERT_USER_CANCELLED: i32 = 1090;
    /// Reasons from this value up are alerts the peer sent (`SSL_AD_REASON_OFFSET`).
    pub const ALERT_OFFSET: i32 = 1000;
}

/// `ERR_LIB_SSL`: an error raised by libssl (not libcrypto).
const ERR_LIB_SSL: i32 = 20;

/// What was wrong with a handshake: the `reason` label of `https_tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Nothing: a clean handshake.
    None,
    /// No client certificate where one is required.
    NoCertificate,
    /// Not issued by a CA of the trust bundle (unknown issuer, self-signed, bad signature).
    UnknownCa,
    /// The client certificate's notAfter is past.
    Expired,
    /// The client certificate's notBefore is ahead.
    NotYetValid,
    /// On the CRL.
    Revoked,
    /// The CRL is past its nextUpdate.
    CrlStale,
    /// The CRL cannot be used (missing, badly signed, not valid yet).
    CrlUnusable,
    /// Not a client certificate: no EKU clientAuth, or a CA certificate.
    KeyUsage,
    /// The chain is too long or an issuer is not a CA.
    Chain,
    /// Verified, but not on the access list.
    AccessList,
    /// No common protocol version, cipher, group or ALPN; or not TLS at all.
    Protocol,
    /// The client sent an alert (it refused our certificate, say).
    ClientAlert,
    /// The client ended the handshake on purpose with a `user_canceled` alert before anything
    /// was judged, as `client diagnose` does once it has read the server's certificate request:
    /// counted under the result `canceled`, never `refused`.
    UserCanceled,
    /// The client closed or reset the connection mid-handshake.
    Closed,
    /// The handshake took longer than the handshake timeout.
    Timeout,
    /// Anything else.
    Other,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 17] = [
        Reason::None,
        Reason::NoCertificate,
        Reason::UnknownCa,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::Revoked,
        Reason::CrlStale,
        Reason::CrlUnusable,
        Reason::KeyUsage,
        Reason::Chain,
        Reason::AccessList,
        Reason::Protocol,
        Reason::ClientAlert,
        Reason::UserCanceled,
        Reason::Closed,
        Reason::Timeout,
        Reason::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::NoCertificate => "no_certificate",
            Reason::UnknownCa => "unknown_ca",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Revoked => "revoked",
            Reason::CrlStale => "crl_stale",
            Reason::CrlUnusable => "crl_unusable",
            Reason::KeyUsage => "key_usage",
            Reason::Chain => "chain",
            Reason::AccessList => "access_list",
            Reason::Protocol => "protocol",
            Reason::ClientAlert => "client_alert",
            Reason::UserCanceled => "user_canceled",
            Reason::Closed => "closed",
            Reason::Timeout => "timeout",
            Reason::Other => "other",
        }
    }

    /// The reason a certificate problem is counted under.
    pub fn of(problem: Problem) -> Reason {
        use Problem as P;
        match problem {
            P::UnknownIssuer | P::SelfSigned | P::SelfSignedInChain | P::BadSignature => {
                Reason::UnknownCa
            }
            P::Expired => Reason::Expired,
            P::NotYetValid => Reason::NotYetValid,
            P::Revoked => Reason::Revoked,
            P::CrlExpired => Reason::CrlStale,
            P::NoCrl | P::CrlBadSignature | P::CrlNotYetValid | P::IssuerCannotSignCrls => {
                Reason::CrlUnusable
            }
            P::WrongPurpose | P::CaAsLeaf => Reason::KeyUsage,
            P::ChainTooLong | P::InvalidCa | P::IssuerNotCa | P::IssuerCannotSign => Reason::Chain,
            _ => Reason::Other,
        }
    }

    /// Why the TLS layer failed a handshake; `None` for a certificate the verify callback
    /// refused, which it counted itself, with the certificate's own reason.
    pub fn of_tls_error(e: &TlsError<openssl::ssl::Error, Infallible>) -> Option<Reason> {
        let e = match e {
            TlsError::Timeout => return Some(Reason::Timeout),
            TlsError::Tls(e) => e,
            TlsError::Service(never) => match *never {},
        };
        let ssl_reasons = e.ssl_error().into_iter().flat_map(|stack| {
            stack
                .errors()
                .iter()
                .filter(|e| e.library_code() == ERR_LIB_SSL)
                .map(|e| e.reason_code())
        });
        let first = ssl_reasons.into_iter().next();
        Some(match first {
            Some(ssl_r::CERTIFICATE_VERIFY_FAILED) => return None,
            Some(ssl_r::PEER_DID_NOT_RETURN_A_CERTIFICATE) => Reason::NoCertificate,
            Some(ssl_r::UNEXPECTED_EOF_WHILE_READING) => Reason::Closed,
            Some(ssl_r::TLSV1_ALERT_USER_CANCELLED) => Reason::UserCanceled,
            Some(r) if r >= ssl_r::ALERT_OFFSET => Reason::ClientAlert,
            Some(_) => Reason::Protocol,
            None if matches!(
                e.code(),
                openssl::ssl::ErrorCode::SYSCALL | openssl::ssl::ErrorCode::ZERO_RETURN
            ) =>
            {
                Reason::Closed
            }
            None => Reason::Other,
        })
    }
}

/// A client certificate that was presented and did not verify, as an `optional` server keeps
/// it: the first problem OpenSSL found, and the certificate's validity for the sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// What was wrong.
    pub problem: Problem,
    /// The certificate's notBefore, Unix seconds.
    pub not_before: Option<i64>,
    /// The certificate's notAfter, Unix seconds.
    pub not_after: Option<i64>,
}

impl Refusal {
    /// The refusal of `cert` for `problem`.
    pub fn new(problem: Problem, cert: Option<&openssl::x509::X509Ref>) -> Refusal {
        let time = |t| x509::time::unix_time(t).ok();
        Refusal {
            problem,
            not_before: cert.and_then(|c| time(c.not_before())),
            not_after: cert.and_then(|c| time(c.not_after())),
        }
    }

    /// The metrics label.
    pub fn reason(&self) -> Reason {
        Reason::of(self.problem)
    }

    /// Why, in plain words addressed to the person whose certificate it is.
    pub fn plain(&self) -> String {
        let date = |t: Option<i64>| t.map(x509::time::date).unwrap_or_default();
        use Problem as P;
        match self.problem {
            P::Expired => format!(
                "your certificate expired on {}: ask for a new one",
                date(self.not_after)
            ),
            P::NotYetValid => format!(
                "your certificate is not valid until {} (or a clock is wrong)",
                date(self.not_before)
            ),
            P::UnknownIssuer | P::SelfSigned | P::SelfSignedInChain | P::BadSignature => {
                "your certificate was not issued by this server's CA".into()
            }
            P::Revoked => "your certificate was revoked by this server's CA".into(),
            P::CrlExpired => "this server's list of revoked certificates is out of date, so it \
                              cannot accept any certificate now: tell its operator"
                .into(),
            P::WrongPurpose => "your certificate was not issued for signing in to servers \
                                (its extendedKeyUsage lacks clientAuth)"
                .into(),
            P::CaAsLeaf => "your certificate is a CA certificate, not a client certificate".into(),
            other => format!("your certificate was refused: {}", other.explain()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case_words() {
        let labels: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
        for l in labels {
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
        }
    }

    #[test]
    fn problems_fall_under_the_reasons_operators_act_on() {
        assert_eq!(Reason::of(Problem::SelfSigned), Reason::UnknownCa);
        assert_eq!(Reason::of(Problem::UnknownIssuer), Reason::UnknownCa);
        assert_eq!(Reason::of(Problem::CrlExpired), Reason::CrlStale);
        assert_eq!(Reason::of(Problem::CaAsLeaf), Reason::KeyUsage);
        assert_eq!(Reason::of(Problem::Other(4242)), Reason::Other);
    }

    #[test]
    fn the_sentence_names_the_date_that_matters() {
        let expired = Refusal {
            problem: Problem::Expired,
            not_before: Some(0),
            not_after: Some(1_700_000_000),
        };
        assert_eq!(
            expired.plain(),
            "your certificate expired on 2023-11-14 22:13:20 UTC: ask for a new one"
        );
        assert_eq!(expired.reason(), Reason::Expired);
        let foreign = Refusal {
            problem: Problem::UnknownIssuer,
            not_before: None,
            not_after: None,
        };
        assert!(foreign.plain().contains("not issued by this server's CA"));
    }
}
