//! The CA's records in a database: what was issued, what is revoked, and every CRL signed.
//!
//! SQLite (`ca/ca.db`, WAL, a busy timeout) by default; PostgreSQL (`--db postgres://…`) when
//! several hosts run one CA. Both sit under the same code: the logic below is written once
//! against [`Sql`], a two-method view of a transaction that each engine implements. Every
//! change is one transaction:
//! - a name is taken by a unique index (role, lower-case name) on the records whose files sit
//!   under that name, so two commands issuing the same name at once cannot both win;
//! - a revocation is a compare-and-swap on the record's status, so each is counted once;
//! - CRL numbers are allocated by `UPDATE … RETURNING` on one row per issuer, which every engine
//!   serialises, and the revoked list is read after that row is locked, so a CRL with a higher
//!   number holds every revocation that one with a lower number holds.
//!
//! The schema is cfssl's `certdb` in spirit (serial + authority key id as key, status, reason,
//! expiry, SANs, DER), with versioned migrations ([`schema`]).

pub mod acme;
mod crls;
mod engine;
pub mod fleet;
mod issue;
mod postgres;
mod schema;
mod sqlite;
mod tokens;

pub use engine::DbUrl;
pub(crate) use engine::{Backend, Engine, Sql, SqlError, Value};
use issue::insert_row;
pub use issue::Revocation;
pub use tokens::{token_digest, TokenRecord};

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use crate::error::TokenRefusal;
use crate::error::{Error, Result};
use crate::index::Reason;
use common::Role;
use x509::SubjectAltName;

/// Where a record stands in its life. Expiry is not stored: it is a matter of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded, its files not yet written (a live command is writing them, or one died).
    Issuing,
    /// Issued and in force (until its notAfter).
    Issued,
    /// Revoked.
    Revoked,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Issuing => "issuing",
            State::Issued => "issued",
            State::Revoked => "revoked",
        }
    }
    fn parse(s: &str) -> State {
        match s {
            "issuing" => State::Issuing,
            "revoked" => State::Revoked,
            _ => State::Issued,
        }
    }
}

/// One certificate the CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The issuing CA's key identifier (hex): with the serial, the record's key.
    pub aki: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// Server or client.
    pub role: Role,
    /// The name its files are stored under (`client/NAME.crt`).
    pub name: String,
    /// Subject, openssl's one-line form.
    pub subject: String,
    /// The subject's CN, if any.
    pub cn: Option<String>,
    /// subjectAltNames.
    pub sans: Vec<SubjectAltName>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Its state.
    pub state: State,
    /// When and why it was revoked.
    pub revoked: Option<(i64, Option<Reason>)>,
    /// Whether its files are the ones under `name` now (a replaced certificate is kept, not current).
    pub current: bool,
    /// The certificate file, relative to the PKI folder.
    pub file: String,
    /// The certificate (DER); absent for records imported from an index.txt whose file was gone.
    pub der: Option<Vec<u8>>,
    /// When it was recorded, Unix seconds.
    pub issued_at: i64,
    /// Who is writing its files while `Issuing` (host, pid, process start).
    pub claim: Option<String>,
    /// The serial of the certificate it renews, if any.
    pub renews: Option<String>,
}

impl Record {
    /// The subjectAltNames as openssl writes them: `DNS:x, IP:y`.
    pub fn sans_text(&self) -> String {
        sans_text(&self.sans)
    }

    /// When it was revoked, as a date ("" when it was not).
    pub fn revoked_on(&self) -> String {
        self.revoked
            .map_or_else(String::new, |(at, _)| x509::time::date(at))
    }

    /// Whole days from now until notAfter (negative once expired).
    pub fn days_left(&self) -> i64 {
        (self.not_after - x509::time::now()).div_euclid(86_400)
    }

    /// valid / expired / revoked at `at`.
    pub fn status(&self, at: i64) -> crate::index::Status {
        use crate::index::Status;
        if self.state == State::Revoked {
            Status::Revoked
        } else if self.not_after <= at {
            Status::Expired
        } else {
            Status::Valid
        }
    }
}

/// Which records `list` returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this status at `at`.
    pub status: Option<crate::index::Status>,
    /// Only this role.
    pub role: Option<Role>,
    /// Only those not revoked that expire within this many seconds of `at` (and have not yet).
    pub expiring_within: Option<i64>,
    /// Only this name (case-insensitive).
    pub name: Option<String>,
    /// The time the filter is judged at.
    pub at: i64,
}

