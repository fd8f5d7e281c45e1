//! One level or two: the root alone signs leaves (`make certs`), or the root signs an issuing
//! intermediate that signs leaves, and the root's key can leave the host.
//!
//! | file                   | single level            | two levels                              |
//! |------------------------|-------------------------|-----------------------------------------|
//! | `ca/ca.crt`            | the CA (the trust anchor) | the root (the trust anchor, same path)  |
//! | `ca/ca.key`            | the CA's key            | the root's key, or gone (`pki root export`) |
//! | `ca/ca.key-store`      | instead of `ca/ca.key` for a key in a PKCS#11 token (its URI) | the same for the root |
//! | `ca/intermediate.*`    | —                       | the issuing CA and its key (or `.key-store`) |
//! | `ca/ca.crl`            | the CA's CRL            | the intermediate's CRL (of the leaves)  |
//! | `ca/root.crl`          | —                       | the root's CRL (of intermediates)       |
//!
//! In two levels, every leaf file holds the leaf and then the intermediate, so servers and
//! clients send the chain and peers keep trusting `ca/ca.crt` alone.

use std::path::Path;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::constraints::NameConstraints;
use crate::error::{CryptoContext, Error, KeyStoreError, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::folder::Folder;
use crate::issuer::Issuer;
use crate::key;
use crate::keys::{self, CaKey};
use crate::profile::Profile;
use crate::request::Subject;
use x509::cert::{key_id, load_cert};
use x509::{CertSpec, Validity};

/// Days a root's CRL (of intermediates, rarely revoked) stays fresh.
pub const ROOT_CRL_DAYS: u32 = 365;

impl Folder {
    /// Whether this PKI has an issuing intermediate under its root.
    pub fn has_intermediate(&self) -> bool {
        files::exists(&self.layout().intermediate_cert())
    }

    /// The root: `ca/ca.crt` with `ca/ca.key` (or the token key `ca/ca.key-store` records).
    /// Needed only to make an intermediate.
    pub fn root(&self) -> Result<Issuer> {
        let l = self.layout();
        let (cert_path, key_path) = (l.ca_cert(), l.ca_key());
        let cert = load_cert("CA certificate", &cert_path)?;
        if self.has_intermediate() && !keys::present(&key_path) {
            return Err(Error::Declined(format!(
                "the root key {} is offline (moved with `pki root export`): bring it back with \
                 `pki root import FILE` for this one command, then export it again",
                key_path.display()
            )));
        }
        keys::issuer_of(cert, &cert_path, "CA private key", &key_path)
    }

    /// The CA that signs leaves and CRLs: the intermediate when there is one, else the root.
    /// Its key is a file, or a token's when a `.key-store` record is beside the certificate.
    pub fn issuer(&self) -> Result<Issuer> {
        let l = self.layout();
        if !self.has_intermediate() {
            return self.root();
        }
        keys::load_issuer(
            "intermediate CA certificate",
            &l.intermediate_cert(),
            "intermediate CA private key",
            &l.intermediate_key(),
        )
    }

    /// The CA certificates a peer needs to build a chain to the root, issuing CA first and the
    /// root last (`ca/ca.crt` alone for a single-level PKI).
    pub fn ca_chain(&self) -> Result<Vec<X509>> {
        let root = load_cert("CA certificate", &self.layout().ca_cert())?;
        if !self.has_intermediate() {
            return Ok(vec![root]);
        }
        let inter = load_cert(
            "intermediate CA certificate",
            &self.layout().intermediate_cert(),
        )?;
        Ok(vec![inter, root])
    }

    /// What follows a leaf in its file: the intermediate, PEM (nothing in a single level).
    pub(crate) fn chain_after_leaf(&self) -> Result<Vec<u8>> {
        if !self.has_intermediate() {
            return Ok(Vec::new());
        }
        let inter = load_cert(
            "intermediate CA certificate",
            &self.layout().intermediate_cert(),
        )?;
        inter.to_pem().step("x509 -out")
    }

    /// `openssl x509 -req -CA ca.crt -CAkey ca.key -extfile <intermediate>`: an issuing CA under
    /// `root`, with `constraints`, written to `ca/intermediate.{key,crt}`, with its records
    /// started and the root's CRL written.
    pub fn create_intermediate(
        &self,
        root: &Issuer,
        subject: &Subject,
        key: PKey<Private>,
        constraints: &NameConstraints,
        overwrite: Overwrite,
    ) -> Result<Issuer> {
        self.create_intermediate_with(root, subject, CaKey::File(key), constraints, overwrite)
    }

    /// [`Folder::create_intermediate`] for a key in a file or in a token.
    pub(crate) fn create_intermediate_with(
        &self,
        root: &Issuer,
        subject: &Subject,
        key: CaKey,
        constraints: &NameConstraints,
        overwrite: Overwrite,
    ) -> Result<Issuer> {
        let l = self.layout();
        let mut spec = CertSpec::new(Profile::Intermediate)
            .validity(Validity::days(Profile::Intermediate.default_days()));
        spec.constraints = constraints.clone();
        let public = key.public()?;
        let name = subject.to_x509_name()?;
        let cert = root.sign_key(&name, &public, &spec)?;
        // Key first: a crash between the two writes leaves a key that the next run reuses.
        key.write(
            "intermediate CA private key",
            &l.intermediate_key(),
            overwrite,
        )?;
        files::write(
            "intermediate CA certificate",
            &l.intermediate_cert(),
            &cert.to_pem().step("x509 -out")?,
            Secrecy::Public,
            overwrite,
        )?;
        let root_crl = root.crl(&[], 1, ROOT_CRL_DAYS)?;
        files::write(
            "root CRL",
            &l.root_crl(),
            &root_crl.to_pem().step("crl -out")?,
            Secrecy::Public,
            Overwrite::Replace,
        )?;
        let inter = match key {
            CaKey::File(k) => {
                Issuer::from_parts(cert, k, (&l.intermediate_cert(), &l.intermediate_key()))?
            }
            token => Issuer::with_key(cert, token.signer()?)?,
        };
        let mut db = self.open_db(None)?;
        db.start_ca(&key_id(inter.certificate())?)?;
        self.export(&mut db, &inter)?;
        Ok(inter)
    }

    /// `pki root export --to FILE`: copies the root key to `to` (0600, never over a file) and,
    /// once the copy reads back as the same key, removes `ca/ca.key`. Everything but making a
    /// new intermediate goes on working without it. `to`'s folder must exist: it is the
    /// mounted medium, never made here.
    pub fn root_export(&self, to: &Path) -> Result<()> {
        if !self.has_intermediate() {
            return Err(Error::Declined(
                "a single-level CA signs every certificate with its root key: it cannot go \
                 offline. A two-level PKI can: `pki init --force --intermediate` makes one (a \
                 new CA; every certificate is reissued); nothing was changed"
                    .into(),
            ));
        }
        if let Some(uri) = keys::recorded_store(&self.layout().ca_key())? {
            return Err(KeyStoreError::NotExportable {
                what: "root key",
                token: uri.token_label().to_owned(),
                record: keys::store_record(&self.layout().ca_key()),
            }
            .into());
        }
        check_medium(to)?;
        // The root as a file: loaded (and checked against ca/ca.crt) to be copied, not to sign.
        self.root()?;
        let root_key = key::load("CA private key", &self.layout().ca_key())?;
        let pem = key::to_pem(&root_key)?;
        files::write(
            "exported root key",
            to,
            &pem,
            Secrecy::Secret,
            Overwrite::Never,
        )?;
        let back = key::load("exported root key", to)?;
        if !back.public_eq(&root_key) {
            return Err(Error::Declined(format!(
                "{} does not read back as the root key: ca/ca.key was kept",
                to.display()
            )));
        }
        std::fs::remove_file(self.layout().ca_key()).map_err(|source| x509::Error::Write {
            what: "CA private key",
            path: self.layout().ca_key(),
            source,
        })?;
        files::sync_dir("CA private key", &self.layout().ca_key()).map_err(Into::into)
    }

    /// `pki root import FILE`: puts the root key back as `ca/ca.key`, after checking it is the
    /// key of `ca/ca.crt`.
    pub fn root_import(&self, from: &Path) -> Result<()> {
        if keys::present(&self.layout().ca_key()) {
            return Err(Error::Declined(format!(
                "the root key is here already ({}): nothing to import",
                keys::store_record(&self.layout().ca_key()).display()
            )));
        }
        let key = key::load("root key", from)?;
        let cert = load_cert("CA certificate", &self.layout().ca_cert())?;
        if !key::matches(&key, &*cert.public_key().step("x509 -pubkey")?) {
            return Err(Error::KeyMismatch {
                key: from.to_owned(),
                cert: self.layout().ca_cert(),
            });
        }
        files::write(
            "CA private key",
            &self.layout().ca_key(),
            &key::to_pem(&key)?,
            Secrecy::Secret,
            Overwrite::Never,
        )
        .map_err(Into::into)
    }
}

/// Refuses an export whose folder is not there: making it would put the "offline" root key on
/// this host's own disk (an unmounted `/media/usb`), and then remove `ca/ca.key` as if it were
/// safe elsewhere.
fn check_medium(to: &Path) -> Result<()> {
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        return Ok(());
    }
    let what = if files::exists(dir) {
        "is not a folder"
    } else {
        "does not exist"
    };
    Err(Error::Declined(format!(
        "{} {what}: mount the medium first (the root key is never written to a folder made \
         here); nothing was changed",
        dir.display()
    )))
}

/// A CA name of its own for every PKI (clients choose the certificate to send by the CA names
/// a server lists, so two PKIs must never share one): `LABEL WHO XXXXXXXX`, cut to 64
/// characters. `who` is the user@host that made it, when known.
pub fn unique_ca_name(label: &str, who: Option<&str>) -> Result<String> {
    let mut raw = [0u8; 4];
    openssl::rand::rand_bytes(&mut raw).step("rand")?;
    let tag: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let who = who.map(|w| format!("{w} ")).unwrap_or_default();
    let room = 64 - label.len() - tag.len() - 2;
    let who: String = who.chars().take(room).collect();
    Ok(format!("{label} {who}{tag}").replace("  ", " "))
}
