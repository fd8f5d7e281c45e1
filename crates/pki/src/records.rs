//! One connection to the CA's records, kept open and reused by a long-running service (the
//! online CA): no migration check, no directory listing, no export per request. A connection
//! that failed is dropped and opened again by the next call, so a restarted PostgreSQL heals.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::store::{CrlRecord, Db, DbUrl, Record};

/// The records, opened on first use.
pub struct Records {
    url: DbUrl,
    default_path: PathBuf,
    lock_timeout: Duration,
    conn: Mutex<Option<Db>>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("place", &self.url.describe(&self.default_path))
            .finish_non_exhaustive()
    }
}

impl Records {
    /// The records at `url` (`default_path` for [`DbUrl::Default`]).
    pub fn new(url: DbUrl, default_path: PathBuf, lock_timeout: Duration) -> Records {
        Records {
            url,
            default_path,
            lock_timeout,
            conn: Mutex::new(None),
        }
    }

    /// Where they are: the URL, and the SQLite file of [`DbUrl::Default`].
    pub fn place(&self) -> (&DbUrl, &Path) {
        (&self.url, &self.default_path)
    }

    /// How long a call waits for a lock held by another writer.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// Runs `f` on the open connection (opening it first when needed).
    pub fn with<T>(&self, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut db = match guard.take() {
            Some(db) => db,
            None => Db::open(&self.url, &self.default_path, self.lock_timeout)?,
        };
        let out = f(&mut db);
        // Keep a connection that answered; a failed one is opened anew next time.
        if !matches!(out, Err(Error::Database { .. })) {
            *guard = Some(db);
        }
        out
    }

    /// The record of certificate `serial` of the CA `aki`, if there is one.
    pub fn certificate(&self, aki: &str, serial: &str) -> Result<Option<Record>> {
        self.with(|db| {
            Ok(db
                .find(aki, serial)?
                .into_iter()
                .find(|r| r.serial == serial))
        })
    }

    /// The newest CRL of `aki`.
    pub fn latest_crl(&self, aki: &str) -> Result<Option<CrlRecord>> {
        self.with(|db| db.latest_crl(aki))
    }
}
