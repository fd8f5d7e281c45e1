//! ACME (RFC 8555) state in the records, so that every replica on one database answers every
//! step: single-use nonces, external account bindings, accounts, and the protocol's objects
//! (orders, authorizations) as JSON bodies. This module knows the tables, not the protocol:
//! the `acme` crate decides what the bodies hold.
//!
//! Every change is one transaction; a status moves by compare-and-set ([`Db::acme_swap`]),
//! so two replicas validating one challenge, or finalizing one order, cannot both win.

use serde::{Deserialize, Serialize};

use super::{Db, Failed, Sql, SqlError, Value};
pub use crate::error::EabRefusal;
use crate::error::{Error, Result};
use x509::constraints::{IpNet, NameConstraints};
use x509::SubjectAltName;

/// What an external account binding lets its account order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmePolicy {
    /// DNS names it may order: `.internal` (anything below), `web.example` (that name and
    /// below). Empty: any name inside the CA's own name constraints.
    #[serde(default)]
    pub dns: Vec<String>,
    /// IP networks it may order (`10.0.0.0/8`). Empty: any address inside the CA's constraints.
    #[serde(default)]
    pub ip: Vec<String>,
    /// Whether it may order the `mtls-client` profile (clientAuth) besides `tls-server`.
    #[serde(default)]
    pub client_profile: bool,
    /// Issue without a challenge for names this policy lists (hosts the CA cannot reach).
    #[serde(default)]
    pub pre_authorized: bool,
}

impl AcmePolicy {
    /// The allow-list as name constraints (empty when nothing is listed).
    pub fn constraints(&self) -> Result<NameConstraints> {
        let ip = self
            .ip
            .iter()
            .map(|n| IpNet::parse(n).map_err(Error::from))
            .collect::<Result<Vec<_>>>()?;
        Ok(NameConstraints {
            dns: self.dns.clone(),
            ip,
        })
    }

    /// Whether `name` is on the allow-list; names are allowed by type only when the list has
    /// entries of that type, so an account bound to `--allow-dns .internal` orders no address.
    pub fn lists(&self, name: &SubjectAltName) -> Result<bool> {
        let c = self.constraints()?;
        Ok(match name {
            SubjectAltName::Dns(_) => !c.dns.is_empty() && c.allows(name),
            SubjectAltName::Ip(_) => !c.ip.is_empty() && c.allows(name),
            _ => false,
        })
    }

    /// Whether `name` may be ordered at all under this policy: listed, or (with an empty
    /// list) anything.
    pub fn allows(&self, name: &SubjectAltName) -> Result<bool> {
        if self.dns.is_empty() && self.ip.is_empty() {
            return Ok(true);
        }
        self.lists(name)
    }

    /// Checks each entry parses (`--allow-ip` must be a network; DNS must not be empty).
    pub fn check(&self) -> Result<()> {
        self.constraints()?;
        match self.dns.iter().find(|d| d.trim_matches('.').is_empty()) {
            Some(d) => Err(Error::Refused(format!(
                "--allow-dns {d:?} is not a DNS name"
            ))),
            None => Ok(()),
        }
    }
}

/// An external account binding as the records keep it.
#[derive(Clone, PartialEq, Eq)]
pub struct EabRecord {
    /// Its key id.
    pub kid: String,
    /// Who it is for (`web-1`).
    pub name: String,
    /// The HMAC key, base64url; gone once it is bound (it can never bind a second account).
    pub hmac: Option<String>,
    /// What its account may order.
    pub policy: AcmePolicy,
    /// When it was made, Unix seconds.
    pub created_at: i64,
    /// When it stops binding.
    pub expires_at: i64,
    /// When it bound an account, and which.
    pub bound: Option<(i64, String)>,
}

