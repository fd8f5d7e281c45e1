//! A PKI folder laid out as `make certs` writes it ([`common::Layout`]): what `pki init`,
//! `issue`, `list`, `revoke`, `crl` and `export-p12` do, on disk, without ever losing a file.

use std::path::PathBuf;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::{X509Crl, X509};

use crate::authority::{now, Authority, CertSpec, Revocation, Validity};
use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::index::{self, Entry, Reason, Status};
use crate::key::{self, KeyAlgorithm};
use crate::profile::{Profile, SubjectAltName};
use crate::request::{self, Subject};
use common::{Layout, Role};

/// Days until a CRL's nextUpdate: verifiers treat an older CRL as stale.
pub const CRL_DAYS: u32 = 30;

/// Environment variable holding the PKCS#12 password (`init`, `export-p12`).
pub const P12_PASSWORD_ENV: &str = "PKI_P12_PASSWORD";

/// How a PKCS#12 bundle is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum P12Encryption {
    /// PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC, SHA-256 MAC (`openssl pkcs12 -export` since
    /// 3.0). Chromium and Firefox (NSS), current Windows and macOS, Python and Java read it.
    #[default]
    Modern,
    /// PKCS#12 PBE with SHA-1 and 3DES, SHA-1 MAC (`openssl pkcs12 -legacy`, without its RC2):
    /// for importers that predate PBES2, such as older macOS Keychains and Windows releases.
    /// Weak: use it only where Modern is refused.
    Legacy,
}

/// The certificate to issue for a leaf: profile, file name and what goes inside.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Server or client.
    pub profile: Profile,
    /// File stem: `server/NAME.crt`, `client/NAME.key`.
    pub name: String,
    /// `O=`/`CN=`.
    pub subject: Subject,
    /// subjectAltName entries.
    pub names: Vec<SubjectAltName>,
    /// Key type to generate.
    pub key: KeyAlgorithm,
    /// Validity in days (profile default when `None`).
    pub days: Option<u32>,
}

impl Leaf {
    /// A server named `name` (file stem) for hosts `names`; CN = the first name.
    pub fn server(name: &str, names: Vec<SubjectAltName>) -> Leaf {
        let cn = names
            .first()
            .map_or_else(|| name.to_owned(), SubjectAltName::value);
        Leaf {
            profile: Profile::Server,
            name: name.to_owned(),
            subject: Subject::new(Profile::Server.default_organization(), cn),
            names,
            key: KeyAlgorithm::default(),
            days: None,
        }
    }

    /// A client (device) named `name`: CN and file stem.
    pub fn client(name: &str) -> Leaf {
        Leaf {
            profile: Profile::Client,
            name: name.to_owned(),
            subject: Subject::new(Profile::Client.default_organization(), name),
            names: Vec::new(),
            key: KeyAlgorithm::default(),
            days: None,
        }
    }

    fn spec(&self) -> CertSpec {
        let days = self.days.unwrap_or(self.profile.default_days());
        CertSpec::new(self.profile)
            .names(self.names.clone())
            .validity(Validity::days(days))
    }
}

/// Options of `pki init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Key type of every key made.
    pub key: KeyAlgorithm,
    /// The CA's subject.
    pub ca_subject: Subject,
    /// Names of the server certificate.
    pub server_names: Vec<SubjectAltName>,
    /// PKCS#12 password; a random one is generated (and saved 0600) when `None`.
    pub p12_password: Option<String>,
    /// Regenerate everything, CA included.
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            key: KeyAlgorithm::default(),
            ca_subject: default_ca_subject(),
            server_names: SubjectAltName::localhost(),
            p12_password: None,
            force: false,
        }
    }
}

/// The CA subject `make certs` uses.
pub fn default_ca_subject() -> Subject {
    Subject::new(Profile::Ca.default_organization(), "https Project Root CA")
}

/// What `init` did with each file.
#[derive(Debug, Default, Clone)]
pub struct InitReport {
    /// Files written.
    pub created: Vec<PathBuf>,
    /// Files that were there and left untouched.
    pub kept: Vec<PathBuf>,
    /// Temporary files of an interrupted run, removed.
    pub removed: Vec<PathBuf>,
}

/// A PKI folder.
#[derive(Debug, Clone)]
pub struct Folder {
    layout: Layout,
}

