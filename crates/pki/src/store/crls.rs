//! CRLs on record: numbered by `UPDATE … RETURNING` on one row per issuer (every engine
//! serialises it), the revoked list read after that row is locked, the newest few kept.

use super::{bump, CrlRecord, Db, Failed, Revoked, Sql, Value};
use crate::error::Result;
use crate::index::Reason;

impl Db {
    /// Signs a new CRL of `aki` with `sign(number, revoked list)` and records it.
    pub fn crl(
        &mut self,
        aki: &str,
        at: i64,
        sign: &mut dyn FnMut(i64, &[Revoked]) -> Result<CrlRecord>,
    ) -> Result<CrlRecord> {
        self.write(|tx| sign_crl(tx, aki, at, sign))
    }

    /// The CRL of `aki` with the highest number, if one was signed.
    pub fn latest_crl(&mut self, aki: &str) -> Result<Option<CrlRecord>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT aki, number, this_update, next_update, der FROM crls WHERE aki = $1 \
                 ORDER BY number DESC LIMIT 1",
                &[aki.into()],
            )?;
            Ok(rows.first().map(|r| crl_row(r)))
        })
    }

    /// The number the next CRL of `aki` will get.
    pub fn next_crl_number(&mut self, aki: &str) -> Result<i64> {
        self.read(|tx| {
            let rows = tx.query("SELECT next FROM crl_numbers WHERE aki = $1", &[aki.into()])?;
            Ok(rows.first().map_or(1, |r| r[0].int()))
        })
    }

    /// Starts the CRL numbering of a CA that joins the ones in force (a rotation's new CA):
    /// the names of the others' leaves stay taken.
    pub fn start_numbering(&mut self, aki: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO crl_numbers (aki, next) VALUES ($1, 1) ON CONFLICT (aki) DO NOTHING",
                &[aki.into()],
            )?;
            bump(tx)?;
            Ok(())
        })
    }

    /// How many records of `aki` are in force (not revoked, not expired at `at`) and current.
    pub fn in_force(&mut self, aki: &str, at: i64) -> Result<i64> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT count(*) FROM certificates WHERE aki = $1 AND state <> 'revoked' \
                 AND not_after > $2 AND current = 1",
                &[aki.into(), at.into()],
            )?;
            Ok(rows[0][0].int())
        })
    }

    /// Starts the CRL numbering of a new CA at 1 (forgetting nothing: records of other CAs stay).
    pub fn start_ca(&mut self, aki: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO crl_numbers (aki, next) VALUES ($1, 1) ON CONFLICT (aki) DO NOTHING",
                &[aki.into()],
            )?;
            bump(tx)?;
            // A new CA under the same folder: the names of the old one's leaves are free again.
            tx.exec(
                "UPDATE certificates SET current = 0 WHERE aki <> $1 AND current = 1",
                &[aki.into()],
            )?;
            Ok(())
        })
    }
}

pub(super) fn sign_crl(
    tx: &mut dyn Sql,
    aki: &str,
    at: i64,
    sign: &mut dyn FnMut(i64, &[Revoked]) -> Result<CrlRecord>,
) -> Result<CrlRecord, Failed> {
    tx.exec(
        "INSERT INTO crl_numbers (aki, next) VALUES ($1, 1) ON CONFLICT (aki) DO NOTHING",
        &[aki.into()],
    )?;
    // The row lock taken here orders every CRL of this issuer; the list is read after it.
    let rows = tx.query(
        "UPDATE crl_numbers SET next = next + 1 WHERE aki = $1 RETURNING next - 1",
        &[aki.into()],
    )?;
    let number = rows[0][0].int();
    let revoked: Vec<Revoked> = tx
        .query(
            "SELECT serial, revoked_at, reason FROM certificates WHERE aki = $1 AND \
             state = 'revoked' AND not_after > $2 ORDER BY serial",
            &[aki.into(), at.into()],
        )?
        .iter()
        .map(|r| Revoked {
            serial: r[0].text(),
            at: r[1].int(),
            reason: r[2].opt_text().and_then(|s| Reason::parse(&s)),
        })
        .collect();
    let crl = sign(number, &revoked)?;
    bump(tx)?;
    tx.exec(
        "INSERT INTO crls (aki, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)",
        &[
            crl.aki.as_str().into(),
            crl.number.into(),
            crl.this_update.into(),
            crl.next_update.into(),
            Value::Blob(crl.der.clone()),
        ],
    )?;
    // Only the newest CRL is ever served or exported; a few older ones are kept to look back
    // on. All of them would grow ca.db by a CRL per revocation (470 KB at 10,000 revoked).
    tx.exec(
        "DELETE FROM crls WHERE aki = $1 AND number <= $2",
        &[crl.aki.as_str().into(), (crl.number - CRLS_KEPT).into()],
    )?;
    Ok(crl)
}

/// How many CRLs of each CA the records keep, the newest included.
const CRLS_KEPT: i64 = 8;

fn crl_row(r: &[Value]) -> CrlRecord {
    CrlRecord {
        aki: r[0].text(),
        number: r[1].int(),
        this_update: r[2].int(),
        next_update: r[3].int(),
        der: r[4].opt_blob().unwrap_or_default(),
    }
}
