//! The `ca` binary over TLS, byte for byte as RFC 7030 puts it: cacerts, a first enrollment
//! by token, renewal by the certificate being renewed, every bad input refused with its
//! status and reason (and nothing changed), and the CRL with its validators.

mod support;

use std::io::Write;
use std::time::Duration;

use pki::store::State;
use pki::Profile;
use support::{basic, call, certs_of, csr, enroll, est_post, CaProcess};
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
