//! Our server driven by clients written elsewhere: curl and Python's urllib, both verifying the
//! server's name (the check the seed switched off).

use server::{ClientAuth, Config};

use crate::support::{run, s, TestPki, TestServer};

#[test]
fn curl_with_cacert_cert_and_key() {
    let pki = TestPki::new();
    let srv = TestServer::spawn(Config::for_pki(pki.layout().root(), ClientAuth::Required))
        .expect("server starts");
    let l = pki.layout();
    let url = |host: &str, path: &str| format!("https://{host}:{}{path}", srv.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr.port());
    let (ca, cert, key) = (l.ca_cert(), l.client_cert(), l.client_key());
    let base = ["-sS", "--resolve", &resolve, "--cacert", s(&ca)];
    let with_cert = ["--cert", s(&cert), "--key", s(&key)];

    for host in ["localhost", "127.0.0.1"] {
        let (ok, out) = run(
            "curl",
            &[&base[..], &with_cert[..], &[&url(host, "/login")]].concat(),
        );
        assert!(ok && out == "Hello World!", "{host}: {out}");
    }
    let (ok, out) = run(
        "curl",
        &[
            &base[..],
            &with_cert[..],
            &[
                "-d",
                "username=name&password=pwd1",
                &url("localhost", "/login1"),
            ],
        ]
        .concat(),
    );
    assert!(ok && out == "true", "{out}");
    let (ok, out) = run(
        "curl",
        &[
            &base[..],
            &with_cert[..],
            &[
                "-d",
                "username=name&password=nope",
                &url("localhost", "/login1"),
            ],
        ]
        .concat(),
    );
    assert!(ok && out == "false", "{out}");

    // Without a client certificate: refused (pinned to TLS 1.2 so the refusal is in the handshake).
    let (ok, out) = run(
        "curl",
        &[
            &base[..],
            &["--tls-max", "1.2", &url("localhost", "/login")],
        ]
        .concat(),
    );
    assert!(!ok && out.contains("alert handshake failure"), "{out}");
    // A name the certificate does not carry: curl refuses the server.
    let other = format!("other.test:{}:127.0.0.1", srv.addr.port());
    let (ok, out) = run(
        "curl",
        &[
            "-sS",
            "--resolve",
            &other,
            "--cacert",
            s(&ca),
            with_cert[0],
            with_cert[1],
            with_cert[2],
            with_cert[3],
            &url("other.test", "/login"),
        ],
    );
    assert!(
        !ok && out.contains("no alternative certificate subject name matches"),
        "{out}"
    );
}

#[test]
fn python_urllib_with_hostname_checking_on() {
    let pki = TestPki::new();
    let srv = TestServer::spawn(Config::for_pki(pki.layout().root(), ClientAuth::Required))
        .expect("server starts");
    let l = pki.layout();
    // The seed's client, minus `check_hostname = False`, plus the client certificate it never loaded.
    let script = r#"
import ssl, sys, urllib.parse, urllib.request
port, ca, cert, key = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
ctx.load_cert_chain(cert, key)
for host in ("localhost", "127.0.0.1"):
    r = urllib.request.urlopen(f"https://{host}:{port}/login", context=ctx)
    print(r.status, r.read().decode())
data = urllib.parse.urlencode({"username": "name", "password": "pwd1"}).encode()
r = urllib.request.urlopen(urllib.request.Request(f"https://localhost:{port}/login1", data=data, method="POST"), context=ctx)
print(r.status, r.read().decode())
bare = ssl.create_default_context(cafile=ca)
try:
    urllib.request.urlopen(f"https://localhost:{port}/login", context=bare)
    print("accepted without a certificate")
except Exception as e:
    print("refused:", e)
"#;
    let port = srv.addr.port().to_string();
    let (ok, out) = run(
        "python3",
        &[
            "-c",
            script,
            &port,
            s(&l.ca_cert()),
            s(&l.client_cert()),
            s(&l.client_key()),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(out.matches("200 Hello World!").count(), 2, "{out}");
    assert!(out.contains("200 true"), "{out}");
    assert!(
        out.contains("refused:") && !out.contains("accepted without"),
        "{out}"
    );
}
