//! `bench load` as a user runs it, against a small OpenSSL HTTPS server started here on a
//! fresh PKI: each mode, resumption, and the refusals it must report.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openssl::ssl::{HandshakeError, SslAcceptor, SslFiletype, SslMethod, SslStream, SslVerifyMode};
use serde_json::Value;

/// Answers `GET /login` with `Hello World!` on 127.0.0.1, one thread per connection, until
/// dropped. `mutual` requires a client certificate from the PKI's CA.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
}

fn serve(mut tls: SslStream<TcpStream>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = tls.read(&mut chunk) {
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let close = String::from_utf8_lossy(&buf[..end]).contains("Connection: close");
        buf.drain(..end + 4);
        let head = if close { "Connection: close\r\n" } else { "" };
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n{head}\r\nHello World!");
        if tls.write_all(answer.as_bytes()).is_err() || close {
            let _ = tls.shutdown();
            return;
        }
    }
}

impl Server {
    fn start(pki: &common::Layout, mutual: bool) -> Server {
        let mut b =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("acceptor");
        b.set_certificate_chain_file(pki.server_cert())
            .expect("cert");
        b.set_private_key_file(pki.server_key(), SslFiletype::PEM)
            .expect("key");
        if mutual {
            b.set_ca_file(pki.ca_cert()).expect("ca");
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let acceptor = b.build();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let acceptor = acceptor.clone();
                std::thread::spawn(move || match acceptor.accept(tcp) {
                    Ok(tls) => serve(tls),
                    // Drain what the client sent before closing, so that it reads our alert
                    // rather than a reset (which a real server's close may send first).
                    Err(HandshakeError::Failure(mut mid)) => {
                        let _ = std::io::copy(mid.get_mut(), &mut std::io::sink());
                    }
                    Err(_) => {}
                });
            }
        });
        Server { port, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pki() -> (tempfile::TempDir, common::Layout) {
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = common::Layout::new(dir.path());
    pki::Folder::new(layout.clone())
        .init(&pki::InitOptions {
            p12_password: Some("test".into()),
            ..Default::default()
        })
        .expect("pki init");
    (dir, layout)
}

fn bench(
    port: u16,
    ca: &Path,
    id: Option<&common::Layout>,
    extra: &[&str],
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench"));
    cmd.args([
        "load",
        "--url",
        &format!("https://127.0.0.1:{port}"),
        "--ca",
    ])
    .arg(ca);
    if let Some(l) = id {
        cmd.arg("--cert")
            .arg(l.client_cert())
            .arg("--key")
            .arg(l.client_key());
    }
    let out = cmd
        .args(["-c", "4", "--threads", "1", "--json", "-q"])
        .args(extra)
        .output()
        .expect("runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn load(port: u16, l: &common::Layout, mutual: bool, extra: &[&str]) -> Value {
    let (ok, out, err) = bench(port, &l.ca_cert(), mutual.then_some(l), extra);
    assert!(ok, "bench load failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn errors(r: &Value) -> u64 {
    r["errors"]
        .as_object()
        .expect("errors")
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

#[test]
fn keepalive_connects_once_per_connection_with_a_client_certificate() {
    let (_dir, l) = pki();
    let server = Server::start(&l, true);
    let r = load(server.port, &l, true, &["-n", "400"]);
    assert_eq!(r["requests"], 400, "{r}");
    assert_eq!(
        (r["handshakes"].as_u64(), r["handshakes_measured"].as_u64()),
        (Some(4), Some(0)),
        "{r}"
    );
    assert_eq!(errors(&r), 0, "{r}");
    assert!(
        r["latency"]["p99_us"].as_u64() >= r["latency"]["p50_us"].as_u64(),
        "{r}"
    );
}

#[test]
fn new_conn_does_a_full_handshake_per_request_and_resume_resumes() {
    let (_dir, l) = pki();
    let server = Server::start(&l, false);
    let full = load(server.port, &l, false, &["--mode", "new-conn", "-n", "40"]);
    assert_eq!(
        (
            full["requests"].as_u64(),
            full["handshakes_measured"].as_u64()
        ),
        (Some(40), Some(40)),
        "{full}"
    );
    assert_eq!(full["resumed"], 0, "{full}");
    let resumed = load(server.port, &l, false, &["--mode", "resume", "-n", "40"]);
    assert_eq!(errors(&resumed), 0, "{resumed}");
    // Each connection's first handshake is full; the rest offer the previous session's ticket.
    assert!(resumed["resumed"].as_u64() >= Some(30), "{resumed}");
}

#[test]
fn a_server_that_refuses_the_client_is_counted_not_answered() {
    let (_dir, l) = pki();
    let server = Server::start(&l, true);
    for tls in ["rustls", "openssl"] {
        let args = ["-n", "20", "--mode", "new-conn", "-d", "1", "--tls", tls];
        let r = load(server.port, &l, false, &args);
        assert_eq!(r["requests"], 0, "{r}");
        // TLS 1.3: the refusal is an alert after the client's handshake; still a TLS error.
        assert!(
            errors(&r) > 0 && r["errors"]["tls"] == errors(&r),
            "{tls}: {r}"
        );
        assert_eq!(r["handshakes_measured"], 0, "{tls}: {r}");
    }
    // A CA that did not sign the server: the load generator refuses it, whatever the server.
    let (_other_dir, other) = pki();
    let r = load(
        server.port,
        &other,
        false,
        &["-n", "20", "--mode", "new-conn", "-d", "1"],
    );
    assert!(r["errors"]["tls"].as_u64() > Some(0), "{r}");
}

#[test]
fn only_loopback_addresses_are_loaded() {
    let (ok, _, err) = bench(443, Path::new("ca.crt"), None, &[]);
    assert!(
        !ok && err.contains("cannot read the CA certificate ca.crt"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["load", "--url", "https://192.0.2.1:443", "--ca", "ca.crt"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("192.0.2.1 is not a loopback address"),
        "{err}"
    );
}

/// An HTTP/2-only server (ALPN h2, the h2 crate) answering every request with `Hello World!`,
/// on its own runtime thread; it stops with the test process.
fn start_h2(pki: &common::Layout) -> u16 {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("acceptor");
    b.set_certificate_chain_file(pki.server_cert())
        .expect("cert");
    b.set_private_key_file(pki.server_key(), SslFiletype::PEM)
        .expect("key");
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x02h2", client).ok_or(openssl::ssl::AlpnError::NOACK)
    });
    let acceptor = b.build();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((tcp, _)) = listener.accept().await {
                let ssl = openssl::ssl::Ssl::new(acceptor.context()).expect("ssl");
                tokio::spawn(async move {
                    let mut tls = tokio_openssl::SslStream::new(ssl, tcp).expect("stream");
                    if std::pin::Pin::new(&mut tls).accept().await.is_err() {
                        return;
                    }
                    let Ok(mut conn) = h2::server::handshake(tls).await else {
                        return;
                    };
                    while let Some(Ok((_req, mut respond))) = conn.accept().await {
                        let head = http::Response::new(());
                        if let Ok(mut body) = respond.send_response(head, false) {
                            let _ =
                                body.send_data(bytes::Bytes::from_static(b"Hello World!"), true);
                        }
                    }
                });
            }
        });
    });
    port
}

