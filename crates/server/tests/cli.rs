//! The `server` binary as an operator runs it: the start-up line, clear errors, SIGHUP reload,
//! graceful SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod};
use pki::Folder;
use testkit::TestPki;

/// A fresh PKI (the workspace's fixture) and its folder.
fn make_pki() -> (TestPki, Folder) {
    let pki = TestPki::new();
    let folder = pki.folder.clone();
    (pki, folder)
}

/// The server binary with none of the caller's `SERVER_*` (or other of our) variables: a test
/// sees only the flags and variables it sets itself.
fn server_command() -> Command {
    testkit::command(env!("CARGO_BIN_EXE_server"))
}

fn spawn(folder: &Folder, extra: &[&str]) -> Child {
    spawn_with_env(folder, extra, &[])
}

fn spawn_with_env(folder: &Folder, extra: &[&str], env: &[(&str, &str)]) -> Child {
    testkit::server_flags(&mut server_command(), folder.layout().root())
        .envs(env.iter().copied())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server")
}

/// Reads the start-up line and returns it with the port.
fn startup_line(child: &mut Child) -> (String, u16) {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let port = line
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (line, port)
}

/// Everything the server wrote to stderr (call it once the child has exited).
fn stderr_text(child: &mut Child) -> String {
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    log
}

/// A mutual-TLS connection to the server as the PKI's client.
fn connect(folder: &Folder, port: u16) -> openssl::ssl::SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("builder");
    b.set_ca_file(folder.layout().ca_cert()).expect("ca");
    b.set_certificate_chain_file(folder.layout().client_cert())
        .expect("cert");
    b.set_private_key_file(folder.layout().client_key(), openssl::ssl::SslFiletype::PEM)
        .expect("key");
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    b.build().connect("localhost", tcp).expect("handshake")
}

/// The serial of the certificate the server presents.
fn served_serial(folder: &Folder, port: u16) -> String {
    let mut s = connect(folder, port);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let cert = s.ssl().peer_certificate().expect("peer cert");
    x509::cert::serial_hex(&cert).expect("serial")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

#[test]
fn starts_with_one_line_and_reloads_on_sighup() {
    let (_dir, folder) = make_pki();
    let mut child = spawn(&folder, &[]);
    let (line, port) = startup_line(&mut child);
    assert!(
        line.contains("mutual TLS (client certificate required)"),
        "{line}"
    );
    assert!(
        line.contains("CN=localhost") && line.contains("days"),
        "{line}"
    );

    let before = served_serial(&folder, port);
    let ca = folder.issuer().expect("ca");
    folder
        .issue(
            &ca,
            &pki::Leaf::server("server", pki::SubjectAltName::localhost()),
            pki::files::Overwrite::Replace,
        )
        .expect("reissue");
    signal(&child, "-HUP");
    let mut after = before.clone();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        after = served_serial(&folder, port);
        if after != before {
            break;
        }
    }
    assert_ne!(after, before, "SIGHUP must load the new certificate");

    // A broken certificate: the reload fails and the server keeps serving the last good one.
    std::fs::write(folder.layout().server_cert(), "garbage").expect("break");
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served_serial(&folder, port), after);

    signal(&child, "-TERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    let log = stderr_text(&mut child);
    assert!(log.contains("TLS context reloaded"), "{log}");
    assert!(
        log.contains("reload failed") && log.contains("server.crt"),
        "{log}"
    );
    assert!(!log.contains("pwd1"), "no secrets in logs");
}

/// The binary routes OpenSSL's allocations to mimalloc before OpenSSL allocates anything
/// (openssl_alloc.rs): OpenSSL refuses the switch afterwards, and the server would say so.
#[test]
fn openssl_allocates_through_mimalloc_and_serves() {
    let (_dir, folder) = make_pki();
    let mut child = spawn_with_env(&folder, &[], &[("RUST_LOG", "server=debug")]);
    let (_, port) = startup_line(&mut child);
    served_serial(&folder, port);
    signal(&child, "-TERM");
    assert!(child.wait().expect("wait").success());
    let log = stderr_text(&mut child);
    assert!(log.contains("OpenSSL allocates through mimalloc"), "{log}");
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let (_dir, folder) = make_pki();
    std::fs::remove_file(folder.layout().server_key()).expect("rm key");
    let out = spawn(&folder, &[]).wait_with_output().expect("wait");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server/server.key") && err.contains("make certs"),
        "{err}"
    );
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let (_dir, folder) = make_pki();
    let mut child = spawn(&folder, &[]);
    let (_, port) = startup_line(&mut child);

    // A request in flight: headers sent, half of the body still to come.
    let mut s = connect(&folder, port);
    s.write_all(b"POST /login1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n\r\nusername=name")
        .expect("write head");
    std::thread::sleep(Duration::from_millis(200));

    signal(&child, "-TERM");
    std::thread::sleep(Duration::from_millis(500));
    // New connections are refused while the old one finishes.
    let refused = TcpStream::connect(("127.0.0.1", port)).is_err();
    s.write_all(b"&password=pwd1").expect("write rest");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("true"),
        "{out}"
    );
    assert!(refused, "a new connection was accepted after SIGTERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_at_once_on_every_worker() {
    let (_dir, folder) = make_pki();
    let mut child = server_command()
        .arg("--pki-dir")
        .arg(folder.layout().root())
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--watch-secs",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let (_, port) = startup_line(&mut child);
    // Enough keep-alive connections that both workers hold some, each idle after one answer.
    let mut idle: Vec<_> = (0..8).map(|_| connect(&folder, port)).collect();
    for s in &mut idle {
        s.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("request");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    }
    let asked = std::time::Instant::now();
    signal(&child, "-TERM");
    let status = child.wait().expect("wait");
    // The shutdown timeout is 30 s: only the workers' stop signal closes idle ones sooner.
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the server waited {:?} for idle connections",
        asked.elapsed()
    );
    assert!(status.success(), "{status:?}");
    for mut s in idle {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing more after the close: {rest:?}");
    }
}

