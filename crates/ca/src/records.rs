//! One connection to the CA's records, reused across requests for the look-ups of EST and
//! `/crl` (issuing goes through [`pki::Folder`], which opens its own). A connection that
//! failed is dropped and opened again by the next request, so a restarted PostgreSQL heals.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pki::store::{CrlRecord, Db, TokenRefusal};
use pki::{DbUrl, Record};

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
    pub fn place(&self) -> (&DbUrl, &std::path::Path) {
        (&self.url, &self.default_path)
    }

    /// Runs `f` on the open connection (opening it first when needed).
    fn with<T>(&self, f: impl FnOnce(&mut Db) -> pki::Result<T>) -> pki::Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let db = match guard.take() {
            Some(db) => db,
            None => Db::open(&self.url, &self.default_path, self.lock_timeout)?,
        };
        let mut db = db;
        let out = f(&mut db);
        // Keep a connection that answered; a failed one is opened anew next time.
        if !matches!(out, Err(pki::Error::Database { .. })) {
            *guard = Some(db);
        }
        out
    }

    /// The record of certificate `serial` of the CA `aki`, if there is one.
    pub fn certificate(&self, aki: &str, serial: &str) -> pki::Result<Option<Record>> {
        self.with(|db| {
            Ok(db
                .find(aki, serial)?
                .into_iter()
                .find(|r| r.serial == serial))
        })
    }

    /// The certificate current under device name `name`, if any.
    pub fn current_device(&self, aki: &str, name: &str) -> pki::Result<Option<Record>> {
        self.with(|db| {
            Ok(db
                .find(aki, name)?
                .into_iter()
                .find(|r| r.current && r.role == "client" && r.name.eq_ignore_ascii_case(name)))
        })
    }

    /// Why the enrollment token `token` would be refused for device `name`, if it would.
    pub fn token_refusal(&self, token: &str, name: &str) -> pki::Result<Option<TokenRefusal>> {
        let digest = pki::lifecycle::token_digest(token);
        self.with(|db| db.check_token(&digest, "client", name, x509::time::now()))
    }

    /// The newest CRL of `aki`.
    pub fn latest_crl(&self, aki: &str) -> pki::Result<Option<CrlRecord>> {
        self.with(|db| db.latest_crl(aki))
    }
}
