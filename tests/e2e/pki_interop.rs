//! `pki init` output judged by verifiers we did not write: the openssl CLI, Python's ssl
//! module (with Python 3.13's strict flags) and rustls-webpki.

use std::process::{Command, Stdio};

use pki::index::Reason;
use pki::KeyAlgorithm;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::support::{run, s, TestPki};

fn openssl_verify(
    pki: &TestPki,
    purpose: &str,
    cert: &std::path::Path,
    extra: &[&str],
) -> (bool, String) {
    let ca = pki.layout().ca_cert();
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-auth_level",
        "2",
        "-purpose",
        purpose,
    ];
    args.extend_from_slice(extra);
    args.extend(["-CAfile", s(&ca), cert.to_str().expect("utf-8")]);
    run("openssl", &args)
}

#[test]
fn openssl_cli_accepts_server_and_client_for_their_purposes_only() {
    for key in [
        KeyAlgorithm::EcP256,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::EcP384,
    ] {
        let pki = TestPki::with_key(key);
        let l = pki.layout();
        for host in [
            ["-verify_ip", "127.0.0.1"],
            ["-verify_ip", "::1"],
            ["-verify_hostname", "localhost"],
        ] {
            let (ok, out) = openssl_verify(&pki, "sslserver", &l.server_cert(), &host);
            assert!(ok && out.contains(": OK"), "{key} server {host:?}: {out}");
        }
        let (ok, out) = openssl_verify(&pki, "sslclient", &l.client_cert(), &[]);
        assert!(ok, "{key} client: {out}");

        // And the reasons when misused.
        let (ok, out) = openssl_verify(&pki, "sslserver", &l.client_cert(), &[]);
        assert!(
            !ok && out.contains("unsuitable certificate purpose"),
            "{out}"
        );
        let (ok, out) = openssl_verify(
            &pki,
            "sslserver",
            &l.server_cert(),
            &["-verify_hostname", "evil.example"],
        );
        assert!(!ok && out.contains("hostname mismatch"), "{out}");
    }
}

