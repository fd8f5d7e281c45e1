//! `pki init`: the CA if there is none, then whatever is missing of the default layout (server,
//! client, CRL, the client's PKCS#12). Existing files are kept byte for byte unless `force`.
//!
//! The CA and each leaf are a key and a certificate, and one state machine ([`ensure_pair`])
//! decides for all of them what a run does with what it finds:
//!
//! | certificate | key | without `--force`                                   |
//! |-------------|-----|------------------------------------------------------|
//! | missing     | missing | make both                                        |
//! | present     | present | keep both, after checking they belong together   |
//! | missing     | present | an interrupted run: sign a certificate for the key |
//! | present     | missing | refuse: the key is lost, only `--force` remakes it |
//!
//! With `--force`, everything is made anew (one level drops a former intermediate).
//!
//! Without it, a run that asks for another CA than the one there (an intermediate under a
//! single-level CA, other name constraints, another CA name) is refused before anything is
//! written ([`Folder::check_init_shape`]); one that asks for nothing of the kind keeps the CA,
//! one level or two.

use std::path::{Path, PathBuf};

use crate::constraints::NameConstraints;
use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::folder::Folder;
use crate::issuer::Issuer;
use crate::key::{self, KeyAlgorithm};
use crate::keys::{self, CaKey};
use crate::leaf::Leaf;
use crate::p12::P12Encryption;
use crate::pkcs11::Pkcs11Uri;
use crate::profile::{Profile, SubjectAltName};
use crate::request::Subject;
use crate::store::Claim;
use x509::cert::load_cert;
use x509::CertSpec;

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
    /// Two levels: a root, and an issuing intermediate under it that signs the leaves.
    pub intermediate: bool,
    /// The intermediate's subject (two levels).
    pub intermediate_subject: Subject,
    /// What the issuing CA may sign for (critical nameConstraints); empty: anything.
    pub constraints: NameConstraints,
    /// Make the CA keys inside this PKCS#11 token instead of files: its `object` labels the
    /// key that signs leaves (default `ca`, or `issuing` with an intermediate); the root of
    /// two levels gets `OBJECT-root`.
    pub key_store: Option<Pkcs11Uri>,
}

impl InitOptions {
    /// The token URIs of the root key and of the issuing key (`None`: key files). The key that
    /// signs leaves keeps the URI's `id=` if it gives one; the root of two levels gets its own.
    fn stores(&self) -> (Option<Pkcs11Uri>, Option<Pkcs11Uri>) {
        let Some(uri) = &self.key_store else {
            return (None, None);
        };
        let default = if self.intermediate { "issuing" } else { "ca" };
        let object = uri.object.clone().unwrap_or_else(|| default.into());
        let issuing = Pkcs11Uri {
            object: Some(object.clone()),
            ..uri.clone()
        };
        if !self.intermediate {
            return (Some(issuing), None);
        }
        (
            Some(uri.with_object(&format!("{object}-root"))),
            Some(issuing),
        )
    }
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            key: KeyAlgorithm::default(),
            ca_subject: default_ca_subject(),
            server_names: SubjectAltName::localhost(),
            p12_password: None,
            force: false,
            intermediate: false,
            intermediate_subject: default_intermediate_subject(None),
            constraints: NameConstraints::default(),
            key_store: None,
        }
    }
}

/// A CA subject of its own for each PKI: `https Project Root CA [WHO] XXXXXXXX` (see
/// [`crate::hierarchy::unique_ca_name`]); `who` is the user@host that makes it.
pub fn ca_subject(who: Option<&str>) -> Subject {
    let cn = crate::hierarchy::unique_ca_name("https Project Root CA", who)
        .unwrap_or_else(|_| "https Project Root CA".into());
    Subject::new(Profile::Ca.default_organization(), cn)
}

/// The root subject of [`InitOptions::default`]: [`ca_subject`] without a user@host.
pub fn default_ca_subject() -> Subject {
    ca_subject(None)
}

