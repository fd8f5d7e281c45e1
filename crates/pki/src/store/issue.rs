//! Records written: a certificate claiming its name (one unique index decides between two
//! writers), settled once its files are in place, abandoned when they never got there, and
//! revoked with its CRL in one transaction.

use super::crls::sign_crl;
use super::tokens::spend_token;
use super::{
    bump, index_line, row, sans_text, Claim, CrlRecord, Db, Failed, Record, Revoked, Sql, SqlError,
    Take, Value, COLUMNS,
};
use crate::error::{Error, Result};
use crate::index::Reason;

impl Db {
    /// Records `rec` (state [`State::Issuing`], claimed by this process) as the current one under
    /// its name. With [`Claim::New`], fails with [`Error::NameTaken`] when another is current.
    pub fn insert(&mut self, rec: &Record, claim: Claim) -> Result<()> {
        let take = match claim {
            Claim::New => Take::New,
            Claim::Replace => Take::Replace,
        };
        // A refusal rolls the transaction back: nothing changes, not even the counter.
        self.write(|tx| {
            take_name(tx, rec, take, 0)?;
            insert_claimed(tx, rec)
        })
    }

    /// Records many at once (a batch), in one transaction; names already taken are refused as a
    /// whole, naming the first.
    pub fn insert_all(&mut self, recs: &[Record]) -> Result<()> {
        self.write(|tx| {
            for rec in recs {
                insert_claimed(tx, rec)?;
            }
            Ok(())
        })
    }

    /// The online CA's issuance, in one transaction: spends the enrollment token whose digest
    /// is `token` (if any), takes the name as `take` says, and records `rec` as issued (no
    /// file is written for it; the CLI's next export brings `index.txt` up to date). Any
    /// refusal rolls all of it back: the token stays unspent.
    pub fn record_issued(
        &mut self,
        rec: &Record,
        take: Take,
        token: Option<&str>,
        at: i64,
    ) -> Result<()> {
        self.write(|tx| {
            if let Some(digest) = token {
                if let Some(why) = spend_token(tx, digest, rec, at)? {
                    return Err(Failed::Pki(Error::Token(why)));
                }
            }
            take_name(tx, rec, take, at)?;
            insert_claimed(tx, rec)
        })
    }

    /// Marks records whose files are written as issued, releasing their claims.
    pub fn settle(&mut self, aki: &str, serials: &[String]) -> Result<()> {
        self.write(|tx| {
            bump(tx)?;
            for s in serials {
                tx.exec(
                    "UPDATE certificates SET state = 'issued', claim = NULL WHERE aki = $1 AND serial = $2 AND state = 'issuing'",
                    &[aki.into(), s.as_str().into()],
                )?;
            }
            Ok(())
        })
    }

    /// Forgets a record still in state `Issuing` whose certificate never reached its files
    /// (its command died before the rename): it was never handed out. When `restore` names
    /// the certificate that is on disk under that name, that one is current again.
    pub fn abandon(&mut self, aki: &str, serial: &str, restore: Option<&str>) -> Result<()> {
        self.write(|tx| {
            bump(tx)?;
            let gone = tx.exec(
                "DELETE FROM certificates WHERE aki = $1 AND serial = $2 AND state = 'issuing'",
                &[aki.into(), serial.into()],
            )?;
            if gone == 1 {
                tx.exec(
                    "DELETE FROM certificate_ders WHERE aki = $1 AND serial = $2",
                    &[aki.into(), serial.into()],
                )?;
            }
            if let Some(other) = restore {
                tx.exec(
                    "UPDATE certificates SET current = 1 WHERE aki = $1 AND serial = $2",
                    &[aki.into(), other.into()],
                )?;
            }
            Ok(())
        })
    }

