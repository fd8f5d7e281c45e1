//! A year in the life of `make certs`, with the real binaries with Debian's libfaketime:
//! - day 25: the server warns that its CRL is due, and still serves;
//! - day 31: the CRL is stale, the server (`--crl-stale refuse`, the default) refuses, and the
//!   client says the truth: its own certificate is valid, the server's CRL is out of date;
//! - `pki crl --if-due`, a reload, and the same client is accepted again;
//! - day 340: `pki needs-renewal` says due; `pki renew` of the client and of the server;
//! - day 366: the renewed client is accepted, the old certificate (expired) is refused.
//!
//! `server` and `pki` are the workspace's own binaries, found beside this test's (`cargo test
//! --workspace` builds them). Without libfaketime the test prints SKIPPED, and fails when
//! `REQUIRE_FAKETIME=1`.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use testkit::faketime::ShiftedServer;
use testkit::{text, TestPki};

/// A workspace binary beside the client's (target/debug/NAME).
fn sibling(name: &str) -> PathBuf {
    let client = PathBuf::from(env!("CARGO_BIN_EXE_client"));
    let path = client.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds every binary)",
        path.display()
    );
    path
}

/// `program ARGS` at `days` after today.
fn at(days: u32, program: &Path, args: &[&str]) -> Output {
    let faketime = testkit::faketime::find().expect("faketime");
    testkit::faketime::command(&faketime, days, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run under faketime")
}

/// The server at a shifted clock.
struct Server(ShiftedServer);

impl Server {
    fn start(days: u32, pki: &TestPki) -> Server {
        let faketime = testkit::faketime::find().expect("faketime");
        Server(ShiftedServer::start(
            &faketime,
            days,
            &sibling("server"),
            pki.dir(),
            &[],
        ))
    }

    /// Waits up to 5 s for `needle` in the server's log.
    fn logged(&self, needle: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if self.0.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `client whoami` at `days` with `cert`/`key`.
    fn whoami(&self, days: u32, pki: &TestPki, pair: &(PathBuf, PathBuf)) -> Output {
        let url = format!("https://127.0.0.1:{}", self.0.port);
        at(
            days,
            Path::new(env!("CARGO_BIN_EXE_client")),
            &[
                "--pki-dir",
                s(pki.dir()),
                "--url",
                &url,
                "--cert",
                s(&pair.0),
                "--key",
                s(&pair.1),
                "--timeout",
                "5",
                "whoami",
            ],
        )
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

fn pki_at(days: u32, pki: &TestPki, args: &[&str]) -> Output {
    let mut all = vec!["--dir", s(pki.dir())];
    all.extend_from_slice(args);
    at(days, &sibling("pki"), &all)
}

#[test]
fn a_year_of_make_certs_with_the_crl_kept_and_the_certificates_renewed() {
    if testkit::faketime::find().is_none() {
        return;
    }
    let pki = TestPki::new();
    let client = pki.client();

    // Day 25: the CRL is due in 5 days; the server says so and serves.
    let srv = Server::start(25, &pki);
    assert!(srv.logged("crl: due"), "{}", srv.0.log());
    let o = srv.whoami(25, &pki, &client);
    assert_eq!(o.status.code(), Some(0), "day 25: {}", text(&o));
    drop(srv);

    // Day 31: the CRL is stale; refused, and the client does not blame its own certificate.
    let srv = Server::start(31, &pki);
    let o = srv.whoami(31, &pki, &client);
    assert_eq!(o.status.code(), Some(17), "day 31: {}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("the server says our certificate has expired, but it is valid until")
            && said.contains("CRL is probably out of date"),
        "day 31, the client's words: {said}"
    );
    // The cron line, then a reload: the same certificate is welcome again.
    let o = pki_at(31, &pki, &["crl", "--if-due"]);
    assert!(
        o.status.success() && text(&o).contains("was due"),
        "{}",
        text(&o)
    );
    drop(srv);
    let srv = Server::start(31, &pki);
    let o = srv.whoami(31, &pki, &client);
    assert_eq!(
        o.status.code(),
        Some(0),
        "day 31 after pki crl: {}",
        text(&o)
    );
    drop(srv);

    // Day 340: due for renewal; the client and the server are renewed.
    let cert = pki.layout().client_cert();
    let o = pki_at(100, &pki, &["needs-renewal", s(&cert)]);
    assert_eq!(o.status.code(), Some(1), "day 100, not due: {}", text(&o));
    let o = pki_at(340, &pki, &["needs-renewal", s(&cert)]);
    assert_eq!(o.status.code(), Some(0), "day 340, due: {}", text(&o));
    let old = pki.scratch().join("old-client.crt");
    std::fs::copy(&cert, &old).expect("keep the old certificate");
    for name in ["client", "server"] {
        let o = pki_at(340, &pki, &["renew", name]);
        assert!(o.status.success(), "renew {name}: {}", text(&o));
    }

    // Day 366: the old certificate has expired, the renewed one works (with a fresh CRL,
    // as the timer keeps it).
    let o = pki_at(366, &pki, &["crl", "--if-due"]);
    assert!(o.status.success(), "{}", text(&o));
    let srv = Server::start(366, &pki);
    let o = srv.whoami(366, &pki, &client);
    assert_eq!(o.status.code(), Some(0), "day 366, renewed: {}", text(&o));
    let o = srv.whoami(366, &pki, &(old, client.1.clone()));
    assert_eq!(
        o.status.code(),
        Some(17),
        "day 366, the old one is refused: {}",
        text(&o)
    );
    assert!(text(&o).contains("expired"), "{}", text(&o));
}
