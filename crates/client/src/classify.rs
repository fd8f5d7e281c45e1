//! Typed facts to words: a [`Cause`] and what else the probe knows ([`Context`]) become a
//! [`Failure`] with a class (the exit code), a message and a hint. Pure functions: no network,
//! no files.
//!
//! A server's alert about our certificate is weighed against what we can check ourselves
//! ([`OwnCert`]): OpenSSL sends "certificate expired" both when our certificate expired and when
//! the server's CRL is past its nextUpdate, and "unknown CA" also when it lacks a CRL.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use openssl::ssl::SslAlert;
use x509::verify::Problem;

use crate::error::{Failure, FailureClass};
use crate::facts::{Cause, CertSummary, Endpoint};
use crate::own::{Dates, Issuance, OwnCert};

/// What the probe knows besides the cause.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Where we connected.
    pub endpoint: &'a Endpoint,
    /// The CA file we verify the server with.
    pub ca_file: &'a Path,
    /// The limit that applied.
    pub timeout: Duration,
    /// Whether we had a client certificate to present.
    pub sent_cert: bool,
    /// Whether the server asked for one (TLS 1.2 shows it).
    pub cert_requested: bool,
    /// The server's leaf certificate, if it sent one.
    pub server_leaf: Option<&'a CertSummary>,
    /// Our certificate, checked locally (loaded only when an alert is about it).
    pub own: Option<&'a OwnCert>,
    /// The time of the checks, Unix seconds.
    pub now: i64,
}

/// The alerts a server sends about a client certificate it refused, which we can weigh
/// against our own check of it.
const OWN_CERT_ALERTS: [SslAlert; 4] = [
    SslAlert::CERTIFICATE_EXPIRED,
    SslAlert::CERTIFICATE_REVOKED,
    SslAlert::UNKNOWN_CA,
    SslAlert::BAD_CERTIFICATE,
];

/// Whether `cause` is an alert about our certificate: then [`Context::own`] is worth loading.
pub fn concerns_own_cert(cause: Cause) -> bool {
    matches!(cause, Cause::Alert(a) if OWN_CERT_ALERTS.contains(&a))
}

/// The failure `cause` stands for; `detail` is OpenSSL's own text, kept for searching.
pub fn classify(cause: Cause, ctx: &Context<'_>, detail: &str) -> Failure {
    match cause {
        Cause::Timeout => timeout(ctx.endpoint, ctx.timeout, "in the TLS handshake"),
        Cause::PlainHttp => plain_http(ctx.endpoint, detail),
        Cause::ServerCert(problem) => server_cert(problem, ctx, detail),
        Cause::Alert(alert) => received(alert, ctx, detail),
        Cause::NoCommonProtocol => no_common(detail),
        Cause::Reset if !ctx.sent_cert => Failure::new(
            FailureClass::ClientCertRequired,
            "the server closed the connection right after the handshake: it most likely requires a client certificate",
            "pass --cert/--key (or --p12)",
            detail,
        ),
        Cause::Reset => refused(
            "the server closed the connection right after the handshake",
            "see the server's log for the reason",
            detail,
        ),
        Cause::Closed => Failure::new(
            FailureClass::Other,
            "the server closed the connection during the TLS handshake, without an alert",
            "see the server's log for the reason",
            detail,
        ),
        Cause::Unknown => Failure::new(
            FailureClass::Other,
            "the TLS handshake failed",
            "run `client diagnose URL` for details",
            detail,
        ),
    }
}

/// A TCP connection to `addr` failed with `err`.
pub fn connect_failure(addr: SocketAddr, err: &std::io::Error, limit: Duration) -> Failure {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::new(
            FailureClass::NotListening,
            format!("nothing is listening on {addr}"),
            "start it (`cargo run -p server`; the online CA: `cargo run -p ca`), or check the \
             host and port",
            err.to_string(),
        ),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            timeout(addr, limit, "connecting")
        }
        _ => Failure::new(
            FailureClass::Other,
            format!("cannot connect to {addr}"),
            "check the network path",
            err.to_string(),
        ),
    }
}

/// The host of the URL has no address.
pub fn unresolved(host: &str, detail: &str) -> Failure {
    Failure::new(
        FailureClass::Other,
        format!("cannot resolve {host}"),
        "check the host name in the URL",
        detail,
    )
}

/// No answer from `what` within `limit`.
pub fn timeout(what: impl std::fmt::Display, limit: Duration, during: &str) -> Failure {
    Failure::new(
        FailureClass::Timeout,
        format!(
            "no answer from {what} within {}s while {during}",
            limit.as_secs_f32()
        ),
        "check that the address is right and reachable, or raise --timeout",
        "",
    )
}

fn plain_http(ep: &Endpoint, detail: &str) -> Failure {
    Failure::new(
        FailureClass::PlainHttp,
        format!("{ep} answers in plain HTTP, not TLS"),
        format!("use http://{ep} for a plain server, or point at the TLS port"),
        detail,
    )
}

