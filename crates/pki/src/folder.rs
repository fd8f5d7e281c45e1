//! A PKI folder laid out as `make certs` writes it ([`common::Layout`]), with its records in a
//! database ([`crate::store`]): what `pki issue`, `list`, `revoke` and `crl` do, without ever
//! losing a file or a record, however many commands run at once.
//!
//! Issuing a certificate, in order:
//! 1. the key and the certificate are written and synced under temporary names beside their
//!    targets (a full disk fails here, and nothing has changed);
//! 2. the record is committed, claiming the name (a second command issuing the same name fails
//!    here, and its temporary files vanish);
//! 3. the files are renamed into place;
//! 4. the record is marked issued.
//!
//! A command killed between 2 and 4 leaves a record in state "issuing" that names its process;
//! the next command finds it, sees the process gone, and repairs: the certificate is recorded as
//! issued if its file is in place, forgotten if it never got there (it was never handed out).
//! The CRL and `index.txt` are written from committed state, under a lock, by whichever command
//! runs next if one died before writing them.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::x509::{X509NameRef, X509};

use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy, Staged};
use crate::index::{Reason, Status};
use crate::issuer::Issuer;
use crate::key::{self, KeyAlgorithm};
use crate::keys::{self, CaKey};
use crate::leaf::Leaf;
use crate::name::{self, Name};
use crate::pkcs11::Pkcs11Uri;
use crate::profile::Profile;
use crate::request::{self, Subject};
use crate::store::{Claim, Db, DbUrl, Filter, Record, State};
use common::{Layout, Role};
use x509::cert::key_id;
use x509::key::public_of;
use x509::time::now;
use x509::{CertSpec, Validity};

use crate::authority::sign_crl;
pub use crate::authority::CRL_DAYS;

/// Environment variable holding the PKCS#12 password (`init`, `export-p12`).
pub const P12_PASSWORD_ENV: &str = "PKI_P12_PASSWORD";

/// How long a command waits for another's lock before it gives up, changing nothing.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A PKI folder and where its records live.
#[derive(Debug, Clone)]
pub struct Folder {
    pub(crate) layout: Layout,
    pub(crate) db: DbUrl,
    pub(crate) lock_timeout: Duration,
    pub(crate) notices: Arc<Mutex<Vec<String>>>,
    pub(crate) crl_url: Option<String>,
}

/// A certificate just issued, and where its files are.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert: X509,
    /// Its serial (hex).
    pub serial: String,
    /// `…/NAME.crt`.
    pub cert_path: PathBuf,
    /// `…/NAME.key`.
    pub key_path: PathBuf,
}

impl Folder {
    /// The PKI at `layout`, records in `ca/ca.db`; nothing is read until a command runs.
    pub fn new(layout: Layout) -> Folder {
        Folder {
            layout,
            db: DbUrl::Default,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            notices: Arc::default(),
            crl_url: None,
        }
    }

    /// Every certificate issued from here on names `url` as its CRL distribution point
    /// (the online CA's `--public-url`; see [`crate::distribution`]).
    pub fn with_crl_url(mut self, url: Option<String>) -> Folder {
        self.crl_url = url;
        self
    }

    /// Keeps the records in `db` instead (PostgreSQL for several hosts).
    pub fn with_db(mut self, db: DbUrl) -> Folder {
        self.db = db;
        self
    }