impl std::fmt::Debug for EabRecord {
    // Never the HMAC key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EabRecord")
            .field("kid", &self.kid)
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("expires_at", &self.expires_at)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// An ACME account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Its id (the last part of its URL).
    pub id: String,
    /// Its key's JWK thumbprint (RFC 7638), base64url: unique.
    pub thumbprint: String,
    /// Its key, as a JWK (JSON).
    pub jwk: String,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    /// Its contact URLs, as a JSON array.
    pub contact: String,
    /// The binding it was created with.
    pub eab_kid: Option<String>,
    /// When it was created.
    pub created_at: i64,
}

/// An order or authorization: its id, kind, owner, status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeObject {
    /// Its id (the last part of its URL).
    pub id: String,
    /// `order` or `authz`.
    pub kind: String,
    /// The account it belongs to.
    pub account: String,
    /// Its status, as RFC 8555 names it.
    pub status: String,
    /// When it was made.
    pub created_at: i64,
    /// When it expires.
    pub expires_at: i64,
    /// The rest, as the protocol layer writes it.
    pub body: String,
}

const ACCOUNT_COLUMNS: &str =
    "id, thumbprint, jwk, status, contact, eab_kid, created_at FROM acme_accounts";
const OBJECT_COLUMNS: &str =
    "id, kind, account, status, created_at, expires_at, body FROM acme_objects";

