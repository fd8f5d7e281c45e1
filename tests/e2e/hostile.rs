//! Bad input, from strangers first: every case asserts its exact outcome, and that the server
//! still serves a good client afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use openssl::ssl::SslVersion;
use pki::{CertSpec, Profile};
use server::{ClientAuth, Config};

use crate::support::{capture_logs, server_log, TestPki, TestServer};
use crate::tls_client::{self as tc, Opts};

/// A mutual-TLS server with short timeouts, so the slow cases end quickly.
fn hardened(pki: &TestPki, tweak: impl FnOnce(&mut Config)) -> TestServer {
    capture_logs();
    let mut cfg = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    cfg.handshake_timeout_secs = 1;
    cfg.request_timeout_secs = 1;
    cfg.keep_alive_secs = 2;
    tweak(&mut cfg);
    TestServer::spawn(cfg).expect("server starts")
}

fn good<'a>(pki: &'a TestPki, pair: &'a (PathBuf, PathBuf), ca: &'a std::path::Path) -> Opts<'a> {
    let _ = pki;
    Opts {
        ca: Some(ca),
        cert: Some((&pair.0, &pair.1)),
        ..Opts::default()
    }
}

fn assert_alive(srv: &TestServer, pki: &TestPki) {
    let (pair, ca) = (pki.client(), pki.layout().ca_cert());
    let r = tc::get(srv.addr, &good(pki, &pair, &ca), "/login").expect("the server still serves");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello World!"));
}

/// Sends `bytes` on a raw TCP connection and reads until the server closes it (or `limit`).
/// Returns what came back and how long the server took to close.
fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(limit)).expect("timeout");
    if !bytes.is_empty() {
        s.write_all(bytes).expect("write");
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, Some(start.elapsed())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (out, Some(start.elapsed()))
            }
            Err(_) => return (out, None),
        }
    }
}

#[test]
fn transport_garbage_is_closed_and_the_server_lives() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |_| {});
    let wait = Duration::from_secs(5);

    // Plain HTTP to the TLS port: closed without an HTTP answer.
    let (out, closed) = raw(
        srv.addr,
        b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n",
        wait,
    );
    assert!(closed.is_some(), "plain HTTP must be closed");
    assert!(
        !out.starts_with(b"HTTP/"),
        "no HTTP answer on the TLS port: {out:?}"
    );

    // Random bytes.
    let mut noise = [0u8; 1024];
    openssl::rand::rand_bytes(&mut noise).expect("rand");
    noise[0] = 0x16; // looks like a handshake record, then nonsense
    let (_, closed) = raw(srv.addr, &noise, wait);
    assert!(closed.is_some(), "random bytes must be closed");

    // An SSLv2-style ClientHello (2-byte header with the high bit set).
    let sslv2 = [
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x07, 0x00, 0xc0, 0x05,
        0x00, 0x80, 0x03, 0x00, 0x80, 0x01, 0x00, 0x80, 0x06, 0x00, 0x40, 0x04, 0x00, 0x80, 0x02,
        0x00, 0x80, 0x0f, 0x1a, 0x3b, 0x4c, 0x5d, 0x6e, 0x7f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5,
        0xe6, 0xf7, 0x08,
    ];
    let (_, closed) = raw(srv.addr, &sslv2, wait);
    assert!(closed.is_some(), "an SSLv2 hello must be closed");

    // A truncated ClientHello: a record header promising 512 bytes, then 40 and silence.
    let mut truncated = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    truncated.extend_from_slice(&[0x42; 29]);
    let (_, closed) = raw(srv.addr, &truncated, wait);
    let took = closed.expect("a truncated hello is closed by the handshake timeout");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // A connection that sends nothing: closed by the handshake timeout (1 s here).
    let (_, closed) = raw(srv.addr, b"", wait);
    let took = closed.expect("an idle connection is closed");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );

    assert_alive(&srv, &pki);
}

#[test]
fn old_protocols_and_weak_ciphers_get_the_right_alert() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |_| {});
    let (pair, ca) = (pki.client(), pki.layout().ca_cert());
    for (name, o, alert) in [
        (
            "TLS 1.0 only",
            Opts {
                version: Some(SslVersion::TLS1),
                ..good(&pki, &pair, &ca)
            },
            "alert protocol version",
        ),
        (
            "TLS 1.1 only",
            Opts {
                version: Some(SslVersion::TLS1_1),
                ..good(&pki, &pair, &ca)
            },
            "alert protocol version",
        ),
        (
            "RSA key exchange, CBC",
            Opts {
                version: Some(SslVersion::TLS1_2),
                ciphers: Some("AES128-SHA:AES256-SHA"),
                ..good(&pki, &pair, &ca)
            },
            "alert handshake failure",
        ),
        (
            "ECDHE with CBC and SHA-1",
            Opts {
                version: Some(SslVersion::TLS1_2),
                ciphers: Some("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"),
                ..good(&pki, &pair, &ca)
            },
            "alert handshake failure",
        ),
    ] {
        let e = tc::get(srv.addr, &o, "/login")
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"));
        assert!(e.contains(alert), "{name}: {e}");
    }
    assert_alive(&srv, &pki);
}