    /// Waits up to `timeout` for another command's lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Folder {
        self.lock_timeout = timeout;
        self
    }

    /// Where the files are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// What commands noticed and repaired on the way (an imported index, a finished write, a
    /// capped validity), for the person running them; taken once.
    pub fn take_notices(&self) -> Vec<String> {
        self.notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    pub(crate) fn notice(&self, text: String) {
        if let Ok(mut n) = self.notices.lock() {
            n.push(text);
        }
    }

    /// The files of leaf `name` of `role`, inside the folder, after the name passed the rule.
    pub fn leaf_paths(&self, role: Role, name: &str) -> Result<(PathBuf, PathBuf)> {
        let name = Name::parse(name)?;
        let rel = |p: PathBuf| self.layout.relative(&p).to_owned();
        let cert = rel(self.layout.leaf_cert(role, name.as_str()));
        let key = rel(self.layout.leaf_key(role, name.as_str()));
        let root = self.layout.root();
        Ok((name::inside(root, &cert)?, name::inside(root, &key)?))
    }

    /// Opens the records: creates the database on first use, imports an older `pki`'s
    /// `index.txt`, repairs what a command that died left behind, and rewrites the CRL and
    /// `index.txt` if a command died before writing them.
    pub fn open_db(&self, ca: Option<&Issuer>) -> Result<Db> {
        self.open_for(ca, Purpose::Write)
    }

    /// [`Folder::open_db`] for a command that writes no certificate or key file (it reads, or
    /// changes records only): temporary files of dead commands are left for the next writer.
    pub fn open_db_to_read(&self, ca: Option<&Issuer>) -> Result<Db> {
        self.open_for(ca, Purpose::Read)
    }

    pub(crate) fn open_for(&self, ca: Option<&Issuer>, purpose: Purpose) -> Result<Db> {
        let default = self.layout.dir(Role::Ca).join("ca.db");
        let mut db = Db::open(&self.db, &default, self.lock_timeout)?;
        if let Some(ca) = ca {
            if db.is_empty()? {
                self.import_index(&mut db, ca)?;
            }
            // A dead command's temporary files: always after a repair, and before any write
            // (a folder of 100,000 devices is not listed on every read-only command).
            if self.repair(&mut db, ca)? || !matches!(purpose, Purpose::Read) {
                for p in self.remove_stale_temps() {
                    self.notice(format!(
                        "removed {} (left by an interrupted run)",
                        p.display()
                    ));
                }
            }
            self.export(&mut db, ca)?;
        }
        Ok(db)
    }

    /// Makes a new CA (`genpkey` + `req -new` + `x509 -req -signkey`), written to `ca/`, and
    /// starts its records. Refuses to replace an existing CA unless `overwrite`.
    pub fn create_ca(
        &self,
        subject: &Subject,
        algorithm: KeyAlgorithm,
        overwrite: Overwrite,
    ) -> Result<Issuer> {
        self.create_root(subject, algorithm, &CertSpec::new(Profile::Ca), overwrite)
    }

    /// [`Folder::create_ca`] with the root's spec (a pathlen above an intermediate, name
    /// constraints when it signs leaves itself).
    pub fn create_root(
        &self,
        subject: &Subject,
        algorithm: KeyAlgorithm,
        spec: &CertSpec,
        overwrite: Overwrite,
    ) -> Result<Issuer> {
        self.create_root_in(subject, algorithm, None, spec, overwrite)
    }

    /// [`Folder::create_root`] with its key made inside the PKCS#11 token `store` names (the
    /// URI recorded in `ca/ca.key-store`, no key file), or in `ca/ca.key` when `None`.
    pub fn create_root_in(
        &self,
        subject: &Subject,
        algorithm: KeyAlgorithm,
        store: Option<&Pkcs11Uri>,
        spec: &CertSpec,
        overwrite: Overwrite,
    ) -> Result<Issuer> {
        if overwrite == Overwrite::Never {
            for (what, p) in [
                ("CA private key", self.layout.ca_key()),
                (
                    "CA key store record",
                    keys::store_record(&self.layout.ca_key()),
                ),
                ("CA certificate", self.layout.ca_cert()),
            ] {
                if files::exists(&p) {
                    return Err(x509::Error::Exists { what, path: p }.into());
                }
            }
        }
        let key = CaKey::generate(algorithm, store, overwrite == Overwrite::Replace)?;
        self.self_sign_ca(subject, key, spec, Some(overwrite))
    }

    /// The self-signed CA of `key`, its certificate written (`overwrite`) and its records
    /// started; the key (or its token's record) is written too unless `key_written` is `None`
    /// (an interrupted run's key, found on disk and kept as it is).
    pub(crate) fn self_sign_ca(
        &self,
        subject: &Subject,
        key: CaKey,
        spec: &CertSpec,
        key_written: Option<Overwrite>,
    ) -> Result<Issuer> {
        let overwrite = key_written.unwrap_or(Overwrite::Never);
        let spec = spec
            .clone()
            .validity(Validity::days(Profile::Ca.default_days()));
        let ca = match &key {
            CaKey::File(k) => {
                let req = request::build(k, subject)?;
                Issuer::self_sign_spec(&req, k.clone(), &spec)?
            }
            CaKey::Token(_) => {
                Issuer::self_sign_key(&*subject.to_x509_name()?, key.signer()?, &spec)?
            }
        };
        // Key first: a crash between the two writes leaves a key that the next run reuses.
        if let Some(ow) = key_written {
            key.write("CA private key", &self.layout.ca_key(), ow)?;
        }
        files::write(
            "CA certificate",
            &self.layout.ca_cert(),
            &ca.certificate().to_pem().step("x509 -out")?,
            Secrecy::Public,
            overwrite,
        )?;
        let mut db = self.open_db(None)?;
        db.start_ca(&key_id(ca.certificate())?)?;
        self.export(&mut db, &ca)?;
        Ok(ca)
    }

    /// Removes what a crashed run left (`.pki-PID-*.tmp` of a process that is gone) in every
    /// folder of the layout.
    pub fn remove_stale_temps(&self) -> Vec<PathBuf> {
        [Role::Ca, Role::Server, Role::Client]
            .into_iter()
            .flat_map(|r| files::remove_stale_temps(&self.layout.dir(r)))
            .collect()
    }

    /// Issues a leaf certificate with a fresh key and records it. Refuses to replace existing
    /// files (or a certificate recorded under the name) unless `overwrite`.
    pub fn issue(&self, ca: &Issuer, leaf: &Leaf, overwrite: Overwrite) -> Result<X509> {
        let claim = match overwrite {
            Overwrite::Never => Claim::New,
            Overwrite::Replace => Claim::Replace,
        };
        if overwrite == Overwrite::Never {
            let (cert, key) = self.leaf_paths(leaf.profile.role(), &leaf.name)?;
            for (what, p) in [("private key", key), ("certificate", cert)] {
                if files::exists(&p) {
                    return Err(x509::Error::Exists { what, path: p }.into());
                }
            }
        }
        self.issue_with_key(ca, leaf, key::generate(leaf.key)?, overwrite, claim)
            .map(|i| i.cert)
    }

    /// Issues `leaf` for an existing `key` (its file written only when missing or replaced),
    /// claiming the name as `claim` says.
    pub(crate) fn issue_with_key(
        &self,
        ca: &Issuer,
        leaf: &Leaf,
        key: PKey<Private>,
        overwrite: Overwrite,
        claim: Claim,
    ) -> Result<Issued> {
        let (_, key_path) = self.leaf_paths(leaf.profile.role(), &leaf.name)?;
        let keep_key = overwrite == Overwrite::Never && files::exists(&key_path);
        let public = public_of(&key)?;
        let placement = Placement {
            subject: leaf.subject.to_x509_name()?,
            public: &public,
            key: (!keep_key).then_some(&key),
            overwrite,
            claim,
            renews: None,
        };
        self.place(ca, leaf, &placement)
    }

    /// Signs and writes `leaf` as `placement` says, in the order of the module documentation:
    /// files staged, record committed, files renamed, record settled, exports rewritten.
    pub(crate) fn place(
        &self,
        ca: &Issuer,
        leaf: &Leaf,
        placement: &Placement<'_>,
    ) -> Result<Issued> {
        let (cert_path, key_path) = self.leaf_paths(leaf.profile.role(), &leaf.name)?;
        let (cert, mut rec) =
            self.sign(ca, leaf, &placement.subject, placement.public, &cert_path)?;
        rec.renews = placement.renews.clone();
        let staged_key = match placement.key {
            Some(key) => Some(files::stage(
                "private key",
                &key_path,
                &key::to_pem(key)?,
                Secrecy::Secret,
                placement.overwrite,
            )?),
            None => None,
        };
        let mut pem = cert.to_pem().step("x509 -out")?;
        pem.extend_from_slice(&self.chain_after_leaf()?);
        let staged_cert = files::stage(
            "certificate",
            &cert_path,
            &pem,
            Secrecy::Public,
            placement.overwrite,
        )?;
        // Files first, records second: a full disk or a read-only folder fails above, with
        // nothing recorded.
        let mut db = self.open_db(Some(ca))?;
        db.insert(&rec, placement.claim)?;
        files::crash_point("crash-after-commit");
        let placed = staged_key
            .map_or(Ok(()), Staged::commit)
            .and_then(|()| staged_cert.commit());
        if let Err(e) = placed {
            // Nothing was handed out: the certificate never reached its file.
            db.abandon(&rec.aki, &rec.serial, None)?;
            return Err(e.into());
        }
        files::crash_point("crash-before-settle");
        db.settle(&rec.aki, std::slice::from_ref(&rec.serial))?;
        self.export(&mut db, ca)?;
        Ok(Issued {
            serial: rec.serial,
            cert,
            cert_path,
            key_path,
        })
    }

    /// Signs `leaf` for `public` under `subject` and makes its record (state Issuing, claimed
    /// by this process).
    pub(crate) fn sign(
        &self,
        ca: &Issuer,
        leaf: &Leaf,
        subject: &X509NameRef,
        public: &PKeyRef<Public>,
        cert_path: &Path,
    ) -> Result<(X509, Record)> {
        let (spec, cut) = leaf.spec(ca, self.crl_url()?.as_deref())?;
        if let Some(notice) = cut {
            self.notice(notice);
        }
        let cert = ca.sign_key(subject, public, &spec)?;
        let file = self.layout.relative(cert_path).display().to_string();
        let rec = leaf.record(&cert, &key_id(ca.certificate())?, &file)?;
        Ok((cert, rec))
    }

    /// Every certificate the CA issued, oldest first.
    pub fn list(&self) -> Result<Vec<Record>> {
        self.select(&Filter {
            at: now(),
            ..Filter::default()
        })
    }

    /// The records `filter` selects.
    pub fn select(&self, filter: &Filter) -> Result<Vec<Record>> {
        let ca = self.issuer()?;
        self.open_db_to_read(Some(&ca))?.list(filter)
    }

    /// The records and their status now, for `pki list`.
    pub fn status(&self) -> Result<Vec<(Record, Status)>> {
        let at = now();
        Ok(self
            .list()?
            .into_iter()
            .map(|r| {
                let s = r.status(at);
                (r, s)
            })
            .collect())
    }

    /// Revokes every unrevoked certificate of this CA whose serial, CN or name is `query`, and
    /// signs a CRL in the same transaction. Returns the records revoked.
    pub fn revoke(&self, ca: &Issuer, query: &str, reason: Option<Reason>) -> Result<Vec<Record>> {
        self.revoke_many(ca, &[query], reason)
    }

    /// [`Folder::revoke`] for many queries at once (`pki revoke --from FILE`): every one must
    /// match, and all are revoked in one transaction with one CRL.
    pub fn revoke_many(
        &self,
        ca: &Issuer,
        queries: &[&str],
        reason: Option<Reason>,
    ) -> Result<Vec<Record>> {
        let mut db = self.open_db_to_read(Some(ca))?;
        // During a rotation a certificate may be of either CA; each signs its own CRL.
        let issuers = self.issuers(ca)?;
        let mut per_issuer: Vec<Vec<String>> = vec![Vec::new(); issuers.len()];
        for query in queries {
            let mut matched = false;
            for (issuer, serials) in issuers.iter().zip(per_issuer.iter_mut()) {
                let found = db.find(&key_id(issuer.certificate())?, query)?;
                matched |= !found.is_empty();
                serials.extend(
                    found
                        .into_iter()
                        .filter(|r| r.state != State::Revoked)
                        .map(|r| r.serial),
                );
            }
            if !matched {
                return Err(Error::NotInIndex(format!(
                    "no certificate with serial, CN or name {query:?} in {}: `pki list` shows them",
                    db.place()
                )));
            }
        }
        let mut revoked = Vec::new();
        let mut transactions = Vec::new();
        for (issuer, serials) in issuers.iter().zip(&per_issuer) {
            if serials.is_empty() {
                continue;
            }
            let aki = key_id(issuer.certificate())?;
            let done = db.revoke(&aki, serials, now(), reason, &mut |n, list| {
                sign_crl(issuer, &aki, n, list)
            })?;
            transactions.push(done.generation_before);
            revoked.extend(done.records);
        }
        if revoked.is_empty() {
            return Err(Error::NotInIndex(format!(
                "every certificate matching {} is already revoked",
                queries.join(", ")
            )));
        }
        // One transaction: index.txt may be patched rather than rewritten (export_with).
        let change = match transactions[..] {
            [before] => Some(Change {
                generation_before: before,
                records: &revoked,
            }),
            _ => None,
        };
        self.export_with(&mut db, ca, change)?;
        Ok(revoked)
    }

    /// The folder's lock (`ca/.lock`), held while files are written from the records.
    pub(crate) fn lock(&self) -> Result<std::fs::File> {
        let path = self.layout.dir(Role::Ca).join(".lock");
        let fail = |source| x509::Error::Write {
            what: "lock file",
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(self.layout.dir(Role::Ca)).map_err(fail)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(&path)
            .map_err(fail)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < self.lock_timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Busy(path.display().to_string()))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(fail(e).into()),
            }
        }
    }

    /// The CA's keys and the default leaves' that group or others can read: each a warning
    /// to show on every command. [`Folder::loose_key_permissions_all`] looks at every device.
    pub fn loose_key_permissions(&self) -> Vec<String> {
        let l = &self.layout;
        let paths = [
            l.ca_key(),
            l.intermediate_key(),
            l.server_key(),
            l.client_key(),
            l.client_p12(common::DEFAULT_CLIENT_NAME),
            l.client_p12_pass(common::DEFAULT_CLIENT_NAME),
        ];
        loose(paths.into_iter())
    }

    /// Every private key, bundle and password under the folder that group or others can read
    /// (a folder of 100,000 devices takes a while: `pki init` and `pki list` look).
    pub fn loose_key_permissions_all(&self) -> Vec<String> {
        let files = [Role::Ca, Role::Server, Role::Client]
            .into_iter()
            .filter_map(|role| std::fs::read_dir(self.layout.dir(role)).ok())
            .flat_map(|dir| dir.flatten().map(|e| e.path()));
        loose(files)
    }
}

