//! The server's own health in front of an application (`--upstream`): the health route is
//! answered by the server, not forwarded; it is on the metrics port too; and the figures the
//! README lists (the CRL feed's among them) are there once one client has been served, those of
//! a closed label set from the first scrape.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
use server::{Background, ClientAuth, Config};
use testkit::TestPki;

/// An application that answers 404 to everything, as the seed's Flask app does to `/healthz`,
/// and counts what reached it. Stopped when dropped.
struct App404 {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl App404 {
    fn start() -> App404 {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let hits = counted.clone();
                    App::new().default_service(web::to(move || {
                        hits.fetch_add(1, Ordering::SeqCst);
                        async { HttpResponse::NotFound().body("the application's 404") }
                    }))
                })
                .workers(1)
                .bind(("127.0.0.1", 0))
                .expect("bind");
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).expect("send");
                let _ = server.await;
            });
        });
        let (addr, handle) = rx.recv().expect("application starts");
        App404 { addr, hits, handle }
    }
}

impl Drop for App404 {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// The front door to `app` with its metrics on a port of their own, `tweak` applied.
fn front_door(pki: &TestPki, app: &App404, tweak: impl FnOnce(&mut Config)) -> Background {
    let mut config = Config::for_pki(pki.dir(), ClientAuth::Required);
    config.upstream = Some(format!("http://{}", app.addr).parse().expect("URL"));
    config.metrics_bind = Some(([127, 0, 0, 1], 0).into());
    tweak(&mut config);
    Background::spawn(config).expect("server starts")
}

/// `GET path` over mutual TLS as `pair`: the whole answer.
fn get(srv: &Background, pki: &TestPki, pair: &(PathBuf, PathBuf), path: &str) -> String {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("builder");
    b.set_ca_file(pki.layout().ca_cert()).expect("ca");
    b.set_certificate_chain_file(&pair.0).expect("cert");
    b.set_private_key_file(&pair.1, SslFiletype::PEM)
        .expect("key");
    let tcp = TcpStream::connect(srv.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut s = b.build().connect("localhost", tcp).expect("handshake");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `GET path` in plain HTTP on the metrics port.
fn plain(srv: &Background, path: &str) -> String {
    let mut tcp = TcpStream::connect(srv.metrics_addr.expect("metrics port")).expect("connect");
    write!(tcp, "GET {path} HTTP/1.0\r\n\r\n").expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn the_front_door_answers_its_health_itself_and_forwards_the_rest() {
    let pki = TestPki::new();
    let app = App404::start();
    let srv = front_door(&pki, &app, |_| {});
    let pair = pki.client();

    let health = get(&srv, &pki, &pair, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\r\n\r\nok\ncrl"), "{health}");
    assert_eq!(app.hits.load(Ordering::SeqCst), 0, "forwarded: {health}");

    let other = get(&srv, &pki, &pair, "/whoami");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    assert!(other.contains("the application's 404"), "{other}");
    assert_eq!(app.hits.load(Ordering::SeqCst), 1);

    // And on the metrics port, where a load balancer's checks need no client certificate.
    let health = plain(&srv, "/healthz");
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    assert!(health.contains("\r\n\r\nok\ncrl"), "{health}");
}

#[test]
fn the_health_route_moves_with_its_flag_and_the_app_gets_the_old_one() {
    let pki = TestPki::new();
    let app = App404::start();
    let srv = front_door(&pki, &app, |c| c.healthz_path = Some("/-/health".into()));
    let pair = pki.client();
    let health = get(&srv, &pki, &pair, "/-/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert_eq!(app.hits.load(Ordering::SeqCst), 0);
    let theirs = get(&srv, &pki, &pair, "/healthz");
    assert!(theirs.contains("the application's 404"), "{theirs}");
    assert_eq!(app.hits.load(Ordering::SeqCst), 1);
    assert!(plain(&srv, "/-/health").starts_with("HTTP/1.0 200"));
    assert!(plain(&srv, "/healthz").starts_with("HTTP/1.0 404"));
}

#[test]
fn every_figure_the_readme_lists_is_there_after_one_request() {
    let pki = TestPki::new();
    let app = App404::start();
    let srv = front_door(&pki, &app, |_| {});
    let first = plain(&srv, "/metrics");
    for line in [
        "https_crl_fetch_last_success_timestamp_seconds 0",
        "https_crl_fetch_failures_total{reason=\"unreachable\"} 0",
        "https_tls_reloads_total{result=\"failure\"} 0",
    ] {
        assert!(first.contains(line), "{line} not in:\n{first}");
    }
    get(&srv, &pki, &pki.client(), "/healthz");
    let text = plain(&srv, "/metrics");
    let readme = include_str!("../../../README.md");
    let monitoring = readme
        .split("## Monitoring")
        .nth(1)
        .and_then(|s| s.split("###").next())
        .expect("the README's Monitoring section");
    let listed: Vec<&str> = monitoring
        .lines()
        .filter(|l| l.starts_with("| `https_"))
        .flat_map(|l| l.split('|').nth(1).unwrap_or_default().split(','))
        .filter_map(|cell| cell.trim().trim_matches('`').split(['{', '`']).next())
        .filter(|name| name.starts_with("https_"))
        .collect();
    assert!(listed.len() > 15, "{listed:?}");
    for name in listed {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} is not in the first scrape:\n{text}"
        );
    }
}
