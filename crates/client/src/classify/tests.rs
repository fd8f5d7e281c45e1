//! One test per failure class, and one per branch of weighing an alert against our own
//! certificate, on certificates made here (pki's library) and checked for real (`OwnCert`).

use std::io::{Error, ErrorKind};
use std::path::Path;

use pki::{
    key, request, CertSpec, Issuer, KeyAlgorithm, Profile, Subject, SubjectAltName, Validity,
};
use x509::time::now;

use super::*;

const DAY: i64 = 86_400;

fn endpoint() -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: 8443,
        name: "localhost".into(),
    }
}

fn ca(name: &str) -> Issuer {
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &Subject::new("test", name)).expect("req");
    Issuer::self_sign(&req, k, Validity::days(365)).expect("ca")
}

fn leaf(ca: &Issuer, spec: CertSpec) -> openssl::x509::X509 {
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &Subject::new("test", "leaf")).expect("req");
    ca.sign(&req, &spec).expect("sign")
}

/// Our client certificate from `issuer`, valid from `from` to `until` days from now, checked
/// against `trusted` as our CA file.
fn own(issuer: &Issuer, trusted: &Issuer, from: i64, until: i64) -> OwnCert {
    let t = now();
    let spec =
        CertSpec::new(Profile::Client).validity(Validity::between(t + from * DAY, t + until * DAY));
    let cert = leaf(issuer, spec);
    let cas = [trusted.certificate().to_owned()];
    OwnCert::check(&cert, &[], &cas, Path::new("certs/ca/ca.crt"))
}

/// Classifies `cause` as seen with (or without) a client certificate and our own check of it.
fn with(cause: Cause, sent_cert: bool, own: Option<&OwnCert>) -> Failure {
    let ep = endpoint();
    let ctx = Context {
        endpoint: &ep,
        ca_file: Path::new("certs/ca/ca.crt"),
        timeout: Duration::from_secs(3),
        sent_cert,
        cert_requested: false,
        server_leaf: None,
        own,
        now: now(),
    };
    classify(cause, &ctx, "openssl's words")
}

fn assert_says(f: &Failure, class: FailureClass, words: &[&str]) {
    assert_eq!(f.class, class, "{f}");
    let text = f.to_string();
    for w in words {
        assert!(text.contains(w), "missing {w:?} in: {text}");
    }
}

#[test]
fn not_listening_and_connect_timeouts() {
    let addr: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
    for (kind, class, words) in [
        (
            ErrorKind::ConnectionRefused,
            FailureClass::NotListening,
            "nothing is listening on 127.0.0.1:8443",
        ),
        (
            ErrorKind::TimedOut,
            FailureClass::Timeout,
            "within 3s while connecting",
        ),
        (
            ErrorKind::PermissionDenied,
            FailureClass::Other,
            "cannot connect to 127.0.0.1:8443",
        ),
    ] {
        let f = connect_failure(addr, &Error::from(kind), Duration::from_secs(3));
        assert_says(&f, class, &[words]);
    }
}

#[test]
fn a_handshake_timeout_and_plain_http() {
    let f = with(Cause::Timeout, true, None);
    assert_says(
        &f,
        FailureClass::Timeout,
        &["127.0.0.1:8443 within 3s while in the TLS handshake"],
    );
    let f = with(Cause::PlainHttp, true, None);
    assert_says(
        &f,
        FailureClass::PlainHttp,
        &["answers in plain HTTP", "http://127.0.0.1:8443"],
    );
}

#[test]
fn the_servers_certificate_problems_name_its_facts() {
    let ours = ca("ours");
    let spec = CertSpec::new(Profile::Server).names(SubjectAltName::localhost());
    let summary = CertSummary::of(&leaf(&ours, spec));
    let ep = Endpoint {
        name: "api.example".into(),
        ..endpoint()
    };
    let ctx = Context {
        endpoint: &ep,
        ca_file: Path::new("other/ca.crt"),
        timeout: Duration::from_secs(3),
        sent_cert: true,
        cert_requested: false,
        server_leaf: Some(&summary),
        own: None,
        now: now(),
    };
    let server = |p| classify(Cause::ServerCert(p), &ctx, "verify error");
    assert_says(
        &server(Problem::HostMismatch),
        FailureClass::NameMismatch,
        &[
            "is for DNS:localhost, IP:127.0.0.1, IP:::1, not api.example",
            "--san api.example",
        ],
    );
    let expired = format!("expired on {}", summary.not_after);
    assert_says(
        &server(Problem::Expired),
        FailureClass::ServerCertDates,
        &[&expired],
    );
    let early = format!("not valid until {}", summary.not_before);
    assert_says(
        &server(Problem::NotYetValid),
        FailureClass::ServerCertDates,
        &[&early],
    );
    assert_says(
        &server(Problem::UnknownIssuer),
        FailureClass::UnknownCa,
        &[
            "not issued by the CA in other/ca.crt",
            "its issuer: /O=test/CN=ours",
        ],
    );
    assert_says(
        &server(Problem::CaAsLeaf),
        FailureClass::Other,
        &["is a CA certificate"],
    );
}

