//! The `openssl ca` mirror of the records on disk, which the CLI keeps: `ca/index.txt` (for
//! `openssl ca`, `openssl ocsp -index` and people), `ca/ca.crl` and `ca/crlnumber`. Written
//! from committed state under the folder's lock, patched in place when one transaction
//! changed a few lines, and repaired (or imported from an older `pki`'s `index.txt`) when a
//! command died half-way. The online CA never writes it: the CLI's next command does.

use std::path::{Path, PathBuf};

use openssl::x509::{X509Crl, X509Ref};

use crate::error::Result;
use crate::files::{self, Overwrite, Secrecy};
use crate::index::{self};
use crate::issuer::Issuer;
use crate::profile::SubjectAltName;
use crate::store::{Db, Record, State};
use common::Role;
use x509::cert::{key_id, load_cert, serial_hex};
use x509::time::{now, unix_time};

use crate::authority::sign_crl;
use crate::folder::{Change, Folder};

impl Folder {
    /// The URL certificates issued from here on name as their CRL distribution point: the
    /// one given to [`Folder::with_crl_url`], else the PKI's own (`pki ca crl-url`), if any.
    pub fn crl_url(&self) -> Result<Option<String>> {
        if let Some(url) = &self.crl_url {
            return Ok(Some(url.clone()));
        }
        let path = self.layout.ca_crl_url();
        if !files::exists(&path) {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&files::read("CRL URL", &path)?)
            .trim()
            .to_owned();
        Ok((!text.is_empty()).then_some(text))
    }

    /// `pki init --crl-url`, `pki ca crl-url`: the URL that certificates issued from now on
    /// name as their CRL distribution point (where `ca/ca.crl` is published), or none.
    /// Certificates issued before keep what they have.
    pub fn set_crl_url(&self, url: Option<&str>) -> Result<()> {
        let path = self.layout.ca_crl_url();
        match url {
            Some(url) => {
                x509::distribution::check_url(url)?;
                files::write(
                    "CRL URL",
                    &path,
                    format!("{url}\n").as_bytes(),
                    Secrecy::Public,
                    Overwrite::Replace,
                )?;
            }
            None if files::exists(&path) => {
                std::fs::remove_file(&path).map_err(|source| x509::Error::Write {
                    what: "CRL URL",
                    path: path.clone(),
                    source,
                })?;
            }
            None => {}
        }
        Ok(())
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
    pub(crate) fn repair(&self, db: &mut Db, ca: &Issuer) -> Result<bool> {
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
    pub(crate) fn import_index(&self, db: &mut Db, ca: &Issuer) -> Result<()> {
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
            Some("server") => Role::Server,
            _ => Role::Client,
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
            role,
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
    pub(crate) fn export_with(
        &self,
        db: &mut Db,
        ca: &Issuer,
        change: Option<Change>,
    ) -> Result<()> {
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
}

fn sans_of(cert: &X509Ref) -> Vec<SubjectAltName> {
    let der = cert.to_der().unwrap_or_default();
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(&der)
        .map(|(_, c)| crate::inspect::names(&c))
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The CRL number of the CRL at `path`, if there is a readable one.
fn crl_number_on_disk(path: &Path) -> Option<i64> {
    let pem = std::fs::read(path).ok()?;
    let crl = X509Crl::from_pem(&pem).ok()?;
    i64::try_from(x509::cert::crl_number(&crl)?).ok()
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
