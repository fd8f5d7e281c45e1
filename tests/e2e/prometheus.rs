//! A real Prometheus (Debian's `prometheus`, with `promtool`) against our server: the alert
//! rules of contrib/prometheus pass `promtool check rules` and their unit tests; Prometheus
//! scrapes `/metrics` over mutual TLS, and its query API shows the refusals by reason and the
//! expiry gauges; `promtool check metrics` passes on our exposition.
//!
//! Without `prometheus`/`promtool` on PATH the tests print SKIPPED, and fail when
//! `REQUIRE_PROMETHEUS=1`. Prometheus runs as our child on 127.0.0.1, on a free port, with its
//! own config and storage in a temporary folder; it is killed when the test ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pki::{CertSpec, Profile, Validity};
use server::{ClientAuth, Config};

use crate::support::{s, TestPki, TestServer};
use crate::tls_client::{self as tc, Opts};

/// `name` on PATH, or None after saying SKIPPED (a panic when `REQUIRE_PROMETHEUS=1`).
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let require = std::env::var("REQUIRE_PROMETHEUS").is_ok_and(|v| v == "1");
        assert!(
            !require,
            "REQUIRE_PROMETHEUS=1 but {name} is not on PATH (apt-get install prometheus)"
        );
        eprintln!("SKIPPED: {name} is not on PATH (apt-get install prometheus)");
    }
    found
}

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus")
}

fn run(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(contrib())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    (out.status.success(), testkit::text(&out))
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let (ok, out) = run(&promtool, &["check", "rules", "alerts.yml"], None);
    assert!(ok && out.contains("SUCCESS: 8 rules found"), "{out}");
    let (ok, out) = run(&promtool, &["test", "rules", "alerts.test.yml"], None);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    // The online CA's own rules.
    let (ok, out) = run(&promtool, &["check", "rules", "ca-alerts.yml"], None);
    assert!(ok && out.contains("SUCCESS: 7 rules found"), "{out}");
    let (ok, out) = run(&promtool, &["test", "rules", "ca-alerts.test.yml"], None);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    // The example scrape config (its certificate files exist only where it is deployed).
    let (ok, out) = run(
        &promtool,
        &["check", "config", "--syntax-only", "prometheus.yml"],
        None,
    );
    assert!(ok, "{out}");
}

/// The body of a plain `GET path` to `addr` (HTTP/1.0: the body ends at close).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{out}"
    );
    body.to_owned()
}

