//! The `ca` binary over TLS, byte for byte as RFC 7030 puts it: cacerts, a first enrollment
//! by token, renewal by the certificate being renewed, every bad input refused with its
//! status and reason (and nothing changed), and the CRL with its validators.

mod support;

use std::io::Write;
use std::time::Duration;

use pki::store::State;
use pki::Profile;
use support::{basic, call, certs_of, csr, csr_for, enroll, est_post, CaProcess};
use testkit::TestPki;
use x509_parser::prelude::FromDer;

const DEVICE_ORG: &str = "https Project Device Certificate";

fn token(pki: &TestPki, name: &str) -> String {
    pki.folder
        .create_token(Profile::Client, name, Duration::from_secs(3600))
        .expect("token")
}

#[test]
fn cacerts_is_the_chain_as_certs_only_pkcs7_in_base64() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &[], &[]);
    let r = call(
        ca.addr,
        &pki.layout().ca_cert(),
        None,
        "GET /.well-known/est/cacerts HTTP/1.1",
        b"",
    );
    assert_eq!(r.header("content-type"), Some("application/pkcs7-mime"));
    assert_eq!(r.header("content-transfer-encoding"), Some("base64"));
    let certs = certs_of(&r);
    assert_eq!(certs.len(), 1);
    assert_eq!(
        certs[0].to_der().expect("der"),
        pki.der(&pki.layout().ca_cert())
    );
    let r = call(
        ca.addr,
        &pki.layout().ca_cert(),
        None,
        "GET /.well-known/est/csrattrs HTTP/1.1",
        b"",
    );
    assert_eq!(r.status, 204);
}

#[test]
fn a_token_enrolls_its_name_once_through_the_records_and_the_client_profile() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &["--public-url", "https://ca.example:8443"], &[]);
    let root = pki.layout().ca_cert();
    let t = token(&pki, "dev-1");
    let (key, request) = csr("", "dev-1");
    let r = enroll(ca.addr, &root, "dev-1", &t, &request);
    assert_eq!(
        r.header("content-type"),
        Some("application/pkcs7-mime; smime-type=certs-only")
    );
    let certs = certs_of(&r);
    assert_eq!(certs.len(), 1);
    let cert = &certs[0];
    assert!(
        cert.public_key().expect("pub").public_eq(&key),
        "not our key"
    );
    let der = cert.to_der().expect("der");
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&der).expect("parse");
    assert_eq!(
        parsed.subject().to_string(),
        format!("O={DEVICE_ORG}, CN=dev-1"),
        "the subject is the profile's"
    );
    let eku = parsed
        .extended_key_usage()
        .expect("eku")
        .expect("eku")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(
        parsed.extensions().iter().any(|e| matches!(
            e.parsed_extension(),
            x509_parser::extensions::ParsedExtension::CRLDistributionPoints(_)
        )),
        "no CRL distribution point"
    );
    // The online path writes records only: no file for the device, index.txt as it was...
    let serial = x509::cert::serial_hex(cert).expect("serial");
    assert!(!pki
        .layout()
        .leaf_cert(common::Role::Client, "dev-1")
        .exists());
    let index = || std::fs::read_to_string(pki.layout().ca_index()).expect("index.txt");
    assert!(!index().contains(&serial), "the CA rewrote index.txt");
    // ...until the CLI's next command brings the mirror up to date (`pki export`).
    let rec = pki
        .folder
        .list()
        .expect("list")
        .into_iter()
        .find(|r| r.name == "dev-1")
        .expect("recorded");
    assert_eq!(rec.state, State::Issued);
    assert_eq!(rec.serial, serial);
    assert!(index().contains(&format!("\t{serial}\tclient/dev-1.crt\t")));
    // The same token again, for another key: spent. (For the same key it is a retry.)
    let r = enroll(ca.addr, &root, "dev-1", &t, &csr("", "dev-1").1);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("used already"), "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"EST\""));
    // A valid device holding the name: a new token does not take it over.
    let t2 = token(&pki, "dev-1");
    let r = enroll(ca.addr, &root, "dev-1", &t2, &csr("", "dev-1").1);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("holds a valid certificate"),
        "{}",
        r.text()
    );
    // Once revoked, a new token enrolls it again.
    pki.folder
        .revoke(&pki.folder.issuer().expect("ca"), "dev-1", None)
        .expect("revoke");
    let r = enroll(ca.addr, &root, "dev-1", &t2, &csr("", "dev-1").1);
    assert_eq!(certs_of(&r).len(), 1);
}

