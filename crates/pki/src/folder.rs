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
use openssl::x509::{X509Crl, X509NameRef, X509Ref, X509};

use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy, Staged};
use crate::index::{self, Reason, Status};
use crate::issuer::Issuer;
use crate::key::{self, KeyAlgorithm};
use crate::leaf::Leaf;
use crate::name::{self, Name};
use crate::profile::Profile;
use crate::request::{self, Subject};
use crate::store::{Claim, Db, DbUrl, Filter, Record, State};
use common::{Layout, Role};
use x509::cert::{key_id, load_cert, serial_hex};
use x509::key::public_of;
use x509::time::{now, unix_time};
use x509::{CertSpec, Validity};

use crate::authority::sign_crl;
pub use crate::authority::CRL_DAYS;

/// Environment variable holding the PKCS#12 password (`init`, `export-p12`).
pub const P12_PASSWORD_ENV: &str = "PKI_P12_PASSWORD";

/// How long a command waits for another's lock before it gives up, changing nothing.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Certificates issued per transaction in a batch.
const BATCH: usize = 256;

/// A PKI folder and where its records live.
#[derive(Debug, Clone)]
pub struct Folder {
    layout: Layout,
    db: DbUrl,
    lock_timeout: Duration,
    notices: Arc<Mutex<Vec<String>>>,
    crl_url: Option<String>,
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

    fn open_for(&self, ca: Option<&Issuer>, purpose: Purpose) -> Result<Db> {
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
        if overwrite == Overwrite::Never {
            for (what, p) in [
                ("CA private key", self.layout.ca_key()),
                ("CA certificate", self.layout.ca_cert()),
            ] {
                if files::exists(&p) {
                    return Err(x509::Error::Exists { what, path: p }.into());
                }
            }
        }
        self.self_sign_ca(subject, key::generate(algorithm)?, spec, overwrite)
    }

