//! Mutual TLS in a real browser: headless Chromium, driven through chromedriver (WebDriver).
//!
//! How the browser is made to take part, as a user would set it up:
//! - trust: Chromium on Linux reads certificates from the NSS database `$HOME/.pki/nssdb`; each
//!   test gives Chromium its own `HOME`, and `certutil -A -t C,,` adds the test CA there;
//! - identity: `pk12util -i` imports the bundle `pki export-p12` made (AES-256/PBKDF2);
//! - no prompt: a managed policy, `AutoSelectCertificateForUrls` in
//!   `/etc/chromium/policies/managed/`, selects the certificate issued by the test CA for
//!   `https://localhost:PORT`; the file is removed when the test ends.
//!
//! These tests are `#[ignore]`d in a plain `cargo test` (the reason is printed). `make test` runs
//! them when Chromium is installed (`make browser-deps`); run without it, they fail: they never
//! pass without having driven the browser.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use server::{ClientAuth, Config};

use crate::support::{run, s, server_log, TestPki, TestServer};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's Chromium reads managed policies.
const POLICY_DIR: &str = "/etc/chromium/policies/managed";
/// The password `TestPki` gives the client's bundle.
const P12_PASSWORD: &str = "test-pass";

/// Headless Chromium under chromedriver, with its own HOME (and so its own NSS database).
struct Browser {
    /// Holds `.pki/nssdb` and the profile; removed on drop.
    _home: tempfile::TempDir,
    driver: Child,
    client: Option<Client>,
}

impl Browser {
    /// Starts a browser that trusts `ca` and, if given, holds the bundle `p12`.
    async fn launch(ca: &Path, p12: Option<&Path>) -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER, "certutil", "pk12util"] {
            let found = Path::new(tool).is_absolute() && Path::new(tool).exists()
                || Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is not installed: run `make browser-deps` (Debian: chromium \
                 chromium-driver libnss3-tools)"
            );
        }
        let home = tempfile::tempdir().expect("tempdir");
        Browser::nss_profile(home.path(), ca, p12);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = home.path().join("profile");
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // As root in a container: no sandbox; no GPU; and nothing that reaches out to
                // the network on its own (this machine's network is closed).
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=900,760",
                    format!("--user-data-dir={}", s(&profile)),
                ]
            }
        });
        let caps = caps.as_object().expect("object").clone();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_err = String::new();
        for _ in 0..100 {
            match ClientBuilder::native()
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        _home: home,
                        driver,
                        client: Some(client),
                    }
                }
                Err(e) => last_err = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last_err}");
    }

    /// The NSS database Chromium reads in `home`: our CA trusted, and the client's PKCS#12.
    fn nss_profile(home: &Path, ca: &Path, p12: Option<&Path>) {
        let nssdb = home.join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).expect("mkdir nssdb");
        let db = format!("sql:{}", s(&nssdb));
        let nss = |tool: &str, args: &[&str]| {
            let (ok, out) = run(tool, args);
            assert!(ok, "{tool} {args:?}: {out}");
        };
        nss("certutil", &["-N", "-d", &db, "--empty-password"]);
        nss(
            "certutil",
            &[
                "-A",
                "-d",
                &db,
                "-n",
                "https-project test CA",
                "-t",
                "C,,",
                "-i",
                s(ca),
            ],
        );
        if let Some(p12) = p12 {
            nss("pk12util", &["-i", s(p12), "-d", &db, "-W", P12_PASSWORD]);
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("open session")
    }

    async fn text(&self, css: &str) -> String {
        self.client()
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .text()
            .await
            .expect("element text")
    }

    async fn sign_in(&self, user: &str, password: &str) -> String {
        let c = self.client();
        for (field, value) in [("username", user), ("password", password)] {
            c.find(Locator::Css(&format!("input[name={field}]")))
                .await
                .expect("login field")
                .send_keys(value)
                .await
                .expect("type");
        }
        c.find(Locator::Css("#sign-in"))
            .await
            .expect("button")
            .click()
            .await
            .expect("click");
        self.text("#result").await
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    async fn quit(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A managed policy that makes Chromium offer the certificate issued by `issuer_cn` to
/// `https://localhost:PORT` without asking; removed on drop.
struct AutoSelectPolicy(PathBuf);

impl AutoSelectPolicy {
    fn install(port: u16, issuer_cn: &str) -> AutoSelectPolicy {
        let rule = serde_json::json!({
            "pattern": format!("https://localhost:{port}"),
            "filter": {"ISSUER": {"CN": issuer_cn}},
        });
        let policy = serde_json::json!({ "AutoSelectCertificateForUrls": [rule.to_string()] });
        let path = Path::new(POLICY_DIR).join(format!("https-project-e2e-{port}.json"));
        std::fs::create_dir_all(POLICY_DIR)
            .and_then(|()| std::fs::write(&path, policy.to_string()))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot write the policy {} ({e}): Chromium reads managed policies only \
                     from there; run as root",
                    path.display()
                )
            });
        AutoSelectPolicy(path)
    }
}

