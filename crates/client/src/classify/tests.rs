//! One test per failure class, and one per branch of weighing an alert against our own
//! certificate, on certificates made here (pki's library) and checked for real (`OwnCert`).

use std::io::{Error, ErrorKind};
use std::path::Path;

use pki::authority::now;
use pki::{
    key, request, Authority, CertSpec, KeyAlgorithm, Profile, Subject, SubjectAltName, Validity,
};

use super::*;

const DAY: i64 = 86_400;

fn endpoint() -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: 8443,
        name: "localhost".into(),
    }
}

fn ca(name: &str) -> Authority {
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &Subject::new("test", name)).expect("req");
    Authority::self_sign(&req, k, Validity::days(365)).expect("ca")
}

fn leaf(ca: &Authority, spec: CertSpec) -> openssl::x509::X509 {
    let k = key::generate(KeyAlgorithm::EcP256).expect("key");
    let req = request::build(&k, &Subject::new("test", "leaf")).expect("req");
    ca.sign(&req, &spec).expect("sign")
}

/// Our client certificate from `issuer`, valid `from`..`until` (Unix seconds), checked
/// against `trusted` as our CA file.
fn own(issuer: &Authority, trusted: &Authority, from: i64, until: i64) -> OwnCert {
    let spec = CertSpec::new(Profile::Client).validity(Validity::between(from, until));
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
    let refused = connect_failure(
        addr,
        &Error::from(ErrorKind::ConnectionRefused),
        Duration::from_secs(3),
    );
    assert_says(
        &refused,
        FailureClass::NotListening,
        &["nothing is listening on 127.0.0.1:8443"],
    );
    let slow = connect_failure(
        addr,
        &Error::from(ErrorKind::TimedOut),
        Duration::from_secs(3),
    );
    assert_says(
        &slow,
        FailureClass::Timeout,
        &["within 3s while connecting"],
    );
    let other = connect_failure(
        addr,
        &Error::from(ErrorKind::PermissionDenied),
        Duration::from_secs(3),
    );
    assert_says(
        &other,
        FailureClass::Other,
        &["cannot connect to 127.0.0.1:8443"],
    );
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

#[test]
fn expired_says_the_server_but_ours_is_valid_its_crl_is_stale() {
    let ours = ca("ours");
    let t = now();
    let valid = own(&ours, &ours, t - DAY, t + 334 * DAY);
    let f = with(
        Cause::Alert(SslAlert::CERTIFICATE_EXPIRED),
        true,
        Some(&valid),
    );
    let until = format!("but it is valid until {}", valid.summary.not_after);
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
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
    let t = now();
    let old = own(&ours, &ours, t - 30 * DAY, t - DAY);
    let f = with(
        Cause::Alert(SslAlert::CERTIFICATE_EXPIRED),
        true,
        Some(&old),
    );
    let on = format!("it expired on {}", old.summary.not_after);
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
        &[&on, "pki issue client"],
    );
}

#[test]
fn expired_says_the_server_but_ours_is_not_valid_yet() {
    let ours = ca("ours");
    let t = now();
    let early = own(&ours, &ours, t + DAY, t + 30 * DAY);
    let f = with(
        Cause::Alert(SslAlert::CERTIFICATE_EXPIRED),
        true,
        Some(&early),
    );
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
        &["has expired, but it is not valid until", "a clock is wrong"],
    );
}

#[test]
fn expired_says_the_server_and_our_ca_has() {
    let ours = ca("ours");
    let t = now();
    let mut valid = own(&ours, &ours, t - DAY, t + 30 * DAY);
    // `Authority::sign` never outlives its CA, so a CA expired under a valid leaf is set by hand.
    valid.chain = Err(Problem::Expired);
    let f = with(
        Cause::Alert(SslAlert::CERTIFICATE_EXPIRED),
        true,
        Some(&valid),
    );
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
        &["a certificate of its chain (its CA's?) has expired"],
    );
}

#[test]
fn unknown_ca_says_the_server_but_ours_chains_to_our_ca() {
    let ours = ca("ours");
    let t = now();
    let valid = own(&ours, &ours, t - DAY, t + 30 * DAY);
    let f = with(Cause::Alert(SslAlert::UNKNOWN_CA), true, Some(&valid));
    assert_says(&f, FailureClass::ClientCertRefused, &[
        "the server says our certificate was not issued by a CA it trusts, but it chains to the CA in certs/ca/ca.crt",
        "no CRL for ours",
    ]);
}

#[test]
fn unknown_ca_says_the_server_and_ours_is_from_another_ca() {
    let (ours, theirs) = (ca("ours"), ca("theirs"));
    let t = now();
    let foreign = own(&theirs, &ours, t - DAY, t + 30 * DAY);
    let f = with(Cause::Alert(SslAlert::UNKNOWN_CA), true, Some(&foreign));
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
        &["not issued by a CA the server trusts"],
    );
}

#[test]
fn bad_certificate_weighed_three_ways() {
    let (ours, theirs) = (ca("ours"), ca("theirs"));
    let t = now();
    let bad = |o: &OwnCert| with(Cause::Alert(SslAlert::BAD_CERTIFICATE), true, Some(o));

    let early = own(&ours, &ours, t + DAY, t + 30 * DAY);
    let until = format!("it is not valid until {}", early.summary.not_before);
    assert_says(
        &bad(&early),
        FailureClass::ClientCertRefused,
        &[&until, "clocks"],
    );

    let valid = own(&ours, &ours, t - DAY, t + 30 * DAY);
    assert_says(
        &bad(&valid),
        FailureClass::ClientCertRefused,
        &[
            "the server says our certificate is invalid, but it is valid until",
            "and chains to the CA in certs/ca/ca.crt",
        ],
    );

    let foreign = own(&theirs, &ours, t - DAY, t + 30 * DAY);
    assert_says(
        &bad(&foreign),
        FailureClass::ClientCertRefused,
        &["the server found it invalid, and so do we: not issued by the trusted CA"],
    );
}

#[test]
fn revoked_cannot_be_checked_here_and_is_said_as_the_server_says() {
    let ours = ca("ours");
    let t = now();
    let valid = own(&ours, &ours, t - DAY, t + 30 * DAY);
    for checked in [Some(&valid), None] {
        let f = with(Cause::Alert(SslAlert::CERTIFICATE_REVOKED), true, checked);
        assert_says(&f, FailureClass::ClientCertRefused, &["revoked by the CA"]);
    }
}

#[test]
fn unchecked_expiry_says_both_readings() {
    let f = with(Cause::Alert(SslAlert::CERTIFICATE_EXPIRED), true, None);
    assert_says(
        &f,
        FailureClass::ClientCertRefused,
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