/// One signed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// The issuer's key identifier.
    pub aki: String,
    /// CRL number.
    pub number: i64,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
    /// The CRL (DER).
    pub der: Vec<u8>,
}

/// A revoked serial as the CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Serial, upper-case hex.
    pub serial: String,
    /// When.
    pub at: i64,
    /// Why.
    pub reason: Option<Reason>,
}

/// How a new record claims its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Fail with [`Error::NameTaken`] when another record is current under the name.
    New,
    /// Take the name over: the record current under it stays, but is current no more.
    Replace,
}

/// How a record of the online CA takes its name ([`Db::record_issued`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Only a name no record holds.
    New,
    /// A name whose holder is revoked or expired (a device enrolls again); a valid holder
    /// refuses it with [`Error::NameHeld`].
    UnlessValid,
    /// The name of the certificate it renews, whoever holds it.
    Replace,
}

/// The CA's records, open.
pub struct Db {
    backend: Box<dyn Backend>,
    place: String,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("place", &self.place).finish()
    }
}

/// The columns of a [`Record`], without its DER: rows stay small, so a scan of 100,000 of them
/// reads a few megabytes, not the certificates.
const COLUMNS: &str = "c.aki, c.serial, c.role, c.name, c.subject, c.cn, c.sans, c.not_before, \
                       c.not_after, c.state, c.revoked_at, c.reason, c.current, c.file, NULL, \
                       c.issued_at, c.claim, c.renews FROM certificates c";

/// The same with the DER, kept in its own table.
const COLUMNS_DER: &str = "c.aki, c.serial, c.role, c.name, c.subject, c.cn, c.sans, \
                           c.not_before, c.not_after, c.state, c.revoked_at, c.reason, c.current, \
                           c.file, d.der, c.issued_at, c.claim, c.renews FROM certificates c \
                           LEFT JOIN certificate_ders d ON d.aki = c.aki AND d.serial = c.serial";

impl Db {
    /// Opens (creating and migrating when needed) the records at `url`; `default_path` is
    /// the SQLite file of [`DbUrl::Default`]. Waits up to `lock_timeout` for a lock.
    pub fn open(url: &DbUrl, default_path: &Path, lock_timeout: Duration) -> Result<Db> {
        let place = url.describe(default_path);
        let backend: Box<dyn Backend> = match url {
            DbUrl::Default => Box::new(sqlite::Sqlite::open(default_path, lock_timeout)?),
            DbUrl::Sqlite(p) => Box::new(sqlite::Sqlite::open(p, lock_timeout)?),
            DbUrl::Postgres(u) => Box::new(postgres::Postgres::open(u, lock_timeout)?),
        };
        let mut db = Db { backend, place };
        db.migrate()?;
        Ok(db)
    }

    /// Where the records are, for messages (never a password).
    pub fn place(&self) -> &str {
        &self.place
    }

    fn fail(&self, e: SqlError) -> Error {
        match e {
            SqlError::Busy => Error::Busy(self.place.clone()),
            SqlError::Unique => Error::Database {
                place: self.place.clone(),
                detail: "a record with this key already exists".into(),
            },
            SqlError::Other(detail) => Error::Database {
                place: self.place.clone(),
                detail,
            },
        }
    }

    fn write<T>(&mut self, mut f: impl FnMut(&mut dyn Sql) -> Result<T, Failed>) -> Result<T> {
        let mut out = None;
        let mut failed = None;
        let res = self.backend.write(&mut |tx| match f(tx) {
            Ok(v) => {
                out = Some(v);
                Ok(())
            }
            Err(e) => {
                failed = Some(e);
                Err(Error::Refused(String::new()))
            }
        });
        self.finish(res, out, failed)
    }

    fn read<T>(&mut self, mut f: impl FnMut(&mut dyn Sql) -> Result<T, Failed>) -> Result<T> {
        let mut out = None;
        let mut failed = None;
        let res = self.backend.read(&mut |tx| match f(tx) {
            Ok(v) => {
                out = Some(v);
                Ok(())
            }
            Err(e) => {
                failed = Some(e);
                Err(Error::Refused(String::new()))
            }
        });
        self.finish(res, out, failed)
    }