impl Folder {
    /// The PKI at `layout`; nothing is read until a command runs.
    pub fn new(layout: Layout) -> Folder {
        Folder { layout }
    }

    /// Where the files are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Loads the CA, refusing a key that does not match the certificate.
    pub fn authority(&self) -> Result<Authority> {
        let (cert_path, key_path) = (self.layout.ca_cert(), self.layout.ca_key());
        let cert = load_cert("CA certificate", &cert_path)?;
        let key = key::load("CA private key", &key_path)?;
        Authority::from_parts(cert, key, (&cert_path, &key_path))
    }

    /// Makes a new CA (`genpkey` + `req -new` + `x509 -req -signkey`), written to `ca/`, and
    /// starts an empty index. Refuses to replace an existing CA unless `overwrite`.
    pub fn create_ca(
        &self,
        subject: &Subject,
        algorithm: KeyAlgorithm,
        overwrite: Overwrite,
    ) -> Result<Authority> {
        let key_path = self.layout.ca_key();
        let cert_path = self.layout.ca_cert();
        if overwrite == Overwrite::Never {
            for (what, p) in [
                ("CA private key", &key_path),
                ("CA certificate", &cert_path),
            ] {
                if files::exists(p) {
                    return Err(Error::Exists {
                        what,
                        path: p.clone(),
                    });
                }
            }
        }
        let key = key::generate(algorithm)?;
        self.self_sign_ca(subject, key, overwrite)
    }

    fn self_sign_ca(
        &self,
        subject: &Subject,
        key: PKey<Private>,
        overwrite: Overwrite,
    ) -> Result<Authority> {
        let req = request::build(&key, subject)?;
        let ca = Authority::self_sign(&req, key, Validity::days(Profile::Ca.default_days()))?;
        // Key first: a crash between the two writes leaves a key that the next run reuses.
        files::write(
            "CA private key",
            &self.layout.ca_key(),
            &key::to_pem(ca.private_key())?,
            Secrecy::Secret,
            overwrite,
        )?;
        files::write(
            "CA certificate",
            &self.layout.ca_cert(),
            &ca.certificate().to_pem().step("x509 -out")?,
            Secrecy::Public,
            overwrite,
        )?;
        // A new CA starts a new record: certificates of an older CA are not its own.
        index::save(&self.layout.ca_index(), &[])?;
        files::write(
            "CRL number",
            &self.layout.ca_crl_number(),
            b"01\n",
            Secrecy::Public,
            Overwrite::Replace,
        )?;
        Ok(ca)
    }

    /// Removes what an interrupted run left (`.pki-*.tmp`) in every folder of the layout.
    pub fn remove_stale_temps(&self) -> Vec<PathBuf> {
        [Role::Ca, Role::Server, Role::Client]
            .into_iter()
            .flat_map(|r| files::remove_stale_temps(&self.layout.dir(r)))
            .collect()
    }

    /// Issues a leaf certificate with a fresh key and records it in the index.
    /// Refuses to replace existing files unless `overwrite`.
    pub fn issue(&self, ca: &Authority, leaf: &Leaf, overwrite: Overwrite) -> Result<X509> {
        self.remove_stale_temps();
        let role = leaf.profile.role();
        let key_path = self.layout.leaf_key(role, &leaf.name);
        let cert_path = self.layout.leaf_cert(role, &leaf.name);
        if overwrite == Overwrite::Never {
            for (what, p) in [("private key", &key_path), ("certificate", &cert_path)] {
                if files::exists(p) {
                    return Err(Error::Exists {
                        what,
                        path: p.clone(),
                    });
                }
            }
        }
        self.issue_with_key(ca, leaf, key::generate(leaf.key)?, overwrite)
    }

