//! The server binary with Debian's libfaketime: 25 days after `pki init` (the CRL is due in
//! 5 days: it warns, `/healthz` says so) and 31 days after (the CRL is stale: `--crl-stale
//! refuse` refuses every client, `warn` accepts the ones it does not list and logs each).
//! Logs are read as `--log-format json`, one object per line.
//!
//! Without libfaketime (package faketime) the tests print SKIPPED, and fail when `REQUIRE_FAKETIME=1`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
use testkit::faketime::ShiftedServer;
use testkit::TestPki;

/// The server at a shifted clock, logging JSON, with its metrics on a port of their own.
struct Shifted(ShiftedServer);

impl Shifted {
    fn start(faketime: &Path, days: u32, pki: &TestPki, extra: &[&str]) -> Shifted {
        let mut flags = vec!["--metrics-bind", "127.0.0.1:0", "--log-format", "json"];
        flags.extend_from_slice(extra);
        let server = Path::new(env!("CARGO_BIN_EXE_server"));
        Shifted(ShiftedServer::start(
            faketime,
            days,
            server,
            pki.dir(),
            &flags,
        ))
    }

    /// Its log lines so far, each parsed (every line must be one JSON object).
    fn events(&self) -> Vec<serde_json::Value> {
        self.0
            .log()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Waits (5 s at most) for a log event whose `event` contains `words`, at `level`.
    fn wait_for(&self, level: &str, words: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.events().into_iter().find(|e| {
                e["level"] == level && e["event"].as_str().is_some_and(|t| t.contains(words))
            });
            match found {
                Some(e) => return e,
                None if Instant::now() > deadline => {
                    panic!("no {level} event with {words:?} in:\n{:#?}", self.events())
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// `GET path` over mutual TLS as `pair`: the response, or why the handshake failed.
    fn get(&self, pki: &TestPki, pair: &(PathBuf, PathBuf), path: &str) -> Result<String, String> {
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
        b.set_ca_file(pki.layout().ca_cert())
            .map_err(|e| e.to_string())?;
        b.set_certificate_chain_file(&pair.0)
            .map_err(|e| e.to_string())?;
        b.set_private_key_file(&pair.1, SslFiletype::PEM)
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(("127.0.0.1", self.0.port)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut s = b
            .build()
            .connect("localhost", tcp)
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn metrics(&self) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.0.metrics_port.expect("metrics port")))
            .expect("connect");
        tcp.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        tcp.read_to_string(&mut out).expect("read");
        out
    }
}

const ACCEPTED_STALE: &str =
    "https_tls_handshakes_total{reason=\"crl_stale\",result=\"accepted\",session=\"full\"} 1";

#[test]
fn at_day_25_the_server_warns_that_the_crl_is_due_and_healthz_says_so() {
    let Some(faketime) = testkit::faketime::find() else {
        return;
    };
    let pki = TestPki::new();
    let srv = Shifted::start(&faketime, 25, &pki, &[]);
    let warning = srv.wait_for("WARN", "crl: due");
    // 5 days less the seconds between `pki init` and the start, counted in whole days.
    let said = warning["event"].as_str().unwrap_or_default();
    assert!(
        said.contains("(in 4 days)") || said.contains("(in 5 days)"),
        "{warning}"
    );
    let health = srv.get(&pki, &pki.client(), "/healthz").expect("healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.contains("\r\n\r\nok\ncrl: due, next update"),
        "{health}"
    );
    let access = srv.wait_for("INFO", "access");
    assert_eq!(access["fields"]["path"], "/healthz", "{access}");
    let peer = access["fields"]["peer"].as_str().unwrap_or_default();
    assert!(
        peer.starts_with("127.0.0.1:"),
        "Display, not Debug: {access}"
    );
    assert!(!srv.metrics().contains("crl_stale"));
}

#[test]
fn at_day_31_refuse_fails_closed_and_says_why() {
    let Some(faketime) = testkit::faketime::find() else {
        return;
    };
    let pki = TestPki::new();
    let srv = Shifted::start(&faketime, 31, &pki, &[]);
    srv.wait_for("ERROR", "crl: STALE since");
    let e = srv
        .get(&pki, &pki.client(), "/whoami")
        .expect_err("refused");
    assert!(
        e.contains("certificate expired"),
        "OpenSSL's alert for a stale CRL: {e}"
    );
    let refusal = srv.wait_for("WARN", "client certificate refused");
    assert_eq!(refusal["fields"]["label"], "crl_stale", "{refusal}");
    assert!(
        srv.metrics().contains(
            "https_tls_handshakes_total{reason=\"crl_stale\",result=\"refused\",session=\"full\"} 1"
        ),
        "{}",
        srv.metrics()
    );
}

#[test]
fn at_day_31_warn_accepts_what_the_stale_crl_does_not_list_and_logs_it() {
    let Some(faketime) = testkit::faketime::find() else {
        return;
    };
    let pki = TestPki::new();
    let gone = pki.issue_client("gone");
    let ca = pki.folder.issuer().expect("ca");
    pki.folder.revoke(&ca, "gone", None).expect("revoke");
    let srv = Shifted::start(&faketime, 31, &pki, &["--crl-stale", "warn"]);
    srv.wait_for("ERROR", "--crl-stale warn");
    let r = srv.get(&pki, &pki.client(), "/whoami").expect("accepted");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("\"common_name\":\"client\""),
        "{r}"
    );
    let logged = srv.wait_for("WARN", "accepted on a CRL past its nextUpdate");
    assert!(logged["fields"]["client"]
        .as_str()
        .is_some_and(|c| c.ends_with("CN=client")));
    let e = srv.get(&pki, &gone, "/whoami").expect_err("revoked");
    assert!(e.contains("certificate revoked"), "{e}");
    let text = srv.metrics();
    assert!(text.contains(ACCEPTED_STALE), "{text}");
    assert!(
        text.contains(
            "https_tls_handshakes_total{reason=\"revoked\",result=\"refused\",session=\"full\"} 1"
        ),
        "{text}"
    );
}
