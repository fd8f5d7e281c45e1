//! The server through real handshakes: one-way and mutual TLS, every way a client certificate
//! must be refused (and the alert that says why), the routes, access lists, reload, resumption.

use std::path::Path;

use openssl::ssl::SslVersion;
use pki::{CertSpec, Profile, Validity};
use server::{ClientAuth, Config, TlsProfile};

use crate::support::{run, s, TestPki, TestServer};
use crate::tls_client::{self as tc, Opts};

fn serve(pki: &TestPki, auth: ClientAuth) -> TestServer {
    TestServer::spawn(Config::for_pki(pki.layout().root(), auth)).expect("server starts")
}

const V12: Option<SslVersion> = Some(SslVersion::TLS1_2);
const V13: Option<SslVersion> = Some(SslVersion::TLS1_3);

/// Asserts the server refuses `pair` with an alert naming `reason`, over TLS 1.2 and 1.3.
fn assert_refused(
    srv: &TestServer,
    ca: &Path,
    pair: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    reason: &str,
) {
    assert_refused_with(srv, ca, pair, [reason, reason]);
}

/// Same, with the alert expected over TLS 1.2 and over TLS 1.3.
fn assert_refused_with(
    srv: &TestServer,
    ca: &Path,
    pair: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    reasons: [&str; 2],
) {
    for (version, reason) in [V12, V13].into_iter().zip(reasons) {
        let o = Opts {
            ca: Some(ca),
            cert: pair.map(|(c, k)| (c.as_path(), k.as_path())),
            version,
            ..Opts::default()
        };
        let err = tc::refusal(srv.addr, &o);
        assert!(
            err.contains(reason),
            "{version:?}: expected alert {reason:?}, got: {err}"
        );
    }
}

#[test]
fn one_way_serves_without_a_client_certificate() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::None);
    let o = Opts {
        ca: Some(&pki.layout().ca_cert()),
        ..Opts::default()
    };
    let r = tc::get(srv.addr, &o, "/login").expect("GET /login");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello World!"));
    let r = tc::get(srv.addr, &o, "/whoami").expect("GET /whoami");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("no client certificate"), "{}", r.body);
}

#[test]
fn mutual_tls_knows_the_client() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &pair), "/whoami").expect("whoami");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["common_name"], "client");
    assert_eq!(
        v["subject"],
        "/O=https Project Device Certificate/CN=client"
    );
    let cert = x509::cert::load_cert("client", &pair.0).expect("cert");
    assert_eq!(v["serial"], x509::cert::serial_hex(&cert).expect("serial"));
    let fp: String = cert
        .digest(openssl::hash::MessageDigest::sha256())
        .expect("fp")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v["sha256"], fp);
    assert!(v["not_after"].as_str().expect("date").starts_with("20"));
}

#[test]
fn mutual_tls_refuses_every_bad_client_certificate_in_the_handshake() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();

    // TLS 1.2 has no certificate_required alert.
    assert_refused_with(
        &srv,
        &ca,
        None,
        ["alert handshake failure", "alert certificate required"],
    );

    let stranger = TestPki::new();
    assert_refused(&srv, &ca, Some(&stranger.client()), "alert unknown ca");
    assert_refused(
        &srv,
        &ca,
        Some(&pki.make_self_signed("mallory")),
        "alert unknown ca",
    );

    let now = x509::time::now();
    let expired = pki.make_cert(
        "expired",
        &CertSpec::new(Profile::Client)
            .validity(Validity::between(now - 90 * 86_400, now - 86_400)),
    );
    assert_refused(&srv, &ca, Some(&expired), "alert certificate expired");

    let early = pki.make_cert(
        "early",
        &CertSpec::new(Profile::Client)
            .validity(Validity::between(now + 86_400, now + 90 * 86_400)),
    );
    assert_refused(&srv, &ca, Some(&early), "alert bad certificate");

    // A server certificate (EKU serverAuth only) is not a client certificate.
    assert_refused(
        &srv,
        &ca,
        Some(&(pki.layout().server_cert(), pki.layout().server_key())),
        "alert unsupported certificate",
    );

    // Our CA profile has no digitalSignature nor clientAuth: OpenSSL refuses it as a client.
    let sub_ca = pki.make_cert("sub-ca", &CertSpec::new(Profile::Ca));
    assert_refused(&srv, &ca, Some(&sub_ca), "alert unsupported certificate");
    // A CA:TRUE certificate that has them: OpenSSL alone would accept it, our check does not.
    assert_refused(
        &srv,
        &ca,
        Some(&pki.make_ca_true_client("ca-leaf")),
        "alert handshake failure",
    );

    // The good one still works afterwards.
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &pki.client()), "/login").expect("good client");
    assert_eq!(r.status, 200);
}

