//! The server as the front door of an HTTP application (`--upstream`), through real
//! handshakes: identity headers in, forged ones out, bodies streamed both ways, 502/504 when the
//! application misbehaves, the login brakes and the access list in front; and the seed's own
//! Flask application behind it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream};
use server::{ClientAuth, Config};

use crate::support::{
    assert_refused_without_a_certificate, capture_logs, run, s, server_log, TestPki, TestServer,
};
use crate::tls_client::{self as tc, Opts};
use crate::upstream::{byte_sum, pattern_byte, Upstream};

/// The front door in mutual TLS to `upstream`, with `tweak` applied.
fn front_door(pki: &TestPki, upstream: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
    capture_logs();
    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    config.upstream = Some(upstream.parse().expect("upstream URL"));
    tweak(&mut config);
    TestServer::spawn(config).expect("server starts")
}

/// The `[name, value]` pairs `/headers` answered, names in lower case.
fn seen_headers(body: &str) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = serde_json::from_str(body).expect("json pairs");
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn values<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A mutual-TLS connection as `pair`, for requests read piece by piece.
fn open(addr: SocketAddr, ca: &Path, pair: &(PathBuf, PathBuf)) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("builder");
    b.set_ca_file(ca).expect("ca");
    b.set_certificate_chain_file(&pair.0).expect("cert");
    b.set_private_key_file(&pair.1, SslFiletype::PEM)
        .expect("key");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    b.build().connect("localhost", tcp).expect("handshake")
}

/// Reads a response head (through the blank line) from `s`, byte by byte.
fn read_head(s: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn forwards_with_the_verified_identity_and_drops_forged_headers() {
    let pki = TestPki::new();
    let app = Upstream::start();
    let srv = front_door(&pki, &app.url(), |_| {});
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let forged = "GET /headers?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close, X-Hop\r\n\
                  X-Hop: must-not-cross\r\nKeep-Alive: timeout=5\r\n\
                  X-Client-Cert-CN: admin\r\nX-Client-Cert_Subject: /CN=admin\r\n\
                  x_client_cert_verify: SUCCESS\r\nX-Client-Cert-Extra: forged\r\n\
                  X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
                  Cookie: a=1\r\n\r\n";
    let r = tc::request(srv.addr, &Opts::mutual(&ca, &pair), forged).expect("answer");
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = seen_headers(&r.body);
    let cert = x509::cert::load_cert("client", &pair.0).expect("cert");
    let id = pki::identity::ClientIdentity::from_cert(&cert).expect("identity");
    for (name, want) in [
        ("x-client-cert-verify", "SUCCESS"),
        ("x-client-cert-cn", "client"),
        (
            "x-client-cert-subject",
            "/O=https Project Device Certificate/CN=client",
        ),
        ("x-client-cert-serial", id.serial.as_str()),
        ("x-client-cert-sha256", id.sha256.as_str()),
        ("x-client-cert-not-after", id.not_after.as_str()),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "localhost"),
        ("host", "localhost"),
        ("cookie", "a=1"),
    ] {
        assert_eq!(values(&seen, name), [want], "{name} in {seen:?}");
    }
    let names: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    for gone in [
        "x-hop",
        "keep-alive",
        "x-client-cert_subject",
        "x_client_cert_verify",
        "x-client-cert-extra",
        "forwarded",
        "x-real-ip",
    ] {
        assert!(!names.contains(&gone), "{gone} crossed: {seen:?}");
    }
    assert!(
        !r.body.contains("admin") && !r.body.contains("6.6.6.6"),
        "{}",
        r.body
    );
}

#[test]
fn bodies_stream_both_ways_and_other_requests_are_served_meanwhile() {
    let pki = TestPki::new();
    let app = Upstream::start();
    let srv = front_door(&pki, &app.url(), |_| {});
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let o = Opts::mutual(&ca, &pair);

    // Uploads: 8 MiB with a length, 1 MiB chunked; the application counts what arrived.
    let upload: Vec<u8> = (0..8u64 << 20).map(pattern_byte).collect();
    let mut s = open(srv.addr, &ca, &pair);
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        upload.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(&upload).expect("body");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.ends_with(&format!("{} {}", upload.len(), byte_sum(&upload))),
        "{out}"
    );
    let mut s = open(srv.addr, &ca, &pair);
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("head");
    for piece in upload[..1 << 20].chunks(100_000) {
        s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .expect("size");
        s.write_all(piece).expect("piece");
        s.write_all(b"\r\n").expect("crlf");
    }
    s.write_all(b"0\r\n\r\n").expect("end");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.ends_with(&format!("{} {}", 1 << 20, byte_sum(&upload[..1 << 20]))),
        "{out}"
    );

    // A 64 MiB answer, its length kept; read 1 MiB, pause while another request is served,
    // then read the rest and check every byte.
    let mut big = open(srv.addr, &ca, &pair);
    big.write_all(b"GET /big/64 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let head = read_head(&mut big);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-length: 67108864"),
        "{head}"
    );
    let mut buf = vec![0u8; 1 << 20];
    big.read_exact(&mut buf).expect("first MiB");
    let start = Instant::now();
    let r = tc::get(srv.addr, &o, "/headers").expect("served meanwhile");
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let mut offset = 0u64;
    let check = |piece: &[u8], offset: &mut u64| {
        for &b in piece {
            assert_eq!(b, pattern_byte(*offset), "byte {offset}");
            *offset += 1;
        }
    };
    check(&buf, &mut offset);
    loop {
        let n = big.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        check(&buf[..n], &mut offset);
    }
    assert_eq!(offset, 64 << 20);
}