/// Prometheus as our child, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second over mutual TLS with `pair`, trusting `ca`.
    fn start(
        bin: &Path,
        dir: &Path,
        target: SocketAddr,
        ca: &Path,
        pair: &(PathBuf, PathBuf),
    ) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: https\n    scheme: https\n    tls_config:\n      \
                 ca_file: {}\n      cert_file: {}\n      key_file: {}\n      server_name: localhost\n    \
                 static_configs:\n      - targets: ['{target}']\n",
                s(ca),
                s(&pair.0),
                s(&pair.1)
            ),
        )
        .expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", s(&config)))
            .arg(format!("--storage.tsdb.path={}", s(&dir.join("data"))))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, log }
    }

    /// The value of the single series `query` returns, once it returns one (30 s at most).
    fn value(&self, query: &str, want: Option<f64>) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let path = format!(
            "/api/v1/query?{}",
            serde_urlencoded::to_string([("query", query)]).expect("encode")
        );
        loop {
            let got = TcpStream::connect(self.addr)
                .ok()
                .map(|_| http_get(self.addr, &path))
                .and_then(|body| single_value(&body));
            match got {
                Some(v) if want.is_none_or(|w| w == v) => return v,
                _ if Instant::now() > deadline => panic!(
                    "{query}: got {got:?}, wanted {want:?}; Prometheus' log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

/// The value of a query answer holding exactly one series.
fn single_value(body: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let result = v["data"]["result"].as_array()?;
    match result.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

fn not_after(path: &Path) -> f64 {
    let cert = x509::cert::load_cert("certificate", path).expect("cert");
    x509::time::unix_time(cert.not_after()).expect("time") as f64
}

#[test]
fn prometheus_scrapes_refusals_by_reason_and_expiry_gauges_over_mutual_tls() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let pki = TestPki::new();
    let ca_file = pki.layout().ca_cert();
    let scraper = pki.issue_client("prometheus");
    let gone = pki.issue_client("revoked-device");
    let authority = pki.folder.issuer().expect("ca");
    pki.folder
        .revoke(&authority, "revoked-device", None)
        .expect("revoke");
    let now = x509::time::now();
    let old = pki.make_cert(
        "expired-device",
        &CertSpec::new(Profile::Client).validity(Validity::between(now - 90 * 86_400, now - 60)),
    );
    let stranger = TestPki::new();
    let foreign = stranger.client();

    let mut config = Config::for_pki(pki.layout().root(), ClientAuth::Required);
    config.metrics_allow_cn = vec!["prometheus".into()];
    let srv = TestServer::spawn(config).expect("server");
    for (pair, alert) in [
        (&old, "alert certificate expired"),
        (&gone, "alert certificate revoked"),
        (&foreign, "alert unknown ca"),
    ] {
        let e = tc::refusal(srv.addr, &Opts::mutual(&ca_file, pair));
        assert!(e.contains(alert), "{e}");
    }
    let r = tc::get(srv.addr, &Opts::mutual(&ca_file, &pki.client()), "/whoami").expect("ok");
    assert_eq!(r.status, 200);

    // Our exposition, as Prometheus gets it, passes promtool's own check.
    let r = tc::get(srv.addr, &Opts::mutual(&ca_file, &scraper), "/metrics").expect("scrape");
    assert_eq!(r.status, 200, "{}", r.body);
    let (ok, out) = run(&promtool, &["check", "metrics"], Some(r.body.as_bytes()));
    assert!(ok, "promtool check metrics: {out}\n{}", r.body);
    println!("a scrape, as Prometheus gets it:\n{}", r.body);

    let dir = tempfile::tempdir().expect("tmp");
    let p = Prometheus::start(&prometheus, dir.path(), srv.addr, &ca_file, &scraper);
    assert_eq!(p.value("up{job=\"https\"}", Some(1.0)), 1.0);
    for reason in ["expired", "revoked", "unknown_ca"] {
        let q =
            format!("sum(https_tls_handshakes_total{{result=\"refused\",reason=\"{reason}\"}})");
        assert_eq!(p.value(&q, Some(1.0)), 1.0, "{reason}");
    }
    let q = "sum(https_tls_handshakes_total{result=\"accepted\",reason=\"none\"})";
    assert!(p.value(q, None) >= 2.0, "the good client and the scrapes");
    let server_cert = not_after(&pki.layout().server_cert());
    let q = "https_server_certificate_not_after_timestamp_seconds";
    assert_eq!(p.value(q, Some(server_cert)), server_cert);
    let ca = not_after(&ca_file);
    let q = "https_trust_ca_not_after_timestamp_seconds{subject=~\".*CN=.*\"}";
    assert_eq!(p.value(q, Some(ca)), ca);
    let info = srv.tls.current().info.crl.expect("a CRL in use");
    let next = info.next_update.expect("nextUpdate") as f64;
    assert_eq!(
        p.value("https_crl_next_update_timestamp_seconds", Some(next)),
        next
    );
    let number = info.number.expect("cRLNumber") as f64;
    assert_eq!(p.value("https_crl_number", Some(number)), number);
    assert_eq!(p.value("https_tls_last_reload_successful", Some(1.0)), 1.0);
    // One full handshake of a verified client left at least a day.
    let q = "https_client_certificate_remaining_validity_seconds_count";
    assert!(p.value(q, None) >= 1.0);
}

#[test]
fn prometheus_scrapes_the_online_ca_over_mutual_tls_and_its_figures_follow_the_records() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let pki = TestPki::new();
    let ca_file = pki.layout().ca_cert();
    let scraper = pki.issue_client("prometheus");
    pki.issue_client("device-1");
    pki.issue_client("device-2");
    let authority = pki.folder.issuer().expect("ca");
    pki.folder
        .revoke(&authority, "device-2", None)
        .expect("revoke");

    let mut config = ca::Config::for_pki(pki.layout().root());
    config.admin.cns = vec!["prometheus".into()];
    config.metrics_refresh = Duration::from_secs(1);
    let service = ca::Background::spawn(config).expect("ca");

    // Only an admin certificate gets the figures.
    let refused = tc::get(
        service.addr,
        &Opts::mutual(&ca_file, &pki.client()),
        "/metrics",
    )
    .expect("an answer");
    assert_eq!(refused.status, 403, "{}", refused.body);
    let r = tc::get(service.addr, &Opts::mutual(&ca_file, &scraper), "/metrics").expect("scrape");
    assert_eq!(r.status, 200, "{}", r.body);
    let (ok, out) = run(&promtool, &["check", "metrics"], Some(r.body.as_bytes()));
    assert!(ok, "promtool check metrics: {out}\n{}", r.body);
    println!("a scrape of the ca, as Prometheus gets it:\n{}", r.body);

    let dir = tempfile::tempdir().expect("tmp");
    let p = Prometheus::start(&prometheus, dir.path(), service.addr, &ca_file, &scraper);
    assert_eq!(p.value("up{job=\"https\"}", Some(1.0)), 1.0);
    assert_eq!(p.value("https_ca_records_up", Some(1.0)), 1.0);
    // As `pki list` counts them: make certs' client, prometheus, device-1 valid; device-2 revoked.
    let list = pki::store::Filter {
        status: Some(pki::index::Status::Valid),
        role: Some(common::Role::Client),
        ..pki::store::Filter::default()
    };
    let valid = pki
        .folder
        .open_db(Some(&authority))
        .expect("db")
        .count(&list)
        .expect("count") as f64;
    let q = "https_ca_certificates{role=\"client\",status=\"valid\"}";
    assert_eq!(p.value(q, Some(valid)), valid);
    let q = "https_ca_certificates{role=\"client\",status=\"revoked\"}";
    assert_eq!(p.value(q, Some(1.0)), 1.0);
    let q = "https_ca_leaves_in_force{issuing=\"true\"}";
    assert!(p.value(q, None) >= valid);
    let q = "https_ca_enrollments_total{protocol=\"est\",result=\"issued\"}";
    assert_eq!(p.value(q, Some(0.0)), 0.0, "a series from the first scrape");
    let crl = pki
        .folder
        .open_db(Some(&authority))
        .expect("db")
        .latest_crl(&x509::cert::key_id(authority.certificate()).expect("aki"))
        .expect("crl")
        .expect("one on record");
    let q = "https_ca_crl_number{issuing=\"true\"}";
    assert_eq!(p.value(q, Some(crl.number as f64)), crl.number as f64);
}

/// What the `ca` service (or any other) does with `server::metrics`: its own registry, its own
/// figures and build info, on a port of its own.
#[test]
fn any_service_can_expose_its_own_registry() {
    use server::metrics::prometheus::{IntCounter, Registry};
    use server::metrics::{self, Exporter};
    let registry = Registry::new();
    metrics::build_info(&registry, "ca", "9.9.9").expect("build info");
    let signed = metrics::register(
        &registry,
        IntCounter::new("https_ca_crls_signed_total", "CRLs signed.").expect("name"),
    )
    .expect("register");
    signed.inc();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let (server, addr) =
                Exporter::bind("127.0.0.1:0".parse().expect("addr"), registry).expect("bind");
            tx.send((addr, server.handle())).expect("send");
            server.await.expect("serve");
        })
    });
    let (addr, handle) = rx.recv().expect("listening");
    let body = http_get(addr, "/metrics");
    assert!(body.contains("https_ca_crls_signed_total 1"), "{body}");
    assert!(
        body.contains("service=\"ca\",version=\"9.9.9\"} 1"),
        "{body}"
    );
    drop(handle.stop(false));
    thread.join().expect("stopped");
}
