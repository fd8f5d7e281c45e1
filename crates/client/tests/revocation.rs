//! The `client` binary against a server whose certificate names a CRL published by a plain web
//! server (`python3 -m http.server`, as a static site would): accepted while it is good,
//! refused and explained once revoked, and what an unreachable CRL does, soft and hard.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use pki::files::Overwrite;
use pki::index::Reason;
use pki::{InitOptions, Leaf, SubjectAltName};
use server::{Background, ClientAuth, Config};
use testkit::{text, TestPki};

/// `python3 -m http.server` serving `dir` on a loopback port; stopped on drop.
struct WebServer {
    child: Child,
    port: u16,
}

impl WebServer {
    fn start(dir: &Path) -> WebServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return WebServer { child, port };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("python3 -m http.server did not listen");
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(pki: &Path, port: u16, extra: &[&str]) -> Output {
    testkit::command(env!("CARGO_BIN_EXE_client"))
        .arg("--pki-dir")
        .arg(pki)
        .args([
            "--timeout",
            "3",
            "--url",
            &format!("https://127.0.0.1:{port}"),
        ])
        .args(extra)
        .arg("whoami")
        .stdin(Stdio::null())
        .output()
        .expect("run client")
}

#[test]
fn a_revoked_server_certificate_is_refused_and_an_unreachable_crl_is_soft_by_default() {
    let pki = TestPki::with_options(InitOptions::default());
    let web = WebServer::start(&pki.layout().dir(common::Role::Ca));
    let crl_url = format!("http://127.0.0.1:{}/ca.crl", web.port);
    pki.folder.set_crl_url(Some(&crl_url)).expect("crl url");
    let ca = pki.folder.issuer().expect("ca");
    let names = SubjectAltName::localhost();
    pki.folder
        .issue(&ca, &Leaf::server("server", names), Overwrite::Replace)
        .expect("server certificate naming the CRL");
    let srv = Background::spawn(Config::for_pki(pki.dir(), ClientAuth::Required)).expect("server");
    let port = srv.addr.port();

    let o = client(pki.dir(), port, &[]);
    assert_eq!(o.status.code(), Some(0), "a good certificate: {}", text(&o));

    pki.folder
        .revoke(&ca, "server", Some(Reason::KeyCompromise))
        .expect("revoke");
    let o = client(pki.dir(), port, &[]);
    assert_eq!(o.status.code(), Some(20), "{}", text(&o));
    for words in [
        "the server's certificate",
        "was revoked on",
        "(keyCompromise)",
    ] {
        assert!(text(&o).contains(words), "missing {words:?}: {}", text(&o));
    }
    let o = client(pki.dir(), port, &["--crl-check", "off"]);
    assert_eq!(o.status.code(), Some(0), "--crl-check off: {}", text(&o));

    // The CRL's web server is gone: soft (the default) warns and goes on, hard refuses.
    drop(web);
    let o = client(pki.dir(), port, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("could not be checked"), "{}", text(&o));
    let o = client(pki.dir(), port, &["--crl-check", "hard"]);
    assert_eq!(o.status.code(), Some(20), "{}", text(&o));
    assert!(text(&o).contains(&crl_url), "{}", text(&o));
}
