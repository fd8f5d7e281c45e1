//! The CA as a service: one [`Authority`] that every front-end calls (the online CA's EST
//! today; ACME and OCSP beside it next), as step-ca's `authority/` is to its protocols. It
//! signs through an [`Issuer`] (whose key sits behind [`SigningKey`](crate::SigningKey)) and
//! writes the records only: no file per certificate, no `index.txt`, no directory listing. The
//! folder ([`crate::Folder`]) brings the disk mirror up to date on the CLI's next command.
//!
//! | what                                         | here                        |
//! |----------------------------------------------|-----------------------------|
//! | sign a verified request and record it, spending a token, in one transaction | [`Authority::issue`] |
//! | re-sign the CRLs before verifiers call them stale | [`Authority::crl_if_due`] |
//! | look-ups (a record, a token, the newest CRL) | [`Authority::records`]      |
//!
//! A front-end declares what it needs from here, decides who is asking and what they may
//! have, and turns this module's typed errors into its own answers.

use std::time::Duration;

use openssl::x509::X509;

use crate::error::{CryptoContext, Error, Result, TokenRefusal};
use crate::index::Reason;
use crate::issuer::{Issuer, Revocation};
use crate::leaf::Leaf;
use crate::records::Records;
use crate::store::{CrlRecord, Revoked, State, Take};
use x509::request::Verified;
use x509::time::now;

/// Days until a CRL's nextUpdate: verifiers treat an older CRL as stale.
pub const CRL_DAYS: u32 = 30;

/// The CA as a service: the issuing CA, the CAs still in force beside it during a rotation
/// (each signs the CRL of its own certificates), and the records.
#[derive(Debug)]
pub struct Authority {
    issuer: Issuer,
    others: Vec<Issuer>,
    aki: String,
    records: Records,
    crl_url: Option<String>,
}

/// One issuance asked of the [`Authority`].
pub struct Enrollment<'a> {
    /// The request, its proof of possession checked.
    pub request: &'a Verified<'a>,
    /// Profile, name, subject and names: decided by the front-end's policy, never copied from
    /// the request.
    pub leaf: &'a Leaf,
    /// How the new record takes its name.
    pub take: Take,
    /// An enrollment token (as the device sent it) spent in the same transaction.
    pub token: Option<&'a str>,
    /// The serial of the certificate this one renews.
    pub renews: Option<&'a str>,
}

/// A certificate issued and recorded.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The certificate.
    pub cert: X509,
    /// Its serial (upper-case hex).
    pub serial: String,
    /// Something the operator should know (the validity was cut to the CA's own end).
    pub notice: Option<String>,
    /// Whether it was issued before, for this very request (a retry after a lost answer).
    pub again: bool,
}

impl Authority {
    /// The service of `issuer` (the CA that signs now) and `others` (CAs in force beside it
    /// during a rotation), on `records`.
    pub fn new(issuer: Issuer, others: Vec<Issuer>, records: Records) -> Result<Authority> {
        Ok(Authority {
            aki: x509::cert::key_id(issuer.certificate())?,
            issuer,
            others,
            records,
            crl_url: None,
        })
    }

    /// Certificates issued from here on name `url` as their CRL distribution point.
    pub fn with_crl_url(mut self, url: Option<String>) -> Authority {
        self.crl_url = url;
        self
    }

    /// The CA that signs.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// Its key identifier: the key of its records.
    pub fn aki(&self) -> &str {
        &self.aki
    }

    /// The records, for look-ups.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// Signs `e.request` as `e.leaf` says and records it as issued, spending `e.token`, in
    /// one transaction: a refusal (a token used or for another name, a name held) changes
    /// nothing.
    pub fn issue(&self, e: &Enrollment<'_>) -> Result<Enrolled> {
        // A retried renewal would succeed as a new one: it is looked for first. A retried
        // enrollment meets its spent token in the transaction, and only then is looked for, so
        // a first enrollment reads its token once.
        if e.token.is_none() {
            if let Some(done) = self.issued_before(e)? {
                return Ok(done);
            }
        }
        match self.issue_new(e) {
            // The token was spent: by this device's own earlier request, or another's.
            Err(Error::Token(TokenRefusal::Used)) => self
                .issued_before(e)?
                .ok_or(Error::Token(TokenRefusal::Used)),
            other => other,
        }
    }

