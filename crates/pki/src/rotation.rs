//! CA rotation without downtime, in three phases that `pki ca rotate` walks and `pki ca status`
//! reports:
//!
//! 1. **introduced**: a new CA is made in `ca/next/`, and `ca/ca.crt` becomes a bundle of the
//!    old root and the new one. Servers and clients that reload pick it up and trust both; the
//!    old CA still issues. `ca/ca.crl` holds one CRL per CA.
//! 2. **switched**: the new CA issues; the old one moves to `ca/previous/` and keeps signing
//!    the CRL of its own certificates while they are trusted. `pki renew --all` re-issues every
//!    certificate still under the old CA.
//! 3. **retired**: once no certificate in force chains to the old CA (or with `--force`), it
//!    leaves the bundle and is archived in `ca/retired/`.
//!
//! Until a phase's last file is written, the phase before it still stands: the marker
//! `ca/rotation` is written last.

use std::path::{Path, PathBuf};

use openssl::x509::X509;

use crate::constraints::NameConstraints;
use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::folder::Folder;
use crate::issuer::Issuer;
use crate::keys::{self, CaKey, KeyReport};
use crate::pkcs11::Pkcs11Uri;
use crate::profile::Profile;
use crate::request;
use crate::signer::KeyLocation;
use common::Role;
use x509::cert::{key_id, load_cert, load_certs};
use x509::time::{now, unix_time};
use x509::{CertSpec, Validity};

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No rotation: one CA.
    None,
    /// A new CA is trusted beside the old one, which still issues.
    Introduced,
    /// The new CA issues; the old one is still trusted.
    Switched,
}

/// The phase in words, for `pki ca status` and messages.
impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::None => "none (one CA issues)",
            Phase::Introduced => {
                "new CA introduced and trusted beside the old one, which still issues"
            }
            Phase::Switched => "switched: the new CA issues, the old one is still trusted",
        })
    }
}

/// What `pki ca status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The phase.
    pub phase: Phase,
    /// Each CA in force: which one, its subject, notAfter, certificates in force, and its CRL's
    /// nextUpdate.
    pub cas: Vec<CaStatus>,
    /// What to do next, in words.
    pub next_step: String,
}

/// One CA of [`Status`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaStatus {
    /// `current`, `next` or `previous`.
    pub role: &'static str,
    /// Subject of its issuing certificate.
    pub subject: String,
    /// Its notAfter (Unix seconds).
    pub not_after: i64,
    /// Certificates in force under it (current ones, not revoked, not expired).
    pub in_force: i64,
    /// nextUpdate of its newest CRL.
    pub crl_next_update: Option<i64>,
    /// Where its signing key lives, and how well it is kept.
    pub key: KeyReport,
    /// Where the key of its root lives, for two levels (the root's own key otherwise is `key`).
    pub root_key: Option<KeyReport>,
}

impl Folder {
    fn rotation_marker(&self) -> PathBuf {
        self.layout().dir(Role::Ca).join("rotation")
    }

    fn generation_dir(&self, which: &str) -> PathBuf {
        self.layout().dir(Role::Ca).join(which)
    }

    /// The phase of a rotation, from `ca/rotation`.
    pub fn phase(&self) -> Phase {
        match std::fs::read_to_string(self.rotation_marker())
            .unwrap_or_default()
            .trim()
        {
            "introduced" => Phase::Introduced,
            "switched" => Phase::Switched,
            _ => Phase::None,
        }
    }

    /// The folder of the CA trusted beside the current one, if a rotation is under way.
    fn other_generation(&self) -> Option<(&'static str, PathBuf)> {
        match self.phase() {
            Phase::None => None,
            Phase::Introduced => Some(("next", self.generation_dir("next"))),
            Phase::Switched => Some(("previous", self.generation_dir("previous"))),
        }
    }

    /// The issuing certificates of the CAs in force, the current one (`ca`) first.
    pub fn issuer_certs(&self, ca: &Issuer) -> Result<Vec<X509>> {
        let mut out = vec![ca.certificate().to_owned()];
        if let Some((_, dir)) = self.other_generation() {
            out.push(issuing_cert(&dir)?);
        }
        Ok(out)
    }