/// A device whose answer was lost (it closed the connection before reading, as a dropped radio
/// link or a proxy timeout would) retries with the same token and request and gets the
/// certificate recorded for it; the spent token with another key is still refused.
#[test]
fn a_retry_after_a_lost_answer_gets_the_same_certificate() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &[], &[]);
    let root = pki.layout().ca_cert();
    let t = token(&pki, "dev-5");
    let (key, request) = csr("", "dev-5");
    let body = ca::wire::encode_base64(&request);
    let head = format!(
        "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/pkcs10{}\r\nContent-Length: {}\r\n\r\n",
        basic("dev-5", &t),
        body.len()
    );
    let mut lost = support::connect(ca.addr, &root, None);
    lost.write_all(head.as_bytes()).expect("head");
    lost.write_all(body.as_bytes()).expect("body");
    // The CA commits and answers; the answer is never read, and the connection goes.
    let recorded = (0..100)
        .find_map(|_| {
            let found = pki
                .folder
                .list()
                .expect("list")
                .into_iter()
                .find(|r| r.name == "dev-5");
            found.or_else(|| {
                std::thread::sleep(Duration::from_millis(50));
                None
            })
        })
        .expect("the first request was committed");
    drop(lost);
    let r = enroll(ca.addr, &root, "dev-5", &t, &request);
    assert_eq!(r.status, 200, "{}", r.text());
    let again = &certs_of(&r)[0];
    assert_eq!(
        x509::cert::serial_hex(again).expect("serial"),
        recorded.serial
    );
    assert!(again.public_key().expect("key").public_eq(&key));
    assert!(ca.log_text().contains("again=true"), "{}", ca.log_text());
    // The token stays spent for any other key.
    let r = enroll(ca.addr, &root, "dev-5", &t, &csr("", "dev-5").1);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("used already"), "{}", r.text());
    let records: Vec<_> = pki
        .folder
        .list()
        .expect("list")
        .into_iter()
        .filter(|r| r.name == "dev-5")
        .collect();
    assert_eq!(
        records.len(),
        1,
        "one certificate for one device: {records:?}"
    );
}

/// simplereenroll retried with the same request (the answer was lost) returns the certificate
/// already issued for it, not a second one; a renewal for another key is a new renewal.
#[test]
fn a_retried_renewal_gets_the_certificate_already_issued_for_it() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &[], &[]);
    let root = pki.layout().ca_cert();
    let (key, der) = csr("", "dev-7");
    let first = certs_of(&enroll(ca.addr, &root, "", &token(&pki, "dev-7"), &der)).remove(0);
    let (cert_file, key_file) = support::save(&pki.scratch().join("dev"), "dev-7", &first, &key);
    let me = Some((cert_file.as_path(), key_file.as_path()));
    let serial = |r: &support::Reply| x509::cert::serial_hex(&certs_of(r)[0]).expect("serial");
    let renewal = csr(DEVICE_ORG, "dev-7").1;
    let once = serial(&est_post(
        ca.addr,
        &root,
        me,
        "simplereenroll",
        "",
        &renewal,
    ));
    let twice = serial(&est_post(
        ca.addr,
        &root,
        me,
        "simplereenroll",
        "",
        &renewal,
    ));
    assert_eq!(once, twice, "the retry got a second certificate");
    let other = serial(&est_post(
        ca.addr,
        &root,
        me,
        "simplereenroll",
        "",
        &csr(DEVICE_ORG, "dev-7").1,
    ));
    assert_ne!(other, once);
    let old = x509::cert::serial_hex(&first).expect("serial");
    let renewing = pki
        .folder
        .list()
        .expect("list")
        .into_iter()
        .filter(|r| r.renews.as_deref() == Some(old.as_str()))
        .count();
    assert_eq!(renewing, 2, "one per key");
}