/// Sends a TLS request in pieces, `gap` apart, and returns the server's answer (or the error).
fn slow_request(addr: SocketAddr, o: &Opts<'_>, pieces: &[&str], gap: Duration) -> String {
    let mut b =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).expect("b");
    b.set_ca_file(o.ca.expect("ca")).expect("ca");
    let (c, k) = o.cert.expect("cert");
    b.set_certificate_chain_file(c).expect("cert");
    b.set_private_key_file(k, openssl::ssl::SslFiletype::PEM)
        .expect("key");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut s = b.build().connect("localhost", tcp).expect("handshake");
    for p in pieces {
        if s.write_all(p.as_bytes()).is_err() {
            break;
        }
        std::thread::sleep(gap);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn slowloris_headers_are_cut_by_the_request_timeout() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |_| {});
    let (pair, ca) = (pki.client(), pki.layout().ca_cert());
    let start = Instant::now();
    let pieces = [
        "GET /login HTTP/1.1\r\n",
        "Host: localhost\r\n",
        "X-a: 1\r\n",
        "X-b: 2\r\n",
        "X-c: 3\r\n",
        "X-d: 4\r\n",
        "X-e: 5\r\n",
    ];
    let out = slow_request(
        srv.addr,
        &good(&pki, &pair, &ca),
        &pieces,
        Duration::from_millis(400),
    );
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 408"),
        "slow headers must not be served: {out:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert_alive(&srv, &pki);
}

#[test]
fn more_connections_than_the_limit_are_queued_not_fatal() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |c| c.max_connections = 4);
    // Twenty idle connections: four fill the worker, the rest wait in the backlog; the handshake
    // timeout clears them.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(srv.addr).expect("connect"))
        .collect();
    let start = Instant::now();
    assert_alive(&srv, &pki);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    drop(idle);
    // No fd leak: the process holds about as many descriptors as before the flood.
    let fds = std::fs::read_dir("/proc/self/fd").expect("fds").count();
    assert!(fds < 200, "{fds} descriptors open");
}

#[test]
fn http_abuse_gets_exact_statuses() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |_| {});
    let (pair, ca) = (pki.client(), pki.layout().ca_cert());
    let o = good(&pki, &pair, &ca);

    // Oversized headers (past our 32 KiB limit; actix-http's own is 128 KiB): 431.
    let big = format!(
        "GET /login HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = tc::request(srv.addr, &o, &big).expect("answer");
    assert_eq!(r.status, 431, "{}", r.body);

    // A 1 MiB form is refused on its Content-Length, before the body is sent at all (and with
    // no body bytes in flight, the answer is not lost to a reset).
    let head = "POST /login1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\n";
    let start = Instant::now();
    let out = slow_request(srv.addr, &o, &[head], Duration::from_millis(10));
    assert!(out.starts_with("HTTP/1.1 413"), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(2));

    let form = "application/x-www-form-urlencoded";
    for (body, want) in [
        ("username=name&password=%zz", "false"),
        ("username=%ff%fe%fd&password=pwd1", "false"),
        ("username=name&username=other&password=pwd1", "true"),
        ("username=name&password=pwd1&password=pwd1", "true"),
        ("&&&===&", "false"),
        ("username", "false"),
    ] {
        let r = tc::post(srv.addr, &o, "/login1", form, body).expect("answer");
        assert_eq!((r.status, r.body.as_str()), (200, want), "{body}");
    }
    let r = tc::post(
        srv.addr,
        &o,
        "/login1",
        "application/json",
        r#"{"username":"name"}"#,
    )
    .expect("answer");
    assert_eq!(r.status, 415);
    let r = tc::request(
        srv.addr,
        &o,
        "DELETE /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .expect("answer");
    assert_eq!(r.status, 405);
    let r = tc::get(srv.addr, &o, "/../../etc/passwd").expect("answer");
    assert_eq!(r.status, 404);
    let r = tc::request(srv.addr, &o, "BREW /login HTCPCP/1.0\r\n\r\n");
    assert!(
        r.map_or(true, |r| r.status == 400),
        "a malformed request line is a 400 or a close"
    );
    assert_alive(&srv, &pki);
}

#[test]
fn brute_force_is_braked_per_certificate_and_indistinguishable() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |c| c.login_max_failures = 3);
    let (pair, ca) = (pki.client(), pki.layout().ca_cert());
    let o = good(&pki, &pair, &ca);
    let form = "application/x-www-form-urlencoded";
    // Unknown user and wrong password: same status, same body.
    let a = tc::post(srv.addr, &o, "/login1", form, "username=nobody&password=x").expect("answer");
    let b = tc::post(srv.addr, &o, "/login1", form, "username=name&password=x").expect("answer");
    assert_eq!((a.status, a.body.as_str()), (b.status, b.body.as_str()));
    let c = tc::post(srv.addr, &o, "/login1", form, "username=name&password=y").expect("answer");
    assert_eq!(c.body, "false");
    // The third failure locked this certificate out: even the right password gets 429 now.
    let raw = format!(
        "POST /login1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {form}\r\nContent-Length: 27\r\n\r\nusername=name&password=pwd1"
    );
    let r = tc::request(srv.addr, &o, &raw).expect("answer");
    assert_eq!(r.status, 429, "{}", r.body);
    // Another client (another certificate) is not affected.
    let other = pki.issue_client("other");
    let r = tc::post(
        srv.addr,
        &good(&pki, &other, &ca),
        "/login1",
        form,
        "username=name&password=pwd1",
    )
    .expect("answer");
    assert_eq!((r.status, r.body.as_str()), (200, "true"));
}