impl Drop for AutoSelectPolicy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn serve(pki: &TestPki, auth: ClientAuth) -> TestServer {
    crate::support::capture_logs();
    TestServer::spawn(Config::for_pki(pki.layout().root(), auth)).expect("server starts")
}

fn ca_cn(pki: &TestPki) -> String {
    let ca = pki.folder.issuer().expect("ca");
    x509::cert::common_name(ca.certificate().subject_name()).expect("CA CN")
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within 120 s"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium: `make browser-deps`, then `make test`"]
async fn chromium_presents_its_certificate_and_signs_in() {
    let pki = TestPki::new();
    let srv = serve(&pki, ClientAuth::Required);
    let _policy = AutoSelectPolicy::install(srv.addr.port(), &ca_cn(&pki));
    let p12 = pki.layout().client_p12("client");
    let origin = format!("https://localhost:{}", srv.addr.port());
    within("browser session", async {
        let b = Browser::launch(&pki.layout().ca_cert(), Some(&p12)).await;
        b.client()
            .goto(&format!("{origin}/"))
            .await
            .expect("open the page");
        assert_eq!(b.text("#cn").await, "client", "the page names the client");
        let serial = b.text("#serial").await;
        let expected = x509::cert::serial_hex(
            &x509::cert::load_cert("client", &pki.layout().client_cert()).expect("cert"),
        )
        .expect("serial");
        assert_eq!(
            serial, expected,
            "the serial of the certificate the browser sent"
        );
        b.screenshot("page-with-client-cn").await;

        assert_eq!(b.sign_in("name", "pwd1").await, "Signed in as name.");
        b.screenshot("signed-in").await;

        b.client().goto(&format!("{origin}/")).await.expect("back");
        assert_eq!(
            b.sign_in("name", "not-the-password").await,
            "Wrong user name or password."
        );
        b.screenshot("wrong-password").await;

        // The same form, posted from another site (a data: page): the browser still offers the
        // certificate, so the server must refuse it by where it came from.
        let forged = format!(
            "data:text/html,<form%20method=post%20action={origin}/login1>\
             <input%20name=username%20value=name><input%20name=password%20value=pwd1>\
             <button%20id=go>go</button></form>"
        );
        b.client()
            .goto(&forged)
            .await
            .expect("open the forged form");
        b.client()
            .find(Locator::Css("#go"))
            .await
            .expect("button")
            .click()
            .await
            .expect("click");
        let refusal = b.text("#result").await;
        assert!(refusal.contains("posted from another site"), "{refusal}");
        b.quit().await;
    })
    .await;
    assert!(
        server_log().contains("refused POST /login1: a form posted from another site"),
        "{}",
        server_log()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium: `make browser-deps`, then `make test`"]
async fn chromium_without_a_certificate_is_refused_in_mutual_mode_only() {
    let pki = TestPki::new();
    let mutual = serve(&pki, ClientAuth::Required);
    let optional = serve(&pki, ClientAuth::Optional);
    within("browser session", async {
        let b = Browser::launch(&pki.layout().ca_cert(), None).await;
        // Mutual TLS: the handshake fails, and Chromium says it was about the client certificate,
        // either as the navigation's error or on its error page.
        let url = format!("https://localhost:{}/", mutual.addr.port());
        let said = match b.client().goto(&url).await {
            Err(e) => e.to_string(),
            Ok(()) => b.client().source().await.expect("source"),
        };
        assert!(
            said.contains("ERR_BAD_SSL_CLIENT_AUTH_CERT"),
            "expected Chromium's client-auth error, got: {said}"
        );
        b.screenshot("mutual-without-certificate").await;
        // Optional mode: the page loads and says there is no certificate.
        b.client()
            .goto(&format!("https://localhost:{}/", optional.addr.port()))
            .await
            .expect("open the page");
        let text = b.text("#no-cert").await;
        assert!(text.contains("optional mode"), "{text}");
        b.quit().await;
    })
    .await;
}

/// A PKI whose CA may sign only for `dns` (and no IP), with the server's certificate for
/// `server_names`.
fn constrained(dns: &[&str], server_names: &[&str]) -> TestPki {
    TestPki::with_options(pki::InitOptions {
        p12_password: Some(P12_PASSWORD.into()),
        constraints: pki::constraints::NameConstraints {
            dns: dns.iter().map(|d| d.to_string()).collect(),
            ip: Vec::new(),
        },
        server_names: server_names
            .iter()
            .map(|n| n.parse().expect("name"))
            .collect(),
        ..pki::InitOptions::default()
    })
}

/// A server certificate for `localhost`, signed by hand by `pki`'s CA (as `pki issue` would
/// refuse to when the name is outside the CA's constraints), in place of the server's own.
fn hand_made_localhost(pki: &TestPki) {
    let ca = pki.folder.issuer().expect("ca");
    let key = pki::key::generate(pki::KeyAlgorithm::EcP256).expect("key");
    let req =
        pki::request::build(&key, &pki::Subject::new("https Project", "localhost")).expect("req");
    let spec = pki::CertSpec::new(pki::Profile::Server).names(pki::SubjectAltName::localhost());
    let cert = ca.sign(&req, &spec).expect("signed by hand");
    let l = pki.layout();
    std::fs::write(l.server_cert(), cert.to_pem().expect("pem")).expect("cert");
    std::fs::write(l.server_key(), pki::key::to_pem(&key).expect("pem")).expect("key");
}

/// What Chromium shows for `https://localhost:PORT/login` when it trusts only `ca`.
async fn chromium_says(ca: &Path, port: u16, shot: &str) -> String {
    let b = Browser::launch(ca, None).await;
    let url = format!("https://localhost:{port}/login");
    let said = match b.client().goto(&url).await {
        Err(e) => e.to_string(),
        Ok(()) => b.client().source().await.expect("source"),
    };
    b.screenshot(shot).await;
    b.quit().await;
    said
}

/// Name constraints as the browser judges them: the same hand-made certificate for
/// `localhost` loads from a CA without constraints and from one constrained to `localhost`,
/// and is refused from one constrained to `.internal` (Chromium 156 says ERR_CERT_INVALID).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium: `make browser-deps`, then `make test`"]
async fn chromium_enforces_the_name_constraints_pki_puts_on_its_ca() {
    let free = constrained(&[], &["localhost"]);
    let inside = constrained(&["localhost"], &["localhost"]);
    let outside = constrained(&[".internal"], &["api.internal"]);
    for pki in [&free, &inside, &outside] {
        hand_made_localhost(pki);
    }
    let servers: Vec<TestServer> = [&free, &inside, &outside]
        .iter()
        .map(|p| serve(p, ClientAuth::None))
        .collect();
    within("browser sessions", async {
        let said = chromium_says(&free.layout().ca_cert(), servers[0].addr.port(), "nc-none").await;
        assert!(said.contains("Hello World!"), "without constraints: {said}");
        let said = chromium_says(
            &inside.layout().ca_cert(),
            servers[1].addr.port(),
            "nc-inside",
        )
        .await;
        assert!(
            said.contains("Hello World!"),
            "inside the constraints: {said}"
        );
        let said = chromium_says(
            &outside.layout().ca_cert(),
            servers[2].addr.port(),
            "nc-outside",
        )
        .await;
        assert!(
            !said.contains("Hello World!") && said.contains("ERR_CERT_INVALID"),
            "outside the constraints, expected Chromium's refusal, got: {said}"
        );
    })
    .await;
}

/// What Chromium and Firefox use to import a bundle (NSS's PKCS#12 code) reads both encryptions
/// `pki export-p12` offers, and the key arrives with its certificate.
#[test]
#[ignore = "needs NSS tools: `make browser-deps`, then `make test`"]
fn nss_imports_modern_and_legacy_bundles() {
    let pki = TestPki::new();
    let ca = pki.folder.issuer().expect("ca");
    for encryption in [pki::P12Encryption::Modern, pki::P12Encryption::Legacy] {
        let p12 = pki
            .folder
            .export_p12(
                &ca,
                "client",
                P12_PASSWORD,
                encryption,
                pki::files::Overwrite::Replace,
            )
            .expect("export");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sql:{}", s(dir.path()));
        let (ok, out) = run("certutil", &["-N", "-d", &db, "--empty-password"]);
        assert!(ok, "{out}");
        let (ok, out) = run("pk12util", &["-i", s(&p12), "-d", &db, "-W", P12_PASSWORD]);
        assert!(ok, "{encryption:?}: {out}");
        let (ok, out) = run("certutil", &["-K", "-d", &db]);
        assert!(
            ok && out.contains("client"),
            "{encryption:?}: no key: {out}"
        );
        let (ok, out) = run("pk12util", &["-i", s(&p12), "-d", &db, "-W", "wrong"]);
        assert!(!ok, "{encryption:?}: a wrong password must fail: {out}");
    }
}