/// The warnings of the loose ones among `paths`.
fn loose(paths: impl Iterator<Item = PathBuf>) -> Vec<String> {
    paths
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("key" | "p12" | "pass")
            )
        })
        .filter_map(|p| {
            let mode = files::mode(&p)?;
            (mode & 0o077 != 0).then(|| {
                format!(
                    "{} has mode {mode:04o}: others can read a secret; run `chmod 600 {}`",
                    p.display(),
                    p.display()
                )
            })
        })
        .collect()
}

/// What a command will do with the records it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Read,
    Write,
}

/// How [`Folder::place`] writes a leaf.
pub(crate) struct Placement<'a> {
    /// The certificate's subject.
    pub subject: openssl::x509::X509Name,
    /// The key it certifies.
    pub public: &'a PKeyRef<Public>,
    /// The private key to write beside it, if one is written.
    pub key: Option<&'a PKey<Private>>,
    /// Whether existing files are replaced.
    pub overwrite: Overwrite,
    /// How the record takes the name.
    pub claim: Claim,
    /// The serial of the certificate this one renews.
    pub renews: Option<String>,
}

/// One transaction's changed records, for [`Folder::export_with`].
pub(crate) struct Change<'a> {
    pub(crate) generation_before: i64,
    pub(crate) records: &'a [Record],
}
