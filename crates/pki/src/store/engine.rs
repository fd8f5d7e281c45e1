//! What the record logic is written against: values, a transaction's two methods ([`Sql`]),
//! the engines behind it ([`Backend`]) and where the records live ([`DbUrl`]).

use std::fmt;
use std::path::Path;

use crate::error::Result;

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub(crate) fn int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            _ => 0,
        }
    }
    pub(crate) fn text(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            _ => String::new(),
        }
    }
    pub(crate) fn opt_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub(crate) fn opt_text(&self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub(crate) fn opt_blob(&self) -> Option<Vec<u8>> {
        match self {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// Why a statement failed, as far as the logic above cares.
#[derive(Debug)]
pub(crate) enum SqlError {
    /// A unique index refused the row.
    Unique,
    /// The lock could not be had within the timeout.
    Busy,
    /// Anything else, in the engine's words.
    Other(String),
}

/// One transaction, as the logic sees it. Statements use `$1, $2, …` placeholders.
pub(crate) trait Sql {
    /// Runs a statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError>;
    /// Runs a query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, SqlError>;
}

/// The engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// What an engine provides: transactions, and its name for messages.
pub(crate) trait Backend: Send {
    /// Runs `f` in one transaction that holds the write lock from the start; commits when `f`
    /// returns Ok, rolls back otherwise.
    fn write(&mut self, f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()>;
    /// Runs `f` in a read-only transaction (one consistent snapshot).
    fn read(&mut self, f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()>;
    /// Which engine this is.
    fn engine(&self) -> Engine;
}

/// Where the records live.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum DbUrl {
    /// SQLite at `ca/ca.db` of the PKI folder.
    #[default]
    Default,
    /// SQLite at this path.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection string (`postgres://user:pass@host/db` or `host=… dbname=…`).
    Postgres(String),
}

impl DbUrl {
    /// `postgres://…`/`postgresql://…`, `sqlite:PATH`, or a path to a SQLite file.
    pub fn parse(s: &str) -> DbUrl {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") || s.contains("dbname=") {
            DbUrl::Postgres(s.to_owned())
        } else {
            DbUrl::Sqlite(s.strip_prefix("sqlite:").unwrap_or(s).into())
        }
    }

    /// Where, for messages: the file, or the server without user and password.
    pub fn describe(&self, default_path: &Path) -> String {
        match self {
            DbUrl::Default => default_path.display().to_string(),
            DbUrl::Sqlite(p) => p.display().to_string(),
            DbUrl::Postgres(url) => super::postgres::redact(url),
        }
    }
}

impl fmt::Debug for DbUrl {
    // A PostgreSQL URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbUrl::Default => f.write_str("Default"),
            DbUrl::Sqlite(p) => write!(f, "Sqlite({p:?})"),
            DbUrl::Postgres(url) => write!(f, "Postgres({:?})", super::postgres::redact(url)),
        }
    }
}