    /// The CAs in force, with their keys, the current one first: each signs the CRL of its
    /// own certificates.
    pub fn issuers(&self, ca: &Issuer) -> Result<Vec<Issuer>> {
        let mut out = vec![ca.clone()];
        if let Some((_, dir)) = self.other_generation() {
            out.push(issuing_authority(&dir)?);
        }
        Ok(out)
    }

    /// Phase 1: a new CA in `ca/next/` (a root, and an intermediate under it when this PKI has
    /// one, with the same name constraints), trusted beside the current one.
    pub fn rotate_introduce(&self, who: Option<&str>) -> Result<()> {
        if self.phase() != Phase::None {
            return Err(Error::Declined(format!(
                "a rotation is already under way ({}): `pki ca status` says what is left",
                self.phase()
            )));
        }
        let ca = self.issuer()?;
        let constraints = NameConstraints::of(ca.certificate())?;
        let alg = ca.algorithm();
        let next = self.generation_dir("next");
        let root_subject = crate::init::ca_subject(who);
        let mut spec =
            CertSpec::new(Profile::Ca).validity(Validity::days(Profile::Ca.default_days()));
        let two_levels = self.has_intermediate();
        if two_levels {
            spec.path_len = 1;
        } else {
            spec.constraints = constraints.clone();
        }
        // A CA whose key is in a token rotates to keys made in the same token.
        let (root_store, issuing_store) = match ca.signing_key().location() {
            KeyLocation::Pkcs11(uri) => next_stores(&uri, two_levels)?,
            _ => (None, None),
        };
        let root_key = CaKey::generate(alg, root_store.as_ref(), false)?;
        let root = match &root_key {
            CaKey::File(k) => {
                let req = request::build(k, &root_subject)?;
                Issuer::self_sign_spec(&req, k.clone(), &spec)?
            }
            CaKey::Token(_) => {
                Issuer::self_sign_key(&*root_subject.to_x509_name()?, root_key.signer()?, &spec)?
            }
        };
        write_pair(&next, "ca", &root, &root_key)?;
        let issuing = if two_levels {
            let key = CaKey::generate(alg, issuing_store.as_ref(), false)?;
            let subject = crate::init::default_intermediate_subject(who);
            let mut ispec = CertSpec::new(Profile::Intermediate)
                .validity(Validity::days(Profile::Intermediate.default_days()));
            ispec.constraints = constraints;
            let public = key.public()?;
            let name = subject.to_x509_name()?;
            let cert = root.sign_key(&name, &public, &ispec)?;
            let inter =
                Issuer::from_signer(cert, key.signer()?, (Path::new("next"), Path::new("next")))?;
            write_pair(&next, "intermediate", &inter, &key)?;
            inter
        } else {
            issuing_authority(&next)?
        };
        self.write_bundle(&[ca_root(self)?, root.certificate().to_owned()])?;
        let mut db = self.open_db(Some(&ca))?;
        let aki = key_id(issuing.certificate())?;
        db.start_numbering(&aki)?;
        files::write(
            "rotation phase",
            &self.rotation_marker(),
            b"introduced\n",
            Secrecy::Public,
            Overwrite::Replace,
        )?;
        self.write_crl(&ca)?;
        Ok(())
    }

    /// Phase 2: the new CA issues from now on; the old one moves to `ca/previous/`.
    pub fn rotate_switch(&self) -> Result<()> {
        if self.phase() != Phase::Introduced {
            return Err(Error::Declined(
                "switch follows `pki ca rotate` (phase introduced); `pki ca status` says where \
                 the rotation stands"
                    .into(),
            ));
        }
        let l = self.layout();
        let (next, previous) = (self.generation_dir("next"), self.generation_dir("previous"));
        let old_root = ca_root(self)?;
        let new_root = load_cert("new root", &next.join("ca.crt"))?;
        std::fs::create_dir_all(&previous).map_err(|source| x509::Error::Write {
            what: "previous CA folder",
            path: previous.clone(),
            source,
        })?;
        files::write(
            "previous root",
            &previous.join("ca.crt"),
            &old_root.to_pem().step("x509 -out")?,
            Secrecy::Public,
            Overwrite::Replace,
        )?;
        for f in MOVED {
            move_if_there(&l.dir(Role::Ca).join(f), &previous.join(f))?;
        }
        for f in MOVED {
            move_if_there(&next.join(f), &l.dir(Role::Ca).join(f))?;
        }
        self.write_bundle(&[new_root, old_root])?;
        files::write(
            "rotation phase",
            &self.rotation_marker(),
            b"switched\n",
            Secrecy::Public,
            Overwrite::Replace,
        )?;
        let _ = std::fs::remove_dir_all(&next);
        let ca = self.issuer()?;
        self.write_crl(&ca)?;
        Ok(())
    }