    fn finish<T>(&self, res: Result<()>, out: Option<T>, failed: Option<Failed>) -> Result<T> {
        match (failed, res, out) {
            (Some(Failed::Sql(e)), _, _) => Err(self.fail(e)),
            (Some(Failed::Pki(e)), _, _) => Err(e),
            (None, Err(e), _) => Err(e),
            (None, Ok(()), Some(v)) => Ok(v),
            (None, Ok(()), None) => Err(self.fail(SqlError::Other("no result".into()))),
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let engine = self.backend.engine();
        self.write(|tx| schema::migrate(tx, engine).map_err(Failed::Sql))
    }

    /// True when no record was ever made (a new database, before any import).
    pub fn is_empty(&mut self) -> Result<bool> {
        self.read(|tx| {
            let n = tx.query("SELECT 1 FROM certificates LIMIT 1", &[])?;
            let crls = tx.query("SELECT 1 FROM crl_numbers LIMIT 1", &[])?;
            Ok(n.is_empty() && crls.is_empty())
        })
    }

    /// The records `filter` selects, oldest first.
    pub fn list(&mut self, filter: &Filter) -> Result<Vec<Record>> {
        let (clause, params) = where_clause(filter);
        let sql = format!("SELECT {COLUMNS}{clause} ORDER BY c.issued_at, c.serial");
        self.read(|tx| Ok(tx.query(&sql, &params)?.iter().map(|r| row(r)).collect()))
    }

    /// How many records `filter` selects.
    pub fn count(&mut self, filter: &Filter) -> Result<i64> {
        let (clause, params) = where_clause(filter);
        let sql = format!("SELECT count(*) FROM certificates c{clause}");
        self.read(|tx| Ok(tx.query(&sql, &params)?[0][0].int()))
    }

    /// Records in state `Issuing`: each either being written by a live command, or left by one
    /// that died (see [`crate::folder`]'s repair).
    pub fn unsettled(&mut self) -> Result<Vec<Record>> {
        let sql = format!("SELECT {COLUMNS_DER} WHERE c.state = 'issuing'");
        self.read(|tx| Ok(tx.query(&sql, &[])?.iter().map(|r| row(r)).collect()))
    }

    /// The records of `aki` whose serial, name or CN is `query`, oldest first.
    pub fn find(&mut self, aki: &str, query: &str) -> Result<Vec<Record>> {
        let serial = query.replace(':', "").to_ascii_uppercase();
        // Three look-ups, each on its own index: one query with an OR (or an IN over a
        // UNION) lets the planner walk every record instead.
        let by =
            |column: &str| format!("SELECT {COLUMNS_DER} WHERE c.aki = $1 AND c.{column} = $2");
        let lookups = [
            (by("serial"), serial),
            (by("name_key"), query.to_ascii_lowercase()),
            (by("cn"), query.to_owned()),
        ];
        self.read(|tx| {
            let mut found: Vec<Record> = Vec::new();
            for (sql, value) in &lookups {
                for r in tx.query(sql, &[aki.into(), value.as_str().into()])? {
                    let rec = row(&r);
                    if !found.iter().any(|f| f.serial == rec.serial) {
                        found.push(rec);
                    }
                }
            }
            found.sort_by(|a, b| (a.issued_at, &a.serial).cmp(&(b.issued_at, &b.serial)));
            Ok(found)
        })
    }

    /// The certificates of CA `aki` that renew `serial`, with their DER, oldest first.
    pub fn renewed_by(&mut self, aki: &str, serial: &str) -> Result<Vec<Record>> {
        let sql =
            format!("SELECT {COLUMNS_DER} WHERE c.aki = $1 AND c.renews = $2 ORDER BY c.issued_at");
        self.read(|tx| {
            Ok(tx
                .query(&sql, &[aki.into(), serial.into()])?
                .iter()
                .map(|r| row(r))
                .collect())
        })
    }

    /// The change counter: any change to the records or a new CRL raises it.
    pub fn generation(&mut self) -> Result<i64> {
        self.read(|tx| {
            let rows = tx.query("SELECT value FROM meta WHERE key = 'generation'", &[])?;
            Ok(rows.first().map_or(0, |r| r[0].int()))
        })
    }

    /// The lines of `index.txt` for the records of `aki`, in `openssl ca`'s format.
    pub fn index_lines(&mut self, aki: &str) -> Result<String> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT line FROM certificates WHERE aki = $1 ORDER BY issued_at, serial",
                &[aki.into()],
            )?;
            let mut out = String::with_capacity(rows.len() * 120);
            for r in &rows {
                if let Value::Text(line) = &r[0] {
                    out.push_str(line);
                }
            }
            Ok(out)
        })
    }

    /// Imports records of an older `pki` (its index.txt) and its next CRL number, once: does
    /// nothing when the database already holds records.
    pub fn import(&mut self, aki: &str, recs: &[Record], next_crl: i64) -> Result<bool> {
        self.write(|tx| {
            let n = tx.query("SELECT 1 FROM certificates LIMIT 1", &[])?;
            let c = tx.query("SELECT 1 FROM crl_numbers LIMIT 1", &[])?;
            if !n.is_empty() || !c.is_empty() {
                return Ok(false);
            }
            for rec in recs {
                insert_row(tx, rec)?;
            }
            tx.exec(
                "INSERT INTO crl_numbers (aki, next) VALUES ($1, $2)",
                &[aki.into(), next_crl.into()],
            )?;
            Ok(true)
        })
    }
}