#[test]
fn the_server_requires_a_certificate_we_did_not_send() {
    let f = with(Cause::Alert(SslAlert::CERTIFICATE_REQUIRED), false, None);
    assert_says(
        &f,
        FailureClass::ClientCertRequired,
        &["requires a client certificate", "--cert"],
    );
    let f = with(Cause::Reset, false, None);
    assert_says(
        &f,
        FailureClass::ClientCertRequired,
        &["most likely requires"],
    );
    // TLS 1.2: a handshake failure after the server asked for a certificate.
    let ep = endpoint();
    let ctx = Context {
        endpoint: &ep,
        ca_file: Path::new("ca.crt"),
        timeout: Duration::from_secs(3),
        sent_cert: false,
        cert_requested: true,
        server_leaf: None,
        own: None,
        now: now(),
    };
    let f = classify(Cause::Alert(SslAlert::HANDSHAKE_FAILURE), &ctx, "");
    assert_eq!(f.class, FailureClass::ClientCertRequired, "{f}");
}

#[test]
fn the_server_refuses_our_certificate() {
    let f = with(Cause::Alert(SslAlert::UNSUPPORTED_CERTIFICATE), true, None);
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
        &["refused our client certificate", "clientAuth"],
    );
    let f = with(Cause::Alert(SslAlert::HANDSHAKE_FAILURE), true, None);
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
        &["its policy rejects it"],
    );
    let f = with(Cause::Reset, true, None);
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
        &["closed the connection"],
    );
}

#[test]
fn no_version_or_cipher_in_common() {
    for cause in [
        Cause::NoCommonProtocol,
        Cause::Alert(SslAlert::PROTOCOL_VERSION),
        Cause::Alert(SslAlert::HANDSHAKE_FAILURE),
    ] {
        let f = with(cause, false, None);
        assert_says(
            &f,
            FailureClass::NoCommonProtocol,
            &["no TLS version or cipher suite in common"],
        );
    }
}

#[test]
fn anything_else_is_other_and_names_what_came() {
    let f = with(Cause::Alert(SslAlert::DECODE_ERROR), true, None);
    assert_says(&f, FailureClass::Other, &["the alert \"decode error\""]);
    let f = with(Cause::Closed, true, None);
    assert_says(
        &f,
        FailureClass::Other,
        &["closed the connection during the TLS handshake"],
    );
    let f = with(Cause::Unknown, true, None);
    assert_says(&f, FailureClass::Other, &["the TLS handshake failed"]);
    // An alert about a client certificate when we sent none is not about ours.
    let f = with(Cause::Alert(SslAlert::CERTIFICATE_EXPIRED), false, None);
    assert_says(&f, FailureClass::Other, &["certificate expired"]);
}

/// The server's `alert` about our certificate (checked here as `own`): a refusal saying `words`.
fn refusal(alert: SslAlert, own: Option<&OwnCert>, words: &[&str]) -> Failure {
    let f = with(Cause::Alert(alert), true, own);
    assert_says(&f, FailureClass::ClientCertRefused, words);
    f
}

#[test]
fn expired_says_the_server_but_ours_is_valid_its_crl_is_stale() {
    let ours = ca("ours");
    let valid = own(&ours, &ours, -1, 334);
    let until = format!("but it is valid until {}", valid.summary.not_after);
    let f = refusal(
        SslAlert::CERTIFICATE_EXPIRED,
        Some(&valid),
        &[
            "the server says our certificate has expired",
            &until,
            "the server's CRL is probably out of date or its clock is wrong",
            "ask its operator to run `pki crl`",
        ],
    );
    assert!(!f.to_string().contains("issue a new one"), "{f}");
}