/// A Content-Length over the limit (64 KiB; 1 MiB here) is refused before the body is waited
/// for: 413 at once,
/// not 408 when the body timeout runs out.
#[test]
fn a_declared_length_over_the_limit_is_refused_at_once() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &["--body-timeout", "30s"], &[]);
    let root = pki.layout().ca_cert();
    let mut s = support::connect(ca.addr, &root, None);
    let head = format!(
        "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/pkcs10{}\r\nContent-Length: 1048576\r\n\r\nMIIB",
        basic("dev-1", "t")
    );
    let started = std::time::Instant::now();
    s.write_all(head.as_bytes()).expect("write");
    let r = support::read_reply(&mut s);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for the body timeout"
    );
}

/// Wrong tokens from one address are slowed past the limit: 429 with Retry-After, logged,
/// and nothing spent; a request without a token is not counted.
#[test]
fn wrong_tokens_from_one_peer_are_slowed() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &["--wrong-token-limit", "3"], &[]);
    let root = pki.layout().ca_cert();
    let request = csr("", "dev-8").1;
    for _ in 0..3 {
        let r = enroll(ca.addr, &root, "dev-8", "0badc0de", &request);
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let right = token(&pki, "dev-8");
    let r = enroll(ca.addr, &root, "dev-8", &right, &request);
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(r.text().contains("wrong enrollment tokens"), "{}", r.text());
    assert!(
        ca.log_text().contains("slowed for the rest of the minute"),
        "{}",
        ca.log_text()
    );
    // The right token was not looked at, so it is not spent: it enrolls once the minute is
    // over (not waited for here); the records hold nothing for dev-8.
    assert!(pki
        .folder
        .list()
        .expect("list")
        .iter()
        .all(|r| r.name != "dev-8"));
}

/// A chunked body that announces 2 GiB is refused at once (411: a body must say its length),
/// not held until the body timeout.
#[test]
fn a_chunked_body_is_refused_at_once() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &["--body-timeout", "30s"], &[]);
    let root = pki.layout().ca_cert();
    let mut s = support::connect(ca.addr, &root, None);
    let head = format!(
        "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/pkcs10{}\r\nTransfer-Encoding: chunked\r\n\r\n\
         80000000\r\nMIIB",
        basic("dev-1", "t")
    );
    let started = std::time::Instant::now();
    s.write_all(head.as_bytes()).expect("write");
    // The answer's head, as soon as it comes (the connection may linger after it).
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = std::io::Read::read(&mut s, &mut buf).expect("read");
        assert!(n > 0, "closed without an answer");
        seen.extend_from_slice(&buf[..n]);
    }
    let answered = started.elapsed();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.starts_with("HTTP/1.1 411"), "{text}");
    assert!(
        answered < Duration::from_secs(20),
        "answered after {answered:?}"
    );
}

