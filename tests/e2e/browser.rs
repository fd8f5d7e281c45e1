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

use crate::support::{run, s, server_log, workspace_bins, TestPki, TestServer};

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

    /// Waits (10 s at most) until `css`'s text is `want`: after a click that navigates, the
    /// old page's element may be found, and then go stale, before the new page is there.
    async fn text_becomes(&self, css: &str, want: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        while std::time::Instant::now() < deadline {
            if let Ok(el) = self.client().find(Locator::Css(css)).await {
                match el.text().await {
                    Ok(t) if t == want => return,
                    Ok(t) => seen = t,
                    Err(e) => seen = format!("({e})"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} is {seen:?}, not {want:?}");
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

/// `pki --dir DIR args`, which must succeed; its stdout.
fn pki_cli(pki: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = testkit::command(pki)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run pki");
    assert!(
        out.status.success(),
        "pki {args:?}: {}",
        testkit::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `ca` binary on an ephemeral loopback port; killed on drop.
struct CaProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl CaProcess {
    fn start(ca: &Path, dir: &Path, args: &[&str]) -> CaProcess {
        use std::io::{BufRead, BufReader};
        let log = dir.join("ca.stderr");
        let mut child = testkit::command(ca)
            .arg("--pki-dir")
            .arg(dir)
            .args(["--bind", "127.0.0.1:0", "--workers", "1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start ca");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads `listening on https://127.0.0.1:PORT …`, then keeps draining stdout.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .strip_prefix("listening on https://127.0.0.1:")
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|p| p.parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "ca did not say it was listening within 60 s: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        CaProcess { child, port, log }
    }
}

impl Drop for CaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where test artifacts a person looks at go: `TARGET/test-artifacts/NAME`.
fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("mkdir test-artifacts");
    dir.join(name)
}

/// The `ca` binary's fleet page in Chromium: an admin's certificate (CN on `--admin-allow-cn`)
/// sees the counts `pki list` gives, the chart, and a search by name prefix; another device's
/// certificate, and no certificate, hear 403 and why.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium: `make browser-deps`, then `make test`"]
async fn browser_fleet_page_for_admins_only() {
    let [pki, ca] = workspace_bins(["pki", "ca"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let run_pki = |args: &[&str]| pki_cli(&pki, &dir, args, &[]);
    run_pki(&["init"]);
    run_pki(&["issue", "client", "--name", "ops"]);
    run_pki(&["issue", "client", "--name", "eve"]);
    run_pki(&["issue", "client", "--count", "5", "--prefix", "sensor-"]);
    // Two ending soon: one within 7 days, one within 30 (the list, the tiles and the chart).
    run_pki(&["issue", "client", "--name", "meter-1", "--days", "5"]);
    run_pki(&["issue", "client", "--name", "meter-2", "--days", "20"]);
    run_pki(&["revoke", "sensor-3", "--reason", "keyCompromise"]);
    for name in ["ops", "eve"] {
        pki_cli(
            &pki,
            &dir,
            &["export-p12", "--name", name],
            &[("PKI_P12_PASSWORD", P12_PASSWORD)],
        );
    }
    let srv = CaProcess::start(&ca, &dir, &["--admin-allow-cn", "ops"]);
    // After the start: the ca records its own TLS certificate (server/est.crt) at the first one.
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&run_pki(&["list", "--json"])).expect("pki list --json");
    let with_status = |s: &str| listed.iter().filter(|c| c["status"] == s).count();
    let (valid, revoked) = (with_status("valid"), with_status("revoked"));
    let ending_7d: Vec<serde_json::Value> =
        serde_json::from_str(&run_pki(&["list", "--json", "--expiring-within", "7d"]))
            .expect("pki list --json --expiring-within 7d");
    assert!(valid >= 10 && revoked == 1, "pki list: {listed:?}");

    let ca_cert = dir.join("ca/ca.crt");
    let issuer = x509::cert::common_name(
        x509::cert::load_cert("ca", &ca_cert)
            .expect("ca.crt")
            .subject_name(),
    )
    .expect("CA CN");
    let _policy = AutoSelectPolicy::install(srv.port, &issuer);
    let origin = format!("https://localhost:{}", srv.port);
    let fleet = format!("{origin}/fleet");
    within("browser session as the admin", async {
        let b = Browser::launch(&ca_cert, Some(&dir.join("client/ops.p12"))).await;
        b.client().goto(&fleet).await.expect("open /fleet");
        let who = b.text(".who").await;
        assert!(who.starts_with("Signed in as ops"), "{who}");
        assert_eq!(b.text("#valid").await, valid.to_string(), "#valid");
        assert_eq!(b.text("#revoked").await, revoked.to_string(), "#revoked");
        assert_eq!(b.text("#expired").await, with_status("expired").to_string());
        assert_eq!(b.text("#ending-7d").await, ending_7d.len().to_string());
        let chart = b
            .client()
            .find(Locator::Css("svg#chart"))
            .await
            .expect("#chart on the page");
        let bars = chart
            .find_all(Locator::Css("rect.bar"))
            .await
            .expect("bars");
        assert_eq!(bars.len(), 13, "one bar a week for 13 weeks");
        // The page's one inline style ran under its CSP (hash-listed): the tiles are a grid.
        let tiles = b
            .client()
            .find(Locator::Css(".tiles"))
            .await
            .expect("tiles");
        assert_eq!(tiles.css_value("display").await.expect("css"), "grid");
        let soon = b.text("#list").await;
        assert!(
            soon.contains("meter-1") && soon.contains("meter-2") && !soon.contains("sensor-1"),
            "ending within 30 days: {soon}"
        );
        // The whole page in one picture: a viewport as tall as the page (a few tries: the
        // browser's own frame takes some of the window, and the scrollbar some width).
        b.client().set_window_size(1100, 800).await.expect("resize");
        for _ in 0..3 {
            let sizes = b
                .client()
                .execute(
                    "return [document.documentElement.scrollHeight, window.innerHeight, \
                     window.outerHeight]",
                    vec![],
                )
                .await
                .expect("page height");
            let px = |i: usize| sizes[i].as_u64().unwrap_or(0);
            let (page, inner, outer) = (px(0), px(1), px(2));
            if inner >= page {
                break;
            }
            let want = u32::try_from(outer + page - inner).unwrap_or(4000);
            b.client()
                .set_window_size(1100, want)
                .await
                .expect("resize");
        }
        let png = artifact("fleet.png");
        std::fs::write(&png, b.client().screenshot().await.expect("screenshot"))
            .expect("write fleet.png");
        eprintln!("screenshot: {}", png.display());

        // Search by name prefix, through the page's own GET form.
        let q = b
            .client()
            .find(Locator::Css("input[name=q]"))
            .await
            .expect("search box");
        q.send_keys("sensor-").await.expect("type");
        b.client()
            .find(Locator::Css("form button[type=submit]"))
            .await
            .expect("search button")
            .click()
            .await
            .expect("search");
        b.text_becomes("#list-title", "Search: sensor-").await;
        let url = b.client().current_url().await.expect("url");
        assert_eq!(url.path(), "/fleet");
        assert!(url.query().unwrap_or("").contains("q=sensor-"), "{url}");
        let found = b.text("#list").await;
        for i in 1..=5 {
            assert!(
                found.contains(&format!("sensor-{i}")),
                "sensor-{i}: {found}"
            );
        }
        assert!(
            !found.contains("ops") && !found.contains("meter-"),
            "only the prefix: {found}"
        );
        assert!(
            found.contains("revoked"),
            "sensor-3 is listed revoked: {found}"
        );
        let png = artifact("fleet-search.png");
        std::fs::write(&png, b.client().screenshot().await.expect("screenshot"))
            .expect("write fleet-search.png");
        eprintln!("screenshot: {}", png.display());
        b.quit().await;
    })
    .await;

    // A device of the same CA, not on the allow-list: 403, and why.
    within("browser session as a device", async {
        let b = Browser::launch(&ca_cert, Some(&dir.join("client/eve.p12"))).await;
        b.client().goto(&fleet).await.expect("open /fleet");
        let said = b.text("body").await;
        assert!(
            said.contains("eve is not on the admin allow-list"),
            "expected the ca's refusal, got: {said}"
        );
        b.screenshot("fleet-not-admin").await;
        b.quit().await;
    })
    .await;
    // No certificate at all: 403 too (the ca asks for one but does not require it).
    within("browser session without a certificate", async {
        let b = Browser::launch(&ca_cert, None).await;
        b.client().goto(&fleet).await.expect("open /fleet");
        let said = b.text("body").await;
        assert!(
            said.contains("present an admin client certificate"),
            "expected the ca's refusal, got: {said}"
        );
        b.quit().await;
    })
    .await;
    // WebDriver does not tell a page's status: the same two asked over TLS are 403s.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], srv.port));
    let eve = (dir.join("client/eve.crt"), dir.join("client/eve.key"));
    let ops = (dir.join("client/ops.crt"), dir.join("client/ops.key"));
    let anonymous = crate::tls_client::Opts {
        ca: Some(&ca_cert),
        ..Default::default()
    };
    for (who, opts, status) in [
        ("ops", crate::tls_client::Opts::mutual(&ca_cert, &ops), 200),
        ("eve", crate::tls_client::Opts::mutual(&ca_cert, &eve), 403),
        ("nobody", anonymous, 403),
    ] {
        let r = crate::tls_client::get(addr, &opts, "/fleet").expect("answer");
        assert_eq!(r.status, status, "{who}: {}", r.body);
    }
    let log = std::fs::read_to_string(&srv.log).unwrap_or_default();
    assert!(!log.contains("panicked"), "ca's log: {log}");
}