impl Db {
    /// Stores a fresh nonce, valid until `expires_at`; forgets those past their time.
    pub fn acme_nonce_add(&mut self, nonce: &str, at: i64, expires_at: i64) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "DELETE FROM acme_nonces WHERE expires_at <= $1",
                &[at.into()],
            )?;
            tx.exec(
                "INSERT INTO acme_nonces (nonce, expires_at) VALUES ($1, $2)",
                &[nonce.into(), expires_at.into()],
            )?;
            Ok(())
        })
    }

    /// Spends `used` (true when it was ours, unspent and in time) and stores `fresh` for the
    /// answer, in one transaction: a nonce is good once, on whichever replica.
    pub fn acme_nonce_swap(
        &mut self,
        used: &str,
        fresh: &str,
        at: i64,
        expires_at: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            let n = tx.exec(
                "DELETE FROM acme_nonces WHERE nonce = $1 AND expires_at > $2",
                &[used.into(), at.into()],
            )?;
            tx.exec(
                "INSERT INTO acme_nonces (nonce, expires_at) VALUES ($1, $2)",
                &[fresh.into(), expires_at.into()],
            )?;
            Ok(n == 1)
        })
    }

    /// Stores a new binding.
    pub fn acme_eab_add(&mut self, eab: &EabRecord) -> Result<()> {
        let policy = serde_json::to_string(&eab.policy)
            .map_err(|e| Error::Refused(format!("the policy: {e}")))?;
        self.write(|tx| {
            tx.exec(
                "INSERT INTO acme_eab (kid, name, hmac, policy, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    eab.kid.as_str().into(),
                    eab.name.as_str().into(),
                    eab.hmac.as_deref().into(),
                    policy.as_str().into(),
                    eab.created_at.into(),
                    eab.expires_at.into(),
                ],
            )?;
            Ok(())
        })
    }

    /// The binding `kid`, if there is one.
    pub fn acme_eab(&mut self, kid: &str) -> Result<Option<EabRecord>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT kid, name, hmac, policy, created_at, expires_at, bound_at, account \
                 FROM acme_eab WHERE kid = $1",
                &[kid.into()],
            )?;
            rows.first().map(|r| eab_row(r)).transpose()
        })
    }

    /// Every binding, oldest first (their HMAC keys left out).
    pub fn acme_eabs(&mut self) -> Result<Vec<EabRecord>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT kid, name, NULL, policy, created_at, expires_at, bound_at, account \
                 FROM acme_eab ORDER BY created_at, kid",
                &[],
            )?;
            rows.iter().map(|r| eab_row(r)).collect()
        })
    }

    /// Creates `account`, binding it to `eab_kid` when given (spending the binding: its HMAC
    /// key is erased), in one transaction. When an account with the same key exists, nothing
    /// changes and that one is returned (`Ok(Err(existing))`); a binding that cannot bind is
    /// refused and nothing changes.
    pub fn acme_account_create(
        &mut self,
        account: &AccountRecord,
        at: i64,
    ) -> Result<std::result::Result<(), AccountRecord>> {
        self.write(|tx| {
            let sql = format!("SELECT {ACCOUNT_COLUMNS} WHERE thumbprint = $1");
            if let Some(r) = tx.query(&sql, &[account.thumbprint.as_str().into()])?.first() {
                return Ok(Err(account_row(r)));
            }
            if let Some(kid) = &account.eab_kid {
                bind_eab(tx, kid, &account.id, at)?;
            }
            tx.exec(
                "INSERT INTO acme_accounts (id, thumbprint, jwk, status, contact, eab_kid, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    account.id.as_str().into(),
                    account.thumbprint.as_str().into(),
                    account.jwk.as_str().into(),
                    account.status.as_str().into(),
                    account.contact.as_str().into(),
                    account.eab_kid.as_deref().into(),
                    account.created_at.into(),
                ],
            )?;
            Ok(Ok(()))
        })
    }

    /// The account `id`.
    pub fn acme_account(&mut self, id: &str) -> Result<Option<AccountRecord>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} WHERE id = $1");
        self.read(|tx| {
            Ok(tx
                .query(&sql, &[id.into()])?
                .first()
                .map(|r| account_row(r)))
        })
    }

    /// The account whose key has `thumbprint`.
    pub fn acme_account_by_key(&mut self, thumbprint: &str) -> Result<Option<AccountRecord>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} WHERE thumbprint = $1");
        self.read(|tx| {
            Ok(tx
                .query(&sql, &[thumbprint.into()])?
                .first()
                .map(|r| account_row(r)))
        })
    }

    /// Sets an account's status and contacts.
    pub fn acme_account_update(&mut self, id: &str, status: &str, contact: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE acme_accounts SET status = $2, contact = $3 WHERE id = $1",
                &[id.into(), status.into(), contact.into()],
            )?;
            Ok(())
        })
    }

    /// Moves account `id` from the key `old` to `new` (key-change); false when another
    /// account holds `new` or the account's key is no longer `old`.
    pub fn acme_account_rekey(
        &mut self,
        id: &str,
        old: &str,
        new: &str,
        jwk: &str,
    ) -> Result<bool> {
        self.write(|tx| {
            let taken = tx.query(
                "SELECT id FROM acme_accounts WHERE thumbprint = $1",
                &[new.into()],
            )?;
            if !taken.is_empty() {
                return Ok(false);
            }
            let n = tx.exec(
                "UPDATE acme_accounts SET thumbprint = $3, jwk = $4 WHERE id = $1 AND thumbprint = $2",
                &[id.into(), old.into(), new.into(), jwk.into()],
            )?;
            Ok(n == 1)
        })
    }

    /// Stores new objects (an order and its authorizations) in one transaction.
    pub fn acme_put(&mut self, objects: &[AcmeObject]) -> Result<()> {
        self.write(|tx| {
            for o in objects {
                tx.exec(
                    "INSERT INTO acme_objects (id, kind, account, status, created_at, expires_at, body) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        o.id.as_str().into(),
                        o.kind.as_str().into(),
                        o.account.as_str().into(),
                        o.status.as_str().into(),
                        o.created_at.into(),
                        o.expires_at.into(),
                        o.body.as_str().into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The objects with these ids (in no particular order; missing ones left out).
    pub fn acme_get(&mut self, ids: &[&str]) -> Result<Vec<AcmeObject>> {
        let sql = format!("SELECT {OBJECT_COLUMNS} WHERE id = $1");
        self.read(|tx| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(
                    tx.query(&sql, &[(*id).into()])?
                        .iter()
                        .map(|r| object_row(r)),
                );
            }
            Ok(out)
        })
    }

    /// Replaces `object`'s status and body when its status is still `from`; false when
    /// another writer moved it first.
    pub fn acme_swap(&mut self, object: &AcmeObject, from: &str) -> Result<bool> {
        self.write(|tx| {
            let n = tx.exec(
                "UPDATE acme_objects SET status = $3, body = $4, expires_at = $5 \
                 WHERE id = $1 AND status = $2",
                &[
                    object.id.as_str().into(),
                    from.into(),
                    object.status.as_str().into(),
                    object.body.as_str().into(),
                    object.expires_at.into(),
                ],
            )?;
            Ok(n == 1)
        })
    }

    /// The ids of the account's objects of `kind` with `status`, newest first, at most `limit`.
    pub fn acme_list(
        &mut self,
        account: &str,
        kind: &str,
        status: &str,
        limit: i64,
    ) -> Result<Vec<String>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id FROM acme_objects WHERE account = $1 AND kind = $2 AND status = $3 \
                 ORDER BY created_at DESC LIMIT $4",
                &[account.into(), kind.into(), status.into(), limit.into()],
            )?;
            Ok(rows.iter().map(|r| r[0].text()).collect())
        })
    }

    /// How many objects of `kind` the account made since `since`, and how many of them are
    /// `status` (the limits on orders and failed validations).
    pub fn acme_count(
        &mut self,
        account: &str,
        kind: &str,
        since: i64,
        status: &str,
    ) -> Result<(i64, i64)> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT count(*), coalesce(sum(CASE WHEN status = $4 THEN 1 ELSE 0 END), 0) \
                 FROM acme_objects WHERE account = $1 AND kind = $2 AND created_at >= $3",
                &[account.into(), kind.into(), since.into(), status.into()],
            )?;
            Ok(rows.first().map_or((0, 0), |r| (r[0].int(), r[1].int())))
        })
    }
}