#[test]
fn h2_keeps_one_stream_at_a_time_on_each_connection() {
    let (_dir, l) = pki();
    let port = start_h2(&l);
    let r = load(port, &l, false, &["--http", "h2", "-n", "400"]);
    assert_eq!((r["requests"].as_u64(), errors(&r)), (Some(400), 0), "{r}");
    assert_eq!(
        (r["http"].as_str(), r["handshakes"].as_u64()),
        (Some("h2"), Some(4)),
        "{r}"
    );
}

#[test]
fn h2_against_a_server_that_does_not_choose_it_fails_the_handshake() {
    let (_dir, l) = pki();
    // The HTTP/1.1 server selects no ALPN protocol at all.
    let server = Server::start(&l, false);
    let r = load(
        server.port,
        &l,
        false,
        &["--http", "h2", "-n", "20", "-d", "1"],
    );
    assert_eq!(r["requests"], 0, "{r}");
    assert!(
        r["errors"]["tls"].as_u64() > Some(0) && r["errors"]["tls"] == errors(&r),
        "{r}"
    );
    let (ok, _, err) = bench(
        server.port,
        &l.ca_cert(),
        None,
        &["--http", "h2", "--mode", "new-conn"],
    );
    assert!(
        !ok && err.contains("HTTP/2 is measured on kept-alive connections only"),
        "{err}"
    );
}
