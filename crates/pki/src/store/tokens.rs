//! Enrollment tokens: made by `pki token create`, stored as a digest, spent in the
//! transaction that records the certificate they enroll (see [`Db::record_issued`]).

use super::{Db, Record, Sql, SqlError};
use crate::error::{Result, TokenRefusal};

impl Db {
    /// The serial the token whose digest is `digest` was spent on, for `role`/`name`, when the
    /// token itself would still be valid at `at`: what a device that lost the answer to its
    /// enrollment may be given again.
    pub fn spent_on(
        &mut self,
        digest: &str,
        role: &str,
        name: &str,
        at: i64,
    ) -> Result<Option<String>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT used_serial FROM tokens WHERE digest = $1 AND role = $2 \
                 AND name_key = $3 AND used_at IS NOT NULL AND expires_at > $4",
                &[
                    digest.into(),
                    role.into(),
                    name.to_ascii_lowercase().into(),
                    at.into(),
                ],
            )?;
            Ok(rows.first().and_then(|r| r[0].opt_text()))
        })
    }

    /// Stores a new enrollment token (its digest) for `role`/`name`, valid until `expires_at`.
    pub fn add_token(
        &mut self,
        digest: &str,
        role: &str,
        name: &str,
        at: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO tokens (digest, role, name_key, name, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    digest.into(),
                    role.into(),
                    name.to_ascii_lowercase().into(),
                    name.into(),
                    at.into(),
                    expires_at.into(),
                ],
            )?;
            Ok(())
        })
    }

    /// The tokens: (name, role, created, expires, used at).
    pub fn tokens(&mut self) -> Result<Vec<TokenRecord>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT name, role, created_at, expires_at, used_at, used_serial FROM tokens \
                 ORDER BY created_at",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| TokenRecord {
                    name: r[0].text(),
                    role: r[1].text(),
                    created_at: r[2].int(),
                    expires_at: r[3].int(),
                    used_at: r[4].opt_int(),
                    used_serial: r[5].opt_text(),
                })
                .collect())
        })
    }
}

/// An enrollment token, as the records keep it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// The name it may enroll.
    pub name: String,
    /// The role it may enroll.
    pub role: String,
    /// When it was made.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
    /// When it was used, if it was.
    pub used_at: Option<i64>,
    /// The certificate it was used for.
    pub used_serial: Option<String>,
}

/// Spends the token whose digest is `digest` for `rec` at `at`, or says why it cannot.
pub(super) fn spend_token(
    tx: &mut dyn Sql,
    digest: &str,
    rec: &Record,
    at: i64,
) -> Result<Option<TokenRefusal>, SqlError> {
    let spent = tx.exec(
        "UPDATE tokens SET used_at = $1, used_serial = $2 WHERE digest = $3 AND \
         used_at IS NULL AND expires_at > $1 AND role = $4 AND name_key = $5",
        &[
            at.into(),
            rec.serial.as_str().into(),
            digest.into(),
            rec.role.dir_name().into(),
            rec.name.to_ascii_lowercase().into(),
        ],
    )?;
    if spent == 1 {
        return Ok(None);
    }
    token_refusal(tx, digest, rec.role.dir_name(), &rec.name, at).map(Some)
}

fn token_refusal(
    tx: &mut dyn Sql,
    digest: &str,
    role: &str,
    name: &str,
    at: i64,
) -> Result<TokenRefusal, SqlError> {
    let rows = tx.query(
        "SELECT used_at, expires_at, role, name_key FROM tokens WHERE digest = $1",
        &[digest.into()],
    )?;
    Ok(match rows.first() {
        None => TokenRefusal::Unknown,
        Some(r) if r[0].opt_int().is_some() => TokenRefusal::Used,
        Some(r) if r[1].int() <= at => TokenRefusal::Expired,
        Some(r) if r[2].text() != role || r[3].text() != name.to_ascii_lowercase() => {
            TokenRefusal::OtherName
        }
        Some(_) => TokenRefusal::Unknown,
    })
}

/// SHA-256 of an enrollment token, as the records keep it.
pub fn token_digest(token: &str) -> String {
    openssl::sha::sha256(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
