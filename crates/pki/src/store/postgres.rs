//! PostgreSQL (`postgres` crate, synchronous), for one CA on several hosts. Transactions are
//! READ COMMITTED; what must be serialised is serialised by row locks (`UPDATE … RETURNING` on the
//! CRL counter, the compare-and-swap on a record) and unique indexes.

use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use super::{Backend, Engine, Sql, SqlError, Value};
use crate::error::{Error, Result};

/// An open connection.
pub(crate) struct Postgres {
    client: Client,
    place: String,
    lock_timeout: Duration,
}

/// The connection string without user and password, for messages.
pub(crate) fn redact(url: &str) -> String {
    if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
        let scheme = &url[..url.len() - rest.len()];
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let host = host.split('?').next().unwrap_or(host);
        return format!("{scheme}{host}");
    }
    // key=value form: drop the password.
    url.split_whitespace()
        .filter(|kv| !kv.starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Postgres {
    /// Connects (no TLS: use a local socket or a loopback address, or a tunnel).
    pub(crate) fn open(url: &str, lock_timeout: Duration) -> Result<Postgres> {
        let place = redact(url);
        let mut config: postgres::Config = url.parse().map_err(|e| Error::Database {
            place: place.clone(),
            detail: format!("not a PostgreSQL connection string ({e})"),
        })?;
        config.connect_timeout(lock_timeout.max(Duration::from_secs(1)));
        let client = config.connect(NoTls).map_err(|e| Error::Database {
            place: place.clone(),
            detail: format!("cannot connect ({e})"),
        })?;
        Ok(Postgres {
            client,
            place,
            lock_timeout,
        })
    }

    fn run(
        &mut self,
        read_only: bool,
        f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>,
    ) -> Result<()> {
        let place = self.place.clone();
        let fail = |e: postgres::Error| match sql_error(&e) {
            SqlError::Busy => Error::Busy(place.clone()),
            _ => Error::Database {
                place: place.clone(),
                detail: e.to_string(),
            },
        };
        let mut tx = self
            .client
            .build_transaction()
            .read_only(read_only)
            .start()
            .map_err(fail)?;
        // Waiting on a lock is fine, for a while: then say so and change nothing.
        let ms = self.lock_timeout.as_millis().max(1);
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {ms}"))
            .map_err(fail)?;
        f(&mut Tx(&mut tx))?;
        tx.commit().map_err(fail)
    }
}

fn sql_error(e: &postgres::Error) -> SqlError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => SqlError::Unique,
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => SqlError::Busy,
        _ => SqlError::Other(e.to_string()),
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    // Each variant checks its own type in to_sql; a NULL fits any column.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn read(row: &postgres::Row, i: usize) -> Result<Value, SqlError> {
    let bad = |e: postgres::Error| SqlError::Other(e.to_string());
    let ty = row.columns()[i].type_().clone();
    Ok(if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i).map_err(bad)?.into()
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map(i64::from)
            .into()
    } else if ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(i)
            .map_err(bad)?
            .map_or(Value::Null, Value::Blob)
    } else if ty == Type::VOID {
        Value::Null
    } else {
        row.try_get::<_, Option<String>>(i).map_err(bad)?.into()
    })
}

struct Tx<'a, 'b>(&'a mut postgres::Transaction<'b>);

impl Sql for Tx<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        self.0.execute(sql, &refs).map_err(|e| sql_error(&e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, SqlError> {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        let rows = self.0.query(sql, &refs).map_err(|e| sql_error(&e))?;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| read(r, i)).collect())
            .collect()
    }
}

impl Backend for Postgres {
    fn write(&mut self, f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        self.run(false, f)
    }

    fn read(&mut self, f: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        self.run(true, f)
    }

    fn engine(&self) -> Engine {
        Engine::Postgres
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://ca:s3cret@db.internal:5432/pki?sslmode=disable"),
            "postgres://db.internal:5432/pki"
        );
        assert_eq!(
            redact("host=/run/postgresql dbname=pki password=s3cret"),
            "host=/run/postgresql dbname=pki"
        );
    }
}