    /// The certificate already issued for this enrollment, when it is a retry of one whose
    /// answer was lost: the same token (which would still be valid) or the same renewed
    /// certificate, and a request for the same key. Possession of that key is proven by the
    /// request's signature, so the device gets nothing it could not have had; the certificate
    /// must still be in force (a revoked or expired one is not handed out again).
    pub fn issued_before(&self, e: &Enrollment<'_>) -> Result<Option<Enrolled>> {
        let at = now();
        let role = e.leaf.profile.role().dir_name();
        let candidates = match (e.token, e.renews) {
            (Some(token), _) => {
                let digest = crate::store::token_digest(token);
                let spent = self
                    .records
                    .with(|db| db.spent_on(&digest, role, &e.leaf.name, at))?;
                match spent {
                    Some(serial) => self
                        .records
                        .certificate(&self.aki, &serial)?
                        .into_iter()
                        .collect(),
                    None => Vec::new(),
                }
            }
            (None, Some(old)) => self.records.with(|db| db.renewed_by(&self.aki, old))?,
            (None, None) => Vec::new(),
        };
        for rec in candidates {
            if rec.state != State::Issued || rec.not_after <= at {
                continue;
            }
            let Some(cert) = rec.der.as_deref().and_then(|d| X509::from_der(d).ok()) else {
                continue;
            };
            let same_key = cert
                .public_key()
                .is_ok_and(|k| k.public_eq(e.request.public_key()));
            if same_key {
                return Ok(Some(Enrolled {
                    cert,
                    serial: rec.serial,
                    notice: None,
                    again: true,
                }));
            }
        }
        Ok(None)
    }

    fn issue_new(&self, e: &Enrollment<'_>) -> Result<Enrolled> {
        let (spec, notice) = e.leaf.spec(&self.issuer, self.crl_url.as_deref())?;
        let subject = e.leaf.subject.to_x509_name()?;
        let cert = self
            .issuer
            .sign_key(&subject, e.request.public_key(), &spec)?;
        // Where the folder would keep it: index.txt names the file, as `openssl ca` does.
        let file = format!("{}/{}.crt", e.leaf.profile.role().dir_name(), e.leaf.name);
        let mut rec = e.leaf.record(&cert, &self.aki, &file)?;
        rec.state = State::Issued;
        rec.claim = None;
        rec.renews = e.renews.map(str::to_owned);
        let digest = e.token.map(crate::store::token_digest);
        self.records
            .with(|db| db.record_issued(&rec, e.take, digest.as_deref(), now()))?;
        Ok(Enrolled {
            cert,
            serial: rec.serial,
            notice,
            again: false,
        })
    }

    /// Signs new CRLs (one per CA in force) when the one on record is within `before` of its
    /// nextUpdate, past it, or missing. Returns whether it signed.
    pub fn crl_if_due(&self, before: Duration) -> Result<bool> {
        let latest = self.records.latest_crl(&self.aki)?;
        let margin = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
        let due = latest.is_none_or(|c| c.next_update.saturating_sub(margin) <= now());
        if due {
            self.sign_crls()?;
        }
        Ok(due)
    }

    /// Revokes certificate `serial` of the CA `aki` (the issuing one or one in force beside
    /// it) with `reason`, and signs that CA's next CRL in the same transaction, so the CRL on
    /// record lists it at once. Returns false when it was revoked already.
    pub fn revoke(&self, aki: &str, serial: &str, reason: Option<Reason>) -> Result<bool> {
        let issuer = std::iter::once(&self.issuer)
            .chain(&self.others)
            .find(|i| x509::cert::key_id(i.certificate()).is_ok_and(|k| k == aki))
            .ok_or_else(|| {
                Error::Refused(format!(
                    "certificate {serial} was issued by a CA that is no longer in force ({aki})"
                ))
            })?;
        let serials = [serial.to_owned()];
        let done = self.records.with(|db| {
            db.revoke(aki, &serials, now(), reason, &mut |n, list| {
                sign_crl(issuer, aki, n, list)
            })
        })?;
        Ok(!done.records.is_empty())
    }

    /// The key identifiers of the CAs in force (the issuing one first).
    pub fn akis(&self) -> Vec<String> {
        std::iter::once(&self.issuer)
            .chain(&self.others)
            .filter_map(|i| x509::cert::key_id(i.certificate()).ok())
            .collect()
    }

    /// `openssl ca -gencrl` for each CA in force, numbered and recorded.
    pub fn sign_crls(&self) -> Result<Vec<CrlRecord>> {
        let mut out = Vec::new();
        for issuer in std::iter::once(&self.issuer).chain(&self.others) {
            let aki = x509::cert::key_id(issuer.certificate())?;
            let crl = self
                .records
                .with(|db| db.crl(&aki, now(), &mut |n, list| sign_crl(issuer, &aki, n, list)))?;
            out.push(crl);
        }
        Ok(out)
    }
}

/// Signs CRL number `number` of `issuer` listing `revoked` (each with its reason), as a record.
pub(crate) fn sign_crl(
    issuer: &Issuer,
    aki: &str,
    number: i64,
    revoked: &[Revoked],
) -> Result<CrlRecord> {
    let list: Vec<Revocation> = revoked
        .iter()
        .map(|r| Revocation {
            serial: r.serial.clone(),
            revoked_at: r.at,
            reason: r.reason,
        })
        .collect();
    let crl = issuer.crl(&list, u64::try_from(number).unwrap_or(0), CRL_DAYS)?;
    Ok(CrlRecord {
        aki: aki.to_owned(),
        number,
        this_update: x509::time::unix_time(crl.last_update())?,
        next_update: crl.next_update().map_or(Ok(0), x509::time::unix_time)?,
        der: crl.to_der().step("crl -outform DER")?,
    })
}
