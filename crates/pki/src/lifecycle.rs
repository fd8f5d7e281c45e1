//! After day 0: signing requests made elsewhere (a device's own key), renewal, enrollment
//! tokens for the online CA, and a CRL rewritten before verifiers call it stale.
//!
//! | openssl CLI                                        | here                         |
//! |----------------------------------------------------|------------------------------|
//! | `openssl x509 -req -in dev.csr -CA … -extfile …`   | [`Folder::sign_request`]     |
//! | `openssl x509 -x509toreq` + `-req` (same key)      | [`Folder::renew`]            |
//! | `openssl x509 -checkend N`                         | [`renewal_due`]              |
//! | `openssl ca -gencrl` from cron                     | [`Folder::crl_if_due`]       |

use std::path::Path;
use std::time::Duration;

use openssl::x509::{X509Req, X509};

use crate::error::{CryptoContext, Error, Result};
use crate::files::{self, Overwrite, Secrecy};
use crate::folder::{Folder, Issued, Placement};
use crate::index::Reason;
use crate::issuer::Issuer;
use crate::key;
use crate::leaf::Leaf;
use crate::profile::Profile;
use crate::store::{Claim, Filter, State};
use common::Role;
use x509::cert::{key_id, load_cert};
use x509::key::public_of;
use x509::time::{now, unix_time};

/// Reads a PKCS#10 request, PEM or DER (`openssl req`, Python `cryptography`, a device).
pub fn load_request(path: &Path) -> Result<X509Req> {
    let bytes = files::read("certificate request", path)?;
    parse_request(&bytes)
        .map_err(|detail| x509::Error::Malformed {
            what: "certificate request",
            path: path.to_owned(),
            detail,
        })
        .map_err(Into::into)
}

/// A PKCS#10 request from PEM or DER bytes.
pub fn parse_request(bytes: &[u8]) -> std::result::Result<X509Req, String> {
    X509Req::from_pem(bytes)
        .or_else(|_| X509Req::from_der(bytes))
        .map_err(|_| "not a PKCS#10 certificate request (PEM or DER)".to_owned())
}

pub use crate::store::token_digest;
pub use x509::request::{check_key, check_request};

/// Whether `cert` is due for renewal at `at`: within `within` of its notAfter, or, without
/// `within`, in the last third of its lifetime (as cert-manager and our EST client judge it).
pub fn renewal_due(cert: &X509, within: Option<Duration>, at: i64) -> Result<bool> {
    let not_before = unix_time(cert.not_before())?;
    let not_after = unix_time(cert.not_after())?;
    let margin = match within {
        Some(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        None => (not_after - not_before) / 3,
    };
    Ok(not_after.saturating_sub(margin) <= at)
}

/// A request signed by [`Folder::sign_request`].
#[derive(Clone)]
pub struct Request<'a> {
    /// The request.
    pub csr: &'a X509Req,
    /// Profile, name, subject and names: ours, never the request's own extensions.
    pub leaf: &'a Leaf,
    /// Replace a certificate recorded under the name.
    pub overwrite: Overwrite,
}

/// What [`Folder::renew`] did.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// The successor.
    pub issued: Issued,
    /// The serial it renews.
    pub old_serial: String,
    /// Where the old certificate was kept.
    pub archived: std::path::PathBuf,
    /// Whether the old one was revoked (`--revoke-old`).
    pub old_revoked: bool,
}

impl Folder {
    /// `openssl x509 -req -in dev.csr -CA ca.crt -CAkey ca.key -extfile <profile>`: signs a
    /// request made elsewhere. The signature and key strength are checked; the subject, names
    /// and extensions come from `request.leaf`, never from the request. Only the certificate is
    /// written (`client/NAME.crt`): the key never travels.
    pub fn sign_request(&self, ca: &Issuer, request: &Request<'_>) -> Result<Issued> {
        check_request(request.csr)?;
        let public = request.csr.public_key().step("req -pubkey")?;
        let placement = Placement {
            subject: request.leaf.subject.to_x509_name()?,
            public: &public,
            key: None,
            overwrite: request.overwrite,
            claim: match request.overwrite {
                Overwrite::Never => Claim::New,
                Overwrite::Replace => Claim::Replace,
            },
            renews: None,
        };
        self.place(ca, request.leaf, &placement)
    }

