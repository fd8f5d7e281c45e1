//! A year in the life of `make certs`, with the real binaries under Debian's `faketime`:
//! - day 25: the server warns that its CRL is due, and still serves;
//! - day 31: the CRL is stale, the server (`--crl-stale refuse`, the default) refuses, and the
//!   client says the truth: its own certificate is valid, the server's CRL is out of date;
//! - `pki crl --if-due`, a reload, and the same client is accepted again;
//! - day 340: `pki needs-renewal` says due; `pki renew` of the client and of the server;
//! - day 366: the renewed client is accepted, the old certificate (expired) is refused.
//!
//! `server` and `pki` are the workspace's own binaries, found beside this test's (`cargo test
//! --workspace` builds them). Without `faketime` the test prints SKIPPED, and fails when
//! `REQUIRE_FAKETIME=1`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::{text, TestPki};

fn faketime() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("faketime"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("REQUIRE_FAKETIME").is_none(),
            "REQUIRE_FAKETIME is set but faketime is not on PATH (apt-get install faketime)"
        );
        eprintln!("SKIPPED: the timeline needs faketime on PATH (apt-get install faketime)");
    }
    found
}

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
    testkit::command(faketime().expect("faketime"))
        .args(["-f", &format!("+{days}d")])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run under faketime")
}

/// The server at a shifted clock, killed (with faketime's group) on drop.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(days: u32, pki: &TestPki) -> Server {
        let mut child = testkit::command(faketime().expect("faketime"))
            .args(["-f", &format!("+{days}d")])
            .arg(sibling("server"))
            .arg("--pki-dir")
            .arg(pki.dir())
            .args([
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--watch-secs",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start the server under faketime");
        let log = Arc::new(Mutex::new(String::new()));
        let (sink, stderr) = (log.clone(), child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap_or_else(|e| e.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("start-up line");
        let port = first
            .split("https://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}; log: {}", log.lock().expect("log")));
        Server { child, port, log }
    }

    /// Waits up to 5 s for `needle` in the server's log.
    fn logged(&self, needle: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if self.log.lock().expect("log").contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `client whoami` at `days` with `cert`/`key`.
    fn whoami(&self, days: u32, pki: &TestPki, pair: &(PathBuf, PathBuf)) -> Output {
        let url = format!("https://127.0.0.1:{}", self.port);
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
    if faketime().is_none() {
        return;
    }
    let pki = TestPki::new();
    let client = pki.client();

    // Day 25: the CRL is due in 5 days; the server says so and serves.
    let srv = Server::start(25, &pki);
    assert!(srv.logged("crl: due"), "{}", srv.log.lock().expect("log"));
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
