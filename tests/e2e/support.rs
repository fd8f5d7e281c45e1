//! Shared fixtures: a fresh PKI in a temp dir, and a way to run outside tools against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Layout;
use pki::{Folder, InitOptions, KeyAlgorithm};

/// A PKI made by `pki init` in a temporary folder, removed on drop.
pub struct TestPki {
    _dir: tempfile::TempDir,
    pub folder: Folder,
}

impl TestPki {
    /// The default layout with EC P-256 keys.
    pub fn new() -> TestPki {
        TestPki::with_key(KeyAlgorithm::default())
    }

    /// The default layout with keys of `key`.
    pub fn with_key(key: KeyAlgorithm) -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = Folder::new(Layout::new(dir.path().join("certs")));
        folder
            .init(&InitOptions {
                key,
                p12_password: Some("test-pass".into()),
                ..InitOptions::default()
            })
            .expect("pki init");
        TestPki { _dir: dir, folder }
    }

    /// A certificate signed by this PKI's CA with any spec (expired, wrong profile, ...),
    /// written next to the PKI as `extra/NAME.{crt,key}`.
    pub fn make_cert(&self, name: &str, spec: &pki::CertSpec) -> (PathBuf, PathBuf) {
        let ca = self.folder.authority().expect("ca");
        let key = pki::key::generate(KeyAlgorithm::EcP256).expect("key");
        let subject = pki::Subject::new(spec.profile.default_organization(), name);
        let req = pki::request::build(&key, &subject).expect("req");
        let cert = ca.sign(&req, spec).expect("sign");
        write_pair(&self.layout().root().join("extra"), name, &cert, &key)
    }

    /// A self-signed client certificate (its own CA), at `extra/NAME.{crt,key}`.
    pub fn make_self_signed(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = pki::key::generate(KeyAlgorithm::EcP256).expect("key");
        let req = pki::request::build(&key, &pki::Subject::new("Mallory", name)).expect("req");
        let ca = pki::Authority::self_sign(&req, key, pki::Validity::days(30)).expect("self-sign");
        write_pair(
            &self.layout().root().join("extra"),
            name,
            ca.certificate(),
            ca.private_key(),
        )
    }

    /// A client certificate (digitalSignature, EKU clientAuth) that also says CA:TRUE, signed by
    /// our CA. The pki crate's profiles cannot make one, so it is built by hand.
    pub fn make_ca_true_client(&self, name: &str) -> (PathBuf, PathBuf) {
        use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
        let ca = self.folder.authority().expect("ca");
        let key = pki::key::generate(KeyAlgorithm::EcP256).expect("key");
        let name_ = pki::Subject::new("https Project Device Certificate", name)
            .to_x509_name()
            .expect("name");
        let mut b = openssl::x509::X509::builder().expect("builder");
        b.set_version(2).expect("v3");
        let serial = openssl::bn::BigNum::from_u32(0x7e57_0001).expect("bn");
        b.set_serial_number(&serial.to_asn1_integer().expect("serial"))
            .expect("serial");
        b.set_subject_name(&name_).expect("subject");
        b.set_issuer_name(ca.certificate().subject_name())
            .expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        let now = pki::authority::now();
        b.set_not_before(&openssl::asn1::Asn1Time::from_unix(now - 60).expect("t"))
            .expect("nb");
        b.set_not_after(&openssl::asn1::Asn1Time::from_unix(now + 86_400).expect("t"))
            .expect("na");
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_cert_sign()
                .build()
                .expect("ku"),
        )
        .expect("ku");
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().expect("eku"))
            .expect("eku");
        b.sign(ca.private_key(), openssl::hash::MessageDigest::sha256())
            .expect("sign");
        write_pair(&self.layout().root().join("extra"), name, &b.build(), &key)
    }

    /// A client certificate two levels below the root (root → intermediate → leaf), with the
    /// intermediate in the certificate file. Our root says pathlen:0, so this chain is too deep.
    pub fn make_deep_chain(&self, name: &str) -> (PathBuf, PathBuf) {
        let root = self.folder.authority().expect("ca");
        let ikey = pki::key::generate(KeyAlgorithm::EcP256).expect("key");
        let ireq =
            pki::request::build(&ikey, &pki::Subject::new("Intermediate", name)).expect("req");
        let icert = root
            .sign(&ireq, &pki::CertSpec::new(pki::Profile::Ca))
            .expect("sign");
        let inter = pki::Authority::from_parts(
            icert.clone(),
            ikey,
            (Path::new("i.crt"), Path::new("i.key")),
        )
        .expect("intermediate");
        let key = pki::key::generate(KeyAlgorithm::EcP256).expect("key");
        let req = pki::request::build(
            &key,
            &pki::Subject::new("https Project Device Certificate", name),
        )
        .expect("req");
        let leaf = inter
            .sign(&req, &pki::CertSpec::new(pki::Profile::Client))
            .expect("sign");
        let (c, k) = write_pair(&self.layout().root().join("extra"), name, &leaf, &key);
        let mut pem = leaf.to_pem().expect("pem");
        pem.extend_from_slice(&icert.to_pem().expect("pem"));
        std::fs::write(&c, pem).expect("chain");
        (c, k)
    }

    /// Another client certificate from this PKI's CA, as `pki issue client --name NAME` makes it.
    pub fn issue_client(&self, name: &str) -> (PathBuf, PathBuf) {
        let ca = self.folder.authority().expect("ca");
        self.folder
            .issue(&ca, &pki::Leaf::client(name), pki::files::Overwrite::Never)
            .expect("issue");
        (
            self.layout().leaf_cert(common::Role::Client, name),
            self.layout().leaf_key(common::Role::Client, name),
        )
    }

    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.layout().client_cert(), self.layout().client_key())
    }

    pub fn layout(&self) -> &Layout {
        self.folder.layout()
    }

    pub fn der(&self, path: &Path) -> Vec<u8> {
        let pem = std::fs::read(path).expect("read cert");
        openssl::x509::X509::from_pem(&pem)
            .expect("pem")
            .to_der()
            .expect("der")
    }
}

fn write_pair(
    dir: &Path,
    name: &str,
    cert: &openssl::x509::X509Ref,
    key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.to_pem().expect("pem")).expect("write cert");
    std::fs::write(&k, key.private_key_to_pem_pkcs8().expect("pem")).expect("write key");
    (c, k)
}

/// Runs `program args`, returning (success, stdout + stderr).
pub fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Asserts that the server at `addr` refuses a client without a certificate in the handshake,
/// with TLS 1.3's own alert for it.
pub fn assert_refused_without_a_certificate(addr: std::net::SocketAddr, ca: &Path) {
    let o = crate::tls_client::Opts {
        ca: Some(ca),
        version: Some(openssl::ssl::SslVersion::TLS1_3),
        ..Default::default()
    };
    let e = crate::tls_client::refusal(addr, &o);
    assert!(e.contains("alert certificate required"), "{e}");
}

/// A server of ours on an ephemeral loopback port, in its own thread; stopped on drop.
pub type TestServer = server::Background;

/// Everything the servers of this test binary log (tracing), to assert that refusals are logged
/// with their reason. Installed once per process.
pub fn server_log() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

fn log_buffer() -> &'static std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = LogWriter(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter("warn")
            .try_init();
        buf
    })
}

#[derive(Clone)]
struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing server logs (call before starting servers).
pub fn capture_logs() {
    let _ = log_buffer();
}