    /// Phase 3: the old CA leaves the bundle, once no certificate in force chains to it (or
    /// with `force`), and is archived in `ca/retired/`.
    pub fn rotate_retire(&self, force: bool) -> Result<()> {
        if self.phase() != Phase::Switched {
            return Err(Error::Declined(
                "retire follows `pki ca rotate --switch`; `pki ca status` says where the \
                 rotation stands"
                    .into(),
            ));
        }
        let ca = self.issuer()?;
        let previous = self.generation_dir("previous");
        let old = issuing_cert(&previous)?;
        let left = self.open_db(Some(&ca))?.in_force(&key_id(&old)?, now())?;
        if left > 0 && !force {
            return Err(Error::Declined(format!(
                "{left} certificates in force still chain to the old CA: renew them \
                 (`pki renew --all`) or wait for them to expire; --force retires it anyway \
                 and they stop working"
            )));
        }
        let retired = self
            .layout()
            .dir(Role::Ca)
            .join("retired")
            .join(key_id(&old)?);
        std::fs::create_dir_all(retired.parent().unwrap_or(&retired)).map_err(|source| {
            x509::Error::Write {
                what: "retired CA folder",
                path: retired.clone(),
                source,
            }
        })?;
        std::fs::rename(&previous, &retired).map_err(|source| x509::Error::Write {
            what: "retired CA folder",
            path: retired.clone(),
            source,
        })?;
        self.write_bundle(&[ca_root(self)?])?;
        std::fs::remove_file(self.rotation_marker()).map_err(|source| x509::Error::Write {
            what: "rotation phase",
            path: self.rotation_marker(),
            source,
        })?;
        self.write_crl(&ca)?;
        Ok(())
    }

    /// `pki ca status`.
    pub fn rotation_status(&self) -> Result<Status> {
        let ca = self.issuer()?;
        let mut db = self.open_db_to_read(Some(&ca))?;
        let at = now();
        let mut cas = Vec::new();
        let ca_dir = self.layout().dir(Role::Ca);
        let mut entries = vec![("current", ca.certificate().to_owned(), ca_dir)];
        if let Some((role, dir)) = self.other_generation() {
            entries.push((role, issuing_cert(&dir)?, dir));
        }
        for (role, cert, dir) in entries {
            let aki = key_id(&cert)?;
            let (_, key_path) = issuing_paths(&dir);
            let two_levels = files::exists(&dir.join("intermediate.crt"));
            cas.push(CaStatus {
                role,
                subject: x509::cert::one_line(cert.subject_name()),
                not_after: unix_time(cert.not_after())?,
                in_force: db.in_force(&aki, at)?,
                crl_next_update: db.latest_crl(&aki)?.map(|c| c.next_update),
                key: keys::key_report(&key_path),
                root_key: two_levels.then(|| keys::key_report(&dir.join("ca.key"))),
            });
        }
        let phase = self.phase();
        let next_step = match phase {
            Phase::None => "no rotation under way; `pki ca rotate` starts one".to_owned(),
            Phase::Introduced => "reload every server and client so they trust the new CA \
                                  (ca/ca.crt holds both), then `pki ca rotate --switch`"
                .to_owned(),
            Phase::Switched => match cas.get(1).map(|c| c.in_force).unwrap_or(0) {
                0 => "nothing chains to the old CA any more: `pki ca rotate --retire`".to_owned(),
                n => format!(
                    "{n} certificates in force still chain to the old CA: `pki renew --all`, \
                     then `pki ca rotate --retire`"
                ),
            },
        };
        Ok(Status {
            phase,
            cas,
            next_step,
        })
    }

    /// `pki renew --all`: renews every certificate in force that the current CA did not issue
    /// (after a switch, those of the old CA). Returns how many.
    pub fn renew_all(&self, ca: &Issuer) -> Result<usize> {
        let current = key_id(ca.certificate())?;
        let rows = self.select(&crate::store::Filter {
            status: Some(crate::index::Status::Valid),
            at: now(),
            ..crate::store::Filter::default()
        })?;
        let mut n = 0;
        for r in rows.iter().filter(|r| r.current && r.aki != current) {
            self.renew(ca, &r.serial, false, false, None)?;
            n += 1;
        }
        Ok(n)
    }