    pub(crate) fn self_sign_ca(
        &self,
        subject: &Subject,
        key: PKey<Private>,
        spec: &CertSpec,
        overwrite: Overwrite,
    ) -> Result<Issuer> {
        let req = request::build(&key, subject)?;
        let spec = spec
            .clone()
            .validity(Validity::days(Profile::Ca.default_days()));
        let pem = key::to_pem(&key)?;
        let ca = Issuer::self_sign_spec(&req, key, &spec)?;
        // Key first: a crash between the two writes leaves a key that the next run reuses.
        files::write(
            "CA private key",
            &self.layout.ca_key(),
            &pem,
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
            token: None,
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
        match &placement.token {
            Some(digest) => db.insert_with_token(&rec, placement.claim, digest, now())?,
            None => db.insert(&rec, placement.claim)?,
        }
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

    /// Issues every leaf of `leaves` with a fresh key, new names only, [`BATCH`] to a
    /// transaction; `progress(done)` after each batch. Names are checked (and refused as a
    /// whole) before anything is signed.
    pub fn issue_many(
        &self,
        ca: &Issuer,
        leaves: &[Leaf],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Issued>> {
        let mut seen = std::collections::HashSet::new();
        let mut paths = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            let (cert, key) = self.leaf_paths(leaf.profile.role(), &leaf.name)?;
            if !seen.insert((leaf.profile, leaf.name.to_ascii_lowercase())) {
                return Err(Error::Refused(format!(
                    "the name {} is given twice",
                    leaf.name
                )));
            }
            for (what, p) in [("certificate", &cert), ("private key", &key)] {
                if files::exists(p) {
                    return Err(x509::Error::Exists {
                        what,
                        path: p.clone(),
                    }
                    .into());
                }
            }
            paths.push((cert, key));
        }
        let mut db = self.open_db(Some(ca))?;
        let mut out = Vec::with_capacity(leaves.len());
        for (chunk, chunk_paths) in leaves.chunks(BATCH).zip(paths.chunks(BATCH)) {
            out.extend(self.issue_chunk(&mut db, ca, chunk, chunk_paths)?);
            progress(out.len());
        }
        self.export(&mut db, ca)?;
        Ok(out)
    }

    fn issue_chunk(
        &self,
        db: &mut Db,
        ca: &Issuer,
        leaves: &[Leaf],
        paths: &[(PathBuf, PathBuf)],
    ) -> Result<Vec<Issued>> {
        let chain = self.chain_after_leaf()?;
        let mut staged = Vec::with_capacity(leaves.len() * 2);
        let mut records = Vec::with_capacity(leaves.len());
        let mut issued = Vec::with_capacity(leaves.len());
        for (leaf, (cert_path, key_path)) in leaves.iter().zip(paths) {
            let key = key::generate(leaf.key)?;
            let public = public_of(&key)?;
            let subject = leaf.subject.to_x509_name()?;
            let (cert, rec) = self.sign(ca, leaf, &subject, &public, cert_path)?;
            staged.push(files::stage_unsynced(
                "private key",
                key_path,
                &key::to_pem(&key)?,
                Secrecy::Secret,
                Overwrite::Never,
            )?);
            let mut pem = cert.to_pem().step("x509 -out")?;
            pem.extend_from_slice(&chain);
            staged.push(files::stage_unsynced(
                "certificate",
                cert_path,
                &pem,
                Secrecy::Public,
                Overwrite::Never,
            )?);
            issued.push(Issued {
                serial: rec.serial.clone(),
                cert,
                cert_path: cert_path.clone(),
                key_path: key_path.clone(),
            });
            records.push(rec);
        }
        // Every staged file on disk before a record names it: one sync for the batch.
        if let Some(first) = staged.first() {
            files::sync_filesystem("certificate", first.path())?;
        }
        db.insert_all(&records)?;
        files::crash_point("crash-after-commit");
        // One folder sync per folder, after every rename of the batch.
        let mut folders = std::collections::BTreeMap::new();
        for s in staged {
            let file = s.path().to_owned();
            folders.insert(file.parent().map(Path::to_owned), file);
            s.rename()?;
        }
        for file in folders.values() {
            files::sync_dir("certificate", file)?;
        }
        let serials: Vec<String> = records.iter().map(|r| r.serial.clone()).collect();
        let aki = key_id(ca.certificate())?;
        db.settle(&aki, &serials)?;
        Ok(issued)
    }

    /// Signs `leaf` for `public` under `subject` and makes its record (state Issuing, claimed
    /// by this process).
    fn sign(
        &self,
        ca: &Issuer,
        leaf: &Leaf,
        subject: &X509NameRef,
        public: &PKeyRef<Public>,
        cert_path: &Path,
    ) -> Result<(X509, Record)> {
        let (spec, cut) = leaf.spec(ca, self.crl_url.as_deref())?;
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

    /// `pki export`: brings the disk mirror (`index.txt`, `ca/ca.crl`, `crlnumber`) up to
    /// date with the records, after the online CA issued or another host changed them. Every
    /// command does this first; this does only that. Returns the index's path.
    pub fn export_mirror(&self) -> Result<PathBuf> {
        let ca = self.issuer()?;
        self.open_db_to_read(Some(&ca))?;
        Ok(self.layout.ca_index())
    }

    /// `openssl ca -gencrl`: a CRL of every revoked, unexpired certificate, numbered in the
    /// records, written to `ca/ca.crl` (one CRL per CA in force during a rotation). Returns
    /// its path.
    pub fn write_crl(&self, ca: &Issuer) -> Result<PathBuf> {
        let mut db = self.open_db_to_read(Some(ca))?;
        for issuer in self.issuers(ca)? {
            let aki = key_id(issuer.certificate())?;
            db.crl(&aki, now(), &mut |n, list| sign_crl(&issuer, &aki, n, list))?;
        }
        self.export(&mut db, ca)?;
        Ok(self.layout.ca_crl())
    }

    /// Finishes or forgets records left in state "issuing" by commands that died; true when it
    /// repaired one.
    fn repair(&self, db: &mut Db, ca: &Issuer) -> Result<bool> {
        let at = now();
        let mut repaired = false;
        for rec in db.unsettled()? {
            let live = rec
                .claim
                .as_deref()
                .is_some_and(|c| crate::claim::is_live(c, rec.issued_at, at));
            if live {
                continue;
            }
            repaired = true;
            let path = self.layout.root().join(&rec.file);
            let on_disk = load_cert("certificate", &path).ok();
            let in_place = on_disk
                .as_ref()
                .and_then(|c| c.to_der().ok())
                .is_some_and(|der| Some(&der) == rec.der.as_ref());
            if in_place || !rec.current {
                db.settle(&rec.aki, std::slice::from_ref(&rec.serial))?;
                self.notice(format!(
                    "repaired: {} (serial {}) was written by a command that stopped before \
                     recording it as issued; it is recorded now",
                    rec.file, rec.serial
                ));
            } else {
                let restore = on_disk.as_ref().and_then(|c| serial_hex(c).ok());
                db.abandon(&rec.aki, &rec.serial, restore.as_deref())?;
                self.notice(format!(
                    "repaired: certificate {} for {} was signed but never reached its file (its \
                     command stopped); it was never handed out, and its record is removed",
                    rec.serial, rec.file
                ));
            }
        }
        let _ = ca;
        Ok(repaired)
    }

    /// Imports `ca/index.txt` of an older `pki` into a new database, every record kept.
    fn import_index(&self, db: &mut Db, ca: &Issuer) -> Result<()> {
        let path = self.layout.ca_index();
        let aki = key_id(ca.certificate())?;
        let entries = index::load(&path)?;
        let mut records = Vec::with_capacity(entries.len());
        for e in &entries {
            records.push(self.imported(e, &aki));
        }
        let next = self.next_crl_number_on_disk()?;
        if db.import(&aki, &records, next)? && files::exists(&path) {
            self.notice(format!(
                "imported {} records of {} into {} (index.txt stays, as an export)",
                records.len(),
                path.display(),
                db.place()
            ));
        }
        Ok(())
    }

    fn imported(&self, e: &index::Entry, aki: &str) -> Record {
        let file = Path::new(&e.file);
        let role = match file
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
        {
            Some("server") => "server",
            _ => "client",
        };
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&e.serial)
            .to_owned();
        let on_disk = load_cert("certificate", &self.layout.root().join(file))
            .ok()
            .filter(|c| serial_hex(c).ok().as_deref() == Some(e.serial.as_str()));
        let der = on_disk.as_ref().and_then(|c| c.to_der().ok());
        let not_before = on_disk
            .as_ref()
            .and_then(|c| unix_time(c.not_before()).ok())
            .unwrap_or(0);
        Record {
            aki: aki.to_owned(),
            serial: e.serial.clone(),
            role: role.to_owned(),
            name,
            subject: e.subject.clone(),
            cn: e.common_name().map(str::to_owned),
            sans: on_disk.as_ref().map(|c| sans_of(c)).unwrap_or_default(),
            not_before,
            not_after: e.not_after,
            state: if e.revoked.is_some() {
                State::Revoked
            } else {
                State::Issued
            },
            revoked: e.revoked,
            current: on_disk.is_some(),
            file: e.file.clone(),
            der,
            issued_at: not_before,
            claim: None,
            renews: None,
        }
    }

    fn next_crl_number_on_disk(&self) -> Result<i64> {
        let from_file = files::read("CRL number", &self.layout.ca_crl_number())
            .ok()
            .and_then(|raw| i64::from_str_radix(String::from_utf8_lossy(&raw).trim(), 16).ok())
            .unwrap_or(1);
        let from_crl = crl_number_on_disk(&self.layout.ca_crl()).map_or(0, |n| n + 1);
        Ok(from_file.max(from_crl))
    }

    /// Writes `ca/ca.crl`, `ca/crlnumber` and `ca/index.txt` from the committed records, under
    /// a lock, leaving files that already say the same untouched. A CRL on disk is only ever
    /// replaced by one with a higher number.
    pub(crate) fn export(&self, db: &mut Db, ca: &Issuer) -> Result<()> {
        self.export_with(db, ca, None)
    }

    /// [`Folder::export`] after `change`, the one transaction since the export on disk when it
    /// was made: the lines of its records are replaced in `index.txt` instead of writing every
    /// record's line again (100,000 of them cost more than the rest of a revocation).
    fn export_with(&self, db: &mut Db, ca: &Issuer, change: Option<Change>) -> Result<()> {
        let akis = self
            .issuer_certs(ca)?
            .iter()
            .map(|c| key_id(c))
            .collect::<x509::Result<Vec<_>>>()?;
        let marker = self.layout.dir(Role::Ca).join(".exported");
        let stamp = |db: &mut Db| -> Result<String> {
            Ok(format!("{} {}\n", akis.join(","), db.generation()?))
        };
        let current = |path: &Path| files::exists(path);
        let now_stamp = stamp(db)?;
        if std::fs::read_to_string(&marker).is_ok_and(|m| m == now_stamp)
            && current(&self.layout.ca_index())
            && current(&self.layout.ca_crl())
        {
            return Ok(());
        }
        let _lock = self.lock()?;
        // Read again under the lock: whoever writes last writes the newest state.
        let stamp = stamp(db)?;
        // A CRL on disk that an export of ours wrote is never newer than the records' newest.
        let foreign = !files::exists(&marker);
        self.export_crls(db, &akis, foreign)?;
        let next = format!("{:02X}\n", db.next_crl_number(&akis[0])?);
        write_if_changed("CRL number", &self.layout.ca_crl_number(), next.as_bytes())?;
        // One CA only: serials are unique within a CA, not across the two of a rotation.
        let patched = change.filter(|_| akis.len() == 1).and_then(|c| {
            let then = format!("{} {}\n", akis.join(","), c.generation_before);
            let now = format!("{} {}\n", akis.join(","), c.generation_before + 1);
            let from_then = std::fs::read_to_string(&marker).is_ok_and(|m| m == then);
            (from_then && stamp == now)
                .then(|| patch_index(&self.layout.ca_index(), c.records))
                .flatten()
        });
        let text = match patched {
            Some(text) => text,
            None => {
                let mut text = String::new();
                for aki in &akis {
                    text.push_str(&db.index_lines(aki)?);
                }
                text
            }
        };
        write_if_changed("CA index", &self.layout.ca_index(), text.as_bytes())?;
        write_if_changed(
            "CA index attributes",
            &self.layout.dir(Role::Ca).join("index.txt.attr"),
            index::ATTR.as_bytes(),
        )?;
        write_if_changed("export stamp", &marker, stamp.as_bytes())
    }

    /// `ca/ca.crl`: the newest CRL of each CA in force, the issuing one first. With one CA, a
    /// CRL on disk is never replaced by an older one; one of the same number that says
    /// something else was not made from these records, and is replaced.
    fn export_crls(&self, db: &mut Db, akis: &[String], foreign: bool) -> Result<()> {
        let mut pem = Vec::new();
        for aki in akis {
            if let Some(crl) = db.latest_crl(aki)? {
                if foreign && akis.len() == 1 {
                    let on_disk = crl_number_on_disk(&self.layout.ca_crl());
                    if on_disk.is_some_and(|n| n > crl.number) {
                        return Ok(());
                    }
                }
                pem.extend_from_slice(x509::cert::pem("X509 CRL", &crl.der).as_bytes());
            }
        }
        if pem.is_empty() {
            return Ok(());
        }
        write_if_changed("CRL", &self.layout.ca_crl(), &pem)
    }

    /// The folder's lock (`ca/.lock`), held while files are written from the records.
    fn lock(&self) -> Result<std::fs::File> {
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
enum Purpose {
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
    /// The digest of an enrollment token spent in the same transaction as the record.
    pub token: Option<String>,
}

fn sans_of(cert: &X509Ref) -> String {
    let der = cert.to_der().unwrap_or_default();
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(&der)
        .map(|(_, c)| crate::inspect::names(&c).join(", "))
        .unwrap_or_default()
}

/// The CRL number of the CRL at `path`, if there is a readable one.
fn crl_number_on_disk(path: &Path) -> Option<i64> {
    let pem = std::fs::read(path).ok()?;
    let crl = X509Crl::from_pem(&pem).ok()?;
    i64::try_from(x509::cert::crl_number(&crl)?).ok()
}

/// One transaction's changed records, for [`Folder::export_with`].
struct Change<'a> {
    generation_before: i64,
    records: &'a [Record],
}

/// `index.txt` at `path` with the lines of `records` replaced (matched by serial, the fourth
/// field); `None` when the file cannot be read or lacks one of them (a full export then).
fn patch_index(path: &Path, records: &[Record]) -> Option<String> {
    let old = std::fs::read_to_string(path).ok()?;
    let mut new: std::collections::HashMap<&str, String> = records
        .iter()
        .map(|r| (r.serial.as_str(), crate::store::index_line(r)))
        .collect();
    let mut text = String::with_capacity(old.len() + 64 * records.len());
    for line in old.split_inclusive('\n') {
        match line
            .split('\t')
            .nth(3)
            .and_then(|serial| new.remove(serial))
        {
            Some(replaced) => text.push_str(&replaced),
            None => text.push_str(line),
        }
    }
    new.is_empty().then_some(text)
}

fn write_if_changed(what: &'static str, path: &Path, bytes: &[u8]) -> Result<()> {
    let same_size = std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64);
    if same_size && std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    files::write(what, path, bytes, Secrecy::Public, Overwrite::Replace).map_err(Into::into)
}