#[test]
fn a_dead_upstream_is_502_and_a_slow_one_504_while_others_are_served() {
    let pki = TestPki::new();
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let o = Opts::mutual(&ca, &pair);

    // Nothing listens on a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    let srv = front_door(&pki, &dead, |_| {});
    let r = tc::get(srv.addr, &o, "/login").expect("answer");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(
        r.body,
        "the application behind this server is not reachable\n"
    );
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{}",
        r.head
    );

    let app = Upstream::start();
    let srv = front_door(&pki, &app.url(), |c| c.upstream_timeout_secs = 1);
    let slow = {
        let (addr, ca, pair) = (srv.addr, ca.clone(), pair.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let r = tc::get(addr, &Opts::mutual(&ca, &pair), "/sleep/5").expect("answer");
            (r, start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let r = tc::get(srv.addr, &o, "/headers").expect("served meanwhile");
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    let (r, took) = slow.join().expect("slow request");
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(
        r.body,
        "the application behind this server did not answer within 1 s\n"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let log = server_log();
    assert!(
        log.contains("not reachable") && log.contains(&dead) && log.contains("status=502"),
        "{log}"
    );
    assert!(
        log.contains("did not answer within 1 s") && log.contains("status=504"),
        "{log}"
    );
}

#[test]
fn a_body_that_stalls_is_cut_after_the_timeout() {
    let pki = TestPki::new();
    let app = Upstream::start();
    let srv = front_door(&pki, &app.url(), |c| c.upstream_timeout_secs = 1);
    let (ca, pair) = (pki.layout().ca_cert(), pki.client());
    let mut s = open(srv.addr, &ca, &pair);
    s.write_all(b"GET /stall HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let start = Instant::now();
    let mut got = 0usize;
    let mut buf = [0u8; 16 * 1024];
    // The upstream sends 64 KiB of its promised 1 MiB, then nothing: the server closes.
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, 64 * 1024);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(server_log().contains("the upstream's body stalled"));
}

#[test]
fn the_login_brakes_stand_in_front_of_the_upstream() {
    let pki = TestPki::new();
    let app = Upstream::start();
    let srv = front_door(&pki, &app.url(), |c| {
        c.login_max_failures = 2;
        c.login_lockout_secs = 1;
    });
    let ca = pki.layout().ca_cert();
    let pair = pki.client();
    let o = Opts::mutual(&ca, &pair);
    let form = "application/x-www-form-urlencoded";
    let post_as = |user: &str, password: &str| {
        tc::post(
            srv.addr,
            &o,
            "/login1",
            form,
            &format!("username={user}&password={password}"),
        )
        .expect("answer")
    };
    let post = |password: &str| post_as("name", password);
    // A 401 counts as a failure as much as the seed's `false`.
    assert_eq!(post_as("nobody", "x").status, 401);
    assert_eq!(post("y").body, "false");
    let hits = app.hits.load(Ordering::SeqCst);
    let r = post("pwd1");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(
        r.head.to_ascii_lowercase().contains("retry-after: "),
        "{}",
        r.head
    );
    assert_eq!(
        app.hits.load(Ordering::SeqCst),
        hits,
        "a locked-out login never reaches the app"
    );
    // Other routes, and other clients, are not braked.
    assert_eq!(tc::get(srv.addr, &o, "/headers").expect("get").status, 200);
    let other = pki.issue_client("other");
    let r = tc::post(
        srv.addr,
        &Opts::mutual(&ca, &other),
        "/login1",
        form,
        "username=name&password=pwd1",
    )
    .expect("answer");
    assert_eq!((r.status, r.body.as_str()), (200, "true"));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(post("pwd1").body, "true", "the lockout ends");
}

#[test]
fn the_access_list_applies_in_front_and_url_credentials_go_upstream() {
    let pki = TestPki::new();
    let app = Upstream::start();
    let with_password = app.url().replace("http://", "http://front:s3cret@");
    let sensor = pki.issue_client("sensor-1");
    let srv = front_door(&pki, &with_password, |c| {
        c.allow_cn = vec!["sensor-1".into()]
    });
    let ca = pki.layout().ca_cert();

    let r = tc::get(srv.addr, &Opts::mutual(&ca, &pki.client()), "/headers").expect("answer");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        app.hits.load(Ordering::SeqCst),
        0,
        "refused in front of the app"
    );

    let forged_auth = "GET /headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                       Authorization: Bearer client-token\r\n\r\n";
    let r = tc::request(srv.addr, &Opts::mutual(&ca, &sensor), forged_auth).expect("answer");
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = seen_headers(&r.body);
    assert_eq!(
        values(&seen, "authorization"),
        ["Basic ZnJvbnQ6czNjcmV0"],
        "front:s3cret, replacing the client's"
    );
    assert_eq!(values(&seen, "x-client-cert-cn"), ["sensor-1"]);
    assert!(!server_log().contains("s3cret"));
}

/// Python with Flask, from `FLASK_PYTHON` (`tests/e2e/flask-venv.sh` makes one); None, with a
/// SKIPPED line, when there is none, unless `REQUIRE_FLASK=1` makes that a failure.
fn flask_python() -> Option<String> {
    let python = std::env::var("FLASK_PYTHON").ok();
    let works = python.as_deref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import flask"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if works {
        return python;
    }
    let why = match &python {
        None => "FLASK_PYTHON is not set".to_owned(),
        Some(p) => format!("{p} cannot import flask"),
    };
    assert!(
        std::env::var("REQUIRE_FLASK").as_deref() != Ok("1"),
        "REQUIRE_FLASK=1 but {why} (make one: export FLASK_PYTHON=$(tests/e2e/flask-venv.sh))"
    );
    eprintln!(
        "SKIPPED: the seed's Flask app behind the front door: {why} \
         (export FLASK_PYTHON=$(tests/e2e/flask-venv.sh))"
    );
    None
}

/// The seed's Flask application on a free loopback port; killed on drop.
struct SeedApp(Child, u16);

impl SeedApp {
    fn start(python: &str) -> SeedApp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/seed_app.py");
        let mut child = Command::new(python)
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start seed_app.py");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port from seed_app.py: {line:?}"));
        SeedApp(child, port)
    }
}