fn bind_eab(tx: &mut dyn Sql, kid: &str, account: &str, at: i64) -> Result<(), Failed> {
    let n = tx.exec(
        "UPDATE acme_eab SET bound_at = $2, account = $3, hmac = NULL \
         WHERE kid = $1 AND bound_at IS NULL AND expires_at > $2",
        &[kid.into(), at.into(), account.into()],
    )?;
    if n == 1 {
        return Ok(());
    }
    let rows = tx.query(
        "SELECT bound_at FROM acme_eab WHERE kid = $1",
        &[kid.into()],
    )?;
    let why = match rows.first() {
        None => EabRefusal::Unknown,
        Some(r) if r[0].opt_int().is_some() => EabRefusal::Used,
        Some(_) => EabRefusal::Expired,
    };
    Err(Failed::Pki(Error::Eab(why)))
}

fn eab_row(r: &[Value]) -> Result<EabRecord, Failed> {
    let policy = serde_json::from_str(&r[3].text())
        .map_err(|e| SqlError::Other(format!("an ACME binding's policy: {e}")))?;
    Ok(EabRecord {
        kid: r[0].text(),
        name: r[1].text(),
        hmac: r[2].opt_text(),
        policy,
        created_at: r[4].int(),
        expires_at: r[5].int(),
        bound: r[6]
            .opt_int()
            .map(|at| (at, r[7].opt_text().unwrap_or_default())),
    })
}

fn account_row(r: &[Value]) -> AccountRecord {
    AccountRecord {
        id: r[0].text(),
        thumbprint: r[1].text(),
        jwk: r[2].text(),
        status: r[3].text(),
        contact: r[4].text(),
        eab_kid: r[5].opt_text(),
        created_at: r[6].int(),
    }
}

fn object_row(r: &[Value]) -> AcmeObject {
    AcmeObject {
        id: r[0].text(),
        kind: r[1].text(),
        account: r[2].text(),
        status: r[3].text(),
        created_at: r[4].int(),
        expires_at: r[5].int(),
        body: r[6].text(),
    }
}