    fn issue_with_key(
        &self,
        ca: &Authority,
        leaf: &Leaf,
        key: PKey<Private>,
        overwrite: Overwrite,
    ) -> Result<X509> {
        let role = leaf.profile.role();
        let key_path = self.layout.leaf_key(role, &leaf.name);
        let cert_path = self.layout.leaf_cert(role, &leaf.name);
        let req = request::build(&key, &leaf.subject)?;
        let cert = ca.sign(&req, &leaf.spec())?;
        if !files::exists(&key_path) || overwrite == Overwrite::Replace {
            files::write(
                "private key",
                &key_path,
                &key::to_pem(&key)?,
                Secrecy::Secret,
                overwrite,
            )?;
        }
        files::write(
            "certificate",
            &cert_path,
            &cert.to_pem().step("x509 -out")?,
            Secrecy::Public,
            overwrite,
        )?;
        let mut entries = index::load(&self.layout.ca_index())?;
        let file = self.layout.relative(&cert_path).display().to_string();
        entries.push(Entry::for_cert(&cert, &file)?);
        index::save(&self.layout.ca_index(), &entries)?;
        Ok(cert)
    }

    /// `pki init`: the CA if there is none, then whatever is missing of the default layout
    /// (server, client, CRL, client PKCS#12). Existing files are kept byte for byte unless
    /// `force`, which regenerates everything.
    pub fn init(&self, opts: &InitOptions) -> Result<InitReport> {
        let mut report = InitReport::default();
        let l = &self.layout;
        report.removed = self.remove_stale_temps();
        let overwrite = if opts.force {
            Overwrite::Replace
        } else {
            Overwrite::Never
        };
        let have = |p: &PathBuf| files::exists(p);

        // The CA.
        let (ca, fresh_ca) = match (have(&l.ca_cert()), have(&l.ca_key()), opts.force) {
            (_, _, true) | (false, false, _) => {
                let ca = self.create_ca(&opts.ca_subject, opts.key, overwrite)?;
                report.created.extend([l.ca_key(), l.ca_cert()]);
                (ca, true)
            }
            (true, true, false) => {
                report.kept.extend([l.ca_key(), l.ca_cert()]);
                (self.authority()?, false)
            }
            (false, true, false) => {
                // A run that stopped between the key and the certificate: finish it.
                let key = key::load("CA private key", &l.ca_key())?;
                let ca = self.self_sign_ca(&opts.ca_subject, key, Overwrite::Never)?;
                report.kept.push(l.ca_key());
                report.created.push(l.ca_cert());
                (ca, true)
            }
            (true, false, false) => {
                return Err(Error::Refused(format!(
                    "{} exists but its key {} is missing: restore the key, or remake the whole PKI with --force",
                    l.ca_cert().display(),
                    l.ca_key().display()
                )))
            }
        };

        // The two leaves.
        let mut server = Leaf::server(common::DEFAULT_SERVER_NAME, opts.server_names.clone());
        server.key = opts.key;
        let mut client = Leaf::client(common::DEFAULT_CLIENT_NAME);
        client.key = opts.key;
        let mut client_changed = opts.force;
        for leaf in [&server, &client] {
            let role = leaf.profile.role();
            let (cert_path, key_path) =
                (l.leaf_cert(role, &leaf.name), l.leaf_key(role, &leaf.name));
            match (have(&cert_path), have(&key_path), opts.force) {
                (_, _, true) | (false, false, _) => {
                    self.issue(&ca, leaf, overwrite)?;
                    report.created.extend([key_path, cert_path]);
                    client_changed |= role == Role::Client;
                }
                (true, true, false) => {
                    let cert = load_cert("certificate", &cert_path)?;
                    let key = key::load("private key", &key_path)?;
                    if !key::matches(&key, &*cert.public_key().step("x509 -pubkey")?) {
                        return Err(Error::Refused(format!(
                            "{} does not match {} (an interrupted `issue --force`?): reissue with \
                             `pki issue {} --force`",
                            key_path.display(),
                            cert_path.display(),
                            leaf.profile
                        )));
                    }
                    let signed = cert
                        .verify(&*ca.certificate().public_key().step("x509 -pubkey")?)
                        .unwrap_or(false);
                    if !signed {
                        return Err(Error::Refused(format!(
                            "{} was not issued by {}{}: rerun with --force to reissue everything",
                            cert_path.display(),
                            l.ca_cert().display(),
                            if fresh_ca {
                                " (the CA was just made anew)"
                            } else {
                                ""
                            },
                        )));
                    }
                    report.kept.extend([key_path, cert_path]);
                }
                (false, true, false) => {
                    let key = key::load("private key", &key_path)?;
                    self.issue_with_key(&ca, leaf, key, Overwrite::Never)?;
                    report.kept.push(key_path);
                    report.created.push(cert_path);
                    client_changed |= role == Role::Client;
                }
                (true, false, false) => {
                    return Err(Error::Refused(format!(
                    "{} exists but its key {} is missing: restore the key, or reissue with --force",
                    cert_path.display(),
                    key_path.display()
                )))
                }
            }
        }

        // The CRL.
        if opts.force || fresh_ca || !have(&l.ca_crl()) {
            report.created.push(self.write_crl(&ca)?);
        } else {
            report.kept.push(l.ca_crl());
        }

        // The client's PKCS#12 bundle, for browsers and requests-pkcs12.
        let p12 = l.client_p12(common::DEFAULT_CLIENT_NAME);
        if client_changed || !have(&p12) {
            let pass_file = l.client_p12_pass(common::DEFAULT_CLIENT_NAME);
            let password = match &opts.p12_password {
                Some(p) => p.clone(),
                None => {
                    let p = random_password()?;
                    files::write(
                        "PKCS#12 password",
                        &pass_file,
                        format!("{p}\n").as_bytes(),
                        Secrecy::Secret,
                        Overwrite::Replace,
                    )?;
                    report.created.push(pass_file);
                    p
                }
            };
            self.export_p12(
                &ca,
                common::DEFAULT_CLIENT_NAME,
                &password,
                P12Encryption::Modern,
                Overwrite::Replace,
            )?;
            report.created.push(p12);
        } else {
            report.kept.push(p12);
        }
        Ok(report)
    }