/// Each bad request: its status, its reason, a log line, and nothing changed.
#[test]
fn bad_input_gets_its_status_and_reason_and_changes_nothing() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &["--body-timeout", "1s"], &[]);
    let root = pki.layout().ca_cert();
    let t = token(&pki, "dev-2");
    let other = token(&pki, "dev-3");
    let expired = pki
        .folder
        .create_token(Profile::Client, "dev-2", Duration::from_secs(1))
        .expect("token");
    let (_, good) = csr("", "dev-2");
    let mut bad_signature = good.clone();
    let last = bad_signature.len() - 2;
    bad_signature[last] ^= 0x55;
    let weak = {
        let rsa = openssl::rsa::Rsa::generate(1024).expect("rsa");
        csr_for(
            &openssl::pkey::PKey::from_rsa(rsa).expect("key"),
            "",
            "dev-2",
        )
    };
    let server_auth = server_auth_csr("dev-2");
    let records_before = pki.folder.list().expect("list");
    let files_before = testkit::snapshot(&pki.layout().dir(common::Role::Client));
    let auth = basic("dev-2", &t);
    let post = |extra: &str, body: &[u8]| {
        call(
            ca.addr,
            &root,
            None,
            &format!("POST /.well-known/est/simpleenroll HTTP/1.1{extra}"),
            body,
        )
    };
    let pkcs10 = format!("\r\nContent-Type: application/pkcs10{auth}");
    let b64 = |der: &[u8]| ca::wire::encode_base64(der).into_bytes();
    let cases: Vec<(&str, u16, &str, Vec<u8>, String)> = vec![
        (
            "malformed base64",
            400,
            "not base64",
            b"%%% not base64 %%%".to_vec(),
            pkcs10.clone(),
        ),
        (
            "not a request",
            400,
            "not a DER PKCS#10",
            b64(b"\x30\x03abc"),
            pkcs10.clone(),
        ),
        (
            "trailing bytes",
            400,
            "bytes follow the request",
            b64(&[good.as_slice(), b"junk"].concat()),
            pkcs10.clone(),
        ),
        (
            "bad signature",
            400,
            "signature does not verify",
            b64(&bad_signature),
            pkcs10.clone(),
        ),
        (
            "weak key",
            400,
            "RSA-1024: too weak",
            b64(&weak),
            pkcs10.clone(),
        ),
        (
            "serverAuth asked",
            400,
            "serverAuth",
            b64(&server_auth),
            pkcs10.clone(),
        ),
        (
            "wrong type",
            415,
            "application/pkcs10",
            b64(&good),
            format!("\r\nContent-Type: text/plain{auth}"),
        ),
        (
            "no token",
            401,
            "needs an enrollment token",
            b64(&good),
            "\r\nContent-Type: application/pkcs10".into(),
        ),
        (
            "unknown token",
            401,
            "not known",
            b64(&good),
            format!(
                "\r\nContent-Type: application/pkcs10{}",
                basic("dev-2", "0badc0de")
            ),
        ),
        (
            "expired token",
            401,
            "has expired",
            b64(&good),
            format!(
                "\r\nContent-Type: application/pkcs10{}",
                basic("dev-2", &expired)
            ),
        ),
        (
            "another name's token",
            403,
            "made for another name",
            b64(&good),
            format!("\r\nContent-Type: application/pkcs10{}", basic("", &other)),
        ),
        (
            "user is not the CN",
            400,
            "is not the request's CN",
            b64(&good),
            format!("\r\nContent-Type: application/pkcs10{}", basic("dev-9", &t)),
        ),
        (
            "1 MiB body",
            413,
            "larger than",
            vec![b'A'; 1 << 20],
            pkcs10.clone(),
        ),
    ];
    std::thread::sleep(Duration::from_millis(1100)); // the short token expires
    for (what, status, words, body, extra) in &cases {
        let r = post(extra, body);
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert!(r.text().contains(words), "{what}: {}", r.text());
        assert_eq!(
            r.text().trim().lines().count(),
            1,
            "{what}: one line: {}",
            r.text()
        );
    }
    // A slow client: headers, then a body that never completes.
    let r = slow_body(ca.addr, &root, &pkcs10);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        r.text().contains("did not arrive within 1 s"),
        "{}",
        r.text()
    );

    let log = ca.log_text();
    assert_eq!(
        log.matches("refused").count(),
        cases.len() + 1,
        "one log line per refusal:\n{log}"
    );
    assert!(
        !log.contains(&t) && !log.contains(&other),
        "a token in the log"
    );
    assert_eq!(
        pki.folder.list().expect("list"),
        records_before,
        "records changed"
    );
    assert_eq!(
        testkit::snapshot(&pki.layout().dir(common::Role::Client)),
        files_before
    );
    // The token was never spent: it still enrolls.
    let r = est_post(ca.addr, &root, None, "simpleenroll", &auth, &good);
    assert_eq!(certs_of(&r).len(), 1);
}

fn server_auth_csr(cn: &str) -> Vec<u8> {
    let key = pki::key::generate(pki::KeyAlgorithm::EcP256).expect("key");
    let mut name = openssl::x509::X509Name::builder().expect("name");
    name.append_entry_by_text("CN", cn).expect("cn");
    let mut b = openssl::x509::X509Req::builder().expect("req");
    b.set_subject_name(&name.build()).expect("subject");
    b.set_pubkey(&key).expect("pubkey");
    let mut exts = openssl::stack::Stack::new().expect("stack");
    exts.push(
        openssl::x509::extension::ExtendedKeyUsage::new()
            .server_auth()
            .build()
            .expect("eku"),
    )
    .expect("push");
    b.add_extensions(&exts).expect("exts");
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    b.build().to_der().expect("der")
}