#[test]
fn expired_says_the_server_and_so_it_is() {
    let ours = ca("ours");
    let old = own(&ours, &ours, -30, -1);
    let on = format!("it expired on {}", old.summary.not_after);
    refusal(
        SslAlert::CERTIFICATE_EXPIRED,
        Some(&old),
        &[&on, "pki renew"],
    );
}

#[test]
fn expired_says_the_server_but_ours_is_not_valid_yet() {
    let ours = ca("ours");
    let early = own(&ours, &ours, 1, 30);
    refusal(
        SslAlert::CERTIFICATE_EXPIRED,
        Some(&early),
        &["has expired, but it is not valid until", "a clock is wrong"],
    );
}

#[test]
fn expired_says_the_server_and_our_ca_has() {
    let ours = ca("ours");
    let mut valid = own(&ours, &ours, -1, 30);
    // `Issuer::sign` never outlives its CA, so a CA expired under a valid leaf is set by hand.
    valid.chain = Err(Problem::Expired);
    refusal(
        SslAlert::CERTIFICATE_EXPIRED,
        Some(&valid),
        &["a certificate of its chain (its CA's?) has expired"],
    );
}

#[test]
fn unknown_ca_weighed_both_ways() {
    let (ours, theirs) = (ca("ours"), ca("theirs"));
    refusal(SslAlert::UNKNOWN_CA, Some(&own(&ours, &ours, -1, 30)), &[
        "the server says our certificate was not issued by a CA it trusts, but it chains to the CA in certs/ca/ca.crt",
        "no CRL for ours",
    ]);
    refusal(
        SslAlert::UNKNOWN_CA,
        Some(&own(&theirs, &ours, -1, 30)),
        &["not issued by a CA the server trusts"],
    );
}

#[test]
fn bad_certificate_weighed_three_ways() {
    let (ours, theirs) = (ca("ours"), ca("theirs"));
    let early = own(&ours, &ours, 1, 30);
    let until = format!("it is not valid until {}", early.summary.not_before);
    refusal(SslAlert::BAD_CERTIFICATE, Some(&early), &[&until, "clocks"]);
    refusal(
        SslAlert::BAD_CERTIFICATE,
        Some(&own(&ours, &ours, -1, 30)),
        &[
            "the server says our certificate is invalid, but it is valid until",
            "and chains to the CA in certs/ca/ca.crt",
        ],
    );
    refusal(
        SslAlert::BAD_CERTIFICATE,
        Some(&own(&theirs, &ours, -1, 30)),
        &["the server found it invalid, and so do we: not issued by the trusted CA"],
    );
}

#[test]
fn revoked_cannot_be_checked_here_and_is_said_as_the_server_says() {
    let ours = ca("ours");
    let valid = own(&ours, &ours, -1, 30);
    for checked in [Some(&valid), None] {
        refusal(
            SslAlert::CERTIFICATE_REVOKED,
            checked,
            &["revoked by the CA", "pki issue client --name NAME --force"],
        );
    }
}

#[test]
fn a_device_that_enrolled_over_est_is_told_to_enroll_again_not_to_run_pki() {
    let ours = ca("ours");
    let mut revoked = own(&ours, &ours, -1, 30);
    revoked.issuance = Issuance::Est;
    let f = refusal(
        SslAlert::CERTIFICATE_REVOKED,
        Some(&revoked),
        &[
            "revoked by the CA",
            "enroll again with a new token",
            "client enroll --est",
        ],
    );
    assert!(!f.to_string().contains("pki issue"), "{f}");
    let mut expired = own(&ours, &ours, -30, -1);
    expired.issuance = Issuance::Est;
    let f = refusal(
        SslAlert::CERTIFICATE_EXPIRED,
        Some(&expired),
        &["it expired on", "enroll again with a new token"],
    );
    assert!(!f.to_string().contains("pki renew"), "{f}");
}

#[test]
fn unchecked_expiry_says_both_readings() {
    refusal(
        SslAlert::CERTIFICATE_EXPIRED,
        None,
        &[
            "the server says it has expired",
            "CRL is past its nextUpdate",
        ],
    );
    assert!(concerns_own_cert(Cause::Alert(
        SslAlert::CERTIFICATE_EXPIRED
    )));
    assert!(!concerns_own_cert(Cause::Alert(
        SslAlert::CERTIFICATE_REQUIRED
    )));
}
