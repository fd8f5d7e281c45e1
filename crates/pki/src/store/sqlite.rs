//! SQLite, embedded (`rusqlite`, bundled): one file, WAL so readers never wait for the writer,
//! and a busy timeout so concurrent commands queue instead of failing.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::{Backend, Engine, Sql, SqlError, Value};
use crate::error::{Error, Result};

/// An open SQLite database.
pub(crate) struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Opens (or creates, 0644 in a folder made 0755) the database at `path`.
    pub(crate) fn open(path: &Path, lock_timeout: Duration) -> Result<Sqlite> {
        let fail = |e: rusqlite::Error| busy_or(e, path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| x509::Error::Write {
                what: "CA database",
                path: path.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(lock_timeout).map_err(fail)?;
        // WAL: readers see the last commit while a writer works. Switching needs the write
        // lock, so the busy timeout above applies to it too.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| busy_or(e, path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Database {
                place: path.display().to_string(),
                detail: format!("cannot switch to WAL (journal mode {mode})"),
            });
        }
        // FULL: a commit is on disk when it returns (the default NORMAL may lose the last
        // commits on power loss, and a record must never be lost).
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        // Read pages through a mapping and keep more of them: a scan of 100,000 records
        // (the index.txt export) otherwise spends most of its time copying pages in pread.
        conn.pragma_update(None, "mmap_size", 268_435_456_i64)
            .map_err(fail)?;
        conn.pragma_update(None, "cache_size", -65_536_i64)
            .map_err(fail)?;
        // The WAL is checkpointed into ca.db as each command exits (SQLite's default; about
        // 40 ms of a revocation at 100,000 records): at rest, ca.db alone holds every record,
        // and a command that only reads leaves every file as it was.
        Ok(Sqlite { conn })
    }
}

fn busy_or(e: rusqlite::Error, path: &Path) -> Error {
    match sql_error(e) {
        SqlError::Busy => Error::Busy(path.display().to_string()),
        SqlError::Unique => Error::Database {
            place: path.display().to_string(),
            detail: "unique constraint".into(),
        },
        SqlError::Other(detail) => Error::Database {
            place: path.display().to_string(),
            detail,
        },
    }
}

/// SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
const UNIQUE: [std::ffi::c_int; 2] = [2067, 1555];

fn sql_error(e: rusqlite::Error) -> SqlError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if UNIQUE.contains(&f.extended_code) {
            return SqlError::Unique;
        }
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => SqlError::Busy,
        Some(ErrorCode::DiskFull) => SqlError::Other(format!("{e} (No space left on device)")),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
            SqlError::Other(format!("{e} (is the folder read-only?)"))
        }
        _ => SqlError::Other(e.to_string()),
    }
}

fn bind(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

fn read(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// `$N` → `?N`: SQLite reads `$1` as a named parameter, numbered by first appearance.
fn placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

struct Tx<'a>(&'a rusqlite::Transaction<'a>);

impl Sql for Tx<'_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        let params = rusqlite::params_from_iter(params.iter().map(bind));
        let mut stmt = self
            .0
            .prepare_cached(&placeholders(sql))
            .map_err(sql_error)?;
        stmt.execute(params).map(|n| n as u64).map_err(sql_error)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, SqlError> {
        let params = rusqlite::params_from_iter(params.iter().map(bind));
        let mut stmt = self
            .0
            .prepare_cached(&placeholders(sql))
            .map_err(sql_error)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(params).map_err(sql_error)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sql_error)? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(read(r.get_ref(i).map_err(sql_error)?));
            }
            out.push(values);
        }
        Ok(out)
    }
}

impl Sqlite {
    fn run(
        &mut self,
        behavior: TransactionBehavior,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>,
    ) -> Result<()> {
        let place = self.conn.path().unwrap_or("ca.db").to_owned();
        let fail = |e: rusqlite::Error| busy_or(e, Path::new(&place));
        let tx = self
            .conn
            .transaction_with_behavior(behavior)
            .map_err(fail)?;
        f(&mut Tx(&tx))?;
        tx.commit().map_err(fail)
    }
}

impl Backend for Sqlite {
    fn write(&mut self, f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        // IMMEDIATE: take the write lock at BEGIN, where the busy timeout waits for it, rather
        // than at the first write, where a lock upgrade fails at once.
        self.run(TransactionBehavior::Immediate, f)
    }

    fn read(&mut self, f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        self.run(TransactionBehavior::Deferred, f)
    }

    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
}