fn s_client(addr: &str, pki: &TestPki, version: &str, extra: &[&str]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let l = pki.layout();
    let (ca, cert, key) = (l.ca_cert(), l.client_cert(), l.client_key());
    let mut args = vec![
        "s_client",
        "-connect",
        addr,
        "-servername",
        "localhost",
        "-CAfile",
        s(&ca),
        "-cert",
        s(&cert),
        "-key",
        s(&key),
        version,
        "-ign_eof",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_revoked_client_is_refused_after_reload_even_when_resuming() {
    for (version, label) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let pki = TestPki::new();
        let srv = serve(&pki, ClientAuth::Required);
        let addr = srv.addr.to_string();
        let dir = tempfile::tempdir().expect("tmp");
        let sess = dir.path().join("sess.pem");
        let first = s_client(&addr, &pki, version, &["-sess_out", s(&sess)]);
        assert!(
            first.contains(&format!("New, {label}"))
                && first.contains("\"common_name\":\"client\""),
            "{first}"
        );
        let again = s_client(&addr, &pki, version, &["-sess_in", s(&sess)]);
        assert!(
            again.contains(&format!("Reused, {label}"))
                && again.contains("\"common_name\":\"client\""),
            "resumption works: {again}"
        );

        let ca = pki.folder.issuer().expect("ca");
        pki.folder.revoke(&ca, "client", None).expect("revoke");
        srv.tls.reload().expect("reload with the new CRL");
        let after = s_client(&addr, &pki, version, &["-sess_in", s(&sess)]);
        assert!(
            !after.contains("Reused"),
            "{label}: a session from before the revocation must not resume: {after}"
        );
        assert!(!after.contains("common_name"), "{label}: {after}");
        // In TLS 1.3 the alert comes after s_client has sent its request; the server lingers,
        // so it is read rather than lost to a reset.
        assert!(
            after.contains("alert certificate revoked"),
            "{label}: {after}"
        );
    }
}

#[test]
fn session_cache_zero_turns_resumption_off() {
    for (version, label) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let pki = TestPki::new();
        let mut cfg = Config::for_pki(pki.layout().root(), ClientAuth::Required);
        cfg.session_cache = 0;
        let srv = TestServer::spawn(cfg).expect("server starts");
        let addr = srv.addr.to_string();
        let dir = tempfile::tempdir().expect("tmp");
        let sess = dir.path().join("sess.pem");
        let first = s_client(&addr, &pki, version, &["-sess_out", s(&sess)]);
        assert!(first.contains(&format!("New, {label}")), "{first}");
        if sess.exists() {
            let again = s_client(&addr, &pki, version, &["-sess_in", s(&sess)]);
            assert!(again.contains(&format!("New, {label}")), "{label}: {again}");
            assert!(again.contains("\"common_name\":\"client\""), "{again}");
        }
    }
}

#[test]
fn login1_answers_true_false_413_415() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let o = Opts::mutual(&ca, &pair);
    let form = "application/x-www-form-urlencoded";
    let cases = [
        ("username=name&password=pwd1", "true"),
        ("username=name&password=wrong", "false"),
        ("username=nobody&password=pwd1", "false"),
        ("username=name", "false"),
        ("password=pwd1", "false"),
        ("", "false"),
        ("username=name&password=pwd1&password=x", "true"),
        ("username=%6eame&password=%70wd1", "true"),
        ("username=name&password=%ff%fe", "false"),
    ];
    for (body, want) in cases {
        let r = tc::post(srv.addr, &o, "/login1", form, body).expect("post");
        assert_eq!((r.status, r.body.as_str()), (200, want), "{body}");
    }
    let big = format!("username=name&password={}", "x".repeat(5000));
    let r = tc::post(srv.addr, &o, "/login1", form, &big).expect("post");
    assert_eq!(r.status, 413, "{}", r.body);
    let r = tc::post(
        srv.addr,
        &o,
        "/login1",
        "application/json",
        r#"{"username":"name","password":"pwd1"}"#,
    )
    .expect("post");
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(r.body.contains("\"error\""), "{}", r.body);
    let r = tc::get(srv.addr, &o, "/login1").expect("get");
    assert_eq!(r.status, 405);
    let r = tc::get(srv.addr, &o, "/nope").expect("get");
    assert_eq!(r.status, 404);
    let r = tc::get(srv.addr, &o, "/healthz").expect("get");
    assert_eq!(r.status, 200);
}