    /// `ca/ca.crt`: the trust bundle, the current root first.
    fn write_bundle(&self, roots: &[X509]) -> Result<()> {
        let mut pem = Vec::new();
        for r in roots {
            pem.extend(r.to_pem().step("x509 -out")?);
        }
        files::write(
            "CA certificate bundle",
            &self.layout().ca_cert(),
            &pem,
            Secrecy::Public,
            Overwrite::Replace,
        )
        .map_err(Into::into)
    }
}

/// The current root: the first certificate of `ca/ca.crt`.
fn ca_root(folder: &Folder) -> Result<X509> {
    let all = load_certs("CA certificate", &folder.layout().ca_cert())?;
    Ok(all[0].clone())
}

/// The issuing certificate of a generation's folder: its intermediate, else its root.
fn issuing_cert(dir: &Path) -> Result<X509> {
    let inter = dir.join("intermediate.crt");
    if files::exists(&inter) {
        load_cert("intermediate CA certificate", &inter).map_err(Into::into)
    } else {
        load_cert("CA certificate", &dir.join("ca.crt")).map_err(Into::into)
    }
}

/// The files of a generation that move between `ca/`, `ca/next/` and `ca/previous/` (a key
/// file or its token's record, whichever is there).
const MOVED: [&str; 5] = [
    "ca.key",
    "ca.key-store",
    "intermediate.crt",
    "intermediate.key",
    "intermediate.key-store",
];

/// The issuing CA of a generation's folder, with its key (a file, or a token's).
fn issuing_authority(dir: &Path) -> Result<Issuer> {
    let (cert, key) = issuing_paths(dir);
    keys::load_issuer("CA certificate", &cert, "CA private key", &key)
}

/// The certificate and key paths of a generation's issuing CA.
fn issuing_paths(dir: &Path) -> (PathBuf, PathBuf) {
    if files::exists(&dir.join("intermediate.crt")) {
        (dir.join("intermediate.crt"), dir.join("intermediate.key"))
    } else {
        (dir.join("ca.crt"), dir.join("ca.key"))
    }
}

/// The token objects of a new generation beside `current` (the issuing key's URI): labels of
/// their own (`OBJECT-TAG`, `OBJECT-root-TAG`), so that the old keys stay until retired.
fn next_stores(
    current: &Pkcs11Uri,
    two_levels: bool,
) -> Result<(Option<Pkcs11Uri>, Option<Pkcs11Uri>)> {
    let mut raw = [0u8; 4];
    openssl::rand::rand_bytes(&mut raw).step("rand")?;
    let tag: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let object = current.object.as_deref().unwrap_or("ca");
    // A label of an earlier rotation loses its tag: issuing-1a2b3c4d → issuing.
    let base = match object.rsplit_once('-') {
        Some((base, t)) if t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()) => base,
        _ => object,
    };
    let issuing = current.with_object(&format!("{base}-{tag}"));
    if two_levels {
        let root = current.with_object(&format!("{base}-root-{tag}"));
        Ok((Some(root), Some(issuing)))
    } else {
        Ok((Some(issuing), None))
    }
}

/// A new CA's files: its key (a file made here, never read back from the issuer, or its
/// token's record) and certificate.
fn write_pair(dir: &Path, stem: &str, ca: &Issuer, key: &CaKey) -> Result<()> {
    key.write(
        "CA private key",
        &dir.join(format!("{stem}.key")),
        Overwrite::Never,
    )?;
    files::write(
        "CA certificate",
        &dir.join(format!("{stem}.crt")),
        &ca.certificate().to_pem().step("x509 -out")?,
        Secrecy::Public,
        Overwrite::Never,
    )
    .map_err(Into::into)
}

fn move_if_there(from: &Path, to: &Path) -> Result<()> {
    if !files::exists(from) {
        return Ok(());
    }
    std::fs::rename(from, to).map_err(|source| x509::Error::Write {
        what: "CA file",
        path: to.to_owned(),
        source,
    })?;
    files::sync_dir("CA file", to).map_err(Into::into)
}