    /// Revokes the records of `aki` with these serials that are not revoked yet (each a
    /// compare-and-swap, so two commands cannot both count one), then signs a CRL in the same
    /// transaction with `sign(number, revoked list)`. Returns the records this call revoked
    /// and the CRL.
    pub fn revoke(
        &mut self,
        aki: &str,
        serials: &[String],
        at: i64,
        reason: Option<Reason>,
        sign: &mut dyn FnMut(i64, &[Revoked]) -> Result<CrlRecord>,
    ) -> Result<Revocation> {
        let select = format!("SELECT {COLUMNS} WHERE c.aki = $1 AND c.serial = $2");
        self.write(|tx| {
            let rows = tx.query("SELECT value FROM meta WHERE key = 'generation'", &[])?;
            let generation_before = rows.first().map_or(0, |r| r[0].int());
            let mut done = Vec::new();
            for s in serials {
                let n = tx.exec(
                    "UPDATE certificates SET state = 'revoked', revoked_at = $3, reason = $4, claim = NULL \
                     WHERE aki = $1 AND serial = $2 AND state <> 'revoked'",
                    &[aki.into(), s.as_str().into(), at.into(), reason.map(|r| r.as_str()).into()],
                )?;
                if n == 1 {
                    let rows = tx.query(&select, &[aki.into(), s.as_str().into()])?;
                    for r in rows.iter().map(|r| row(r)) {
                        tx.exec(
                            "UPDATE certificates SET line = $3 WHERE aki = $1 AND serial = $2",
                            &[aki.into(), s.as_str().into(), index_line(&r).into()],
                        )?;
                        done.push(r);
                    }
                }
            }
            let crl = sign_crl(tx, aki, at, sign)?;
            Ok(Revocation {
                records: done,
                crl,
                generation_before,
            })
        })
    }
}

/// What one revoking transaction did ([`Db::revoke`]).
#[derive(Debug)]
pub struct Revocation {
    /// The records revoked, as they are now.
    pub records: Vec<Record>,
    /// The CRL signed with them.
    pub crl: CrlRecord,
    /// The change counter before the transaction (it bumps it by one).
    pub generation_before: i64,
}

pub(super) fn insert_row(tx: &mut dyn Sql, r: &Record) -> Result<(), SqlError> {
    bump(tx)?;
    tx.exec(
        "INSERT INTO certificates (aki, serial, role, name, name_key, subject, cn, sans, \
         not_before, not_after, state, revoked_at, reason, current, file, issued_at, claim, \
         renews, line) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19)",
        &[
            r.aki.as_str().into(),
            r.serial.as_str().into(),
            r.role.dir_name().into(),
            r.name.as_str().into(),
            r.name.to_ascii_lowercase().into(),
            r.subject.as_str().into(),
            r.cn.clone().into(),
            sans_text(&r.sans).into(),
            r.not_before.into(),
            r.not_after.into(),
            r.state.as_str().into(),
            r.revoked.map(|(at, _)| at).into(),
            r.revoked
                .and_then(|(_, why)| why)
                .map(|w| w.as_str())
                .into(),
            i64::from(r.current).into(),
            r.file.as_str().into(),
            r.issued_at.into(),
            r.claim.clone().into(),
            r.renews.clone().into(),
            index_line(r).into(),
        ],
    )?;
    if let Some(der) = &r.der {
        tx.exec(
            "INSERT INTO certificate_ders (aki, serial, der) VALUES ($1, $2, $3)",
            &[
                r.aki.as_str().into(),
                r.serial.as_str().into(),
                Value::Blob(der.clone()),
            ],
        )?;
    }
    Ok(())
}

/// Inserts `rec`; the unique index on current names refuses it with [`Error::NameTaken`].
fn insert_claimed(tx: &mut dyn Sql, rec: &Record) -> Result<(), Failed> {
    match insert_row(tx, rec) {
        Err(SqlError::Unique) => Err(Failed::Pki(Error::NameTaken {
            role: rec.role.to_string(),
            name: rec.name.clone(),
        })),
        other => Ok(other?),
    }
}

/// Makes room under `rec`'s name as `take` says; a valid holder refuses [`Take::UnlessValid`].
fn take_name(tx: &mut dyn Sql, rec: &Record, take: Take, at: i64) -> Result<(), Failed> {
    let key: [Value; 2] = [
        rec.role.dir_name().into(),
        rec.name.to_ascii_lowercase().into(),
    ];
    if take == Take::UnlessValid {
        let holder = tx.query(
            "SELECT serial, not_after FROM certificates WHERE role = $1 AND name_key = $2 \
             AND current = 1 AND state <> 'revoked' AND not_after > $3",
            &[key[0].clone(), key[1].clone(), at.into()],
        )?;
        if let Some(r) = holder.first() {
            return Err(Failed::Pki(Error::NameHeld {
                name: rec.name.clone(),
                serial: r[0].text(),
                not_after: r[1].int(),
            }));
        }
    }
    if take != Take::New {
        tx.exec(
            "UPDATE certificates SET current = 0 WHERE role = $1 AND name_key = $2 AND current = 1",
            &key,
        )?;
    }
    Ok(())
}