#[test]
fn access_lists_answer_403_to_others() {
    let pki = TestPki::new();
    let sensor = pki.issue_client("sensor-1");
    let mut cfg = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    cfg.allow_cn = vec!["sensor-1".into()];
    let srv = TestServer::spawn(cfg).expect("server starts");
    let ca = pki.layout().ca_cert();
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &pki.client()), "/login").expect("get");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = tc::get(srv.addr, &Opts::mutual(&ca, &sensor), "/login").expect("get");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn reload_serves_the_new_certificate_and_a_broken_one_keeps_the_old() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    // The client keeps its own copy of the CA: the test deletes the server's.
    let ca_path = pki.layout().root().join("client-trust.crt");
    std::fs::copy(pki.layout().ca_cert(), &ca_path).expect("copy ca");
    let pair = pki.client();
    let o = Opts::mutual(&ca_path, &pair);
    let first = tc::get(srv.addr, &o, "/login").expect("get").peer_serial;

    let ca = pki.folder.issuer().expect("ca");
    pki.folder
        .issue(
            &ca,
            &pki::Leaf::server("server", pki::SubjectAltName::localhost()),
            pki::files::Overwrite::Replace,
        )
        .expect("reissue");
    srv.tls.reload().expect("reload");
    let second = tc::get(srv.addr, &o, "/login").expect("get").peer_serial;
    assert_ne!(first, second, "the new certificate is served");

    std::fs::write(pki.layout().server_cert(), "garbage").expect("break it");
    let Err(e) = srv.tls.reload() else {
        panic!("a broken certificate must not load");
    };
    assert!(e.to_string().contains("server/server.crt"), "{e}");
    let third = tc::get(srv.addr, &o, "/login").expect("still serving");
    assert_eq!(
        third.peer_serial, second,
        "the old certificate keeps serving"
    );

    std::fs::remove_file(pki.layout().ca_cert()).expect("rm ca");
    assert!(srv.tls.reload().is_err());
    assert_eq!(
        tc::get(srv.addr, &o, "/login")
            .expect("still serving")
            .status,
        200
    );
}

#[test]
fn tls_settings_follow_mozilla_profiles() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::None);
    let ca = pki.layout().ca_cert();
    let base = Opts {
        ca: Some(&ca),
        ..Opts::default()
    };

    let r = tc::get(
        srv.addr,
        &Opts {
            alpn: Some(b"\x02h2\x08http/1.1"),
            ..base.clone()
        },
        "/healthz",
    );
    // We speak HTTP/1.1 on the wire here, so only the negotiation is checked.
    let _ = r;
    let r = tc::get(
        srv.addr,
        &Opts {
            alpn: Some(b"\x08http/1.1"),
            ..base.clone()
        },
        "/healthz",
    )
    .expect("h1");
    assert_eq!(r.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(r.version, "TLSv1.3");
    let r = tc::get(
        srv.addr,
        &Opts {
            version: V12,
            ..base.clone()
        },
        "/healthz",
    )
    .expect("tls 1.2");
    assert_eq!(r.version, "TLSv1.2");
}

#[test]
fn old_protocols_groups_and_ciphers_are_refused() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::None);
    let ca = pki.layout().ca_cert();
    let base = Opts {
        ca: Some(&ca),
        ..Opts::default()
    };
    for (name, o) in [
        (
            "TLS 1.1",
            Opts {
                version: Some(SslVersion::TLS1_1),
                ..base.clone()
            },
        ),
        (
            "TLS 1.0",
            Opts {
                version: Some(SslVersion::TLS1),
                ..base.clone()
            },
        ),
        (
            "X448 only",
            Opts {
                groups: Some("X448"),
                ..base.clone()
            },
        ),
        (
            "P-521 only",
            Opts {
                groups: Some("P-521"),
                ..base.clone()
            },
        ),
        (
            "CBC only",
            Opts {
                version: V12,
                ciphers: Some("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"),
                ..base.clone()
            },
        ),
        (
            "DHE only",
            Opts {
                version: V12,
                ciphers: Some("DHE-RSA-AES128-GCM-SHA256"),
                ..base.clone()
            },
        ),
    ] {
        let e = tc::get(srv.addr, &o, "/healthz")
            .err()
            .unwrap_or_else(|| panic!("{name} must be refused"));
        assert!(e.contains("handshake"), "{name}: {e}");
    }
}