    /// `pki renew`: a successor for the same subject and names, with the same key unless
    /// `rekey`, written where the old one was (a reload picks it up). The old certificate is
    /// kept in the records and in `ROLE/archive/NAME-SERIAL.crt`, and stays valid until it
    /// expires unless `revoke_old`.
    pub fn renew(
        &self,
        ca: &Issuer,
        query: &str,
        rekey: bool,
        revoke_old: bool,
        days: Option<u32>,
    ) -> Result<Renewed> {
        let old = self.current_record(ca, query)?;
        let cert_path = self.layout().root().join(&old.file);
        let old_cert = match &old.der {
            Some(der) => X509::from_der(der).step("x509 -inform DER")?,
            None => load_cert("certificate", &cert_path)?,
        };
        let profile = match old.role {
            Role::Server => Profile::Server,
            _ => Profile::Client,
        };
        let mut leaf = Leaf::client(&old.name);
        leaf.profile = profile;
        leaf.days = days;
        leaf.names = old.sans.clone();
        let archived = self.archive(old.role.dir_name(), &old.name, &old.serial, &old_cert)?;
        let new_key = if rekey {
            let alg = check_key(&*old_cert.public_key().step("x509 -pubkey")?)?;
            Some(key::generate(alg)?)
        } else {
            None
        };
        let public = match &new_key {
            Some(k) => public_of(k)?,
            None => old_cert.public_key().step("x509 -pubkey")?,
        };
        let placement = Placement {
            subject: old_cert.subject_name().to_owned().step("x509 -subject")?,
            public: &public,
            key: new_key.as_ref(),
            overwrite: Overwrite::Replace,
            claim: Claim::Replace,
            renews: Some(old.serial.clone()),
        };
        let issued = self.place(ca, &leaf, &placement)?;
        let p12 = self.layout().client_p12(&old.name);
        if old.role == Role::Client && files::exists(&p12) {
            self.notice(format!(
                "{} still holds the old certificate: `pki export-p12 --name {} --force` makes it anew",
                p12.display(),
                old.name
            ));
        }
        if revoke_old {
            self.revoke(ca, &old.serial, Some(Reason::Superseded))?;
        }
        Ok(Renewed {
            issued,
            old_serial: old.serial,
            archived,
            old_revoked: revoke_old,
        })
    }

