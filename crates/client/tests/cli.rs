//! The `client` binary against real servers (ours, Python's, a plain TCP listener, nothing):
//! each failure class by its exit code and its explanation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use pki::files::Overwrite;
use pki::{CertSpec, InitOptions, Profile, Validity};
use server::Background;
use server::{ClientAuth, Config};
use testkit::{text, TestPki};

/// A fresh PKI as `make certs` makes it (its p12 password in `client.p12.pass`).
fn new_pki() -> TestPki {
    TestPki::with_options(InitOptions::default())
}

fn serve(pki: &TestPki, auth: ClientAuth) -> Background {
    Background::spawn(Config::for_pki(pki.dir(), auth)).expect("server")
}

/// The client binary, without the caller's `CLIENT_*` (or other of our) variables.
fn bin() -> Command {
    testkit::command(env!("CARGO_BIN_EXE_client"))
}

fn client(pki: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--pki-dir")
        .arg(pki)
        .args(["--timeout", "3"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run client")
}

fn url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// Asserts the exit code and that the explanation contains each of `words`.
fn expect(o: &Output, code: i32, words: &[&str]) {
    let t = text(o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    for w in words {
        assert!(t.contains(w), "missing {w:?} in: {t}");
    }
}

#[test]
fn the_seed_sequence_whoami_and_login() {
    let pki = new_pki();
    let srv = serve(&pki, ClientAuth::Required);
    let u = url(srv.addr.port());
    let o = client(pki.dir(), &["--url", &u]);
    expect(
        &o,
        0,
        &[
            "GET /login → 200",
            "Hello World!",
            "POST /login1 → 200",
            "true",
        ],
    );

    let o = client(pki.dir(), &["--url", &u, "whoami", "--json"]);
    expect(&o, 0, &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let who: serde_json::Value =
        serde_json::from_str(v["body"].as_str().expect("body")).expect("whoami json");
    assert_eq!(who["common_name"], "client");

    let login = |extra: &[&str]| {
        let mut c = bin();
        c.arg("--pki-dir")
            .arg(pki.dir())
            .args(["--url", &u, "login"])
            .args(extra);
        c
    };
    let o = login(&["--password-env", "PW"])
        .env("PW", "pwd1")
        .output()
        .expect("login");
    expect(&o, 0, &["POST /login1 → 200", "true"]);
    let mut child = login(&["--username", "name"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"wrong\n")
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    expect(&o, 1, &["false"]);

    // The PKCS#12 bundle, its password read from the .pass file next to it.
    let p12 = pki.folder.layout().client_p12("client");
    let o = client(
        pki.dir(),
        &["--url", &u, "--p12", p12.to_str().expect("utf8"), "whoami"],
    );
    expect(&o, 0, &["\"common_name\":\"client\""]);
}

#[test]
fn each_failure_class_has_its_exit_code_and_words() {
    let pki = new_pki();
    let srv = serve(&pki, ClientAuth::Required);
    let u = url(srv.addr.port());

    // 16: the server requires a client certificate.
    let o = client(pki.dir(), &["--url", &u, "--no-client-cert"]);
    expect(&o, 16, &["requires a client certificate", "alert"]);

    // 13: the server's certificate is from another CA than ours.
    let other = new_pki();
    let other_ca = other.folder.layout().ca_cert();
    let o = client(
        pki.dir(),
        &["--url", &u, "--ca", other_ca.to_str().expect("utf8")],
    );
    expect(&o, 13, &["not issued by the CA in", "verify error"]);

    // 14: a name the certificate does not carry.
    let o = client(pki.dir(), &["--url", &u, "--server-name", "api.example"]);
    expect(
        &o,
        14,
        &[
            "is for DNS:localhost, IP:127.0.0.1, IP:::1, not api.example",
            "--san api.example",
        ],
    );
    // ... and a name it does carry, through --server-name.
    let o = client(
        pki.dir(),
        &["--url", &u, "--server-name", "localhost", "get", "/login"],
    );
    expect(&o, 0, &["Hello World!"]);

    // 17: our certificate revoked (the server reloads the new CRL).
    let ca = pki.folder.issuer().expect("ca");
    pki.folder.revoke(&ca, "client", None).expect("revoke");
    srv.tls.reload().expect("reload");
    let o = client(pki.dir(), &["--url", &u]);
    expect(&o, 17, &["refused our client certificate", "revoked"]);

    let with_pair = |cert: &Path, key: &Path| {
        let (cert, key) = (cert.to_str().expect("utf8"), key.to_str().expect("utf8"));
        client(pki.dir(), &["--url", &u, "--cert", cert, "--key", key])
    };
    let (ours, theirs) = (pki.folder.layout(), other.folder.layout());

    // 17: a client certificate from a CA the server does not trust.
    let o = with_pair(&theirs.client_cert(), &theirs.client_key());
    expect(&o, 17, &["not issued by a CA the server trusts"]);

    // 2: a key that does not match the certificate: refused before connecting.
    let o = with_pair(&ours.client_cert(), &theirs.client_key());
    expect(&o, 2, &["does not match the certificate"]);
}

#[test]
fn client_variables_reach_the_binary() {
    let pki = new_pki();
    let srv = serve(&pki, ClientAuth::Required);
    let env = |name: &str, value: &std::ffi::OsStr| {
        let mut c = bin();
        c.env("CLIENT_URL", url(srv.addr.port()))
            .env("CLIENT_PKI_DIR", pki.dir())
            .env(name, value)
            .stdin(Stdio::null());
        c
    };
    let p12 = pki.folder.layout().client_p12("client");
    let o = env("CLIENT_P12", p12.as_os_str())
        .arg("whoami")
        .output()
        .expect("run");
    expect(&o, 0, &["\"common_name\":\"client\""]);
    // CLIENT_P12_PASSWORD comes before the .pass file next to the bundle.
    let o = env("CLIENT_P12_PASSWORD", "not-the-password".as_ref())
        .args(["--p12", p12.to_str().expect("utf8"), "whoami"])
        .output()
        .expect("run");
    expect(&o, 2, &["wrong password", "CLIENT_P12_PASSWORD"]);
}

/// A CRL whose nextUpdate has passed, made by the CA (`pki crl` with 0 days), where the
/// server reads it.
fn write_stale_crl(pki: &TestPki) {
    let ca = pki.folder.issuer().expect("ca");
    let crl = ca.crl(&[], 2, 0).expect("crl");
    let next_update = x509::time::unix_time(crl.next_update().expect("next")).expect("t");
    std::fs::write(pki.folder.layout().ca_crl(), crl.to_pem().expect("pem")).expect("write");
    // nextUpdate is now: wait until it is strictly past (OpenSSL compares in seconds).
    while x509::time::now() <= next_update {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Issue 12, day 31: OpenSSL sends "certificate expired" for a CRL past its nextUpdate; our
/// client checks its own certificate before it believes that.
#[test]
fn a_stale_crl_on_the_server_is_not_blamed_on_our_certificate() {
    let pki = new_pki();
    write_stale_crl(&pki);
    let srv = serve(&pki, ClientAuth::Required);
    let u = url(srv.addr.port());
    let o = client(pki.dir(), &["--url", &u, "whoami"]);
    expect(
        &o,
        17,
        &[
            "the server says our certificate has expired, but it is valid until",
            "the server's CRL is probably out of date or its clock is wrong",
            "ask its operator to run `pki crl`",
            "certificate expired",
        ],
    );
    assert!(!text(&o).contains("issue a new one"), "{}", text(&o));
    // The CRL was the reason: a fresh one, and the same certificate is welcome.
    let ca = pki.folder.issuer().expect("ca");
    pki.folder.write_crl(&ca).expect("fresh CRL");
    srv.tls.reload().expect("reload");
    let o = client(pki.dir(), &["--url", &u, "whoami"]);
    expect(&o, 0, &["\"common_name\":\"client\""]);
}

#[test]
fn an_expired_server_certificate_is_named_with_its_date() {
    let pki = new_pki();
    let ca = pki.folder.issuer().expect("ca");
    let now = x509::time::now();
    let key = pki::key::generate(pki::KeyAlgorithm::EcP256).expect("key");
    let req =
        pki::request::build(&key, &pki::Subject::new("https Project", "localhost")).expect("req");
    let spec = CertSpec::new(Profile::Server)
        .names(pki::SubjectAltName::localhost())
        .validity(Validity::between(now - 40 * 86_400, now - 10 * 86_400));
    let cert = ca.sign(&req, &spec).expect("sign");
    let l = pki.folder.layout();
    pki::files::write(
        "cert",
        &l.server_cert(),
        &cert.to_pem().expect("pem"),
        pki::files::Secrecy::Public,
        Overwrite::Replace,
    )
    .expect("write");
    pki::files::write(
        "key",
        &l.server_key(),
        &pki::key::to_pem(&key).expect("pem"),
        pki::files::Secrecy::Secret,
        Overwrite::Replace,
    )
    .expect("write");
    let srv = serve(&pki, ClientAuth::Required);
    let o = client(pki.dir(), &["--url", &url(srv.addr.port())]);
    expect(
        &o,
        15,
        &[
            "the server's certificate expired on",
            "pki issue server --force",
        ],
    );
}

#[test]
fn closed_ports_plain_tcp_and_silent_listeners() {
    let pki = new_pki();
    // 10: nothing listening (bind, learn the port, close).
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let o = client(pki.dir(), &["--url", &url(port)]);
    expect(&o, 10, &["nothing is listening on 127.0.0.1:"]);

    // 12: a plain HTTP listener.
    let plain = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = plain.local_addr().expect("addr").port();
    let t = std::thread::spawn(move || {
        for s in plain.incoming().take(2).flatten() {
            let mut s = s;
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let o = client(pki.dir(), &["--url", &url(port)]);
    expect(
        &o,
        12,
        &["answers in plain HTTP, not TLS", "http://127.0.0.1:"],
    );
    let _ = t.join();

    // 11: a listener that never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let o = bin()
        .args([
            "--pki-dir",
            pki.dir().to_str().expect("utf8"),
            "--timeout",
            "1",
            "--url",
            &url(port),
        ])
        .output()
        .expect("run");
    expect(&o, 11, &["within 1s"]);
    drop(silent);
}

#[test]
fn json_errors_carry_class_and_exit_code() {
    let pki = new_pki();
    let srv = serve(&pki, ClientAuth::Required);
    let o = client(
        pki.dir(),
        &[
            "--url",
            &url(srv.addr.port()),
            "--no-client-cert",
            "--json",
            "get",
            "/login",
        ],
    );
    assert_eq!(o.status.code(), Some(16));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["exit_code"], 16);
    assert_eq!(v["error"]["class"], "client-cert-required");
}

#[test]
fn diagnose_reports_chain_names_and_client_policy() {
    let pki = new_pki();
    let srv = serve(&pki, ClientAuth::Required);
    let o = client(pki.dir(), &["diagnose", &url(srv.addr.port())]);
    expect(
        &o,
        0,
        &[
            "TLSv1.3",
            "ALPN h2",
            "/O=https Project/CN=localhost",
            "DNS:localhost, IP:127.0.0.1, IP:::1",
            "EC P-256",
            "chains to CA yes",
            "name matches yes",
            "the server asks for one (whether it requires one was not tried",
            "it accepts   /O=https Project Certificate Authority/CN=https Project Root CA",
            "key matches",
            "extendedKeyUsage includes clientAuth",
            "result       OK",
        ],
    );
    let other = new_pki();
    let o = client(
        pki.dir(),
        &[
            "diagnose",
            &url(srv.addr.port()),
            "--ca",
            other.folder.layout().ca_cert().to_str().expect("utf8"),
        ],
    );
    expect(&o, 13, &["chains to CA NO", "not issued by the trusted CA"]);

    let one_way = serve(&pki, ClientAuth::None);
    let o = client(
        pki.dir(),
        &["diagnose", &url(one_way.addr.port()), "--no-client-cert"],
    );
    expect(
        &o,
        0,
        &["the server does not ask for one", "result       OK"],
    );
    // Without a certificate, our own handshake tells whether one is required.
    let o = client(
        pki.dir(),
        &["diagnose", &url(srv.addr.port()), "--no-client-cert"],
    );
    expect(&o, 16, &["the server requires one"]);
}

#[test]
fn diagnose_json_is_one_schema_with_an_overall_result() {
    let pki = new_pki();
    let srv = serve(&pki, ClientAuth::Required);
    let u = url(srv.addr.port());
    let o = client(pki.dir(), &["diagnose", &u, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["schema"], 1);
    assert_eq!(v["result"], "ok");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["handshake"]["failure"], serde_json::Value::Null);
    assert_eq!(v["server_certificate"]["chain"]["ok"], true);
    assert_eq!(
        v["server_certificate"]["name"]["why"],
        serde_json::Value::Null
    );
    assert_eq!(v["client_certificate"]["requested"], true);
    assert_eq!(v["client_certificate"]["required"], serde_json::Value::Null);
    let raw = String::from_utf8_lossy(&o.stdout);
    for debug in ["\"Ok\"", "\"Err\"", "client_cert_requested"] {
        assert!(!raw.contains(debug), "{debug} in {raw}");
    }

    let o = client(pki.dir(), &["diagnose", &u, "--json", "--no-client-cert"]);
    assert_eq!(o.status.code(), Some(16), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["result"], "failed");
    assert_eq!(v["exit_code"], 16);
    assert_eq!(v["handshake"]["failure"]["class"], "client-cert-required");
    assert_eq!(v["client_certificate"]["requested"], true);
    assert_eq!(v["client_certificate"]["required"], true);
    let named = v["client_certificate"]["accepted_ca_names"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        named.starts_with("/O=https Project Certificate Authority/CN="),
        "{v}"
    );
}

/// A mutual-TLS server whose figures the test reads.
fn counting_server(pki: &TestPki) -> Background {
    let mut config = Config::for_pki(pki.dir(), ClientAuth::Required);
    config.metrics_bind = Some(([127, 0, 0, 1], 0).into());
    Background::spawn(config).expect("server")
}

/// The sum of `https_tls_handshakes_total` with `result`, as the server counts it now.
fn handshakes(srv: &Background, result: &str) -> u64 {
    let text =
        String::from_utf8(srv.metrics.as_ref().expect("metrics on").encode()).expect("utf-8");
    let label = format!("result=\"{result}\"");
    text.lines()
        .filter(|l| l.starts_with("https_tls_handshakes_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until `result`'s count reaches `want` (the server counts after the client is gone).
fn wait_for(srv: &Background, result: &str, want: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while handshakes(srv, result) < want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(handshakes(srv, result), want, "{result}");
}

#[test]
fn diagnose_leaves_the_refusal_count_of_a_healthy_server_unchanged() {
    let pki = new_pki();
    let srv = counting_server(&pki);
    let u = url(srv.addr.port());
    assert_eq!(handshakes(&srv, "refused"), 0);

    let o = client(pki.dir(), &["diagnose", &u]);
    expect(&o, 0, &["result       OK"]);
    // Our handshake accepted; the certificate-request probe ended by us, counted as such.
    wait_for(&srv, "canceled", 1);
    wait_for(&srv, "accepted", 1);
    assert_eq!(
        handshakes(&srv, "refused"),
        0,
        "diagnose fed the refusal count"
    );

    // Without a certificate, the one refusal is our own handshake's, counted once.
    let o = client(pki.dir(), &["diagnose", &u, "--no-client-cert"]);
    expect(&o, 16, &["the server requires one"]);
    wait_for(&srv, "canceled", 2);
    wait_for(&srv, "refused", 1);
}

#[test]
fn a_request_without_a_certificate_is_refused_once_and_explained() {
    let pki = new_pki();
    let srv = counting_server(&pki);
    let u = url(srv.addr.port());

    // The request's own handshake is the one refusal; the explanation comes from the probe
    // that ends itself (canceled), not from a second refused handshake.
    let o = client(
        pki.dir(),
        &["--url", &u, "--no-client-cert", "get", "/login"],
    );
    expect(&o, 16, &["requires a client certificate"]);
    wait_for(&srv, "refused", 1);
    wait_for(&srv, "canceled", 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(handshakes(&srv, "refused"), 1, "counted twice");
}

/// Python's `http.server` behind `ssl`: a TLS server we did not write.
fn python_server(pki: &TestPki, mode: &str) -> (Child, u16) {
    let l = pki.folder.layout();
    let script = r#"
import http.server, ssl, sys
crt, key, ca, mode = sys.argv[1:5]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        peer = self.connection.getpeercert() or {}
        cn = dict(x[0] for x in peer.get("subject", ())).get("commonName", "-")
        body = f"python sees {cn}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
ctx.load_cert_chain(crt, key)
ctx.verify_mode = ssl.CERT_REQUIRED if mode == "mutual" else ssl.CERT_NONE
if mode == "old":  # a server stuck on TLS 1.1
    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .args([&l.server_cert(), &l.server_key(), &l.ca_cert()])
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port: {line:?}"));
    (child, port)
}

#[test]
fn against_pythons_tls_server_one_way_and_mutual() {
    let pki = new_pki();
    let (mut one_way, port) = python_server(&pki, "oneway");
    let o = client(
        pki.dir(),
        &["--url", &url(port), "--no-client-cert", "get", "/x"],
    );
    expect(&o, 0, &["GET /x → 200", "python sees -"]);
    one_way.kill().ok();

    let (mut mutual, port) = python_server(&pki, "mutual");
    let o = client(pki.dir(), &["--url", &url(port), "get", "/x"]);
    expect(&o, 0, &["python sees client"]);
    let o = client(
        pki.dir(),
        &["--url", &url(port), "--no-client-cert", "get", "/x"],
    );
    expect(&o, 16, &["requires a client certificate"]);
    mutual.kill().ok();

    // 18: a server that stops at TLS 1.1 has nothing in common with us (TLS 1.2+).
    let (mut old, port) = python_server(&pki, "old");
    let o = client(
        pki.dir(),
        &["--url", &url(port), "--no-client-cert", "get", "/x"],
    );
    expect(&o, 18, &["no TLS version or cipher suite in common"]);
    old.kill().ok();
}