#[test]
fn the_modern_profile_speaks_tls_1_3_only() {
    let pki = TestPki::new();
    let ca = pki.layout().ca_cert();
    let base = Opts {
        ca: Some(&ca),
        ..Opts::default()
    };
    let mut cfg = Config::for_pki(pki.layout().root(), ClientAuth::None);
    cfg.tls_profile = TlsProfile::Modern;
    let modern = TestServer::spawn(cfg).expect("server starts");
    assert!(tc::get(
        modern.addr,
        &Opts {
            version: V12,
            ..base.clone()
        },
        "/healthz"
    )
    .is_err());
    assert!(tc::get(modern.addr, &base, "/healthz").is_ok());
}

#[test]
fn h2_clients_get_a_clean_alert_for_a_foreign_certificate() {
    // actix-web#3611: with h2 negotiated, a foreign client certificate must still end in a TLS
    // alert, not a reset. (curl is pinned to TLS 1.2: with 1.3 it sends its request before the
    // server has judged the certificate, and the server's close can then arrive as a reset.)
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let stranger = TestPki::new();
    let ca = pki.layout().ca_cert();
    let pair = stranger.client();
    for version in [V12, V13] {
        let o = Opts {
            alpn: Some(b"\x02h2"),
            version,
            ..Opts::mutual(&ca, &pair)
        };
        let e = tc::refusal(srv.addr, &o);
        assert!(e.contains("alert unknown ca"), "{version:?}: {e}");
    }
    let (ok, out) = run(
        "curl",
        &[
            "-sS",
            "--http2",
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--cacert",
            s(&ca),
            "--cert",
            s(&pair.0),
            "--key",
            s(&pair.1),
            &format!("https://localhost:{}/login", srv.addr.port()),
            "--resolve",
            &format!("localhost:{}:127.0.0.1", srv.addr.port()),
        ],
    );
    assert!(
        !ok && (out.contains("unknown ca") || out.contains("alert")),
        "{out}"
    );
}

#[test]
fn start_up_errors_name_the_file() {
    let pki = TestPki::new();
    let mut cfg = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    cfg.cert = Some(pki.layout().root().join("nope.crt"));
    let e = TestServer::spawn(cfg).err().expect("must fail");
    assert!(
        e.to_string().contains("nope.crt") && e.to_string().contains("make certs"),
        "{e}"
    );

    let mut cfg = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    cfg.key = Some(pki.layout().client_key());
    let e = TestServer::spawn(cfg).err().expect("must fail");
    assert!(
        e.to_string().contains("client.key") && e.to_string().contains("not the key of"),
        "{e}"
    );
}

/// Clients that send their request right behind their Finished (curl, browsers) must read the
/// alert, not a reset: the server lingers on a refused connection until the client is done.
#[test]
fn a_client_that_writes_first_still_reads_why_it_was_refused() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let ca = pki.layout().ca_cert();
    let stranger = TestPki::new();
    let foreign = stranger.client();
    for round in 0..20 {
        for (pair, alert) in [
            (None, "alert certificate required"),
            (Some(&foreign), "alert unknown ca"),
        ] {
            let o = Opts {
                ca: Some(&ca),
                cert: pair.map(|(c, k)| (c.as_path(), k.as_path())),
                version: V13,
                ..Opts::default()
            };
            let err = tc::refusal_after_write(srv.addr, &o);
            assert!(
                err.contains(alert),
                "round {round}: expected {alert:?}, got: {err}"
            );
        }
    }
}

/// A refused client that never closes is not kept: the server closes after its linger time.
#[test]
fn a_refused_connection_is_closed_even_if_the_client_stays() {
    use std::io::{Read, Write};
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    // Raw TCP: a TLS 1.2 ClientHello the server cannot answer (no shared cipher), then silence.
    let mut tcp = std::net::TcpStream::connect(srv.addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let hello = b"\x16\x03\x01\x00\x2d\x01\x00\x00\x29\x03\x03\
                  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00\x00\x02\x00\x05\x01\x00";
    tcp.write_all(hello).expect("write");
    let start = std::time::Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => panic!(
                "expected an orderly close, got {e} after {:?}",
                start.elapsed()
            ),
        }
    }
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "closed after {:?}",
        start.elapsed()
    );
}