impl Drop for SeedApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_seeds_flask_app_behind_the_front_door() {
    let Some(python) = flask_python() else {
        return;
    };
    let flask = SeedApp::start(&python);
    let pki = TestPki::new();
    let srv = front_door(&pki, &format!("http://127.0.0.1:{}", flask.1), |_| {});
    let l = pki.layout();
    let (ca, pair) = (l.ca_cert(), pki.client());

    // The seed's client sequence (Python's urllib, as the post wrote it, but with hostname
    // checking on and the client certificate it never loaded).
    let client = r#"
import ssl, sys, urllib.parse, urllib.request
port, ca, cert, key = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
r = urllib.request.urlopen(f"https://localhost:{port}/login", context=ctx)
print(r.status, r.read().decode())
for pwd in ("pwd1", "wrong"):
    data = urllib.parse.urlencode({"username": "name", "password": pwd}).encode()
    req = urllib.request.Request(f"https://localhost:{port}/login1", data=data, method="POST")
    r = urllib.request.urlopen(req, context=ctx)
    print(r.status, r.headers["Content-Type"], r.read().decode())
"#;
    let port = srv.addr.port().to_string();
    let (ok, out) = run(
        "python3",
        &["-c", client, &port, s(&ca), s(&pair.0), s(&pair.1)],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "200 Hello World!",
            "200 application/json true",
            "200 application/json false"
        ],
        "{out}"
    );

    // The app sees who the client is, and only that: forged headers are replaced.
    let forged = "GET /headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                  X-Client-Cert-CN: admin\r\nX-Client-Cert_Serial: 00\r\n\r\n";
    let r = tc::request(srv.addr, &Opts::mutual(&ca, &pair), forged).expect("answer");
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = seen_headers(&r.body);
    let cert = x509::cert::load_cert("client", &pair.0).expect("cert");
    let serial = x509::cert::serial_hex(&cert).expect("serial");
    assert_eq!(values(&seen, "x-client-cert-cn"), ["client"], "{seen:?}");
    assert_eq!(
        values(&seen, "x-client-cert-serial"),
        [serial.as_str()],
        "{seen:?}"
    );
    assert_eq!(
        values(&seen, "x-client-cert-verify"),
        ["SUCCESS"],
        "{seen:?}"
    );
    assert_eq!(values(&seen, "x-forwarded-proto"), ["https"], "{seen:?}");
    assert!(!r.body.contains("admin"), "{}", r.body);

    // No certificate: refused in the handshake, before Flask hears of it.
    assert_refused_without_a_certificate(srv.addr, &ca);
}