fn slow_body(addr: std::net::SocketAddr, root: &std::path::Path, extra: &str) -> support::Reply {
    let mut s = support::connect(addr, root, None);
    let head = format!(
        "POST /.well-known/est/simpleenroll HTTP/1.1{extra}\r\nHost: localhost\r\nContent-Length: 600\r\nConnection: close\r\n\r\nMIIB"
    );
    s.write_all(head.as_bytes()).expect("write");
    support::read_reply(&mut s)
}

#[test]
fn reenroll_renews_with_the_certificate_being_renewed_and_refuses_revoked_and_expired() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &[], &[]);
    let root = pki.layout().ca_cert();
    let t = token(&pki, "dev-4");
    let (key, der) = csr("", "dev-4");
    let first = certs_of(&enroll(ca.addr, &root, "", &t, &der)).remove(0);
    let scratch = pki.scratch().join("device");
    let (cert_file, key_file) = support::save(&scratch, "dev-4", &first, &key);
    let me = Some((cert_file.as_path(), key_file.as_path()));

    // Renewal: same subject, a new key.
    let (new_key, renewal) = csr(DEVICE_ORG, "dev-4");
    let r = est_post(ca.addr, &root, me, "simplereenroll", "", &renewal);
    let second = certs_of(&r).remove(0);
    assert!(second.public_key().expect("pub").public_eq(&new_key));
    assert_eq!(
        second
            .subject_name()
            .try_cmp(first.subject_name())
            .expect("cmp"),
        std::cmp::Ordering::Equal
    );
    let old_serial = x509::cert::serial_hex(&first).expect("serial");
    let records = pki.folder.list().expect("list");
    let new_rec = records
        .iter()
        .find(|r| r.serial == x509::cert::serial_hex(&second).expect("serial"))
        .expect("new record");
    assert_eq!(new_rec.renews.as_deref(), Some(old_serial.as_str()));
    let old_rec = records
        .iter()
        .find(|r| r.serial == old_serial)
        .expect("old");
    assert_eq!(
        old_rec.state,
        State::Issued,
        "the old one stays valid until it expires"
    );

    // Without the certificate; with another device's subject.
    let r = est_post(ca.addr, &root, None, "simplereenroll", "", &renewal);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = est_post(
        ca.addr,
        &root,
        me,
        "simplereenroll",
        "",
        &csr("", "dev-9").1,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("keeps the subject"), "{}", r.text());
    // The template the device enrolled with (`/CN=dev-4`) is its identity too: renewed, under
    // the subject the CA issued.
    let third = certs_of(&est_post(ca.addr, &root, me, "simplereenroll", "", &der)).remove(0);
    assert!(third.public_key().expect("pub").public_eq(&key));
    assert_eq!(
        x509::cert::one_line(third.subject_name()),
        format!("/O={DEVICE_ORG}/CN=dev-4")
    );

    // Revoked: refused with the date.
    pki.folder
        .revoke(&pki.folder.issuer().expect("ca"), &old_serial, None)
        .expect("revoke");
    let r = est_post(ca.addr, &root, me, "simplereenroll", "", &renewal);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("was revoked on"), "{}", r.text());

    // Expired, and of another CA: refused with the reason.
    let refused = |cert: &std::path::Path, key: &std::path::Path, words: &str| {
        let r = est_post(
            ca.addr,
            &root,
            Some((cert, key)),
            "simplereenroll",
            "",
            &renewal,
        );
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains(words), "{}", r.text());
    };
    let now = x509::time::now();
    let spec = pki::CertSpec::new(Profile::Client)
        .validity(pki::Validity::between(now - 3 * 86_400, now - 86_400));
    let (old_cert, old_key) = pki.make_cert("dev-4", &spec);
    refused(&old_cert, &old_key, "expired on");
    let (mallory, mallory_key) = pki.make_self_signed("dev-4");
    refused(&mallory, &mallory_key, "does not verify");
}

