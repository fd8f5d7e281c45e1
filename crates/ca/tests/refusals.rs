//! The `ca` binary refusing what it must, byte for byte: every bad input with its status and
//! reason (and nothing changed), bodies that announce too much refused at once, and wrong
//! tokens from one address slowed.

mod support;

use std::io::Write;
use std::time::Duration;

use pki::Profile;
use support::{basic, call, certs_of, csr, csr_for, enroll, est_post, CaProcess};
use testkit::TestPki;

fn token(pki: &TestPki, name: &str) -> String {
    pki.folder
        .create_token(Profile::Client, name, Duration::from_secs(3600))
        .expect("token")
}

/// A Content-Length over the limit (64 KiB; 1 MiB here) is refused before the body is waited
/// for: 413 at once, not 408 when the body timeout runs out.
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