    /// Every certificate the CA issued, oldest first.
    pub fn list(&self) -> Result<Vec<Entry>> {
        index::load(&self.layout.ca_index())
    }

    /// Revokes every unrevoked certificate whose serial, CN or file name is `query`, then
    /// writes a fresh CRL. Returns the entries revoked.
    pub fn revoke(
        &self,
        ca: &Authority,
        query: &str,
        reason: Option<Reason>,
    ) -> Result<Vec<Entry>> {
        let path = self.layout.ca_index();
        let mut entries = index::load(&path)?;
        let wanted = query.replace(':', "").to_ascii_uppercase();
        let matches = |e: &Entry| {
            e.serial == wanted
                || e.common_name() == Some(query)
                || std::path::Path::new(&e.file)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    == Some(query)
        };
        if !entries.iter().any(matches) {
            return Err(Error::NotInIndex(format!(
                "no certificate with serial, CN or file name {query:?} in {}: `pki list` shows them",
                path.display()
            )));
        }
        let at = now();
        let mut revoked = Vec::new();
        for e in entries
            .iter_mut()
            .filter(|e| matches(e) && e.revoked.is_none())
        {
            e.revoked = Some((at, reason));
            revoked.push(e.clone());
        }
        if revoked.is_empty() {
            return Err(Error::NotInIndex(format!(
                "every certificate matching {query:?} is already revoked"
            )));
        }
        index::save(&path, &entries)?;
        self.write_crl(ca)?;
        Ok(revoked)
    }

    /// `openssl ca -gencrl`: a CRL of every revoked, unexpired certificate, numbered from
    /// `ca/crlnumber`, written to `ca/ca.crl`. Returns its path.
    pub fn write_crl(&self, ca: &Authority) -> Result<PathBuf> {
        let crl = self.make_crl(ca)?;
        let path = self.layout.ca_crl();
        files::write(
            "CRL",
            &path,
            &crl.to_pem().step("crl -out")?,
            Secrecy::Public,
            Overwrite::Replace,
        )?;
        Ok(path)
    }

    fn make_crl(&self, ca: &Authority) -> Result<X509Crl> {
        let at = now();
        let revoked: Vec<Revocation> = self
            .list()?
            .into_iter()
            .filter_map(|e| match e.revoked {
                Some((when, _)) if e.not_after > at => Some(Revocation {
                    serial: e.serial,
                    revoked_at: when,
                }),
                _ => None,
            })
            .collect();
        let number_path = self.layout.ca_crl_number();
        let number = if files::exists(&number_path) {
            let raw = files::read("CRL number", &number_path)?;
            u64::from_str_radix(String::from_utf8_lossy(&raw).trim(), 16).map_err(|_| {
                Error::Malformed {
                    what: "CRL number",
                    path: number_path.clone(),
                    detail: "not a hexadecimal number".into(),
                }
            })?
        } else {
            1
        };
        let crl = ca.crl(&revoked, number, CRL_DAYS)?;
        files::write(
            "CRL number",
            &number_path,
            format!("{:02X}\n", number + 1).as_bytes(),
            Secrecy::Public,
            Overwrite::Replace,
        )?;
        Ok(crl)
    }