/// `--san` for each name the server's certificate has (so a reissue keeps them), then `name`.
fn reissue_sans(leaf: Option<&CertSummary>, name: &str) -> String {
    let kept = leaf.map(|l| l.names.as_slice()).unwrap_or_default();
    kept.iter()
        .map(|n| n.split_once(':').map_or(n.as_str(), |(_, v)| v))
        .chain(std::iter::once(name))
        .map(|v| format!("--san {v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// We refused the server's certificate.
fn server_cert(problem: Problem, ctx: &Context<'_>, detail: &str) -> Failure {
    // Our own revocation check refused it (OpenSSL then reports "application verification").
    if let (Problem::Other(_), Some(r)) = (problem, crate::revocation::last_refusal()) {
        return revocation(&r, detail);
    }
    let leaf = |f: fn(&CertSummary) -> String| ctx.server_leaf.map(f).unwrap_or_default();
    let (class, message, hint) = match problem {
        Problem::HostMismatch | Problem::IpMismatch => (
            FailureClass::NameMismatch,
            format!(
                "the server's certificate is for {}, not {}",
                leaf(|l| l.names.join(", ")),
                ctx.endpoint.name
            ),
            format!(
                "connect with one of those names, pass --server-name NAME, or reissue it with \
                 its names and this one: `pki issue server --force {}`",
                reissue_sans(ctx.server_leaf, &ctx.endpoint.name)
            ),
        ),
        Problem::Expired => (
            FailureClass::ServerCertDates,
            format!("the server's certificate expired on {}", leaf(|l| l.not_after.clone())),
            "reissue it (`pki issue server --force`) and reload the server (`kill -HUP`)".into(),
        ),
        Problem::NotYetValid => (
            FailureClass::ServerCertDates,
            format!("the server's certificate is not valid until {}", leaf(|l| l.not_before.clone())),
            "check the clock of this machine and of the server".into(),
        ),
        Problem::UnknownIssuer | Problem::SelfSigned | Problem::SelfSignedInChain => (
            FailureClass::UnknownCa,
            format!(
                "the server's certificate was not issued by the CA in {} (its issuer: {})",
                ctx.ca_file.display(),
                leaf(|l| l.issuer.clone())
            ),
            "pass the server's CA with --ca; if the CA was remade with --force, copy the new ca.crt".into(),
        ),
        other => (
            FailureClass::Other,
            format!("the server's certificate does not verify: {}", other.explain()),
            "inspect it with `client diagnose URL`".into(),
        ),
    };
    Failure::new(class, message, hint, detail)
}

/// Our revocation check of the server's certificate refused it.
fn revocation(r: &crate::revocation::Refusal, detail: &str) -> Failure {
    use crate::revocation::Refusal;
    let (message, hint) = match r {
        Refusal::Revoked { serial, at, reason } => (
            format!(
                "the server's certificate (serial {serial}) was revoked on {}{}",
                x509::time::date(*at),
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
            "the server needs a new certificate (`pki issue server --force`, then reload it); \
             until then it must not be trusted"
                .to_owned(),
        ),
        Refusal::NoCrl { url, why } => (
            format!("the CRL the server's certificate names ({url}) could not be checked: {why}"),
            "make it reachable, or pass --crl-check soft to go on without it".to_owned(),
        ),
    };
    Failure::new(FailureClass::ServerCertRevoked, message, hint, detail)
}

/// The server ended the handshake with `alert`.
fn received(alert: SslAlert, ctx: &Context<'_>, detail: &str) -> Failure {
    let ours = ctx.sent_cert;
    match alert {
        SslAlert::CERTIFICATE_REQUIRED => required(detail),
        SslAlert::HANDSHAKE_FAILURE if !ours && ctx.cert_requested => required(detail),
        SslAlert::HANDSHAKE_FAILURE | SslAlert::CERTIFICATE_UNKNOWN if ours => refused(
            "its policy rejects it (for example a CA certificate used as a client certificate)",
            "use a client certificate from `pki issue client`",
            detail,
        ),
        a if ours && OWN_CERT_ALERTS.contains(&a) => match ctx.own {
            Some(own) => weighed(alert, own, ctx.now, detail),
            None => unweighed(alert, Issuance::Files, detail),
        },
        SslAlert::UNSUPPORTED_CERTIFICATE => refused(
            "it is not meant for TLS clients (extendedKeyUsage lacks clientAuth)",
            "use a client certificate from `pki issue client`, not a server one",
            detail,
        ),
        SslAlert::ACCESS_DENIED => refused(
            "the server's policy denies it",
            "ask the server's operator to allow it",
            detail,
        ),
        SslAlert::PROTOCOL_VERSION
        | SslAlert::INSUFFICIENT_SECURITY
        | SslAlert::HANDSHAKE_FAILURE => no_common(detail),
        other => Failure::new(
            FailureClass::Other,
            format!("the server ended the TLS handshake with the alert \"{other}\""),
            "see the server's log for the reason",
            detail,
        ),
    }
}

/// An alert about our certificate, weighed against what we checked of it ourselves.
fn weighed(alert: SslAlert, own: &OwnCert, now: i64, detail: &str) -> Failure {
    let (from, until) = (&own.summary.not_before, &own.summary.not_after);
    let ca = own.ca_file.display();
    match (alert, own.dates(now), own.chain) {
        (SslAlert::CERTIFICATE_EXPIRED, Dates::Expired, _) => refused(
            &format!("it expired on {until}"),
            match own.issuance {
                Issuance::Est => ENROLL_AGAIN,
                Issuance::Files => "issue a new one: `pki renew NAME` where the CA is",
            },
            detail,
        ),
        (SslAlert::CERTIFICATE_EXPIRED, Dates::NotYetValid, _) => contradicted(
            "has expired",
            &format!("it is not valid until {from}: a clock is wrong"),
            "check the clocks of this machine and of the server",
            detail,
        ),
        (SslAlert::CERTIFICATE_EXPIRED, Dates::Valid, Err(Problem::Expired)) => refused(
            &format!("it is valid until {until}, but a certificate of its chain (its CA's?) has expired"),
            "renew the CA, then issue a new client certificate",
            detail,
        ),
        (SslAlert::CERTIFICATE_EXPIRED, Dates::Valid, _) => contradicted(
            "has expired",
            &format!("it is valid until {until}: the server's CRL is probably out of date or its clock is wrong"),
            "ask its operator to run `pki crl`",
            detail,
        ),
        (SslAlert::UNKNOWN_CA, _, Ok(())) => contradicted(
            "was not issued by a CA it trusts",
            &format!("it chains to the CA in {ca}: the server trusts another CA, or it has no CRL for ours"),
            "ask its operator to check its CA file and to run `pki crl`",
            detail,
        ),
        (SslAlert::BAD_CERTIFICATE, Dates::NotYetValid, _) => refused(
            &format!("it is not valid until {from}"),
            "check the clocks of this machine and of the server",
            detail,
        ),
        (SslAlert::BAD_CERTIFICATE, Dates::Valid, Ok(())) => contradicted(
            "is invalid",
            &format!("it is valid until {until} and chains to the CA in {ca}: the server's clock is probably wrong, or its CRL is not valid yet"),
            "ask its operator to check its clock and to run `pki crl`",
            detail,
        ),
        (SslAlert::BAD_CERTIFICATE, _, Err(problem)) => refused(
            &format!("the server found it invalid, and so do we: {}", problem.explain()),
            "inspect it with `pki inspect`",
            detail,
        ),
        _ => unweighed(alert, own.issuance, detail),
    }
}

/// What a device whose EST certificate was revoked or has expired does: it cannot renew it.
const ENROLL_AGAIN: &str = "it cannot renew itself: enroll again with a new token from the \
    CA's operator (`client enroll --est URL --token TOKEN --name NAME --force`)";

/// An alert about our certificate, in the server's words alone (what it says, as it says it),
/// with the advice for how it was issued.
fn unweighed(alert: SslAlert, issuance: Issuance, detail: &str) -> Failure {
    let (why, hint) = match alert {
        SslAlert::CERTIFICATE_REVOKED => (
            "it has been revoked by the CA",
            match issuance {
                Issuance::Est => ENROLL_AGAIN,
                Issuance::Files => "ask for a new one: `pki issue client --name NAME --force`",
            },
        ),
        SslAlert::CERTIFICATE_EXPIRED => (
            "the server says it has expired (OpenSSL sends the same alert when the server's CRL is past its nextUpdate)",
            "check its dates with `pki inspect`; if they are good, ask the server's operator to run `pki crl`",
        ),
        SslAlert::UNKNOWN_CA => (
            "it was not issued by a CA the server trusts",
            "use a certificate issued by the server's CA (`pki issue client --name NAME` there)",
        ),
        _ => (
            "the server found it invalid (for example not valid yet: check the clocks)",
            "inspect it with `pki inspect`",
        ),
    };
    refused(why, hint, detail)
}

fn refused(why: &str, hint: &str, detail: &str) -> Failure {
    Failure::new(
        FailureClass::ClientCertRefused,
        format!("the server refused our client certificate: {why}"),
        hint,
        detail,
    )
}

/// The server's alert says one thing, our own check another: say both.
fn contradicted(claim: &str, truth: &str, hint: &str, detail: &str) -> Failure {
    Failure::new(
        FailureClass::ClientCertRefused,
        format!("the server says our certificate {claim}, but {truth}"),
        hint,
        detail,
    )
}

fn required(detail: &str) -> Failure {
    Failure::new(
        FailureClass::ClientCertRequired,
        "the server requires a client certificate and we sent none",
        "pass --cert and --key (or --p12); `make certs` made certs/client/client.{crt,key}",
        detail,
    )
}

fn no_common(detail: &str) -> Failure {
    Failure::new(
        FailureClass::NoCommonProtocol,
        "no TLS version or cipher suite in common with the server",
        "the server may allow only TLS 1.3 (or older, weaker settings): compare with `openssl s_client`",
        detail,
    )
}

#[cfg(test)]
mod tests;
