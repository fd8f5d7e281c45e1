//! The one test fixture of the workspace, used by every test crate: a PKI made by `pki init`
//! in a temporary folder, certificates no profile would make (expired, self-signed, CA:TRUE
//! leaves, chains too deep), and commands that start without the caller's `PKI_*`, `SERVER_*`
//! `CLIENT_*` and `CA_*` variables, so an operator's shell never changes what a test sees.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// A test fixture: a failure here is the test's failure, with its message.
#![allow(clippy::unwrap_used)]

pub mod faketime;
pub mod postgres;
pub mod relay;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Layout;
use pki::{Folder, InitOptions, KeyAlgorithm};

/// The prefixes of the variables our binaries read; stripped from every command a test runs.
pub const OUR_VARIABLES: [&str; 4] = ["PKI_", "SERVER_", "CLIENT_", "CA_"];

/// `program` with none of the caller's [`OUR_VARIABLES`].
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if OUR_VARIABLES.iter().any(|p| n.starts_with(p)) {
            c.env_remove(&name);
        }
    }
    c
}

/// The flags every spawned test server starts with: `--pki-dir DIR`, an ephemeral loopback
/// port, one worker, no file watching (a test reloads with SIGHUP when it means to).
pub fn server_flags<'a>(cmd: &'a mut Command, pki_dir: &Path) -> &'a mut Command {
    cmd.arg("--pki-dir").arg(pki_dir).args([
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--watch-secs",
        "0",
    ])
}

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every regular file under `dir` with the SHA-256 of its bytes, sorted by path: what
/// [`snapshot`] compares, short enough to read when an assertion fails.
pub fn tree(dir: &Path) -> Vec<(PathBuf, String)> {
    snapshot(dir)
        .into_iter()
        .map(|(p, bytes)| {
            let hex: String = openssl::sha::sha256(&bytes)
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect();
            (p, hex)
        })
        .collect()
}

/// Every regular file under `dir` with its bytes, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// A PKI made by `pki init` in a temporary folder, removed on drop.
pub struct TestPki {
    _dir: tempfile::TempDir,
    /// The PKI.
    pub folder: Folder,
}

/// The PKCS#12 password of every [`TestPki`]'s `client.p12`.
pub const P12_PASSWORD: &str = "test-pass";

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl TestPki {
    /// The default layout with EC P-256 keys.
    pub fn new() -> TestPki {
        TestPki::with_key(KeyAlgorithm::default())
    }

    /// The default layout with keys of `key`.
    pub fn with_key(key: KeyAlgorithm) -> TestPki {
        TestPki::with_options(InitOptions {
            key,
            p12_password: Some(P12_PASSWORD.into()),
            ..InitOptions::default()
        })
    }

    /// `pki init` with `options`.
    pub fn with_options(options: InitOptions) -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = Folder::new(Layout::new(dir.path().join("certs")));
        folder.init(&options).expect("pki init");
        TestPki { _dir: dir, folder }
    }

    /// The PKI folder (`…/certs`).
    pub fn dir(&self) -> &Path {
        self.folder.layout().root()
    }

    /// The temporary folder that holds the PKI folder, for files a test puts beside it.
    pub fn scratch(&self) -> &Path {
        self._dir.path()
    }

    /// A certificate signed by this PKI's CA with any spec (expired, wrong profile, ...),
    /// written next to the PKI as `extra/NAME.{crt,key}`.
    pub fn make_cert(&self, name: &str, spec: &pki::CertSpec) -> (PathBuf, PathBuf) {
        let ca = self.folder.issuer().expect("ca");
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
        let ca =
            pki::Issuer::self_sign(&req, key.clone(), pki::Validity::days(30)).expect("self-sign");
        write_pair(
            &self.layout().root().join("extra"),
            name,
            ca.certificate(),
            &key,
        )
    }

    /// A client certificate (digitalSignature, EKU clientAuth) that also says CA:TRUE, signed by
    /// our CA. The pki crate's profiles cannot make one, so it is built by hand.
    pub fn make_ca_true_client(&self, name: &str) -> (PathBuf, PathBuf) {
        use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
        let ca = self.folder.issuer().expect("ca");
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
        let now = x509::time::now();
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
        let cert = ca.signing_key().sign_certificate(b).expect("sign");
        write_pair(&self.layout().root().join("extra"), name, &cert, &key)
    }

    /// A client certificate two levels below the root (root → intermediate → leaf), with the
    /// intermediate in the certificate file. Our root says pathlen:0, so this chain is too deep.
    pub fn make_deep_chain(&self, name: &str) -> (PathBuf, PathBuf) {
        let root = self.folder.issuer().expect("ca");
        let ikey = pki::key::generate(KeyAlgorithm::EcP256).expect("key");
        let ireq =
            pki::request::build(&ikey, &pki::Subject::new("Intermediate", name)).expect("req");
        let icert = root
            .sign(&ireq, &pki::CertSpec::new(pki::Profile::Ca))
            .expect("sign");
        let inter = pki::Issuer::from_parts(
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
        let ca = self.folder.issuer().expect("ca");
        self.folder
            .issue(&ca, &pki::Leaf::client(name), pki::files::Overwrite::Never)
            .expect("issue");
        (
            self.layout().leaf_cert(common::Role::Client, name),
            self.layout().leaf_key(common::Role::Client, name),
        )
    }

    /// The default client's certificate and key.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.layout().client_cert(), self.layout().client_key())
    }

    /// Where the files are.
    pub fn layout(&self) -> &Layout {
        self.folder.layout()
    }

    /// The DER of the PEM certificate at `path`.
    pub fn der(&self, path: &Path) -> Vec<u8> {
        let pem = std::fs::read(path).expect("read cert");
        openssl::x509::X509::from_pem(&pem)
            .expect("pem")
            .to_der()
            .expect("der")
    }
}

/// Writes `cert` and `key` as `dir/NAME.crt` and `dir/NAME.key`.
pub fn write_pair(
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