/// RFC 7030 §3.3.2: where the policy allows it, a valid device certificate authenticates
/// simpleenroll for its own name; by default only a token does.
#[test]
fn a_device_certificate_enrolls_only_when_the_policy_allows_it() {
    let pki = TestPki::new();
    let root = pki.layout().ca_cert();
    let (issued_cert, issued_key) = pki.issue_client("dev-6");
    // The device's own copy: the CA rewrites client/dev-6.crt of its folder when it issues.
    let (cert, key) = (
        pki.scratch().join("dev-6.crt"),
        pki.scratch().join("dev-6.key"),
    );
    std::fs::copy(issued_cert, &cert).expect("copy");
    std::fs::copy(issued_key, &key).expect("copy");
    let me = Some((cert.as_path(), key.as_path()));
    let request = csr(DEVICE_ORG, "dev-6").1;
    let strict = CaProcess::start(pki.dir(), &[], &[]);
    let r = est_post(strict.addr, &root, me, "simpleenroll", "", &request);
    assert_eq!(r.status, 401, "{}", r.text());
    drop(strict);
    let open = CaProcess::start(pki.dir(), &["--enroll-with-certificate"], &[]);
    let issued = certs_of(&est_post(
        open.addr,
        &root,
        me,
        "simpleenroll",
        "",
        &request,
    ));
    let mine = openssl::x509::X509::from_pem(&std::fs::read(&cert).expect("read")).expect("pem");
    let same = issued[0].subject_name().try_cmp(mine.subject_name());
    assert_eq!(same.expect("cmp"), std::cmp::Ordering::Equal);
    // Its own name only: a request for another is refused.
    let r = est_post(
        open.addr,
        &root,
        me,
        "simpleenroll",
        "",
        &csr(DEVICE_ORG, "dev-7").1,
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn the_crl_is_served_with_validators_and_follows_each_revocation() {
    let pki = TestPki::new();
    let ca = CaProcess::start(pki.dir(), &[], &[]);
    let root = pki.layout().ca_cert();
    let get = |extra: &str| {
        call(
            ca.addr,
            &root,
            None,
            &format!("GET /crl HTTP/1.1{extra}"),
            b"",
        )
    };
    let r = get("");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pkix-crl"));
    let crl = openssl::x509::X509Crl::from_der(&r.body).expect("DER CRL");
    let ca_key = pki
        .folder
        .issuer()
        .expect("ca")
        .certificate()
        .public_key()
        .expect("pub");
    assert!(crl.verify(&ca_key).expect("verify"));
    let etag = r.header("etag").expect("etag").to_owned();
    let modified = r.header("last-modified").expect("last-modified").to_owned();
    assert_eq!(get(&format!("\r\nIf-None-Match: {etag}")).status, 304);
    assert_eq!(
        get(&format!("\r\nIf-Modified-Since: {modified}")).status,
        304
    );

    let (serial_cert, _) = pki.issue_client("dev-5");
    let serial = x509::cert::serial_hex(
        &openssl::x509::X509::from_pem(&std::fs::read(serial_cert).expect("read")).expect("pem"),
    )
    .expect("serial");
    pki.folder
        .revoke(&pki.folder.issuer().expect("ca"), "dev-5", None)
        .expect("revoke");
    let r = get(&format!("\r\nIf-None-Match: {etag}"));
    assert_eq!(r.status, 200, "a revocation is served at once");
    let crl = openssl::x509::X509Crl::from_der(&r.body).expect("DER CRL");
    let listed: Vec<String> = crl
        .get_revoked()
        .map(|s| {
            s.iter()
                .map(|r| {
                    r.serial_number()
                        .to_bn()
                        .expect("bn")
                        .to_hex_str()
                        .expect("hex")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(listed, [serial]);
    assert_ne!(r.header("etag").expect("etag"), etag);
    let pem = call(ca.addr, &root, None, "GET /crl.pem HTTP/1.1", b"");
    assert!(
        openssl::x509::X509Crl::from_pem(&pem.body).is_ok(),
        "{}",
        pem.text()
    );
    assert_eq!(pem.header("content-type"), Some("application/x-pem-file"));
}