/// The intermediate's subject: `https Project Issuing CA [WHO] XXXXXXXX`.
pub fn default_intermediate_subject(who: Option<&str>) -> Subject {
    let cn = crate::hierarchy::unique_ca_name("https Project Issuing CA", who)
        .unwrap_or_else(|_| "https Project Issuing CA".into());
    Subject::new(Profile::Intermediate.default_organization(), cn)
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
    /// Files of the intermediate CA that a `--force` to one level replaced, removed.
    pub retired: Vec<PathBuf>,
}

/// What [`ensure_pair`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Nothing,
    Both,
    KeyOnly,
    CertOnly,
}

fn found(cert: &Path, key: &Path) -> Found {
    match (files::exists(cert), files::exists(key)) {
        (false, false) => Found::Nothing,
        (true, true) => Found::Both,
        (false, true) => Found::KeyOnly,
        (true, false) => Found::CertOnly,
    }
}

/// One key + certificate pair and how to make, finish or check it.
struct Pair<'a> {
    /// "CA" or the leaf's profile, for messages.
    what: String,
    cert: PathBuf,
    key: PathBuf,
    /// Makes the certificate: for the key found at `key` (true: finishing an interrupted run)
    /// or for a new one.
    make: Box<dyn FnMut(bool) -> Result<()> + 'a>,
    /// Checks a pair found whole.
    check: Box<dyn FnMut() -> Result<()> + 'a>,
    /// What a refusal tells the user to run.
    remedy: String,
}

/// Makes, finishes or keeps `pair` as the table above says. Returns whether anything was made.
fn ensure_pair(pair: &mut Pair<'_>, force: bool, report: &mut InitReport) -> Result<bool> {
    match (found(&pair.cert, &pair.key), force) {
        (_, true) | (Found::Nothing, false) => {
            (pair.make)(false)?;
            report.created.extend([pair.key.clone(), pair.cert.clone()]);
            Ok(true)
        }
        (Found::Both, false) => {
            (pair.check)()?;
            report.kept.extend([pair.key.clone(), pair.cert.clone()]);
            Ok(false)
        }
        (Found::KeyOnly, false) => {
            // A run that stopped between the key and the certificate: finish it.
            (pair.make)(true)?;
            report.kept.push(pair.key.clone());
            report.created.push(pair.cert.clone());
            Ok(true)
        }
        (Found::CertOnly, false) => Err(Error::Declined(format!(
            "{} ({}) exists but its key {} is missing: restore the key, or {}",
            pair.cert.display(),
            pair.what,
            pair.key.display(),
            pair.remedy
        ))),
    }
}

impl Folder {
    /// `pki init`: see the [module](self) documentation.
    pub fn init(&self, opts: &InitOptions) -> Result<InitReport> {
        self.check_init_shape(opts, None)?;
        let mut report = InitReport {
            removed: self.remove_stale_temps(),
            ..InitReport::default()
        };
        let (root, fresh_root) = self.init_ca(opts, &mut report)?;
        if opts.force && !opts.intermediate {
            // The new root issues; a left-over intermediate would still be taken as the issuer.
            report.retired = self.remove_intermediate()?;
        }
        let (ca, fresh_ca) = if opts.intermediate || (self.has_intermediate() && !opts.force) {
            let (inter, fresh) =
                self.init_intermediate(opts, root.as_ref(), fresh_root, &mut report)?;
            (inter, fresh || fresh_root)
        } else {
            let root = root.map_or_else(|| self.root(), Ok)?;
            (root, fresh_root)
        };
        let mut server = Leaf::server(common::DEFAULT_SERVER_NAME, opts.server_names.clone());
        server.key = opts.key;
        let mut client = Leaf::client(common::DEFAULT_CLIENT_NAME);
        client.key = opts.key;
        self.init_leaf(&ca, &server, opts.force, fresh_ca, &mut report)?;
        let client_changed = self.init_leaf(&ca, &client, opts.force, fresh_ca, &mut report)?;

        let l = self.layout();
        if opts.force || fresh_ca || !files::exists(&l.ca_crl()) {
            report.created.push(self.write_crl(&ca)?);
        } else {
            // Opening the records repairs and re-exports what an interrupted run left.
            self.open_db(Some(&ca))?;
            report.kept.push(l.ca_crl());
        }
        self.init_p12(&ca, opts, client_changed || opts.force, &mut report)?;
        Ok(report)
    }