#[test]
fn revoked_client_is_reported_by_openssl_crl_check() {
    let pki = TestPki::new();
    let l = pki.layout();
    let crl = l.ca_crl();
    let (ok, out) = openssl_verify(
        &pki,
        "sslclient",
        &l.client_cert(),
        &["-crl_check", "-CRLfile", s(&crl)],
    );
    assert!(ok, "before revocation: {out}");

    let ca = pki.folder.issuer().expect("ca");
    let revoked = pki
        .folder
        .revoke(&ca, "client", Some(Reason::KeyCompromise))
        .expect("revoke");
    assert_eq!(revoked.len(), 1);
    let (ok, out) = openssl_verify(
        &pki,
        "sslclient",
        &l.client_cert(),
        &["-crl_check", "-CRLfile", s(&crl)],
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    // The server is untouched by the client's revocation.
    let (ok, out) = openssl_verify(
        &pki,
        "sslserver",
        &l.server_cert(),
        &["-crl_check", "-CRLfile", s(&crl)],
    );
    assert!(ok, "{out}");

    // Our own verifier agrees, with the plain reason.
    let cert = x509::cert::load_cert("client", &l.client_cert()).expect("cert");
    let opts = pki::verify::Options {
        purpose: Some(pki::verify::Purpose::Client),
        crl: Some(crl.clone()),
        ..Default::default()
    };
    let f = pki::verify::verify(&cert, &[], &[ca.certificate().to_owned()], &opts)
        .expect("runs")
        .expect_err("must fail");
    assert_eq!(f.code, 23);
    assert!(f.plain.contains("revoked"), "{f}");

    // The CRL is v2, numbered, with a next update.
    let (ok, text) = run("openssl", &["crl", "-in", s(&crl), "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("Version 2")
            && text.contains("X509v3 CRL Number")
            && text.contains("Next Update"),
        "{text}"
    );
    assert!(text.contains(&revoked[0].serial), "{text}");
}

/// `openssl pkcs12 -info -in P12 -passin pass:PASSWORD EXTRA…`: (success, output).
fn pkcs12_info(p12: &std::path::Path, password: &str, extra: &str) -> (bool, String) {
    run(
        "openssl",
        &[
            "pkcs12",
            "-info",
            "-in",
            s(p12),
            "-passin",
            &format!("pass:{password}"),
            extra,
        ],
    )
}

#[test]
fn openssl_reads_the_pkcs12_with_its_password_only() {
    let pki = TestPki::new();
    let p12 = pki.layout().client_p12("client");
    let (ok, out) = pkcs12_info(&p12, "test-pass", "-nokeys");
    assert!(ok, "{out}");
    assert!(
        out.contains("CN = client") || out.contains("CN=client"),
        "{out}"
    );
    assert!(
        out.contains("Root CA"),
        "the CA travels in the bundle: {out}"
    );
    let (ok, out) = pkcs12_info(&p12, "wrong", "-nokeys");
    assert!(!ok, "a wrong password must fail: {out}");
}

/// The bundle's encryption, as OpenSSL reports it: AES-256/PBKDF2 with a SHA-256 MAC by default,
/// SHA-1/3DES with `--legacy` (for importers that predate PBES2).
#[test]
fn pkcs12_is_aes_by_default_and_3des_when_legacy() {
    let pki = TestPki::new();
    let ca = pki.folder.issuer().expect("ca");
    for (encryption, expect, refuse) in [
        (
            pki::P12Encryption::Modern,
            ["PBES2, PBKDF2, AES-256-CBC", "MAC: sha256"],
            "3DES",
        ),
        (
            pki::P12Encryption::Legacy,
            ["pbeWithSHA1And3-KeyTripleDES-CBC", "MAC: sha1"],
            "PBES2",
        ),
    ] {
        let p12 = pki
            .folder
            .export_p12(
                &ca,
                "client",
                "test-pass",
                encryption,
                pki::files::Overwrite::Replace,
            )
            .expect("export");
        let (ok, out) = pkcs12_info(&p12, "test-pass", "-noout");
        assert!(ok, "{encryption:?}: {out}");
        for e in expect {
            assert!(out.contains(e), "{encryption:?}: expected {e:?} in {out}");
        }
        assert!(!out.contains(refuse), "{encryption:?}: {out}");
    }
}

/// Python loads what the seed's Flask server could not (EE_KEY_TOO_SMALL), and completes a
/// mutual-TLS handshake with VERIFY_X509_STRICT on both sides (Python 3.13's default).
#[test]
fn python_ssl_does_a_strict_mutual_handshake() {
    python_strict_handshake(&TestPki::new());
}

/// Both sides of a mutual handshake in Python's `ssl` with VERIFY_X509_STRICT, on `pki`'s
/// files (leaf files carry their chain).
fn python_strict_handshake(pki: &TestPki) {
    let l = pki.layout();
    let script = r#"
import socket, ssl, sys, threading
ca, scrt, skey, ccrt, ckey = sys.argv[1:6]
srv = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
srv.load_cert_chain(scrt, skey)
srv.verify_mode = ssl.CERT_REQUIRED
srv.verify_flags |= ssl.VERIFY_X509_STRICT
cli = ssl.create_default_context(cafile=ca)
cli.verify_flags |= ssl.VERIFY_X509_STRICT
cli.load_cert_chain(ccrt, ckey)
assert cli.check_hostname and cli.verify_mode == ssl.CERT_REQUIRED
a, b = socket.socketpair()
out = {}
def serve():
    with srv.wrap_socket(a, server_side=True) as t:
        out["peer"] = dict(x[0] for x in t.getpeercert()["subject"])["commonName"]
        t.sendall(b"hi")
th = threading.Thread(target=serve); th.start()
for host in ("localhost",):
    with cli.wrap_socket(b, server_hostname=host) as t:
        assert t.recv(2) == b"hi"
        print("server", dict(x[0] for x in t.getpeercert()["subject"])["commonName"], t.version())
th.join()
print("client", out["peer"])
# The IP SANs are real iPAddress entries: match them the way urllib does.
cert = ssl._ssl._test_decode_cert(scrt)
print("san", sorted(v for k, v in cert["subjectAltName"]))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([
            &l.ca_cert(),
            &l.server_cert(),
            &l.server_key(),
            &l.client_cert(),
            &l.client_key(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("server localhost TLSv1.3"), "{text}");
    assert!(text.contains("client client"), "{text}");
    assert!(
        text.contains("'127.0.0.1'") && text.contains("'0:0:0:0:0:0:0:1'"),
        "{text}"
    );
}

#[test]
fn rustls_webpki_accepts_both_chains_for_their_use() {
    for key in [
        KeyAlgorithm::EcP256,
        KeyAlgorithm::EcP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Ed25519,
    ] {
        let pki = TestPki::with_key(key);
        let l = pki.layout();
        let ca = CertificateDer::from(pki.der(&l.ca_cert()));
        let anchors = [webpki::anchor_from_trusted_cert(&ca).expect("anchor")];
        let now = UnixTime::now();

        let server = CertificateDer::from(pki.der(&l.server_cert()));
        let ee = webpki::EndEntityCert::try_from(&server).expect("server ee");
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{key} server: {e}"));
        for name in ["localhost", "127.0.0.1", "::1"] {
            ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).expect("name"))
                .unwrap_or_else(|e| panic!("{key} {name}: {e}"));
        }
        assert!(ee
            .verify_is_valid_for_subject_name(&ServerName::try_from("example.com").expect("name"))
            .is_err());
        // The server certificate is not a client certificate.
        assert!(ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &[],
                now,
                webpki::KeyUsage::client_auth(),
                None,
                None
            )
            .is_err());

        let client = CertificateDer::from(pki.der(&l.client_cert()));
        let ee = webpki::EndEntityCert::try_from(&client).expect("client ee");
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            now,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{key} client: {e}"));
    }
}

/// Two levels with name constraints, as `pki init --intermediate --permit-dns …` makes them:
/// Python's strict mode and rustls-webpki build root → intermediate → leaf, and webpki refuses
/// a certificate outside the constraints (signed by hand with the intermediate's key).
#[test]
fn two_levels_with_name_constraints_pass_python_strict_and_webpki() {
    let pki = TestPki::with_options(pki::InitOptions {
        intermediate: true,
        p12_password: Some("test-pass".into()),
        constraints: pki::constraints::NameConstraints {
            dns: vec!["localhost".into(), ".internal".into()],
            ip: ["127.0.0.1", "::1"]
                .iter()
                .map(|n| pki::constraints::IpNet::parse(n).expect("net"))
                .collect(),
        },
        ..pki::InitOptions::default()
    });
    python_strict_handshake(&pki);
    let l = pki.layout();
    let root = CertificateDer::from(pki.der(&l.ca_cert()));
    let anchors = [webpki::anchor_from_trusted_cert(&root).expect("anchor")];
    let inter = [CertificateDer::from(pki.der(&l.intermediate_cert()))];
    let check = |cert: &[u8], usage: webpki::KeyUsage| {
        let der = CertificateDer::from(cert.to_vec());
        let ee = webpki::EndEntityCert::try_from(&der).expect("ee");
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
    };
    check(&pki.der(&l.server_cert()), webpki::KeyUsage::server_auth()).expect("server");
    check(&pki.der(&l.client_cert()), webpki::KeyUsage::client_auth()).expect("client");
    let ca = pki.folder.issuer().expect("intermediate");
    let key = pki::key::generate(KeyAlgorithm::EcP256).expect("key");
    let req =
        pki::request::build(&key, &pki::Subject::new("Evil", "bank.example.com")).expect("req");
    let spec = pki::CertSpec::new(pki::Profile::Server)
        .names(vec!["bank.example.com".parse().expect("san")]);
    let outside = ca.sign(&req, &spec).expect("signed by hand");
    let e = check(
        &outside.to_der().expect("der"),
        webpki::KeyUsage::server_auth(),
    )
    .expect_err("outside the constraints");
    assert!(e.contains("NameConstraint"), "{e}");
}