#[test]
fn retry_after_is_sent_with_429() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |c| {
        c.login_max_failures = 1;
        c.login_lockout_secs = 30;
    });
    let (pair, ca) = (pki.client(), pki.layout().ca_cert());
    let o = good(&pki, &pair, &ca);
    let form = "application/x-www-form-urlencoded";
    tc::post(srv.addr, &o, "/login1", form, "username=name&password=x").expect("answer");
    let out = slow_request(
        srv.addr,
        &o,
        &["POST /login1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n\r\nusername=name&password=pwd1"],
        Duration::from_millis(1),
    );
    assert!(out.starts_with("HTTP/1.1 429"), "{out}");
    let retry = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("retry-after: ")
                .or_else(|| l.strip_prefix("Retry-After: "))
        })
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("Retry-After header");
    assert!((29..=31).contains(&retry), "{retry}");
}

#[test]
fn bad_client_certificates_are_refused_and_logged_with_the_reason() {
    let pki = TestPki::new();
    let srv = hardened(&pki, |_| {});
    let ca = pki.layout().ca_cert();
    let now = x509::time::now();
    let expired = pki.make_cert(
        "log-expired",
        &CertSpec::new(Profile::Client)
            .validity(pki::Validity::between(now - 9 * 86_400, now - 86_400)),
    );
    let server_only = pki.make_cert(
        "log-server-only",
        &CertSpec::new(Profile::Server).names(pki::SubjectAltName::localhost()),
    );
    let ca_leaf = pki.make_ca_true_client("log-ca-leaf");
    let deep = pki.make_deep_chain("log-deep");
    for (pair, alert) in [
        (&expired, "alert certificate expired"),
        (&server_only, "alert unsupported certificate"),
        (&ca_leaf, "alert handshake failure"),
        (&deep, "alert"),
    ] {
        let o = Opts {
            ca: Some(&ca),
            cert: Some((&pair.0, &pair.1)),
            version: Some(SslVersion::TLS1_2),
            ..Opts::default()
        };
        let e = tc::refusal(srv.addr, &o);
        assert!(e.contains(alert), "{}: {e}", pair.0.display());
    }
    let log = server_log();
    for reason in [
        "CN=log-expired",
        "expired: issue a new certificate",
        "CN=log-server-only",
        "not issued for this use",
        "CN=log-ca-leaf",
        "a CA certificate (CA:TRUE) presented as a client certificate",
        "CN=log-deep",
    ] {
        assert!(log.contains(reason), "the log lacks {reason:?}:\n{log}");
    }
    assert_alive(&srv, &pki);
}

#[test]
fn http2_rapid_reset_does_not_take_the_server_down() {
    // CVE-2023-44487: open streams and reset them at once, many times over one connection.
    let pki = TestPki::new();
    let srv = hardened(&pki, |_| {});
    let (pair, ca) = (pki.client(), pki.layout().ca_cert());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (opened, outcome) = rt.block_on(async {
        let mut b =
            openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).expect("b");
        b.set_ca_file(&ca).expect("ca");
        b.set_certificate_chain_file(&pair.0).expect("cert");
        b.set_private_key_file(&pair.1, openssl::ssl::SslFiletype::PEM)
            .expect("key");
        b.set_alpn_protos(b"\x02h2").expect("alpn");
        let ssl = b
            .build()
            .configure()
            .expect("cfg")
            .into_ssl("localhost")
            .expect("ssl");
        let tcp = tokio::net::TcpStream::connect(srv.addr)
            .await
            .expect("connect");
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
        std::pin::Pin::new(&mut tls)
            .connect()
            .await
            .expect("handshake");
        assert_eq!(tls.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
        let driver = tokio::spawn(conn);
        let mut opened = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        let outcome: Result<(), String> = async {
            for _ in 0..2000 {
                if Instant::now() > deadline {
                    break;
                }
                send = send.ready().await.map_err(|e| e.to_string())?;
                let req = http::Request::get("https://localhost/login")
                    .body(())
                    .expect("req");
                let (_resp, mut stream) =
                    send.send_request(req, true).map_err(|e| e.to_string())?;
                stream.send_reset(h2::Reason::CANCEL);
                opened += 1;
            }
            Ok(())
        }
        .await;
        driver.abort();
        (opened, outcome)
    });
    // Either the server kept up, or it cut this connection (GOAWAY/ENHANCE_YOUR_CALM): both fine.
    assert!(opened > 0, "no stream opened: {outcome:?}");
    eprintln!("rapid reset: {opened} streams opened and reset; {outcome:?}");
    assert_alive(&srv, &pki);
}