    /// The certificate in force that `query` names: a serial, or a name whose current
    /// certificate is taken.
    fn current_record(&self, ca: &Issuer, query: &str) -> Result<crate::store::Record> {
        let mut db = self.open_db(Some(ca))?;
        // During a rotation, certificates of either CA in force can be renewed.
        let mut all = Vec::new();
        for issuer in self.issuer_certs(ca)? {
            all.extend(db.find(&key_id(&issuer)?, query)?);
        }
        let (found, ended): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|r| r.state == State::Issued);
        let by_serial = found
            .iter()
            .find(|r| r.serial == query.replace(':', "").to_ascii_uppercase());
        let current: Vec<_> = found.iter().filter(|r| r.current).collect();
        match (by_serial, current.as_slice()) {
            (Some(r), _) => Ok(r.clone()),
            (None, [one]) => Ok((*one).clone()),
            (None, []) => Err(Error::NotInIndex(match revoked_one(&ended) {
                Some(r) => format!(
                    "{query} ({} certificate {}) was revoked on {}: a revoked certificate is not \
                     renewed; issue a new one: `pki issue {} --name {} --force`",
                    r.role,
                    r.serial,
                    r.revoked_on(),
                    r.role,
                    r.name
                ),
                None => format!(
                    "no certificate in force with serial or name {query:?}: `pki list` shows them"
                ),
            })),
            (None, _) => Err(Error::NotInIndex(format!(
                "{query:?} names a server and a client certificate: give the serial"
            ))),
        }
    }

    /// Keeps `cert` as `ROLE/archive/NAME-SERIAL.crt` (never replacing one there).
    fn archive(
        &self,
        role: &str,
        name: &str,
        serial: &str,
        cert: &X509,
    ) -> Result<std::path::PathBuf> {
        let rel = Path::new(role)
            .join("archive")
            .join(format!("{}-{serial}.crt", crate::name::Name::parse(name)?));
        let path = crate::name::inside(self.layout().root(), &rel)?;
        if !files::exists(&path) {
            files::write(
                "archived certificate",
                &path,
                &cert.to_pem().step("x509 -out")?,
                Secrecy::Public,
                Overwrite::Never,
            )?;
        }
        Ok(path)
    }

    /// Makes an enrollment token for `role`/`name`, valid for `ttl`, and returns it: it is
    /// shown this once; the records keep only its SHA-256.
    pub fn create_token(&self, profile: Profile, name: &str, ttl: Duration) -> Result<String> {
        let name = crate::name::Name::parse(name)?;
        let mut raw = [0u8; 20];
        openssl::rand::rand_bytes(&mut raw).step("rand")?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let ca = self.issuer()?;
        let at = now();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let mut db = self.open_db(Some(&ca))?;
        // Made anyway (the certificate may be revoked before the device enrolls), and said:
        // the enrollment is refused (409) while the name holds a valid certificate.
        let held = db
            .find(&key_id(ca.certificate())?, name.as_str())?
            .into_iter()
            .find(|r| r.current && r.state == State::Issued && r.not_after > at);
        if let Some(r) = held {
            self.notice(format!(
                "{name} holds a valid certificate (serial {}, until {}): an enrollment with this \
                 token is refused until it is revoked (`pki revoke {name}`) or has expired; a \
                 device that holds it renews instead (`client renew`)",
                r.serial,
                x509::time::date(r.not_after)
            ));
        }
        db.add_token(
            &token_digest(&token),
            profile.role().dir_name(),
            name.as_str(),
            at,
            at.saturating_add(ttl),
        )?;
        Ok(token)
    }

    /// Makes an ACME external account binding for `name` with `policy`, valid for `ttl`, and
    /// returns its key id and HMAC key (base64url): shown this once; the records keep the key
    /// only until it binds an account.
    pub fn create_acme_eab(
        &self,
        name: &str,
        policy: crate::store::acme::AcmePolicy,
        ttl: Duration,
    ) -> Result<(String, String)> {
        let name = crate::name::Name::parse(name)?;
        policy.check()?;
        let kid = format!("{}-{}", name.key(), random_b64url(9)?);
        let hmac = random_b64url(32)?;
        let ca = self.issuer()?;
        let at = now();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.open_db(Some(&ca))?
            .acme_eab_add(&crate::store::acme::EabRecord {
                kid: kid.clone(),
                name: name.as_str().to_owned(),
                hmac: Some(hmac.clone()),
                policy,
                created_at: at,
                expires_at: at.saturating_add(ttl),
                bound: None,
            })?;
        Ok((kid, hmac))
    }

    /// `pki crl --if-due`: signs a new CRL only when the one on record is within `before` of
    /// its nextUpdate (or past it, or missing). Returns whether it did.
    pub fn crl_if_due(&self, ca: &Issuer, before: Duration) -> Result<bool> {
        let aki = key_id(ca.certificate())?;
        let latest = self.open_db(Some(ca))?.latest_crl(&aki)?;
        let margin = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
        let due = latest.is_none_or(|c| c.next_update.saturating_sub(margin) <= now());
        if due {
            self.write_crl(ca)?;
        }
        Ok(due)
    }

    /// Records in force that are due for renewal within `within` (the last third of their
    /// lifetime without it), for `pki list --due`.
    pub fn due(&self, within: Option<Duration>) -> Result<Vec<crate::store::Record>> {
        let at = now();
        let rows = self.select(&Filter {
            status: Some(crate::index::Status::Valid),
            at,
            ..Filter::default()
        })?;
        Ok(rows
            .into_iter()
            .filter(|r| r.current)
            .filter(|r| {
                let margin = match within {
                    Some(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    None => (r.not_after - r.not_before) / 3,
                };
                r.not_after.saturating_sub(margin) <= at
            })
            .collect())
    }
}

/// `n` random bytes, base64url without padding (ACME's encoding of keys and ids).
fn random_b64url(n: usize) -> Result<String> {
    use base64::Engine;
    let mut raw = vec![0u8; n];
    openssl::rand::rand_bytes(&mut raw).step("rand")?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// The newest revoked certificate among `records`, if any.
fn revoked_one(records: &[crate::store::Record]) -> Option<&crate::store::Record> {
    records
        .iter()
        .filter(|r| r.state == State::Revoked)
        .max_by_key(|r| r.issued_at)
}
