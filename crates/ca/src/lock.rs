//! One replica at a time re-signs the CRL. With PostgreSQL (replicas on several hosts) the
//! lock is a session-level advisory lock on the database server, keyed by the CA; with SQLite
//! (replicas on one host, one folder) it is a lock on a file beside the database. Either is
//! released when the [`Lease`] is dropped, or when its holder dies.

use std::time::Duration;

use pki::DbUrl;

use crate::enroll::Ca;
use crate::error::CaError;

/// A held lock.
pub enum Lease {
    /// `flock` on `<db>.crl-lock`, held while the file is open.
    File {
        /// The open lock file.
        _held: std::fs::File,
    },
    /// `pg_try_advisory_lock` on this connection.
    Postgres(Box<postgres::Client>),
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Lease::Postgres(c) = self {
            // Closing the session releases it too; this makes it immediate.
            let _ = c.batch_execute("SELECT pg_advisory_unlock_all()");
        }
    }
}

/// Takes the lock if it is free; `None` when another replica holds it.
pub fn try_acquire(ca: &Ca, timeout: Duration) -> Result<Option<Lease>, CaError> {
    let (url, default_path) = ca.authority.records().place();
    match url {
        DbUrl::Postgres(conn) => postgres_lock(
            conn,
            ca.authority.aki(),
            timeout,
            &url.describe(default_path),
        ),
        DbUrl::Default => file_lock(default_path),
        DbUrl::Sqlite(path) => file_lock(path),
    }
}

fn file_lock(db: &std::path::Path) -> Result<Option<Lease>, CaError> {
    let path = db.with_file_name(format!(
        "{}.crl-lock",
        db.file_name()
            .map_or("ca.db".into(), |n| n.to_string_lossy())
    ));
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Lease::File { _held: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(lock_error(&path, &e)),
    }
}

/// Opens (creating it and its folder) the lock file at `path`, not yet locked.
pub fn open_lock_file(path: &std::path::Path) -> Result<std::fs::File, CaError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| lock_error(path, &e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| lock_error(path, &e))
}

/// A lock file that failed.
pub fn lock_error(path: &std::path::Path, e: &std::io::Error) -> CaError {
    CaError::Lock {
        place: path.display().to_string(),
        detail: e.to_string(),
    }
}

fn postgres_lock(
    conn: &str,
    aki: &str,
    timeout: Duration,
    place: &str,
) -> Result<Option<Lease>, CaError> {
    let fail = |e: postgres::Error| CaError::Lock {
        place: place.to_owned(),
        detail: e.to_string(),
    };
    let mut config: postgres::Config = conn.parse().map_err(fail)?;
    config.connect_timeout(timeout.max(Duration::from_secs(1)));
    let mut client = config.connect(postgres::NoTls).map_err(fail)?;
    let key = lock_key(aki);
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .map_err(fail)?;
    let got: bool = row.get(0);
    Ok(got.then(|| Lease::Postgres(Box::new(client))))
}

/// The advisory lock's key: the first 8 bytes of SHA-256("pki-crl:" + CA key id).
fn lock_key(aki: &str) -> i64 {
    let digest = openssl::sha::sha256(format!("pki-crl:{aki}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_lock_is_held_once_until_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("ca.db");
        let first = file_lock(&db).expect("lock").expect("free");
        assert!(file_lock(&db).expect("lock").is_none(), "taken twice");
        drop(first);
        assert!(file_lock(&db).expect("lock").is_some(), "not released");
    }

    #[test]
    fn each_ca_has_its_own_key() {
        assert_ne!(lock_key("AA"), lock_key("AB"));
        assert_eq!(lock_key("AA"), lock_key("AA"));
    }
}
