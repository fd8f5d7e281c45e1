//! How the tests run the `ca` binary and talk to it: HTTP/1.1 over an OpenSSL connection that
//! verifies the service like any client, so what is sent and received is the bytes on the wire.
// Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream};

/// A running `ca` process, killed on drop; its stderr (the log) goes to a file.
pub struct CaProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log.
    pub log: PathBuf,
}

impl CaProcess {
    /// `ca --pki-dir DIR --bind 127.0.0.1:0 ARGS`, with `env`; waits for its start-up line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> CaProcess {
        let log = dir.with_extension(format!("ca-{}.log", unique()));
        let mut child = testkit::command(env!("CARGO_BIN_EXE_ca"))
            .arg("--pki-dir")
            .arg(dir)
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("run ca");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "ca did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let addr = line
            .split("https://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        CaProcess { child, addr, log }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for CaProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of ca on {}:\n{}", self.addr, self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A TLS connection to `addr` that trusts `ca` and verifies the name `localhost`, presenting
/// `identity` (cert, key files) if given.
pub fn connect(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("builder");
    b.set_ca_file(ca).expect("ca");
    if let Some((cert, key)) = identity {
        b.set_certificate_chain_file(cert).expect("cert");
        b.set_private_key_file(key, SslFiletype::PEM).expect("key");
    }
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    b.build().connect("localhost", tcp).expect("handshake")
}

/// Sends `head` (request line and headers, without the final blank line) and `body`.
pub fn call(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    head: &str,
    body: &[u8],
) -> Reply {
    let mut s = connect(addr, ca, identity);
    let request = format!(
        "{head}\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("write head");
    // A server that answers before the whole body was sent may close: the answer still counts.
    let _ = s.write_all(body);
    read_reply(&mut s)
}

/// Reads an HTTP/1.1 answer (Content-Length framed, or up to the close).
pub fn read_reply(s: &mut impl Read) -> Reply {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// `POST /.well-known/est/OP` with a base64 PKCS#10 body and `extra` header lines.
pub fn est_post(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    op: &str,
    extra: &str,
    der: &[u8],
) -> Reply {
    let head =
        format!("POST /.well-known/est/{op} HTTP/1.1\r\nContent-Type: application/pkcs10{extra}");
    call(
        addr,
        ca,
        identity,
        &head,
        ca::wire::encode_base64(der).as_bytes(),
    )
}

/// `simpleenroll` of request `der` with `user:token` as Basic credentials.
pub fn enroll(addr: SocketAddr, ca: &Path, user: &str, token: &str, der: &[u8]) -> Reply {
    est_post(addr, ca, None, "simpleenroll", &basic(user, token), der)
}

/// `\r\nAuthorization: Basic …` for `user:token`.
pub fn basic(user: &str, token: &str) -> String {
    let encoded = openssl::base64::encode_block(format!("{user}:{token}").as_bytes());
    format!("\r\nAuthorization: Basic {encoded}")
}

/// A key and a DER request for subject `/O=org/CN=cn` (no O when `org` is empty).
pub fn csr(org: &str, cn: &str) -> (PKey<Private>, Vec<u8>) {
    let key = pki::key::generate(pki::KeyAlgorithm::EcP256).expect("key");
    (key.clone(), csr_for(&key, org, cn))
}

/// A DER request of `key` for `/O=org/CN=cn`.
pub fn csr_for(key: &PKey<Private>, org: &str, cn: &str) -> Vec<u8> {
    let mut name = openssl::x509::X509Name::builder().expect("name");
    if !org.is_empty() {
        name.append_entry_by_text("O", org).expect("o");
    }
    name.append_entry_by_text("CN", cn).expect("cn");
    let mut b = openssl::x509::X509Req::builder().expect("req");
    b.set_subject_name(&name.build()).expect("subject");
    b.set_pubkey(key).expect("pubkey");
    b.sign(key, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    b.build().to_der().expect("der")
}

/// The certificates of a base64 certs-only PKCS#7 answer.
pub fn certs_of(reply: &Reply) -> Vec<openssl::x509::X509> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let der = ca::wire::decode_base64(&reply.body).expect("base64");
    let p7 = openssl::pkcs7::Pkcs7::from_der(&der).expect("pkcs7");
    p7.signed()
        .and_then(|s| s.certificates())
        .map(|c| c.iter().map(|x| x.to_owned()).collect())
        .unwrap_or_default()
}

/// Writes `cert` and `key` under `dir` as NAME.crt/NAME.key; returns their paths.
pub fn save(
    dir: &Path,
    name: &str,
    cert: &openssl::x509::X509,
    key: &PKey<Private>,
) -> (PathBuf, PathBuf) {
    testkit::write_pair(dir, name, cert, key)
}