    /// Writes `client/NAME.p12` (key, certificate and CA) protected by `password`, encrypted
    /// as `encryption` says.
    pub fn export_p12(
        &self,
        ca: &Authority,
        name: &str,
        password: &str,
        encryption: P12Encryption,
        overwrite: Overwrite,
    ) -> Result<PathBuf> {
        if password.is_empty() {
            return Err(Error::Refused(
                "an empty PKCS#12 password protects nothing".into(),
            ));
        }
        let cert_path = self.layout.leaf_cert(Role::Client, name);
        let key_path = self.layout.leaf_key(Role::Client, name);
        let cert = load_cert("client certificate", &cert_path)?;
        let key = key::load("client private key", &key_path)?;
        if !key::matches(&key, &*cert.public_key().step("x509 -pubkey")?) {
            return Err(Error::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let mut chain = Stack::new().step("pkcs12 -export")?;
        chain
            .push(ca.certificate().to_owned())
            .step("pkcs12 -export")?;
        // Set explicitly rather than taken from the linked OpenSSL, whose defaults changed in 3.0.
        let (cipher, mac) = match encryption {
            P12Encryption::Modern => (Nid::AES_256_CBC, MessageDigest::sha256()),
            P12Encryption::Legacy => (
                Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC,
                MessageDigest::sha1(),
            ),
        };
        let p12 = Pkcs12::builder()
            .name(name)
            .pkey(&key)
            .cert(&cert)
            .ca(chain)
            .key_algorithm(cipher)
            .cert_algorithm(cipher)
            .mac_md(mac)
            .build2(password)
            .step("pkcs12 -export")?;
        let out = self.layout.client_p12(name);
        files::write(
            "PKCS#12 bundle",
            &out,
            &p12.to_der().step("pkcs12 -export")?,
            Secrecy::Secret,
            overwrite,
        )?;
        Ok(out)
    }

    /// Private keys under the folder that group or others can read: each a warning to show.
    pub fn loose_key_permissions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for role in [Role::Ca, Role::Server, Role::Client] {
            let Ok(dir) = std::fs::read_dir(self.layout.dir(role)) else {
                continue;
            };
            for entry in dir.flatten() {
                let p = entry.path();
                let secret = matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("key" | "p12" | "pass")
                );
                if let (true, Some(mode)) = (secret, files::mode(&p)) {
                    if mode & 0o077 != 0 {
                        out.push(format!(
                            "{} has mode {mode:04o}: others can read a secret; run `chmod 600 {}`",
                            p.display(),
                            p.display()
                        ));
                    }
                }
            }
        }
        out
    }

    /// The index entries and their status, for `pki list`.
    pub fn status(&self) -> Result<Vec<(Entry, Status)>> {
        let at = now();
        Ok(self
            .list()?
            .into_iter()
            .map(|e| {
                let s = e.status(at);
                (e, s)
            })
            .collect())
    }
}

/// Reads a PEM certificate, naming the file in any error.
pub fn load_cert(what: &'static str, path: &std::path::Path) -> Result<X509> {
    let pem = files::read(what, path)?;
    X509::from_pem(&pem).map_err(|e| Error::Malformed {
        what,
        path: path.to_owned(),
        detail: format!("not a PEM certificate ({e})"),
    })
}

/// Reads every PEM certificate of a file (a chain, or a bundle of CAs), refusing a file that
/// holds none; errors name the file.
pub fn load_certs(what: &'static str, path: &std::path::Path) -> Result<Vec<X509>> {
    let pem = files::read(what, path)?;
    X509::stack_from_pem(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Malformed {
            what,
            path: path.to_owned(),
            detail: "no PEM certificate in it".into(),
        })
}

/// 128 random bits as 32 hex digits.
fn random_password() -> Result<String> {
    let mut buf = [0u8; 16];
    openssl::rand::rand_bytes(&mut buf).step("rand")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