/// What a transaction body can fail with: the engine, or a refusal of ours.
pub(crate) enum Failed {
    Sql(SqlError),
    Pki(Error),
}

impl From<SqlError> for Failed {
    fn from(e: SqlError) -> Failed {
        Failed::Sql(e)
    }
}

impl From<Error> for Failed {
    fn from(e: Error) -> Failed {
        Failed::Pki(e)
    }
}

/// Marks the records changed: exports compare this counter with the one they were made at.
fn bump(tx: &mut dyn Sql) -> Result<(), SqlError> {
    tx.exec(
        "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
        &[],
    )
    .map(|_| ())
}

/// The record's line in `index.txt` (`openssl ca`'s format), newline included; kept with the
/// record so that the export reads one column.
pub(crate) fn index_line(r: &Record) -> String {
    crate::index::Entry {
        serial: r.serial.clone(),
        subject: r.subject.clone(),
        file: r.file.clone(),
        not_after: r.not_after,
        revoked: r.revoked,
    }
    .to_line()
}

fn where_clause(f: &Filter) -> (String, Vec<Value>) {
    use crate::index::Status;
    let mut conds = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let bind = |v: Value, params: &mut Vec<Value>| {
        params.push(v);
        format!("${}", params.len())
    };
    match f.status {
        Some(Status::Revoked) => conds.push("state = 'revoked'".to_owned()),
        Some(Status::Valid) => {
            let p = bind(f.at.into(), &mut params);
            conds.push(format!("state <> 'revoked' AND not_after > {p}"));
        }
        Some(Status::Expired) => {
            let p = bind(f.at.into(), &mut params);
            conds.push(format!("state <> 'revoked' AND not_after <= {p}"));
        }
        None => {}
    }
    if let Some(role) = &f.role {
        let p = bind(role.dir_name().into(), &mut params);
        conds.push(format!("role = {p}"));
    }
    if let Some(name) = &f.name {
        let p = bind(name.to_ascii_lowercase().into(), &mut params);
        conds.push(format!("name_key = {p}"));
    }
    if let Some(within) = f.expiring_within {
        let now = bind(f.at.into(), &mut params);
        let end = bind((f.at + within).into(), &mut params);
        conds.push(format!(
            "state <> 'revoked' AND not_after > {now} AND not_after <= {end}"
        ));
    }
    if conds.is_empty() {
        (String::new(), params)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), params)
    }
}

fn row(r: &[Value]) -> Record {
    let revoked = r[10]
        .opt_int()
        .map(|at| (at, r[11].opt_text().and_then(|s| Reason::parse(&s))));
    Record {
        aki: r[0].text(),
        serial: r[1].text(),
        role: role_of(&r[2].text()),
        name: r[3].text(),
        subject: r[4].text(),
        cn: r[5].opt_text(),
        sans: sans_of(&r[6].text()),
        not_before: r[7].int(),
        not_after: r[8].int(),
        state: State::parse(&r[9].text()),
        revoked,
        current: r[12].int() == 1,
        file: r[13].text(),
        der: r[14].opt_blob(),
        issued_at: r[15].int(),
        claim: r[16].opt_text(),
        renews: r[17].opt_text(),
    }
}

/// A role as the records spell it (`server`, `client`; `ca` for a CA's own row).
fn role_of(text: &str) -> Role {
    match text {
        "server" => Role::Server,
        "ca" => Role::Ca,
        _ => Role::Client,
    }
}

/// subjectAltNames as the records keep them: openssl's `DNS:x, IP:y`.
pub(crate) fn sans_text(sans: &[SubjectAltName]) -> String {
    sans.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of a `sans` column; one that no longer parses is left out, not fatal to a read.
fn sans_of(text: &str) -> Vec<SubjectAltName> {
    text.split(", ")
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}