    /// Refuses, before anything is written, an `init` without `--force` that asks for another
    /// CA than the one the folder has: an intermediate under a single-level CA, other name
    /// constraints, another CA name (`ca_name`, when one was asked for), or a key in a token
    /// for a CA whose key is a file. Keeping the CA
    /// would ignore what was asked, and making a new one unasked would invalidate every
    /// certificate issued. An `init` that asks for nothing of the kind keeps any CA, one level
    /// or two.
    pub fn check_init_shape(&self, opts: &InitOptions, ca_name: Option<&str>) -> Result<()> {
        let root_path = self.layout().ca_cert();
        let key_file = self.layout().ca_key();
        if opts.key_store.is_some() && !opts.force && files::exists(&key_file) {
            return Err(Error::Declined(format!(
                "this CA's key is the file {}: --key-store makes a new CA inside the token; add \
                 --force to remake the whole PKI; nothing was changed",
                key_file.display()
            )));
        }
        if opts.force || !files::exists(&root_path) {
            return Ok(());
        }
        let redo = "add --force to make a new CA and reissue every certificate (peers then \
                    need the new ca/ca.crt); nothing was changed";
        if opts.intermediate && !self.has_intermediate() {
            return Err(Error::Declined(format!(
                "{} is a single-level CA (it signs the leaves itself) and cannot take an \
                 intermediate: keep it by running init without --intermediate, or {redo}",
                root_path.display()
            )));
        }
        let issuing_path = if self.has_intermediate() {
            self.layout().intermediate_cert()
        } else {
            root_path.clone()
        };
        let has = NameConstraints::of(&*load_cert("issuing CA certificate", &issuing_path)?)?;
        if !opts.constraints.is_empty() && !same_constraints(&has, &opts.constraints) {
            return Err(Error::Declined(format!(
                "the CA {} permits {}, not {}: keep it by running init without \
                 --permit-dns/--permit-ip, or {redo}",
                issuing_path.display(),
                if has.is_empty() {
                    "any name".to_owned()
                } else {
                    has.to_string()
                },
                opts.constraints
            )));
        }
        let root = load_cert("CA certificate", &root_path)?;
        let cn = x509::cert::common_name(root.subject_name()).unwrap_or_default();
        match ca_name {
            Some(wanted) if wanted != cn => Err(Error::Declined(format!(
                "the CA {} is named {cn:?}, not {wanted:?}: keep it by running init without \
                 --ca-name, or {redo}",
                root_path.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Removes the intermediate CA's files (certificate first: without it the folder is one
    /// level at once) and the root's CRL of intermediates. Returns the files removed.
    fn remove_intermediate(&self) -> Result<Vec<PathBuf>> {
        let l = self.layout();
        let key = l.intermediate_key();
        let mut removed = Vec::new();
        for path in [
            l.intermediate_cert(),
            keys::store_record(&key),
            key,
            l.root_crl(),
        ] {
            if !files::exists(&path) {
                continue;
            }
            std::fs::remove_file(&path).map_err(|source| x509::Error::Write {
                what: "old intermediate CA file",
                path: path.clone(),
                source,
            })?;
            files::sync_dir("old intermediate CA file", &path)?;
            removed.push(path);
        }
        Ok(removed)
    }

    /// The root. `None` when its key is offline and an intermediate does the signing.
    fn init_ca(
        &self,
        opts: &InitOptions,
        report: &mut InitReport,
    ) -> Result<(Option<Issuer>, bool)> {
        let l = self.layout().clone();
        let overwrite = if opts.force {
            Overwrite::Replace
        } else {
            Overwrite::Never
        };
        let mut spec = CertSpec::new(Profile::Ca);
        if opts.intermediate {
            spec.path_len = 1;
        } else {
            spec.constraints = opts.constraints.clone();
        }
        let offline = !opts.force
            && self.has_intermediate()
            && files::exists(&l.ca_cert())
            && !keys::present(&l.ca_key());
        if offline {
            report.kept.push(l.ca_cert());
            return Ok((None, false));
        }
        let (root_store, _) = opts.stores();
        let mut made = None;
        let mut pair = Pair {
            what: "the CA".into(),
            cert: l.ca_cert(),
            key: key_file_or_record(&l.ca_key(), root_store.is_some(), opts.force),
            make: Box::new(|finish| {
                made = Some(if finish {
                    let key = CaKey::load("CA private key", &l.ca_key())?;
                    self.self_sign_ca(&opts.ca_subject, key, &spec, None)?
                } else {
                    self.create_root_in(
                        &opts.ca_subject,
                        opts.key,
                        root_store.as_ref(),
                        &spec,
                        overwrite,
                    )?
                });
                Ok(())
            }),
            check: Box::new(|| self.root().map(drop)),
            remedy: "remake the whole PKI with --force".into(),
        };
        let fresh = ensure_pair(&mut pair, opts.force, report)?;
        drop(pair);
        let root = match made {
            Some(ca) => ca,
            None => self.root()?,
        };
        Ok((Some(root), fresh))
    }

    /// The issuing intermediate of a two-level PKI.
    fn init_intermediate(
        &self,
        opts: &InitOptions,
        root: Option<&Issuer>,
        fresh_root: bool,
        report: &mut InitReport,
    ) -> Result<(Issuer, bool)> {
        let l = self.layout().clone();
        let overwrite = if opts.force || fresh_root {
            Overwrite::Replace
        } else {
            Overwrite::Never
        };
        let root_cert = l.ca_cert();
        let (_, store) = opts.stores();
        let mut pair = Pair {
            what: "the intermediate CA".into(),
            cert: l.intermediate_cert(),
            key: key_file_or_record(&l.intermediate_key(), store.is_some(), opts.force),
            make: Box::new(|finish| {
                let root = root.ok_or_else(|| {
                    Error::Declined(
                        "making an intermediate needs the root key: `pki root import`".into(),
                    )
                })?;
                let key = if finish {
                    CaKey::load("intermediate CA private key", &l.intermediate_key())?
                } else {
                    CaKey::generate(opts.key, store.as_ref(), opts.force)?
                };
                let ow = if keys::present(&l.intermediate_key()) {
                    Overwrite::Replace
                } else {
                    overwrite
                };
                self.create_intermediate_with(
                    root,
                    &opts.intermediate_subject,
                    key,
                    &opts.constraints,
                    ow,
                )?;
                Ok(())
            }),
            check: Box::new(|| {
                let inter = self.issuer()?;
                let root = load_cert("CA certificate", &root_cert)?;
                let signed = inter
                    .certificate()
                    .verify(&*root.public_key().step("x509 -pubkey")?)
                    .unwrap_or(false);
                if signed {
                    Ok(())
                } else {
                    Err(Error::Declined(format!(
                        "{} was not issued by {}: rerun with --force to remake the PKI",
                        l.intermediate_cert().display(),
                        root_cert.display()
                    )))
                }
            }),
            remedy: "remake the whole PKI with --force".into(),
        };
        let fresh = ensure_pair(&mut pair, opts.force || fresh_root, report)?;
        drop(pair);
        Ok((self.issuer()?, fresh))
    }

    /// Makes, finishes or checks one default leaf; true when its certificate was made.
    fn init_leaf(
        &self,
        ca: &Issuer,
        leaf: &Leaf,
        force: bool,
        fresh_ca: bool,
        report: &mut InitReport,
    ) -> Result<bool> {
        let (cert, key_path) = self.leaf_paths(leaf.profile.role(), &leaf.name)?;
        let overwrite = if force {
            Overwrite::Replace
        } else {
            Overwrite::Never
        };
        let ca_path = self.layout().ca_cert();
        let mut pair = Pair {
            what: leaf.profile.to_string(),
            cert: cert.clone(),
            key: key_path.clone(),
            make: Box::new(|finish| {
                // Finishing an interrupted run takes the name over from a record whose
                // certificate file is gone.
                match finish {
                    true => {
                        let k = key::load("private key", &key_path)?;
                        self.issue_with_key(ca, leaf, k, Overwrite::Never, Claim::Replace)?
                    }
                    false => {
                        let claim = if force { Claim::Replace } else { Claim::New };
                        self.issue_with_key(ca, leaf, key::generate(leaf.key)?, overwrite, claim)?
                    }
                };
                Ok(())
            }),
            check: Box::new(|| check_leaf(ca, &cert, &key_path, &ca_path, leaf.profile, fresh_ca)),
            remedy: format!("reissue with `pki issue {} --force`", leaf.profile),
        };
        ensure_pair(&mut pair, force, report)
    }

    /// The client's PKCS#12 bundle, for browsers and requests-pkcs12: made when the client
    /// changed or the bundle is missing.
    fn init_p12(
        &self,
        ca: &Issuer,
        opts: &InitOptions,
        client_changed: bool,
        report: &mut InitReport,
    ) -> Result<()> {
        let l = self.layout();
        let p12 = l.client_p12(common::DEFAULT_CLIENT_NAME);
        if !client_changed && files::exists(&p12) {
            report.kept.push(p12);
            return Ok(());
        }
        let password = match &opts.p12_password {
            Some(p) => p.clone(),
            None => {
                let p = random_password()?;
                let pass_file = l.client_p12_pass(common::DEFAULT_CLIENT_NAME);
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
            ca,
            common::DEFAULT_CLIENT_NAME,
            &password,
            P12Encryption::Modern,
            Overwrite::Replace,
        )?;
        report.created.push(p12);
        Ok(())
    }
}

/// Where `init` looks for a CA key: the token's record when the key is to be made in a token,
/// or is in one and is kept (no `--force`); else the key file.
fn key_file_or_record(key_path: &Path, token: bool, force: bool) -> PathBuf {
    let record = keys::store_record(key_path);
    if token || (!force && files::exists(&record) && !files::exists(key_path)) {
        record
    } else {
        key_path.to_owned()
    }
}

/// A leaf found whole must be one pair and signed by the CA.
fn check_leaf(
    ca: &Issuer,
    cert_path: &Path,
    key_path: &Path,
    ca_path: &Path,
    profile: Profile,
    fresh_ca: bool,
) -> Result<()> {
    let cert = load_cert("certificate", cert_path)?;
    let key = key::load("private key", key_path)?;
    if !key::matches(&key, &*cert.public_key().step("x509 -pubkey")?) {
        return Err(Error::Declined(format!(
            "{} does not match {} (an interrupted `issue --force`?): reissue with \
             `pki issue {profile} --force`",
            key_path.display(),
            cert_path.display(),
        )));
    }
    let signed = cert
        .verify(&*ca.certificate().public_key().step("x509 -pubkey")?)
        .unwrap_or(false);
    if !signed {
        return Err(Error::Declined(format!(
            "{} was not issued by {}{}: rerun with --force to reissue everything",
            cert_path.display(),
            ca_path.display(),
            if fresh_ca {
                " (the CA was just made anew)"
            } else {
                ""
            },
        )));
    }
    Ok(())
}

/// Whether two sets of name constraints permit the same subtrees, in any order.
fn same_constraints(a: &NameConstraints, b: &NameConstraints) -> bool {
    let sorted = |c: &NameConstraints| {
        let mut all: Vec<String> = c.dns.iter().map(|d| d.to_ascii_lowercase()).collect();
        all.extend(c.ip.iter().map(|n| format!("IP:{n}")));
        all.sort();
        all
    };
    sorted(a) == sorted(b)
}

/// 128 random bits as 32 hex digits.
fn random_password() -> Result<String> {
    let mut buf = [0u8; 16];
    openssl::rand::rand_bytes(&mut buf).step("rand")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