#[test]
fn server_variables_set_what_flags_do_and_a_bad_one_is_named() {
    let (_dir, folder) = make_pki();
    let mut child = spawn_with_env(&folder, &[], &[("SERVER_CLIENT_AUTH", "none")]);
    let (line, port) = startup_line(&mut child);
    assert!(
        line.contains("one-way TLS (no client certificate)"),
        "{line}"
    );
    served_serial(&folder, port);
    signal(&child, "-TERM");
    assert!(child.wait().expect("wait").success());

    let out = spawn_with_env(&folder, &[], &[("SERVER_LOGIN_MAX_FAILURES", "many")])
        .wait_with_output()
        .expect("wait");
    assert_eq!(out.status.code(), Some(2), "a usage error: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'many'") && err.contains("--login-max-failures"),
        "{err}"
    );
}

/// Kibibytes of a `/proc/PID/status` field (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// An HTTP application that answers `GET /big` with `mib` MiB, written as fast as the socket
/// takes them, made piece by piece (it holds 64 KiB at a time), and anything else with `ok`.
fn big_upstream(mib: u64) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
                head.push(byte[0]);
            }
            if !head.starts_with(b"GET /big ") {
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                );
                continue;
            }
            let total = mib << 20;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {total}\r\n\r\n"
            );
            let piece = vec![b'x'; 64 * 1024];
            for _ in 0..total / piece.len() as u64 {
                if s.write_all(&piece).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

#[test]
fn the_front_door_streams_a_large_answer_to_a_slow_reader_in_bounded_memory() {
    let (_dir, folder) = make_pki();
    let upstream = big_upstream(64);
    let mut child = spawn(&folder, &["--upstream", &format!("http://{upstream}")]);
    let (line, port) = startup_line(&mut child);
    assert!(
        line.contains(&format!("forwarding to http://{upstream}")),
        "{line}"
    );
    served_serial(&folder, port); // warm up: TLS, a first request, the upstream client
    let before = proc_kib(child.id(), "VmRSS");

    let mut s = connect(&folder, port);
    s.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut buf = vec![0u8; 1 << 20];
    s.read_exact(&mut buf).expect("first MiB");
    // A reader that pauses: the upstream has all 64 MiB ready; the server must not take them.
    std::thread::sleep(Duration::from_secs(1));
    let paused = proc_kib(child.id(), "VmRSS");
    let mut total = buf.len();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    let peak = proc_kib(child.id(), "VmHWM");
    signal(&child, "-TERM");
    let _ = child.wait();
    eprintln!(
        "front door, 64 MiB to a slow reader: RSS {before} KiB before, {paused} KiB while paused, peak {peak} KiB"
    );
    let head_len = total - (64 << 20);
    assert!(head_len < 1024, "the whole body arrived: {total} bytes");
    assert!(
        paused < before + 8 * 1024,
        "{paused} KiB while paused, {before} KiB before"
    );
    assert!(
        peak < before + 16 * 1024,
        "peak {peak} KiB, {before} KiB before"
    );
}

#[test]
fn a_failing_crl_feed_is_logged_as_fields_not_a_sentence() {
    let (pki, folder) = make_pki();
    // A copy from an earlier run, and a CA that is not there (a port bound, then closed).
    let copy = folder
        .layout()
        .dir(common::Role::Server)
        .join("fetched.crl");
    std::fs::copy(folder.layout().ca_crl(), &copy).expect("copy");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("https://127.0.0.1:{port}/crl");
    let mut child = spawn(&folder, &["--crl-url", &url, "--log-format", "json"]);
    startup_line(&mut child);
    signal(&child, "-TERM");
    child.wait().expect("exit");
    let log = stderr_text(&mut child);
    let warning: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &serde_json::Value| {
            e["event"]
                .as_str()
                .is_some_and(|t| t.contains("cannot fetch the CRL at start-up"))
        })
        .unwrap_or_else(|| panic!("no warning in:\n{log}"));
    let fields = &warning["fields"];
    assert_eq!(fields["crl_number"], 1, "{warning}");
    assert!(fields["crl_age_secs"].is_i64(), "{warning}");
    assert_eq!(fields["reason"], "unreachable", "{warning}");
    assert!(fields.get("age").is_none(), "{warning}");
    drop(pki);
}
